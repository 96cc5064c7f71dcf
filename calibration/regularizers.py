"""Training-time calibration regularizers (docs/design.md section 5.1).

Two layers:

* a functional core of pure, differentiable torch functions
  (:func:`margin_mean_var`, :func:`text_moment_matching`, :func:`ccr_loss`,
  :func:`mbls_loss`, :func:`zs_norm_logits`, :func:`logit_range_penalty`,
  :func:`dor_loss`); none of them applies a ``lambda`` weight unless its
  signature says so;
* a registry of :class:`Regularizer` classes built on it (names ``tcpt``,
  ``ccr``, ``mbls``, ``zs_norm``, ``penalty``, ``dor``), configured from the
  ``CALIB.<NAME>`` config nodes passed as plain dicts with lowercase keys, and
  :func:`apply_regularizers`, the one call a trainer makes in
  ``forward_backward``.

Conventions: ``logits`` are the *scaled* logits the task loss sees
(``logit_scale * cos``), shape ``(N, C)``; ``labels`` are class indices
``(N,)``; multi-label ``targets`` are ``(N, C)`` with 1 positive, 0 negative,
-1 unknown/ignored; text features are ``(C, D)``, one row per class.
Half-precision inputs are computed in float32 (float64 stays float64).

This module imports only torch and ``cpt.registry`` (no engine, trainer or dataset module).
"""
import difflib
import os
import types

import torch
import torch.nn.functional as F

from cpt.registry import Registry

def _float(x):
    """Upcast half/bfloat16 (and integer) tensors to float32; keep float32/64."""
    if not torch.is_floating_point(x) or x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _check_2d(name, x):
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(x.shape)}")


def _pair(name_a, a, name_b, b):
    """``a`` and ``b`` as float tensors of ``a``'s dtype; ``a`` must be 2-D, ``b`` of its shape."""
    a = _float(a)
    b = _float(b).to(a.dtype)
    _check_2d(name_a, a)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} differ")
    return a, b


def _row_range(x):
    return x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values


def check_params(kind, name, defaults, params):
    """``{**defaults, **params}``; a key not in ``defaults`` raises a KeyError naming ``CALIB.<NAME>``."""
    unknown = [k for k in params if k not in defaults]
    if unknown:
        raise KeyError(f"{kind} '{name}': unknown parameter(s) {unknown}; "
                       f"expected keys of CALIB.{name.upper()}: {sorted(defaults)}")
    return {**defaults, **params}


# ---------------------------------------------------------------------------
# Functional core
# ---------------------------------------------------------------------------


def margin_mean_var(logits, labels, alpha=0.1, beta=0.01):
    """TCPT margin term: ``-alpha * mean(m) + beta * Var(m)``.

    ``m_i = z_{i,y_i} - max_{j != y_i} z_{i,j}`` on the scaled logits ``z``
    ``(N, C)``, ``C >= 2``; ``Var`` is the biased variance ``mean((m - mean(m))^2)``
    (0 for a batch of one). Example: logits ``[[2,1,0],[0,3,1],[1,1,4]]``,
    labels ``[0,1,0]`` give ``m = [1,2,-3]`` and ``0.046667``.
    """
    z = _float(logits)
    _check_2d("logits", z)
    if z.shape[1] < 2:
        raise ValueError("margin_mean_var needs at least 2 classes")
    y = labels.long().view(-1, 1)
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} rows, logits {z.shape[0]}")
    true = z.gather(1, y).squeeze(1)
    others = z.scatter(1, y, float("-inf"))
    m = true - others.max(dim=1).values
    mean = m.mean()
    var = ((m - mean) ** 2).mean()
    return -alpha * mean + beta * var


