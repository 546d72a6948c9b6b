"""The batched exact engine against B single runs, and against the physics directly.

A batch must give each of its runs what :func:`spicelearn.train` gives it alone: the same positions at
every tick and the same voltages to rounding (1e-10 V is the promise; we see ~1e-15). The runs of one
batch differ in every way a batch allows: capacitance model, rate, eta, rule, noise, task voltages, and
the drawn parts of imperfect boards.
"""

from dataclasses import replace

import numpy as np
import pytest

import spicelearn as sl
from spicelearn.engines.batched import BatchedExactEngine, _cholesky_solve_last, _solve_small
from spicelearn.errors import ConfigError, NetworkError
from spicelearn.loop import Decide, supervisors, train, train_batch
from spicelearn.model.board import Board
from spicelearn.model.hardware import Capacitor, Comparator, Hardware, Potentiometer, Supervisor
from spicelearn.model.rules import xor_rule
from spicelearn.model.task import Task, bind

VOLT_TOL = 1e-10


def assert_same_runs(batch, singles):
    assert len(batch) == len(singles)
    for i, (b, s) in enumerate(zip(batch, singles)):
        np.testing.assert_array_equal(b.position.values, s.position.values, err_msg=f"run {i}: positions")
        for v in ("v_free", "v_clamped"):
            np.testing.assert_allclose(b[v].values, s[v].values, rtol=0, atol=VOLT_TOL, err_msg=f"run {i}: {v}")
        for v in ("mse", "mse_eq", "mse0", "time"):
            np.testing.assert_allclose(b[v].values, s[v].values, rtol=1e-9, atol=1e-18, err_msg=f"run {i}: {v}")
        assert set(b.data_vars) == set(s.data_vars), i
        for k in ("backend", "seed", "R", "gamma_l", "eta", "rule", "capacitance_model"):
            assert b.attrs.get(k) == s.attrs.get(k), (i, k)


def _singles(network, runs, steps):
    return [train(network, r.get("task", "default"), r.get("hardware"), steps=steps, seed=r.get("seed", 0),
                  rule=r.get("rule"), board_seed=r.get("board_seed"), positions=r.get("positions"))
            for r in runs]


def test_a_mixed_batch_is_its_single_runs():
    """Both capacitance models, both rules, three rates, two etas, noise on and off, in one batch."""
    runs = []
    for model in ("per_edge", "global"):
        for R, eta, rule, noise in ((0.3, 0.5, "xor", 0.0), (1.0, 0.2, "xor-legacy", 0.01), (5.0, 0.5, "xor", 0.02)):
            runs.append(dict(hardware=Hardware.from_R(R, capacitance_model=model, eta=eta, rule=rule,
                                                      comparator=Comparator(noise=noise)), seed=len(runs)))
    assert_same_runs(train_batch("lab16", runs, steps=150), _singles("lab16", runs, 150))


def test_a_batch_of_one_is_the_single_run():
    runs = [dict(hardware=Hardware.from_R(1.0, comparator=Comparator(noise=0.01)), seed=4)]
    assert_same_runs(train_batch("lab16", runs, steps=200), _singles("lab16", runs, 200))


def test_imperfect_boards_in_a_batch_are_their_single_runs():
    """Drawn parts (pots, twin mismatch, per-twin capacitors, offsets), wiper, leakage, misses, jitter and
    converters: every board its own draw, the same as the single run of its (seed, board)."""
    hw = Hardware.from_R(1.0, capacitance=22e-6, pot=Potentiometer(tolerance=0.2, twin_mismatch=0.02, wiper=60.0,
                                                                  miss_probability=0.01),
                         capacitor=Capacitor(tolerance=0.1, leakage=5e6),
                         comparator=Comparator(noise=0.01, offset_sigma=2e-3),
                         supervisor=Supervisor(dac_bits=10, adc_bits=10), jitter=0.05)
    ideal = Hardware.from_R(1.0, capacitance=22e-6, comparator=Comparator(noise=0.01))
    runs = [dict(hardware=hw, seed=7, board_seed=b) for b in range(4)] + [dict(hardware=ideal, seed=7)]
    batch = train_batch("lab16", runs, steps=150)
    assert_same_runs(batch, _singles("lab16", runs, 150))
    assert "duration" in batch[0] and "duration" not in batch[-1]
    assert not np.array_equal(batch[0].r_ab.values, batch[1].r_ab.values)  # each board its own parts


