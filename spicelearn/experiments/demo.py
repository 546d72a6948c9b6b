"""The demo: lab16 on its default task at R = 0.1, 1 and 10 with the lab's settings."""

from __future__ import annotations

import os

from ..checks import check_steps
from ..files import make_folder
from ..loop import train
from ..model.hardware import Comparator, Hardware
from ..analysis.plotting import plot_runs
from ..runfile import save_run
from .compare import compare

__all__ = ["run_demo", "DEMO_R"]

DEMO_R = (0.1, 1.0, 10.0)


def run_demo(out_dir: str = "out", steps: int = 3000, progress: bool = True, compare_steps: int = 1000,
             workers: int | None = None) -> list:
    """Train lab16 (c = 2.2 uF, eta = 0.5, comparator noise 0.01 V) at each R in :data:`DEMO_R`, then compare
    the board (per-edge capacitors, simulated by ngspice) with the paper's global-capacitance model.

    Writes one run file per R and ``lab16_demo.png`` (error against steps and
    real time: the shape of the paper's Fig. 1 c-d), and the comparison
    (``compare.png``, ``compare.md``, ``compare.nc``: :mod:`spicelearn.experiments.compare`).
    Returns the written paths and the comparison's main lines.
    """
    check_steps(steps), check_steps(compare_steps, "compare_steps")  # before any folder or run
    out_dir = make_folder(out_dir)
    runs, paths = [], []
    for R in DEMO_R:
        hw = Hardware.from_R(R, capacitance=2.2e-6, eta=0.5, comparator=Comparator(noise=0.01))
        ds = train("lab16", "default", hw, steps=steps, seed=0, progress=progress)
        path = os.path.join(out_dir, f"lab16_R{R:g}.nc")
        save_run(ds, path)
        runs.append(ds)
        paths.append(path)
    png = plot_runs(runs, os.path.join(out_dir, "lab16_demo.png"),
                    title="lab16, c = 2.2 uF, eta = 0.5, comparator noise 0.01 V (exact engine)")
    compared = compare("lab16", "default", out_dir, R_values=DEMO_R, engine="ngspice", capacitance=22e-6, seeds=2,
                       steps=compare_steps, workers=workers, progress=progress)
    return paths + [png] + compared