def text_moment_matching(text_features, zs_text_features):
    """TCPT text-space moment matching, without lambda.

    ``||mu(T) - mu(T0)||^2 + ||Sigma(T) - Sigma(T0)||_F^2`` where ``T``
    (learned prompt) and ``T0`` (hand-crafted zero-shot prompt) are ``(C, D)``
    class text features, **L2-normalised row-wise inside this function**,
    ``mu`` the mean over classes and ``Sigma`` the biased ``D x D`` covariance
    over classes (divided by ``C``). Example: ``T = I_2``,
    ``T0 = [[.6,.8],[.8,.6]]`` give ``0.3104``. Pass ``T0`` without grad.
    """
    t, t0 = _pair("text_features", text_features, "zs_text_features", zs_text_features)
    t, t0 = F.normalize(t, dim=-1), F.normalize(t0, dim=-1)
    c = t.shape[0]
    mu, mu0 = t.mean(0), t0.mean(0)
    tc, t0c = t - mu, t0 - mu0
    sigma = tc.t() @ tc / c
    sigma0 = t0c.t() @ t0c / c
    return ((mu - mu0) ** 2).sum() + ((sigma - sigma0) ** 2).sum()


def ccr_loss(probs, targets, text_similarity, return_count=False, rel_tol=1e-5):
    """CCR: squared Frobenius distance between predicted and text correlation.

    The project's estimator (the paper publishes none). For classes ``i, j``
    let the joint mask be the samples with ``y_i = 0`` **and** ``y_j = 0``
    (-1 = unknown counts as not inactive). ``Corr_pred(i, j)`` is the Pearson
    correlation of ``p_i`` and ``p_j`` over that mask, with means, covariance
    and variances all taken over the mask (population form; the ``1/n``
    cancels). An off-diagonal entry is *defined* when the mask holds at least
    2 samples and both variances are non-zero, where a variance counts as
    zero if ``std <= rel_tol * rms`` of that column over the mask (constant up
    to rounding). Undefined entries drop out: they add nothing, produce no
    NaN/inf and pass no gradient. Diagonal entries are always defined with
    ``Corr = 1`` and compared with ``text_similarity``'s diagonal (zero for a
    cosine matrix).

    Returns ``sum_{defined (i, j)} (Corr_pred(i, j) - S(i, j))^2`` over the full
    ``C x C`` matrix (both ``(i, j)`` and ``(j, i)``), without lambda, in the
    dtype of ``probs`` (computed in float64 internally). With
    ``return_count=True`` returns ``(loss, n_defined)`` where ``n_defined`` is
    the int number of defined entries (ordered pairs plus the ``C`` diagonal
    entries); ``loss / n_defined`` is the mean over the entries that were used.

    probs: ``(N, C)`` probabilities; targets: ``(N, C)`` in {1, 0, -1};
    text_similarity: ``(C, C)``, e.g. cosine similarities of the zero-shot text
    features.
    """
    p_in = _float(probs)
    _check_2d("probs", p_in)
    n_samples, c = p_in.shape
    if tuple(targets.shape) != (n_samples, c):
        raise ValueError(f"targets {tuple(targets.shape)} must match probs {tuple(p_in.shape)}")
    if tuple(text_similarity.shape) != (c, c):
        raise ValueError(f"text_similarity {tuple(text_similarity.shape)} must be ({c}, {c})")
    p = p_in.double()
    s = text_similarity.to(device=p.device, dtype=torch.float64)
    m = (targets == 0).to(device=p.device, dtype=torch.float64)

    x = p * m  # probabilities on inactive entries, 0 elsewhere
    count = m.t() @ m  # [i, j] = size of the joint mask
    sum_i = x.t() @ m  # [i, j] = sum of p_i over the joint mask
    sq_i = (x * x).t() @ m  # [i, j] = sum of p_i^2 over the joint mask
    cross = x.t() @ x  # [i, j] = sum of p_i p_j over the joint mask

    enough = count >= 2
    n_safe = torch.where(enough, count, torch.ones_like(count))
    mean_i = sum_i / n_safe
    mean_j = mean_i.t()
    msq_i = sq_i / n_safe
    msq_j = msq_i.t()
    var_i = msq_i - mean_i * mean_i
    var_j = var_i.t()
    cov = cross / n_safe - mean_i * mean_j

    tol2 = float(rel_tol) ** 2
    with torch.no_grad():
        ok_i = var_i > tol2 * msq_i
        ok_j = var_j > tol2 * msq_j
        eye = torch.eye(c, dtype=torch.bool, device=p.device)
        defined = enough & ok_i & ok_j & ~eye
        used = defined | eye
    one = torch.ones_like(var_i)
    vi = torch.where(defined, var_i, one)
    vj = torch.where(defined, var_j, one)
    corr = torch.where(defined, cov / torch.sqrt(vi * vj), torch.zeros_like(cov))
    corr = torch.where(eye, one, corr)
    diff = torch.where(used, corr - s, torch.zeros_like(corr))
    loss = (diff * diff).sum().to(p_in.dtype)
    if return_count:
        return loss, int(used.sum().item())
    return loss