def test_task_voltages_may_differ_within_a_batch_on_delaunay64():
    net = sl.load_network("delaunay64")
    base = sl.random_task(net, 4, 2, seed=1)
    tasks = [base, Task(base.sources, {k: v + 0.05 for k, v in base.targets.items()})]
    runs = [dict(task=t, hardware=Hardware.from_R(R, comparator=Comparator(noise=0.01)), seed=1)
            for t in tasks for R in (0.5, 2.0)]
    assert_same_runs(train_batch(net, runs, steps=40), _singles(net, runs, 40))


def test_larger_networks_with_global_capacitance_and_imperfect_boards_are_their_single_runs():
    """delaunay64 through the paths above the small-network size: a shared frame with global capacitance
    (Gershgorin bounds), boards whose capacitors differ (each its own frame), twins that differ (each twin its own
    matrix in the Chebyshev products), and the eigen path at small R."""
    net = sl.load_network("delaunay64")
    imperfect = Hardware.from_R(1.0, pot=Potentiometer(tolerance=0.1, twin_mismatch=0.02),
                                capacitor=Capacitor(tolerance=0.1), comparator=Comparator(noise=0.01))
    spread = np.random.default_rng(3).integers(0, 128, net.n_edges)  # wide spectra: the eigen path at small R
    for model in ("global", "per_edge"):  # one frame for each batch: the shared frame's paths
        runs = [dict(task="random:5,3,0", hardware=Hardware.from_R(R, capacitance_model=model,
                                                                    comparator=Comparator(noise=0.01)),
                     seed=s, positions=spread) for R, s in ((1.0, 0), (0.01, 1))]
        assert_same_runs(train_batch(net, runs, steps=30), _singles(net, runs, 30))
    runs = [dict(task="random:5,3,0", hardware=imperfect, seed=2, board_seed=b) for b in range(2)]
    assert_same_runs(train_batch(net, runs, steps=30), _singles(net, runs, 30))


@pytest.mark.parametrize("twins", ["equal", "differ"])  # one operator in charge coordinates; one per twin
@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_node_voltages_stay_exact_with_capacitors_spread_over_four_decades(model, twins):
    """Larger networks run the Chebyshev recurrence in node voltages on ``C^-1 L_G``, not symmetric where the
    capacitors differ (equal twins: on its similar ``N``, in the clamped-floating nodes' charge coordinates): with
    capacitors spread over four decades (R = 10, where expansions of up to ~100 terms take that path), every tick's
    voltages are the single engine's (capacitors' frames) to 1e-10 V, through clamp steps, relaxations of one to
    three periods and new positions."""
    from spicelearn.engines.exact import ExactEngine

    bound = bind("delaunay64", "random:5,3,0")
    net, rng = bound.network, np.random.default_rng(2)
    nominal = Board.nominal(net, Hardware.from_R(10.0, capacitance_model=model))
    shape = nominal.capacitance.shape if twins == "equal" else (2,) + nominal.capacitance.shape
    boards = [nominal.replace(capacitance=nominal.capacitance * 10 ** rng.uniform(-2, 2, shape)) for _ in range(3)]
    assert all(b.twins_identical == (twins == "equal") for b in boards)
    engine, singles = BatchedExactEngine(net, [bound] * 3, boards), [ExactEngine(net, bound, b) for b in boards]
    p = rng.integers(0, 128, (3, net.n_edges))
    clamp = np.tile(bound.target_voltage + 0.01, (3, 1))
    state, alone = engine.init(p, clamp=clamp), [s.init(p[i], clamp=clamp[i]) for i, s in enumerate(singles)]
    for k in range(20):
        clamp = clamp + rng.normal(0.0, 0.01, clamp.shape)
        d = np.array([b.period for b in boards]) * (1 + k % 3)
        state = engine.relax(state, clamp, d)
        alone = [s.relax(a, clamp[i], d[i]) for i, (s, a) in enumerate(zip(singles, alone))]
        for i, a in enumerate(alone):
            np.testing.assert_allclose(state.v_free[i], a.v_free, rtol=0, atol=VOLT_TOL, err_msg=f"tick {k}")
            np.testing.assert_allclose(state.v_clamped[i], a.v_clamped, rtol=0, atol=VOLT_TOL, err_msg=f"tick {k}")
        p = np.clip(p + rng.choice([-1, 1], p.shape), 0, 127)
        state = engine.set_positions(state, p)
        alone = [s.set_positions(a, p[i]) for i, (s, a) in enumerate(zip(singles, alone))]


