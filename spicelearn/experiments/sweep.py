"""Parameter sweeps of the ``ode`` engine over R and random tasks, in local processes.

Each run is a pure function of its parameters (tasks are seeded by their
``random:MS,MT,SEED`` spec), so the result does not depend on the number of
processes or the order in which they finish.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import numpy as np
import xarray as xr

from ..errors import ConfigError, SpicelearnError
from ..progress import Progress

__all__ = ["run_summary", "sweep", "task_is_feasible", "failed_runs", "retry_failed"]

#: What a sweep keeps of each run, with its dimensions.
_RESULT_DIMS = {"mse_eq": ("R", "task", "step"), "mse": ("R", "task", "step"), "tau": ("R", "task"),
                "frequency": ("R", "task"), "eig": ("R", "task", "rank")}


def run_summary(R: float, ms: int, mt: int, task_seed: int, steps: int, network: str = "delaunay64",
                network_seed: int = 0, quasistatic: bool = False, k_eig: int = 3) -> dict:
    """One ``ode`` run (or the quasistatic limit, reported at ``R = 0``) reduced to what the figures need.

    Returns
    -------
    dict
        ``mse_eq``, ``mse`` (steps,) normalised by ``mse0``; ``tau`` (steps to
        ``mse_eq < 1e-6 mse0``, NaN if never), ``frequency`` (of the ``mse_eq``
        oscillations, per training step, NaN if none), ``eig`` (k_eig,) top
        eigenvalues of the contrastive Hessian at the end.
    """
    from ..continuous.ode import train_ode
    from ..continuous.quasistatic import train_quasistatic
    from ..analysis.metrics import hessian_top_eigenvalues, oscillation_frequency, tau
    from ..model.task import bind

    bound = bind(network, f"random:{ms},{mt},{task_seed}", network_seed=network_seed)
    net = bound.network
    ds = train_quasistatic(net, bound.task, steps=steps) if quasistatic else \
        train_ode(net, bound.task, R=R, steps=steps)
    mse0 = float(ds.mse0)
    eq, neq = ds.mse_eq.values / mse0, ds.mse.values / mse0
    eig = hessian_top_eigenvalues(net, bound, ds.conductance.values[-1], eta=ds.attrs["eta"], k=k_eig)
    return dict(mse_eq=eq, mse=neq, tau=tau(eq, 1.0, threshold=1e-6, window=1),
                frequency=oscillation_frequency(np.maximum(eq, 1e-300)), eig=eig)


def task_is_feasible(network: str, network_seed: int, ms: int, mt: int, task_seed: int) -> bool:
    """Whether a resistor network can reach the targets at all.

    Node voltages of a resistor network are weighted averages of their
    neighbours (maximum principle), so every target must lie between the
    lowest and the highest source voltage.
    """
    from ..model.task import bind

    task = bind(network, f"random:{ms},{mt},{task_seed}", network_seed=network_seed).task
    vs, vt = np.array(list(task.sources.values())), np.array(list(task.targets.values()))
    return bool(np.all((vt >= vs.min()) & (vt <= vs.max())))


def _call(kw):
    """One run of a sweep; a run that fails with a :class:`SpicelearnError` gives its message instead."""
    try:
        return run_summary(**kw)
    except SpicelearnError as exc:
        return f"{type(exc).__name__}: {exc}"


def _failed_like(template: dict) -> dict:
    """NaN results shaped like a successful run's."""
    return {k: np.full(np.shape(v), np.nan) for k, v in template.items()}


