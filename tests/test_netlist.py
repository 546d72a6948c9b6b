"""SPICE netlists of the twin networks, and their standalone export run by the ngspice binary."""

import re
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from spicelearn.cli import main
from spicelearn.loop import train
from spicelearn.engines.exact import ExactEngine
from spicelearn.errors import ConfigError
from spicelearn.model.hardware import Hardware
from spicelearn.model.board import Board
from spicelearn.model.network import load_network
from spicelearn.model.task import load_task
from spicelearn.runfile import save_run
from spicelearn.spice.export import export_state, standalone_netlist
from spicelearn.spice.netlist import NetlistState, compile_netlist, spice_node_names

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice binary not installed (make system)")


def _setup(name="lab16", model="per_edge", R=1.0, c=22e-6, task="default"):
    net = load_network(name)
    bound = load_task(task, net).bind(net)
    return net, bound, Board.nominal(net, Hardware.from_R(R, capacitance=c, capacitance_model=model))


def _elements(text, prefix):
    return [ln.split() for ln in text.splitlines() if ln.startswith(prefix)]


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_netlist_has_both_twins_with_the_right_elements(model):
    net, task, hw = _setup(model=model)
    rng = np.random.default_rng(0)
    p = rng.integers(0, 128, net.n_edges)
    v = rng.normal(size=net.n_nodes)
    nl = compile_netlist(net, task, hw, NetlistState(p, v, v, np.array([0.1, 0.2]), hw.period))
    E, N = net.n_edges, net.n_nodes
    for twin, nodes in (("rf", nl.free_nodes), ("rc", nl.clamped_nodes)):
        res = _elements(nl.text, twin)
        assert len(res) == E
        for j, (name, a, b, r) in enumerate(res):
            u, w = net.edge_nodes[j]
            assert (name, a, b) == (f"{twin}{j}", nodes[u], nodes[w])
            assert float(r) == pytest.approx(hw.hardware.pot.resistance(p[j]), rel=1e-15)
    caps = _elements(nl.text, "c")
    if model == "per_edge":  # each resistor has its capacitor in parallel
        assert len(caps) == 2 * E
        assert all(c[2] != "0" and float(c[3]) == 22e-6 for c in caps)
    else:  # one capacitor per node to ground, in both twins
        assert len(caps) == 2 * N
        assert all(c[2] == "0" for c in caps)
    assert set(nl.free_nodes).isdisjoint(nl.clamped_nodes)
    # sources in both twins, clamps on the clamped targets only
    assert len(_elements(nl.text, "vfs")) == len(_elements(nl.text, "vcs")) == 2
    clamps = _elements(nl.text, "vct")
    assert [c[1] for c in clamps] == [nl.clamped_nodes[i] for i in task.target_index]
    assert [float(c[4]) for c in clamps] == [0.1, 0.2]  # each ramp ends at its clamp value
    # .ic lists every node of both twins, driven ones included (uic counts unlisted nodes as 0 V)
    ic = dict(re.findall(r"v\((\w+)\)=(\S+)", " ".join(ln for ln in nl.text.splitlines() if ln.startswith(".ic"))))
    assert set(nl.free_nodes) | set(nl.clamped_nodes) <= set(ic)
    assert float(ic[nl.free_nodes[8]]) == 1.0 and float(ic[nl.clamped_nodes[0]]) == 0.0
    assert re.search(r"^\.tran \S+ \S+ uic$", nl.text, re.M)


@pytest.mark.parametrize("twins", ["f", "c"])
def test_one_twin_alone_is_the_matching_part_of_the_two_twin_netlist(twins):
    net, task, hw = _setup()
    p = np.random.default_rng(1).integers(0, 128, net.n_edges)
    v = np.linspace(-1, 1, net.n_nodes)
    state = NetlistState(p, v, v, np.array([0.1, 0.2]), hw.period)
    both = compile_netlist(net, task, hw, state)
    one = compile_netlist(net, task, hw, state, twins=twins)
    other = "c" if twins == "f" else "f"
    circuit = [ln for ln in both.text.splitlines() if ln[:1] in "rcv" and not ln.startswith(("r" + other, "c" + other,
                                                                                           "v" + other))]
    assert [ln for ln in one.text.splitlines() if ln[:1] in "rcv"] == circuit
    assert f"v({other}_" not in one.text  # no initial conditions of the other twin
    assert bool(one.clamp_sources) == (twins == "c") and bool(one.free_resistors) == (twins == "f")
    with pytest.raises(ConfigError, match="`twins` must be 'fc', 'f' or 'c', got 'x'"):
        compile_netlist(net, task, hw, state, twins="x")


def test_node_names_map_back_to_graph_ids_and_unsafe_ids_get_indices():
    g = nx.Graph()
    g.add_edges_from([("a", "B x"), ("B x", "c"), ("a", "c"), ("c", "n1")])
    net = load_network(g)
    names = spice_node_names(net)
    assert len(set(names)) == net.n_nodes
    for i, (node, name) in enumerate(zip(net.nodes, names)):
        assert name == (node if node in ("a", "c") else f"n{i}")


def test_bad_state_is_a_clear_error():
    net, task, hw = _setup()
    v = np.zeros(net.n_nodes)
    with pytest.raises(ConfigError, match=r"`v_free` must be finite with shape \(9,\)"):
        compile_netlist(net, task, hw, NetlistState(np.full(16, 63), v[:3], v, np.zeros(2), 1.0))
    with pytest.raises(ConfigError, match="`duration` must be finite and > 0"):
        compile_netlist(net, task, hw, NetlistState(np.full(16, 63), v, v, np.zeros(2), 0.0))
    with pytest.raises(ConfigError, match="`positions` must be integers in 0..127"):
        compile_netlist(net, task, hw, NetlistState(np.full(16, 200), v, v, np.zeros(2), 1.0))