def test_tiny_rates_take_the_eigen_path_without_tabling_their_expansions():
    """R = 1e-10 beside R = 1 in one batch, both capacitance models, imperfect pots (the intervals' half-widths
    up to ~1e10, whose Chebyshev expansions would need as many coefficients: tens of GB): the runs are their single
    runs, and the table of expansions spans a bounded range of intervals."""
    from spicelearn.engines.batched import _J_TOO_LONG, _TABLE

    runs = [dict(hardware=Hardware.from_R(R, capacitance_model=model, pot=Potentiometer(tolerance=0.3),
                                          comparator=Comparator(noise=0.01)), seed=1, board_seed=b)
            for model in ("per_edge", "global") for b, R in enumerate((1.0, 1e-10))]
    assert_same_runs(train_batch("lab16", runs, steps=20), _singles("lab16", runs, 20))
    assert _TABLE.j0 + _TABLE.size.size <= _J_TOO_LONG + 1


def test_custom_rules_run_board_by_board_with_the_same_draws():
    def inverted(dv_free, dv_clamped, offset, noise, rng):
        return ~xor_rule(dv_free, dv_clamped, offset, noise, rng)

    runs = [dict(hardware=Hardware.from_R(1.0, comparator=Comparator(noise=0.01)), seed=s, rule=r)
            for s, r in ((0, inverted), (1, None))]
    batch = train_batch("lab16", runs, steps=60)
    assert_same_runs(batch, _singles("lab16", runs, 60))
    assert batch[0].attrs["rule"] == "inverted"


@pytest.mark.parametrize("returns", [None, "up", np.full(16, 2), np.full(16, 0.5), np.zeros(3, dtype=bool)])
def test_a_custom_rule_must_return_a_boolean_per_edge(returns):
    """None (every pot down) or 2 (every pot up) was taken as a decision; a wrong shape failed inside numpy."""
    with pytest.raises(ConfigError, match=r"`rule` must return a boolean array of shape \(16,\)"):
        train("lab16", "default", steps=3, rule=lambda *args: returns)


def test_a_batchs_runs_of_one_design_share_its_nominal_board_and_the_collector_is_left_as_it_was(monkeypatch):
    """Runs of equal designs without tolerances share one (immutable) board; a rule override, a drawn board and another
    design each get their own; the runs are their single runs all the same. The garbage collector, held off while
    the batch makes its boards and run files, is on or off after as it was before."""
    import gc

    import spicelearn.engines.batched as batched

    lab, spread = Hardware.from_R(1.0, comparator=Comparator(noise=0.01)), Hardware(capacitor=Capacitor(tolerance=0.1))
    equal = Hardware.from_R(1.0, comparator=Comparator(noise=0.01))  # another object, the same design
    runs = [dict(hardware=lab, seed=0), dict(hardware=equal, seed=1), dict(hardware=lab, seed=2, rule="xor-legacy"),
            dict(hardware=spread, seed=3), dict(hardware=spread, seed=4), dict(seed=5)]
    boards = []

    class Spy(batched.BatchedExactEngine):
        def __init__(self, network, tasks, bs):
            boards.extend(bs)
            super().__init__(network, tasks, bs)

    monkeypatch.setattr(batched, "BatchedExactEngine", Spy)
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            batch = train_batch("lab16", runs, steps=40)
            assert gc.isenabled() == enabled
        finally:
            gc.enable()
    assert boards[0] is boards[1] and boards[2] is not boards[0] and boards[2].hardware.rule == "xor-legacy"
    assert boards[3] is not boards[4] and not np.array_equal(boards[3].capacitance, boards[4].capacitance)
    assert boards[5] is not boards[0]
    assert_same_runs(batch, _singles("lab16", runs, 40))
    assert [b.attrs["board_nominal"] for b in batch] == [1, 1, 1, 0, 0, 1]
    with pytest.raises(ConfigError, match="`hardware` must be a spicelearn Hardware"):
        train_batch("lab16", [dict(hardware={"R": 1.0})], steps=5)


