"""The ngspice engine against the exact engine: replay, free-running training, faults."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from spicelearn.engines import get_engine
from spicelearn.engines.exact import ExactEngine
from spicelearn.errors import SpiceError
from spicelearn.loop import replay_run, train
from spicelearn.model.board import Board
from spicelearn.model.hardware import Hardware
from spicelearn.model.network import load_network
from spicelearn.model.rules import comparator_rule
from spicelearn.model.task import load_task

pytest.importorskip("PySpice")
from spicelearn.engines.ngspice.binding import ngspice  # noqa: E402
from spicelearn.engines.ngspice.engine import NgspiceEngine  # noqa: E402

TOL = 1e-5  # volts
TASKS = {"lab16": "default", "delaunay64": "random:5,3,0"}


def _learning_replay(name, model, c, R, steps=300):
    """Positions of a 300-step exact training run (noise 0), replayed through both engines."""
    hw = Hardware.from_R(R, capacitance=c, capacitance_model=model)
    ds = train(name, TASKS[name], hw, steps=steps, backend="exact")
    res = replay_run(ds)
    # the replay's exact engine reproduces the run itself: same circuit, same clamps
    np.testing.assert_allclose(res.v_free[0], ds["v_free"].values, atol=1e-12)
    assert np.ptp(ds["position"].values, axis=0).max() > 2  # the pots did move
    return res


#: The default suite's cases (lab16; delaunay64 is in the full grid, `make test-slow`, and in test_engines.py).
FAST_CASES = [("lab16", "per_edge", 2.2e-6, 0.1), ("lab16", "global", 220e-6, 10.0),
              ("lab16", "per_edge", 2200e-6, 1.0), ("lab16", "global", 22e-6, 1.0)]


def _full_grid(test):
    """The issue's grid (slow): lab16 and delaunay64, both models, c = 2.2 uF to 2.2 mF, R = 0.1, 1, 10."""
    for mark in (pytest.mark.parametrize("R", [0.1, 1.0, 10.0]),
                 pytest.mark.parametrize("c", [2.2e-6, 22e-6, 220e-6, 2200e-6]),
                 pytest.mark.parametrize("model", ["per_edge", "global"]),
                 pytest.mark.parametrize("name", ["lab16", "delaunay64"]), pytest.mark.slow):
        test = mark(test)
    return test


def _replay_agrees(name, model, c, R):
    res = _learning_replay(name, model, c, R)
    print(f"{name} {model} c={c} R={R}: max |dv| = {res.max_error:.2e} V")
    assert res.max_error < TOL


@pytest.mark.parametrize("name,model,c,R", FAST_CASES)
def test_replay_agrees_with_exact_engine(name, model, c, R):
    _replay_agrees(name, model, c, R)


@_full_grid
def test_replay_agrees_with_exact_engine_full_grid(name, model, c, R):
    _replay_agrees(name, model, c, R)


def _margin(net, vf, vc):
    """Smallest comparator margin ``min(|dv_F - dv_C|, |dv_F + dv_C|)`` per edge, shape (E,)."""
    eu, ev = net.edge_nodes.T
    dvf, dvc = vf[eu] - vf[ev], vc[eu] - vc[ev]
    return np.minimum(np.abs(dvf - dvc), np.abs(dvf + dvc))


@pytest.mark.parametrize("name,model,c,R", [("lab16", "per_edge", 2.2e-6, 1.0), ("lab16", "global", 22e-6, 0.1),
                                            pytest.param("delaunay64", "per_edge", 2.2e-6, 10.0,
                                                         marks=pytest.mark.slow)])
def test_free_running_training_takes_the_same_steps(name, model, c, R):
    _same_steps(name, model, c, R)


@_full_grid
def test_free_running_training_takes_the_same_steps_full_grid(name, model, c, R):
    _same_steps(name, model, c, R)