def _run_ngspice(path):
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    vals = dict(re.findall(r"v\((\w+)\)\[length\(time\)-1\] = (\S+)", out.stdout))
    return {k: float(v) for k, v in vals.items()}


def _exact_reference(net, task, hw, st):
    eng = ExactEngine(net, task, hw)
    s = eng.state(st.positions, st.v_free, st.v_clamped, st.v_clamped[task.target_index])
    return eng.relax(s, st.clamp, st.duration)


@needs_ngspice
@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_exported_run_file_netlist_runs_in_ngspice_and_matches_exact(tmp_path, model):
    """Export the clock period after a 40-step run; ngspice -b must end where the exact engine does."""
    net, task, hw = _setup(model=model, R=1.0, c=22e-6)
    ds = train(net, "default", board=hw, steps=40, backend="exact")
    save_run(ds, tmp_path / "run.nc")
    cir = tmp_path / "next.cir"
    assert main(["export-spice", "lab16", "--positions", str(tmp_path / "run.nc"), "-o", str(cir)]) == 0
    st = export_state(task, hw, run=ds)
    np.testing.assert_array_equal(st.positions, ds["position"][-1])
    ref = _exact_reference(net, task, hw, st)
    assert np.abs(ref.v_clamped - st.v_clamped).max() > 1e-3  # a real transient, not a fixed point
    got = _run_ngspice(cir)
    nl = standalone_netlist(task, hw, st)
    v_free = np.array([got[n] for n in nl.free_nodes])
    v_clamped = np.array([got[n] for n in nl.clamped_nodes])
    assert np.abs(v_free - ref.v_free).max() < 1e-5
    assert np.abs(v_clamped - ref.v_clamped).max() < 1e-5


@needs_ngspice
def test_exported_positions_file_netlist_matches_exact(tmp_path):
    """Random positions from a text file: the clamps switch on at t = 0 and the floating nodes jump."""
    net, task, hw = _setup(name="delaunay64", model="per_edge", R=0.3, c=2.2e-6, task="random:5,3,1")
    p = np.random.default_rng(3).integers(0, 128, net.n_edges)
    (tmp_path / "p.txt").write_text(" ".join(map(str, p)))
    cir = tmp_path / "d.cir"
    assert main(["export-spice", "delaunay64", "--task", "random:5,3,1", "--R", "0.3", "--capacitance", "2.2e-6",
                 "--positions", str(tmp_path / "p.txt"), "-o", str(cir)]) == 0
    st = export_state(task, hw, positions=p)
    ref = _exact_reference(net, task, hw, st)
    got = _run_ngspice(cir)
    nl = standalone_netlist(task, hw, st)
    assert np.abs(np.array([got[n] for n in nl.free_nodes]) - ref.v_free).max() < 1e-5
    assert np.abs(np.array([got[n] for n in nl.clamped_nodes]) - ref.v_clamped).max() < 1e-5


def test_export_cli_rejects_a_bad_positions_file(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("1 2 x")
    assert main(["export-spice", "lab16", "--positions", str(tmp_path / "p.txt"), "-o", str(tmp_path / "a.cir")]) == 2
    assert "`--positions` file" in capsys.readouterr().err
    assert main(["export-spice", "lab16", "--positions", str(tmp_path / "none.txt"), "-o", "x.cir"]) == 2
    assert "does not exist" in capsys.readouterr().err


_NUMBER = re.compile(r"-?\d+\.\d*(?:e-?\d+)?|-?\d+e-?\d+")


@pytest.mark.parametrize("model", ["per_edge", "global"])
def test_committed_lab16_netlists_are_current(tmp_path, model):
    """netlists/lab16_<model>.cir is what `export-spice lab16` writes today: the same text, with every
    number equal to 1e-13 relative (the equilibrium voltages in it are rounded by the BLAS of the day)."""
    out = tmp_path / "x.cir"
    assert main(["export-spice", "lab16", "--capacitance-model", model, "-o", str(out)]) == 0
    want, got = (NETLISTS / f"lab16_{model}.cir").read_text(), out.read_text()
    assert _NUMBER.sub("#", want) == _NUMBER.sub("#", got)
    np.testing.assert_allclose([float(x) for x in _NUMBER.findall(got)],
                               [float(x) for x in _NUMBER.findall(want)], rtol=1e-13, atol=1e-15)


def test_export_of_a_run_file_takes_its_task_and_board_and_refuses_others(tmp_path, capsys):
    """The run file says its task, board and clock; options that contradict it are refused, not ignored."""
    ds = train("delaunay64", "random:5,3,1", Hardware.from_R(3.0, capacitance=22e-6), steps=5)
    save_run(ds, tmp_path / "run.nc")
    cir = tmp_path / "a.cir"
    assert main(["export-spice", "delaunay64", "--positions", str(tmp_path / "run.nc"), "-o", str(cir)]) == 0
    text = cir.read_text()
    assert "cf0 " in text and " 2.2e-05" in text  # the run's capacitance, not the default 2.2 uF
    assert f"one clock period of {1 / ds.attrs['gamma_l']!r} s" in text
    capsys.readouterr()
    assert main(["export-spice", "delaunay64", "--task", "random:5,3,2", "--positions", str(tmp_path / "run.nc"),
                 "-o", str(cir)]) == 2
    assert "drop --task" in capsys.readouterr().err
    assert main(["export-spice", "delaunay64", "--network-seed", "3", "--positions", str(tmp_path / "run.nc"),
                 "-o", str(cir)]) == 2
    assert "not the run's network" in capsys.readouterr().err
