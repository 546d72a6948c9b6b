"""A run file says everything needed to repeat its run; `spicelearn replay RUN.nc` needs nothing else."""

import re

import networkx as nx
import numpy as np
import pytest

from spicelearn.cli import main
from spicelearn.errors import ConfigError
from spicelearn.loop import replay_run, train
from spicelearn.model.hardware import Hardware
from spicelearn.model.network import load_network
from spicelearn.runfile import load_run, make_dataset, run_inputs, save_run



def _odd_graph():
    """A GraphML-only network: per-edge capacitances and start positions of its own, odd node ids."""
    g = nx.relabel_nodes(load_network("lab16").to_graph(), {str(i): f"n ö{i}" for i in range(9)})
    rng = np.random.default_rng(0)
    for u, v in g.edges:
        g.edges[u, v]["capacitance"] = float(rng.uniform(10e-6, 40e-6))
        g.edges[u, v]["position"] = int(rng.integers(40, 90))
    return g


def _task(g):
    nodes = sorted(g.nodes)
    return {"sources": {nodes[0]: 0.0, nodes[8]: 1.0}, "targets": {nodes[2]: 0.25, nodes[6]: 0.65}}


def test_run_file_records_a_graphml_network_with_its_parts(tmp_path):
    g = _odd_graph()
    ds = train(g, _task(g), Hardware.from_R(0.5), steps=30, seed=1)
    save_run(ds, tmp_path / "run.nc")
    back = load_run(tmp_path / "run.nc")
    task, board, start = run_inputs(back)
    net = task.network
    assert net.content_hash() == load_network(g).content_hash()
    np.testing.assert_array_equal(board.capacitance, load_network(g).capacitance)
    np.testing.assert_array_equal(start, load_network(g).position)
    assert board.gamma_l == ds.attrs["gamma_l"] and board.R == pytest.approx(0.5)
    res = replay_run(back, engines=("exact",))
    assert res.error_vs_record(0).max() == 0.0  # the exact engine repeats its own run bit for bit


def _remade(ds, like):
    """The run file of ``ds``'s run made again by make_dataset from its record, inputs and attributes."""
    task, board, _ = run_inputs(ds)
    keys = ("mse", "mse_eq", "v_free", "v_clamped", "mse0", "position", "position_start", "duration")
    record = {k: ds[k].values for k in keys if k in ds}
    return make_dataset(task, board, record=record, time=ds.time.values, time_units="s", attrs=dict(ds.attrs),
                        like=like)


@pytest.mark.parametrize("other", [dict(R=2.0, seed=5), dict(R=0.5, seed=1, capacitance_model="global"),
                                   dict(R=1.0, seed=2, board_seed=3), dict(R=1.0, seed=2, steps=12)])
def test_a_run_file_made_like_another_is_the_one_made_anew(other):
    """A batch makes its run files by copying the previous one's layout (``like``): the same file as one built
    anew, whether the layouts match (another rate and seed) or not (another capacitance model, imperfect parts
    with their wiper and leakage, another length); the file it copied is left as it was."""
    from spicelearn.model.hardware import Capacitor, Potentiometer

    like = train("lab16", "default", Hardware.from_R(1.0), steps=20, seed=0)
    kept = like.copy(deep=True)
    hw = Hardware.from_R(other["R"], capacitance_model=other.get("capacitance_model", "per_edge"))
    if "board_seed" in other:
        hw = Hardware.from_R(other["R"], pot=Potentiometer(tolerance=0.1, wiper=50.0), capacitor=Capacitor(leakage=1e6))
    ds = train("lab16", "default", hw, steps=other.get("steps", 20), seed=other["seed"],
               board_seed=other.get("board_seed"))
    made = _remade(ds, like)
    assert made.identical(_remade(ds, None)) and made.identical(ds)
    assert like.identical(kept)


def test_a_builtin_seed_is_recorded_and_a_mismatch_refused(tmp_path):
    """Bug: a delaunay64 run with --network-seed 5 was replayed on seed 0 and reported agreement."""
    ds = train("delaunay64", "random:5,3,1", Hardware.from_R(1.0, capacitance=22e-6), steps=10, network_seed=5)
    assert ds.attrs["network_seed"] == 5
    res = replay_run(ds, engines=("exact",))
    assert res.error_vs_record(0).max() == 0.0
    with pytest.raises(ConfigError, match="not the run's network"):
        replay_run(ds, engines=("exact",), network="lab16")
    tampered = ds.copy()
    tampered.attrs["network_seed"] = 0
    with pytest.raises(ConfigError, match="does not match the one it records"):
        replay_run(tampered, engines=("exact",))


