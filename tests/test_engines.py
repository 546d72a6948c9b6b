"""The engine protocol: every registered engine through one contract; boards with per-part values."""

from dataclasses import replace

import networkx as nx
import numpy as np
import pytest

from spicelearn.engines import ENGINES, get_engine
from spicelearn.engines.base import Engine, EngineState
from spicelearn.errors import ConfigError
from spicelearn.loop import train
from spicelearn.model.board import Board
from spicelearn.model.hardware import R0, Hardware
from spicelearn.model.network import equilibrium, load_network
from spicelearn.model.task import bind


def _engine_names():
    names = []
    for name in ENGINES:
        marks = [pytest.mark.skipif(not _has_pyspice(), reason="PySpice missing")] if name == "ngspice" else []
        names.append(pytest.param(name, marks=marks))
    return names


def _has_pyspice():
    try:
        import PySpice  # noqa: F401
    except ImportError:
        return False
    return True


TOL = {"exact": 1e-12, "ngspice": 1e-5}


@pytest.fixture
def lab():
    task = bind("lab16", "default")
    return task, Board.nominal(task.network, Hardware.from_R(0.5, capacitance=22e-6))


@pytest.mark.parametrize("name", _engine_names())
def test_engine_contract(name, lab):
    """init, relax, set_positions, equilibrium_free, close: the same behaviour and the same checks."""
    task, board = lab
    net = task.network
    cls = get_engine(name)
    assert issubclass(cls, Engine) and cls.name == name
    with cls(net, task, board) as eng:
        p = np.full(net.n_edges, 63)
        s = eng.init(p)
        assert isinstance(s, EngineState)
        assert s.v_free.shape == s.v_clamped.shape == (net.n_nodes,)
        np.testing.assert_array_equal(s.v_free[task.source_index], task.source_voltage)
        np.testing.assert_allclose(s.clamp, task.nudge(s.v_free, board.hardware.eta))  # the supervisor's nudge
        np.testing.assert_allclose(eng.equilibrium_free(s), s.v_free, atol=1e-12)  # init is the equilibrium
        # relax keeps the state frozen: a new state, the old unchanged
        before = s.v_clamped.copy()
        s2 = eng.relax(s, s.clamp + 0.05, board.period)
        np.testing.assert_array_equal(s.v_clamped, before)
        np.testing.assert_allclose(s2.v_clamped[task.target_index], s.clamp + 0.05)
        # a clock tick changes resistances, not voltages
        s3 = eng.set_positions(s2, p + 1)
        np.testing.assert_array_equal(s3.v_free, s2.v_free)
        np.testing.assert_array_equal(s3.positions, p + 1)
        # zero duration: the charge-conserving jump alone, the same in every engine
        s4 = eng.relax(s3, s3.clamp - 0.05, 0.0)
        LC = board.capacitance_matrix(net)
        C = task.clamped_floating
        np.testing.assert_allclose((LC @ s4.v_clamped)[C], (LC @ s3.v_clamped)[C], atol=1e-15)
        # a denormal duration is the jump alone too (it made NaN or a division by zero)
        s5 = eng.relax(s3, s3.clamp - 0.05, 5e-324)
        np.testing.assert_array_equal(s5.v_clamped, s4.v_clamped)
        # the same argument checks
        other = bind("delaunay64", "random:3,2,0").network
        for bad, match in [((s3, s3.clamp, -1.0), "`duration`"), ((s3, s3.clamp, float("nan")), "`duration`"),
                           ((s3, s3.clamp, np.array([1e-3])), "`duration`"), ((s3, s3.clamp, "1e-3"), "`duration`"),
                           ((s3, s3.clamp[:1], 1e-3), "`clamp`"), ((s3, [np.inf, 0.0], 1e-3), "`clamp`"),
                           ((s3, ["a", "b"], 1e-3), "`clamp`"),
                           (("state", s3.clamp, 1e-3), "`state`"),
                           ((replace(s3, v_free=np.zeros(other.n_nodes)), s3.clamp, 1e-3), "`state` is of another")]:
            with pytest.raises(ConfigError, match=match):
                eng.relax(*bad)
        for bad in (np.full(net.n_edges, 128), np.full(3, 63), np.full(net.n_edges, 1.5)):
            with pytest.raises(ConfigError, match="`positions`"):
                eng.set_positions(s3, bad)
            with pytest.raises(ConfigError, match="`positions`"):
                eng.init(bad)
    # what the engine is built from: a bound task on this network, and a board
    with pytest.raises(ConfigError, match=r"`task` must be a task bound to the network \(task.bind\(network\)\), "
                                          "got Task"):
        cls(net, task.task, board)
    with pytest.raises(ConfigError, match="`task` is bound to another network"):
        cls(load_network("lab16"), task, board)
    with pytest.raises(ConfigError, match="`board` must be a spicelearn Board"):
        cls(net, task, board.hardware)
    with pytest.raises(ConfigError, match="`network` must be a compiled network"):
        cls(None, task, board)


