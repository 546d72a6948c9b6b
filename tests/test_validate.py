"""validate: design files, the Monte Carlo of learning yield, its statistics and its files."""

import json
import math

import numpy as np
import pytest
import xarray as xr

from spicelearn.errors import ConfigError
from spicelearn.experiments.design import load_design
from spicelearn.experiments.validate import median_interval, rows, validate, wilson

SMALL = """
network = "lab16"
task = "default"
steps = 80
gamma_l = 45.45
eta = 0.5
target = 3e-2
boards = 4
sensitivity_boards = 2
seed = 3
[pot]
part = "AD5220-100k"
r_ab_tolerance = 0.3
twin_mismatch = 0.02
wiper = 50.0
[capacitor]
value = 2.2e-6
tolerance = 0.1
[comparator]
offset = 0.002
noise = 0.01
[supervisor]
dac_bits = 10
"""


def _design(tmp_path, text=SMALL, name="d.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_design(path)


def test_wilson_interval_known_values_and_narrowing():
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(1.959963984540054 ** 2 / (10 + 1.959963984540054 ** 2))
    lo, hi = wilson(5, 10)
    assert (lo + hi) / 2 == pytest.approx(0.5) and 0.2 < lo < 0.25
    # doubling the boards narrows the interval by about 1/sqrt(2)
    w1 = np.subtract(*wilson(60, 200)[::-1])
    w2 = np.subtract(*wilson(120, 400)[::-1])
    assert w2 / w1 == pytest.approx(1 / math.sqrt(2), rel=0.02)


def test_median_interval_covers_the_median():
    rng = np.random.default_rng(0)
    x = rng.normal(100, 10, 401)
    med, lo, hi = median_interval(x)
    assert lo < med < hi and hi - lo < 4 * 10 * 1.2533 / math.sqrt(401) * 1.96


def test_rows_one_per_imperfection_and_deterministic_rows_have_one_board(tmp_path):
    d = _design(tmp_path)
    table = {r.name: r for r in rows(d)}
    assert list(table)[:2] == ["all", "ideal"]
    assert set(table) == {"all", "ideal", "r_ab_tolerance", "twin_mismatch", "wiper", "capacitance_tolerance",
                          "offset_sigma", "noise", "dac_bits"}
    assert table["all"].boards == 4 and table["r_ab_tolerance"].boards == 2
    assert table["ideal"].boards == 1 and table["wiper"].boards == 1 and table["dac_bits"].boards == 1
    alone = table["wiper"].options
    assert alone["wiper"] == 50 and alone["r_ab_tolerance"] == 0 and alone["noise"] == 0
    quick = {r.name: r.boards for r in rows(d, boards=1)}  # --boards 1: the sensitivity rows no larger
    assert quick["all"] == 1 and quick["r_ab_tolerance"] == 1


LEAN = """
network = "lab16"
steps = 40
target = 3e-2
window = 5
boards = 3
seed = 5
[comparator]
noise = 0.01
"""


def test_monte_carlo_reproducible_from_its_seed_and_resumed(tmp_path, capsys):
    d = _design(tmp_path, LEAN)
    a = validate(d, tmp_path / "a", workers=0, progress=False)
    b = validate(d, tmp_path / "b", workers=0, progress=False)
    assert a[3] == b[3]
    with xr.open_dataset(tmp_path / "a" / "boards.nc") as x, xr.open_dataset(tmp_path / "b" / "boards.nc") as y:
        for v in ("r_ab", "tau", "final_error", "reached"):
            np.testing.assert_array_equal(x[v].values, y[v].values)
        assert list(x.row.values) == ["all", "ideal", "noise"]
        assert x.final_error.values[0] != x.final_error.values[1]  # each board its own noise
    one = _design(tmp_path, "batch = false\n" + LEAN, "one.toml")  # boards one by one: the same boards
    validate(one, tmp_path / "one", workers=0, progress=False)
    with xr.open_dataset(tmp_path / "a" / "boards.nc") as x, xr.open_dataset(tmp_path / "one" / "boards.nc") as y:
        for v in ("r_ab", "tau", "reached"):
            np.testing.assert_array_equal(x[v].values, y[v].values)
        np.testing.assert_allclose(x.final_error.values, y.final_error.values, rtol=1e-12)
    capsys.readouterr()
    validate(d, tmp_path / "a", workers=0, progress=False)  # a rerun runs nothing
    err = capsys.readouterr().err
    assert "3 of 3 points already done" in err and "running the other" not in err


@pytest.mark.slow
def test_monte_carlo_reproducible_and_independent_of_workers(tmp_path):
    d = _design(tmp_path)
    a = validate(d, tmp_path / "a", workers=0, progress=False)
    b = validate(d, tmp_path / "b", workers=2, progress=False)
    assert a[3] == b[3]  # the yield line
    with xr.open_dataset(tmp_path / "a" / "boards.nc") as x, xr.open_dataset(tmp_path / "b" / "boards.nc") as y:
        for v in ("r_ab", "capacitance", "offset", "tau", "final_error", "reached", "sensitivity_yield"):
            np.testing.assert_array_equal(x[v].values, y[v].values)
        assert x.sizes["board"] == 4 and x["reached"].dtype == bool
        assert np.all(np.isnan(x.tau.values[~x.reached.values]))
        assert np.all(np.isfinite(x.tau.values[x.reached.values]))
        # boards differ from each other; the pair of twins of an edge differ by the mismatch
        assert not np.array_equal(x.r_ab.values[0], x.r_ab.values[1])
        assert 0.7 * 100e3 <= x.r_ab.values.min() and x.r_ab.values.max() <= 1.3 * 100e3 * 1.1
        assert x.attrs["design"] == SMALL
    report = (tmp_path / "a" / "report.md").read_text()
    assert "Wilson" in report and "| twin_mismatch = 0.02 alone |" in report and "```toml" in report
    assert (tmp_path / "a" / "validate.png").stat().st_size > 10_000


@pytest.mark.parametrize("change, message", [
    (("seed = 3", "seed = 3\ncolour = 1"), "unknown key(s) ['colour']"),
    (('part = "AD5220-100k"', 'part = "AD5999"'), "not in the part library"),
    (("r_ab_tolerance = 0.3", "r_ab_tolerance = -0.1"), "`r_ab_tolerance` must be a finite relative tolerance >= 0"),
    (("r_ab_tolerance = 0.3", "r_ab_tolerance = 1.2"), "non-positive"),
    (("tolerance = 0.1", "tolerance = 0.5\ndistribution = \"normal\""), "non-positive"),
    (("target = 3e-2", "target = 1.5"), "`target`=1.5 must be in (0, 1)"),
    (("wiper = 50.0", "wiper = 50.0\nvalue = 1"), "unknown key(s) ['value'] in [pot]"),
    (("steps = 80", "steps = \"many\""), "`steps`='many' must be a finite int"),
    (("[pot]", "R = 1\n[pot]"), "give either `gamma_l` or `R`, not both"),
    (("dac_bits = 10", "dac_bits = 10\ndac_range = [0.0, 0.1]"), "does not hold the task's targets"),
    (('part = "AD5220-100k"', 'part = "AD5220-100k"\nr_ab = 50e3'), "contradicts `pot_part`"),
    (("seed = 3", 'seed = 3\nbatch = "yes"'), "`batch`='yes' must be true or false"),
    (("seed = 3", "seed = -1"), "`seed`=-1 must be an integer in 0 .. 2**63 - 1"),
    (("seed = 3", "seed = 9223372036854775808"), "`seed`=9223372036854775808 must be an integer in 0 .. 2**63 - 1"),
    (("steps = 80", "steps = -5"), "`steps` must be an integer >= 1, got -5"),
    (("boards = 4", "boards = 99999999999"), "`boards`=99999999999 must be an integer >= 1 and <= 1,000,000"),
    (("offset = 0.002", "offset = -0.002"), "`offset_sigma` must be finite and >= 0 volt, got -0.002 (the design's "
                                             "[comparator] `offset`)"),
])
def test_bad_design_files_fail_before_any_board(tmp_path, change, message):
    with pytest.raises(ConfigError) as exc:
        _design(tmp_path, SMALL.replace(*change))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_target_outside_the_sources_range_is_refused(tmp_path):
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"sources": {"0": 0.0, "3": 1.0}, "targets": {"8": 1.5}}))
    with pytest.raises(ConfigError, match="outside the sources' range"):
        _design(tmp_path, SMALL.replace('task = "default"', 'task = "task.json"'))