def _same_steps(name, model, c, R, steps=300):
    """Noise 0, 300 ticks: the ngspice engine's comparators, deciding from its own voltages along an exact
    training run, take the exact engine's steps at every tick.

    The exact run is replayed through the ngspice engine (its positions and clamps), so every tick is
    compared. The comparators are exact, so the engines may differ only on an edge whose comparator
    input is within 1e-6 V of its threshold (a tie that 1e-6 V voltage differences can break either
    way; once a run has learned its task, clamped and free voltages differ by little more than that
    and ties are common): a difference on an edge with a larger margin fails, and so do voltages more
    than 1e-5 V apart. Random start positions avoid the exact ties of a uniform symmetric start
    (lab16 with all pots at 63 has edges with dv_F = dv_C to the last bit).
    """
    hw = Hardware.from_R(R, capacitance=c, capacitance_model=model)
    net = load_network(name)
    start = np.random.default_rng(7).integers(40, 90, net.n_edges)
    ds = train(net, TASKS[name], hw, steps=steps, positions=start)
    res = replay_run(ds, engines=("exact", "ngspice"))
    assert res.max_error < TOL
    rule = comparator_rule(hw.rule)
    eu, ev = net.edge_nodes.T
    ties = []
    for k in range(steps):
        ups = [rule(vf[eu] - vf[ev], vc[eu] - vc[ev]) for vf, vc in zip(res.v_free[:, k], res.v_clamped[:, k])]
        differ = np.flatnonzero(ups[0] != ups[1])
        if differ.size:
            margin = _margin(net, res.v_free[0, k], res.v_clamped[0, k])[differ].max()
            assert margin < 1e-6, f"tick {k}: the engines step edges {differ} apart at a margin of {margin:.1e} V"
            ties.append(k)
    print(f"{name} {model}: the same steps on {steps - len(ties)} of {steps} ticks (ties at {ties})")
    assert np.abs(np.diff(ds.position.values, axis=0)).sum() > steps  # the pots did move


def test_engine_interface_matches_exact():
    net = load_network("delaunay64")
    task = load_task("random:5,3,0", net).bind(net)
    hw = Board.nominal(net, Hardware.from_R(0.5, capacitance=22e-6))
    ex, ng = ExactEngine(net, task, hw), get_engine("ngspice")(net, task, hw)
    assert isinstance(ng, NgspiceEngine)
    p = np.random.default_rng(2).integers(0, 128, net.n_edges)
    a, b = ex.init(p), ng.init(p)
    for attr in ("positions", "v_free", "v_clamped", "clamp"):
        np.testing.assert_allclose(getattr(b, attr), getattr(a, attr), atol=1e-12)
    np.testing.assert_allclose(ng.equilibrium_free(b), ex.equilibrium_free(a), atol=1e-12)
    # an off-equilibrium state (not the live circuit): the engine reloads from it
    rng = np.random.default_rng(5)
    vf, vc = np.array([a.v_free, a.v_clamped]) + 0.2 * rng.normal(size=(2, net.n_nodes))
    clamp = a.clamp + 0.2 * rng.normal(size=3)
    a = ex.relax(ex.state(p, vf, vc, clamp), clamp + 0.1, 0.7 * hw.period)
    b = ng.relax(ng.state(p, vf, vc, clamp), clamp + 0.1, 0.7 * hw.period)
    assert np.abs(b.v_clamped - a.v_clamped).max() < TOL and np.abs(b.v_free - a.v_free).max() < TOL
    ng.close()


def test_segments_restart_without_changing_the_voltages():
    """A circuit reload every 7 ticks (from .ic at the current voltages) still tracks the exact engine."""
    net = load_network("lab16")
    task = load_task("default", net).bind(net)
    hw = Board.nominal(net, Hardware.from_R(0.3, capacitance=2.2e-6))
    positions = np.random.default_rng(0).integers(40, 90, (40, net.n_edges))
    ex, ng = ExactEngine(net, task, hw), NgspiceEngine(net, task, hw, segment=7)
    a = ex.init(np.full(net.n_edges, 63))
    b = ng.init(a.positions)
    tokens = []
    for k in range(40):
        clamp = task.nudge(a.v_free, hw.hardware.eta)
        a, b = ex.relax(a, clamp, hw.period), ng.relax(b, clamp, hw.period)
        assert np.abs(a.v_clamped - b.v_clamped).max() < TOL and np.abs(a.v_free - b.v_free).max() < TOL
        tokens.append(b.token)
        a, b = ex.set_positions(a, positions[k]), ng.set_positions(b, positions[k])
    assert len(set(tokens)) == 40