def mbls_loss(logits, margin=10.0, alpha=0.1):
    """Margin-based label smoothing: ``alpha * mean_{i,j} relu(max_k z_ik - z_ij - margin)``.

    The mean runs over all ``N x C`` entries (the arg-max entry contributes 0).
    """
    z = _float(logits)
    _check_2d("logits", z)
    zmax = z.max(dim=1, keepdim=True).values
    return alpha * F.relu(zmax - z - margin).mean()


def zs_norm_logits(logits, zs_logits, eps=1e-12):
    """ZS-Norm / SaLS: rescale each sample's logits into its zero-shot logit range.

    Per row: ``z' = min(z_zs) + (z - min z) * (max z_zs - min z_zs) / (max z - min z)``,
    so the row's minimum and maximum land on the zero-shot minimum and maximum
    and the order is kept. A constant row maps to ``min(z_zs)`` (the range is
    clamped at ``eps``). Example: ``z = [4,2,0]``, ``z_zs = [30,25,20]`` give
    ``[30,25,20]``.
    """
    z, zs = _pair("logits", logits, "zs_logits", zs_logits)
    (zmin, zmax), (smin, smax) = _row_range(z), _row_range(zs)
    return smin + (z - zmin) * (smax - smin) / (zmax - zmin).clamp_min(eps)


def logit_range_penalty(logits, zs_logits, weight=10.0):
    """Logit-range penalty: ``weight * (mean relu(z - max z_zs) + mean relu(min z_zs - z))``.

    ``max z_zs`` / ``min z_zs`` are taken per sample (row) of the zero-shot
    logits; both means run over all ``N x C`` entries. Example:
    ``z = [35,22,10]``, ``z_zs = [30,25,20]``: bracket ``5.0``, with weight 10 ``50.0``.
    """
    z, zs = _pair("logits", logits, "zs_logits", zs_logits)
    smin, smax = _row_range(zs)
    return weight * (F.relu(z - smax).mean() + F.relu(smin - z).mean())


def dor_loss(outlier_text_features, outlier_zs_text_features):
    """DOR: ``1 - mean_k cos(t_k, t0_k)`` over outlier words, without lambda.

    ``t_k`` is word k's text feature under the learned prompt, ``t0_k`` under
    the zero-shot prompt; both ``(K, D)``. Zero outliers give 0.
    """
    t, t0 = _pair("outlier_text_features", outlier_text_features, "outlier_zs_text_features",
                  outlier_zs_text_features)
    if t.shape[0] == 0:
        return t.sum() * 0.0
    cos = (F.normalize(t, dim=-1) * F.normalize(t0, dim=-1)).sum(-1)
    return 1.0 - cos.mean()


# ---------------------------------------------------------------------------
# Regularizer interface and registry
# ---------------------------------------------------------------------------


class RegContext(types.SimpleNamespace):
    """The inputs handed to the regularizers, by name; an input that was not set reads as None.

    Names the trainers provide (``ClipPromptTrainer.providers``): logits: scaled logits
    ``(N, C)``; labels: class indices ``(N,)``; probs / targets: multi-label probabilities and
    targets ``(N, C)`` (1 / 0 / -1); text_features: learned text features of the training classes
    ``(C, D)``; zs_text_features: their zero-shot counterparts; zs_logits: zero-shot logits of the
    batch ``(N, C)``; image_features ``(N, D)``; logit_scale (exp'd scalar); text_similarity
    ``(C, C)``; outlier_text_features / outlier_zs_text_features ``(K, D)`` (DOR).
    """

    def __getattr__(self, name):  # only reached for names that were not set
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def available(self):
        """Names of the inputs that are set (not None)."""
        return {k for k, v in vars(self).items() if v is not None}


