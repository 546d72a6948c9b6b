"""The faults found trying spicelearn as a new user would, each through the command line where it was found."""

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import networkx as nx
import numpy as np
import pytest

from spicelearn.cli import main
from spicelearn.model.network import load_network
from spicelearn.runfile import load_run


def _one_line_error(capsys, message):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("spicelearn: error:"), err
    assert message in err, err
    return err


# -- nothing replaced or lost -------------------------------------------------------------
def test_a_device_is_never_replaced_by_a_run_file(capsys):
    assert main(["train", "lab16", "--steps", "2", "--quiet", "--out", "/dev/null"]) == 2
    _one_line_error(capsys, "not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_folder_is_never_replaced(tmp_path, capsys):
    (tmp_path / "run.nc").mkdir()
    assert main(["train", "lab16", "--steps", "2", "--quiet", "--out", str(tmp_path / "run.nc")]) == 2
    _one_line_error(capsys, "is a folder")


_SLOW_SAVE = """
import sys, time
import xarray as xr
real = xr.Dataset.to_netcdf
def slow(self, path, *a, **k):
    with open(path, "wb") as fh:
        fh.write(b"partial")
    open(sys.argv[2], "w").close()  # tell the test we are inside the write
    time.sleep(60)
xr.Dataset.to_netcdf = slow
from spicelearn.cli import main
sys.exit(main(["train", "lab16", "--steps", "3", "--quiet", "--out", sys.argv[1]]))
"""


def test_sigterm_while_saving_leaves_the_old_file_and_no_partial_one(tmp_path):
    out = tmp_path / "run.nc"
    out.write_bytes(b"the user's old run")
    marker = tmp_path / "inside"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(out), str(marker)], stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert out.read_bytes() == b"the user's old run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inside", "run.nc"]  # no .part file left


def test_a_full_disk_is_one_line_and_the_old_file_stays(tmp_path, capsys, monkeypatch):
    import xarray as xr

    out = tmp_path / "run.nc"
    out.write_bytes(b"old")

    def full(self, path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"par")
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    assert main(["train", "lab16", "--steps", "2", "--quiet", "--out", str(out)]) == 2
    _one_line_error(capsys, "is the disk full?")
    assert out.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


# -- nothing silently wrong -------------------------------------------------------------------
def _graphml(tmp_path, c):
    g = load_network("lab16").to_graph()
    nx.set_edge_attributes(g, c, "capacitance")
    path = tmp_path / "board.graphml"
    nx.write_graphml(g, path)
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"sources": {"0": 0.0, "8": 1.0}, "targets": {"2": 0.25, "6": 0.65}}))
    return str(path), str(task)


def test_capacitance_given_wins_over_the_graphs_and_R_is_kept(tmp_path):
    net, task = _graphml(tmp_path, 2.2e-6)
    out = tmp_path / "run.nc"
    assert main(["train", net, "--task", task, "--R", "1", "--capacitance", "1e-3", "--steps", "3", "--quiet",
                 "--out", str(out)]) == 0
    ds = load_run(out)
    assert ds.attrs["R"] == pytest.approx(1.0) and ds.attrs["capacitance"] == pytest.approx(1e-3)
    np.testing.assert_allclose(ds.capacitance.values, 1e-3)
    # a graph of large capacitances at the default R = 1 runs at R = 1 with its own capacitances
    net, task = _graphml(tmp_path, 2.2)
    assert main(["train", net, "--task", task, "--steps", "3", "--quiet", "--out", str(out)]) == 0
    ds = load_run(out)
    assert ds.attrs["R"] == pytest.approx(1.0) and ds.attrs["gamma_l"] == pytest.approx(1 / (1e4 * 2.2))


