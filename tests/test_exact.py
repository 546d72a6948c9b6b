"""The exact engine against analytic solutions, a matrix exponential, and invariants."""

import dataclasses

import networkx as nx
import numpy as np
import pytest
import scipy.linalg as sla

from spicelearn.engines.exact import ExactEngine, chebyshev_plan, contour_quadrature
from spicelearn.errors import ConfigError
from spicelearn.model.board import Board
from spicelearn.model.hardware import R0, Hardware
from spicelearn.model.network import compile_network
from spicelearn.model.task import Task, load_task

from conftest import chain


def engine(net, task, **hw):
    return ExactEngine(net, task.bind(net), Board.nominal(net, Hardware(**hw)))


def capacitance_matrix(net, hw):
    return Board.nominal(net, hw).capacitance_matrix(net)


def test_contour_quadrature_matches_exp():
    s, w = contour_quadrature()
    x = np.concatenate([[0.0], np.logspace(-8, 8, 3000)])
    approx = (w / (x[:, None] + s)).sum(axis=1).real
    assert np.max(np.abs(approx - np.exp(-x))) < 1e-12


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_single_rc_edge_decays_exponentially(model):
    # source "0" at 1 V, edge R||C to target "1", which starts at 0 V in the free twin
    net = compile_network(chain(2))
    c = 4.7e-6
    eng = engine(net, Task({"0": 1.0}, {"1": 0.3}), capacitance=c, capacitance_model=model)
    pos = np.array([40])
    RC = eng.hardware.pot.resistance(pos)[0] * c
    st = eng.state(pos, v_free=[1.0, 0.0], v_clamped=[1.0, 0.3], clamp=[0.3])
    for t in (0.01 * RC, 0.5 * RC, 3 * RC, 20 * RC):
        out = eng.relax(st, [0.3], t)
        exact = 1.0 - np.exp(-t / RC)
        assert out.v_free[1] == pytest.approx(exact, rel=1e-12)
        assert out.v_free[0] == 1.0


def capacitive_divider_case():
    """s --(R1||C1)-- a --(R2||C2)-- t: clamp at t steps; a jumps then relaxes with tau = (C1+C2)/(G1+G2)."""
    g = nx.Graph()
    g.add_edge("a", "s", capacitance=1e-6)
    g.add_edge("a", "t", capacitance=3e-6)
    return compile_network(g)


def test_clamp_step_jump_and_relaxation_analytic():
    net = capacitive_divider_case()  # edges: (a, s) then (a, t)
    hw = Hardware()  # the graph's capacitances
    eng = ExactEngine(net, Task({"s": 0.0}, {"t": 1.0}).bind(net), Board.nominal(net, hw))
    pos = np.array([20, 90])
    G1, G2 = hw.pot.conductance(pos)
    C1, C2 = 1e-6, 3e-6
    st = eng.init(pos, clamp=[0.0])  # everything at 0 V
    np.testing.assert_allclose(st.v_clamped, 0.0, atol=1e-15)
    a = net.node_index["a"]
    va_jump = C2 / (C1 + C2) * 1.0
    va_inf = G2 / (G1 + G2) * 1.0
    tau = (C1 + C2) / (G1 + G2)
    for t in (0.0, 0.3 * tau, 2 * tau):
        out = eng.relax(st, [1.0], t)
        want = va_inf + (va_jump - va_inf) * np.exp(-t / tau)
        assert out.v_clamped[a] == pytest.approx(want, rel=1e-11)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_charge_conserved_across_clamp_step(d64, model):
    task = load_task("random:5,3,2", d64)
    eng = ExactEngine(d64, task.bind(d64), Board.nominal(d64, Hardware(capacitance=22e-6, capacitance_model=model)))
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 128, d64.n_edges)
    st = eng.state(pos, rng.normal(size=64), rng.normal(size=64), clamp=[0.1, -0.2, 0.3])
    out = eng.relax(st, [0.5, 0.4, -0.6], 0.0)
    LC = capacitance_matrix(d64, eng.hardware)
    floating = np.setdiff1d(np.arange(64), np.concatenate([eng.task.source_index, eng.task.target_index]))
    q_before = (LC @ st.v_clamped)[floating]
    q_after = (LC @ out.v_clamped)[floating]
    np.testing.assert_allclose(q_after, q_before, rtol=0, atol=1e-12 * np.abs(q_before).max())
    assert np.max(np.abs(out.v_clamped - st.v_clamped)) > 1e-3  # the step did move floating nodes
    np.testing.assert_allclose(out.v_clamped[eng.task.target_index], [0.5, 0.4, -0.6])


