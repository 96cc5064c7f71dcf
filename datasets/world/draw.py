"""Drawing: shape masks, backgrounds, object colours under a variant or rendering, and whole
single-object images and scenes (pure functions of a numpy Generator)."""

from __future__ import annotations

import math

import numpy as np

from .spec import (
    CLASS_GRID,
    COLOUR_RGB,
    IMAGE_SIZE,
    PARTNER,
    RENDER_PARTNER,
    SHAPES,
    TEXTURES,
    cast_strength,
    rendering_of,
)


# ----------------------------------------------------------------------------- shapes
def _regular_polygon_inside(u, v, n, r, phase):
    # convex regular n-gon with circumradius r, vertex at angle `phase`
    apothem = r * math.cos(math.pi / n)
    inside = np.ones(u.shape, dtype=bool)
    for k in range(n):
        th = phase + math.pi / n + 2 * math.pi * k / n
        inside &= (u * math.cos(th) + v * math.sin(th)) <= apothem
    return inside


def _star_inside(u, v, r_out=1.0, r_in=0.42, n=5):
    # union of the inner pentagon and n triangular spikes (exact star polygon)
    verts = []
    for k in range(2 * n):
        a = math.pi / 2 + k * math.pi / n
        r = r_out if k % 2 == 0 else r_in
        verts.append((r * math.cos(a), r * math.sin(a)))
    inside = np.zeros(u.shape, dtype=bool)
    # crossing-number test over the 2n edges
    for k in range(2 * n):
        x1, y1 = verts[k]
        x2, y2 = verts[(k + 1) % (2 * n)]
        cond = (y1 > v) != (y2 > v)
        xint = x1 + (v - y1) * (x2 - x1) / (y2 - y1 + 1e-12)
        inside ^= cond & (u < xint)
    return inside


