"""Post-hoc calibrators applied to logits at test time (docs/design.md section 5.2): the functional
core and the registry :data:`POSTHOC` (``CALIB.POSTHOC``) of :class:`PosthocCalibrator` classes,
their JSON state saved atomically (:meth:`PosthocCalibrator.save`, :func:`load_posthoc`). None is
fitted on test labels.

Imports only torch/numpy/scipy and the calibration package's ``registry``/``fileio`` (no engine,
trainer or dataset).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Sequence, TypeVar, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from .fileio import atomic_write_json
from .losses import zs_norm_logits
from .registry import Registry
from .regularizers import check_params, lookup, register_as

T_MIN, T_MAX = 1e-2, 1e2

Array = Union[torch.Tensor, np.ndarray]  # logits, labels, features: torch or numpy
_P = TypeVar("_P", bound="type[PosthocCalibrator]")


def _np64(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    z = logits / t
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def fit_temperature(logits: Array, labels: Array, t_min: float = T_MIN, t_max: float = T_MAX) -> float:
    """The temperature ``T`` (float) minimising the mean NLL of ``softmax(logits / T)``.

    logits ``(N, C)`` (torch or numpy), labels ``(N,)``. Bounded Brent search on ``log T`` over
    ``[t_min, t_max]`` in float64 (the NLL is convex in ``1/T``: one minimum; a perfectly
    separated split runs to ``t_min``).
    """
    z = _np64(logits)
    y = _np64(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"fit_temperature: logits {z.shape} and labels {y.shape} do not match")
    if not (0 < t_min < t_max):
        raise ValueError("fit_temperature needs 0 < t_min < t_max")
    lo, hi = math.log(t_min), math.log(t_max)
    res = minimize_scalar(lambda s: _nll(z, y, math.exp(s)), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-7, "maxiter": 500})
    # The bounded method never evaluates the end points; compare with them (the first minimum wins).
    best_s = min([float(res.x), lo, 0.0, hi], key=lambda s: _nll(z, y, math.exp(s)))
    return float(math.exp(best_s))


def apply_temperature(logits: Array, t: float) -> Array:
    """``logits / T`` (torch or numpy)."""
    if not t > 0:
        raise ValueError(f"temperature must be > 0, got {t}")
    return logits / t


def _normalize(x: Any) -> torch.Tensor:
    x = x.detach().double() if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)
    return F.normalize(x, dim=-1)


def dac_factors(new_zs: Array, base_zs: Array, new_tuned: Array, base_tuned: Array, k: int = 5,
                base_threshold: float = 0.05) -> torch.Tensor:
    """DAC scaling factor of each test class, a tensor ``(C_test,)`` (float32 unless the tuned
    features are float64) on the device of ``new_tuned``.

    Inputs: text features (L2-normalised here) of the test ``(C_test, D)`` and base ``(C_base, D)``
    classes under the zero-shot and the tuned prompt. ``c_i = exp(dbar_zs(i) - dbar_tuned(i))``,
    ``dbar`` the mean of the ``k`` (capped at ``C_base``) smallest L2 distances to the base
    classes in that space; ``c_i = 1`` when the nearest tuned distance is below
    ``base_threshold`` (a base class). Golden: base at 0 and 90 degrees, new class at 45 degrees
    zero-shot and 30 degrees tuned, k = 2: ``c = 1.006569``.
    """
    nz, bz = _normalize(new_zs), _normalize(base_zs)
    nt, bt = _normalize(new_tuned), _normalize(base_tuned)
    if nz.shape[0] != nt.shape[0] or bz.shape[0] != bt.shape[0]:
        raise ValueError("dac_factors: zero-shot and tuned features must list the same classes")
    if bz.shape[0] == 0:
        raise ValueError("dac_factors: no base-class features")
    kk = max(1, min(int(k), bz.shape[0]))
    d_zs, d_tu = torch.cdist(nz, bz), torch.cdist(nt, bt)
    dbar_zs, dbar_tu = (d.topk(kk, dim=1, largest=False).values.mean(1) for d in (d_zs, d_tu))
    c = torch.exp(dbar_zs - dbar_tu)
    c = torch.where(d_tu.min(dim=1).values < base_threshold, torch.ones_like(c), c)  # a base class
    double = isinstance(new_tuned, torch.Tensor) and new_tuned.dtype == torch.float64
    out_dtype = torch.float64 if double else torch.float32
    device = new_tuned.device if isinstance(new_tuned, torch.Tensor) else "cpu"
    return c.to(device=device, dtype=out_dtype)


def apply_dac(logits: torch.Tensor, factors: Array | Sequence[float]) -> torch.Tensor:
    """Each row of ``logits (N, C)`` times the (positive) factor of its predicted class; the
    prediction (arg-max, first on ties) is kept: a scaled top logit that rounding ties with a
    neighbour is raised by one ulp."""
    f = torch.as_tensor(factors, device=logits.device)
    if f.dim() != 1 or f.shape[0] != logits.shape[1]:
        raise ValueError(f"apply_dac: {tuple(f.shape)} factors for logits with {logits.shape[1]} classes")
    if (f <= 0).any():
        raise ValueError("apply_dac: factors must be > 0")
    pred = logits.argmax(dim=1)
    out = logits * f.to(logits.dtype)[pred].unsqueeze(1)
    moved = out.argmax(dim=1) != pred
    if moved.any():
        rows = moved.nonzero().squeeze(1)
        top = out[rows, pred[rows]]
        out[rows, pred[rows]] = torch.nextafter(top, torch.full_like(top, float("inf")))
    return out


def sals_logits(logits: torch.Tensor, zs_logits: torch.Tensor) -> torch.Tensor:
    """SaLS: the ZS-Norm rescaling (:func:`~calibration.losses.zs_norm_logits`) at test time."""
    return zs_norm_logits(logits, zs_logits)


# --- the registry of calibrators (with their saved state) ------------------
POSTHOC = Registry("post-hoc calibrator", case_insensitive=True)


def register_posthoc(name: str) -> Callable[[_P], _P]:
    """Class decorator: register a :class:`PosthocCalibrator` subclass as ``name`` (``CALIB.POSTHOC``)."""
    return register_as(POSTHOC, name)


def posthoc_names() -> list[str]:
    """Names accepted by ``CALIB.POSTHOC`` (plugins' included)."""
    return POSTHOC.registered_names()


class PosthocCalibrator:
    """Base post-hoc calibrator: ``fit(**inputs)``, then ``apply(logits, **inputs)``.

    A subclass is registered with :func:`register_posthoc` (which sets ``name``) and declares
    ``needs`` (the inputs beyond ``logits``; provided by ``trainers/posthoc.py``, checked at
    build), ``defaults`` (lowercase keys of ``CALIB.<NAME>`` -> default) and ``saved``: True when
    the state is fitted once in the training run and saved beside the checkpoint
    (``posthoc.json``), False when fitted at every evaluation (or stateless). ``state`` is a
    JSON-serialisable dict; ``fitted`` is True once it holds ``state_key`` (always, without one).
    """

    name: str = ""
    needs: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    saved: bool = False
    state_key: str | None = None

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = check_params("post-hoc calibrator", self.name, self.defaults, params)
        self.state: dict[str, Any] = {}

    @property
    def fitted(self) -> bool:
        return self.state_key is None or self.state_key in self.state

    def _check_fitted(self, what: str) -> None:
        if not self.fitted:
            raise RuntimeError(f"{what} applied before fit() / load")

    def fit(self, **inputs: Any) -> PosthocCalibrator:
        return self

    def apply(self, logits: torch.Tensor, **inputs: Any) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, **inputs: Any) -> torch.Tensor:
        return self.apply(logits, **inputs)

    def describe(self) -> str:
        """One line for the log: what was applied."""
        return self.name

    def summary(self) -> dict[str, Any]:
        """The state as reported in ``results.json`` (``posthoc_state.state``)."""
        return self.state

    def _need(self, inputs: dict[str, Any], what: str) -> None:
        missing = [k for k in self.needs if inputs.get(k) is None]
        if missing:
            raise ValueError(f"post-hoc calibrator '{self.name}' {what} needs {missing}")

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``{"name", "params", "state", "version"}`` as JSON atomically (:func:`load_posthoc`)."""
        return atomic_write_json({"name": self.name, "params": self.params, "state": self.state, "version": 1},
                                 path)


@register_posthoc("none")
class NoPosthoc(PosthocCalibrator):
    """Identity."""

    def apply(self, logits: torch.Tensor, **inputs: Any) -> torch.Tensor:
        return logits


@register_posthoc("temperature")
class TemperatureScaling(PosthocCalibrator):
    """``fit(val_logits=, val_labels=)`` (base-class validation split of the training run, saved);
    ``apply(logits)``."""

    needs = ("val_logits", "val_labels")
    saved = True
    state_key = "temperature"

    def fit(self, **inputs: Any) -> PosthocCalibrator:
        self._need(inputs, "fit")
        self.state = {"temperature": fit_temperature(inputs["val_logits"], inputs["val_labels"])}
        return self

    def apply(self, logits: torch.Tensor, **inputs: Any) -> torch.Tensor:
        self._check_fitted("temperature scaling")
        return apply_temperature(logits, self.state["temperature"])

    def describe(self) -> str:
        return f"temperature T={self.state['temperature']:.4f}"


@register_posthoc("dac")
class DAC(PosthocCalibrator):
    """``fit(new_zs=, base_zs=, new_tuned=, base_tuned=)`` gives per-test-class factors;
    ``apply(logits)`` with logits over the same test classes. Params ``k`` (neighbours per class),
    ``base_threshold`` (CALIB.DAC.K / BASE_THRESHOLD)."""

    needs = ("new_zs", "base_zs", "new_tuned", "base_tuned")
    defaults = {"k": 5, "base_threshold": 0.05}
    state_key = "factors"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.params = {"k": int(self.params["k"]), "base_threshold": float(self.params["base_threshold"])}

    def fit(self, **inputs: Any) -> PosthocCalibrator:
        self._need(inputs, "fit")
        c = dac_factors(inputs["new_zs"], inputs["base_zs"], inputs["new_tuned"],
                        inputs["base_tuned"], k=self.params["k"],
                        base_threshold=self.params["base_threshold"])
        self.state = {"factors": [float(v) for v in c.double().cpu().tolist()]}
        return self

    def apply(self, logits: torch.Tensor, **inputs: Any) -> torch.Tensor:
        self._check_fitted("DAC")
        return apply_dac(logits, torch.tensor(self.state["factors"], dtype=torch.float64))

    def describe(self) -> str:
        f = torch.tensor(self.state["factors"])
        return f"DAC factors min {f.min():.3f} mean {f.mean():.3f} max {f.max():.3f} over {len(f)} classes"

    def summary(self) -> dict[str, Any]:
        f = self.state.get("factors")
        return {"factor_min": min(f), "factor_mean": sum(f) / len(f), "factor_max": max(f)} if f else self.state


@register_posthoc("sals")
class SaLS(PosthocCalibrator):
    """Stateless: ``apply(logits, zs_logits=)``."""

    needs = ("zs_logits",)

    def apply(self, logits: torch.Tensor, **inputs: Any) -> torch.Tensor:
        self._need(inputs, "apply")
        return sals_logits(logits, inputs["zs_logits"])

    def describe(self) -> str:
        return "SaLS (zero-shot logit scale)"


def build_posthoc(name: str | None, **params: Any) -> PosthocCalibrator:
    """The calibrator for ``CALIB.POSTHOC`` (case-insensitive; '' means none);
    a miss lists close names. ``params``: e.g. ``k``, ``base_threshold`` for DAC."""
    return lookup(POSTHOC, name or "none", "post-hoc calibrator '{}' (CALIB.POSTHOC)")(**params)


def load_posthoc(path: str | os.PathLike[str]) -> PosthocCalibrator:
    """Rebuild a calibrator from a file written by :meth:`PosthocCalibrator.save`."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if not isinstance(d, dict) or "name" not in d or "state" not in d:
        raise ValueError(f"{path}: not a post-hoc calibrator state file (needs 'name' and 'state')")
    cal = build_posthoc(d["name"], **d.get("params", {}))
    cal.state = d["state"]
    return cal
