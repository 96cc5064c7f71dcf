"""Name -> object registries in Dassl's style, the one class every layer uses (it imports nothing
from the project).

``@REG.register()`` stores a class or function under its ``__name__`` (or ``name=``);
``REG.get(name)`` returns it, and a miss raises a ``KeyError`` whose message lists the closest
registered names. ``case_insensitive=True`` folds the case of names.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator, TypeVar, overload

_T = TypeVar("_T")


class Registry:
    def __init__(self, name: str, case_insensitive: bool = False) -> None:
        self._name = name
        self._obj_map: dict[str, Any] = {}
        self._case_insensitive = case_insensitive

    def _key(self, name: Any) -> Any:
        return str(name).lower() if self._case_insensitive else name

    @overload
    def register(self, obj: None = None, force: bool = False, name: str | None = None) -> Callable[[_T], _T]: ...

    @overload
    def register(self, obj: _T, force: bool = False, name: str | None = None) -> _T: ...

    def register(self, obj: _T | None = None, force: bool = False,
                 name: str | None = None) -> _T | Callable[[_T], _T]:
        """``register(obj)`` or the decorator ``@register()``; a taken name needs ``force=True``."""
        def deco(o: _T) -> _T:
            key = self._key(name or o.__name__)
            if key in self._obj_map and not force:
                raise KeyError(f'An object named "{name or o.__name__}" was already registered in the "{self._name}" '
                               'registry')
            self._obj_map[key] = o
            return o
        return deco if obj is None else deco(obj)

    def closest(self, name: str, n: int = 3) -> list[str]:
        names = list(self._obj_map)
        lower = {k.lower(): k for k in names}
        hits = difflib.get_close_matches(str(name).lower(), list(lower), n=n, cutoff=0.3)
        return [lower[h] for h in hits]

    def get(self, name: str) -> Any:
        key = self._key(name)
        if key not in self._obj_map:
            close = self.closest(str(name))
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise KeyError(f'"{name}" is not registered in the {self._name} registry{hint} '
                           f"(registered: {', '.join(sorted(self._obj_map)) or 'none'})")
        return self._obj_map[key]

    def registered_names(self) -> list[str]:
        return list(self._obj_map.keys())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._obj_map.items())

    def __iter__(self) -> Iterator[str]:
        return iter(self._obj_map)

    def __contains__(self, name: object) -> bool:
        return self._key(name) in self._obj_map

    def __repr__(self) -> str:
        return f"Registry({self._name}: {sorted(self._obj_map)})"
