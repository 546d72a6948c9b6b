"""Per-edge against global capacitance: the same task on the same board, over a range of R.

The lab's board has a capacitor across every edge (``per_edge``); the paper's model puts one
capacitor from every node to ground (``global``). ``spicelearn compare`` trains the same
network and task, with the same comparators, clock and seeds, three ways:

* ``per_edge``: the board, capacitance ``c`` per edge, on the chosen engine;
* ``global_same_c``: the paper's model with the same ``c`` at every node, so the same
  R = R0 c gamma_l as the paper defines it;
* ``global_same_rate``: the paper's model with the node capacitance chosen so that the
  network's slowest relaxation rate at the start equals the board's (the two ``global``
  variants share the board's clock; only their capacitance differs).

For each it reports the error traces, tau (the lab's criterion) against R, and R_c, the rate
at which the fewest steps are needed (below it the network relaxes between ticks and learning
takes a fixed number of steps; above it the error overshoots and learning takes more steps).
Runs go through the sweep machinery (``D/sweeps/compare_*``, resumable).
"""

from __future__ import annotations

import os

import numpy as np

from ..analysis.plotting import save_figure
from ..checks import check_steps, finite, positive, text_or_path
from ..errors import ConfigError
from ..files import atomic_write, check_target, make_folder

__all__ = ["compare", "VARIANTS"]

VARIANTS = ("per_edge", "global_same_c", "global_same_rate")
_LABELS = {"per_edge": "per-edge (the board)", "global_same_c": "global, same c (same R)",
           "global_same_rate": "global, same slowest rate"}


def _matched_capacitance(network: str, task: str, c: float, network_seed: int) -> tuple[float, float, float]:
    """``(C_global, rate_per_edge, rate_global_same_c)``: the node capacitance whose slowest rate at the
    start equals the per-edge board's (rates scale as 1/C in the global model)."""
    from ..model.hardware import Hardware
    from ..model.task import bind
    from .hardware_figures import start_rate

    bound = bind(network, task, network_seed=network_seed)
    rates = [start_rate(bound, Hardware.from_R(1.0, capacitance=c, capacitance_model=m)) for m in ("per_edge", "global")]
    return c * rates[1] / rates[0], rates[0], rates[1]


#: The most comparator-noise seeds a point of :func:`compare` runs (three runs each per R).
MAX_SEEDS = 10_000