class Regularizer:
    """Base class: ``reg(ctx)`` returns the weighted scalar added to the task loss.

    A subclass is registered with :func:`register_regularizer` (which sets ``name``) and declares
    ``needs`` (the input names it reads from the :class:`RegContext`; the trainer must provide
    each, checked at build) and ``defaults`` (lowercase keys of ``CALIB.<NAME>`` -> default value;
    the config's ``CALIB.<NAME>`` node is built from them, ``engine/config.py``). It implements
    :meth:`components` (named, weighted terms). A regularizer with ``replaces_task_loss = True``
    provides :meth:`task_loss`, used by :func:`apply_regularizers` instead of the trainer's task
    loss. After a call ``last_stats`` holds extra floats for logging.
    """

    name = ""
    needs = ()
    defaults = {}
    replaces_task_loss = False

    def __init__(self, **params):
        self.params = check_params("regularizer", self.name, self.defaults, params)
        self.last_stats = {}
        self._validate()

    def _validate(self):
        pass

    def _fetch(self, ctx):
        missing = [f for f in self.needs if getattr(ctx, f, None) is None]
        if missing:
            raise ValueError(
                f"regularizer '{self.name}' needs {missing} in the RegContext, "
                f"which the trainer did not provide"
            )
        return {f: getattr(ctx, f) for f in self.needs}

    def components(self, ctx):
        """Dict of named weighted loss terms (scalar tensors)."""
        raise NotImplementedError

    def __call__(self, ctx):
        comps = list(self.components(ctx).values())
        if comps:
            return sum(comps[1:], comps[0])
        ref = next((v for v in vars(ctx).values() if isinstance(v, torch.Tensor)), None)
        return ref.new_zeros(()) if ref is not None else torch.zeros(())

    def task_loss(self, ctx):
        raise NotImplementedError(f"regularizer '{self.name}' does not replace the task loss")

    def __repr__(self):
        return f"{type(self).__name__}({self.params})"


REGULARIZERS = Registry("calibration regularizer", case_insensitive=True)


def register_as(registry, name):
    """Class decorator: set ``cls.name = name.lower()`` and register the class under it (the
    regularizer and post-hoc registries are case-insensitive)."""

    def deco(cls):
        cls.name = name.lower()
        return registry.register(cls, name=cls.name)

    return deco


def lookup(registry, name, what):
    """``registry.get(name)``; a miss names ``what`` (e.g. ``calibration regularizer ... (CALIB.METHOD)``)
    and the close names."""
    if name not in registry:
        close = difflib.get_close_matches(str(name).lower(), registry.registered_names(), n=3, cutoff=0.4)
        hint = f" Did you mean {close}?" if close else ""
        raise KeyError(f"unknown {what.format(name)}.{hint} Registered: {registry.registered_names()}")
    return registry.get(name)


def register_regularizer(name):
    """Class decorator: register a :class:`Regularizer` subclass as ``name`` (``CALIB.METHOD``)."""
    return register_as(REGULARIZERS, name)


def get_regularizer(name):
    """The registered class for ``name`` (case-insensitive); a miss lists close names."""
    return lookup(REGULARIZERS, name, "calibration regularizer '{}' (CALIB.METHOD)")


def _params_for(name, params_by_name):
    for key, val in dict(params_by_name or {}).items():
        if str(key).lower() == name and isinstance(val, dict):
            return {str(k).lower(): v for k, v in dict(val).items()}
    return {}


