"""Structural analyses of class text embeddings (the CCR paper's eqs. 6-8 and its modality-gap figures),
pure numpy functions over ``(C, D)`` embeddings (rows: classes, in class order).

- **Embedding Divergence** (eq. 6): ``ED(i) = (1/k) sum_{j in N_k(i)} ||f_i - f_j||_2``, ``N_k(i)`` the
  ``k`` classes nearest to ``i`` by Euclidean distance (itself excluded; for L2-normalised embeddings
  the nearest are the most cosine-similar). Ties go to the lower class index.
- **Neighbourhood rank Preservation** (eqs. 7-8): ``NP@K(c) = |R^zs_{1:K}(c) & R^ft_{1:K}(c)| / K`` with
  ``R(c)`` the other classes ranked by distance to ``c`` (ties: lower index first), zero-shot against
  tuned; ``NP@K`` is its mean over classes.
- **Modality gap**: the distance between the centroids of paired image and text embeddings, and their
  2-D projection on the first two right singular vectors of the centred, stacked embeddings (signs
  fixed so that each vector's largest-magnitude entry is positive).
"""
import numpy as np


def _as_2d(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected (C, D) embeddings with C >= 2, got shape {x.shape}")
    return x


def pairwise_distances(emb):
    """Euclidean distances ``(C, C)`` between the rows of ``emb``."""
    emb = _as_2d(emb, "pairwise_distances")
    sq = (emb * emb).sum(1)
    return np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T, 0.0, None))


def neighbour_ranks(emb):
    """``(C, C-1)``: for each class, the other classes from nearest to farthest (ties: lower index)."""
    d = pairwise_distances(emb)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :-1]


def embedding_divergence(emb, k=5):
    """ED per class ``(C,)``: mean distance to its ``k`` nearest other classes (eq. 6)."""
    emb = _as_2d(emb, "embedding_divergence")
    if not 1 <= k < emb.shape[0]:
        raise ValueError(f"embedding_divergence: k must be in [1, {emb.shape[0] - 1}] for {emb.shape[0]} classes, "
                         f"got {k}")
    d = pairwise_distances(emb)
    nearest = neighbour_ranks(emb)[:, :k]
    return np.take_along_axis(d, nearest, axis=1).mean(1)


def neighbourhood_preservation(zs, ft, k=5):
    """``(NP@K per class (C,), its mean)``: overlap of the ``k`` nearest classes before (``zs``) and after
    (``ft``) tuning (eqs. 7-8)."""
    zs, ft = _as_2d(zs, "neighbourhood_preservation"), _as_2d(ft, "neighbourhood_preservation")
    if zs.shape[0] != ft.shape[0]:
        raise ValueError(f"neighbourhood_preservation: {zs.shape[0]} zero-shot vs {ft.shape[0]} tuned classes")
    if not 1 <= k < zs.shape[0]:
        raise ValueError(f"neighbourhood_preservation: k must be in [1, {zs.shape[0] - 1}], got {k}")
    a, b = neighbour_ranks(zs)[:, :k], neighbour_ranks(ft)[:, :k]
    per_class = np.array([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist())])
    return per_class, float(per_class.mean())


def svd_projection(*groups, dims=2):
    """The rows of every array in ``groups`` (same width) projected on the first ``dims`` right singular
    vectors of their centred stack; returns one ``(n_i, dims)`` array per group and the vectors
    ``(dims, D)``."""
    stack = np.concatenate([np.asarray(g, dtype=np.float64) for g in groups])
    centred = stack - stack.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:dims]
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])[:, None]
    proj = centred @ vt.T
    return np.split(proj, np.cumsum([len(g) for g in groups])[:-1]), vt


def modality_gap(image_emb, text_emb):
    """Distance between the centroids of the image and the text embeddings."""
    return float(np.linalg.norm(np.asarray(image_emb, np.float64).mean(0) - np.asarray(text_emb, np.float64).mean(0)))
