"""Figures of the paper's in-silico model (DESIGN.md section 3): Fig. 2 a-d, Fig. 3 a-b, Fig. 5.

``spicelearn figure fig2|fig3|fig5 [--tasks N] [--quick] [--out-dir DIR]`` (:mod:`spicelearn.cli.figure`) runs
the sweeps on ``delaunay64`` (64 nodes, 143 edges), writes ``DIR/figN.png``
and the data behind it as ``DIR/figN.nc``, and prints the fitted power laws.
Real time is in units of the physical relaxation time ``1 / gamma_p``: a
training step lasts ``1 / gamma_l``, so ``t_real = steps / R``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..analysis.plotting import save_figure
from ..errors import ConfigError
from ..files import check_target, make_folder

__all__ = ["FigureConfig", "make_figure", "FIGURES", "R_C"]

FIGURES = ("fig2", "fig3", "fig5")
#: Critical scaled learning rate separating the two power laws (paper: R_c ~ 1).
R_C = 1.0


@dataclass(frozen=True)
class FigureConfig:
    """Sizes of a figure run: the paper's (full) or a quick CI run."""

    tasks: int
    steps: int
    R_curves: tuple  # R of the error curves (Fig. 2 a-b, Fig. 5)
    R_grid: tuple  # R of the sweeps (Fig. 2 c-d, Fig. 3)
    processes: int | None = None

    @classmethod
    def full(cls, tasks: int = 50) -> "FigureConfig":
        return cls(tasks, 3000, (0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0),
                   tuple(float(r) for r in np.logspace(-3, 3, 19)))

    @classmethod
    def quick(cls, tasks: int = 3) -> "FigureConfig":
        return cls(tasks, 3000, (0.1, 1.0, 10.0, 100.0), tuple(float(r) for r in np.logspace(-2, 2, 9)))


def _real_time(R, steps):
    """Time in units of ``1 / gamma_p`` of ``steps`` training steps at scaled rate R."""
    return np.asarray(steps, dtype=float) / np.asarray(R, dtype=float)


def _split_fits(R, y):
    """Power laws of y(R) below and above R_C (None where too few points)."""
    from ..analysis.metrics import power_law_fit

    R, y = np.asarray(R), np.asarray(y)
    out = []
    for sel in (R < R_C, R > R_C):
        ok = sel & np.isfinite(y) & (y > 0)
        out.append(power_law_fit(R[ok], y[ok]) if ok.sum() >= 2 else None)
    return out


def _geo_mean(a, axis, failed=None):
    """Geometric mean over tasks that reached the quantity (NaN if fewer than half of the runs that did not
    fail did)."""
    a = np.asarray(a, dtype=float)
    ok = np.isfinite(a) & (a > 0)
    ran = np.ones_like(ok) if failed is None else ~np.asarray(failed)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.exp(np.nansum(np.where(ok, np.log(np.where(ok, a, 1.0)), 0.0), axis=axis) / ok.sum(axis=axis))
    return np.where(ok.sum(axis=axis) * 2 >= ran.sum(axis=axis), m, np.nan)


def _failed_note(failed) -> str:
    return f"; {int(failed.sum())} failed runs left out" if failed.any() else ""


def _feasible(grid):
    """The tasks a resistor network can reach (all of them if none can)."""
    ok = np.flatnonzero(grid.feasible.values)
    return (grid.isel(task=ok) if ok.size else grid), ok.size


def _draw_fits(ax, fits, x_lo, x_hi, label):
    lines = []
    for fit, (lo, hi) in zip(fits, ((x_lo, R_C), (R_C, x_hi))):
        if fit is None:
            continue
        xs = np.logspace(np.log10(lo), np.log10(hi), 20)
        txt = f"{label} ~ R^({fit.exponent:.2f} ± {fit.stderr:.2f})"
        ax.plot(xs, fit(xs), ":", color="k" if lo < R_C else "0.4", lw=1.2, label=txt)
        lines.append(txt)
    if lines:
        ax.legend(fontsize=7)
    return lines


def _colors(n):
    import matplotlib.pyplot as plt

    return plt.cm.coolwarm(np.linspace(0.0, 1.0, n))[::-1] if n > 1 else ["C0"]