# -- clock periods of any length ----------------------------------------------------------
def test_simulator_options_are_the_same_in_units_of_the_clock_period():
    """chgtol scales with the capacitance, minbreak with the period, abstol is 0: ngspice takes the same
    steps, in periods, for any c (and so any period T = R0 c / R); reltol and chgtol follow the voltages."""
    from spicelearn.spice.netlist import STEP_VOLTS, simulator_options, voltage_scale

    net = load_network("lab16")
    for model in ("per_edge", "global"):
        opts = []
        for c in (1e-12, 2.2e-6, 1e6):
            board = Board.nominal(net, Hardware.from_R(1.0, capacitance=c, capacitance_model=model))
            o = simulator_options(board, board.period, volts=2.0)
            assert float(o["abstol"]) == 0
            assert float(o["reltol"]) == pytest.approx(STEP_VOLTS[model] / 2.0, rel=1e-15)
            assert o["method"] == ("gear" if model == "per_edge" else "trap")
            opts.append((float(o["chgtol"]) / c, float(o["minbreak"]) / board.period))
        assert opts[0] == pytest.approx(opts[1], rel=1e-12) and opts[2] == pytest.approx(opts[1], rel=1e-12)
    # the largest voltage a capacitor can carry: across an edge (per_edge) or to ground (global)
    assert voltage_scale("per_edge", [2.5, 3.0], [2.75]) == pytest.approx(0.5)
    assert voltage_scale("global", [2.5, 3.0], [2.75]) == pytest.approx(3.0)
    assert voltage_scale("per_edge", [1.0, 1.0]) > 0  # nothing to integrate, finite tolerances


@pytest.mark.parametrize("c", [1e-12, 1e6])
def test_huge_and_tiny_capacitances_take_the_time_points_of_microfarads(c):
    """c = 1e6 F (a clock period of 1e10 s at R = 1) and 1e-12 F (1e-8 s): the same ngspice time points per
    tick as 2.2 uF, 20 steps in a few seconds, and the exact engine's voltages along the run."""
    import time

    def run(cap):
        made = []

        def factory(*args):
            made.append(NgspiceEngine(*args))
            return made[-1]

        t0 = time.perf_counter()
        ds = train("lab16", "default", Hardware.from_R(1.0, capacitance=cap), steps=20, backend=factory)
        return ds, time.perf_counter() - t0, {k: v / made[0].relaxations for k, v in made[0].time_points.items()}

    _, _, ref_points = run(2.2e-6)
    ds, wall, points = run(c)
    assert ds.attrs["backend"] == "ngspice"
    for twin, n in ref_points.items():
        assert 5 < n < 200 and points[twin] == pytest.approx(n, rel=0.05), (points, ref_points)
    assert wall < 10, f"20 steps took {wall:.1f} s"
    res = replay_run(ds, engines=("exact",))  # the exact engine along the run's own positions and clamps
    assert np.abs(ds["v_free"].values - res.v_free[0]).max() < TOL
    assert np.abs(ds["v_clamped"].values - res.v_clamped[0]).max() < TOL


def test_ctrl_c_stops_a_long_ngspice_training_within_a_second(tmp_path):
    """SIGINT reaches Python between two ngspice calls, each a tick of milliseconds, even with a clock period
    of 1e10 s: the command stops with status 130, says so, and writes no run file."""
    import select
    import signal
    import time

    out = tmp_path / "X.nc"
    cmd = [sys.executable, "-m", "spicelearn.cli", "train", "lab16", "--backend", "ngspice", "--capacitance", "1e6",
           "--steps", "100000", "--out", str(out)]
    # a shell that starts the tests in the background ignores SIGINT in them: the run gets Ctrl-C as a terminal would
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # the progress line (after a second of training) says the ngspice loop is running
        deadline, line = time.monotonic() + 120, ""
        while "train" not in line:
            assert proc.poll() is None, f"the run ended before it was interrupted: {proc.stderr.read()}"
            ready, _, _ = select.select([proc.stderr], [], [], max(deadline - time.monotonic(), 0))
            assert ready, "no progress line from the training run"
            line = proc.stderr.readline()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert rc == 130 and "interrupted" in err, (rc, err)
    assert waited < 2, f"the run took {waited:.1f} s to stop"
    assert not out.exists()