def compare(network, task, out_dir: str, *, R_values=(0.1, 0.3, 1.0, 3.0, 10.0, 30.0), engine: str = "exact",
            capacitance: float = 22e-6, seeds: int = 4, steps: int = 1000, noise: float = 0.01, eta: float = 0.5,
            network_seed: int = 0, workers: int | None = None, progress: bool = True) -> list[str]:
    """Run the comparison and write ``compare.png``, ``compare.md`` and ``compare.nc`` to ``out_dir``.

    Returns the files written, then the report's main lines as text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from ..model.hardware import R0
    from ..runfile import save_run
    from .spec import SweepSpec
    from .sweep import open_cluster, run_sweep

    if engine not in ("exact", "ngspice"):
        raise ConfigError(f"`--engine` must be 'exact' or 'ngspice', got {engine!r}")
    R_values = sorted(float(r) for r in R_values)
    if not R_values or min(R_values) <= 0:
        raise ConfigError(f"`--R-values` must be positive numbers, got {R_values!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"`--seeds` must be an integer in 1..{MAX_SEEDS:,}, got {seeds!r}")
    check_steps(steps)
    positive("capacitance", capacitance)
    if not finite("noise", noise) >= 0:
        raise ConfigError(f"`noise` must be >= 0 volt, got {noise!r}")
    out_dir = make_folder(out_dir)
    png = check_target(os.path.join(out_dir, "compare.png"), "--out-dir")
    net_name = text_or_path("network", network, "a built-in name (lab16, delaunay64) or a GraphML file")
    C_match, rate_pe, rate_gl = _matched_capacitance(net_name, task, capacitance, network_seed)
    gamma_l = [R / (R0 * capacitance) for R in R_values]  # the board's clock, shared by all three
    base = {"network": net_name, "task": task, "steps": steps, "eta": eta, "noise": noise,
            "network_seed": network_seed}
    runs = {
        "per_edge": ({**base, "backend": engine, "capacitance_model": "per_edge", "capacitance": capacitance}, "R"),
        "global_same_c": ({**base, "backend": "exact", "capacitance_model": "global", "capacitance": capacitance},
                          "R"),
        "global_same_rate": ({**base, "backend": "exact", "capacitance_model": "global", "capacitance": C_match},
                             "gamma_l"),
    }
    parts = []
    specs = {name: (SweepSpec(base=opts, grid={axis: R_values if axis == "R" else gamma_l,
                                               "seed": list(range(seeds))}, keep="errors"), axis)
             for name, (opts, axis) in runs.items()}  # every spec checked before any run
    with open_cluster(workers) as cluster:
        for name, (spec, axis) in specs.items():
            folder = os.path.join(out_dir, "sweeps", f"compare_{name}_{engine if name == 'per_edge' else 'exact'}")
            ds = run_sweep(spec, folder, progress=progress, cluster=cluster)
            ds = ds.rename({axis: "R"}).assign_coords(R=R_values) if axis != "R" else ds
            keep = ["mse", "mse_eq", "mse0", "final_mse", "median_mse", "tau", "error"]
            parts.append(ds[keep].expand_dims(model=[name]))
    data = xr.concat(parts, "model")
    rel = data.mse / data.mse0
    tau = data.tau.median("seed")  # steps; NaN where fewer than half of the seeds reached the target
    reached = np.isfinite(data.tau).mean("seed")
    tau = tau.where(reached >= 0.5)
    final = data.median_mse.median("seed")
    R_c = {m: (float(data.R[int(np.nanargmin(tau.sel(model=m).values))]) if np.isfinite(tau.sel(model=m)).any()
               else float("nan")) for m in VARIANTS}

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    show = [R for R in R_values if R in (min(R_values), 1.0, max(R_values))] or R_values[:3]
    colors = plt.cm.plasma(np.linspace(0.0, 0.8, len(show)))
    styles = {"per_edge": "-", "global_same_c": "--", "global_same_rate": ":"}
    steps_axis = data.step.values + 1
    for R, col in zip(show, colors):
        for m in VARIANTS:
            y = rel.sel(model=m, R=R).median("seed").values
            axes[0].loglog(steps_axis, np.maximum(y, 1e-9), styles[m], color=col, lw=1,
                           label=f"R = {R:g}" if m == "per_edge" else None)
    axes[0].set(xlabel="training steps", ylabel="MSE / MSE(0), median over seeds",
                title="(a) solid per-edge, dashed global same c, dotted global same rate")
    axes[0].legend(fontsize=7)
    for m, mk in zip(VARIANTS, "osD"):
        axes[1].loglog(data.R.values, tau.sel(model=m).values, mk + styles[m], ms=5, label=_LABELS[m])
        axes[2].loglog(data.R.values, final.sel(model=m).values, mk + styles[m], ms=5, label=_LABELS[m])
    axes[1].set(xlabel="R = R0 c γ_l (the board's)", ylabel="τ (steps): MSE < 1e-3 MSE(0) for 10 steps",
                title="(b) " + ", ".join(f"R_c {m.split('_', 1)[-1]}: {R_c[m]:g}" for m in VARIANTS))
    axes[2].set(xlabel="R", ylabel=f"median MSE / MSE(0), last {min(500, steps)} steps", title="(c) final error")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"{net_name}, task {task}: per-edge ({engine}) against global capacitance, c = {capacitance:g} F, "
                 f"eta = {eta:g}, noise {noise:g} V, {seeds} seeds", fontsize=9)
    fig.tight_layout()
    save_figure(fig, png, "--out-dir")
    plt.close(fig)

    out = data.drop_vars(["mse", "mse_eq"]).assign(  # per-seed traces stay in the sweep folders
        mse_median=rel.median("seed"), tau_median=tau, final_median=final)
    out["mse_median"].attrs["long_name"] = "median over seeds of MSE / MSE(0)"
    out.attrs.update(capacitance=capacitance, capacitance_global_same_rate=C_match, slowest_rate_per_edge=rate_pe,
                     slowest_rate_global_same_c=rate_gl, engine=engine,
                     **{f"R_c_{m}": R_c[m] for m in VARIANTS})
    nc = os.path.join(out_dir, "compare.nc")
    save_run(out, nc)
    md = os.path.join(out_dir, "compare.md")
    atomic_write(md, _report(net_name, task, engine, capacitance, C_match, rate_pe, rate_gl, R_values, tau, final,
                             R_c, seeds, steps), what="--out-dir")
    lines = ["R_c (fewest steps to learn): " + ", ".join(f"{_LABELS[m]} {R_c[m]:g}" for m in VARIANTS),
             f"slowest relaxation rate at the start: per-edge {rate_pe:.4g} /s, global same c {rate_gl:.4g} /s "
             f"(global same rate uses C = {C_match:.4g} F)"]
    failed = int((data.error != "").sum())
    if failed:
        lines.append(f"{failed} of {data.error.size} runs failed (their messages: `error` in compare.nc, and "
                     f"{os.path.join(out_dir, 'sweeps', '*', 'points', '*.error.txt')})")
    return [png, md, nc, *lines]


def _report(network, task, engine, c, C_match, rate_pe, rate_gl, R_values, tau, final, R_c, seeds, steps) -> str:
    """The comparison as Markdown: how the models are matched, a table per R, R_c."""
    def fmt(x, spec=".3g"):
        return "n/r" if not np.isfinite(x) else format(x, spec)

    rows = ["| R | " + " | ".join(f"τ {_LABELS[m]}" for m in VARIANTS) + " | "
            + " | ".join(f"error {_LABELS[m]}" for m in VARIANTS) + " |",
            "|---" * (1 + 2 * len(VARIANTS)) + "|"]
    for R in R_values:
        t = [float(tau.sel(model=m, R=R)) for m in VARIANTS]
        f = [float(final.sel(model=m, R=R)) for m in VARIANTS]
        rows.append(f"| {R:g} | " + " | ".join(fmt(x, ".0f") for x in t) + " | "
                    + " | ".join(fmt(x) for x in f) + " |")
    return "\n".join([
        f"# Per-edge against global capacitance: {network}, task {task}",
        "",
        f"The board has a capacitor of c = {c:g} F across every edge and runs on the `{engine}` engine; the",
        "paper's model has one capacitor from every node to ground. Both global variants run on the board's clock:",
        "`global, same c` puts C = c at every node (the same R = R0 c γ_l as the paper defines it); `global, same",
        f"slowest rate` puts C = {C_match:.4g} F, so that the network's slowest relaxation rate at the start equals",
        f"the board's ({rate_pe:.4g} /s; with C = c it would be {rate_gl:.4g} /s).",
        "",
        f"τ: median over {seeds} seeds of the first step where the error stays below 1e-3 of its start for 10 steps",
        f"(n/r: fewer than half of the seeds reached it in {steps} steps). Error: median over seeds of the median",
        "error of the last 500 steps, relative to the start.",
        "",
        *rows,
        "",
        "R_c, the R with the fewest steps to learn: " + "; ".join(f"{_LABELS[m]} {fmt(R_c[m], 'g')}"
                                                               for m in VARIANTS) + ".",
        "",
    ])
