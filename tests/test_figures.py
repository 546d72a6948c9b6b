"""Figures of the in-silico model: files, data, fitted exponents."""

import numpy as np
import pytest
import xarray as xr

from spicelearn.cli import main
from spicelearn.experiments.figures import FigureConfig, _geo_mean, _split_fits, make_figure


def test_split_fits_and_geometric_mean():
    R = np.logspace(-2, 2, 9)
    tau = np.where(R < 1, 50 / R, 50 * R ** -0.5)
    below, above = _split_fits(R, tau)
    assert below.exponent == pytest.approx(-1.0) and above.exponent == pytest.approx(-0.5)
    a = np.array([[1.0, 100.0, np.nan], [np.nan, np.nan, 4.0]])
    np.testing.assert_allclose(_geo_mean(a, axis=1), [10.0, np.nan])


def test_fig5_small(tmp_path):
    cfg = FigureConfig(tasks=1, steps=150, R_curves=(0.1, 10.0), R_grid=(0.1, 10.0), processes=1)
    out = make_figure("fig5", cfg, str(tmp_path))
    assert (tmp_path / "fig5.png").stat().st_size > 10_000
    ds = xr.open_dataset(tmp_path / "fig5.nc")
    assert ds.mse.shape == (2, 1, 150)
    # the nonequilibrium error starts from the equilibrium one and learning lowers it
    assert np.all(ds.mse.values[:, 0, -1] < 1.0)
    assert out[-1].startswith("largest nonequilibrium error")


def test_figure_cli_rejects_bad_tasks(tmp_path, capsys):
    for tasks in ("0", str(10**20)):  # not a list of 1e20 tasks to fill the memory
        assert main(["figure", "fig2", "--tasks", tasks, "--out-dir", str(tmp_path)]) == 2
        assert "`--tasks` must be in 1..10,000" in capsys.readouterr().err


@pytest.mark.slow
def test_fig2_quick_from_command_line(tmp_path, capsys):
    assert main(["figure", "fig2", "--quick", "--out-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "fig2.png" in printed and "τ ~ R^(" in printed
    ds = xr.open_dataset(tmp_path / "fig2.nc")
    # below R_c the number of steps to learn does not depend on R, so tau in real time ~ R^-1
    assert ds.attrs["tau_exponent_below_Rc"] == pytest.approx(-1.0, abs=0.05)
    # the quasistatic curve and the slowest R curve agree early on
    qs, slow = ds.quasistatic_mse_eq.values, ds.curves_mse_eq.sel(R_curve=0.1).values
    assert np.max(np.abs(slow[:500] / qs[:500] - 1)) < 0.1


@pytest.mark.slow
def test_fig3_quick(tmp_path):
    assert main(["figure", "fig3", "--quick", "--out-dir", str(tmp_path)]) == 0
    ds = xr.open_dataset(tmp_path / "fig3.nc")
    assert ds.eig.dims == ("R", "task", "rank")
    assert np.all(ds.eig.values[:, :, 0] >= ds.eig.values[:, :, 1])


def test_a_failed_run_is_left_out_of_the_quorum():
    """A failed run is left out of the geometric mean's quorum, not counted as "never reached"."""
    a = np.array([[1.0, 100.0, np.nan]])
    np.testing.assert_allclose(_geo_mean(a, axis=1, failed=np.array([[False, False, True]])), [10.0])


def test_figure_sweeps_are_sweep_folders_and_resume(tmp_path):
    """Fig. 5 runs through the sweep machinery: a second call runs nothing and gives the same figure data."""
    cfg = FigureConfig(tasks=1, steps=60, R_curves=(1.0, 10.0), R_grid=(1.0,), processes=1)
    make_figure("fig5", cfg, str(tmp_path))
    points = sorted((tmp_path / "sweeps").rglob("points/*.nc"))
    assert len(points) == 2  # one per R
    stamps = [p.stat().st_mtime_ns for p in points]
    first = xr.load_dataset(tmp_path / "fig5.nc")
    make_figure("fig5", cfg, str(tmp_path))
    assert [p.stat().st_mtime_ns for p in points] == stamps  # no point ran again
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "fig5.nc"), first)


def test_progress_bar_ends_at_the_last_count(capsys):
    import io

    from spicelearn.progress import Progress

    out = io.StringIO()
    bar = Progress(10, label="x", delay=0.0, stream=out)
    bar.update(3)
    bar.update(4)  # within 0.2 s of the last draw: not drawn yet
    bar.close()  # a run that stopped early shows where it stopped, not 10/10
    assert " 4/10 " in out.getvalue().splitlines()[-1].split("\r")[-1] and "10/10" not in out.getvalue()