def _curves_panel(ax, ds, var, real_time: bool, qs=None):
    steps = ds["time_steps"].values
    for R, c in zip(ds.R.values, _colors(ds.sizes["R"])):
        y = ds[var].sel(R=R).isel(task=0).values
        x = _real_time(R, steps) if real_time else steps
        ax.loglog(x, np.maximum(y, 1e-30), color=c, lw=1, label=f"R = {R:g}")
    if qs is not None and not real_time:
        ax.loglog(steps, np.maximum(qs[var].isel(R=0, task=0).values, 1e-30), "k:", lw=1.5, label="R → 0")
    ax.set_xlabel("real time (1/γ_p)" if real_time else "training steps")
    ax.set_ylabel("MSE* / MSE*(0)" if var == "mse_eq" else "MSE / MSE*(0)")
    ax.set_ylim(1e-12, 10)


def task_is_feasible(task) -> bool:
    """Whether a resistor network can reach the targets at all (a :class:`~spicelearn.model.task.Task`).

    Node voltages of a resistor network are weighted averages of their
    neighbours (maximum principle), so every target must lie between the
    lowest and the highest source voltage.
    """
    vs, vt = np.array(list(task.sources.values())), np.array(list(task.targets.values()))
    return bool(np.all((vt >= vs.min()) & (vt <= vs.max())))


def failed_runs(ds) -> np.ndarray:
    """Mask of the runs of a figure sweep that failed (or never ran), shape of ``ds.error``."""
    return ds.error.values.astype(str) != ""


def _figure_sweep(cfg: FigureConfig, out_dir: str, name: str, grid: dict, base: dict, ms: int, cluster,
                  k_eig: int = 3):
    """A sweep of the paper's model through the sweep machinery, in the shape the figures read.

    The sweep lives in ``out_dir/sweeps/<name>`` and runs on ``cluster`` (:func:`~.sweep.open_cluster`);
    it is resumable: a rerun runs only the points not done, failed ones again. Returns a Dataset with dims
    (R, task, step): ``mse_eq``, ``mse`` normalised by the error at the start, ``tau`` (steps to
    ``mse_eq < 1e-6``), ``frequency`` of the ``mse_eq`` oscillations, ``eig`` (R, task, rank) top
    eigenvalues of the contrastive Hessian at the end, ``error``, ``feasible`` (task).
    """
    import xarray as xr

    from ..analysis.metrics import hessian_top_eigenvalues, oscillation_frequency, tau
    from ..blas import limit_for
    from ..model.task import bind
    from .spec import SweepSpec
    from .sweep import run_sweep

    if "task" not in base and "task" not in grid:
        grid = {**grid, "task": [f"random:{ms},3,{s}" for s in range(cfg.tasks)]}
    spec = SweepSpec(base={"network": "delaunay64", "steps": cfg.steps, **base}, grid=grid, keep="errors")
    raw = run_sweep(spec, os.path.join(out_dir, "sweeps", name), cluster=cluster, progress=True)
    if "R" not in raw.dims:  # the quasistatic limit, reported at R = 0
        raw = raw.expand_dims(R=[0.0])
    if "task" not in raw.dims:
        raw = raw.expand_dims(task=[base["task"]])
    raw = raw.transpose("R", "task", "step", ...)
    bound = [bind("delaunay64", t) for t in raw.task.values]
    eq = (raw.mse_eq / raw.mse0).values
    shape = eq.shape[:2]
    taus, freq, eig = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape + (k_eig,), np.nan)
    with limit_for(bound[0].network):
        for i, j in np.ndindex(shape):
            if raw.error.values[i, j]:
                continue
            taus[i, j] = tau(eq[i, j], 1.0, threshold=1e-6, window=1)
            freq[i, j] = oscillation_frequency(np.maximum(eq[i, j], 1e-300))
            eig[i, j] = hessian_top_eigenvalues(bound[j].network, bound[j], raw.conductance_final.values[i, j],
                                                eta=1e-3, k=k_eig)
    task_ids = [int(t.rsplit(",", 1)[1]) for t in raw.task.values]
    out = xr.Dataset(
        {"mse_eq": (("R", "task", "step"), eq), "mse": (("R", "task", "step"), (raw.mse / raw.mse0).values),
         "tau": (("R", "task"), taus), "frequency": (("R", "task"), freq), "eig": (("R", "task", "rank"), eig),
         "error": (("R", "task"), raw.error.values.astype(str)),
         "feasible": ("task", [task_is_feasible(b.task) for b in bound])},
        coords={"R": raw.R.values, "task": task_ids, "step": raw.step.values,
                "time_steps": ("step", raw.step.values + 1)},
        attrs=dict(network="delaunay64", M_S=ms, M_T=3, steps=cfg.steps, eta=1e-3, tau_threshold=1e-6))
    out["feasible"].attrs["long_name"] = "every V_T lies within [min V_S, max V_S] (maximum principle)"
    out["mse_eq"].attrs["long_name"] = "equilibrium error / its value at t = 0"
    out["mse"].attrs["long_name"] = "nonequilibrium error / equilibrium error at t = 0"
    out["frequency"].attrs["units"] = "cycles per training step"
    return out


