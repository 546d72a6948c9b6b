"""Figures of runs: error against steps and against real time."""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError
from ..files import atomic_path

__all__ = ["plot_run", "plot_runs", "save_figure", "FORMATS"]

#: Image formats a figure may be written as (matplotlib's Agg backend).
FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "tif", "tiff", "eps", "ps", "webp")


def save_figure(fig, path, what: str = "--plot") -> str:
    """Write a matplotlib figure atomically; ``path`` without an extension gets ``.png``. Returns the path."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    if not ext:
        path, ext = path + ".png", ".png"
    fmt = ext[1:].lower()
    if fmt not in FORMATS:
        raise ConfigError(f"`{what}`={path!r}: cannot write {ext!r} images; give a file ending in "
                          f"{', '.join('.' + f for f in FORMATS[:4])} (or another of {FORMATS})")
    with atomic_path(path, what, suffix=ext) as tmp:
        fig.savefig(tmp, dpi=120, format=fmt)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_runs(runs, path, labels=None, title: str | None = None, variables=("mse",)) -> str:
    """Normalised error traces of several runs, against steps (left) and real time (right); returns the path.

    Parameters
    ----------
    runs : list of xarray.Dataset
    path : str
        Image to write (PNG unless its extension says otherwise; ``.png`` is added to a bare name).
    labels : list of str, optional
        Legend entries (default ``R = ...``).
    variables : tuple of str
        ``mse`` and/or ``mse_eq``; ``mse_eq`` is dashed.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colors = plt.cm.plasma(np.linspace(0.0, 0.8, max(len(runs), 2)))
    for i, ds in enumerate(runs):
        label = labels[i] if labels else f"R = {ds.attrs.get('R', float('nan')):.3g}"
        mse0 = float(ds["mse0"])
        for var in variables:
            y = ds[var].values / mse0
            style = "-" if var == "mse" else "--"
            lab = label if var == variables[0] else None
            axes[0].loglog(ds["step"].values + 1, y, style, color=colors[i], lw=1, label=lab)
            t = ds["time"].values if "time" in ds.variables else ds["step"].values + 1  # (older files: steps)
            axes[1].loglog(t, y, style, color=colors[i], lw=1, label=lab)
    units = runs[0]["time"].attrs.get("units", "s") if runs and "time" in runs[0].variables else "training steps"
    axes[0].set_xlabel("training steps")
    axes[1].set_xlabel(f"time ({units})")
    what = " (solid: mse, dashed: mse_eq)" if len(variables) > 1 else f" ({variables[0]})"
    for ax in axes:
        ax.set_ylabel("error / error at start" + what if ax is axes[0] else "")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(frameon=False)
    if title:
        fig.suptitle(title)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_run(ds, path) -> str:
    """mse and mse_eq of one run against steps and real time."""
    return plot_runs([ds], path, variables=("mse", "mse_eq"),
                     title=f"{ds.attrs.get('network')}: {ds.attrs.get('backend')} engine")