def test_chunks_give_the_same_runs_as_one_batch(monkeypatch):
    """Six runs at most four at once: two chunks of three (as few as allowed, of equal sizes), the same runs."""
    import spicelearn.loop as loop

    runs = [dict(hardware=Hardware.from_R(R, comparator=Comparator(noise=0.01)), seed=s)
            for R in (0.5, 2.0) for s in range(3)]
    whole = train_batch("lab16", runs, steps=50)
    sizes, real = [], loop.run_batch
    monkeypatch.setattr(loop, "run_batch", lambda engine, *a, **k: sizes.append(engine.size) or real(engine, *a, **k))
    chunked = train_batch("lab16", runs, steps=50, chunk=4)
    assert sizes == [3, 3]
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a.position.values, b.position.values)
        np.testing.assert_array_equal(a.v_free.values, b.v_free.values)


def test_a_boards_run_does_not_depend_on_the_rest_of_its_batch():
    """Bit for bit the same run alone, in a batch, or in a chunk of another size: each board's arithmetic is its
    own (per-board paths, per-slice products, einsum rather than BLAS across boards), so a sweep resumed after a
    kill, whose batches are composed differently, ends with the same files."""
    runs = [dict(hardware=Hardware.from_R(R, comparator=Comparator(noise=0.01)), seed=s)
            for R, s in ((0.02, 0), (1.0, 1), (30.0, 2), (0.02, 3), (3.0, 4))]
    whole = train_batch("lab16", runs, steps=120)
    assert train_batch("lab16", runs, steps=120, chunk=2)[3].mse.values.tobytes() == whole[3].mse.values.tobytes()
    for i in (0, 2):
        alone = train_batch("lab16", [runs[i]], steps=120)[0]
        for v in ("position", "v_free", "v_clamped", "mse", "mse_eq"):
            np.testing.assert_array_equal(alone[v].values, whole[i][v].values, err_msg=f"run {i}: {v}")


def test_a_boards_run_on_delaunay64_does_not_depend_on_its_batch():
    """Nominal boards on a larger network share one frame, and the batch's sparse Laplacians one sparse product:
    still bit for bit the same run alone, in a batch of odd or even size, and in chunks."""
    net = sl.load_network("delaunay64")
    runs = [dict(task="random:5,3,0", hardware=Hardware.from_R(R, comparator=Comparator(noise=0.01)), seed=s)
            for R, s in ((1.0, 0), (0.3, 1), (3.0, 2), (1.0, 3), (0.05, 4))]
    whole = train_batch(net, runs, steps=40)
    parts = train_batch(net, runs, steps=40, chunk=2) + train_batch(net, runs[:3], steps=40)
    alone = train_batch(net, [runs[3]], steps=40)
    for i, other in ((1, parts[1]), (4, parts[4]), (2, parts[7]), (3, alone[0])):
        for v in ("position", "v_free", "v_clamped", "mse_eq"):
            np.testing.assert_array_equal(other[v].values, whole[i][v].values, err_msg=f"run {i}: {v}")


def _engine(n=3, model="per_edge", network="lab16"):
    bound = bind(network, "default" if network == "lab16" else "random:5,3,0")
    hw = Hardware(capacitance_model=model, pot=Potentiometer(tolerance=0.3), capacitor=Capacitor(tolerance=0.2))
    rng = np.random.default_rng(5)
    boards = [Board.draw(bound.network, hw, rng) for _ in range(n)]
    return BatchedExactEngine(bound.network, [bound] * n, boards), bound, boards