def _curves(cfg: FigureConfig, out_dir: str, ms: int, with_qs: bool, cluster):
    """The error curves at the R of ``cfg.R_curves`` on task 0, and the quasistatic limit."""
    task = f"random:{ms},3,0"
    ds = _figure_sweep(cfg, out_dir, f"curves_ms{ms}_{cfg.steps}steps", {"R": list(cfg.R_curves)},
                       {"backend": "ode", "task": task}, ms, cluster)
    qs = _figure_sweep(cfg, out_dir, f"quasistatic_ms{ms}_{cfg.steps}steps", {"task": [task]},
                       {"backend": "quasistatic"}, ms, cluster) if with_qs else None
    return ds, qs


def _grid(cfg: FigureConfig, out_dir: str, cluster):
    """The R x task sweep of Fig. 2 c-d and Fig. 3 (M_S = 10, M_T = 3), in ``out_dir/sweeps/grid_...``:
    both figures read it, and a rerun runs only what is not done yet."""
    return _figure_sweep(cfg, out_dir, f"grid_ms10_{cfg.steps}steps", {"R": list(cfg.R_grid)}, {"backend": "ode"}, 10,
                         cluster)


def fig2(cfg: FigureConfig, out_dir: str, cluster) -> list[str]:
    """Fig. 2: a-b error curves (M_S = 5, M_T = 3); c final error and d tau against R (M_S = 10, M_T = 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from ..runfile import save_run

    curves, qs = _curves(cfg, out_dir, 5, True, cluster)
    grid_all = _grid(cfg, out_dir, cluster)
    grid, n_ok = _feasible(grid_all)
    failed = failed_runs(grid)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    _curves_panel(axes[0], curves, "mse_eq", False, qs)
    _curves_panel(axes[1], curves, "mse_eq", True)
    axes[0].legend(fontsize=7)
    R = grid.R.values
    final = grid.mse_eq.isel(step=-1).values  # (R, task)
    q1, med, q3 = np.nanpercentile(final, [25, 50, 75], axis=1)
    axes[2].errorbar(R, med, yerr=[med - q1, q3 - med], fmt="o-", ms=4, capsize=2)
    axes[2].set(xscale="log", yscale="log", xlabel="R", ylabel=f"MSE* / MSE*(0) after {cfg.steps} steps",
                title=f"median and quartiles, {n_ok} reachable of {cfg.tasks} tasks{_failed_note(failed)}")
    tau_real = _real_time(R[:, None], grid.tau.values)
    t_mean = _geo_mean(tau_real, axis=1, failed=failed)
    axes[3].loglog(R, t_mean, "o", ms=4)
    fits = _split_fits(R, t_mean)
    lines = _draw_fits(axes[3], fits, R.min(), R.max(), "τ")
    reached = np.isfinite(grid.tau.values).sum(axis=1)
    axes[3].set(xlabel="R", ylabel="τ (1/γ_p), MSE* < 1e-6 MSE*(0)",
                title=f"tasks reaching 1e-6: {reached.min()}-{reached.max()} of {grid.sizes['task']}")
    for ax, letter in zip(axes, "abcd"):
        ax.set_title(f"({letter}) " + ax.get_title(), fontsize=8)
    fig.tight_layout()
    png = os.path.join(out_dir, "fig2.png")
    save_figure(fig, png, "--out-dir")
    plt.close(fig)
    data = xr.Dataset({"curves_mse_eq": curves.mse_eq.isel(task=0, drop=True).rename(R="R_curve"),
                       "quasistatic_mse_eq": qs.mse_eq.isel(R=0, task=0, drop=True),
                       "grid_final_mse_eq": grid_all.mse_eq.isel(step=-1, drop=True),
                       "grid_tau_steps": grid_all.tau, "feasible": grid_all.feasible,
                       "tau_real_mean": ("R", t_mean)})
    data.attrs.update(_fit_attrs("tau", fits))
    nc = os.path.join(out_dir, "fig2.nc")
    save_run(data, nc)
    return [png, nc, *lines]


def _fit_attrs(name, fits):
    out = {}
    for side, fit in zip(("below_Rc", "above_Rc"), fits):
        if fit is not None:
            out[f"{name}_exponent_{side}"] = fit.exponent
            out[f"{name}_exponent_stderr_{side}"] = fit.stderr
    return out


def fig3(cfg: FigureConfig, out_dir: str, cluster) -> list[str]:
    """Fig. 3: a oscillation frequency (per 1/gamma_p) and b top contrastive-Hessian eigenvalues against R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runfile import save_run

    grid_all = _grid(cfg, out_dir, cluster)
    grid, n_ok = _feasible(grid_all)
    R = grid.R.values
    failed = failed_runs(grid)
    freq_real = grid.frequency.values * R[:, None]  # cycles per 1/gamma_p
    f_mean = _geo_mean(freq_real, axis=1, failed=failed)
    n_osc = np.isfinite(freq_real).sum(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].loglog(R, f_mean, "o", ms=4)
    fits_f = [None, None]
    above = (R > R_C) & np.isfinite(f_mean)
    if above.sum() >= 2:
        from ..analysis.metrics import power_law_fit

        fits_f = [None, power_law_fit(R[above], f_mean[above])]
    lines = _draw_fits(axes[0], fits_f, R.min(), R.max(), "f")
    axes[0].set(xlabel="R", ylabel="oscillation frequency (γ_p)",
                title=f"(a) tasks with peaks: {n_osc.min()}-{n_osc.max()} of {n_ok}")
    eig = grid.eig.values  # (R, task, rank)
    for r in range(eig.shape[2]):
        axes[1].loglog(R, np.nanmedian(eig[:, :, r], axis=1), "o-", ms=4, label=f"λ{r + 1}")
    fits_e = _split_fits(R, np.nanmedian(eig[:, :, 0], axis=1))
    lines += _draw_fits(axes[1], fits_e, R.min(), R.max(), "λ1")
    axes[1].set(xlabel="R", ylabel="top eigenvalues of ∂²C/∂G² (median)",
                title=f"(b) after {cfg.steps} steps, {n_ok} reachable tasks{_failed_note(failed)}")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    png = os.path.join(out_dir, "fig3.png")
    save_figure(fig, png, "--out-dir")
    plt.close(fig)
    data = grid_all.drop_vars(["mse", "mse_eq"]).assign(
        frequency_real=(("R", "task"), grid_all.frequency.values * R[:, None]))
    data.attrs.update({**_fit_attrs("frequency", fits_f), **_fit_attrs("eig1", fits_e)})
    nc = os.path.join(out_dir, "fig3.nc")
    save_run(data, nc)
    return [png, nc, *lines]