def test_a_node_id_with_a_newline_cannot_end_the_deck(tmp_path):
    g = nx.relabel_nodes(load_network("lab16").to_graph(), {"4": "a\n.end\nx"})
    path = tmp_path / "odd.graphml"
    nx.write_graphml(g, path)
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"sources": {"0": 0.0, "8": 1.0}, "targets": {"2": 0.25, "6": 0.65}}))
    cir = tmp_path / "odd.cir"
    assert main(["export-spice", str(path), "--task", str(task), "-o", str(cir)]) == 0
    lines = cir.read_text().splitlines()
    assert [ln for ln in lines if ln.strip() == ".end"] == [lines[-1]]
    assert r"a\n.end\nx" in cir.read_text()  # escaped in the comment that maps node ids
    pytest.importorskip("PySpice")
    out = tmp_path / "run.nc"
    assert main(["train", str(path), "--task", str(task), "--backend", "ngspice", "--steps", "3", "--quiet",
                 "--out", str(out)]) == 0


def test_task_voltages_beyond_any_board_are_refused(tmp_path, capsys):
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"sources": {"0": 0.0, "8": 1e300}, "targets": {"2": 0.25}}))
    assert main(["train", "lab16", "--task", str(task), "--steps", "3", "--out", str(tmp_path / "r.nc")]) == 2
    _one_line_error(capsys, "beyond +/-1000 V")


@pytest.mark.parametrize("value, message", [("true", "not a number of volts"), ('"0.0"', "not a number of volts")])
def test_task_file_values_must_be_numbers(tmp_path, capsys, value, message):
    task = tmp_path / "task.json"
    task.write_text('{"sources": {"0": 0.0, "8": %s}, "targets": {"2": 0.25}}' % value)
    assert main(["train", "lab16", "--task", str(task), "--steps", "3", "--out", str(tmp_path / "r.nc")]) == 2
    _one_line_error(capsys, message)


def test_a_key_given_twice_in_a_task_file_is_refused(tmp_path, capsys):
    task = tmp_path / "task.json"
    task.write_text('{"sources": {"0": 0.0, "8": 1.0, "8": 0.5}, "targets": {"2": 0.25}}')
    assert main(["train", "lab16", "--task", str(task), "--steps", "3", "--out", str(tmp_path / "r.nc")]) == 2
    _one_line_error(capsys, "more than once")


def test_non_finite_results_are_an_error_not_a_run_file(monkeypatch):
    import spicelearn.engines.exact as ex
    from spicelearn.errors import SpicelearnError
    from spicelearn.loop import train

    real = ex.ExactEngine._relax
    monkeypatch.setattr(ex.ExactEngine, "_relax", lambda self, s, c, d: real(self, s, c * np.nan, d))
    with pytest.raises(SpicelearnError, match="non-finite"):
        train("lab16", "default", steps=3)


# -- one clear line instead of a traceback -----------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["train", "lab16", "--task", "random:5,3,-1"], "SEED >= 0"),
    (["train", "lab16", "--seed", "-1"], "`--seed`=-1 must be an integer in 0 .. 2**63 - 1"),
    (["train", "lab16", "--seed", str(2**63)],  # run files and sweeps keep 64 signed bits
     "`--seed`=9223372036854775808 must be an integer in 0 .. 2**63 - 1"),
    (["train", "lab16", "--board", str(2**63)], "`--board`=9223372036854775808 must be an integer in 0 .. 2**63 - 1"),
    (["train", "delaunay64", "--task", "random:5,3,0", "--network-seed", "-1"], "`--network-seed`=-1 must be"),
    (["train", "delaunay64", "--task", "random:5,3,0", "--network-seed", str(2**63)],
     "`--network-seed`=9223372036854775808"),
    (["train", "lab16", "--steps", "1000000000000"], "GiB"),
    (["train", "lab16", "--backend", "ode", "--start", "10"], "`--start` does not apply"),
    (["train", "delaunay64"], "give a JSON file or random:MS,MT,SEED"),
])
def test_bad_options_give_one_line(tmp_path, capsys, argv, message):
    assert main(argv + ["--quiet", "--out", str(tmp_path / "r.nc")]) == 2
    _one_line_error(capsys, message)
    assert not (tmp_path / "r.nc").exists()


def test_ode_at_a_tiny_R_says_why(tmp_path, capsys):
    assert main(["train", "lab16", "--backend", "ode", "--R", "1e-9", "--steps", "20", "--out",
                 str(tmp_path / "r.nc")]) == 2
    _one_line_error(capsys, "quasistatic limit")