def test_registry_accepts_a_class_and_refuses_unknown_names():
    from spicelearn.engines.exact import ExactEngine

    assert get_engine("exact") is ExactEngine and get_engine(ExactEngine) is ExactEngine
    with pytest.raises(ConfigError, match="`backend` must be one of"):
        get_engine("spectre")
    with pytest.raises(ConfigError, match="continuous model"):
        get_engine("ode")
    assert "ode" not in ENGINES  # every registered name is an engine of the clocked loop


@pytest.mark.parametrize("name", _engine_names())
def test_twins_may_differ_one_edge_free_twin(name):
    """Two boards differing in one edge's free-twin R_AB: the free equilibrium is the Laplacian solve with
    those resistances, and the clamped twin keeps the nominal ones."""
    task = bind("delaunay64", "random:5,3,1")
    net = task.network
    hw = Hardware.from_R(1.0, capacitance=22e-6)
    nominal = Board.nominal(net, hw)
    r_ab = nominal.r_ab.copy()
    r_ab[0, 17] *= 1.3
    other = nominal.replace(r_ab=r_ab)
    assert not other.twins_identical and nominal.twins_identical
    p = np.random.default_rng(1).integers(20, 110, net.n_edges)
    for board in (nominal, other):
        g = board.conductance(p)
        with get_engine(name)(net, task, board) as eng:
            s = eng.init(p)
            want_free = equilibrium(net, g[0], task.free_floating, task.driven_voltages())
            want_clamped = equilibrium(net, g[1], task.clamped_floating, task.driven_voltages(s.clamp))
            np.testing.assert_allclose(s.v_free, want_free, rtol=0, atol=1e-12)
            np.testing.assert_allclose(s.v_clamped, want_clamped, rtol=0, atol=1e-12)
            np.testing.assert_allclose(eng.equilibrium_free(s), want_free, rtol=0, atol=1e-12)
            # after a long relaxation both twins are at those equilibria, whatever the engine
            out = eng.relax(s, s.clamp + 0.1, 5000 * board.period)
            want_c = equilibrium(net, g[1], task.clamped_floating, task.driven_voltages(s.clamp + 0.1))
            np.testing.assert_allclose(out.v_free, want_free, rtol=0, atol=TOL[name])
            np.testing.assert_allclose(out.v_clamped, want_c, rtol=0, atol=TOL[name])
    # the one resistor moved the free equilibrium and nothing of the clamped one's
    assert np.abs(Board.nominal(net, hw).conductance(p)[0] - other.conductance(p)[0]).max() > 0


