"""Training-time calibration regularizers (docs/design.md section 5.1): the :class:`Regularizer`
interface, its registry :data:`REGULARIZERS` (``CALIB.METHOD``) and :func:`apply_regularizers`, the
one call a trainer makes in ``forward_backward``; each configured from its ``CALIB.<NAME>`` node
(a dict with lowercase keys) and computed by :mod:`calibration.losses` (re-exported here).
Imports only torch and ``cpt.calibration.registry``.
"""
from __future__ import annotations

import difflib
import types
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import torch
import torch.nn.functional as F

from .losses import (  # noqa: F401
    DEFAULT_VOCAB_PATH,
    ccr_loss,
    dor_loss,
    load_outlier_vocab,
    logit_range_penalty,
    margin_mean_var,
    mbls_loss,
    select_outliers,
    text_moment_matching,
    zs_norm_logits,
)
from .registry import Registry

_C = TypeVar("_C", bound=type)
_R = TypeVar("_R", bound="type[Regularizer]")


def check_params(kind: str, name: str, defaults: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``{**defaults, **params}``; a key not in ``defaults`` raises a KeyError naming ``CALIB.<NAME>``."""
    unknown = [k for k in params if k not in defaults]
    if unknown:
        raise KeyError(f"{kind} '{name}': unknown parameter(s) {unknown}; "
                       f"expected keys of CALIB.{name.upper()}: {sorted(defaults)}")
    return {**defaults, **params}


# --- the Regularizer interface and its registry ---------------------------
class RegContext(types.SimpleNamespace):
    """The inputs handed to the regularizers, by name (``ClipPromptTrainer.providers``; shapes as in
    :mod:`calibration.losses`: logits/zs_logits/probs/targets ``(N, C)``, labels ``(N,)``, text
    features ``(C, D)``, outlier features ``(K, D)``); an input that was not set reads as None."""

    def __getattr__(self, name: str) -> Any:  # only reached for names that were not set
        if name.startswith("__"):
            raise AttributeError(name)
        return None


class Regularizer:
    """Base class: ``reg(ctx)`` returns the weighted scalar added to the task loss.

    A subclass is registered with :func:`register_regularizer` (which sets ``name``) and declares
    ``needs`` (the :class:`RegContext` inputs it reads; checked against the trainer at build),
    ``defaults`` (lowercase keys of ``CALIB.<NAME>`` -> default; the config node is built from
    them) and ``nonneg`` (the keys that must be numbers >= 0, stored as floats). It implements
    :meth:`components` (named, weighted terms); with ``replaces_task_loss = True`` it provides
    :meth:`task_loss`, used instead of the trainer's. ``last_stats``: extra floats for the log.
    """

    name: str = ""
    needs: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    nonneg: tuple[str, ...] = ()
    replaces_task_loss: bool = False

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = check_params("regularizer", self.name, self.defaults, params)
        self.last_stats: dict[str, float] = {}
        for k in self.nonneg:
            v = self.params[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"CALIB.{self.name.upper()}.{k.upper()} must be a number >= 0, got {v!r}")
            self.params[k] = float(v)
        self._validate()

    def _validate(self) -> None:
        pass

    def _fetch(self, ctx: RegContext) -> dict[str, Any]:
        missing = [f for f in self.needs if getattr(ctx, f, None) is None]
        if missing:
            raise ValueError(f"regularizer '{self.name}' needs {missing} in the RegContext, "
                             f"which the trainer did not provide")
        return {f: getattr(ctx, f) for f in self.needs}

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        """Dict of named weighted loss terms (scalar tensors)."""
        raise NotImplementedError

    def __call__(self, ctx: RegContext) -> torch.Tensor:
        comps = list(self.components(ctx).values())
        if comps:
            return sum(comps[1:], comps[0])
        ref = next((v for v in vars(ctx).values() if isinstance(v, torch.Tensor)), None)
        return ref.new_zeros(()) if ref is not None else torch.zeros(())

    def task_loss(self, ctx: RegContext) -> torch.Tensor:
        raise NotImplementedError(f"regularizer '{self.name}' does not replace the task loss")

    def batch_warning(self, batch_size: int) -> str | None:
        """A one-line warning when training batches of ``batch_size`` samples leave this regularizer
        without effect (the trainer logs it once at build), else None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


REGULARIZERS = Registry("calibration regularizer", case_insensitive=True)


def register_as(registry: Registry, name: str) -> Callable[[_C], _C]:
    """Class decorator: set ``cls.name = name.lower()`` and register the class under it (the
    regularizer and post-hoc registries are case-insensitive)."""

    def deco(cls: _C) -> _C:
        cls.name = name.lower()
        return registry.register(cls, name=cls.name)

    return deco


def lookup(registry: Registry, name: str, what: str) -> Any:
    """``registry.get(name)``; a miss names ``what`` (e.g. ``calibration regularizer ... (CALIB.METHOD)``)
    and the close names."""
    if name not in registry:
        close = difflib.get_close_matches(str(name).lower(), registry.registered_names(), n=3, cutoff=0.4)
        hint = f" Did you mean {close}?" if close else ""
        raise KeyError(f"unknown {what.format(name)}.{hint} Registered: {registry.registered_names()}")
    return registry.get(name)


def register_regularizer(name: str) -> Callable[[_R], _R]:
    """Class decorator: register a :class:`Regularizer` subclass as ``name`` (``CALIB.METHOD``)."""
    return register_as(REGULARIZERS, name)


def get_regularizer(name: str) -> type[Regularizer]:
    """The registered class for ``name`` (case-insensitive); a miss lists close names."""
    return lookup(REGULARIZERS, name, "calibration regularizer '{}' (CALIB.METHOD)")


def _params_for(name: str, params_by_name: Mapping[str, Any] | None) -> dict[str, Any]:
    for key, val in dict(params_by_name or {}).items():
        if str(key).lower() == name and isinstance(val, dict):
            return {str(k).lower(): v for k, v in dict(val).items()}
    return {}


def build_regularizers(names: str | Iterable[str],
                       params_by_name: Mapping[str, Any] | None = None) -> list[Regularizer]:
    """Instantiate the regularizers ``names`` (``CALIB.METHOD``); ``params_by_name``: name ->
    parameter dict, matched case-insensitively (``{"tcpt": {"alpha": .1}}`` or ``cfg.CALIB`` itself).
    Duplicates and more than one task-loss replacer are rejected."""
    if isinstance(names, str):
        names = [names]
    regs, seen = [], set()
    for n in names:
        cls = get_regularizer(n)
        if cls.name in seen:
            raise ValueError(f"regularizer '{cls.name}' listed twice in CALIB.METHOD")
        seen.add(cls.name)
        regs.append(cls(**_params_for(cls.name, params_by_name)))
    _task_loss_replacer(regs)
    return regs


def _task_loss_replacer(regularizers: Sequence[Regularizer]) -> Regularizer | None:
    replacing = [r for r in regularizers if r.replaces_task_loss]
    if len(replacing) > 1:
        raise ValueError(f"more than one regularizer replaces the task loss: {[r.name for r in replacing]}")
    return replacing[0] if replacing else None


def check_requirements(regularizers: Iterable[Regularizer], available: Iterable[str], trainer_name: str) -> None:
    """Raise a ValueError naming the trainer, each regularizer and the inputs in its ``needs``
    that are not ``available`` (the names the trainer provides)."""
    available = set(available)
    problems = [f"regularizer '{r.name}' needs {[f for f in r.needs if f not in available]}"
                for r in regularizers if not set(r.needs) <= available]
    if problems:
        raise ValueError(f"trainer '{trainer_name}' cannot provide the inputs required by the configured "
                         f"calibration regularizers (CALIB.METHOD): " + "; ".join(problems)
                         + f". The trainer provides {sorted(available)}.")


def apply_regularizers(regularizers: Sequence[Regularizer], ctx: RegContext,
                       task_loss: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``(total, logs)``: ``total = task + every regularizer's weighted terms``, ``task`` being
    ``task_loss`` or the replacing regularizer's ``task_loss(ctx)`` (ZS-Norm). ``logs`` (floats):
    ``loss``, ``loss_task``, each named term and each ``last_stats`` entry."""
    replacer = _task_loss_replacer(regularizers)
    if replacer is None and task_loss is None:
        raise ValueError("apply_regularizers needs task_loss unless a regularizer replaces it")
    total = task = task_loss if replacer is None else replacer.task_loss(ctx)
    logs = {"loss_task": float(task.detach())}
    for r in regularizers:
        for key, val in r.components(ctx).items():
            total = total + val
            logs[key] = float(val.detach())
        logs.update(r.last_stats)
    logs["loss"] = float(total.detach())
    return total, logs


@register_regularizer("tcpt")
class TCPT(Regularizer):
    """TCPT: margin mean/variance term plus ``lambda`` x text moment matching."""

    needs = ("logits", "labels", "text_features", "zs_text_features")
    defaults = {"alpha": 0.1, "beta": 0.01, "lambda": 5.0}
    nonneg = ("alpha", "beta", "lambda")

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        d = self._fetch(ctx)
        margin = margin_mean_var(d["logits"], d["labels"], self.params["alpha"], self.params["beta"])
        moment = text_moment_matching(d["text_features"], d["zs_text_features"])
        return {"tcpt_margin": margin, "tcpt_moment": self.params["lambda"] * moment}


@register_regularizer("ccr")
class CCR(Regularizer):
    """CCR: ``lambda * ccr_loss`` (``reduction`` 'sum' as :func:`ccr_loss` returns it, or 'mean'
    over the defined entries)."""

    needs = ("probs", "targets", "text_similarity")
    defaults = {"lambda": 1.0, "reduction": "mean"}
    nonneg = ("lambda",)

    def _validate(self) -> None:
        red = str(self.params["reduction"]).lower()
        if red not in ("sum", "mean"):
            raise ValueError(f"CALIB.CCR.REDUCTION must be 'sum' or 'mean', got {red!r}")
        self.params["reduction"] = red

    def batch_warning(self, batch_size: int) -> str | None:
        """Below 3 samples a batch gives no gradient: a pair (i, j) is defined by at least 2 samples
        with both classes inactive, and the correlation of exactly 2 samples is +1 or -1."""
        if batch_size >= 3:
            return None
        why = ("defines a pair only from 2 such samples, so every step adds 0" if batch_size < 2 else
               "over 2 samples that correlation is always +1 or -1, so the term is a constant")
        return (f"CALIB.METHOD ccr at DATALOADER.TRAIN_X.BATCH_SIZE {batch_size} does nothing: CCR correlates "
                f"two classes' probabilities over the samples of a batch where both are inactive (label 0) and "
                f"{why} without gradient; use a batch size of 3 or more")

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        d = self._fetch(ctx)
        raw, n = ccr_loss(d["probs"], d["targets"], d["text_similarity"], return_count=True)
        val = raw / n if self.params["reduction"] == "mean" else raw
        self.last_stats = {"ccr_raw_sum": float(raw.detach()), "ccr_defined": float(n)}
        return {"ccr": self.params["lambda"] * val}


@register_regularizer("mbls")
class MbLS(Regularizer):
    """Margin-based label smoothing (:func:`mbls_loss`)."""

    needs = ("logits",)
    defaults = {"margin": 10.0, "alpha": 0.1}
    nonneg = ("margin", "alpha")

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        d = self._fetch(ctx)
        return {"mbls": mbls_loss(d["logits"], self.params["margin"], self.params["alpha"])}


@register_regularizer("zs_norm")
class ZSNorm(Regularizer):
    """ZS-Norm: the task loss becomes CE on :func:`zs_norm_logits`; adds no term (``enabled``
    False: a no-op)."""

    needs = ("logits", "labels", "zs_logits")
    defaults = {"enabled": True}

    def _validate(self) -> None:
        self.params["enabled"] = bool(self.params["enabled"])
        self.replaces_task_loss = self.params["enabled"]

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        return {}

    def task_loss(self, ctx: RegContext) -> torch.Tensor:
        d = self._fetch(ctx)
        z = zs_norm_logits(d["logits"], d["zs_logits"])
        return F.cross_entropy(z, d["labels"].long())


@register_regularizer("penalty")
class Penalty(Regularizer):
    """Logit-range penalty (:func:`logit_range_penalty`) with ``weight``."""

    needs = ("logits", "zs_logits")
    defaults = {"weight": 10.0}
    nonneg = ("weight",)

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        d = self._fetch(ctx)
        return {"penalty": logit_range_penalty(d["logits"], d["zs_logits"], self.params["weight"])}


@register_regularizer("dor")
class DOR(Regularizer):
    """DOR: ``lambda * dor_loss``. ``vocab`` (a word file; empty: the one shipped in
    ``calibration/data/``) and ``num_outliers`` drive the :class:`OutlierSampler` of the trainer,
    which provides the outlier inputs."""

    needs = ("outlier_text_features", "outlier_zs_text_features")
    defaults = {"lambda": 2.0, "vocab": "", "num_outliers": 64}
    nonneg = ("lambda",)

    def _validate(self) -> None:
        n = self.params["num_outliers"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"CALIB.DOR.NUM_OUTLIERS must be an int >= 1, got {n!r}")

    def components(self, ctx: RegContext) -> dict[str, torch.Tensor]:
        d = self._fetch(ctx)
        loss = dor_loss(d["outlier_text_features"], d["outlier_zs_text_features"])
        return {"dor": self.params["lambda"] * loss}


class OutlierSampler:
    """DOR's outlier words of one run: the vocabulary (``params["vocab"]``, the training class names
    excluded), their zero-shot text features ``zs`` ``(V, D)`` (``encode(words)``), and each epoch's
    ``num_outliers`` (:meth:`draw`): the nearest to the classes among a pool of four times as many,
    drawn with a generator seeded by (seed, epoch)."""

    def __init__(self, params, classnames, encode):
        self.n = params["num_outliers"]
        self.words = load_outlier_vocab(params["vocab"] or None, exclude=classnames)
        self.zs = encode(self.words)
        self.index = self.epoch = None

    def draw(self, class_zs, seed, epoch):
        """Indices into ``words`` of ``epoch``'s outliers (drawn at the epoch's first call)."""
        if self.epoch != epoch:
            g = torch.Generator().manual_seed(max(seed, 0) * 100003 + epoch)
            self.index = select_outliers(self.zs, class_zs, self.n, pool=4 * self.n, generator=g).cpu()
            self.epoch = epoch
        return self.index