def test_binary_task_and_positions_files(tmp_path, capsys):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    assert main(["train", "lab16", "--task", str(blob), "--steps", "2", "--out", str(tmp_path / "r.nc")]) == 2
    _one_line_error(capsys, "is not text")
    assert main(["export-spice", "lab16", "--positions", str(blob), "-o", str(tmp_path / "a.cir")]) == 2
    _one_line_error(capsys, "is not text")
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object))
    assert main(["export-spice", "lab16", "--positions", str(tmp_path / "p.npy"), "-o", str(tmp_path / "a.cir")]) == 2
    _one_line_error(capsys, "not a plain .npy array")


def test_show_plot_names_the_file_it_writes(tmp_path, capsys):
    run = tmp_path / "run.nc"
    assert main(["train", "lab16", "--steps", "5", "--quiet", "--out", str(run)]) == 0
    assert main(["show", str(run), "--plot", str(tmp_path / "xplot")]) == 0
    assert f"wrote {tmp_path / 'xplot.png'}" in capsys.readouterr().out and (tmp_path / "xplot.png").exists()
    assert main(["show", str(run), "--plot", str(tmp_path / "x.foo")]) == 2
    _one_line_error(capsys, "cannot write '.foo' images")
    assert main(["show", str(run), "--plot", str(tmp_path / "no" / "x.png")]) == 2  # as train --out: no new folders
    _one_line_error(capsys, "does not exist; create it first")
    assert main(["train", "lab16", "--steps", "2", "--quiet", "--out", str(run / "x.nc")]) == 2  # run.nc is a file
    _one_line_error(capsys, f"{str(run)!r} is a file, not a folder")


def test_a_broken_sweep_cache_says_delete_it(tmp_path, capsys):
    """Figures cache their runs in sweep folders; a truncated point file is named, with the fix."""
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nnetwork = "lab16"\nsteps = 5\n[grid]\nR = [1.0, 2.0]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0", "--quiet"]) == 0
    point = sorted((tmp_path / "out" / "points").glob("*.nc"))[0]
    point.write_bytes(point.read_bytes()[:100])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0", "--quiet"]) == 2
    note, err = capsys.readouterr().err.strip().splitlines()  # "2 of 2 points already done", then the error
    assert err.startswith("spicelearn: error:") and "delete it to run the point again" in err and point.name in err


def test_a_figure_needs_an_out_dir(capsys):
    with pytest.raises(SystemExit):
        main(["figure", "fig2", "--quick"])
    assert "--out-dir" in capsys.readouterr().err


