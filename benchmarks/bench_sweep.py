"""Points per minute of a sweep: a local Dask cluster against a plain loop in one process, in one run.

    .venv/bin/python benchmarks/bench_sweep.py [--points 64] [--steps 3000] [--workers N]

The sweep is lab16 (exact engine, c = 22 uF, noise 0.01 V) over R x seed. Timings: a plain loop
of ``spicelearn.train`` calls in this process (no files); the same points as a sweep run one by one
(``batch = false``) in this process (``workers=0``: adds compressing and writing each point file
and combining sweep.nc) and on a new ``LocalCluster`` (one worker process per core by default; its
start-up included); and the default sweep (``batch = true``: the points in batches on the batched
engine) on a LocalCluster. The machinery's cost per point is the difference between the in-process
sweep and the plain loop.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from spicelearn.experiments.spec import SweepSpec, check_options, run
from spicelearn.experiments.sweep import run_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=None, help="cluster workers (default: one per core)")
    args = ap.parse_args()
    seeds = 8
    n_R = max(args.points // seeds, 1)
    base = {"network": "lab16", "task": "default", "steps": args.steps, "capacitance": 22e-6, "noise": 0.01}
    grid = {"R": [float(r) for r in np.logspace(-1, 2, n_R)], "seed": list(range(seeds))}
    spec = SweepSpec(base=base, grid=grid, batch=False)
    batched = SweepSpec(base=base, grid=grid)
    points = spec.points()
    print(f"lab16, exact engine, {len(points)} points of {args.steps} steps, {os.cpu_count()} cores")

    t0 = time.perf_counter()
    for options in points:
        run(check_options(options))
    plain = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_sweep(spec, os.path.join(tmp, "local"), workers=0, progress=False)
        in_process = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_sweep(spec, os.path.join(tmp, "cluster"), workers=args.workers, progress=False)
        cluster = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_sweep(batched, os.path.join(tmp, "batched"), workers=args.workers, progress=False)
        cluster_batched = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(tmp, "cluster", "points", f))
                   for f in os.listdir(os.path.join(tmp, "cluster", "points")))

    def per_min(seconds):
        return 60 * len(points) / seconds

    print(f"  plain loop of train() in one process   {per_min(plain):7.1f} points/min  ({plain:.1f} s)")
    print(f"  sweep one by one in this process       {per_min(in_process):7.1f} points/min  ({in_process:.1f} s)")
    print(f"  sweep one by one on a LocalCluster     {per_min(cluster):7.1f} points/min  ({cluster:.1f} s, "
          f"start-up included)")
    print(f"  batched sweep on a LocalCluster        {per_min(cluster_batched):7.1f} points/min  ({cluster_batched:.1f} s, "
          f"start-up included)")
    print(f"  speed-up over the plain loop: cluster one by one {plain / cluster:.2f}x, cluster batched "
          f"{plain / cluster_batched:.2f}x (target >= 1.7x on two cores)")
    print(f"  machinery per point (files, combine): {(in_process - plain) / len(points) * 1e3:.0f} ms; point files "
          f"{size / len(points) / 1e3:.0f} kB each (compressed)")


if __name__ == "__main__":
    main()
