"""Sweeps: specs, points written atomically, failures recorded, resuming after SIGKILL, Dask clusters."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

import spicelearn.experiments.spec as spec_module
from spicelearn.cli import main
from spicelearn.errors import ConfigError, SpicelearnError
from spicelearn.experiments.spec import SweepSpec, load_spec
from spicelearn.experiments.sweep import combine, open_cluster, run_sweep
from spicelearn.loop import train
from spicelearn.model.hardware import Comparator, Hardware

SPEC = """
[base]
network = "lab16"
task = "default"
steps = 40
capacitance = 22e-6
noise = 0.01
[grid]
R = [0.3, 3]
seed = [0, 1]
"""


def _write(tmp_path, text=SPEC, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_sweep_is_the_runs_of_its_grid(tmp_path):
    ds = run_sweep(load_spec(_write(tmp_path)), tmp_path / "out", workers=0, progress=False)
    assert ds.mse.dims == ("R", "seed", "step") and ds.mse.shape == (2, 2, 40)
    for R in (0.3, 3.0):
        for seed in (0, 1):
            hw = Hardware.from_R(R, capacitance=22e-6, comparator=Comparator(noise=0.01))
            run = train("lab16", "default", hw, steps=40, seed=seed)
            # batched (the default): the run to rounding (the batched engine's arithmetic, ~1e-16)
            np.testing.assert_allclose(ds.mse.sel(R=R, seed=seed).values, run.mse.values, rtol=1e-12, atol=0)
            assert ds.run_R.sel(R=R, seed=seed) == pytest.approx(R)
    assert (ds.error.values == "").all() and ds.attrs["points_done"] == 4
    # every point is a compressed run file with its options; combine rebuilds sweep.nc from them alone
    points = sorted((tmp_path / "out" / "points").glob("*.nc"))
    assert len(points) == 4
    assert main(["sweep", "--combine", str(tmp_path / "out")]) == 0
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "out" / "sweep.nc"), ds)
    xr.testing.assert_identical(combine(tmp_path / "out"), ds)


def test_a_failed_point_is_recorded_the_sweep_goes_on_and_a_rerun_retries_only_it(tmp_path, monkeypatch, capsys):
    real = spec_module.run
    calls = []

    def flaky(options, progress=False):
        calls.append((options["R"], options["seed"]))
        if options["R"] == 3.0 and options["seed"] == 1:
            raise SpicelearnError("transient trouble")
        return real(options, progress)

    monkeypatch.setattr("spicelearn.experiments.sweep.run", flaky)
    spec = load_spec(_write(tmp_path, "batch = false\n" + SPEC))  # one run per point, to count them
    ds = run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    assert ds.error.sel(R=3.0, seed=1).item() == "SpicelearnError: transient trouble"
    assert np.isnan(ds.mse.sel(R=3.0, seed=1).values).all() and np.isfinite(ds.mse.sel(R=0.3).values).all()
    assert "failed and is left out" in capsys.readouterr().err
    assert len(calls) == 4
    calls.clear()
    monkeypatch.setattr("spicelearn.experiments.sweep.run", lambda o, progress=False: calls.append(
        (o["R"], o["seed"])) or real(o, progress))
    fixed = run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    assert calls == [(3.0, 1)]  # only the failed point ran again
    assert (fixed.error.values == "").all()
    full = run_sweep(spec, tmp_path / "fresh", workers=0, progress=False)
    xr.testing.assert_identical(fixed, full)


_KILLABLE = """
import sys
import spicelearn.experiments.sweep as sweep
from spicelearn.experiments.spec import load_spec
sweep.MAX_BATCH = 2  # batched sweeps: jobs of two points, so that a kill finds some written
sweep.run_sweep(load_spec(sys.argv[1]), sys.argv[2], workers=0, progress=False)
"""


@pytest.mark.parametrize("batch", [pytest.param("false", marks=pytest.mark.slow), "true"])  # true: the default
def test_a_sweep_killed_partway_resumes_and_ends_as_an_uninterrupted_one(tmp_path, batch):
    spec_path = _write(tmp_path, f"batch = {batch}\n" + SPEC.replace("steps = 40", "steps = 250").replace(
        "seed = [0, 1]", "seed = [0, 1, 2, 3]"))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(spec_path), str(out)],
                            stderr=subprocess.DEVNULL)
    points = out / "points"
    deadline = time.time() + 120
    while (not points.is_dir() or len(list(points.glob("*.nc"))) < 2) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in points.glob("*.nc")}
    assert 2 <= len(finished) < 8, "the sweep was not killed partway"
    assert not list(points.glob("*.part")) or all(p.name.startswith(".") for p in points.glob("*.part"))
    log = subprocess.run([sys.executable, "-c", _KILLABLE.replace("progress=False", "progress=False, log=sys.stdout"),
                          str(spec_path), str(out)], capture_output=True, text=True, check=True).stdout
    assert f"{len(finished)} of 8 points already done" in log and f"running the other {8 - len(finished)}" in log
    assert {p: (points / p).stat().st_mtime_ns for p in finished} == finished  # no finished point ran again
    assert not [p for p in points.iterdir() if p.name.startswith(".")]  # the killed write left nothing behind
    whole = run_sweep(load_spec(spec_path), tmp_path / "whole", workers=0, progress=False)
    xr.testing.assert_identical(xr.load_dataset(out / "sweep.nc"), whole)


def test_batched_and_one_by_one_sweeps_give_the_same_sweep_nc(tmp_path):
    """``batch = true`` (the default) and ``batch = false``: the same points, positions equal at every step, errors
    to rounding, the same taus (the two-worker test below mixes batched exact points with ngspice ones)."""
    text = 'keep = "errors"\n' + SPEC.replace("R = [0.3, 3]", "R = [0.3, 3]\ncapacitance_model = [\"per_edge\", \"global\"]")
    one = run_sweep(load_spec(_write(tmp_path, "batch = false\n" + text, "one.toml")), tmp_path / "one",
                    workers=0, progress=False)
    batched = run_sweep(load_spec(_write(tmp_path, text, "batched.toml")), tmp_path / "batched", workers=0,
                        progress=False)
    assert one.mse.shape == (2, 2, 2, 40) and (batched.error.values == "").all()
    np.testing.assert_array_equal(batched.position_final.values, one.position_final.values)
    for v in ("mse", "mse_eq", "final_mse", "median_mse", "mse0"):
        np.testing.assert_allclose(batched[v].values, one[v].values, rtol=1e-12, atol=0, err_msg=v)
    for v in ("tau", "tau_eq", "run_R", "run_gamma_l"):
        np.testing.assert_array_equal(batched[v].values, one[v].values, err_msg=v)
    assert set(batched.data_vars) == set(one.data_vars) and batched.attrs == one.attrs


def test_a_batch_with_a_bad_point_runs_the_others_and_records_its_error(tmp_path, monkeypatch):
    """A point whose design is refused at set-up fails alone: the batch falls back to one run per point."""
    calls = []
    real = spec_module.run_batch
    monkeypatch.setattr("spicelearn.experiments.sweep.run_batch", lambda o: calls.append(len(o)) or real(o))
    text = SPEC.replace("R = [0.3, 3]", "r_ab_tolerance = [0.1, 1.5]")
    ds = run_sweep(load_spec(_write(tmp_path, text)), tmp_path / "out", workers=0, progress=False)
    assert calls == [4]
    assert (ds.error.sel(r_ab_tolerance=0.1).values == "").all()
    assert all("`r_ab_tolerance`" in e for e in ds.error.sel(r_ab_tolerance=1.5).values)


@pytest.mark.parametrize("text, message", [
    (SPEC.replace("noise = 0.01", "nosie = 0.01"), "unknown option(s) ['nosie']"),
    (SPEC.replace("R = [0.3, 3]\nseed = [0, 1]", ""), "`[grid]` is empty"),
    (SPEC.replace("R = [0.3, 3]", "R = []"), "non-empty list"),
    (SPEC.replace("steps = 40", 'steps = "forty"'), "`steps`='forty' must be a finite int"),
    (SPEC.replace("R = [0.3, 3]", 'R = [0.3, "fast"]'), "`R`='fast' must be a finite float"),
    (SPEC.replace("steps = 40", "steps = 40\ngamma_l = 10.0"), "either `gamma_l` or `R`"),
    (SPEC.replace("noise = 0.01", 'backend = "ode"\nnoise = 0.01'), "does not apply to the ode backend"),
    (SPEC + "\n[extra]\nx = 1\n", "unknown table(s) or key(s) ['extra']"),
    (SPEC.replace("R = [0.3, 3]", "dac_range = [[-1, 1], [-2, 2]]").replace("steps = 40", "steps = 40\ndac_bits = 8"),
     "[grid] `dac_range` is a pair of volts"),
    ('grid = [1, 2]\n[base]\nnetwork = "lab16"\n', "`grid` must be a table"),
    (SPEC.replace("seed = [0, 1]", "seed = [0, 9223372036854775808]"), "must be an integer in 0 .. 2**63 - 1"),
    ("[base\n", "not valid TOML"),
])
def test_bad_specs_give_one_line_before_any_run(tmp_path, capsys, text, message):
    assert main(["sweep", str(_write(tmp_path, text)), "--out", str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("spicelearn: error:") and message in err, err
    assert not (tmp_path / "out").exists()


def test_empty_folders_are_refused(tmp_path, capsys, monkeypatch):
    """``--out ""`` and ``--combine ""`` would use the current folder unasked."""
    monkeypatch.chdir(tmp_path)
    spec = str(_write(tmp_path))
    for argv, message in ((["sweep", spec, "--out", ""], "`--out` is empty"),
                          (["sweep", "--combine", " "], "`--combine` is empty")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "points").exists() and not (tmp_path / "sweep.nc").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(_write(tmp_path)), "--out", str(tmp_path / "out"), "--scheduler",
                 "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot reach a Dask scheduler" in err


def test_a_local_cluster_of_two_processes_runs_exact_and_ngspice_points(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("PySpice")
    # delaunay64 and a random task: no exact comparator ties at the uniform start (lab16's symmetry has them)
    spec = SweepSpec(base={"network": "delaunay64", "task": "random:5,3,0", "steps": 20, "capacitance": 22e-6},
                     grid={"backend": ["exact", "ngspice"], "R": [0.5, 2.0]})
    with open_cluster(2) as cluster:
        ds = run_sweep(spec, tmp_path / "out", cluster=cluster, progress=False)
        # the workers' environment: one BLAS thread, and glibc's own malloc thresholds (no MALLOC_TRIM_THRESHOLD_,
        # which would serve numpy's large temporaries by fresh mmaps)
        env = cluster.client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                          os.environ.get("OMP_NUM_THREADS")))
    assert sorted(env.values()) == [(None, "1"), (None, "1")]
    assert (ds.error.values == "").all()
    # the engines agree point by point (the comparators see voltages 1e-5 V apart at most)
    np.testing.assert_allclose(ds.mse.sel(backend="ngspice").values, ds.mse.sel(backend="exact").values,
                               rtol=1e-3, atol=1e-9)


def test_a_sweep_on_a_scheduler_given_by_address(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster:
        spec = load_spec(_write(tmp_path))
        ds = run_sweep(spec, tmp_path / "out", scheduler=cluster.scheduler_address, progress=False)
    local = run_sweep(spec, tmp_path / "local", workers=0, progress=False)
    xr.testing.assert_identical(ds, local)


def test_keep_errors_keeps_the_final_state_only(tmp_path):
    spec = SweepSpec(base={"network": "lab16", "backend": "ode", "steps": 30}, grid={"R": [1.0, 10.0]},
                     keep="errors")
    ds = run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    assert ds.conductance_final.dims == ("R", "edge") and np.isfinite(ds.conductance_final.values).all()
    point = xr.load_dataset(next((tmp_path / "out" / "points").glob("*.nc")))
    assert "v_free" not in point and "conductance" not in point and "conductance_final" in point
    assert point.mse.encoding.get("zlib")  # compressed


def test_workers_must_be_a_count():
    for workers in (-1, 4 * (os.cpu_count() or 1) + 1):  # a thousand processes would exhaust the machine
        with pytest.raises(ConfigError, match="`workers`"):
            run_sweep(SweepSpec(base={"network": "lab16"}, grid={"R": [1.0]}), "x", workers=workers)
    assert os.path.exists("x") is False


def test_compare_matches_the_global_model_by_c_and_by_rate(tmp_path):
    """The comparison: three models on the board's clock; the rate-matched global capacitance gives the board's
    slowest relaxation rate, and the same-c one the board's R."""
    from spicelearn.experiments.compare import compare
    from spicelearn.experiments.hardware_figures import slowest_relaxation_rate
    from spicelearn.loop import initial_positions, make_board
    from spicelearn.model.task import bind

    files = compare("lab16", "default", str(tmp_path), R_values=(0.3, 3.0), seeds=1, steps=40, workers=0,
                    progress=False)
    ds = xr.load_dataset(tmp_path / "compare.nc")
    assert list(ds.model.values) == ["per_edge", "global_same_c", "global_same_rate"]
    task = bind("lab16", "default")
    board = make_board(task.network, Hardware(capacitance=ds.attrs["capacitance_global_same_rate"],
                                              capacitance_model="global"))
    rate = slowest_relaxation_rate(task, board, initial_positions(task.network, board.hardware))
    assert rate == pytest.approx(ds.attrs["slowest_rate_per_edge"], rel=1e-9)
    assert ds.attrs["slowest_rate_global_same_c"] != pytest.approx(rate, rel=1e-3)  # the two matchings differ
    # the same c on the same clock: the per-edge and same-c runs start from the same equilibrium error
    np.testing.assert_allclose(ds.mse0.sel(model="per_edge"), ds.mse0.sel(model="global_same_c"))
    assert (tmp_path / "compare.png").exists() and "| 3 |" in (tmp_path / "compare.md").read_text()
    assert any(line.startswith("R_c") for line in files)