def reference_relax(net, hw, driven, v0, v_driven_new, positions, t):
    """Dense reference: charge-conserving jump, then expm of the generalised system."""
    n = net.n_nodes
    fl = np.setdiff1d(np.arange(n), driven)
    LC = capacitance_matrix(net, hw)
    LG = net.laplacian(hw.pot.conductance(positions))
    vd = v_driven_new
    q = LC[fl] @ v0
    v_jump = np.linalg.solve(LC[np.ix_(fl, fl)], q - LC[np.ix_(fl, driven)] @ vd)
    v_star = -np.linalg.solve(LG[np.ix_(fl, fl)], LG[np.ix_(fl, driven)] @ vd)
    M = np.linalg.solve(LC[np.ix_(fl, fl)], LG[np.ix_(fl, fl)])
    out = np.empty(n)
    out[driven] = vd
    out[fl] = v_star + sla.expm(-M * t) @ (v_jump - v_star)
    return out


def _relax_against_expm(d64, model, R, seed, method=None):
    """One relaxation of delaunay64's twins from random voltages at random positions, checked against
    ``reference_relax`` (the matrix exponential) to 1e-12; returns ``(engine, task, hardware, positions, state)``."""
    task = load_task("random:5,3,4", d64).bind(d64)
    hw = Hardware.from_R(R, capacitance=220e-6, capacitance_model=model)
    eng = ExactEngine(d64, task, Board.nominal(d64, hw), method=method)
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 128, d64.n_edges)
    st = eng.state(pos, rng.normal(size=64), rng.normal(size=64), clamp=[0.1, 0.2, 0.3])
    clamp = np.array([-0.3, 0.0, 0.7])
    out = eng.relax(st, clamp, hw.period)
    S, T = task.source_index, task.target_index
    ref_f = reference_relax(d64, hw, S, st.v_free, task.source_voltage, pos, hw.period)
    both = np.concatenate([S, T])
    ref_c = reference_relax(d64, hw, both, st.v_clamped, np.concatenate([task.source_voltage, clamp]), pos, hw.period)
    scale = np.abs(st.v_clamped).max()
    np.testing.assert_allclose(out.v_free, ref_f, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(out.v_clamped, ref_c, rtol=0, atol=1e-12 * scale)
    return eng, task, hw, pos, out


@pytest.mark.parametrize("model", ["per_edge", "global"])
@pytest.mark.parametrize("R", [0.01, 1.0, 100.0])
def test_twins_match_matrix_exponential(d64, model, R):
    _relax_against_expm(d64, model, R, seed=2)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_long_time_limit_is_laplacian_equilibrium(d64, model):
    task = load_task("random:5,3,5", d64).bind(d64)
    hw = Hardware(capacitance=2.2e-6, capacitance_model=model)
    eng = ExactEngine(d64, task, Board.nominal(d64, hw))
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 128, d64.n_edges)
    st = eng.state(pos, rng.normal(size=64), rng.normal(size=64), clamp=[0.0, 0.1, 0.2])
    out = eng.relax(st, [0.3, 0.2, 0.1], 1e3)  # ~ 1e3 / (R_max C) >> 1 time constants
    L = d64.laplacian(hw.pot.conductance(pos))
    for driven, vd, got in [
        (task.source_index, task.source_voltage, out.v_free),
        (np.concatenate([task.source_index, task.target_index]),
         np.concatenate([task.source_voltage, [0.3, 0.2, 0.1]]), out.v_clamped),
    ]:
        fl = np.setdiff1d(np.arange(64), driven)
        want = -np.linalg.solve(L[np.ix_(fl, fl)], L[np.ix_(fl, driven)] @ vd)
        np.testing.assert_allclose(got[fl], want, rtol=0, atol=1e-12)
        # Kirchhoff's current law at every floating node, no current into capacitors
        np.testing.assert_allclose((L @ got)[fl], 0, atol=1e-12 * np.abs(L).max())
    np.testing.assert_allclose(eng.equilibrium_free(out), out.v_free, atol=1e-12)


