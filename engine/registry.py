"""Name -> class registries in Dassl's style.

``@REGISTRY.register()`` stores a class under its ``__name__`` (or an explicit
name); ``get(name)`` returns it, and a miss raises a ``KeyError`` whose message
lists the closest registered names.
"""
import difflib


class Registry:
    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise KeyError(f'An object named "{name}" was already registered in the "{self._name}" registry')
        self._obj_map[name] = obj

    def register(self, obj=None, force=False, name=None):
        if obj is None:
            def deco(func_or_class):
                self._do_register(name or func_or_class.__name__, func_or_class, force=force)
                return func_or_class
            return deco
        self._do_register(name or obj.__name__, obj, force=force)
        return obj

    def closest(self, name, n=3):
        names = list(self._obj_map)
        lower = {k.lower(): k for k in names}
        hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.3)
        return [lower[h] for h in hits]

    def get(self, name):
        if name not in self._obj_map:
            close = self.closest(str(name))
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise KeyError(
                f'"{name}" is not registered in the {self._name} registry{hint} '
                f"(registered: {', '.join(sorted(self._obj_map)) or 'none'})"
            )
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map.keys())

    def __contains__(self, name):
        return name in self._obj_map

    def __repr__(self):
        return f"Registry({self._name}: {sorted(self._obj_map)})"