@pytest.mark.parametrize("network", ["lab16", "delaunay64"])
@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_equilibria_satisfy_kirchhoffs_current_law(model, network):
    """At equilibrium the current into every floating node is zero: ``(L_G v)_F = 0`` in each free twin, and in
    each clamped twin at its clamped-floating nodes, every board with its own resistances."""
    engine, bound, boards = _engine(model=model, network=network)
    rng = np.random.default_rng(0)
    p = rng.integers(0, 128, size=(3, bound.network.n_edges))
    state = engine.init(p, default_clamp=supervisors(engine.tasks, boards))
    for b, board in enumerate(boards):
        for twin, v, floating in ((0, state.v_free[b], bound.free_floating),
                                  (1, state.v_clamped[b], bound.clamped_floating)):
            L = bound.network.laplacian(board.conductance(p[b], twin))
            current = (L @ v)[floating]
            assert np.max(np.abs(current)) < 1e-12 * np.max(np.abs(L)), (b, twin)


@pytest.mark.parametrize("network", ["lab16", "delaunay64"])  # capacitors' frames; node voltages
def test_a_clamp_step_conserves_every_floating_nodes_charge(network):
    """A zero-duration relaxation is the jump alone: ``L_C[C, :] v_C`` (the charge on each clamped-floating node)
    is the same before and after, on every board with its own capacitors; the free twins do not move."""
    engine, bound, boards = _engine(network=network)
    p = np.full((3, bound.network.n_edges), 63)
    state = engine.init(p, default_clamp=supervisors(engine.tasks, boards))
    new = state.clamp + np.array([[0.1, -0.2, 0.15][:bound.target_index.size]] * 3)
    after = engine.relax(state, new, np.zeros(3))
    C = bound.clamped_floating
    for b, board in enumerate(boards):
        LC = board.capacitance_matrix(bound.network, 1)
        np.testing.assert_allclose((LC @ after.v_clamped[b])[C], (LC @ state.v_clamped[b])[C], rtol=0,
                                   atol=1e-12 * np.abs(LC).max())
        np.testing.assert_allclose(after.v_free[b], state.v_free[b], rtol=0, atol=1e-14)
        np.testing.assert_array_equal(after.v_clamped[b, bound.target_index], new[b])