def test_replay_compares_with_the_recorded_voltages(tmp_path, capsys):
    """--tolerance fails the command when an engine differs from the record by more."""
    pytest.importorskip("PySpice")
    g = _odd_graph()
    ds = train(g, _task(g), Hardware.from_R(0.5), steps=25, seed=2)
    save_run(ds, tmp_path / "run.nc")
    assert main(["replay", str(tmp_path / "run.nc")]) == 0
    out = capsys.readouterr().out
    assert "exact against the recorded voltages: max |dv| = 0 V" in out
    err = float(re.search(r"ngspice against the recorded voltages: max \|dv\| = (\S+) V", out).group(1))
    assert 0 < err < 1e-5
    # a record that was not what the circuit does: the replay says so and fails
    bad = ds.copy(deep=True)
    bad["v_free"].values[5, 3] += 1e-3
    save_run(bad, tmp_path / "bad.nc")
    assert main(["replay", str(tmp_path / "bad.nc"), "--steps", "8"]) == 1
    assert "more than `--tolerance`" in capsys.readouterr().out
    bad["v_free"].values[0, 3] = np.nan  # a corrupt record: NaN is no agreement
    save_run(bad, tmp_path / "nan.nc")
    assert main(["replay", str(tmp_path / "nan.nc"), "--steps", "3"]) == 1
    assert "replay differences are not finite" in capsys.readouterr().out
    assert main(["replay", str(tmp_path / "run.nc"), "--tolerance", "-1"]) == 2
    assert "`--tolerance` must be finite and > 0" in capsys.readouterr().err


def test_replay_run_checks_its_steps_and_file(tmp_path):
    ds = train("lab16", "default", steps=4)
    for steps in (2.7, "3", True, 0, 5):  # (2.7 was 2 steps, "3" three, True one)
        with pytest.raises(ConfigError, match="`steps` must be"):
            replay_run(ds, engines=("exact",), steps=steps)
    with pytest.raises(ConfigError, match="`ds` must be a run file"):
        replay_run(None)
    bad = ds.assign(duration=("node", np.ones(ds.sizes["node"])))
    with pytest.raises(ConfigError, match="`duration` must be over"):
        replay_run(bad, engines=("exact",))


def test_replay_refuses_an_ode_run():
    from spicelearn.continuous.ode import train_ode

    ds = train_ode("lab16", "default", steps=3)
    with pytest.raises(ConfigError, match="no `position` variable"):
        replay_run(ds)


def test_run_files_of_the_previous_version_replay():
    """A run file written before boards (no r_ab, capacitance, offset, position_start, hash): nominal parts, its clock."""
    import os

    import xarray as xr

    path = os.path.join(os.path.dirname(__file__), "data", "reference", "before_issue11", "lab16_global_R3_ngspice.nc")
    ds = xr.load_dataset(path)
    assert "r_ab" not in ds and "network_hash" not in ds.attrs
    res = replay_run(ds, engines=("exact",))
    assert res.error_vs_record(0).max() < 1e-5  # the exact engine along that ngspice run's record


def test_replay_and_train_name_their_bad_arguments(tmp_path):
    from spicelearn.loop import replay
    from spicelearn.model.board import Board
    from spicelearn.model.task import bind

    task = bind("lab16", "default")
    board = Board.nominal(task.network, Hardware())
    p = np.full((2, task.network.n_edges), 63)
    c = np.zeros((2, task.target_index.size))
    for kwargs, message in ((dict(task="default"), "`task` must be a task bound"),
                            (dict(board=Hardware()), "`board` must be a spicelearn Board"),
                            (dict(engines="exact"), "`engines` must be a non-empty sequence"),
                            (dict(clamps=np.full(c.shape, "x")), "`clamps` must be volts"),
                            (dict(durations="x"), "`durations` must be seconds"),
                            (dict(recorded=(1, 2)), r"`recorded` must be \(v_free, v_clamped\)")):
        args = {**dict(task=task, board=board, positions=p, clamps=c, engines=("exact",)), **kwargs}
        with pytest.raises(ConfigError, match=message):
            replay(**args)
    res = replay(task, board, p, c, engines=("exact",))
    with pytest.raises(ConfigError, match="this replay ran one engine"):
        res.error
    for backend, message in ((object, "cannot be called as"), (lambda n, t, b: None, "without the engine protocol")):
        with pytest.raises(ConfigError, match=message):
            train("lab16", "default", steps=2, backend=backend)
