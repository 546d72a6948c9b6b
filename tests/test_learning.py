"""The learning loop: the error goes down with the hardware rules, and up with the sign flipped."""

import warnings

import numpy as np
import pytest

from spicelearn.loop import train
from spicelearn.errors import ConfigError
from spicelearn.model.hardware import Comparator, Hardware
from spicelearn.model.rules import xor_rule


def lab_settings(R=0.1, **kw):
    return Hardware.from_R(R, capacitance=22e-6, eta=0.5, comparator=Comparator(noise=0.0), **kw)


def tail_ratio(ds, n=500):
    return float(np.median(ds["mse_eq"].values[-n:]) / ds["mse0"])


@pytest.mark.parametrize("rule", ["xor", "xor-legacy"])
def test_lab16_learns(rule):
    ds = train("lab16", "default", lab_settings(rule=rule), steps=3000)
    assert tail_ratio(ds) < 1e-2
    assert ds.attrs["rule"] == rule


@pytest.mark.slow
def test_delaunay64_learns_most_random_tasks():
    ratios = [tail_ratio(train("delaunay64", f"random:5,3,{s}", lab_settings(), steps=3000)) for s in range(8)]
    assert sum(r < 2e-2 for r in ratios) >= 6, ratios


def test_delaunay64_learns_random_tasks():
    """The fast version of the one above: two tasks that learn within 1,000 steps (the slow test has eight)."""
    ratios = [tail_ratio(train("delaunay64", f"random:5,3,{s}", lab_settings(), steps=1000)) for s in (0, 1)]
    assert max(ratios) < 5e-2, ratios


def flipped(dv_free, dv_clamped, offset, noise, rng):
    """The rule with its sign flipped: resistance up exactly when |dv_C| < |dv_F|."""
    return ~xor_rule(dv_free, dv_clamped, offset, noise, rng)


def test_flipped_rule_does_not_learn():
    good = train("lab16", "default", lab_settings(), steps=1000)
    bad = train("lab16", "default", lab_settings(), steps=1000, rule=flipped)
    assert bad.attrs["rule"] == "flipped"
    assert tail_ratio(bad) > 0.5 and tail_ratio(bad) > 100 * tail_ratio(good)


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_run_file_contents(tmp_path):
    from spicelearn.runfile import load_run, save_run

    hw = Hardware.from_R(1.0, comparator=Comparator(noise=0.01))
    ds = train("lab16", "default", hw, steps=50, seed=3)
    assert dict(ds.sizes) == {"step": 50, "edge": 16, "node": 9, "twin": 2, "comparator": 2}
    assert ds["position"].dtype.kind == "i" and ds["position"].dims == ("step", "edge")
    assert list(ds["edge"].values[:2]) == ["0|1", "0|3"]
    np.testing.assert_allclose(ds["time"].values, (np.arange(50) + 1) * hw.period)
    # pots move by exactly one position per tick, within range
    steps = np.abs(np.diff(np.vstack([np.full(16, 63), ds["position"].values]), axis=0))
    assert set(np.unique(steps)) <= {0, 1} and ds["position"].values.max() <= 127
    # mse is recomputed from the recorded voltages
    vt = ds["v_free"].sel(node=["2", "6"]).values
    np.testing.assert_allclose(ds["mse"].values, ((np.array([0.25, 0.65]) - vt) ** 2).sum(1))
    # clamped targets sit at v_F + eta (V_T - v_F) of the previous reading
    assert ds.attrs["R"] == pytest.approx(1.0) and ds.attrs["comparator_noise"] == 0.01
    path = tmp_path / "run.nc"
    save_run(ds, path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    back = load_run(path)
    np.testing.assert_array_equal(back["position"].values, ds["position"].values)
    assert back.attrs["spicelearn_version"] and back.attrs["network"] == "lab16"
    # seeded noise: same seed, same run; other seed, other run
    again = train("lab16", "default", hw, steps=50, seed=3)
    other = train("lab16", "default", hw, steps=50, seed=4)
    np.testing.assert_array_equal(again["position"].values, ds["position"].values)
    assert not np.array_equal(other["position"].values, ds["position"].values)


def test_clamps_follow_free_reading():
    ds = train("lab16", "default", lab_settings(R=1.0), steps=20)
    vf = ds["v_free"].sel(node=["2", "6"]).values
    vc = ds["v_clamped"].sel(node=["2", "6"]).values
    V = np.array([0.25, 0.65])
    # at step k the clamps hold the nudge of the free reading at step k-1
    np.testing.assert_allclose(vc[1:], vf[:-1] + 0.5 * (V - vf[:-1]), atol=1e-12)


def test_bad_run_parameters():
    with pytest.raises(ConfigError, match="`steps`"):
        train("lab16", "default", steps=0)
    with pytest.raises(ConfigError, match="`backend`"):
        train("lab16", "default", steps=5, backend="hspice")
    with pytest.raises(ConfigError, match="`backend` must be one of .* or an engine class or factory, got 3"):
        train("lab16", "default", steps=5, backend=3)
    with pytest.raises(ConfigError, match="`rule`"):
        train("lab16", "default", steps=5, rule="majority")
    with pytest.raises(ConfigError, match="`positions`"):
        train("lab16", "default", steps=5, positions=np.full(16, 200))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way to the message
        with pytest.raises(ConfigError, match="`positions` must be integers in 0..127, got values that are not fin"):
            train("lab16", "default", steps=5, positions=np.full(16, np.nan))
    with pytest.raises(ConfigError, match="`hardware` must be a spicelearn Hardware .* got float 1.0"):
        train("lab16", "default", 1.0, steps=5)
    with pytest.raises(ConfigError, match="`board` must be a spicelearn Board .* got str"):
        train("lab16", "default", steps=5, board="lab")