def test_a_ctrl_c_while_ngspice_prints_is_raised_after_the_call(monkeypatch):
    """A SIGINT that reaches Python in ngspice's print callback (PySpice's send_char) would be dropped by cffi,
    and the line with it: the session holds it and raises KeyboardInterrupt once ngspice has returned."""
    import signal

    s = ngspice()
    shared = type(s.shared)
    send_char, sent = shared.send_char, []

    def interrupting_send_char(self, message, ngspice_id):
        if not sent:
            sent.append(message)
            os.kill(os.getpid(), signal.SIGINT)  # Python's handler runs at its next bytecode: inside the callback
        return send_char(self, message, ngspice_id)

    monkeypatch.setattr(shared, "send_char", interrupting_send_char)
    # Python's Ctrl-C handler, even where the tests run in the background (where SIGINT is ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            s.command("echo spicelearn-held-signal")
        assert sent and any("spicelearn-held-signal" in ln for ln in s.lines)  # the line that was printing is kept
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        monkeypatch.undo()
        assert any("again" in ln for ln in s.command("echo again"))
    finally:
        signal.signal(signal.SIGINT, previous)


# -- faults ----------------------------------------------------------------------------
def test_missing_library_names_the_debian_packages():
    code = "from spicelearn.engines.ngspice.binding import ngspice; ngspice()"
    env = dict(os.environ, NGSPICE_LIBRARY_PATH="/nonexistent/libngspice.so")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0
    assert "SpiceError" in out.stderr and "ngspice libngspice0 libngspice0-dev" in out.stderr


def test_parse_error_surfaces_ngspice_lines():
    s = ngspice()
    with pytest.raises(SpiceError, match=r"(?s)cannot load the circuit.*unknown parameter \(foo\)"):
        s.load("* bad\nr1 a 0 1k\nv1 a 0 dc 1 foo(\n.tran 1m 2m\n.end\n")


def test_failed_transient_surfaces_ngspice_lines():
    s = ngspice()
    s.load("* two sources fight\nv1 a 0 dc 1\nv2 a 0 dc 2\nr1 a 0 1k\n.tran 1m 2m\n.end\n")
    expected = r"(?s)command `run` failed:\nError: Transient op failed.*simulation\(s\) aborted"
    with pytest.raises(SpiceError, match=expected):
        s.command("run")
    s.reset()


def test_a_rejected_alter_in_a_batch_is_an_error():
    s = ngspice()
    s.load("* ok\nv1 a 0 dc 1\nr1 a b 1k\nc1 b 0 1u\n.tran 1m 2m\n.end\n")
    s.commands(["alter r1 = 2000", "alter @r1[resistance] = 3000"])
    with pytest.raises(SpiceError, match=r"(?s)ngspice rejected one of 2 commands.*no such device or model name rnope"):
        s.commands(["alter r1 = 2000", "alter rnope = 5"])
    with pytest.raises(SpiceError, match="no such parameter nonsense"):
        s.commands(["alter @r1[nonsense] = 3"])
    s.reset()