def build_regularizers(names, params_by_name=None):
    """Instantiate the regularizers listed in ``names`` (``CALIB.METHOD``).

    ``params_by_name`` maps a regularizer name to its parameter dict, i.e.
    ``CALIB.<NAME>`` as a plain dict; names and keys are matched
    case-insensitively, so ``{"tcpt": {"alpha": .1}}`` and the ``cfg.CALIB``
    node itself both work. Duplicates and more than one task-loss replacer are
    rejected.
    """
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


def _task_loss_replacer(regularizers):
    replacing = [r for r in regularizers if r.replaces_task_loss]
    if len(replacing) > 1:
        raise ValueError(f"more than one regularizer replaces the task loss: {[r.name for r in replacing]}")
    return replacing[0] if replacing else None


def check_requirements(regularizers, available, trainer_name):
    """Raise ValueError if ``trainer_name`` cannot supply a declared input.

    ``available``: the input names the trainer provides. The message
    names the trainer, each regularizer and its missing inputs.
    """
    available = set(available)
    problems = [f"regularizer '{r.name}' needs {[f for f in r.needs if f not in available]}"
                for r in regularizers if not set(r.needs) <= available]
    if problems:
        raise ValueError(
            f"trainer '{trainer_name}' cannot provide the inputs required by the configured "
            f"calibration regularizers (CALIB.METHOD): " + "; ".join(problems)
            + f". The trainer provides {sorted(available)}."
        )


def apply_regularizers(regularizers, ctx, task_loss=None):
    """Total loss and a log dict: the one call trainers make in ``forward_backward``.

    ``total = task + sum of every regularizer's weighted terms``, where
    ``task`` is ``task_loss`` or, if a regularizer replaces the task loss
    (ZS-Norm), that regularizer's ``task_loss(ctx)``. The dict holds floats:
    ``loss`` (total), ``loss_task``, each named term and each ``last_stats``
    entry.
    """
    replacer = _task_loss_replacer(regularizers)
    if replacer is not None:
        task = replacer.task_loss(ctx)
    elif task_loss is None:
        raise ValueError("apply_regularizers needs task_loss unless a regularizer replaces it")
    else:
        task = task_loss
    total = task
    logs = {"loss_task": float(task.detach())}
    for r in regularizers:
        for key, val in r.components(ctx).items():
            total = total + val
            logs[key] = float(val.detach())
        logs.update(r.last_stats)
    logs["loss"] = float(total.detach())
    return total, logs


