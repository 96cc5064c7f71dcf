"""The structural analyses of calibration/analysis.py on a hand-computed 4-class example.

Zero-shot embeddings t0 = (0, 0), t1 = (1, 0), t2 = (0, 2), t3 = (3, 0): distances d01 = 1, d02 = 2,
d03 = 3, d12 = sqrt 5, d13 = 2, d23 = sqrt 13. ED with k = 2: t0 {1, 2} -> 1.5; t1 {0, 3} -> 1.5;
t2 {0, 1} -> (2 + sqrt 5) / 2; t3 {1, 0} -> 2.5. Tuned: t3 moves to (0, -0.5): nearest neighbours
before 1, 0, 0, 1 and after 3, 0, 0, 0, so NP@1 = (0 + 1 + 1 + 0) / 4 = 0.5.
"""
import math

import numpy as np
import pytest

from cpt.calibration.analysis import (
    embedding_divergence,
    modality_gap,
    neighbour_ranks,
    neighbourhood_preservation,
    svd_projection,
)

ZS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
FT = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, -0.5]])


def test_embedding_divergence_golden():
    np.testing.assert_allclose(embedding_divergence(ZS, k=2), [1.5, 1.5, (2 + math.sqrt(5)) / 2, 2.5], rtol=1e-12)
    np.testing.assert_allclose(embedding_divergence(ZS, k=1), [1.0, 1.0, 2.0, 2.0], rtol=1e-12)
    with pytest.raises(ValueError, match="k must be in"):
        embedding_divergence(ZS, k=4)


def test_neighbourhood_preservation_golden():
    assert neighbour_ranks(ZS)[:, 0].tolist() == [1, 0, 0, 1] and neighbour_ranks(FT)[:, 0].tolist() == [3, 0, 0, 0]
    per_class, mean = neighbourhood_preservation(ZS, FT, k=1)
    assert per_class.tolist() == [0.0, 1.0, 1.0, 0.0] and mean == 0.5
    assert neighbourhood_preservation(ZS, ZS, k=3)[1] == 1.0


def test_svd_projection_equals_numpy_and_gap():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(7, 5)) + 1.0, rng.normal(size=(4, 5))
    (p_img, p_txt), vt = svd_projection(img, txt)
    stack = np.concatenate([img, txt])
    centred = stack - stack.mean(0)
    u, s, v = np.linalg.svd(centred)
    for i in range(2):  # the same axes up to sign, and the same coordinates up to that sign
        sign = np.sign(vt[i] @ v[i])
        np.testing.assert_allclose(vt[i], sign * v[i], atol=1e-12)
        np.testing.assert_allclose(np.concatenate([p_img, p_txt])[:, i], sign * u[:, i] * s[i], atol=1e-12)
    assert abs(modality_gap(img, txt) - np.linalg.norm(img.mean(0) - txt.mean(0))) < 1e-12
