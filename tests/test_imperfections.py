"""Imperfections of real parts against known answers: circuit formulas, RC theory and sampling statistics.

Every test checks a number that follows from the physics of the part (a divider, an RC time
constant, a converter's grid, a binomial fraction, a spread's moments), not only that the code runs.
"""

import math
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest

from spicelearn.engines import get_engine
from spicelearn.engines.exact import ExactEngine
from spicelearn.errors import ConfigError
from spicelearn.loop import STREAMS, jittered_durations, make_board, replay, replay_run, streams, train
from spicelearn.model.board import Board
from spicelearn.model.hardware import (Capacitor, Comparator, Hardware, Potentiometer, Supervisor, pot_part)
from spicelearn.model.network import compile_network, load_network
from spicelearn.model.rules import comparator_rule
from spicelearn.model.task import Task, bind

from conftest import chain


def _has_pyspice():
    try:
        import PySpice  # noqa: F401
    except ImportError:
        return False
    return True


needs_ngspice = pytest.mark.skipif(not _has_pyspice(), reason="PySpice missing")
ENGINES = ["exact", pytest.param("ngspice", marks=needs_ngspice)]
#: How closely each engine follows an analytic answer after a transient (volt).
TOL = {"exact": 1e-12, "ngspice": 1e-5}


def _run_arrays(ds):
    return {k: ds[k].values for k in ("mse", "mse_eq", "position", "v_free", "v_clamped")}


def assert_runs_identical(a, b):
    for k, v in _run_arrays(a).items():
        np.testing.assert_array_equal(v, b[k].values, err_msg=k)