def _nonneg(reg, *keys):
    for k in keys:
        v = reg.params[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError(
                f"CALIB.{reg.name.upper()}.{k.upper()} must be a number >= 0, got {v!r}"
            )
        reg.params[k] = float(v)


@register_regularizer("tcpt")
class TCPT(Regularizer):
    """TCPT: margin mean/variance term plus ``lambda`` x text moment matching."""

    needs = ("logits", "labels", "text_features", "zs_text_features")
    defaults = {"alpha": 0.1, "beta": 0.01, "lambda": 5.0}

    def _validate(self):
        _nonneg(self, "alpha", "beta", "lambda")

    def components(self, ctx):
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

    def _validate(self):
        _nonneg(self, "lambda")
        red = str(self.params["reduction"]).lower()
        if red not in ("sum", "mean"):
            raise ValueError(f"CALIB.CCR.REDUCTION must be 'sum' or 'mean', got {red!r}")
        self.params["reduction"] = red

    def components(self, ctx):
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

    def _validate(self):
        _nonneg(self, "margin", "alpha")

    def components(self, ctx):
        d = self._fetch(ctx)
        return {"mbls": mbls_loss(d["logits"], self.params["margin"], self.params["alpha"])}


@register_regularizer("zs_norm")
class ZSNorm(Regularizer):
    """ZS-Norm: the task loss becomes CE on :func:`zs_norm_logits`; adds no term.

    ``enabled`` (CALIB.ZS_NORM.ENABLED) False makes it a no-op.
    """

    needs = ("logits", "labels", "zs_logits")
    defaults = {"enabled": True}

    def _validate(self):
        self.params["enabled"] = bool(self.params["enabled"])
        self.replaces_task_loss = self.params["enabled"]

    def components(self, ctx):
        return {}

    def task_loss(self, ctx):
        d = self._fetch(ctx)
        z = zs_norm_logits(d["logits"], d["zs_logits"])
        return F.cross_entropy(z, d["labels"].long())


@register_regularizer("penalty")
class Penalty(Regularizer):
    """Logit-range penalty (:func:`logit_range_penalty`) with ``weight``."""

    needs = ("logits", "zs_logits")
    defaults = {"weight": 10.0}

    def _validate(self):
        _nonneg(self, "weight")

    def components(self, ctx):
        d = self._fetch(ctx)
        return {"penalty": logit_range_penalty(d["logits"], d["zs_logits"], self.params["weight"])}


@register_regularizer("dor")
class DOR(Regularizer):
    """DOR: ``lambda * dor_loss``. ``vocab`` (a word file; empty: the one shipped in
    ``calibration/data/``) and ``num_outliers`` are read by the trainer, which selects the words
    (:func:`select_outliers`) and provides the outlier inputs."""

    needs = ("outlier_text_features", "outlier_zs_text_features")
    defaults = {"lambda": 2.0, "vocab": "", "num_outliers": 64}

    def _validate(self):
        _nonneg(self, "lambda")
        n = self.params["num_outliers"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"CALIB.DOR.NUM_OUTLIERS must be an int >= 1, got {n!r}")

    def components(self, ctx):
        d = self._fetch(ctx)
        loss = dor_loss(d["outlier_text_features"], d["outlier_zs_text_features"])
        return {"dor": self.params["lambda"] * loss}


# ---------------------------------------------------------------------------
# DOR outlier vocabulary
# ---------------------------------------------------------------------------

DEFAULT_VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dor_vocab.txt")


def _norm_word(w):
    return " ".join(str(w).replace("_", " ").lower().split())


def load_outlier_vocab(path=None, exclude=()):
    """Outlier words for DOR, one per line (blank lines and ``#`` comments skipped).

    ``path``: a text file; None or "" uses the shipped
    ``calibration/data/dor_vocab.txt``. Words equal to a name in ``exclude``
    (the training class names) are removed; equality after lowercasing,
    ``_`` -> space and whitespace collapsing. Duplicates are dropped, order kept.
    """
    path = path or DEFAULT_VOCAB_PATH
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DOR vocabulary not found: {path} (CALIB.DOR.VOCAB; one word per line)")
    banned = {_norm_word(e) for e in exclude}
    words, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            w = line.split("#", 1)[0].strip()
            key = _norm_word(w)
            if not key or key in banned or key in seen:
                continue
            seen.add(key)
            words.append(w)
    if not words:
        raise ValueError(f"DOR vocabulary {path} has no usable words after excluding class names")
    return words


def select_outliers(vocab_features, class_features, n, reduction="max", pool=None, generator=None):
    """Indices of outlier words nearest to the training classes in zero-shot text space.

    Each word's score is its cosine similarity to the training classes
    (row-normalised ``vocab_features (V, D)`` vs ``class_features (C, D)``),
    reduced over classes by ``max`` (default: nearest to any class) or
    ``mean`` (nearest to the class centroid direction on average). Without
    ``pool`` returns the ``n`` best (descending score, ties by index). With
    ``pool > n`` draws ``n`` at random (``generator``) from the ``pool`` best,
    so the set can change each epoch. ``n`` larger than ``V`` returns all.
    """
    v = F.normalize(_float(vocab_features).detach(), dim=-1)
    c = F.normalize(_float(class_features).detach().to(v.dtype), dim=-1)
    sim = v @ c.t()
    if reduction == "max":
        score = sim.max(dim=1).values
    elif reduction == "mean":
        score = sim.mean(dim=1)
    else:
        raise ValueError(f"reduction must be 'max' or 'mean', got {reduction!r}")
    order = torch.argsort(-score, stable=True)
    n = min(int(n), order.numel())
    if pool is None or int(pool) <= n:
        return order[:n]
    top = order[: min(int(pool), order.numel())]
    pick = torch.randperm(top.numel(), generator=generator)[:n]
    return top[pick.to(top.device)]