def test_an_unwritable_figure_folder_fails_before_the_sweep(tmp_path, capsys, monkeypatch):
    import spicelearn.experiments.sweep as sw
    import spicelearn.files as files

    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    monkeypatch.setattr(sw, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    assert main(["figure", "fig2", "--quick", "--out-dir", str(tmp_path)]) == 2
    _one_line_error(capsys, "is not writable")


def test_messages_show_numbers_not_numpy_reprs():
    from spicelearn.errors import ConfigError
    from spicelearn.model.hardware import Hardware

    with pytest.raises(ConfigError) as info:
        Hardware(capacitance=np.float64(-1e-6))
    assert "-1e-06" in str(info.value) and "np.float64" not in str(info.value)


# -- clear --------------------------------------------------------------------------------------
def test_help_states_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for words in ("exact (default", "clock ticks", "run file to write", "start position of every pot"):
        assert words in text


def test_progress_into_a_log_writes_a_few_lines_not_redraws():
    from spicelearn.progress import Progress

    log = io.StringIO()  # not a terminal
    bar = Progress(10_000, stream=log, delay=0.0, log_every=0.05)
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < 0.3:
        k += 1
        bar.update(k)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 3 <= len(lines) <= 10 and f"{k}/10000" in lines[-1]


def test_the_command_line_starts_without_xarray_or_scipy():
    code = "import sys, spicelearn.cli as c; c.build_parser(); print(sorted({'xarray', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_sweep_workers_die_with_their_parent(tmp_path):
    """SIGKILL of a figure's sweep leaves no orphaned workers blocked on a pipe."""
    code = textwrap.dedent(f"""
        from spicelearn.cli import main
        main(["figure", "fig2", "--quick", "--tasks", "2", "--out-dir", {str(tmp_path)!r}])
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    children = []
    deadline = time.time() + 60
    while len(children) < 2 and time.time() < deadline:
        time.sleep(0.2)
        children = _children(proc.pid)
    assert len(children) >= 2, "the sweep started no workers"
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in children if _alive(p)]


def _children(pid: int) -> list:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(name))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_library_that_is_not_ngspice_is_one_line(tmp_path):
    pytest.importorskip("PySpice")
    import ctypes.util

    other = ctypes.util.find_library("z") or "libz.so.1"
    path = next((p for p in (f"/usr/lib/x86_64-linux-gnu/{other}", f"/lib/x86_64-linux-gnu/{other}", other)
                 if os.path.exists(p)), None)
    if path is None:
        pytest.skip("no libz to stand in for a wrong library")
    env = dict(os.environ, NGSPICE_LIBRARY_PATH=path)
    out = subprocess.run([sys.executable, "-m", "spicelearn.cli", "train", "lab16", "--backend", "ngspice", "--steps",
                          "2", "--quiet", "--out", str(tmp_path / "r.nc")], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "is not ngspice's shared library" in out.stderr and "Traceback" not in out.stderr


def _tamper(ds, how):
    """A copy of the run file ``ds`` edited as another tool (or a slip of a hand) might have left it."""
    out = ds.copy(deep=True)
    if how == "R as text":
        out.attrs["R"] = "abc"
    elif how == "mse as text":
        out["mse"] = ("step", out.mse.values.astype(str))
    elif how == "mse with an extra axis":
        out["mse"] = (("extra", "step"), out.mse.values[None])
    elif how == "step renamed":
        out = out.rename({"step": "stepx"})
    elif how == "no steps":
        out = out.isel(step=slice(0, 0))
    elif how in ("eta", "task"):
        del out.attrs[how]
    elif how == "task not JSON":
        out.attrs["task"] = "{bad json"
    elif how == "network GraphML broken":
        out.attrs["network_graphml"] = "<graphml>broken"
    return out


def _tampered_run(tmp_path, how):
    """A 4-step lab16 run file, tampered with (:func:`_tamper`) and written to ``tmp_path / "bad.nc"``."""
    run, bad = tmp_path / "run.nc", tmp_path / "bad.nc"
    assert main(["train", "lab16", "--steps", "4", "--quiet", "--out", str(run)]) == 0
    _tamper(load_run(run), how).to_netcdf(bad, unlimited_dims=["step"] if how == "no steps" else None)
    return bad


@pytest.mark.parametrize("how, message", [
    ("R as text", "the attribute(s) ['R'] must be numbers"),
    ("mse as text", "`mse` must be numbers over ('step',)"),
    ("mse with an extra axis", "`mse` must be numbers over ('step',), got float64 over ('extra', 'step')"),
    ("step renamed", "got float64 over ('stepx',)"),
    ("no steps", "has no steps"),
])
def test_a_run_file_of_the_wrong_layout_is_one_line(tmp_path, capsys, how, message):
    bad = _tampered_run(tmp_path, how)
    for argv in (["show", str(bad)], ["replay", str(bad)], ["export-spice", "lab16", "--positions", str(bad),
                                                            "-o", str(tmp_path / "x.cir")]):
        assert main(argv) == 2
        _one_line_error(capsys, message)


@pytest.mark.parametrize("how, message", [
    ("eta", "lacks the attribute or variable 'eta'"), ("task", "lacks the attribute or variable 'task'"),
    ("task not JSON", "attributes are damaged: JSONDecodeError"),
    ("network GraphML broken", "attributes are damaged: ParseError"),
])
def test_a_run_file_that_lacks_what_repeating_it_needs_is_one_line(tmp_path, capsys, how, message):
    bad = _tampered_run(tmp_path, how)
    assert main(["show", str(bad)]) == 0  # its summary needs none of it
    capsys.readouterr()
    for argv in (["replay", str(bad), "--steps", "2"], ["export-spice", "lab16", "--positions", str(bad),
                                                        "-o", str(tmp_path / "x.cir")]):
        assert main(argv) == 2
        _one_line_error(capsys, message)


@pytest.mark.parametrize("argv", [
    ["validate", "DESIGN", "--out-dir"], ["compare", "lab16", "--out-dir"], ["figure", "fig2", "--quick", "--out-dir"],
    ["demo", "--out-dir"], ["sweep", "SPEC", "--out"],
])
def test_an_output_folder_that_is_a_file_or_empty_is_one_line(tmp_path, capsys, argv):
    design = tmp_path / "d.toml"
    design.write_text('network = "lab16"\ntask = "default"\nsteps = 5\nwindow = 2\nboards = 2\n')
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\nnetwork = "lab16"\nsteps = 5\n[grid]\nR = [1.0]\n')
    argv = [{"DESIGN": str(design), "SPEC": str(spec)}.get(a, a) for a in argv]
    afile = tmp_path / "afile"
    afile.write_text("kept")
    flag = argv[-1]
    assert main(argv + [str(afile)]) == 2
    _one_line_error(capsys, f"`{flag}`={str(afile)!r} is a file, not a folder")
    assert main(argv + [""]) == 2
    _one_line_error(capsys, f"`{flag}` is empty")
    assert afile.read_text() == "kept"


def test_demo_checks_its_steps_before_it_trains(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path / "d"), "--compare-steps", "0"]) == 2
    _one_line_error(capsys, "`compare_steps` must be an integer >= 1, got 0")
    assert not (tmp_path / "d").exists()


def _each_names_its_argument(calls):
    """Each ``(call, message)``: the call raises one of spicelearn's errors, whose text holds ``message``."""
    from spicelearn.errors import SpicelearnError

    for call, message in calls:
        with pytest.raises(SpicelearnError) as exc:
            call()
        assert message in str(exc.value)


def test_the_python_entry_points_name_arguments_of_the_wrong_type(tmp_path):
    """What a script may pass by mistake is one error naming the argument, not an AttributeError or TypeError from
    inside (each of these was one)."""
    import xarray as xr

    import spicelearn as sl
    from spicelearn.engines.batched import BatchedExactEngine
    from spicelearn.experiments.design import design_from_dict
    from spicelearn.experiments.spec import SweepSpec
    from spicelearn.experiments.sweep import run_sweep
    from spicelearn.experiments.validate import validate
    from spicelearn.model.task import bind

    task = bind("lab16", "default")
    board = sl.Board.nominal(task.network, sl.Hardware())
    calls = [
        (lambda: sl.load_run(None), "`path` must be a run file's path"),
        (lambda: sl.save_run(None, tmp_path / "x.nc"), "`ds` must be an xarray.Dataset"),
        (lambda: sl.save_run(xr.Dataset(attrs={"note": None}), tmp_path / "x.nc"), "attribute(s) ['note']"),
        (lambda: sl.save_run(xr.Dataset(), 5), "`--out` must be a file name"),
        (lambda: sl.compile_network(nx.path_graph(3), name=["x"]), "`name`"),
        (lambda: sl.Potentiometer(part=["AD5220-10k"]), "`part`"),
        (lambda: SweepSpec(base=None, grid={"R": [1.0]}), "`base` must be a mapping"),
        (lambda: run_sweep({"R": [1.0]}, tmp_path / "s"), "`spec` must be a SweepSpec"),
        (lambda: design_from_dict(None), "must be a table of keys"),
        (lambda: validate({"boards": 2}, tmp_path / "v"), "`design` must be a Design"),
        (lambda: BatchedExactEngine(task.network, task, board), "`tasks` must be a sequence"),
        (lambda: BatchedExactEngine(None, [task], [board]), "`network` must be a compiled network"),
        (lambda: sl.Board.nominal("lab16", sl.Hardware()), "`network` must be a compiled network"),
        (lambda: sl.Board.nominal(task.network, None), "`hardware` must be a spicelearn Hardware"),
        (lambda: sl.Board.draw(task.network, sl.Hardware(), 0), "`rng` must be a numpy.random.Generator"),
    ]
    _each_names_its_argument(calls)
    assert not (tmp_path / "x.nc").exists()


def test_more_python_entry_points_name_their_bad_arguments(tmp_path):
    """The second round of fuzzing: each of these was a TypeError, KeyError or a silent acceptance."""
    import spicelearn as sl
    from spicelearn.experiments.design import design_from_dict
    from spicelearn.experiments.spec import SweepSpec
    from spicelearn.experiments.sweep import run_sweep
    from spicelearn.experiments.validate import validate
    from spicelearn.loop import replay_run

    design = design_from_dict({"network": "lab16", "task": "default", "steps": 5, "window": 2, "boards": 2})
    spec = SweepSpec(base={"network": "lab16", "steps": 3}, grid={"R": [1.0]})
    ds = sl.train("lab16", "default", steps=3)
    task = sl.Task({"0": 1.0}, {"2": 0.5})
    calls = [
        (lambda: validate(design, None), "`--out-dir` must be a folder"),
        (lambda: sl.compile_network(nx.path_graph(3), allow_disconnected="no"), "`allow_disconnected` must be"),
        (lambda: task.to_json(tmp_path / "no" / "t.json"), "does not exist; create it first"),
        (lambda: task.to_json(None), "`path` must be a file name"),
        (lambda: run_sweep(spec, tmp_path / "s", log=5), "`log` must be a text file"),
        (lambda: run_sweep(spec, tmp_path / "s", scheduler=5), "`scheduler` must be a Dask scheduler's address"),
        (lambda: replay_run(ds.drop_vars("v_clamped"), engines=("exact",)), "without ['v_clamped']"),
    ]
    _each_names_its_argument(calls)
    task.to_json(tmp_path / "t.json")
    assert sl.load_task(str(tmp_path / "t.json"), sl.load_network("lab16")) == task


def test_an_error_of_several_lines_is_printed_as_one(tmp_path, capsys, monkeypatch):
    """ngspice's own report runs over lines (``Timestep too small`` and what follows): one line on the terminal."""
    from spicelearn.errors import SpiceError

    def fail(*args, **kwargs):
        raise SpiceError("ngspice command `run` failed:\ndoAnalyses: TRAN: Timestep too small\n\nrun aborted")

    monkeypatch.setattr("spicelearn.experiments.spec.run", fail)
    assert main(["train", "lab16", "--steps", "2", "--quiet", "--out", str(tmp_path / "r.nc")]) == 2
    err = _one_line_error(capsys, "failed:; doAnalyses: TRAN: Timestep too small; run aborted")
    assert "\n" not in err


def test_a_stop_request_swallowed_on_the_way_still_stops_the_run(tmp_path, capsys):
    """SIGTERM raises KeyboardInterrupt at once and also asks every loop to stop at its next progress update: where
    the first was swallowed (in a finaliser), the run still stops, cleanly, with no file; the request ends with the
    command, so the next runs as usual."""
    from spicelearn.progress import request_stop

    out = tmp_path / "r.nc"
    request_stop()  # as if the handler had run and its exception had been swallowed
    assert main(["train", "lab16", "--steps", "50", "--quiet", "--out", str(out)]) == 130
    assert "spicelearn: interrupted" in capsys.readouterr().err and not out.exists()
    assert main(["train", "lab16", "--steps", "5", "--quiet", "--out", str(out)]) == 0 and out.exists()


def test_an_interrupt_while_the_temporary_file_is_made_leaves_none(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) is held back while the temporary file is created, and raised once the code that removes
    it is in charge: a sweep stopped by SIGTERM had left an empty ``.nc.part`` beside its point files."""
    import signal
    import tempfile

    from spicelearn import files

    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        out = real(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # arrives with the file made, before its path is returned
        return out

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(tmp_path / "x.txt", "data")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    files.atomic_write(tmp_path / "x.txt", "data")  # and nothing stays held back
    assert (tmp_path / "x.txt").read_text() == "data" and not signal.pthread_sigmask(signal.SIG_BLOCK, set())