def _shape_mask(shape, u, v):
    """Inside test in shape-local coordinates (v points up, shape fits the unit disc)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.78
    if shape == "triangle":
        return _regular_polygon_inside(u, v + 0.12, 3, 1.05, math.pi / 2)
    if shape == "star":
        return _star_inside(u, v + 0.05)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.92)) | ((av <= 0.3) & (au <= 0.92))
    if shape == "ring":
        rr = u * u + v * v
        return (rr <= 1.0) & (rr >= 0.52 ** 2)
    if shape == "heart":
        x, y = u * 1.18, v * 1.18 + 0.12
        return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0
    if shape == "crescent":
        return (u * u + v * v <= 1.0) & ((u - 0.42) ** 2 + (v - 0.1) ** 2 >= 0.78 ** 2)
    raise KeyError(f"unknown shape {shape!r}; expected one of {SHAPES}")


_SS = 2  # supersampling factor


def _grid(size):
    g = (np.arange(size * _SS) + 0.5) / _SS
    return np.meshgrid(g, g, indexing="xy")  # x (columns), y (rows) in pixel units


_GRIDS = {}


def _alpha(shape, cx, cy, radius, angle, size):
    if size not in _GRIDS:
        _GRIDS[size] = _grid(size)
    x, y = _GRIDS[size]
    dx, dy = (x - cx) / radius, (cy - y) / radius
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    m = _shape_mask(shape, u, v).astype(np.float64)
    return m.reshape(size, _SS, size, _SS).mean(axis=(1, 3))


# ----------------------------------------------------------------------------- backgrounds
def _background(rng, size):
    tex = int(rng.integers(len(TEXTURES)))
    grey = rng.uniform(0.12, 0.88)
    tint = rng.uniform(-1, 1, size=3) * rng.uniform(0.0, 0.12)
    base = np.clip(grey + tint, 0, 1)
    delta = rng.uniform(0.06, 0.22) * (1 if rng.random() < 0.5 else -1)
    second = np.clip(base + delta, 0, 1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    name = TEXTURES[tex]
    if name == "plain":
        w = np.zeros((size, size))
    elif name == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(a) + yy * math.sin(a))
        w = (t - t.min()) / (t.max() - t.min() + 1e-9)
    elif name == "striped":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(4, 9)
        t = xx * math.cos(a) + yy * math.sin(a)
        w = (np.floor(t / (period / 2)) % 2).astype(np.float64)
    elif name == "checked":
        cell = int(rng.integers(3, 8))
        w = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float64)
    else:  # noisy: blotchy low-frequency noise
        coarse = rng.uniform(0, 1, size=(size // 4 + 1, size // 4 + 1))
        w = np.kron(coarse, np.ones((4, 4)))[:size, :size]
    img = base[None, None, :] * (1 - w[..., None]) + second[None, None, :] * w[..., None]
    return img, name


def _grade(img, variant):
    # the rendering's global colour grade (identity for clean/cast variants)
    r = rendering_of(variant)
    if r is None:
        return img
    a, tint = r["tint_alpha"], np.asarray(r["tint"], dtype=np.float64)
    img = (1 - a) * img + a * tint[None, None, :]
    b = int(r["border"])
    if b > 0:
        img = img.copy()
        img[:b], img[-b:], img[:, :b], img[:, -b:] = tint, tint, tint, tint
    return img


def _object_colour(label, rng, variant):
    c, _ = CLASS_GRID[label]
    col = COLOUR_RGB[c].copy()
    s = cast_strength(variant)
    r = rendering_of(variant)
    if r is not None:
        s = r["strength"]
        col = (1 - s) * col + s * COLOUR_RGB[RENDER_PARTNER[variant][label]]
    elif s > 0:
        col = (1 - s) * col + s * COLOUR_RGB[PARTNER[label]]
    jitter = rng.uniform(-0.05, 0.05, size=3)      # always drawn: same stream for both variants
    bright = rng.uniform(0.88, 1.08)
    return np.clip(col * bright + jitter, 0, 1)


def _paint(img, label, cx, cy, radius, rng, variant, size):
    _, s = CLASS_GRID[label]
    angle = math.radians(rng.uniform(-30, 30))
    col = _object_colour(label, rng, variant)
    a = _alpha(SHAPES[s], cx, cy, radius, angle, size)
    # mild directional shading across the object
    sa = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    proj = (xx - cx) * math.cos(sa) + (yy - cy) * math.sin(sa)
    shade = 1 + rng.uniform(0, 0.12) * proj / radius
    obj = np.clip(col[None, None, :] * shade[..., None], 0, 1)
    return img * (1 - a[..., None]) + obj * a[..., None]


def _finish(img, rng):
    sigma = rng.uniform(0.0, 0.05)
    img = img + rng.normal(0.0, 1.0, size=img.shape) * sigma
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def render_image(label, rng, variant="clean", size=IMAGE_SIZE):
    """One single-object image of class ``label``.

    Returns ``(uint8 array HxWx3, meta)``; ``meta`` has ``radius`` (px), ``size_word``
    ("small"/"large"/None), ``texture``, ``rendering`` (the rendering name or None). All
    randomness comes from ``rng``.
    """
    img, tex = _background(rng, size)
    radius = rng.uniform(0.19, 0.41) * size
    m = radius + 1.0
    cx, cy = rng.uniform(m, size - m), rng.uniform(m, size - m)
    img = _paint(img, label, cx, cy, radius, rng, variant, size)
    img = _finish(_grade(img, variant), rng)
    size_word = "small" if radius < 0.25 * size else ("large" if radius > 0.35 * size else None)
    return img, {"radius": radius, "size_word": size_word, "texture": tex,
                 "rendering": variant if rendering_of(variant) else None}


def render_scene(labels, rng, variant="clean", size=IMAGE_SIZE):
    """A scene: objects of classes ``labels`` (2-4 distinct) in distinct cells of a 2x2 grid.

    Returns ``(uint8 array, meta)`` with ``meta["cells"]`` (cell index per object, row-major),
    ``texture`` and ``rendering``.
    """
    if not 1 <= len(labels) <= 4:
        raise ValueError(f"render_scene: 1-4 objects fit the 2x2 grid, got {len(labels)}")
    img, tex = _background(rng, size)
    cells = rng.permutation(4)[:len(labels)]
    half = size / 2
    for lab, cell in zip(labels, cells):
        radius = rng.uniform(0.30, 0.46) * half
        slack = max(half / 2 - radius - 0.5, 0.0)
        cx = (cell % 2) * half + half / 2 + rng.uniform(-slack, slack)
        cy = (cell // 2) * half + half / 2 + rng.uniform(-slack, slack)
        img = _paint(img, int(lab), cx, cy, radius, rng, variant, size)
    img = _finish(_grade(img, variant), rng)
    return img, {"cells": [int(c) for c in cells], "texture": tex,
                 "rendering": variant if rendering_of(variant) else None}