def test_many_alters_joined_into_command_lines_all_take_effect():
    """200 alters go to ngspice as ';'-joined lines under its 1,023-character limit; every one counts."""
    from spicelearn.engines.ngspice.binding import _join

    n = 200
    texts = [f"alter r{j} = {100e3 + 0.5 * j!r}" for j in range(n)]
    lines = list(_join(texts))
    assert len(lines) > 1 and max(map(len, lines)) <= 1000
    assert "; ".join(lines) == "; ".join(texts)  # all of them, in order
    s = ngspice()
    s.load("* parallel resistors\nv1 a 0 dc 1\n" + "".join(f"r{j} a b 1\n" for j in range(n)) + "rload b 0 1k\n.end\n")
    s.commands(texts)
    s.command("op")
    s.check_vectors(["b"])
    with pytest.raises(SpiceError, match="ngspice command of 1011 characters"):
        s.commands(["alter r1 = " + "1" * 1000])
    g = sum(1 / (100e3 + 0.5 * j) for j in range(n))
    assert s.last_values([s.ffi.new("char[]", b"b")])[0] == pytest.approx(1e3 / (1e3 + 1 / g), rel=1e-9)
    s.reset()


def test_a_breakpoint_in_the_past_is_an_error():
    s = ngspice()
    s.load("* ok\nv1 a 0 dc 1\nr1 a b 1k\nc1 b 0 1u\n.tran 1m 2m uic\n.end\n")
    s.command("stop when time >= 1e-3")
    s.command("run", allow=("condition met", "pause requested", "simulation interrupted"))
    s.breakpoint(1.5e-3)
    with pytest.raises(SpiceError, match=r"cannot set a breakpoint at t = 0.0005 s"):
        s.breakpoint(0.5e-3)
    s.reset()


def test_the_second_instance_is_independent():
    a, b = ngspice(0), ngspice(1)
    assert a.lib is not b.lib
    a.load("* one\nv1 a 0 dc 1\nr1 a b 1k\nr2 b 0 1k\n.end\n")
    b.load("* two\nv1 a 0 dc 1\nr1 a b 1k\nr2 b 0 3k\n.end\n")
    a.command("op")
    b.command("op")
    name = [a.ffi.new("char[]", b"b")]
    assert a.last_values(name)[0] == pytest.approx(0.5) and b.last_values(name)[0] == pytest.approx(0.75)
    a.reset()
    b.reset()


def test_without_a_second_instance_the_twins_share_one_circuit(monkeypatch):
    import spicelearn.engines.ngspice.binding as ngs

    net = load_network("lab16")
    task = load_task("default", net).bind(net)
    hw = Board.nominal(net, Hardware.from_R(0.5, capacitance=2.2e-6))
    assert NgspiceEngine(net, task, hw).parallel  # this platform loads the second instance
    monkeypatch.delitem(ngs._SESSIONS, 1, raising=False)
    monkeypatch.setattr(ngs, "_library_file", lambda: None)
    with pytest.warns(RuntimeWarning, match="both twins on one ngspice instance"):
        ng = NgspiceEngine(net, task, hw)
    assert not ng.parallel
    ex = ExactEngine(net, task, hw)
    a, b = ex.init(np.full(16, 63)), ng.init(np.full(16, 63))
    for p in np.random.default_rng(3).integers(40, 90, (20, 16)):
        clamp = task.nudge(a.v_free, hw.hardware.eta)
        a, b = ex.relax(a, clamp, hw.period), ng.relax(b, clamp, hw.period)
        assert np.abs(a.v_clamped - b.v_clamped).max() < TOL and np.abs(a.v_free - b.v_free).max() < TOL
        a, b = ex.set_positions(a, p), ng.set_positions(b, p)


def _relax_three_ticks(R):
    net = load_network("lab16")
    task = load_task("default", net).bind(net)
    hw = Board.nominal(net, Hardware.from_R(R, capacitance=2.2e-6))
    ex, ng = ExactEngine(net, task, hw), NgspiceEngine(net, task, hw)
    a, b = ex.init(np.full(16, 63)), ng.init(np.full(16, 63))
    for k in range(3):
        a, b = ex.relax(a, a.clamp + 0.01, hw.period), ng.relax(b, b.clamp + 0.01, hw.period)
        a, b = ex.set_positions(a, np.full(16, 60 + k)), ng.set_positions(b, np.full(16, 60 + k))
    return float(np.abs(a.v_clamped - b.v_clamped).max()), ng.parallel


