"""On-disk cache of frozen image features (``TEST.CACHE_FEATURES``; README, *Speed*).

An entry holds the L2-normalised float32 features ``(N, E)`` of one ordered list of images under one
frozen image encoder, keyed by everything they depend on (:func:`make_key`; the weights file's hash is
memoised in ``weights-sha256.json`` by path, size and mtime): a change is a miss, never a stale hit.
Entries are ``<CACHE_DIR>/features/<sha256 of the key>.pt``, hold the key (compared on read) and the
SHA-256 of the features' shape and float32 bytes (verified on read), and are written atomically
(``cpt.calibration.fileio``); an unreadable, damaged or unverifiable entry is a miss with a warning naming it, and is
recomputed and replaced. ``TEST.CACHE_MAX_MB`` bounds the folder (least recently used first; a hit
refreshes the mtime). ``python -m cpt.engine.feature_cache info|clear [--cache-dir DIR]`` inspects or
empties it.
"""
import argparse
import contextlib
import glob
import hashlib
import io
import json
import logging
import os
import time

import torch

from ..calibration.fileio import atomic_write_bytes
from .checkpoint import preserve_rng

SUBDIR = "features"
HASHES = "weights-sha256.json"
DEFAULT_MAX_MB = 4096
STALE_TMP_S = 3600  # temporary files of a crashed writer older than this are removed

logger = logging.getLogger("cpt")


def cache_folder(cache_root):
    return os.path.join(cache_root, SUBDIR)


def file_sha256(path, cache_root=None):
    """SHA-256 of ``path``; memoised under ``cache_root`` by (path, size, mtime_ns)."""
    st = os.stat(path)
    tag = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = os.path.join(cache_folder(cache_root), HASHES) if cache_root else None
    memo = {}
    with contextlib.suppress(OSError, ValueError):  # absent or unreadable: an empty memo
        if memo_path:
            with open(memo_path) as f:
                memo = json.load(f)
    if tag in memo:
        return memo[tag]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if memo_path:
        memo = {k: v for k, v in memo.items() if not k.startswith(os.path.abspath(path) + "|")}
        memo[tag] = digest
        with contextlib.suppress(OSError):  # a read-only cache: the hash is recomputed next time
            atomic_write_bytes(json.dumps(memo, indent=0).encode(), memo_path)
    return digest


def module_sha256(module):
    """SHA-256 of every tensor of ``module`` (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weights_digest(clip, cache_root=None):
    """The weights part of the key: the weights file's SHA-256, else the image tower's tensors."""
    path = (clip.source or {}).get("file", "")
    if path and os.path.isfile(path):
        return "file:" + file_sha256(path, cache_root)
    if getattr(clip, "_visual_sha256", None) is None:  # frozen: hashed once per backbone object
        clip._visual_sha256 = module_sha256(clip.model.visual)
    return "tensors:" + clip._visual_sha256


def images_digest(paths):
    """SHA-256 of the ordered ``(path, size, mtime_ns)`` list; a missing file raises."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            raise FileNotFoundError(f"image {p} of the dataset cannot be read: {e}") from e
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def make_key(clip, transform, paths, device, kind="image_features:l2:float32", cache_root=None):
    """The cache key (a dict of strings) of the features of ``paths`` under ``clip``."""
    return {
        "kind": kind, "weights": weights_digest(clip, cache_root), "name": str(clip.name),
        "arch": str(clip.arch), "tag": str((clip.source or {}).get("tag", "")), "precision": str(clip.precision),
        "device": torch.device(device).type, "transform": repr(transform), "n": str(len(paths)),
        "images": images_digest(paths),
    }


def entry_path(cache_root, key):
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return os.path.join(cache_folder(cache_root), digest[:40] + ".pt")


def features_sha256(features):
    """SHA-256 of a float32 CPU tensor's shape and bytes (the checksum an entry stores)."""
    h = hashlib.sha256(f"{tuple(features.shape)}|float32|".encode())
    h.update(features.contiguous().view(torch.uint8).numpy().tobytes() if features.numel() else b"")
    return h.hexdigest()


def load(cache_root, key):
    """Features of ``key`` (CPU tensor), or None on a miss (absent, unreadable, other key, checksum
    missing or wrong: each but absent warns, naming the entry, which the caller recomputes and replaces)."""
    path = entry_path(cache_root, key)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged or foreign file is a miss, recomputed and replaced
        logger.warning(f"feature cache entry {path} is unreadable ({type(e).__name__}: {e}); recomputing")
        return None
    if not isinstance(blob, dict) or blob.get("key") != json.dumps(key, sort_keys=True):
        logger.warning(f"feature cache entry {path} holds another key (damaged or copied); recomputing")
        return None
    feats = blob.get("features")
    if "sha256" not in blob:
        logger.warning(f"feature cache entry {path} has no checksum (written before entries were verified); "
                       f"recomputing")
        return None
    if not (isinstance(feats, torch.Tensor) and feats.dtype == torch.float32
            and features_sha256(feats) == blob["sha256"]):
        logger.warning(f"feature cache entry {path} fails its checksum (damaged on disk); recomputing")
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # least recently used eviction
    return feats


