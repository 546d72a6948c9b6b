"""The paper's Fig. 1 c-f on the hardware model: lab16 with the lab's settings, many seeds per point.

``spicelearn figure fig1 [--engine exact|ngspice] [--quick] --out-dir D`` sweeps R over several
capacitances (2.2, 22, 220, 2200 uF), eta = 0.5, comparator noise 0.01 V, the lab's criterion
(the nonequilibrium error below 1e-3 of its start for 10 steps), through the sweep machinery
(``D/sweeps/fig1_...``, resumable), and draws (c) the error against steps and (d) against real
time for several R, (e) the error after the last step against R with quartile bars and a
marker per capacitance, and (f) tau in units of R0 c against R with power laws fitted below
and above R_c = 1. It also measures the slowest relaxation rate of the network at the start
(the pots at 50 kOhm, not R0 = 10 kOhm), so the R the circuit actually sees is reported beside
the nominal one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..analysis.plotting import save_figure
from ..files import check_target, make_folder

__all__ = ["Fig1Config", "fig1", "slowest_relaxation_rate", "start_rate", "R_C"]

#: The crossover of the two regimes in the paper (R_c ~ 1).
R_C = 1.0


@dataclass(frozen=True)
class Fig1Config:
    """Sizes of Fig. 1: the full one or a quick CI run."""

    capacitances: tuple
    R_grid: tuple
    seeds: int
    steps: int
    R_curves: tuple
    workers: int | None = None

    @classmethod
    def full(cls) -> "Fig1Config":
        return cls((2.2e-6, 22e-6, 220e-6, 2200e-6), (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0), 8, 3000,
                   (0.1, 1.0, 10.0, 100.0))

    @classmethod
    def quick(cls) -> "Fig1Config":
        return cls((22e-6, 2200e-6), (0.1, 1.0, 10.0), 2, 600, (0.1, 10.0))


def slowest_relaxation_rate(task, board, positions) -> float:
    """The smallest relaxation rate (1/s) of the free twin at ``positions``: the lowest eigenvalue of
    ``L_C^-1 L_G`` on its floating nodes (the exact engine's decomposition)."""
    from ..engines.exact import ExactEngine

    with ExactEngine(task.network, task, board) as engine:
        return float(engine.init(positions).ops.lam.min())


def start_rate(task, hardware) -> float:
    """The slowest relaxation rate (1/s) of ``hardware``'s nominal board on ``task``'s network, pots at the start."""
    from ..loop import initial_positions, make_board

    board = make_board(task.network, hardware)
    return slowest_relaxation_rate(task, board, initial_positions(task.network, hardware))


def _rates(cfg: Fig1Config, network: str, task: str) -> np.ndarray:
    """The slowest relaxation rate at the start, per capacitance, shape (C,)."""
    from ..model.hardware import Hardware
    from ..model.task import bind

    bound = bind(network, task)
    return np.array([start_rate(bound, Hardware.from_R(1.0, capacitance=c)) for c in cfg.capacitances])


def fig1(cfg: Fig1Config, out_dir: str, engine: str = "exact") -> list[str]:
    """Run and draw Fig. 1 c-f; returns the files written, then the fitted power laws as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.metrics import power_law_fit
    from ..model.hardware import R0
    from ..runfile import save_run
    from .spec import SweepSpec
    from .sweep import run_sweep

    out_dir = make_folder(out_dir)
    png = check_target(os.path.join(out_dir, "fig1.png"), "--out-dir")
    network, task = "lab16", "default"
    R_all = sorted(set(cfg.R_grid) | set(cfg.R_curves))
    spec = SweepSpec(base={"network": network, "task": task, "backend": engine, "steps": cfg.steps, "eta": 0.5,
                           "noise": 0.01},
                     grid={"capacitance": list(cfg.capacitances), "R": R_all, "seed": list(range(cfg.seeds))},
                     keep="errors")
    ds = run_sweep(spec, os.path.join(out_dir, "sweeps", f"fig1_{engine}_{cfg.steps}steps"), workers=cfg.workers)
    rel = ds.mse / ds.mse0  # (C, R, seed, step)
    steps = ds.step.values + 1
    rates = _rates(cfg, network, task)
    gamma_p = 1.0 / (R0 * np.asarray(cfg.capacitances))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(cfg.R_curves)))
    c_mid = cfg.capacitances[min(1, len(cfg.capacitances) - 1)]
    for R, col in zip(cfg.R_curves, colors):
        med = rel.sel(capacitance=c_mid, R=R).median("seed").values
        period = R0 * c_mid / R
        axes[0].loglog(steps, np.maximum(med, 1e-12), color=col, lw=1, label=f"R = {R:g}")
        axes[1].loglog(steps * period, np.maximum(med, 1e-12), color=col, lw=1, label=f"R = {R:g}")
    axes[0].set(xlabel="training steps", ylabel="MSE / MSE(0) (median over seeds)",
                title=f"(c) c = {c_mid * 1e6:g} uF, noise 0.01 V")
    axes[1].set(xlabel="real time (s)", title="(d) the same runs against real time")
    axes[0].legend(fontsize=7)
    final = ds.final_mse.sel(R=list(cfg.R_grid))
    markers = "osD^v<>"
    for k, c in enumerate(cfg.capacitances):
        q1, med, q3 = np.nanpercentile(final.sel(capacitance=c).values, [25, 50, 75], axis=-1)
        axes[2].errorbar(np.asarray(cfg.R_grid) * (1 + 0.04 * k), med, yerr=[med - q1, q3 - med],
                         fmt=markers[k % len(markers)], ms=4, capsize=2, label=f"c = {c * 1e6:g} uF")
    axes[2].set(xscale="log", yscale="log", xlabel="R", ylabel=f"MSE / MSE(0) after {cfg.steps} steps",
                title="(e) median and quartiles over seeds")
    axes[2].legend(fontsize=7)
    tau = ds.tau.sel(R=list(cfg.R_grid))  # steps (C, R, seed)
    tau_gp = tau / tau["R"]  # tau in units of 1 / gamma_p = R0 c: steps / R
    med_tau = tau_gp.median(["capacitance", "seed"]).values  # over every run that reached the target
    reached = np.isfinite(tau.values).mean(axis=(0, 2))
    R = np.asarray(cfg.R_grid)
    for k, c in enumerate(cfg.capacitances):
        axes[3].loglog(R * (1 + 0.04 * k), tau_gp.sel(capacitance=c).median("seed").values,
                       markers[k % len(markers)], ms=4, label=f"c = {c * 1e6:g} uF")
    lines, fits = [], {}
    for side, sel in (("below", R <= R_C), ("above", R >= R_C)):
        ok = sel & np.isfinite(med_tau) & (med_tau > 0)
        if ok.sum() >= 2:
            fit = power_law_fit(R[ok], med_tau[ok])
            fits[side] = fit
            xs = np.logspace(np.log10(R[ok].min()), np.log10(R[ok].max()), 20)
            text = f"τ ~ R^({fit.exponent:.2f} ± {fit.stderr:.2f}) {side} R_c"
            axes[3].plot(xs, fit(xs), ":", color="k" if side == "below" else "0.5", label=text)
            lines.append(text)
    r_eff = rates / gamma_p  # slowest rate in units of gamma_p = 1 / (R0 c)
    axes[3].set(xlabel="R = R0 c γ_l", ylabel="τ γ_p (steps / R), median",
                title=f"(f) slowest rate {np.median(r_eff):.3f} γ_p; reached {reached.min():.0%}-{reached.max():.0%}")
    axes[3].legend(fontsize=6)
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"lab16, {engine} engine, eta = 0.5, comparator noise 0.01 V, {cfg.seeds} seeds per point; "
                 "τ: MSE < 1e-3 MSE(0) for 10 steps", fontsize=9)
    fig.tight_layout()
    save_figure(fig, png, "--out-dir")
    plt.close(fig)
    curves = rel.sel(capacitance=c_mid, R=list(cfg.R_curves)).median("seed").rename(R="R_curve")
    summaries = ["final_mse", "median_mse", "final_mse_eq", "median_mse_eq", "tau", "tau_eq", "run_R",
                 "run_gamma_l", "mse0", "error"]
    data = ds[summaries].assign(  # the figure's data; the per-step traces of every run stay in the sweep folder
        curves_mse=curves.drop_vars("capacitance"), slowest_rate_start=("capacitance", rates),
        gamma_p=("capacitance", gamma_p), tau_gamma_p_median=(("R_grid",), med_tau))
    data = data.assign_coords(R_grid=R)
    data["curves_mse"].attrs["long_name"] = f"median over seeds of MSE / MSE(0) at c = {c_mid:g} F"
    data["slowest_rate_start"].attrs.update(units="1/s", long_name="lowest relaxation rate of the free twin, pots "
                                            "at their start positions")
    for side, fit in fits.items():
        data.attrs[f"tau_exponent_{side}_Rc"] = fit.exponent
        data.attrs[f"tau_exponent_stderr_{side}_Rc"] = fit.stderr
    data.attrs["slowest_rate_over_gamma_p"] = float(np.median(r_eff))
    nc = os.path.join(out_dir, "fig1.nc")
    save_run(data, nc)
    lines.append(f"slowest relaxation rate at the start = {np.median(r_eff):.3f} gamma_p (R0 = 10 kOhm; the pots "
                 f"start at 50 kOhm): the circuit sees R_eff = R / {np.median(r_eff):.3f}")
    return [png, nc, *lines]