def test_a_forked_child_runs_the_engine_after_its_parent_did():
    """The parent's worker thread does not exist in a forked child (a process pool on Linux)."""
    import multiprocessing

    assert _relax_three_ticks(0.5)[0] < TOL
    with multiprocessing.get_context("fork").Pool(1) as pool:
        err, parallel = pool.apply_async(_relax_three_ticks, (2.0,)).get(timeout=120)
    assert err < TOL and parallel


def test_missing_vector_is_an_error_not_a_crash():
    s = ngspice()
    s.load("* ok\nv1 a 0 dc 1\nr1 a b 1k\nc1 b 0 1u\n.tran 1m 2m\n.end\n")
    s.command("run")
    s.check_vectors(["a", "b", "time"])
    with pytest.raises(SpiceError, match="ngspice has no vector 'f_nope' in its current plot"):
        s.check_vectors(["a", "f_nope"])
    s.reset()


def test_engine_works_after_a_fault():
    with pytest.raises(SpiceError):
        ngspice().load("* bad\nq1 a b\n.end\n")
    net = load_network("lab16")
    task = load_task("default", net).bind(net)
    hw = Board.nominal(net, Hardware.from_R(1.0))
    ng, ex = NgspiceEngine(net, task, hw), ExactEngine(net, task, hw)
    p = np.full(16, 63)
    p[:5] = 10
    a, b = ex.init(p), ng.init(p)
    a = ex.relax(ex.set_positions(a, p + 3), a.clamp + 0.05, hw.period)
    b = ng.relax(ng.set_positions(b, p + 3), b.clamp + 0.05, hw.period)
    assert np.abs(a.v_clamped - b.v_clamped).max() < TOL


def test_two_engines_share_the_one_ngspice():
    """Interleaved engines: each notices the circuit is no longer its own and reloads from its state."""
    net = load_network("lab16")
    task = load_task("default", net).bind(net)
    hws = [Board.nominal(net, hw) for hw in (Hardware.from_R(0.5, capacitance=2.2e-6),
                                             Hardware.from_R(2.0, capacitance_model="global"))]
    pairs = [(ExactEngine(net, task, hw), NgspiceEngine(net, task, hw)) for hw in hws]
    states = [(ex.init(np.full(16, 63)), ng.init(np.full(16, 63))) for ex, ng in pairs]
    rng = np.random.default_rng(4)
    for k in range(10):
        p = rng.integers(50, 80, 16)
        for i, ((ex, ng), (a, b), hw) in enumerate(zip(pairs, states, hws)):
            clamp = a.clamp + 0.01 * k
            a, b = ex.relax(a, clamp, hw.period), ng.relax(b, clamp, hw.period)
            assert np.abs(a.v_clamped - b.v_clamped).max() < TOL and np.abs(a.v_free - b.v_free).max() < TOL
            states[i] = (ex.set_positions(a, p), ng.set_positions(b, p))


def test_train_takes_an_engine_factory():
    """functools.partial(NgspiceEngine, parallel=False) as the backend: the one-instance engine in the loop."""
    from functools import partial

    hw = Hardware.from_R(0.5, capacitance=22e-6)
    ds = train("lab16", "default", hw, steps=40, backend=partial(NgspiceEngine, parallel=False))
    assert ds.attrs["backend"] == "ngspice"
    res = replay_run(ds)  # the exact engine along the run's own positions and clamps
    assert np.abs(ds["v_free"].values - res.v_free[0]).max() < TOL
    assert np.abs(ds["v_clamped"].values - res.v_clamped[0]).max() < TOL


def test_cli_train_with_ngspice_then_replay(tmp_path, capsys):
    from spicelearn.cli import main

    run = tmp_path / "run.nc"
    assert main(["train", "lab16", "--backend", "ngspice", "--steps", "30", "--R", "0.5", "--quiet",
                 "--out", str(run)]) == 0
    assert main(["replay", str(run)]) == 0
    out = capsys.readouterr().out
    err = float(re.search(r"max \|dv\| = (\S+) V", out).group(1))
    assert 0 < err < TOL
