"""Cost per tick of the `exact` engine against network size: dense (eigen, Chebyshev) and sparse paths.

Random planar networks (``delaunay(n, round(n * 143 / 64))``, delaunay64's edge density), per_edge
capacitors, task random:5,3,0, R = 1, the training loop (``run_loop``) for a few ticks per size, from
random positions (spread over 0..127, as in a run after its first hundred ticks: the uniform start would
flatter every method). Prints
milliseconds per tick (median over repeats, all paths of a size measured in the same run, interleaved,
BLAS on one thread),
the sparse path's largest deviation from the dense eigen path where both run, and the crossover: the
smallest size from which the sparse path is faster than the dense (Chebyshev) path.

    .venv/bin/python benchmarks/bench_large.py [--sizes 16 64 256 1024 4096] [--ticks 10] [--repeats 3]
        [--dense-max 1024] [--R 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from spicelearn.engines.exact import ExactEngine, SPARSE_FROM
from spicelearn.loop import Decide, run_loop
from spicelearn.model.board import Board
from spicelearn.model.generators import delaunay
from spicelearn.model.hardware import Hardware
from spicelearn.model.network import compile_network
from spicelearn.model.rules import comparator_rule
from spicelearn.model.task import load_task


def network(n: int, seed: int = 0):
    return compile_network(delaunay(n, int(round(n * 143 / 64)), seed=seed), name=f"delaunay{n}")


def one_run(net, task, board, method: str, ticks: int, start) -> tuple:
    eng = ExactEngine(net, task, board, method=method)
    decide = Decide.rule(board, comparator_rule("xor"), np.random.default_rng(0))
    with threadpool_limits(1, user_api="blas"):  # one thread at every size: on a shared 2-core machine a second one
        t0 = time.perf_counter()                 # made the dense paths at 512 nodes 10x slower
        rec = run_loop(eng, ticks, start, decide)
        dt = time.perf_counter() - t0
    return dt / ticks, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    ap.add_argument("--ticks", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dense-max", type=int, default=1024, help="largest size the dense paths run at")
    ap.add_argument("--R", type=float, default=1.0)
    args = ap.parse_args()
    hw = Hardware.from_R(args.R)
    print(f"per_edge, R = {args.R:g}, task random:5,3,0, {args.ticks} ticks x {args.repeats} repeats; "
          f"SPARSE_FROM = {SPARSE_FROM} floating nodes")
    print(f"{'nodes':>6} {'edges':>6} {'eigen ms':>9} {'dense ms':>9} {'sparse ms':>10} {'sparse/dense':>12} "
          f"{'max |dv| V':>11}")
    rows = []
    for n in args.sizes:
        net = network(n)
        task = load_task("random:5,3,0", net).bind(net)
        board = Board.nominal(net, hw)
        # positions spread over the whole range, as after the first hundred ticks of a run from the uniform start
        start = np.random.default_rng(1).integers(0, hw.pot.n_positions, net.n_edges)
        methods = ["eigen", "dense", "sparse"] if n <= args.dense_max else ["sparse"]
        times = {m: [] for m in methods}
        recs = {}
        ticks = args.ticks * (10 if n <= 256 else 2 if n <= 1024 else 1)
        for _ in range(args.repeats):
            for m in methods:
                dt, recs[m] = one_run(net, task, board, m, ticks, start)
                times[m].append(dt)
        med = {m: 1e3 * float(np.median(v)) for m, v in times.items()}
        dev = np.nan
        if "dense" in recs:
            dev = max(float(np.abs(recs["sparse"][k] - recs["eigen"][k]).max()) for k in ("v_free", "v_clamped"))
        ratio = med["sparse"] / med["dense"] if "dense" in med else np.nan
        rows.append((n, med, ratio))
        print(f"{n:6d} {net.n_edges:6d} {med.get('eigen', np.nan):9.2f} {med.get('dense', np.nan):9.2f} "
              f"{med['sparse']:10.2f} {ratio:12.2f} {dev:11.1e}", flush=True)
    faster = [n for n, _, r in rows if r < 1]
    print(f"crossover: the sparse path is faster than the dense path from {faster[0] if faster else 'none'} "
          f"nodes on (of the sizes measured)")


if __name__ == "__main__":
    main()
