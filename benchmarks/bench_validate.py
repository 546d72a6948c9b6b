"""Boards per minute of the example design (examples/lab_board.toml) on the exact engine, one core.

    .venv/bin/python benchmarks/bench_validate.py [--boards 6] [--steps 3000] [--repeats 3]

Times whole board runs (``spicelearn.experiments.spec.run``, no files) in this process, in
alternation: boards of the design with all its imperfections, and the same boards with ideal
parts (the clamped twin then shares the free twin's decomposition; with mismatched twins or
capacitors it needs a second eigensolve and frame per tick). Prints the median over repeats of
boards per minute of each and their ratio, and the peak memory of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from spicelearn.blas import limit_for
from spicelearn.experiments.design import load_design
from spicelearn.experiments.spec import IMPERFECTIONS, OPTIONS, run
from spicelearn.model.network import load_network

DESIGN = os.path.join(os.path.dirname(__file__), "..", "examples", "lab_board.toml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=6)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    d = load_design(DESIGN)
    real = {**d.options, "steps": args.steps}
    ideal = {**real, **{k: OPTIONS[k].default for k in IMPERFECTIONS}}
    rates = {"design": [], "ideal": []}
    with limit_for(load_network(real["network"])):
        for _ in range(args.repeats):
            for name, opts in (("design", real), ("ideal", ideal)):
                t0 = time.perf_counter()
                for b in range(args.boards):
                    run({**opts, "board": b})
                rates[name].append(60 * args.boards / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    print(f"example design, {args.steps} steps, exact engine, one core, median of {args.repeats} x {args.boards} "
          "boards:")
    print(f"  all imperfections: {med['design']:.1f} boards/min ({args.steps * med['design'] / 60:.0f} ticks/s)")
    print(f"  ideal parts:       {med['ideal']:.1f} boards/min ({args.steps * med['ideal'] / 60:.0f} ticks/s)")
    print(f"  ratio ideal / design: {med['ideal'] / med['design']:.2f}")
    print(f"  peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
