"""The functional core of the training-time calibration regularizers (docs/design.md 5.1):
pure, differentiable torch functions, none applying a ``lambda`` weight unless its signature says
so, and the DOR outlier vocabulary. The :class:`~calibration.regularizers.Regularizer` classes
are built on them.

Conventions: ``logits`` are the *scaled* logits the task loss sees (``logit_scale * cos``), shape
``(N, C)``; ``labels`` are class indices ``(N,)``; multi-label ``targets`` are ``(N, C)`` with 1
positive, 0 negative, -1 unknown/ignored; text features are ``(C, D)``, one row per class.
Half-precision inputs are computed in float32 (float64 stays float64). Imports only torch.
"""
import os

import torch
import torch.nn.functional as F


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


# --- the functional core --------------------------------------------------
def margin_mean_var(logits, labels, alpha=0.1, beta=0.01):
    """TCPT margin term: ``-alpha * mean(m) + beta * Var(m)``, ``m_i = z_{i,y_i} - max_{j != y_i} z_{i,j}``
    (``C >= 2``), ``Var`` biased (0 for a batch of one). Golden: docs/design.md 5.1."""
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
    """TCPT text-space moment matching, without lambda: ``||mu(T) - mu(T0)||^2 + ||Sigma(T) -
    Sigma(T0)||_F^2`` over the ``(C, D)`` learned (T) and zero-shot (T0, pass it without grad) class
    text features, **L2-normalised row-wise here**; ``mu`` the mean and ``Sigma`` the biased
    ``D x D`` covariance over classes. Golden: docs/design.md 5.1."""
    t, t0 = _pair("text_features", text_features, "zs_text_features", zs_text_features)
    t, t0 = F.normalize(t, dim=-1), F.normalize(t0, dim=-1)
    c = t.shape[0]
    mu, mu0 = t.mean(0), t0.mean(0)
    tc, t0c = t - mu, t0 - mu0
    sigma = tc.t() @ tc / c
    sigma0 = t0c.t() @ t0c / c
    return ((mu - mu0) ** 2).sum() + ((sigma - sigma0) ** 2).sum()


def ccr_loss(probs, targets, text_similarity, return_count=False, rel_tol=1e-5):
    """CCR: ``sum_{defined (i, j)} (Corr_pred(i, j) - S(i, j))^2`` over the full ``C x C`` matrix,
    without lambda, in the dtype of ``probs`` (computed in float64).

    The project's estimator (the paper publishes none): ``Corr_pred(i, j)`` is the Pearson
    correlation (population form) of ``p_i`` and ``p_j`` over the samples with ``y_i = 0`` **and**
    ``y_j = 0`` (-1 = unknown is not inactive). An off-diagonal entry is *defined* when that mask
    holds at least 2 samples and neither variance is zero (``std <= rel_tol * rms`` over the mask
    counts as zero); undefined entries add nothing, produce no NaN/inf and pass no gradient. The
    diagonal is always defined, ``Corr = 1`` against ``S``'s diagonal. ``return_count=True`` also
    returns the int number of defined entries (diagonal included), the divisor of the mean.

    probs ``(N, C)``; targets ``(N, C)`` in {1, 0, -1}; text_similarity ``(C, C)`` (e.g. cosines
    of the zero-shot text features).
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
    mean_i, msq_i = sum_i / n_safe, sq_i / n_safe
    var_i = msq_i - mean_i * mean_i  # [i, j]: variance of p_i over the joint mask; [j, i] is p_j's
    cov = cross / n_safe - mean_i * mean_i.t()

    tol2 = float(rel_tol) ** 2
    with torch.no_grad():
        ok = var_i > tol2 * msq_i
        eye = torch.eye(c, dtype=torch.bool, device=p.device)
        defined = enough & ok & ok.t() & ~eye
        used = defined | eye
    one = torch.ones_like(var_i)
    vi = torch.where(defined, var_i, one)
    vj = torch.where(defined, var_i.t(), one)
    corr = torch.where(defined, cov / torch.sqrt(vi * vj), torch.zeros_like(cov))
    corr = torch.where(eye, one, corr)
    diff = torch.where(used, corr - s, torch.zeros_like(corr))
    loss = (diff * diff).sum().to(p_in.dtype)
    return (loss, int(used.sum().item())) if return_count else loss


def mbls_loss(logits, margin=10.0, alpha=0.1):
    """Margin-based label smoothing: ``alpha * mean_{i,j} relu(max_k z_ik - z_ij - margin)``, the mean
    over all ``N x C`` entries (the arg-max entry contributes 0)."""
    z = _float(logits)
    _check_2d("logits", z)
    zmax = z.max(dim=1, keepdim=True).values
    return alpha * F.relu(zmax - z - margin).mean()


def zs_norm_logits(logits, zs_logits, eps=1e-12):
    """ZS-Norm / SaLS: each row rescaled into its zero-shot logit range (order kept),
    ``z' = min(z_zs) + (z - min z) * (max z_zs - min z_zs) / (max z - min z)``; a constant row
    maps to ``min(z_zs)`` (the range is clamped at ``eps``)."""
    z, zs = _pair("logits", logits, "zs_logits", zs_logits)
    (zmin, zmax), (smin, smax) = _row_range(z), _row_range(zs)
    return smin + (z - zmin) * (smax - smin) / (zmax - zmin).clamp_min(eps)


def logit_range_penalty(logits, zs_logits, weight=10.0):
    """Logit-range penalty: ``weight * (mean relu(z - max z_zs) + mean relu(min z_zs - z))``, the
    max/min per row of the zero-shot logits, both means over all ``N x C`` entries."""
    z, zs = _pair("logits", logits, "zs_logits", zs_logits)
    smin, smax = _row_range(zs)
    return weight * (F.relu(z - smax).mean() + F.relu(smin - z).mean())


def dor_loss(outlier_text_features, outlier_zs_text_features):
    """DOR: ``1 - mean_k cos(t_k, t0_k)`` without lambda, ``t_k`` / ``t0_k`` ``(K, D)`` outlier word
    k's text feature under the learned / zero-shot prompt. Zero outliers give 0."""
    t, t0 = _pair("outlier_text_features", outlier_text_features, "outlier_zs_text_features",
                  outlier_zs_text_features)
    if t.shape[0] == 0:
        return t.sum() * 0.0
    cos = (F.normalize(t, dim=-1) * F.normalize(t0, dim=-1)).sum(-1)
    return 1.0 - cos.mean()


# --- the DOR outlier vocabulary -------------------------------------------
DEFAULT_VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "dor_vocab.txt")


def _norm_word(w):
    return " ".join(str(w).replace("_", " ").lower().split())


def load_outlier_vocab(path=None, exclude=()):
    """Outlier words for DOR from ``path`` (None or "": the shipped ``calibration/data/dor_vocab.txt``),
    one per line, blank lines and ``#`` comments skipped, duplicates dropped (order kept). Words
    equal to a name in ``exclude`` (the training class names) are removed; equality after
    lowercasing, ``_`` -> space and whitespace collapsing."""
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
    """Indices of the outlier words nearest to the training classes in zero-shot text space.

    A word's score is its cosine to the classes (``vocab_features (V, D)`` vs ``class_features
    (C, D)``) reduced by ``max`` or ``mean`` over classes. Without ``pool``: the ``n`` best
    (descending, ties by index); with ``pool > n``: ``n`` drawn (``generator``) from the ``pool``
    best, so the set can change each epoch. ``n > V`` returns all.
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