def _die_with_parent(parent: int) -> None:
    """Worker initialiser: the kernel kills this worker when the process that started it dies (Linux's
    ``PR_SET_PDEATHSIG``), so a sweep killed with SIGKILL leaves no orphaned workers."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _run_jobs(jobs: list, processes: int | None, label: str, progress: bool) -> list:
    """Results of :func:`_call` for each job, in order, with a progress bar; failures listed on stderr."""
    processes = processes or min(os.cpu_count() or 1, len(jobs))
    bar = Progress(len(jobs), label=label, enabled=progress, unit="runs")
    out = []
    try:
        with ProcessPoolExecutor(processes, initializer=_die_with_parent, initargs=(os.getpid(),)) \
                if processes > 1 else nullcontext() as pool:
            for result in (pool.map(_call, jobs, chunksize=1) if pool else map(_call, jobs)):
                out.append(result)
                bar.update(len(out))
    finally:
        bar.close()
    for job, o in zip(jobs, out):
        if isinstance(o, str):
            print(f"sweep: run R={job['R']:g}, task {job['task_seed']} failed and is left out (NaN): {o}",
                  file=sys.stderr)
    return out


def failed_runs(ds: xr.Dataset) -> np.ndarray:
    """(R, task) mask of the runs of a sweep that failed (none in sweeps saved before ``error`` existed)."""
    if "error" not in ds:
        return np.zeros((ds.sizes["R"], ds.sizes["task"]), bool)
    return ds.error.values.astype(str) != ""


def _job(R: float, task_seed: int, *, ms: int, mt: int, steps: int, network: str, network_seed: int,
         quasistatic: bool) -> dict:
    """Keyword arguments of :func:`run_summary` for one run."""
    return dict(R=float(R), ms=int(ms), mt=int(mt), task_seed=int(task_seed), steps=int(steps), network=network,
                network_seed=int(network_seed), quasistatic=bool(quasistatic))


def retry_failed(ds: xr.Dataset, processes: int | None = None, progress: bool = True) -> xr.Dataset:
    """A copy of a sweep with its failed runs (non-empty ``error``) run again; the others are kept.

    Runs are pure functions of their parameters, so this finishes a sweep
    whose failures were fixed (or were transient) without redoing it.
    """
    pairs = np.argwhere(failed_runs(ds))
    if not pairs.size:
        return ds
    a = ds.attrs
    jobs = [_job(ds.R.values[i], ds.task.values[j], ms=a["M_S"], mt=a["M_T"], steps=a["steps"],
                 network=a["network"], network_seed=a["network_seed"], quasistatic=a.get("quasistatic", 0))
            for i, j in pairs]
    out = _run_jobs(jobs, processes, f"retrying {len(jobs)} failed runs", progress)
    new = ds.copy(deep=True)
    for (i, j), o in zip(pairs, out):
        if isinstance(o, str):
            new["error"].values[i, j] = o
            continue
        for key in _RESULT_DIMS:
            new[key].values[i, j] = o[key]
        new["error"].values[i, j] = ""
    return new


def sweep(R_values, task_seeds, *, ms: int, mt: int, steps: int, processes: int | None = None,
          quasistatic: bool = False, network: str = "delaunay64", network_seed: int = 0,
          progress: bool = True) -> xr.Dataset:
    """Run every (R, task seed) pair; return a Dataset with dims (R, task, step).

    A progress bar on stderr follows sweeps that last over a second.
    Variables: ``mse_eq``, ``mse`` (R, task, step) normalised; ``tau``,
    ``frequency`` (R, task); ``eig`` (R, task, rank); ``error`` (R, task),
    the message of a run that failed ("" for the others, whose results are
    NaN). Failed runs are listed on stderr; the sweep goes on without them.
    With ``quasistatic`` the R axis holds one value, 0.
    """
    R_values = [0.0] if quasistatic else [float(r) for r in R_values]
    task_seeds = [int(s) for s in task_seeds]
    if not task_seeds or not R_values:
        raise ConfigError("a sweep needs at least one R and one task")
    jobs = [_job(R, s, ms=ms, mt=mt, steps=steps, network=network, network_seed=network_seed, quasistatic=quasistatic)
            for R in R_values for s in task_seeds]
    out = _run_jobs(jobs, processes, f"sweep M_S={ms}, M_T={mt}", progress)
    shape = (len(R_values), len(task_seeds))
    errors = [o if isinstance(o, str) else "" for o in out]
    good = [o for o in out if not isinstance(o, str)]
    if not good:
        raise SpicelearnError(f"every run of the sweep failed; the first: {errors[0]}")
    out = [o if not isinstance(o, str) else _failed_like(good[0]) for o in out]

    def stack(key):
        return np.array([o[key] for o in out]).reshape(*shape, *np.shape(out[0][key]))

    ds = xr.Dataset(
        {**{key: (dims, stack(key)) for key, dims in _RESULT_DIMS.items()},
         "error": (("R", "task"), np.array(errors, dtype=object).reshape(shape))},
        coords={"R": R_values, "task": task_seeds, "step": np.arange(steps), "time_steps": ("step", np.arange(1, steps + 1))},
        attrs=dict(network=network, network_seed=network_seed, M_S=ms, M_T=mt, steps=steps, eta=1e-3,
                   tau_threshold=1e-6, quasistatic=int(quasistatic)),
    )
    ds["feasible"] = ("task", np.array([task_is_feasible(network, network_seed, ms, mt, s) for s in task_seeds]))
    ds["feasible"].attrs["long_name"] = "every V_T lies within [min V_S, max V_S] (maximum principle)"
    ds["mse_eq"].attrs["long_name"] = "equilibrium error / its value at t = 0"
    ds["mse"].attrs["long_name"] = "nonequilibrium error / equilibrium error at t = 0"
    ds["frequency"].attrs["units"] = "cycles per training step"
    return ds