@pytest.mark.skipif(not _has_pyspice(), reason="PySpice missing")
def test_engines_agree_on_a_board_of_unequal_parts():
    """Every part its own value (R_AB per pot and twin, C per edge): ngspice follows the exact engine."""
    from spicelearn.loop import replay

    task = bind("lab16", "default")
    net = task.network
    rng = np.random.default_rng(3)
    nominal = Board.nominal(net, Hardware.from_R(1.0, capacitance=22e-6))
    board = nominal.replace(r_ab=nominal.r_ab * rng.uniform(0.7, 1.3, nominal.r_ab.shape),
                            capacitance=nominal.capacitance * rng.uniform(0.9, 1.1, net.n_edges),
                            offset=rng.normal(0, 0.002, nominal.offset.shape))
    ds = train(net, task.task, board=board, steps=60)
    np.testing.assert_array_equal(ds.r_ab.values, board.r_ab)
    res = replay(task, board, ds.position.values, ds.v_clamped.values[:, task.target_index],
                 start=ds.position_start.values, recorded=(ds.v_free.values, ds.v_clamped.values))
    assert res.max_error < 1e-5
    assert res.error_vs_record(0).max() < 1e-12  # the exact engine reproduces its own run


def test_board_checks_its_parts():
    net = load_network("lab16")
    b = Board.nominal(net, Hardware())
    for change, match in [(dict(r_ab=-b.r_ab), "`r_ab`"), (dict(r_ab=b.r_ab[:1]), "`r_ab`"),
                          (dict(capacitance=np.zeros(16)), "`capacitance`"),
                          (dict(capacitance=np.ones(3)), "one value per edge"),
                          (dict(offset=np.full((2, 16), np.nan)), "`offset`")]:
        with pytest.raises(ConfigError, match=match):
            b.replace(**change)
    with pytest.raises(ConfigError, match="network 'delaunay64'"):
        b.check(load_network("delaunay64"))


def _graph_with_capacitances(c=22e-6):
    g = load_network("lab16").to_graph()
    nx.set_edge_attributes(g, c, "capacitance")
    return g


def test_R_given_is_kept_with_the_graphs_capacitances():
    """Bug: Hardware.from_R(1.0) on a graph of 22 uF edges recorded R = 10 (gamma_l fixed before the swap)."""
    ds = train(_graph_with_capacitances(), "default", Hardware.from_R(1.0), steps=3)
    assert ds.attrs["R"] == pytest.approx(1.0, rel=1e-12)
    assert ds.attrs["gamma_l"] == pytest.approx(1.0 / (R0 * 22e-6), rel=1e-12)
    np.testing.assert_allclose(ds.capacitance.values, 22e-6)
    # gamma_l given: kept, R derived from the capacitances used
    ds = train(_graph_with_capacitances(), "default", Hardware(gamma_l=10.0), steps=3)
    assert ds.attrs["gamma_l"] == 10.0 and ds.attrs["R"] == pytest.approx(R0 * 22e-6 * 10.0)
    # a capacitance given wins over the graph's
    ds = train(_graph_with_capacitances(), "default", Hardware.from_R(1.0, capacitance=1e-3), steps=3)
    np.testing.assert_allclose(ds.capacitance.values, 1e-3)
    assert ds.attrs["R"] == pytest.approx(1.0)


@pytest.mark.skipif(not _has_pyspice(), reason="PySpice missing")
def test_ngspice_on_a_graph_with_capacitance_attributes(tmp_path, capsys):
    """Bug: `train(graph_with_capacitances, backend="ngspice")` raised TypeError: can't multiply sequence."""
    g = _graph_with_capacitances()
    for j, (u, v) in enumerate(sorted(g.edges)):
        g.edges[u, v]["capacitance"] = 22e-6 * (1 + 0.05 * j)
    ds = train(g, "default", Hardware.from_R(1.0), steps=20, backend="ngspice")
    np.testing.assert_allclose(ds.capacitance.values, [22e-6 * (1 + 0.05 * j) for j in range(16)])
    from spicelearn.loop import replay_run

    res = replay_run(ds, engines=("exact",))  # the exact engine along the ngspice run's positions and clamps
    assert res.error_vs_record(0).max() < 1e-5
    path = tmp_path / "caps.graphml"
    nx.write_graphml(g, path)
    bind("lab16", "default").task.to_json(tmp_path / "task.json")
    from spicelearn.cli import main

    assert main(["train", str(path), "--task", str(tmp_path / "task.json"), "--backend", "ngspice", "--steps", "5",
                 "--quiet", "--out", str(tmp_path / "r.nc")]) == 0
    assert capsys.readouterr().err == ""