@pytest.mark.parametrize("network", ["lab16", "delaunay64"])
def test_a_state_with_other_voltages_relaxes_from_them_not_from_its_kept_coordinates(network):
    """The engine keeps each state's coordinates (in its capacitors' frames, or node voltages); a state given other
    voltages (``dataclasses.replace``) relaxes from those voltages: a zero-duration step keeps them, and from a copy
    of the engine's own voltages it relaxes as the engine's state does."""

    engine, bound, boards = _engine(network=network)
    p = np.full((3, bound.network.n_edges), 40)
    state = engine.init(p, default_clamp=supervisors(engine.tasks, boards))
    period = np.array([b.period for b in boards])
    state = engine.relax(state, state.clamp + 0.05, period)  # off equilibrium, its coordinates kept
    F = bound.free_floating
    moved = state.v_free.copy()
    moved[:, F] += np.linspace(-0.2, 0.2, F.size)
    jumped = engine.relax(replace(state, v_free=moved), state.clamp, np.zeros(3))
    np.testing.assert_allclose(jumped.v_free, moved, rtol=0, atol=1e-12)
    copied = replace(state, v_free=state.v_free.copy(), v_clamped=state.v_clamped.copy())
    for a, b in zip(engine.voltages(engine.relax(copied, state.clamp, period)),
                    engine.voltages(engine.relax(state, state.clamp, period))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("network", ["lab16", "delaunay64"])
def test_a_long_relaxation_reaches_the_clamped_equilibrium_and_a_short_one_barely_moves(network):
    """Exact exponential decay: after 1e3 slowest time constants each clamped twin sits at the equilibrium of its
    new clamps; after 1e-9 of the fastest, it has moved by less than 1e-6 of the way."""
    engine, bound, boards = _engine(network=network)
    p = np.full((3, bound.network.n_edges), 63)
    sup = supervisors(engine.tasks, boards)
    state = engine.init(p, default_clamp=sup)
    new = state.clamp + 0.1
    target = engine.init(p, clamp=new)
    lam = state.clamped.eigen()[0]
    slow, fast = 1.0 / lam.min(axis=1), 1.0 / lam.max(axis=1)
    jumped = engine.relax(state, new, np.zeros(3))
    long = engine.relax(state, new, 1e3 * slow)
    np.testing.assert_allclose(long.v_clamped, target.v_clamped, rtol=0, atol=1e-12)
    short = engine.relax(state, new, 1e-9 * fast)
    moved = np.abs(short.v_clamped - jumped.v_clamped).max()
    assert moved < 1e-6 * np.abs(target.v_clamped - jumped.v_clamped).max()


def test_block_draws_are_the_per_tick_draws():
    """The decider draws 64 ticks of standard normal noise at once and scales them; numpy's generators give the
    same numbers as a draw of N(0, sigma^2) per tick and comparator."""
    for sigma in (0.01, 0.02, 0.3):
        a, b = np.random.default_rng(3), np.random.default_rng(3)
        block = a.standard_normal((Decide.BLOCK, 2, 16)) * sigma
        ticks = np.array([[b.normal(0.0, sigma, size=16) for _ in range(2)] for _ in range(Decide.BLOCK)])
        np.testing.assert_array_equal(block, ticks)


def test_the_batch_last_cholesky_solves_and_refuses_what_is_not_positive_definite():
    """Agrees with LAPACK on random positive-definite stacks; a pivot that is negative, zero or NaN (a floating
    island makes the matrix singular) is a NetworkError, with no numpy warning on the way."""
    import warnings

    rng = np.random.default_rng(0)
    g = rng.standard_normal((6, 7, 7))
    a = g @ np.swapaxes(g, 1, 2) + 0.1 * np.eye(7)
    b = rng.standard_normal((6, 7, 3))
    x = np.moveaxis(_cholesky_solve_last(np.moveaxis(a, 0, -1), np.moveaxis(b, 0, -1)), -1, 0)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)
    for bad in (-1.0, 0.0, np.nan):
        c = a.copy()
        c[2, 3, :] = c[2, :, 3] = 0.0
        c[2, 3, 3] = bad
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(NetworkError, match="singular"):
                _cholesky_solve_last(np.moveaxis(c, 0, -1), np.moveaxis(b, 0, -1))


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_small_solves_agree_with_lapack(m):
    rng = np.random.default_rng(m)
    a = rng.standard_normal((4, 5, m, m)) + 1j * rng.standard_normal((4, 5, m, m)) + 3 * np.eye(m)
    x = rng.standard_normal((4, 5, m)) + 1j * rng.standard_normal((4, 5, m))
    np.testing.assert_allclose(_solve_small(a, np.einsum("...ij,...j->...i", a, x)), x, rtol=1e-12, atol=1e-12)