def fig5(cfg: FigureConfig, out_dir: str, cluster) -> list[str]:
    """Fig. 5: nonequilibrium error against a training steps and b real time (M_S = 5, M_T = 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runfile import save_run

    curves, _ = _curves(cfg, out_dir, 5, False, cluster)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    _curves_panel(axes[0], curves, "mse", False)
    _curves_panel(axes[1], curves, "mse", True)
    axes[0].legend(fontsize=7)
    axes[0].set_title("(a)", loc="left")
    axes[1].set_title("(b)", loc="left")
    fig.tight_layout()
    png = os.path.join(out_dir, "fig5.png")
    save_figure(fig, png, "--out-dir")
    plt.close(fig)
    nc = os.path.join(out_dir, "fig5.nc")
    save_run(curves.drop_vars(["eig"]), nc)
    peak = float(curves.mse.max())
    return [png, nc, f"largest nonequilibrium error / MSE*(0): {peak:.3g}"]


def make_figure(name: str, cfg: FigureConfig, out_dir: str) -> list[str]:
    """Run one figure; returns the files written, then the fitted power laws as text."""
    if name not in FIGURES:
        raise ConfigError(f"`figure` must be one of {FIGURES}, got {name!r}")
    out_dir = make_folder(out_dir)
    check_target(os.path.join(out_dir, f"{name}.png"), "--out-dir")  # a read-only folder fails now, not later
    from .sweep import open_cluster

    # one cluster for the figure's sweeps (opened when the first has points to run); one process: none
    with open_cluster(0 if cfg.processes == 1 else cfg.processes) as cluster:
        return {"fig2": fig2, "fig3": fig3, "fig5": fig5}[name](cfg, out_dir, cluster)