def test_compare_checks_its_values_first_and_exits_1_where_runs_failed(tmp_path, capsys):
    """Bad steps, noise or capacitance are one line before any run; parts so far out of range that every run fails
    give the report with the count of failed runs and exit status 1 (it was 0, with "n/r" everywhere)."""
    from spicelearn.cli import main

    base = ["compare", "lab16", "--R-values", "1", "--seeds", "1", "--workers", "0", "--quiet", "--out-dir"]
    for bad, message in ((["--steps", "0"], "`steps` must be an integer >= 1"), (["--noise", "-1"], "`noise`"),
                         (["--capacitance", "0"], "`capacitance` must be finite and > 0"),
                         (["--seeds", "99999999999999999999"], "`--seeds` must be an integer in 1..10,000")):
        assert main(base + [str(tmp_path / "bad")] + bad) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(base + [str(tmp_path / "c"), "--steps", "5", "--capacitance", "1e300"]) == 1
    out = capsys.readouterr()
    assert "3 of 3 runs failed" in out.out and "Warning" not in out.err


def test_files_in_a_sweep_folder_that_are_not_its_points_are_named(tmp_path, capsys):
    """A run file or another tool's netCDF at a point's name is one error naming it (with the fix), not a
    KeyError; point files of another grid in the folder are counted as left out, not dropped silently."""
    spec = SPEC.replace("steps = 40", "steps = 5")
    out = tmp_path / "out"
    assert main(["sweep", str(_write(tmp_path, spec)), "--out", str(out), "--workers", "0", "--quiet"]) == 0
    capsys.readouterr()
    other = spec.replace("R = [0.3, 3]", "R = [1.0]")
    assert main(["sweep", str(_write(tmp_path, other, "other.toml")), "--out", str(out), "--workers", "0",
                 "--quiet"]) == 0
    assert "(2 of 2 points done, 0 failed; 4 point file(s) of another grid in the folder left out)" in \
        capsys.readouterr().out
    point = sorted((out / "points").glob("*.nc"))[0]
    for foreign, message in ((xr.Dataset({"temp": ("x", np.arange(3.0))}), "it lacks `mse`"),
                             (train("lab16", "default", steps=3), "it lacks the attribute `sweep_grid`")):
        foreign.to_netcdf(point)
        assert main(["sweep", "--combine", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"point file {str(point)!r} is not a point of a spicelearn sweep ({message}); delete it" in err


def test_a_task_whose_targets_are_met_at_the_start_sweeps(tmp_path):
    """Sources at 1 V and a target of 1 V: the error at the start is 0 (on the batched engine, exactly), so its
    relative errors are NaN, not a ZeroDivisionError that ended the sweep."""
    from spicelearn.runfile import relative

    task = tmp_path / "met.json"
    task.write_text('{"sources": {"0": 1.0, "8": 1.0}, "targets": {"2": 1.0}}')
    spec = SweepSpec(base={"network": "lab16", "task": str(task), "steps": 3}, grid={"R": [1.0, 2.0]})
    ds = run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    assert ds.attrs["points_done"] == 2 and (ds.error.values == "").all()
    assert np.all(ds.mse0.values < 1e-30) and np.isnan(ds.tau.values).all()
    assert np.isnan(relative([1.0, 2.0], 0.0)).all() and relative(2.0, 4.0) == 0.5