def store(cache_root, key, features, max_mb=DEFAULT_MAX_MB):
    """Write an entry atomically and evict to ``max_mb``; returns its path, or None if not written."""
    path = entry_path(cache_root, key)
    features = features.detach().float().cpu().contiguous()
    buf = io.BytesIO()
    torch.save({"features": features, "key": json.dumps(key, sort_keys=True),
                "sha256": features_sha256(features)}, buf)
    data = buf.getvalue()
    if max_mb is not None and len(data) > max_mb * (1 << 20):
        logger.info(f"feature cache: {len(data) / (1 << 20):.1f} MB entry exceeds TEST.CACHE_MAX_MB={max_mb}; "
                    f"not cached")
        return None
    try:
        atomic_write_bytes(data, path)
    except OSError as e:
        logger.warning(f"feature cache: {e}; features are not cached")  # e names the entry (cpt.calibration.fileio)
        return None
    if max_mb is not None:
        evict(cache_root, max_mb, keep=path)
    return path


def _files(cache_root, *patterns):
    return [p for pat in patterns for p in glob.glob(os.path.join(cache_folder(cache_root), pat))]


def _remove(path):
    try:
        os.remove(path)
        return True
    except OSError:  # another worker removed it
        return False


def entries(cache_root):
    """``[(path, size, mtime)]`` of the cache entries, oldest first."""
    out = []
    for p in _files(cache_root, "*.pt"):
        with contextlib.suppress(OSError):  # removed meanwhile
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime))
    return sorted(out, key=lambda e: e[2])


def evict(cache_root, max_mb, keep=None):
    """Remove least recently used entries until the total is at most ``max_mb``; returns the count."""
    now = time.time()
    for tmp in _files(cache_root, ".tmp-*"):
        with contextlib.suppress(OSError):
            if now - os.stat(tmp).st_mtime > STALE_TMP_S:
                os.remove(tmp)
    items = entries(cache_root)
    total = sum(s for _, s, _ in items)
    removed = 0
    for p, size, _ in items:
        if total <= max_mb * (1 << 20):
            break
        if p != keep and _remove(p):
            total -= size
            removed += 1
    return removed


def clear(cache_root):
    """Remove every entry (and the weights-hash memo); returns the number of files removed."""
    return sum(_remove(p) for p in _files(cache_root, "*.pt", ".tmp-*", HASHES))


@torch.no_grad()
def split_features(cfg, clip, transform, data_source, encode, device, split, use_cache):
    """L2-normalised features ``(N, E)`` of ``data_source`` in order: ``encode(images)`` over the
    images under ``transform`` (test batch size), read from and written to the cache under
    ``CACHE_DIR`` when ``use_cache`` (rank 0 writes). Returns ``(features on device, from_cache)``.
    Computing leaves the global RNG states as found (iterating a DataLoader draws from torch's), so a
    cold and a warm cache leave training the same random stream.
    """
    from torch.utils.data import DataLoader

    from .config import resolve_cache_dir
    from .data import DatasetWrapper
    from .utils import get_rank

    if use_cache:
        root = resolve_cache_dir(cfg)
        key = make_key(clip, transform, [d.impath for d in data_source], device, cache_root=root)
        feats = load(root, key)
        if feats is not None and feats.shape[0] == len(data_source):
            logger.info(f"Image features of {split} ({feats.shape[0]} x {feats.shape[1]}) read from the "
                        f"cache {entry_path(root, key)}")
            return feats.to(device), True
    loader = DataLoader(DatasetWrapper(data_source, transform), batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
                        shuffle=False, num_workers=cfg.DATALOADER.NUM_WORKERS,
                        pin_memory=cfg.DATALOADER.PIN_MEMORY and torch.device(device).type == "cuda")
    feats = []
    with preserve_rng():
        for batch in loader:
            with clip.autocast():
                feats.append(encode(batch["img"].to(device)).float())
    feats = torch.cat(feats)
    if use_cache:
        path = store(root, key, feats, cfg.TEST.CACHE_MAX_MB) if get_rank() == 0 else None
        logger.info(f"Image features of {split} ({feats.shape[0]} x {feats.shape[1]}) computed (not in the "
                    f"cache)" + (f", written to {path}" if path else ""))
    return feats, False


def main(argv=None):
    from .config import default_cache_dir
    p = argparse.ArgumentParser(description="Inspect or clear the frozen image-feature cache.")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--cache-dir", default="", help="the CACHE_DIR of the runs (default: $CPT_CACHE_DIR or "
                                                    "~/.cache/calibrated-prompt-tuning)")
    args = p.parse_args(argv)
    root = args.cache_dir or default_cache_dir()
    if args.action == "clear":
        print(f"removed {clear(root)} files from {cache_folder(root)}")
        return
    items = entries(root)
    print(f"{cache_folder(root)}: {len(items)} entries, {sum(s for _, s, _ in items) / (1 << 20):.1f} MB")


if __name__ == "__main__":
    main()
