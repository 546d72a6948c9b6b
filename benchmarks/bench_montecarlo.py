"""Wall time of a Monte Carlo of the example design (examples/lab_board.toml): batched against one by one.

    .venv/bin/python benchmarks/bench_montecarlo.py [--boards 1000] [--single-boards 16] [--steps 3000]
        [--workers 2]

The boards of the design with all its imperfections (the "all" row of ``spicelearn validate``) as a
sweep over ``board`` on a local Dask cluster of ``--workers`` processes, written to a temporary
folder: ``--boards`` boards on the batched engine (``batch = true``), then ``--single-boards`` boards
one by one (``batch = false``). Prints the wall times, boards per minute of each and their ratio,
the batched sweep's yield, and the peak memory of this process (the client; workers are separate).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np

from spicelearn.experiments.design import load_design
from spicelearn.experiments.spec import SweepSpec
from spicelearn.experiments.sweep import open_cluster, run_sweep

DESIGN = os.path.join(os.path.dirname(__file__), "..", "examples", "lab_board.toml")


def _sweep(design, boards: int, steps: int, batch: bool, cluster, folder: str):
    base = {k: v for k, v in design.options.items() if v is not None and k != "board"}
    spec = SweepSpec(base={**base, "steps": steps}, grid={"board": list(range(boards))}, keep="errors", batch=batch)
    t0 = time.perf_counter()
    ds = run_sweep(spec, folder, cluster=cluster, progress=False, log=open(os.devnull, "w"))
    return time.perf_counter() - t0, ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=1000)
    ap.add_argument("--single-boards", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    design = load_design(DESIGN)
    with tempfile.TemporaryDirectory() as tmp, open_cluster(args.workers) as cluster:
        print(f"cluster of {cluster.workers} workers started (not timed)")  # opened at first use: here
        wall_b, ds = _sweep(design, args.boards, args.steps, True, cluster, os.path.join(tmp, "batched"))
        wall_s, _ = _sweep(design, args.single_boards, args.steps, False, cluster, os.path.join(tmp, "single"))
    rate_b, rate_s = 60 * args.boards / wall_b, 60 * args.single_boards / wall_s
    reached = np.isfinite(ds.tau.values)
    print(f"Monte Carlo of the example design, {args.steps} steps, exact engine, {args.workers} worker processes:")
    print(f"  batched:     {args.boards} boards in {wall_b:6.1f} s  ({rate_b:7.1f} boards/min)")
    print(f"  one by one:  {args.single_boards} boards in {wall_s:6.1f} s  ({rate_s:7.1f} boards/min)")
    print(f"  ratio batched / one by one: {rate_b / rate_s:.1f}x; "
          f"{args.boards} boards one by one would take {args.boards / rate_s:.1f} min")
    print(f"  yield (lab's criterion, error below 1e-3 of its start for 10 steps): {reached.mean():.1%}")
    print(f"  peak memory of the client: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