def test_export_kicad_takes_the_parts_of_the_design(tmp_path):
    from spicelearn.cli import main

    text = SMALL.replace('part = "AD5220-100k"', 'part = "AD5220-50k"').replace("value = 2.2e-6", "value = 4.7e-6")
    (tmp_path / "d.toml").write_text(text)
    assert main(["export-kicad", "--design", str(tmp_path / "d.toml"), "-o", str(tmp_path / "b.net")]) == 0
    bom = (tmp_path / "b_bom.csv").read_text()
    assert "AD5220BN50" in bom and "AD5220-50k" in bom and "4.7u" in bom
    assert main(["export-kicad", "--design", str(tmp_path / "d.toml"), "--capacitance", "1e-6",
                 "-o", str(tmp_path / "c.net")]) == 2


def test_a_monte_carlo_whose_boards_fail_exits_1_and_says_so(tmp_path, capsys):
    """Parts so far out of range that every board's run fails (non-finite voltages): each failure is recorded, the
    report says how many, and the command's exit status is 1, not a success with a yield of 0 of 0 boards."""
    from spicelearn.cli import main

    design = tmp_path / "d.toml"
    design.write_text(SMALL.replace("value = 2.2e-6", "value = 1e300").replace("steps = 80", "steps = 5")
                      .replace("gamma_l = 45.45", "R = 1").replace("boards = 4", "boards = 2"))
    text = design.read_text().replace("sensitivity_boards = 2\n", "sensitivity_boards = 1\nwindow = 2\n")
    design.write_text(text)
    assert main(["validate", str(design), "--out-dir", str(tmp_path / "v"), "--workers", "0", "--quiet"]) == 1
    out = capsys.readouterr()
    assert "2 boards failed to run" in out.out and "Warning" not in out.err
    with xr.open_dataset(tmp_path / "v" / "boards.nc") as ds:
        assert ds.failed.values.all()
