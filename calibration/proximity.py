"""kNN proximity of samples in feature space (the input PIECE bins by; Xiong et al., 2023)."""
import torch


def knn_proximity(features, k=10, reference=None, chunk_size=None, normalize=False):
    """Mean L2 distance of each row of ``features`` to its ``k`` nearest rows of ``reference``: a
    tensor (N,) on the input's device, or a numpy array when ``features`` is not a tensor.

    ``reference=None``: the pool is ``features`` without the row itself (duplicates count, at 0).
    Chunks of ``chunk_size`` rows (default: about 16M distances each), in torch on the input's
    device (fp16/bf16 in fp32); neighbours are chosen on the expanded squared distance and their
    distances recomputed directly (values match a brute-force ``cdist``). ``normalize=True``
    L2-normalises both sets first.
    """
    as_numpy = not torch.is_tensor(features)
    x = torch.as_tensor(features)
    if x.ndim != 2:
        raise ValueError(f"calibration.metrics.knn_proximity: features must be 2-D (N, D), got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    if reference is None:
        ref = x
    else:
        ref = torch.as_tensor(reference).to(device=x.device, dtype=x.dtype)
        if ref.ndim != 2 or ref.shape[1] != x.shape[1]:
            raise ValueError(f"calibration.metrics.knn_proximity: reference must be 2-D with "
                             f"{x.shape[1]} columns, got {tuple(ref.shape)}")
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
        ref = x if reference is None else torch.nn.functional.normalize(ref, dim=1)
    n, m = x.shape[0], ref.shape[0]
    exclude_self = reference is None
    available = m - 1 if exclude_self else m
    if int(k) != k or k < 1 or k > available:
        raise ValueError(f"calibration.metrics.knn_proximity: k={k} needs 1 <= k <= {available} "
                         f"(pool of {m} rows{', self excluded' if exclude_self else ''})")
    k = int(k)
    if chunk_size is None:
        chunk_size = max(1, (1 << 24) // max(m, k * x.shape[1], 1))
    chunk_size = int(max(1, min(chunk_size, max(n, 1))))
    ref_sq = (ref * ref).sum(dim=1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for s in range(0, n, chunk_size):
            e = min(n, s + chunk_size)
            q = x[s:e]
            d2 = torch.addmm(ref_sq.unsqueeze(0), q, ref.t(), beta=1.0, alpha=-2.0)
            d2.add_((q * q).sum(dim=1, keepdim=True))
            if exclude_self:
                rows = torch.arange(e - s, device=x.device)
                d2[rows, rows + s] = float("inf")
            nn_idx = torch.topk(d2, k, dim=1, largest=False, sorted=False).indices
            del d2
            diff = ref[nn_idx] - q.unsqueeze(1)  # (chunk, k, D)
            out[s:e] = diff.norm(dim=2).mean(dim=1)
    return out.cpu().numpy() if as_numpy else out
