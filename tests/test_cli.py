"""The command line: train, show, and one-line errors with a non-zero exit status."""

import json
import subprocess
import sys

import numpy as np
import pytest

from spicelearn.cli import main
from spicelearn.runfile import load_run


def test_train_and_show(tmp_path, capsys):
    out = tmp_path / "run.nc"
    assert main(["train", "lab16", "--task", "default", "--R", "0.1", "--capacitance", "22e-6",
                 "--steps", "200", "--out", str(out), "--quiet"]) == 0
    ds = load_run(out)
    assert ds.sizes["step"] == 200 and ds.attrs["R"] == pytest.approx(0.1)
    assert ds.attrs["capacitance"] == pytest.approx(22e-6)
    png = tmp_path / "run.png"
    assert main(["show", str(out), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "200 steps" in text and "tau" in text and "mse_eq" in text
    assert png.stat().st_size > 10_000


def test_gamma_l_sets_the_clock(tmp_path):
    out = tmp_path / "run.nc"
    assert main(["train", "lab16", "--gamma-l", "100", "--steps", "5", "--out", str(out), "--quiet"]) == 0
    ds = load_run(out)
    np.testing.assert_allclose(ds["time"].values, np.arange(1, 6) / 100.0)


BAD = [
    (["train", "lab16", "--task", "random:5", "--out", "{out}"], "random:MS,MT,SEED"),
    (["train", "lab16", "--R", "1", "--gamma-l", "3", "--out", "{out}"], "either `--gamma-l` or `--R`"),
    (["train", "lab16", "--R", "-1", "--out", "{out}"], "`R`"),
    (["train", "lab16", "--capacitance", "0", "--out", "{out}"], "`capacitance`"),
    (["train", "lab16", "--eta", "2", "--out", "{out}"], "`eta`"),
    (["train", "lab16", "--steps", "0", "--out", "{out}"], "`steps`"),
    (["train", "lab16", "--backend", "spectre", "--out", "{out}"], "`--backend`='spectre'"),
    (["train", "nowhere.graphml", "--out", "{out}"], "neither a built-in"),
    (["train", "delaunay64", "--out", "{out}"], "no default task"),
    (["train", "lab16", "--task", "{bad_task}", "--out", "{out}"], "both source and target"),
    (["train", "lab16", "--out", "/nonexistent/dir/run.nc", "--steps", "2"], "does not exist"),
    (["show", "missing.nc"], "does not exist"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_gives_one_line(tmp_path, capsys, argv, message):
    bad_task = tmp_path / "task.json"
    bad_task.write_text(json.dumps({"sources": {"0": 0.0, "2": 1.0}, "targets": {"2": 0.5}}))
    argv = [a.format(out=tmp_path / "run.nc", bad_task=bad_task) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("spicelearn: error:") and message in err


def test_existing_run_file_survives_a_failed_run(tmp_path):
    out = tmp_path / "run.nc"
    out.write_bytes(b"precious")
    assert main(["train", "lab16", "--steps", "0", "--out", str(out)]) == 2
    assert out.read_bytes() == b"precious"


def test_process_exits_nonzero_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spicelearn.cli", "train", "lab16", "--task", "random:x",
                           "--out", str(tmp_path / "r.nc")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("spicelearn: error:")


def test_demo_writes_runs_and_figure(tmp_path):
    pytest.importorskip("PySpice")
    assert main(["demo", "--out-dir", str(tmp_path), "--steps", "30", "--compare-steps", "20", "--workers", "0",
                 "--quiet"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["compare.md", "compare.nc", "compare.png", "lab16_R0.1.nc", "lab16_R1.nc", "lab16_R10.nc",
                     "lab16_demo.png", "sweeps"]
    assert "| 10 |" in (tmp_path / "compare.md").read_text()
    ds = load_run(tmp_path / "lab16_R10.nc")
    assert ds.attrs["R"] == pytest.approx(10) and ds.attrs["comparator_noise"] == pytest.approx(0.01)
    assert ds.attrs["capacitance"] == pytest.approx(2.2e-6) and ds.attrs["eta"] == 0.5


def test_progress_bar_only_after_delay():
    import io

    from spicelearn.progress import Progress

    quiet = io.StringIO()
    bar = Progress(100, stream=quiet, delay=10.0)
    bar.update(50)
    bar.close()
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    bar = Progress(100, stream=loud, delay=0.0)
    bar.update(50)
    bar.update(100)  # within 0.2 s of the last draw, but the last count is always drawn
    bar.close()
    assert "100/100" in loud.getvalue() and "steps/s" in loud.getvalue()


def test_python_dash_m_spicelearn_is_the_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "spicelearn", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("spicelearn ")
