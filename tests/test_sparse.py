"""The sparse path of the exact engine (large networks) against the dense one and against physics."""

import numpy as np
import pytest

from spicelearn.engines.exact import SPARSE_FROM, ExactEngine
from spicelearn.loop import Decide, run_loop
from spicelearn.model.board import Board
from spicelearn.model.generators import delaunay
from spicelearn.model.hardware import Capacitor, Hardware, Potentiometer
from spicelearn.model.network import compile_network
from spicelearn.model.rules import comparator_rule
from spicelearn.model.task import load_task


def pair(net, task, board):
    return ExactEngine(net, task, board, method="eigen"), ExactEngine(net, task, board, method="sparse")


@pytest.mark.parametrize("model", ["per_edge", "global"])
@pytest.mark.parametrize("R", [0.001, 0.01, 0.1, 1.0, 10.0, 1000.0])
def test_sparse_relax_matches_dense(d64, model, R):
    task = load_task("random:5,3,4", d64).bind(d64)
    hw = Hardware.from_R(R, capacitance=220e-6, capacitance_model=model)
    dense, sparse = pair(d64, task, Board.nominal(d64, hw))
    rng = np.random.default_rng(2)
    pos = rng.integers(0, 128, d64.n_edges)
    v0, v1 = rng.normal(size=64), rng.normal(size=64)
    clamp = np.array([-0.3, 0.0, 0.7])
    outs = [e.relax(e.state(pos, v0, v1, clamp=[0.1, 0.2, 0.3]), clamp, hw.period) for e in (dense, sparse)]
    np.testing.assert_allclose(outs[1].v_free, outs[0].v_free, rtol=0, atol=1e-10)
    np.testing.assert_allclose(outs[1].v_clamped, outs[0].v_clamped, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sparse.equilibrium_free(outs[1]), dense.equilibrium_free(outs[0]), rtol=0, atol=1e-12)


def test_sparse_follows_dense_along_a_run_with_imperfect_twins(d64):
    """The loop's ticks, twins of different pots and capacitors: the same positions, voltages to 1e-10 V."""
    task = load_task("random:5,3,8", d64).bind(d64)
    hw = Hardware.from_R(1.0, capacitance=22e-6, pot=Potentiometer(tolerance=0.2, twin_mismatch=0.05),
                         capacitor=Capacitor(tolerance=0.1))
    board = Board.draw(d64, hw, np.random.default_rng(1))
    assert not board.twins_identical and not board.capacitors_identical
    runs = [run_loop(e, 30, np.full(d64.n_edges, 63), Decide.rule(board, comparator_rule("xor"),
                                                                  np.random.default_rng(0)))
            for e in pair(d64, task, board)]
    np.testing.assert_array_equal(runs[0]["position"], runs[1]["position"])
    for var in ("v_free", "v_clamped", "mse_eq"):
        np.testing.assert_allclose(runs[1][var], runs[0][var], rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def net300():
    return compile_network(delaunay(300, 670, seed=1))


def test_sparse_equilibrium_obeys_kirchhoff(net300):
    task = load_task("random:5,3,1", net300).bind(net300)
    hw = Hardware(capacitance=2.2e-6)
    eng = ExactEngine(net300, task, Board.nominal(net300, hw), method="sparse")
    pos = np.random.default_rng(3).integers(0, 128, net300.n_edges)
    st = eng.init(pos)
    L = net300.laplacian(hw.pot.conductance(pos))
    for v, fl in ((st.v_free, task.free_floating), (st.v_clamped, task.clamped_floating)):
        np.testing.assert_allclose((L @ v)[fl], 0, atol=1e-12 * np.abs(L).max())
    # a long relaxation from anywhere ends at the equilibria
    rng = np.random.default_rng(4)
    st2 = eng.state(pos, rng.normal(size=300), rng.normal(size=300), st.clamp)
    out = eng.relax(st2, st.clamp, 1e3)
    np.testing.assert_allclose(out.v_free, st.v_free, atol=1e-12)
    np.testing.assert_allclose(out.v_clamped, st.v_clamped, atol=1e-12)


def test_sparse_clamp_step_conserves_charge(net300):
    task = load_task("random:5,3,2", net300).bind(net300)
    hw = Hardware(capacitance=22e-6)
    board = Board.nominal(net300, hw)
    eng = ExactEngine(net300, task, board, method="sparse")
    rng = np.random.default_rng(1)
    st = eng.state(rng.integers(0, 128, net300.n_edges), rng.normal(size=300), rng.normal(size=300),
                   clamp=[0.1, -0.2, 0.3])
    out = eng.relax(st, [0.5, 0.4, -0.6], 1e-9 * hw.period)  # the jump, and almost no relaxation
    LC = board.capacitance_matrix(net300)
    fl = task.clamped_floating
    q_before, q_after = (LC @ st.v_clamped)[fl], (LC @ out.v_clamped)[fl]
    np.testing.assert_allclose(q_after, q_before, rtol=0, atol=1e-8 * np.abs(q_before).max())
    assert np.abs(out.v_clamped - st.v_clamped).max() > 1e-3


def test_sparse_path_is_taken_from_the_crossover_on(net300, d64):
    big = compile_network(delaunay(SPARSE_FROM + 10, int((SPARSE_FROM + 10) * 2.2), seed=0))
    for net, want in ((d64, "dense"), (big, "sparse")):
        task = load_task("random:5,3,0", net).bind(net)
        assert ExactEngine(net, task, Board.nominal(net, Hardware())).method == want
    task = load_task("random:5,3,0", d64).bind(d64)
    assert ExactEngine(d64, task, Board.nominal(d64, Hardware()), method="auto").method == "dense"


def test_sparse_rates_are_the_dense_eigenvalues(d64):
    task = load_task("random:5,3,0", d64).bind(d64)
    board = Board.nominal(d64, Hardware())
    pos = np.random.default_rng(0).integers(0, 128, d64.n_edges)
    dense, sparse = pair(d64, task, board)
    np.testing.assert_allclose(np.sort(sparse.init(pos).ops.lam), dense.init(pos).ops.lam, rtol=1e-10)


@pytest.mark.parametrize("factor", [0.51, 1.9, 5.0, 0.05])
def test_sparse_ticks_of_other_durations_match_dense(d64, factor):
    """A jittered tick reuses the period's Krylov pole (within a factor 2), a longer or shorter one gets its own."""
    task = load_task("random:5,3,4", d64).bind(d64)
    hw = Hardware(capacitance=22e-6)
    dense, sparse = pair(d64, task, Board.nominal(d64, hw))
    rng = np.random.default_rng(5)
    pos = rng.integers(0, 128, d64.n_edges)
    v0, v1 = rng.normal(size=64), rng.normal(size=64)
    outs = [e.relax(e.state(pos, v0, v1, clamp=[0.1, 0.2, 0.3]), [0.0, 0.1, 0.2], factor * hw.period)
            for e in (dense, sparse)]
    np.testing.assert_allclose(outs[1].v_free, outs[0].v_free, rtol=0, atol=1e-10)
    np.testing.assert_allclose(outs[1].v_clamped, outs[0].v_clamped, rtol=0, atol=1e-10)
