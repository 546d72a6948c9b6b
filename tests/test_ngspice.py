"""The ngspice engine against the exact engine: replay, free-running training, faults."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from spicelearn.cosim import train
from spicelearn.engines import get_engine
from spicelearn.engines.exact import ExactEngine
from spicelearn.errors import SpiceError
from spicelearn.hardware import Hardware
from spicelearn.network import load_network
from spicelearn.replay import replay, replay_run
from spicelearn.task import load_task

pytest.importorskip("PySpice")
from spicelearn.engines.ngspice import NgspiceEngine, ngspice  # noqa: E402

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


FAST_CASES = [("lab16", "per_edge", 2.2e-6, 0.1), ("lab16", "global", 220e-6, 10.0),
              ("lab16", "per_edge", 2200e-6, 1.0), ("lab16", "global", 22e-6, 1.0),
              ("delaunay64", "per_edge", 22e-6, 1.0), ("delaunay64", "global", 2.2e-6, 0.1)]


@pytest.mark.parametrize("name,model,c,R", FAST_CASES)
def test_replay_agrees_with_exact_engine(name, model, c, R):
    res = _learning_replay(name, model, c, R)
    print(f"{name} {model} c={c} R={R}: max |dv| = {res.max_error:.2e} V")
    assert res.max_error < TOL


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lab16", "delaunay64"])
@pytest.mark.parametrize("model", ["per_edge", "global"])
@pytest.mark.parametrize("c", [2.2e-6, 22e-6, 220e-6, 2200e-6])
@pytest.mark.parametrize("R", [0.1, 1.0, 10.0])
def test_replay_agrees_with_exact_engine_full_grid(name, model, c, R):
    res = _learning_replay(name, model, c, R)
    print(f"{name} {model} c={c} R={R}: max |dv| = {res.max_error:.2e} V")
    assert res.max_error < TOL


def _margin(ds, k):
    """Smallest comparator margin ``min(|dv_F - dv_C|, |dv_F + dv_C|)`` per edge at step k, shape (E,)."""
    net = load_network(ds.attrs["network"])
    eu, ev = net.edge_nodes.T
    vf, vc = ds["v_free"].values[k], ds["v_clamped"].values[k]
    dvf, dvc = vf[eu] - vf[ev], vc[eu] - vc[ev]
    return np.minimum(np.abs(dvf - dvc), np.abs(dvf + dvc))


@pytest.mark.parametrize("name,model,c,R", [("lab16", "per_edge", 2.2e-6, 1.0), ("lab16", "global", 22e-6, 0.1),
                                            ("delaunay64", "per_edge", 2.2e-6, 10.0)])
def test_free_running_training_takes_the_same_steps(name, model, c, R):
    _same_steps(name, model, c, R)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lab16", "delaunay64"])
@pytest.mark.parametrize("model", ["per_edge", "global"])
@pytest.mark.parametrize("c", [2.2e-6, 22e-6, 220e-6, 2200e-6])
@pytest.mark.parametrize("R", [0.1, 1.0, 10.0])
def test_free_running_training_takes_the_same_steps_full_grid(name, model, c, R):
    _same_steps(name, model, c, R)


def _same_steps(name, model, c, R):
    """Noise 0, 300 ticks: the same positions at every tick.

    The comparators are exact, so the engines may part only on a tick where
    some comparator's input is within 1e-6 V of its threshold (a tie that
    1e-6 V voltage differences can break either way); after such a tick the
    runs are different runs and are not compared further. Random start
    positions avoid the exact ties of a uniform symmetric start (lab16 with
    all pots at 63 has edges with dv_F = dv_C to the last bit).
    """
    hw = Hardware.from_R(R, capacitance=c, capacitance_model=model)
    start = np.random.default_rng(7).integers(40, 90, load_network(name).n_edges)
    runs = [train(name, TASKS[name], hw, steps=300, backend=b, positions=start) for b in ("exact", "ngspice")]
    pos = [r["position"].values for r in runs]
    differ = np.flatnonzero((pos[0] != pos[1]).any(axis=1))
    if differ.size:
        k = differ[0]
        edges = np.flatnonzero(pos[0][k] != pos[1][k])
        assert _margin(runs[0], k)[edges].max() < 1e-6, f"positions part at step {k} on edges {edges}"
        end = k
    else:
        end = 300
    print(f"{name} {model}: identical positions for {end} of 300 ticks")
    assert end >= 100
    np.testing.assert_allclose(runs[1]["v_free"].values[:end], runs[0]["v_free"].values[:end], atol=TOL)
    assert runs[1].attrs["backend"] == "ngspice"


def test_engine_interface_matches_exact():
    net = load_network("delaunay64")
    task = load_task("random:5,3,0", net).bind(net)
    hw = Hardware.from_R(0.5, capacitance=22e-6)
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
    hw = Hardware.from_R(0.3, capacitance=2.2e-6)
    positions = np.random.default_rng(0).integers(40, 90, (40, net.n_edges))
    ex, ng = ExactEngine(net, task, hw), NgspiceEngine(net, task, hw, segment=7)
    a = ex.init(np.full(net.n_edges, 63))
    b = ng.init(a.positions)
    tokens = []
    for k in range(40):
        vt = a.v_free[task.target_index]
        clamp = vt + hw.eta * (task.target_voltage - vt)
        a, b = ex.relax(a, clamp, hw.period), ng.relax(b, clamp, hw.period)
        assert np.abs(a.v_clamped - b.v_clamped).max() < TOL and np.abs(a.v_free - b.v_free).max() < TOL
        tokens.append(b.token)
        a, b = ex.set_positions(a, positions[k]), ng.set_positions(b, positions[k])
    assert len(set(tokens)) == 40


# -- faults ----------------------------------------------------------------------------
def test_missing_library_names_the_debian_packages():
    code = "from spicelearn.engines.ngspice import ngspice; ngspice()"
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
    hw = Hardware.from_R(1.0)
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
    hws = [Hardware.from_R(0.5, capacitance=2.2e-6), Hardware.from_R(2.0, capacitance_model="global")]
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


def test_cli_train_with_ngspice_then_replay(tmp_path, capsys):
    from spicelearn.cli import main

    run = tmp_path / "run.nc"
    assert main(["train", "lab16", "--backend", "ngspice", "--steps", "30", "--R", "0.5", "--quiet",
                 "--out", str(run)]) == 0
    assert main(["replay", str(run)]) == 0
    out = capsys.readouterr().out
    err = float(re.search(r"max \|dv\| = (\S+) V", out).group(1))
    assert 0 < err < TOL
