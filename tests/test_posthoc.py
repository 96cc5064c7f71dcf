"""Tests of calibration/posthoc.py (DESIGN.md section 5.2)."""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp

from cpt.calibration.posthoc import (
    apply_dac,
    apply_temperature,
    build_posthoc,
    dac_factors,
    fit_temperature,
    load_posthoc,
    posthoc_names,
    sals_logits,
)
from cpt.calibration.regularizers import zs_norm_logits


def unit(deg):
    r = math.radians(deg)
    return torch.tensor([[math.cos(r), math.sin(r)]])


BASE = torch.cat([unit(0), unit(90)])


def test_dac_golden():
    c = dac_factors(unit(45), BASE, unit(30), BASE, k=2)
    assert c.shape == (1,)
    assert c.item() == pytest.approx(1.006569, abs=1e-6)
    expect = math.exp(2 * math.sin(math.radians(22.5)) - (2 * math.sin(math.radians(15)) + 1) / 2)
    assert c.item() == pytest.approx(expect, rel=1e-6)
    # unnormalised inputs give the same factors (normalised inside)
    assert dac_factors(3 * unit(45), 2 * BASE, 5 * unit(30), BASE, k=2).item() == pytest.approx(c.item())


def test_dac_base_threshold_and_k_cap():
    new_zs = torch.cat([unit(45), unit(2)])
    new_tuned = torch.cat([unit(30), unit(1)])  # 1 degree from a base class: distance 0.0175
    c = dac_factors(new_zs, BASE, new_tuned, BASE, k=5)  # k capped at the 2 base classes
    assert c[1].item() == 1.0
    assert c[0].item() == pytest.approx(1.006569, abs=1e-6)
    c2 = dac_factors(new_zs, BASE, new_tuned, BASE, k=5, base_threshold=0.01)
    assert c2[1].item() != 1.0


def test_apply_dac_keeps_argmax_and_scales_rows():
    g = torch.Generator().manual_seed(0)
    logits = 20 * torch.randn(500, 7, generator=g)
    f = torch.exp(0.3 * torch.randn(7, generator=g))
    out = apply_dac(logits, f)
    pred = logits.argmax(1)
    assert torch.equal(out.argmax(1), pred)
    assert torch.equal(out, logits * f[pred].unsqueeze(1))


def test_apply_dac_tie_is_resolved():
    # find adjacent float32 logits a < b whose scaled values round to the same float
    rng = np.random.default_rng(0)
    for _ in range(10000):
        b = np.float32(rng.uniform(1, 50))
        a = np.nextafter(b, np.float32(-np.inf), dtype=np.float32)
        c = np.float32(rng.uniform(0.5, 2.0))
        if np.float32(a * c) == np.float32(b * c):
            break
    else:
        pytest.skip("no rounding tie found")
    logits = torch.tensor([[float(a), float(b), 0.0]], dtype=torch.float32)
    f = torch.tensor([1.0, float(c), 1.0])
    assert (logits * f[1]).argmax(1).item() == 0  # plain scaling would flip the prediction
    out = apply_dac(logits, f)
    assert out.argmax(1).item() == 1
    assert out[0, 0].item() == pytest.approx(float(a) * float(c), rel=1e-6)


def _nll(z, y):
    return F.cross_entropy(torch.as_tensor(z), torch.as_tensor(y)).item()


def test_temperature_scaling_lowers_nll():
    g = torch.Generator().manual_seed(1)
    n, c = 400, 10
    y = torch.randint(0, c, (n,), generator=g)
    z = torch.randn(n, c, generator=g)
    z[torch.arange(n), y] += 1.5
    over = 6 * z  # overconfident
    t = fit_temperature(over, y)
    assert t > 1.5
    assert _nll(apply_temperature(over, t), y) < _nll(over, y) - 0.1
    assert fit_temperature(over, y) == t  # deterministic
    # the fitted T is the grid optimum
    zn, yn = over.double().numpy(), y.numpy()
    grid = np.exp(np.linspace(math.log(0.5), math.log(20), 1001))
    scaled = zn[None] / grid[:, None, None]
    nll = (logsumexp(scaled, axis=2) - scaled[:, np.arange(n), yn]).mean(1)
    assert t == pytest.approx(grid[np.argmin(nll)], rel=5e-3)
    under = 0.2 * z  # underconfident
    t_u = fit_temperature(under.numpy(), y.numpy())
    assert t_u < 1.0 and _nll(under / t_u, y) < _nll(under, y)


def test_sals():
    z = torch.tensor([[4.0, 2, 0], [1.0, 3, 2]])
    zs = torch.tensor([[30.0, 25, 20], [10.0, 11, 14]])
    out = sals_logits(z, zs)
    assert torch.allclose(out[0], zs[0])
    assert torch.allclose(out, zs_norm_logits(z, zs))
    assert torch.equal(out.argmax(1), z.argmax(1))
    cal = build_posthoc("sals")
    assert torch.allclose(cal(z, zs_logits=zs), out)
    with pytest.raises(ValueError, match="zs_logits"):
        cal(z)


def test_posthoc_registry():
    assert posthoc_names() == ["none", "temperature", "dac", "sals"]
    with pytest.raises(KeyError, match="temperature"):
        build_posthoc("temprature")
    z = torch.randn(3, 4)
    assert build_posthoc("none")(z) is z
    assert build_posthoc("")(z) is z
    with pytest.raises(RuntimeError):
        build_posthoc("temperature")(z)
    with pytest.raises(ValueError, match="val_labels"):
        build_posthoc("temperature").fit(val_logits=z)


def test_save_load_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(2)
    z = 5 * torch.randn(50, 4, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    ts = build_posthoc("temperature").fit(val_logits=z, val_labels=y)
    path = str(tmp_path / "sub" / "posthoc.json")
    ts.save(path)
    assert os.listdir(tmp_path / "sub") == ["posthoc.json"]  # no temp file left
    back = load_posthoc(path)
    assert back.name == "temperature" and back.state["temperature"] == ts.state["temperature"]
    assert torch.equal(back(z), ts(z))

    new_zs = torch.cat([unit(45), unit(60)])
    new_tuned = torch.cat([unit(30), unit(70)])
    dac = build_posthoc("dac", k=2, base_threshold=0.05).fit(
        new_zs=new_zs, base_zs=BASE, new_tuned=new_tuned, base_tuned=BASE)
    assert dac.state["factors"][0] == pytest.approx(1.006569, abs=1e-6)
    dac.save(path)  # overwrite
    back = load_posthoc(path)
    assert back.name == "dac" and back.params == {"k": 2, "base_threshold": 0.05}
    assert back.state["factors"] == dac.state["factors"]
    zz = torch.randn(6, 2)
    assert torch.equal(back(zz), dac(zz))
    with open(path) as f:
        assert json.load(f)["version"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="post-hoc"):
        load_posthoc(str(bad))
