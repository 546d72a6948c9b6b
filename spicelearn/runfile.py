"""Run files: the netCDF written through xarray (DESIGN.md section 4), and their summary."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import xarray as xr

from .errors import ConfigError, SpicelearnError

__all__ = ["save_run", "load_run", "tau", "summary", "REQUIRED_VARIABLES"]

REQUIRED_VARIABLES = ("mse", "mse_eq", "v_free", "v_clamped", "mse0")


def save_run(ds: xr.Dataset, path) -> None:
    """Write ``ds`` to ``path`` (netCDF); an existing file is replaced only once the new one is complete."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"`--out`={path!r}: folder {folder!r} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(suffix=".nc.part", dir=folder)
    os.close(fd)
    try:
        ds.to_netcdf(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a run file gets the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_run(path) -> xr.Dataset:
    """Read a run file and check that it has the run-file variables."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"run file {path!r} does not exist")
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except (OSError, ValueError) as exc:
        raise SpicelearnError(f"cannot read run file {path!r} as netCDF: {exc}") from None
    missing = [v for v in REQUIRED_VARIABLES if v not in ds]
    if missing:
        raise SpicelearnError(f"{path!r} is not a spicelearn run file: it lacks {missing}")
    return ds


def tau(errors, mse0: float, threshold: float = 1e-3, window: int = 10) -> float:
    """Training time: the first step k with ``errors[k : k + window] < threshold * mse0``.

    Parameters
    ----------
    errors : array, shape (steps,)
        ``mse`` (the lab's criterion) or ``mse_eq``.
    mse0 : float
    threshold : float
        Relative to ``mse0`` (default 1e-3, the lab's).
    window : int
        Steps the error must stay below the threshold (default 10).

    Returns
    -------
    float
        The step index, or NaN when the error never stays below the threshold.
    """
    if not threshold > 0:
        raise ConfigError(f"`threshold` must be > 0, got {threshold!r}")
    if int(window) != window or window < 1:
        raise ConfigError(f"`window` must be an integer >= 1, got {window!r}")
    below = np.asarray(errors, dtype=float) < threshold * mse0
    if below.size < window:
        return float("nan")
    run = np.convolve(below.astype(int), np.ones(int(window), dtype=int), mode="valid")
    hits = np.flatnonzero(run == window)
    return float(hits[0]) if hits.size else float("nan")


def summary(ds: xr.Dataset, threshold: float = 1e-3, window: int = 10) -> str:
    """A few lines: parameters, final and median errors, tau."""
    mse0 = float(ds["mse0"])
    n = ds.sizes["step"]
    tail = slice(max(0, n - 500), n)
    lines = [f"run: network {ds.attrs.get('network')}, backend {ds.attrs.get('backend')}, {n} steps, "
             f"R = {ds.attrs.get('R', float('nan')):.4g}, eta = {ds.attrs.get('eta', float('nan')):.4g}, "
             f"{ds.attrs.get('capacitance_model', '')} capacitance",
             f"mse0 = {mse0:.6g}"]
    for name in ("mse", "mse_eq"):
        err = ds[name].values
        t = tau(err, mse0, threshold, window)
        t_real = float(ds["time"].values[int(t)]) if np.isfinite(t) and "time" in ds.coords else float("nan")
        lines.append(
            f"{name:7s} final {err[-1] / mse0:.3e} x mse0, median of last {tail.stop - tail.start} steps "
            f"{np.median(err[tail]) / mse0:.3e} x mse0, tau = "
            + (f"{int(t)} steps ({t_real:.4g} {ds['time'].attrs.get('units', 's')})" if np.isfinite(t) else "not reached")
        )
    lines.append(f"tau: first step where the error stays below {threshold:g} x mse0 for {window} steps")
    return "\n".join(lines)
