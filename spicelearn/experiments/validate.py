"""``validate``: a Monte Carlo of learning yield over boards drawn from a design.

Board ``b`` of a design draws its parts (pot R_AB, twin mismatch, capacitors,
comparator offsets) and its noise (comparators, missed pulses, clock jitter)
from ``(seed, b)`` (:func:`spicelearn.loop.streams`), so the Monte Carlo is
reproducible from its seed whatever the number of workers. Each board is a
point of a sweep (:mod:`spicelearn.experiments.sweep`) over ``board``: the
boards run in parallel, a killed run resumes, a failed board is recorded.

A board *reaches* the target when its nonequilibrium error stays below
``target`` times its start for ``window`` steps within the step budget (the
lab's criterion; tau is the first such step). The yield is the fraction of
boards that reach it, with a 95 % Wilson interval. The sensitivity table runs
the same boards with each imperfection of the design alone (the others ideal),
with ideal parts, and with all together (the Monte Carlo itself); a row without
any randomness (ideal parts without noise, wiper or leakage alone, converters
alone) is one board, its yield exact.

The output folder holds ``validate.png``, ``report.md`` and ``boards.nc``; the
runs are kept in ``runs/<row>/`` (a rerun skips what is done).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from ..files import atomic_write, check_target, make_folder
from .design import MAX_BOARDS, Design
from .spec import IMPERFECTIONS, OPTIONS, SweepSpec, hardware

__all__ = ["validate", "wilson", "median_interval", "rows", "Row", "Z95"]

#: Normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (95 % by default)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def median_interval(values, z: float = Z95) -> tuple[float, float, float]:
    """Median of ``values`` and a distribution-free 95 % interval from its order statistics."""
    x = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    n = x.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    lo = int(math.floor(n / 2 - z * math.sqrt(n) / 2))
    hi = int(math.ceil(n / 2 + z * math.sqrt(n) / 2))
    return float(np.median(x)), float(x[lo]) if lo >= 0 else float("nan"), float(x[hi]) if hi < n else float("nan")


@dataclass(frozen=True)
class Row:
    """One row of the sensitivity table: a name, what it switches on, its options, its boards."""

    name: str
    label: str
    options: dict
    boards: int
    random: bool = True  # False: every board the same, one run, the yield exact


def _random(options: dict) -> bool:
    """Whether boards of these options differ from each other (parts drawn, or noise in the run)."""
    hw = hardware(options)
    return bool(hw.has_spread or hw.comparator.noise or hw.pot.miss_probability or hw.jitter)


def _label(name: str, value) -> str:
    unit = {"wiper": " ohm", "leakage": " ohm", "offset_sigma": " V", "noise": " V rms", "dac_bits": " bits",
            "adc_bits": " bits"}.get(name, "")
    return f"{name} = {value:g}{unit}" if isinstance(value, (int, float)) else f"{name} = {value}{unit}"


def rows(design: Design, boards: int | None = None) -> list[Row]:
    """The Monte Carlo (``all``, first) and the rows of the sensitivity table: ideal parts, then each
    imperfection the design has, alone."""
    n_all = design.boards if boards is None else boards
    n_row = min(design.sensitivity_boards or n_all, n_all)  # (a quick --boards 4 stays quick)
    options = dict(design.options)
    ideal = {**options, **{k: OPTIONS[k].default for k in IMPERFECTIONS}}

    def row(name, label, opts, n):
        random = _random(opts)
        return Row(name, label, opts, n if random else 1, random)

    out = [row("all", "all together", options, n_all), row("ideal", "ideal parts", ideal, n_row)]
    for k in IMPERFECTIONS:
        if options[k] != OPTIONS[k].default:
            out.append(row(k, _label(k, options[k]) + " alone", {**ideal, k: options[k]}, n_row))
    return out


def _outcome(ds, target: float, window: int) -> dict:
    """Per board of a sweep over ``board``: reached, tau, final error, the relative error traces."""
    from ..runfile import tau

    mse, mse0 = ds.mse.values, ds.mse0.values  # (board, step), (board,)
    ok = ds.error.values == ""
    taus = np.array([tau(m, m0, target, window) if good else np.nan for m, m0, good in zip(mse, mse0, ok)])
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = mse / mse0[:, None]
    return {"ok": ok, "tau": taus, "reached": np.isfinite(taus), "final_error": rel[:, -1], "error": rel}


def _stats(out: dict, random: bool = True) -> dict:
    """Yield with its interval (exact for a row without randomness), median tau with its interval, final error."""
    ok = out["ok"]
    n, k = int(ok.sum()), int(out["reached"][ok].sum())
    lo, hi = wilson(k, n) if random or not n else (k / n, k / n)
    if n:  # the interval holds its estimate (rounding at 0 and 1 aside)
        lo, hi = min(lo, k / n), max(hi, k / n)
    med, mlo, mhi = median_interval(out["tau"][ok])
    fin = out["final_error"][ok]
    return {"boards": n, "failed": int((~ok).sum()), "reached": k, "yield": k / n if n else float("nan"),
            "yield_low": lo, "yield_high": hi, "median_tau": med, "median_tau_low": mlo, "median_tau_high": mhi,
            "median_final_error": float(np.median(fin)) if fin.size else float("nan")}


def validate(design: Design, out_dir, *, boards: int | None = None, engine: str | None = None,
             workers: int | None = None, scheduler: str | None = None, progress: bool = True,
             log=None) -> list[str]:
    """Run the Monte Carlo of ``design`` and write ``validate.png``, ``report.md`` and ``boards.nc``.

    Parameters
    ----------
    design : Design
        From :func:`~spicelearn.experiments.design.load_design`.
    out_dir : str
    boards : int, optional
        Boards of the Monte Carlo instead of the design's.
    engine : {"exact", "ngspice"}, optional
        Instead of the design's.
    workers, scheduler
        Where the boards run (:func:`~spicelearn.experiments.sweep.open_cluster`).
    progress : bool

    Returns
    -------
    list of str
        The files written, then the report's main lines.
    """
    import xarray as xr

    from ..runfile import save_run
    from .sweep import open_cluster, point_paths, run_sweep

    if not isinstance(design, Design):
        raise ConfigError(f"`design` must be a Design (load_design or design_from_dict), got {type(design).__name__}")
    if boards is not None and (isinstance(boards, bool) or not isinstance(boards, int)
                               or not 1 <= boards <= MAX_BOARDS):
        raise ConfigError(f"`--boards` must be an integer in 1..{MAX_BOARDS:,}, got {boards!r}")
    if engine is not None:
        if engine not in ("exact", "ngspice"):
            raise ConfigError(f"`--engine` must be 'exact' or 'ngspice', got {engine!r}")
        design = replace(design, options={**design.options, "backend": engine})
    out_dir = make_folder(out_dir)
    for name in ("validate.png", "report.md", "boards.nc"):
        check_target(os.path.join(out_dir, name), "--out-dir")
    table = rows(design, boards)
    specs = {r.name: SweepSpec(base={k: v for k, v in r.options.items() if v is not None and k != "board"},
                               grid={"board": list(range(r.boards))}, keep="errors", batch=design.batch)
             for r in table}
    folders = {r.name: os.path.join(out_dir, "runs", r.name) for r in table}
    todo = any(not os.path.exists(point_paths(folders[name], p)[0]) for name, s in specs.items() for p in s.points())
    results = {}
    with open_cluster(workers if todo else 0, scheduler if todo else None) as cluster:
        if cluster.dashboard_link:
            print(f"validate: Dask dashboard at {cluster.dashboard_link}", file=log or sys.stderr)
        for r in table:
            ds = run_sweep(specs[r.name], folders[r.name], progress=progress, log=log, cluster=cluster,
                           label=f"validate: {r.label}")
            results[r.name] = (ds, _outcome(ds, design.target, design.window))
    stats = {r.name: _stats(results[r.name][1], r.random) for r in table}

    _, main = results["all"]
    parts = _parts(folders["all"], specs["all"])
    boards_ds = xr.Dataset(
        {"reached": ("board", main["reached"]), "tau": ("board", main["tau"]),
         "final_error": ("board", main["final_error"]), "failed": ("board", ~main["ok"]), **parts,
         **{f"sensitivity_{k}": ("row", [stats[r.name][k] for r in table])
            for k in ("boards", "reached", "yield", "yield_low", "yield_high", "median_tau")}},
        coords={"board": np.arange(table[0].boards), "row": [r.name for r in table],
                "row_label": ("row", [r.label for r in table])})
    boards_ds["tau"].attrs.update(units="steps", long_name=f"first step with the error below {design.target:g} of its "
                                  f"start for {design.window} steps (NaN: not reached)")
    boards_ds["final_error"].attrs["long_name"] = "nonequilibrium error after the last step, relative to its start"
    s = stats["all"]
    boards_ds.attrs.update(design=design.text, design_path=design.path, target=design.target, window=design.window,
                           steps=int(design.options["steps"]), engine=str(design.options["backend"]),
                           **{"yield": s["yield"]}, yield_low=s["yield_low"], yield_high=s["yield_high"],
                           confidence=0.95, interval="Wilson score")
    nc = os.path.join(out_dir, "boards.nc")
    save_run(boards_ds, nc)
    png = _figure(os.path.join(out_dir, "validate.png"), design, table, stats, results)
    md = os.path.join(out_dir, "report.md")
    atomic_write(md, _report(design, table, stats, results), what="--out-dir")
    lines = [f"yield: {s['reached']} of {s['boards']} boards reach {design.target:g} x the start error within "
             f"{design.options['steps']} steps: {100 * s['yield']:.1f} % (95 % interval "
             f"{100 * s['yield_low']:.1f} .. {100 * s['yield_high']:.1f} %)"]
    if s["failed"]:
        lines.append(f"{s['failed']} boards failed to run (see {folders['all']}/points/*.error.txt)")
    return [png, md, nc, *lines]


def _parts(folder: str, spec: SweepSpec) -> dict:
    """The drawn part values of every board of a sweep, as ``boards.nc`` variables (NaN for a failed board)."""
    import xarray as xr

    from .sweep import point_paths, read_point

    names = {"r_ab": ("twin", "edge"), "capacitance": ("twin", None), "offset": ("comparator", "edge"),
             "wiper": ("twin", "edge"), "leakage": ("twin", "edge")}
    found = {}
    points = spec.points()
    for i, options in enumerate(points):
        path = point_paths(folder, options)[0]
        if not os.path.exists(path):
            continue
        point = read_point(path, tuple(names))
        for v, (file_dims, arr) in point.variables.items():
            if v == "capacitance" and arr.ndim == 1:
                arr = np.broadcast_to(arr, (2, arr.size))
            dims = ("twin", file_dims[-1]) if v == "capacitance" else names[v]
            store = found.setdefault(v, (dims, np.full((len(points),) + arr.shape, np.nan)))
            store[1][i] = arr
    out = {v: (("board",) + dims, arr) for v, (dims, arr) in found.items()}
    return out


def _fmt(x, spec=".3g") -> str:
    return "n/r" if not np.isfinite(x) else format(x, spec)


def _figure(path: str, design: Design, table, stats, results) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.plotting import save_figure

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    ax = axes[0, 0]
    y = np.arange(len(table))[::-1]
    p = np.array([stats[r.name]["yield"] for r in table])
    lo = np.array([stats[r.name]["yield_low"] for r in table])
    hi = np.array([stats[r.name]["yield_high"] for r in table])
    ax.errorbar(100 * p, y, xerr=np.maximum(0.0, [100 * (p - lo), 100 * (hi - p)]), fmt="o", capsize=3)
    ax.set_yticks(y, [f"{r.label} ({stats[r.name]['boards']})" for r in table], fontsize=7)
    ax.set(xlim=(-3, 103), xlabel="yield, % of boards (95 % Wilson interval)", title="(a) yield by imperfection")
    ax.grid(True, alpha=0.3)
    _, main = results["all"]
    ok = main["ok"]
    ax = axes[0, 1]
    taus = main["tau"][ok & main["reached"]]
    if taus.size:
        ax.hist(taus, bins=min(30, max(5, taus.size // 4)), color="C0", alpha=0.8)
    ax.set(xlabel=f"τ (steps): error < {design.target:g} x start for {design.window} steps", ylabel="boards",
           title=f"(b) τ of the {taus.size} boards that reach the target")
    ax = axes[1, 0]
    fin = main["final_error"][ok]
    fin = fin[np.isfinite(fin) & (fin > 0)]
    if fin.size:
        ax.hist(np.log10(fin), bins=min(30, max(5, fin.size // 4)), color="C1", alpha=0.8)
    ax.axvline(np.log10(design.target), color="k", ls="--", lw=1, label="target")
    ax.set(xlabel="log10 final error / start error", ylabel="boards", title="(c) final error")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    steps = np.arange(main["error"].shape[1]) + 1
    for name, color in (("all", "C0"), ("ideal", "C2")):
        _, out = results[name]
        err = out["error"][out["ok"]]
        if not err.size:
            continue
        q = np.nanpercentile(np.maximum(err, 1e-12), [10, 50, 90], axis=0)
        ax.loglog(steps, q[1], color=color, lw=1.2, label=f"{name}: median, 10-90 %")
        ax.fill_between(steps, q[0], q[2], color=color, alpha=0.2)
    ax.axhline(design.target, color="k", ls="--", lw=1)
    ax.set(xlabel="training steps", ylabel="error / start error", title="(d) error against steps")
    if ax.get_legend_handles_labels()[0]:  # none where every board failed to run
        ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    o = design.options
    fig.suptitle(f"validate {os.path.basename(design.path) or 'design'}: {o['network']}, task {o['task']}, "
                 f"{o['steps']} steps, engine {o['backend']}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, "--out-dir")
    plt.close(fig)
    return path


def _report(design: Design, table, stats, results) -> str:
    s = stats["all"]
    o = design.options
    half = 50 * (s["yield_high"] - s["yield_low"])
    lines = [
        f"# Board validation: {os.path.basename(design.path) or 'design'}",
        "",
        f"Network `{o['network']}`, task `{o['task']}`, {o['steps']} steps on the `{o['backend']}` engine; "
        f"{s['boards']} boards drawn from the design (seed {o['seed']}).",
        "",
        "## Yield",
        "",
        f"**{s['reached']} of {s['boards']} boards** reach the error target ({design.target:g} of the error at the "
        f"start, held for {design.window} steps) within the budget: **{100 * s['yield']:.1f} %**, 95 % Wilson "
        f"interval {100 * s['yield_low']:.1f} .. {100 * s['yield_high']:.1f} % (half-width {half:.1f} points; "
        "it narrows as one over the square root of the boards: four times the boards halve it).",
        "",
        f"Median τ of the boards that reach it: {_fmt(s['median_tau'], '.0f')} steps (95 % interval "
        f"{_fmt(s['median_tau_low'], '.0f')} .. {_fmt(s['median_tau_high'], '.0f')}); median final error "
        f"{_fmt(s['median_final_error'])} of the start.",
        "",
    ]
    if s["failed"]:
        lines += [f"{s['failed']} boards failed to run and are left out (their messages are in "
                  "`runs/all/points/*.error.txt`).", ""]
    lines += [
        "## Sensitivity",
        "",
        "The same boards (the same seeds) with each imperfection alone at its stated value, the others ideal. "
        "A row without randomness is one board: its yield is exact.",
        "",
        "| imperfection | boards | yield | 95 % interval | median τ (steps) | median final error |",
        "|---|---|---|---|---|---|",
    ]
    for r in table[1:] + table[:1]:
        t = stats[r.name]
        interval = f"{100 * t['yield_low']:.1f} .. {100 * t['yield_high']:.1f} %" if r.random else "exact (no randomness)"
        lines.append(f"| {r.label} | {t['boards']} | {100 * t['yield']:.1f} % | {interval} | {_fmt(t['median_tau'], '.0f')} | "
                     f"{_fmt(t['median_final_error'])} |")
    lines += ["", "![validate](validate.png)", "",
              "(a) yield per row with its interval; (b) τ of the boards that reach the target; (c) final error; "
              "(d) the error's median and 10-90 % band over boards, all imperfections and ideal parts.", "",
              "## Design", "", "```toml", design.text.rstrip(), "```", "",
              "Per-board part values and outcomes: `boards.nc` (dimension `board`: `r_ab`, `capacitance`, `offset`, "
              "`reached`, `tau`, `final_error`); each board's run, its error at every step included: "
              "`runs/<row>/points/`.", ""]
    return "\n".join(lines)