def test_bad_batches_are_refused_with_the_reason():
    net = sl.load_network("delaunay64")
    t1, t2 = sl.random_task(net, 4, 2, seed=1), sl.random_task(net, 4, 2, seed=2)
    with pytest.raises(ConfigError, match=r"`tasks\[1\]` drives other nodes"):
        train_batch(net, [dict(task=t1), dict(task=t2)], steps=5)
    with pytest.raises(ConfigError, match="`runs` is empty"):
        train_batch("lab16", [], steps=5)
    for bad in (None, dict(seed=1), "seed"):
        with pytest.raises(ConfigError, match="`runs` must be a sequence of mappings"):
            train_batch("lab16", bad, steps=5)
    with pytest.raises(ConfigError, match=r"`runs\[0\]`.*\['bogus'\]"):
        train_batch("lab16", [dict(bogus=1)], steps=5)
    with pytest.raises(ConfigError, match="`chunk`"):
        train_batch("lab16", [dict()], steps=5, chunk=0)
    with pytest.raises(ConfigError, match=r"`tasks\[0\]` must be a task bound to the network"):
        BatchedExactEngine(net, [t1], [sl.Board.nominal(net, sl.Hardware())])
    with pytest.raises(ConfigError, match="`hardware` must be a spicelearn Hardware .* got str"):
        train_batch("lab16", [dict(), dict(hardware="lab")], steps=5)
    engine, bound, boards = _engine()
    with pytest.raises(ConfigError, match="`positions` must have shape"):
        engine.init(np.zeros((2, bound.network.n_edges), int), clamp=np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="`positions` of board 1"):
        p = np.full((3, bound.network.n_edges), 63)
        p[1, 0] = 128
        engine.init(p, clamp=np.zeros((3, 2)))
    state = engine.init(np.full((3, bound.network.n_edges), 63), clamp=np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="`duration`"):
        engine.relax(state, np.zeros((3, 2)), np.array([1.0, -1.0, 1.0]))
    for duration in ("x", np.full(3, "1.0")):
        with pytest.raises(ConfigError, match="`duration`"):
            engine.relax(state, np.zeros((3, 2)), duration)
    with pytest.raises(ConfigError, match="`clamp` must be finite volts"):
        engine.relax(state, np.full((3, 2), "a"), np.ones(3))
    with pytest.raises(ConfigError, match="`default_clamp`, a function"):
        engine.init(np.full((3, bound.network.n_edges), 63), default_clamp=5)
    other = _engine()[0].init(np.full((3, bound.network.n_edges), 63), clamp=np.zeros((3, 2)))
    for bad in (None, "x", replace(other, v_free=other.v_free[:2])):
        for call in (lambda: engine.relax(bad, np.zeros((3, 2)), np.ones(3)), lambda: engine.equilibrium_free(bad),
                     lambda: engine.set_positions(bad, np.full((3, bound.network.n_edges), 63))):
            with pytest.raises(ConfigError, match="`state` must be a state this engine returned"):
                call()