# ---------------------------------------------------------------------------------------------------------------
# 1. twin mismatch
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ENGINES)
def test_twin_mismatch_shifts_both_equilibria_as_dividers_predict(name):
    """Chain 0 - 1 - 2 - 3: sources 0 (1 V) and 3 (0 V), target 2, node 1 floats in both twins.

    Free twin: three resistors in series, ``v2 = R3 / (R1 + R2 + R3)``, ``v1 = (R2 + R3) / (R1 + R2 + R3)``
    with the free twin's resistances. Clamped twin: node 1 is a two-resistor divider between the source
    (1 V) and the clamp, ``v1 = (G1 + G2 clamp) / (G1 + G2)`` with the clamped twin's resistances.
    """
    net = compile_network(chain(4))  # edges 0|1, 1|2, 2|3
    task = Task({"0": 1.0, "3": 0.0}, {"2": 0.2}).bind(net)
    hw = Hardware(capacitance=1e-6)
    nominal = Board.nominal(net, hw)
    # a different mismatch on every edge: the free twin's pots high, the clamped twin's low and vice versa
    d = np.array([0.04, -0.03, 0.05])
    r = hw.pot.r_ab
    board = nominal.replace(r_ab=np.stack([r * (1 + d / 2), r * (1 - d / 2)]))
    assert not board.twins_identical
    pos = np.array([30, 70, 50])
    n = hw.pot.n_positions
    Rf = (pos + 1) * board.r_ab[0] / n
    Rc = (pos + 1) * board.r_ab[1] / n
    v2_free = Rf[2] / Rf.sum()
    v1_free = (Rf[1] + Rf[2]) / Rf.sum()
    clamp = v2_free + 0.5 * (0.2 - v2_free)  # the supervisor's nudge, eta = 1/2
    G1, G2 = 1 / Rc[0], 1 / Rc[1]
    v1_clamped = (G1 * 1.0 + G2 * clamp) / (G1 + G2)
    with get_engine(name)(net, task, board) as eng:
        s = eng.init(pos)
        assert s.clamp[0] == pytest.approx(clamp, abs=1e-14)
        np.testing.assert_allclose(s.v_free, [1.0, v1_free, v2_free, 0.0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(s.v_clamped, [1.0, v1_clamped, clamp, 0.0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(eng.equilibrium_free(s), s.v_free, rtol=0, atol=1e-13)
        # after a long relaxation from the nominal board's equilibrium, the engine arrives at the mismatched one
        with get_engine(name)(net, task, nominal) as ref:
            s0 = ref.init(pos, clamp=[clamp])
        start = eng.state(pos, s0.v_free, s0.v_clamped, [clamp])
        out = eng.relax(start, [clamp], 200 * hw.period)
        np.testing.assert_allclose(out.v_free, [1.0, v1_free, v2_free, 0.0], rtol=0, atol=TOL[name])
        np.testing.assert_allclose(out.v_clamped, [1.0, v1_clamped, clamp, 0.0], rtol=0, atol=TOL[name])
    # the mismatch really moved the state: the nominal board's divider differs by far more than the tolerance
    Rn = (pos + 1) * r / n
    assert abs(Rn[2] / Rn.sum() - v2_free) > 1e-4
    assert abs((Rn[1] * 1.0 + Rn[0] * clamp) / (Rn[0] + Rn[1]) - v1_clamped) > 1e-4


def test_three_node_chain_clamped_middle_follows_clamped_twin():
    """Source 0 - middle 1 - target 2: the free twin carries no current (all at the source), the clamped
    middle node is the divider of the *clamped* twin's two pots between source and clamp."""
    net = compile_network(chain(3))
    task = Task({"0": 1.0}, {"2": 0.0}).bind(net)
    nominal = Board.nominal(net, Hardware())
    r = nominal.r_ab[0]
    board = nominal.replace(r_ab=np.stack([r, r * np.array([1.1, 0.8])]))  # only the clamped twin differs
    pos = np.array([10, 90])
    with ExactEngine(net, task, board) as eng:
        s = eng.init(pos, clamp=[0.4])
    Rc = board.resistance(pos, twin=1)
    np.testing.assert_allclose(s.v_free, 1.0, rtol=0, atol=1e-14)
    want = (1.0 / Rc[0] + 0.4 / Rc[1]) / (1.0 / Rc[0] + 1.0 / Rc[1])
    assert s.v_clamped[1] == pytest.approx(want, abs=1e-14)
    Rf = board.resistance(pos, twin=0)  # what the free twin's pots would have given
    assert abs((1.0 / Rf[0] + 0.4 / Rf[1]) / (1.0 / Rf[0] + 1.0 / Rf[1]) - want) > 1e-3


def test_drawn_twin_mismatch_has_the_designed_relative_sigma():
    """``r_free, r_clamped = r (1 +/- m z / 2)``: the relative twin difference is ``m z``, z ~ N(0, 1),
    whatever the pair's common R_AB (here also spread +/-30 % uniform)."""
    net = load_network("delaunay64")
    m = 0.02
    hw = Hardware(pot=Potentiometer(tolerance=0.3, twin_mismatch=m))
    rel, mean = [], []
    for k in range(100):
        b = Board.draw(net, hw, np.random.default_rng(k))
        r0, r1 = b.r_ab
        mid = 0.5 * (r0 + r1)
        rel.append((r0 - r1) / mid)
        mean.append(mid / hw.pot.r_ab - 1)
    rel, mean = np.concatenate(rel), np.concatenate(mean)
    n = rel.size  # 14,300 edges
    assert abs(rel.mean()) < 5 * m / math.sqrt(n)
    assert rel.std() == pytest.approx(m, rel=5 / math.sqrt(2 * n))  # std of a sample std: sigma / sqrt(2n)
    # fourth moment of a normal: kurtosis 3 (uniform would give 1.8)
    assert np.mean(rel ** 4) / np.mean(rel ** 2) ** 2 == pytest.approx(3.0, abs=0.2)
    # the pair's common value: uniform in +/-30 %
    assert np.all(np.abs(mean) <= 0.3) and mean.std() == pytest.approx(0.3 / math.sqrt(3), rel=0.03)
    # without mismatch the twins are the same part
    b = Board.draw(net, Hardware(pot=Potentiometer(tolerance=0.3)), np.random.default_rng(0))
    np.testing.assert_array_equal(b.r_ab[0], b.r_ab[1])


# ---------------------------------------------------------------------------------------------------------------
# 2. capacitor leakage
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ENGINES)
def test_leakage_shortens_the_rc_time_constant(name):
    """One edge 0 - 1, source 0 at 1 V, node 1 floating in the free twin and starting at 0 V.

    The only capacitor is the edge's, between node 1 and the (driven) source: node 1 sees c, discharged
    through the pot and the leakage in parallel, ``tau = c (R_p || R_l)``; the final value stays 1 V
    (no other path)."""
    net = compile_network(chain(2))
    c, R_l = 4.7e-6, 1e5
    hw = Hardware(capacitance=c, capacitor=Capacitor(leakage=R_l))
    board = Board.nominal(net, hw)
    pos = np.array([40])
    R_p = hw.pot.resistance(pos)[0]
    tau = c * R_p * R_l / (R_p + R_l)
    assert tau < 0.8 * c * R_p  # leakage matters here
    with get_engine(name)(net, Task({"0": 1.0}, {"1": 0.3}).bind(net), board) as eng:
        st = eng.state(pos, v_free=[1.0, 0.0], v_clamped=[1.0, 0.3], clamp=[0.3])
        for t in (0.01 * tau, 0.5 * tau, 3 * tau, 20 * tau):
            out = eng.relax(st, [0.3], t)
            want = 1.0 - np.exp(-t / tau)
            assert out.v_free[1] == pytest.approx(want, abs=TOL[name], rel=0)
            assert out.v_free[0] == 1.0
            assert abs(out.v_free[1] - (1.0 - np.exp(-t / (c * R_p)))) > 1e-4 or t > 10 * tau


def test_leakage_in_a_capacitive_divider_of_the_clamped_twin():
    """s --(R1||C1||Rl)-- a --(R2||C2||Rl)-- t: a clamp step at t makes a jump ``C2 / (C1 + C2)`` (leakage
    takes no charge in no time), then a relaxes to the conductance divider with leakage included,
    ``tau = (C1 + C2) / (G1 + G2 + 2 / R_l)``."""
    g = nx.Graph()
    g.add_edge("a", "s", capacitance=1e-6)
    g.add_edge("a", "t", capacitance=3e-6)
    net = compile_network(g)  # edges (a, s), (a, t)
    R_l = 2e4
    hw = Hardware(capacitor=Capacitor(leakage=R_l))
    eng = ExactEngine(net, Task({"s": 0.0}, {"t": 1.0}).bind(net), Board.nominal(net, hw))
    pos = np.array([20, 90])
    G1, G2 = hw.pot.conductance(pos) + 1 / R_l
    C1, C2 = 1e-6, 3e-6
    st = eng.init(pos, clamp=[0.0])
    np.testing.assert_allclose(st.v_clamped, 0.0, atol=1e-15)
    a = net.node_index["a"]
    jump, final, tau = C2 / (C1 + C2), G2 / (G1 + G2), (C1 + C2) / (G1 + G2)
    for t in (0.0, 0.3 * tau, 2 * tau):
        out = eng.relax(st, [1.0], t)
        assert out.v_clamped[a] == pytest.approx(final + (jump - final) * np.exp(-t / tau), rel=1e-11)


# ---------------------------------------------------------------------------------------------------------------
# 3. wiper resistance
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ENGINES)
def test_wiper_resistance_is_in_series_with_every_pot(name):
    """Divider 0 (1 V) - 1 (target) - 2 (0 V): ``v1 = R12 / (R01 + R12)`` with ``R = (k + 1) r_ab / n + wiper``."""
    net = compile_network(chain(3))
    task = Task({"0": 1.0, "2": 0.0}, {"1": 0.5}).bind(net)
    wiper = 50.0
    hw = Hardware(capacitance=1e-6, pot=Potentiometer(wiper=wiper))
    board = Board.nominal(net, hw)
    np.testing.assert_array_equal(board.wiper, wiper)
    pos = np.array([0, 100])
    R = (pos + 1) * 100e3 / 128 + wiper
    want = R[1] / R.sum()
    with get_engine(name)(net, task, board) as eng:
        s = eng.init(pos)
        assert s.v_free[1] == pytest.approx(want, abs=1e-14)
        out = eng.relax(eng.state(pos, [1.0, 0.0, 0.0], [1.0, 0.5, 0.0], s.clamp), s.clamp, 100 * hw.period)
        assert out.v_free[1] == pytest.approx(want, abs=TOL[name])
    R0 = (pos + 1) * 100e3 / 128  # without the wiper
    assert abs(R0[1] / R0.sum() - want) > 1e-4


# ---------------------------------------------------------------------------------------------------------------
# 4. converters
# ---------------------------------------------------------------------------------------------------------------

def test_dac_puts_every_clamp_on_its_grid():
    """With a 6-bit DAC over -2.5..2.5 V the clamps can only be ``lo + k lsb``, ``lsb = 5 / 63``, and each is
    the nudge of the previous free targets rounded to the nearest level (|error| <= lsb / 2)."""
    bits, (lo, hi) = 6, (-2.5, 2.5)
    lsb = (hi - lo) / (2 ** bits - 1)
    hw = Hardware.from_R(1.0, capacitance=22e-6, supervisor=Supervisor(dac_bits=bits, dac_range=(lo, hi)))
    ds = train("lab16", "default", hw, steps=40)
    task = bind("lab16", "default")
    tgt = task.target_index
    clamps = ds.v_clamped.values[:, tgt]
    k = np.round((clamps - lo) / lsb)
    np.testing.assert_allclose(clamps, lo + k * lsb, rtol=0, atol=1e-12)
    assert np.all((k >= 0) & (k <= 2 ** bits - 1))
    wanted = task.nudge(ds.v_free.values[:-1], 0.5)  # the ideal clamps of steps 1.. (from the previous step)
    err = clamps[1:] - wanted
    assert np.all(np.abs(err) <= lsb / 2 + 1e-12)
    assert np.abs(err).max() > 1e-3  # quantisation did something
    np.testing.assert_array_equal(clamps[1:], Supervisor(dac_bits=bits).write(wanted))


def test_adc_read_rounds_to_the_nearest_level_and_saturates():
    s = Supervisor(adc_bits=2, adc_range=(0.0, 3.0))  # four levels 0, 1, 2, 3 V
    np.testing.assert_array_equal(s.read([0.0, 0.49, 0.51, 1.2, 1.7, 2.9, 3.0]), [0, 0, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(s.read([-5.0, -0.1, 3.2, 100.0]), [0, 0, 3, 3])  # saturates at the ends
    np.testing.assert_array_equal(s.read(np.array([[0.6, 2.4]])), [[1.0, 2.0]])  # any shape
    # an 8-bit ADC over +/-2.5 V: error at most half an lsb inside the range
    s8 = Supervisor(adc_bits=8)
    lsb = 5.0 / 255
    v = np.random.default_rng(0).uniform(-2.5, 2.5, 1000)
    err = s8.read(v) - v
    assert np.abs(err).max() <= lsb / 2 + 1e-15 and np.abs(err).max() > 0.45 * lsb
    # the ideal converters pass voltages through untouched; the DAC does not touch the ADC's values
    v = np.array([0.123456789, -7.0])
    assert Supervisor().read(v) is v and Supervisor(adc_bits=4).write(v) is v


def test_a_too_narrow_dac_range_saturates_the_clamps():
    """Targets 0.25 and 0.65 V; a DAC over 0..0.3 V cannot reach 0.65 V: that clamp sits at 0.3 V."""
    hw = Hardware.from_R(1.0, capacitance=22e-6, supervisor=Supervisor(dac_bits=8, dac_range=(0.0, 0.3)))
    np.testing.assert_array_equal(hw.supervisor.write([-1.0, 0.5, 0.3]), [0.0, 0.3, 0.3])
    ds = train("lab16", "default", hw, steps=20)
    tgt = bind("lab16", "default").target_index
    clamps = ds.v_clamped.values[:, tgt]
    assert clamps.min() >= 0.0 and clamps.max() <= 0.3
    # the second target wants 0.65 V and its free voltage starts above 0.3 V: its clamp is pinned at the top
    assert ds.v_free.values[0, tgt[1]] > 0.3
    np.testing.assert_array_equal(clamps[:, 1], 0.3)


# ---------------------------------------------------------------------------------------------------------------
# 5. every imperfection at zero is the ideal board, bit for bit
# ---------------------------------------------------------------------------------------------------------------

def _zero_hardware(**kw):
    return Hardware(pot=Potentiometer(tolerance=0.0, distribution="uniform", twin_mismatch=0.0, wiper=0.0,
                                      miss_probability=0.0),
                    capacitor=Capacitor(0.0, "uniform", math.inf),
                    comparator=Comparator(noise=0.01, offset=0.0, offset_sigma=0.0),
                    supervisor=Supervisor(None, (-2.5, 2.5), None, (-2.5, 2.5)), jitter=0.0, **kw)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_imperfections_at_zero_are_bit_for_bit_the_ideal_board(model):
    zero = _zero_hardware(capacitance_model=model, capacitance=22e-6)
    plain = Hardware(capacitance_model=model, capacitance=22e-6, comparator=Comparator(noise=0.01))
    assert zero == plain and zero.is_ideal and not zero.has_spread
    a = train("lab16", "default", zero, steps=60, seed=7)
    b = train("lab16", "default", plain, steps=60, seed=7)
    assert_runs_identical(a, b)
    assert "duration" not in a and "wiper" not in a and "leakage" not in a
    assert a.attrs == b.attrs
    # and a different seed does change the noisy run (the comparison above is not vacuous)
    c = train("lab16", "default", plain, steps=60, seed=8)
    assert not np.array_equal(c.position.values, b.position.values)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_a_board_is_nominal_only_with_every_part_at_its_nominal_value(model):
    """``is_nominal`` (the run file's ``board_nominal``): the nominal board is; a drawn board, or the nominal one
    with one part changed, is not; a run file records which."""
    net = load_network("lab16")
    hw = Hardware(capacitance_model=model, pot=Potentiometer(tolerance=0.1, wiper=50.0))
    nominal = Board.nominal(net, replace(hw, pot=Potentiometer(wiper=50.0)))
    assert nominal.is_nominal(net)
    assert not Board.draw(net, hw, np.random.default_rng(0)).is_nominal(net)
    for part in ("r_ab", "offset", "wiper", "capacitance"):
        values = np.array(getattr(nominal, part))
        values.flat[3] = 1.01 * values.flat[3] + 1e-3
        assert not nominal.replace(**{part: values}).is_nominal(net), part
    assert train(net, "default", board=nominal, steps=2).attrs["board_nominal"] == 1


def test_spec_options_with_imperfections_at_zero_are_the_plain_run():
    from spicelearn.experiments.spec import check_options, run

    base = {"network": "lab16", "steps": 40, "noise": 0.01, "seed": 3, "capacitance": 22e-6}
    zeros = {"r_ab_tolerance": 0.0, "twin_mismatch": 0.0, "wiper": 0.0, "miss_probability": 0.0,
             "capacitance_tolerance": 0.0, "leakage": math.inf, "offset_sigma": 0.0, "jitter": 0.0,
             "r_ab_distribution": "uniform", "capacitance_distribution": "uniform"}
    a = run(check_options({**base, **zeros}))
    b = run(check_options(base))
    assert_runs_identical(a, b)
    assert a.attrs == b.attrs


# ---------------------------------------------------------------------------------------------------------------
# 6. ngspice follows the exact engine with everything switched on
# ---------------------------------------------------------------------------------------------------------------

def _everything_on(**kw):
    return Hardware.from_R(
        1.0, capacitance=22e-6,
        pot=Potentiometer(tolerance=0.3, twin_mismatch=0.02, wiper=50.0, miss_probability=0.05),
        capacitor=Capacitor(tolerance=0.1, leakage=1e7),
        comparator=Comparator(noise=0.01, offset_sigma=0.002),
        supervisor=Supervisor(dac_bits=10, adc_bits=10), jitter=0.05, **kw)


@needs_ngspice
def test_engines_agree_with_every_imperfection_on():
    hw = _everything_on()
    ds = train("lab16", "default", hw, steps=60, seed=5)
    # the run file carries every part value
    for v in ("r_ab", "capacitance", "offset", "wiper", "leakage", "duration"):
        assert v in ds, v
    assert ds.capacitance.shape == (2, 16) and not np.array_equal(ds.r_ab[0], ds.r_ab[1])
    res = replay_run(ds, engines=("exact", "ngspice"))
    assert res.error_vs_record(0).max() == 0.0  # the exact engine reproduces its own run exactly
    assert res.max_error < 1e-5
    assert res.error_vs_record(1).max() < 1e-5


# ---------------------------------------------------------------------------------------------------------------
# 7. missed clock pulses
# ---------------------------------------------------------------------------------------------------------------

def _misses(ds, task):
    """Per (step, edge): whether the rule would have moved the pot, and whether it did."""
    net = task.network
    eu, ev = net.edge_nodes.T
    rule = comparator_rule("xor")
    pot = Potentiometer()
    offset = ds.offset.values
    prev = np.vstack([ds.position_start.values[None], ds.position.values[:-1]])
    would, moved = [], []
    for k in range(ds.sizes["step"]):
        vf, vc = ds.v_free.values[k], ds.v_clamped.values[k]
        up = rule(vf[eu] - vf[ev], vc[eu] - vc[ev], offset, 0.0, None)
        new = pot.step(prev[k], up)
        actual = ds.position.values[k]
        assert np.all((actual == prev[k]) | (actual == new)), "a pot moved other than the rule says"
        would.append(new != prev[k])
        moved.append(actual != prev[k])
    return np.array(would), np.array(moved)


def test_missed_pulses_occur_with_the_designed_probability():
    task = bind("delaunay64", "random:5,3,1")
    p = 0.1
    ds = train(task.network, task.task, Hardware(capacitance=22e-6, pot=Potentiometer(miss_probability=p)),
               steps=120, seed=2)
    would, moved = _misses(ds, task)
    n = would.sum()
    assert n > 10000
    missed = (would & ~moved).sum() / n  # binomial: sigma = sqrt(p (1 - p) / n)
    assert abs(missed - p) < 5 * math.sqrt(p * (1 - p) / n)
    # without misses, every pot the rule moves does move
    ds0 = train(task.network, task.task, Hardware(capacitance=22e-6), steps=40, seed=2)
    would, moved = _misses(ds0, task)
    np.testing.assert_array_equal(would, moved)


def test_pots_never_leave_their_range_even_when_missing_pulses():
    """Start every pot at an end stop: steps past the ends are ignored (AD5220), with misses or without."""
    task = bind("lab16", "default")
    start = np.where(np.arange(16) % 2 == 0, 0, 127)
    for miss in (0.0, 0.3):
        hw = Hardware.from_R(1.0, capacitance=22e-6, pot=Potentiometer(miss_probability=miss))
        ds = train(task.network, task.task, hw, steps=200, positions=start, seed=1)
        pos = np.vstack([start[None], ds.position.values])
        assert pos.min() >= 0 and pos.max() <= 127
        assert np.abs(np.diff(pos, axis=0)).max() <= 1  # one position per tick at most
        # the end stops were pushed against (else the test proves nothing)
        assert np.any(pos[1:] == 0) and np.any(pos[1:] == 127)


# ---------------------------------------------------------------------------------------------------------------
# 8. clock jitter
# ---------------------------------------------------------------------------------------------------------------

def test_jitter_spreads_the_relaxation_times_and_replays_exactly():
    j, steps = 0.1, 600
    hw = Hardware.from_R(1.0, capacitance=22e-6, jitter=j)
    task = bind("lab16", "default")
    ds = train(task.network, task.task, hw, steps=steps, seed=4)
    T = ds.attrs["gamma_l"] ** -1
    d = ds.duration.values
    assert d.shape == (steps,) and np.all(d > 0)
    assert d.mean() == pytest.approx(T, rel=5 * j / math.sqrt(steps))
    assert d.std() / T == pytest.approx(j, rel=5 / math.sqrt(2 * steps))
    np.testing.assert_array_equal(ds.time.values, np.cumsum(d))
    # the durations are the jitter stream's normal draws on the period
    board = make_board(task.network, hw)
    np.testing.assert_array_equal(d, jittered_durations(board, steps, streams(4)["jitter"]))
    # the exact engine replays the run with its durations to the last bit; with the nominal period it would not
    res = replay_run(ds, engines=("exact",))
    assert res.error_vs_record(0).max() == 0.0
    vc = ds.v_clamped.values
    off = replay(task, board, ds.position.values, vc[:, task.target_index], engines=("exact",),
                 start=ds.position_start.values, recorded=(ds.v_free.values, vc))
    assert off.error_vs_record(0).max() > 1e-6


# ---------------------------------------------------------------------------------------------------------------
# 9. capacitor tolerance
# ---------------------------------------------------------------------------------------------------------------

def test_drawn_capacitors_spread_uniformly_within_tolerance():
    net = load_network("delaunay64")
    tol, c0 = 0.1, 22e-6
    rel = []
    for k in range(20):
        b = Board.draw(net, Hardware(capacitance=c0, capacitor=Capacitor(tolerance=tol)), np.random.default_rng(k))
        assert b.capacitance.shape == (2, net.n_edges)
        rel.append(b.capacitance / c0 - 1)
    rel = np.concatenate(rel, axis=1)
    n = rel.size
    assert np.all(np.abs(rel) <= tol)
    assert abs(rel.mean()) < 5 * tol / math.sqrt(3 * n)
    assert rel.std() == pytest.approx(tol / math.sqrt(3), rel=0.03)
    assert np.abs(rel).max() > 0.99 * tol  # fills the band
    assert not np.array_equal(rel[0], rel[1])  # each twin its own capacitors
    # global model: one capacitor per node and twin
    b = Board.draw(net, Hardware(capacitance=c0, capacitance_model="global", capacitor=Capacitor(tolerance=tol)),
                   np.random.default_rng(0))
    assert b.capacitance.shape == (2, net.n_nodes) and np.all(np.abs(b.capacitance / c0 - 1) <= tol)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_per_twin_capacitors_conserve_the_clamped_twins_charge(d64, model):
    task = bind(d64, "random:5,3,2")
    hw = Hardware(capacitance=22e-6, capacitance_model=model, capacitor=Capacitor(tolerance=0.2))
    board = Board.draw(d64, hw, np.random.default_rng(3))
    assert not board.capacitors_identical
    eng = ExactEngine(d64, task, board)
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 128, d64.n_edges)
    st = eng.state(pos, rng.normal(size=64), rng.normal(size=64), clamp=[0.1, -0.2, 0.3])
    clamp = np.array([0.5, 0.4, -0.6])
    out = eng.clamp_step(st, clamp)
    C, T = task.clamped_floating, task.target_index
    L1 = board.capacitance_matrix(d64, twin=1)
    # the direct solve of charge conservation on the clamped twin's floating nodes
    v = st.v_clamped.copy()
    v[T] = clamp
    D = np.setdiff1d(np.arange(64), C)  # sources (unchanged) and the clamped targets (stepped)
    v[C] = np.linalg.solve(L1[np.ix_(C, C)], (L1 @ st.v_clamped)[C] - L1[np.ix_(C, D)] @ v[D])
    np.testing.assert_allclose(out.v_clamped, v, rtol=0, atol=1e-12)
    np.testing.assert_allclose((L1 @ out.v_clamped)[C], (L1 @ st.v_clamped)[C], rtol=0, atol=1e-15)
    if model == "per_edge":
        # the floating nodes jumped, by the clamped twin's capacitors: the free twin's would give another jump
        assert np.abs(out.v_clamped[C] - st.v_clamped[C]).max() > 1e-3
        L0 = board.capacitance_matrix(d64, twin=0)
        assert np.abs((L0 @ out.v_clamped)[C] - (L0 @ st.v_clamped)[C]).max() > 1e-8
    else:
        # node capacitors to ground: a clamp step moves no floating node
        np.testing.assert_array_equal(out.v_clamped[C], st.v_clamped[C])
    # the exact engine's transient starts from that jump: a relaxation of a vanishing time is the jump
    # (the currents move the nodes by ~ t |L_G v| / C, some 1e-11 V in 1e-12 periods)
    tiny = eng.relax(st, clamp, 1e-12 * board.period)
    np.testing.assert_allclose(tiny.v_clamped, out.v_clamped, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# 10. reproducibility
# ---------------------------------------------------------------------------------------------------------------

def test_each_stream_is_the_same_whichever_others_are_made():
    """A run makes only the streams it draws from; each must be the stream the full set gives."""
    for seed, board_seed in ((3, None), (3, 7)):
        for name in STREAMS:
            one = streams(seed, board_seed, (name,))
            assert set(one) == {name}
            np.testing.assert_array_equal(one[name].random(8), streams(seed, board_seed)[name].random(8))
        assert streams(seed, board_seed, ()) == {}
    # without a board seed the noise stream is default_rng(seed), as before boards had imperfections
    np.testing.assert_array_equal(streams(5, names=("noise",))["noise"].random(4), np.random.default_rng(5).random(4))
    with pytest.raises(ConfigError, match="`names` must be among"):
        streams(1, names=("nois",))


def test_a_noiseless_run_with_a_custom_rule_still_gets_its_noise_stream():
    seen = []

    def rule(dv_free, dv_clamped, offset, noise, rng):
        seen.append(rng.random())
        return np.abs(dv_clamped) > np.abs(dv_free)

    train("lab16", "default", Hardware(), steps=3, seed=2, rule=rule)
    np.testing.assert_array_equal(seen, np.random.default_rng(2).random(3))


def test_is_nominal_answers_for_each_network_it_is_asked_about():
    net = load_network("lab16")
    g = net.to_graph()
    nx.set_edge_attributes(g, 1e-6, "capacitance")
    other = compile_network(g, name="lab16, 1 uF")
    board = Board.nominal(net, Hardware())
    assert board.is_nominal(net) and not board.is_nominal(other)
    assert board.is_nominal(net) and not board.is_nominal(other)  # kept answers, each its network's
    assert Board.nominal(other, Hardware()).is_nominal(other)
    drawn = Board.draw(net, Hardware(capacitor=Capacitor(tolerance=0.1)), np.random.default_rng(0))
    assert not drawn.is_nominal(net)


def test_same_seeds_reproduce_a_run_and_another_board_seed_is_another_board():
    hw = _everything_on()
    net = load_network("lab16")
    a = train(net, "default", hw, steps=30, seed=1, board_seed=4)
    b = train(net, "default", hw, steps=30, seed=1, board_seed=4)
    assert_runs_identical(a, b)
    for v in ("r_ab", "capacitance", "offset", "duration"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    c = train(net, "default", hw, steps=30, seed=1, board_seed=5)
    for v in ("r_ab", "capacitance", "offset", "duration"):
        assert not np.array_equal(a[v].values, c[v].values), v
    assert a.attrs["board_seed"] == 4 and c.attrs["board_seed"] == 5
    # the board a run used is the one Board.draw gives from the run's parts stream
    board = Board.draw(net, hw, streams(1, 4)["parts"])
    np.testing.assert_array_equal(a.r_ab.values, board.r_ab)
    np.testing.assert_array_equal(a.capacitance.values, board.capacitance)


# ---------------------------------------------------------------------------------------------------------------
# 11. bad values
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, name", [
    (lambda: Potentiometer(tolerance=-0.1), "r_ab_tolerance"),
    (lambda: Potentiometer(tolerance=1.0), "r_ab_tolerance"),
    (lambda: Potentiometer(tolerance=float("nan")), "r_ab_tolerance"),
    (lambda: Potentiometer(tolerance=0.25, distribution="normal"), "r_ab_tolerance"),
    (lambda: Potentiometer(tolerance=0.1, distribution="lognormal"), "r_ab_tolerance"),
    (lambda: Potentiometer(twin_mismatch=0.3), "twin_mismatch"),
    (lambda: Potentiometer(wiper=-1.0), "wiper"),
    (lambda: Potentiometer(miss_probability=1), "miss_probability"),
    (lambda: Potentiometer(miss_probability=-0.1), "miss_probability"),
    (lambda: Potentiometer(part="AD5220-1M"), "part"),
    (lambda: pot_part("AD5220-1M"), "part"),
    (lambda: Capacitor(tolerance=-0.01), "capacitance_tolerance"),
    (lambda: Capacitor(tolerance=1.0), "capacitance_tolerance"),
    (lambda: Capacitor(leakage=0), "leakage"),
    (lambda: Capacitor(leakage=-1e6), "leakage"),
    (lambda: Hardware(capacitance_model="global", capacitor=Capacitor(leakage=1e7)), "leakage"),
    (lambda: Comparator(offset_sigma=-0.001), "offset_sigma"),
    (lambda: Hardware(R=True), "R"),  # not 1: a bool or text is not a number
    (lambda: Hardware(R="1"), "R"),
    (lambda: Hardware(capacitance=True), "capacitance"),
    (lambda: Hardware(eta="1"), "eta"),
    (lambda: Potentiometer(r_ab=True), "r_ab"),
    (lambda: Potentiometer(n_positions=2**40), "n_positions"),
    (lambda: Supervisor(dac_range="01"), "dac_range"),
    (lambda: Supervisor(dac_range={0: 1, 1: 2}), "dac_range"),
    (lambda: Capacitor(leakage=5e-324), "leakage"),  # (1 / leakage overflowed into NaN clamps at run time)
    (lambda: Supervisor(adc_bits=1, adc_range=(-1e308, 1e308)), "adc_range"),
    (lambda: Comparator(noise="0.01"), "noise"),
    (lambda: Comparator(noise=[0.01]), "noise"),
    (lambda: Comparator(offset="0"), "offset"),
    (lambda: Comparator(offset=math.nan), "offset"),
    (lambda: Supervisor(dac_bits=0), "dac_bits"),
    (lambda: Supervisor(adc_bits=33), "adc_bits"),
    (lambda: Supervisor(dac_bits=2.5), "dac_bits"),
    (lambda: Supervisor(dac_range=(2, 1)), "dac_range"),
    (lambda: Supervisor(adc_range=(1, 1)), "adc_range"),
    (lambda: Supervisor(dac_range=(0, math.inf)), "dac_range"),
    (lambda: Hardware(jitter=-0.1), "jitter"),
    (lambda: Hardware(jitter=0.5), "jitter"),
])
def test_bad_values_name_their_argument(make, name):
    with pytest.raises(ConfigError, match=f"`{name}`"):
        make()


def test_bad_options_name_their_argument():
    from spicelearn.experiments.spec import check_options, hardware

    for opts, name in [({"pot_part": "AD5220-1M"}, "pot_part"), ({"r_ab_tolerance": -0.1}, "r_ab_tolerance"),
                       ({"miss_probability": 1.0}, "miss_probability"), ({"leakage": 0.0}, "leakage"),
                       ({"capacitance_model": "global", "leakage": 1e7}, "leakage"), ({"dac_bits": 0}, "dac_bits"),
                       ({"dac_range": [2.0, 1.0]}, "dac_range")]:
        with pytest.raises(ConfigError, match=f"`{name}`"):
            hardware(check_options({"network": "lab16", **opts}))
    with pytest.raises(ConfigError, match="`dac_range`"):
        check_options({"network": "lab16", "dac_range": [1.0]})
    with pytest.raises(ConfigError, match="board `leakage`"):  # a board of the global model has no leakage
        net = compile_network(chain(2))
        Board.nominal(net, Hardware(capacitance_model="global")).replace(leakage=np.full((2, 1), 1e6))


@pytest.mark.parametrize("part, value, message", [
    ("offset", np.array([[0.0, np.nan], [0.0, 0.0]]), r"board `offset` must be finite volts, got nan at \[0, 1\] "
                                                        r"\(1 of 4 values\)"),
    ("r_ab", np.full((2, 2), -1.0), r"board `r_ab` must be finite and > 0 ohm, got -1.0 at \[0, 0\] \(4 of 4"),
    ("capacitance", np.array([1e-6, 0.0]), r"board `capacitance` must be finite and > 0 farad, got 0.0 at \[1\]"),
    ("wiper", np.zeros((2, 3)), r"board `wiper` must have shape \(2, 2\), got shape \(2, 3\)"),
])
def test_a_bad_board_names_the_part_and_the_first_value_at_fault(part, value, message):
    board = Board.nominal(compile_network(chain(3)), Hardware())
    with pytest.raises(ConfigError, match=message):
        board.replace(**{part: value})


@pytest.mark.parametrize("bits", [float("nan"), float("inf")])
def test_non_finite_converter_bits_are_a_config_error(bits):
    with pytest.raises(ConfigError, match="`dac_bits`"):
        Supervisor(dac_bits=bits)


def test_run_file_labels_twins_and_comparators_without_jitter():
    ds = train("lab16", "default", Hardware(capacitance=22e-6), steps=2)
    assert list(ds["twin"].values) == ["free", "clamped"]
    assert list(ds["comparator"].values) == ["difference", "second"]


def test_numpy_numbers_are_numbers_and_stored_as_python_ones():
    """What a script computes with numpy is taken as the same Python number (and a whole float as an int)."""
    hw = Hardware(eta=np.float32(0.25), jitter=np.float32(0.05),
                  pot=Potentiometer(n_positions=128.0, start=np.int64(10), wiper=np.int64(0),
                                    miss_probability=np.float32(0.1)),
                  comparator=Comparator(noise=np.float32(0.01)))
    assert type(hw.eta) is float and type(hw.pot.n_positions) is int and type(hw.pot.start) is int
    assert hw.pot.n_positions == 128 and hw.comparator.noise == pytest.approx(0.01)


def test_a_board_copies_the_arrays_it_is_given_and_takes_numbers_only():
    """The caller's arrays stay theirs (writable, unchanged); text, booleans and complex numbers are refused."""
    net = compile_network(chain(3))
    nominal = Board.nominal(net, Hardware())
    r_ab = np.full((2, net.n_edges), 1e5)
    board = nominal.replace(r_ab=r_ab)
    assert r_ab.flags.writeable and board.r_ab is not r_ab and not board.r_ab.flags.writeable
    r_ab[0, 0] = 1.0
    assert board.r_ab[0, 0] == 1e5
    for bad in (np.full((2, net.n_edges), "1e5"), np.full((2, net.n_edges), True), np.full((2, net.n_edges), 1e5 + 1j)):
        with pytest.raises(ConfigError, match="board `r_ab` must be an array of numbers"):
            nominal.replace(r_ab=bad)
    with pytest.raises(ConfigError, match="board `hardware` must be a spicelearn Hardware, got type"):
        nominal.replace(hardware=Hardware)
    with pytest.raises(ConfigError, match="`gamma_l` must be a number"):
        nominal.replace(gamma_l="1")
