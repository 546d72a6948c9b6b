"""Pots, comparators and the comparator-XOR rules."""

import numpy as np
import pytest

from spicelearn.errors import ConfigError
from spicelearn.model.hardware import R0, Comparator, Hardware, Potentiometer
from spicelearn.model.rules import continuous_rule, xor_legacy_rule, xor_rule


def test_potentiometer_law():
    pot = Potentiometer()
    assert pot.resistance(0) == pytest.approx(781.25)
    assert pot.resistance(127) == pytest.approx(100e3)
    assert pot.resistance(pot.start) == pytest.approx(50e3)
    assert pot.conductance(63) == pytest.approx(1 / 50e3)
    np.testing.assert_array_equal(pot.step(np.array([0, 127, 5, 5]), np.array([False, True, True, False])),
                                  [0, 127, 6, 4])


def test_rates():
    hw = Hardware.from_R(0.1, capacitance=22e-6)
    assert hw.R == pytest.approx(0.1)
    assert hw.gamma_p == pytest.approx(1 / (R0 * 22e-6))
    assert hw.period == pytest.approx(1 / (0.1 * hw.gamma_p))
    assert hw.clock(22e-6) == pytest.approx((0.1 / (R0 * 22e-6), 0.1))
    # the clock given is kept, the other derived from the capacitance used
    assert Hardware(gamma_l=50.0).clock(1e-6) == pytest.approx((50.0, R0 * 1e-6 * 50.0))
    assert Hardware().R == 1.0 and Hardware().gamma_l is None


def test_xor_rule_means_abs_comparison():
    rng = np.random.default_rng(0)
    dvf, dvc = rng.normal(size=10000), rng.normal(size=10000)
    np.testing.assert_array_equal(xor_rule(dvf, dvc), np.abs(dvc) > np.abs(dvf))
    # the legacy rule agrees whenever the drops have the same sign
    same = np.sign(dvf) == np.sign(dvc)
    np.testing.assert_array_equal(xor_legacy_rule(dvf, dvc)[same], xor_rule(dvf, dvc)[same])
    # continuous rule: conductance falls (resistance rises) exactly when the xor rule says up
    np.testing.assert_array_equal(continuous_rule(dvf, dvc, eta=0.5) < 0, xor_rule(dvf, dvc))


def test_comparator_noise_is_seeded_and_has_the_right_size():
    comp = Comparator(noise=0.01)
    dvf = np.full(20000, 0.1)
    dvc = np.full(20000, 0.1 + 0.01)  # |dv_C| - |dv_F| = one sigma
    up1 = xor_rule(dvf, dvc, noise=comp.noise, rng=np.random.default_rng(1))
    up2 = xor_rule(dvf, dvc, noise=comp.noise, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(up1, up2)
    # first comparator sees -0.01 + N(0, 0.01): fires with probability ~ Phi(-1) = 0.159
    assert 0.80 < up1.mean() < 0.87
    assert not xor_rule(np.array([0.1]), np.array([0.11]), offset=(0.02, 0.02))[0]
    # per-part offsets: each edge's first comparator its own
    up = xor_rule(np.array([0.1, 0.1]), np.array([0.11, 0.11]), offset=(np.array([0.0, 0.02]), np.zeros(2)))
    np.testing.assert_array_equal(up, [True, False])


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacitance=0.0), "`capacitance`"),
    (dict(capacitance=-1e-6), "`capacitance`"),
    (dict(capacitance=float("nan")), "`capacitance`"),
    (dict(capacitance=(1e-6, 2e-6)), "one value"),
    (dict(R=1.0, gamma_l=10.0), "not both"),
    (dict(capacitance_model="lumped"), "`capacitance_model`"),
    (dict(eta=0.0), "`eta`"),
    (dict(eta=1.5), "`eta`"),
    (dict(gamma_l=-1.0), "`gamma_l`"),
    (dict(rule="and"), "`rule`"),
])
def test_bad_hardware(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Hardware(**kwargs)


def test_bad_parts():
    with pytest.raises(ConfigError, match="`start`"):
        Potentiometer(start=128)
    with pytest.raises(ConfigError, match="`noise`"):
        Comparator(noise=-0.1)
    with pytest.raises(ConfigError, match="`R`"):
        Hardware.from_R(0.0)