def test_a_chunks_records_take_the_memory_their_bound_says(monkeypatch):
    """``batch_record_bytes`` is what a chunk holds at its peak (its arrays, which the run files hold as views, and
    the errors' temporaries), up to the engine's own: a chunk's memory is bounded as the docs say, and the bound is
    not so loose that chunks are needlessly small."""
    import tracemalloc

    import spicelearn.loop as loop
    from spicelearn.engines.batched import engine_bytes

    steps, limit = 400, 4 * 2**20
    monkeypatch.setattr(loop, "BATCH_MEMORY", limit)
    records = loop.batch_record_bytes(steps, 9, 16, 2)
    per_board = records + engine_bytes(7, 16, 9)
    B = limit // per_board
    runs = [dict(hardware=Hardware.from_R(1.0, comparator=Comparator(noise=0.01)), seed=s) for s in range(B)]
    train_batch("lab16", runs[:2], steps=10)  # imports and tables made once, outside the count
    tracemalloc.start()
    try:
        out = train_batch("lab16", runs, steps=steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == B and B * per_board <= limit
    engine = 2 * 2**20  # the engine's matrices, the noise draws of 64 ticks, the expansions' table
    assert 0.8 * B * records <= peak <= B * per_board + engine, (peak, B * per_board)
    assert out[0].v_free.values.base is out[-1].v_free.values.base is not None  # views of one array, no copies


def test_the_engines_memory_is_bounded_and_sizes_the_chunks_of_short_runs(monkeypatch):
    """``engine_bytes`` bounds what the engine holds per board at its worst (imperfect boards: every board its own
    frames, twins that differ), and not loosely; where runs are short, it is what sizes the chunks."""
    import tracemalloc

    import spicelearn.engines.batched as batched
    import spicelearn.loop as loop

    net, steps, B = sl.load_network("delaunay64"), 20, 16
    per_board = batched.engine_bytes(59, net.n_edges, net.n_nodes) + loop.batch_record_bytes(steps, 64, 143, 3)
    hw = Hardware.from_R(1.0, pot=Potentiometer(tolerance=0.1, twin_mismatch=0.02), capacitor=Capacitor(tolerance=0.1),
                         comparator=Comparator(noise=0.01))
    runs = [dict(task="random:5,3,0", hardware=hw, seed=0, board_seed=b) for b in range(B)]
    train_batch(net, runs[:2], steps=5)
    tracemalloc.start()
    try:
        train_batch(net, runs, steps=steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.5 * B * per_board <= peak <= B * per_board + 2**20, (peak, B * per_board)  # measured: 0.76
    sizes, real = [], batched.BatchedExactEngine

    def counted(network, tasks, boards):
        sizes.append(len(boards))
        return real(network, tasks, boards)

    monkeypatch.setattr(batched, "BatchedExactEngine", counted)
    monkeypatch.setattr(loop, "BATCH_MEMORY", 3 * per_board)
    assert len(train_batch(net, runs[:7], steps=steps)) == 7
    assert sizes == [3, 3, 2]  # 7 boards in chunks of at most 3 (the lone last one beside its copy)


def test_a_batch_is_refused_where_its_records_exceed_the_limit_by_the_chunks_own_count(monkeypatch):
    """The refusal counts a batch's records as the chunks are sized (``batch_record_bytes``): a limit one byte short
    of a chunk's records refuses it, naming the runs; the exact amount runs."""
    import spicelearn.checks as checks
    import spicelearn.loop as loop

    steps, B = 20, 3
    need = B * loop.batch_record_bytes(steps, 9, 16, 2)
    runs = [dict(seed=s) for s in range(B)]
    monkeypatch.setattr(checks, "RECORD_MEMORY_LIMIT", need - 1)
    with pytest.raises(ConfigError, match=r"3 run\(s\) on 'lab16'"):
        train_batch("lab16", runs, steps=steps, chunk=B)
    monkeypatch.setattr(checks, "RECORD_MEMORY_LIMIT", need)
    assert len(train_batch("lab16", runs, steps=steps, chunk=B)) == B


def test_networks_where_a_batch_does_not_pay_run_one_by_one_as_train_runs_them(tmp_path, monkeypatch):
    """From ``SPARSE_FROM`` floating nodes single runs take the sparse path, faster than a batch's dense work a
    board-tick: ``train_batch`` then runs each board on the single engine (the same run files as ``train``, bit for
    bit, and no batched engine made), and a sweep's points there are not batched (``batch_key`` None)."""
    import spicelearn.engines.batched as batched
    from spicelearn.engines.exact import SPARSE_FROM
    from spicelearn.experiments.spec import batch_key, check_options, run_batch
    from spicelearn.model.generators import delaunay

    graph = delaunay(SPARSE_FROM + 10, 2 * (SPARSE_FROM + 10), seed=1)
    net = sl.compile_network(graph, name="big")
    task = bind(net, "random:5,3,0")
    assert task.clamped_floating.size + task.target_index.size >= SPARSE_FROM
    assert not batched.worth_batching(task) and batched.worth_batching(bind("delaunay64", "random:5,3,0"))

    def refuse(*args, **kwargs):
        raise AssertionError("a batched engine was made")

    monkeypatch.setattr(batched, "BatchedExactEngine", refuse)
    runs = [dict(task="random:5,3,0", hardware=Hardware.from_R(R, comparator=Comparator(noise=0.01)), seed=s)
            for R, s in ((1.0, 0), (0.5, 1))]
    out = train_batch(net, runs, steps=4)
    for b, s in zip(out, _singles(net, runs, 4)):
        for v in ("position", "v_free", "v_clamped", "mse_eq"):
            np.testing.assert_array_equal(b[v].values, s[v].values)
    path = tmp_path / "big.graphml"
    path.write_text(net.to_graphml())
    options = check_options({"network": str(path), "task": "random:5,3,0", "steps": 4})
    assert batch_key(options) is None
    assert batch_key(check_options({"network": "delaunay64", "task": "random:5,3,0", "steps": 4})) is not None
    with pytest.raises(ConfigError, match="worth_batching"):
        run_batch([options])