def test_global_model_is_gamma_p_laplacian_flow(d64):
    """global: dv/dt = -gamma_p L v with L the Laplacian of the conductances in units of 1/R0."""
    task = load_task("random:5,3,6", d64).bind(d64)
    c = 22e-6
    hw = Hardware(capacitance=c, capacitance_model="global")
    eng = ExactEngine(d64, task, Board.nominal(d64, hw))
    rng = np.random.default_rng(4)
    pos = rng.integers(0, 128, d64.n_edges)
    v0 = rng.normal(size=64)
    v0[task.source_index] = task.source_voltage
    st = eng.state(pos, v0, v0, clamp=v0[task.target_index])
    t = 0.37 * R0 * c
    out = eng.relax(st, st.clamp, t)
    gamma_p = 1 / (R0 * c)
    L = d64.laplacian(R0 * hw.pot.conductance(pos))  # dimensionless conductances G = R0 / R
    fl = np.setdiff1d(np.arange(64), task.source_index)
    # affine ODE on floating nodes: dv_F/dt = -gamma_p (L_FF v_F + L_FS v_S)
    vs = task.source_voltage
    v_star = -np.linalg.solve(L[np.ix_(fl, fl)], L[np.ix_(fl, task.source_index)] @ vs)
    want = v_star + sla.expm(-gamma_p * t * L[np.ix_(fl, fl)]) @ (v0[fl] - v_star)
    np.testing.assert_allclose(out.v_free[fl], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_a_diagonal_capacitor_frame_scales_the_laplacian_to_the_products_numbers(d64, model):
    """Capacitors to ground (``global``, drawn per node) make the frame ``K`` diagonal: ``A = K^-1 L K^-T`` is then
    the Laplacian scaled by ``k_i k_j``, bit for bit the two products' numbers (they add exact zeros); per-edge
    capacitors give a full ``K``: the sparse Laplacian by ``K^-T``, then the product by ``K^-1``, the same matrix to
    rounding, for one board and for a batch with one frame or a frame per board."""
    from spicelearn.engines.exact import FloatingLaplacian, capacitor_frame, frame_transform
    from spicelearn.model.hardware import Capacitor

    task = load_task("random:5,3,6", d64).bind(d64)
    hw = Hardware(capacitance_model=model, capacitor=Capacitor(tolerance=0.2))
    rng = np.random.default_rng(1)
    boards = [Board.draw(d64, hw, rng) for _ in range(3)]
    floating = np.concatenate([task.clamped_floating, task.target_index])
    frames = [capacitor_frame(d64, board, floating, task.clamped_floating.size, 0) for board in boards]
    assert all((f.kinv_diag is not None) == (model == "global") for f in frames)
    g = np.stack([b.conductance(rng.integers(0, 128, d64.n_edges), 0) for b in boards])
    L = np.stack([d64.laplacian(gb)[np.ix_(floating, floating)] for gb in g])
    want = np.stack([f.Kinv @ Lb @ f.Kinv.T for f, Lb in zip(frames, L)])
    np.testing.assert_allclose(FloatingLaplacian(d64, floating, 3).dense(g), L, rtol=1e-15, atol=1e-15 * abs(L).max())
    batch = FloatingLaplacian(d64, floating, 3)  # the sparse entries: a bincount alone, a sparse product in a batch
    entries = batch.entries(g)
    np.testing.assert_array_equal(entries, np.concatenate([FloatingLaplacian(d64, floating).entries(gb) for gb in g]))
    np.testing.assert_allclose(entries, L[:, batch.rows, batch.cols], rtol=1e-15, atol=1e-15 * abs(L).max())
    frame = frames[0]
    one = frame_transform(FloatingLaplacian(d64, floating), g[0], frame.kinv_diag, frame.Kinv, frame.Kinv.T)
    if model == "global":
        np.testing.assert_array_equal(one[0], frame.Kinv @ FloatingLaplacian(d64, floating).dense(g[0])[0]
                                      @ frame.Kinv.T)
        np.testing.assert_allclose(frame.kinv_diag, 1 / np.sqrt(boards[0].twin_capacitance(0)[floating]),
                                   rtol=1e-15)
        return
    scale = abs(want).max()
    np.testing.assert_allclose(one[0], want[0], rtol=0, atol=1e-14 * scale)
    batch = FloatingLaplacian(d64, floating, 3)
    shared = frame_transform(batch, g, None, frame.Kinv[None], frame.Kinv.T[None])
    np.testing.assert_array_equal(shared[0], one[0])  # a board's numbers whatever its batch
    np.testing.assert_allclose(shared, np.stack([frame.Kinv @ Lb @ frame.Kinv.T for Lb in L]), rtol=0,
                               atol=1e-14 * scale)
    own = frame_transform(batch, g, None, np.stack([f.Kinv for f in frames]), np.stack([f.Kinv.T for f in frames]))
    np.testing.assert_allclose(own, want, rtol=0, atol=1e-14 * scale)
    np.testing.assert_array_equal(own[0], one[0])


def test_the_edge_bound_holds_every_rate_of_capacitors_to_ground(d64):
    """``edge_rate_bound``: the largest ``t_u + t_v`` over the edges (``t = s / c`` at floating nodes, 0 at driven
    ones) is above every eigenvalue of ``C^-1 L_G[FF]`` and of the clamped twin's block, on boards with drawn parts
    and random positions; and closer to the largest than Gershgorin's ``2 max t`` (what it replaced): its excess over
    the largest rate at least 1.2 times smaller on every board, over 2 times on most (fewer Chebyshev terms)."""
    from spicelearn.engines.exact import edge_rate_bound
    from spicelearn.model.hardware import Capacitor, Potentiometer

    task = load_task("random:5,3,6", d64).bind(d64)
    hw = Hardware(capacitance_model="global", capacitor=Capacitor(tolerance=0.3), pot=Potentiometer(tolerance=0.3))
    F, C = np.concatenate([task.clamped_floating, task.target_index]), task.clamped_floating
    rng = np.random.default_rng(3)
    gain = []
    for _ in range(20):
        board = Board.draw(d64, hw, rng)
        g = board.conductance(rng.integers(0, 128, d64.n_edges), 0)
        L, c = d64.laplacian(g), board.twin_capacitance(0)
        t = np.zeros(d64.n_nodes)
        t[F] = np.diag(L)[F] / c[F]
        bound = edge_rate_bound(t, d64.edge_nodes)
        lam = [np.linalg.eigvalsh(L[np.ix_(n, n)] / np.sqrt(np.outer(c[n], c[n])))[-1] for n in (F, C)]
        assert max(lam) <= bound * (1 + 1e-12)
        gain.append((2 * t.max() - lam[0]) / (bound - lam[0]))  # how much closer to the largest rate
    assert min(gain) > 1.2 and np.median(gain) > 2  # measured: 1.4 to 10, median 3.3


def test_power_is_non_negative_and_decreases_while_relaxing(d64):
    task = load_task("random:5,3,7", d64).bind(d64)
    hw = Hardware(capacitance=22e-6)
    eng = ExactEngine(d64, task, Board.nominal(d64, hw))
    rng = np.random.default_rng(5)
    pos = rng.integers(0, 128, d64.n_edges)
    st = eng.state(pos, rng.normal(size=64), rng.normal(size=64), clamp=[0.0, 0.0, 0.0])
    g = hw.pot.conductance(pos)
    powers = []
    for _ in range(20):
        st = eng.relax(st, st.clamp, 0.05 * hw.period)
        dv = d64.incidence @ st.v_free
        powers.append(np.sum(g * dv ** 2))
    assert min(powers) >= 0
    # dP/dt = -dv^T L_C dv <= 0 at fixed sources: relaxation never raises the dissipated power
    assert np.all(np.diff(powers) <= 1e-12 * powers[0])


# -- the fast dense path (Chebyshev expansion) against the matrix exponential and the eigen path ------------
@pytest.mark.parametrize("method", ["dense", "chebyshev"])
@pytest.mark.parametrize("model", ["per_edge", "global"])
@pytest.mark.parametrize("R", [0.001, 0.03, 0.3, 3.0, 1000.0])
def test_fast_paths_match_matrix_exponential(d64, method, model, R):
    eng, task, hw, pos, out = _relax_against_expm(d64, model, R, seed=7, method=method)
    # the equilibrium is a direct solve: exact, and Kirchhoff's current law holds at every floating node
    L = d64.laplacian(hw.pot.conductance(pos))
    v_eq = eng.equilibrium_free(out)
    fl = task.free_floating
    np.testing.assert_allclose((L @ v_eq)[fl], 0, atol=1e-12 * np.abs(L).max())


def test_chebyshev_plan_error_bound():
    x = np.linspace(0.0, 1.0, 2001)
    for lo, hi in [(0.0, 1e-3), (0.1, 12.8), (1.0, 128.0), (0.0, 40.0), (30.0, 3000.0)]:
        center, half, coef = chebyshev_plan(lo, hi)
        u = 2 * x - 1
        approx = np.polynomial.chebyshev.chebval(u, coef) if coef.size else 0 * u
        assert np.max(np.abs(approx - np.exp(-(center + half * u)))) < 5e-15  # the tail 1e-15, and rounding
    with pytest.raises(ConfigError, match="`lo`, `hi`"):
        chebyshev_plan(2.0, 1.0)


def test_chebyshev_plan_gives_up_on_long_expansions_without_computing_them():
    """With ``max_terms``: the same expansion where it is short enough, None where it is longer, decided without
    the coefficients of a wide interval (rates over twelve decades would need ~1e12 of them: 378 GiB)."""
    for lo, hi in [(0.0, 40.0), (1.0, 128.0), (30.0, 3000.0)]:
        coef = chebyshev_plan(lo, hi)[2]
        assert np.array_equal(chebyshev_plan(lo, hi, max_terms=coef.size - 1)[2], coef)
        assert chebyshev_plan(lo, hi, max_terms=coef.size - 2)[2] is None
        assert chebyshev_plan(lo, hi, max_terms=coef.size // 2)[2] is None
    for hi in (1e12, 1e24, 1e300):
        assert chebyshev_plan(0.0, hi, max_terms=150)[2] is None
    assert chebyshev_plan(40.0, 1e300, max_terms=150)[2].size == 0  # decayed over the whole interval


def test_capacitors_over_twelve_decades_take_the_eigen_path(lab):
    """Per-edge capacitors of 1 pF and 1 F side by side: the default path takes the eigensolve, which follows the
    sparse path (its shift-and-invert Krylov does not depend on the spread of the rates); a tick of 1e4 s, whose
    Chebyshev expansion would need ~1e11 coefficients (378 GiB), runs too, and a forced Chebyshev path says why it
    cannot."""
    c = np.where(np.arange(lab.n_edges) % 2, 1.0, 1e-12)
    task = load_task("default", lab).bind(lab)
    board = Board.nominal(lab, Hardware.from_R(1.0, capacitance=1e-6))
    board = dataclasses.replace(board, capacitance=np.broadcast_to(c, board.capacitance.shape).copy())
    p, p2 = np.full(lab.n_edges, 64), np.where(np.arange(lab.n_edges) % 3, 64, 10)

    def run(method, t):
        e = ExactEngine(lab, task, board, method=method)
        s = e.relax(e.init(p), task.target_voltage + 0.1, t)  # the clamped twin off its equilibrium
        return e, e.relax(e.set_positions(s, p2), task.target_voltage, t)  # and the free one

    (e, dense), (_, sparse) = run("dense", 1e-3), run("sparse", 1e-3)  # rates x t over [2e-8, 2e4]: 830 terms
    assert np.abs(dense.v_free - e.equilibrium_free(dense)).max() > 0.1  # a transient under way
    for v in ("v_free", "v_clamped"):
        np.testing.assert_allclose(getattr(dense, v), getattr(sparse, v), rtol=0, atol=1e-9)
    e, long = run("dense", 1e4)
    assert np.all(np.isfinite(long.v_free)) and np.all(np.isfinite(long.v_clamped))
    forced = ExactEngine(lab, task, board, method="chebyshev")
    with pytest.raises(ConfigError, match="method='chebyshev' would need over 10,000 terms"):
        forced.relax(forced.init(p), task.target_voltage, 1e4)


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_fast_path_follows_the_eigen_path_along_a_run(d64, model):
    """The loop's ticks (relax, set_positions, equilibrium) on both dense paths, twins of different pots and
    capacitors (each twin its own operators and frame): the same voltages to 1e-12."""
    from spicelearn.loop import Decide, run_loop
    from spicelearn.model.hardware import Capacitor, Potentiometer
    from spicelearn.model.rules import comparator_rule

    task = load_task("random:5,3,8", d64).bind(d64)
    hw = Hardware.from_R(1.0, capacitance=22e-6, capacitance_model=model,
                         pot=Potentiometer(tolerance=0.2, twin_mismatch=0.05),
                         capacitor=Capacitor(tolerance=0.1))
    board = Board.draw(d64, hw, np.random.default_rng(1))
    assert not board.twins_identical and not board.capacitors_identical
    runs = {}
    for method in ("eigen", "dense"):
        eng = ExactEngine(d64, task, board, method=method)
        runs[method] = run_loop(eng, 40, np.full(d64.n_edges, 63),
                                Decide.rule(board, comparator_rule("xor"), np.random.default_rng(0)))
    np.testing.assert_array_equal(runs["eigen"]["position"], runs["dense"]["position"])
    for var in ("v_free", "v_clamped", "mse_eq"):
        np.testing.assert_allclose(runs["dense"][var], runs["eigen"][var], rtol=0, atol=1e-12)


def test_fast_path_conserves_charge_at_a_clamp_step(d64):
    task = load_task("random:5,3,2", d64)
    hw = Hardware(capacitance=22e-6)
    eng = ExactEngine(d64, task.bind(d64), Board.nominal(d64, hw), method="chebyshev")
    rng = np.random.default_rng(1)
    st = eng.state(rng.integers(0, 128, d64.n_edges), rng.normal(size=64), rng.normal(size=64), clamp=[0.1, -0.2, 0.3])
    t = 1e-9 * hw.period  # the jump, and almost no relaxation
    out = eng.relax(st, [0.5, 0.4, -0.6], t)
    LC = capacitance_matrix(d64, eng.hardware)
    fl = eng.task.clamped_floating
    q_before, q_after = (LC @ st.v_clamped)[fl], (LC @ out.v_clamped)[fl]
    np.testing.assert_allclose(q_after, q_before, rtol=0, atol=1e-8 * np.abs(q_before).max())


def test_unknown_method_is_refused(d64):
    task = load_task("random:5,3,2", d64).bind(d64)
    with pytest.raises(ConfigError, match="`method` must be None or one of"):
        ExactEngine(d64, task, Board.nominal(d64, Hardware()), method="fast")
