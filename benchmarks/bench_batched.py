"""Board-ticks per second of the batched exact engine against single runs, in one run, on one core.

    .venv/bin/python benchmarks/bench_batched.py [--steps 300] [--lab16-boards 1000] [--d64-boards 64]
        [--singles 4] [--repeats 3] [--model per_edge]

For lab16 (the default task) and delaunay64 (task random:5,3,0): the lab's settings (R = 1,
comparator noise 0.01 V), every board its own noise seed. In alternation, ``repeats`` times:
``spicelearn.train`` on ``--singles`` boards one after another, and ``spicelearn.loop.train_batch``
on B boards in lockstep. Prints the median board-ticks per second of each, the batched loop alone
(without making the B run files), their ratios, and the peak memory of the process; and checks
that the batch's first boards are the single runs (positions equal, voltages within 1e-10 V).

Each repeat drops the previous batch before it runs, as a sweep does with the batches it has written: its
records (272 bytes a board-step on lab16, 0.8 GB at 3000 steps) then reuse that memory. The first repeat
touches fresh memory, which costs this virtual machine 0.3 to 2.7 s a GB (its host backs a page on first
touch); the figures of every repeat are printed in order, so the first one shows that cost.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import spicelearn.loop as loop
from spicelearn.blas import limit_for
from spicelearn.model.hardware import Comparator, Hardware
from spicelearn.model.network import load_network

CASES = (("lab16", "default"), ("delaunay64", "random:5,3,0"))


def _timed_loop():
    """Wrap ``loop.run_batch`` to add up the seconds spent in it."""
    real, spent = loop.run_batch, [0.0]

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    return real, timed, spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lab16-boards", type=int, default=1000)
    ap.add_argument("--d64-boards", type=int, default=64)
    ap.add_argument("--singles", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="per_edge", choices=("per_edge", "global"), help="capacitance model")
    args = ap.parse_args()
    hw = Hardware.from_R(1.0, capacitance_model=args.model, comparator=Comparator(noise=0.01))
    print(f"batched exact engine, {args.model} capacitors, {args.steps} steps, R = 1, noise 0.01 V, one core; "
          f"medians of {args.repeats}")
    for (name, task), B in zip(CASES, (args.lab16_boards, args.d64_boards)):
        net = load_network(name)
        runs = [dict(task=task, hardware=hw, seed=s) for s in range(B)]
        single, batch, batch_loop = [], [], []
        real, timed, spent = _timed_loop()
        with limit_for(net):
            # not timed: a process's first runs pay its caches and lazy imports (the first of three repeats of single
            # runs measured 2,851 to 4,609 ticks/s at 300 steps, the others 11,459 to 16,964)
            loop.train(net, task, hw, steps=20, seed=0)
            loop.train_batch(net, runs[:4], steps=20)
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                singles = [loop.train(net, task, hw, steps=args.steps, seed=s) for s in range(args.singles)]
                single.append(args.singles * args.steps / (time.perf_counter() - t0))
                spent[0] = 0.0
                loop.run_batch = timed
                try:
                    t0 = time.perf_counter()
                    batched = loop.train_batch(net, runs, steps=args.steps)
                    batch.append(B * args.steps / (time.perf_counter() - t0))
                finally:
                    loop.run_batch = real
                batch_loop.append(B * args.steps / spent[0])
                # the first boards' files copied for the check below, the batch dropped: its records are one chunk
                # (every run file a view of it), so the next repeat reuses their memory rather than touching fresh
                kept = [b.copy(deep=True) for b in batched[:args.singles]]
                del batched
        for s, b in zip(singles, kept):
            assert np.array_equal(s.position.values, b.position.values), "batch and single runs part"
            assert float(abs(s.v_free - b.v_free).max()) < 1e-10 and float(abs(s.v_clamped - b.v_clamped).max()) < 1e-10
        med = [float(np.median(x)) for x in (single, batch, batch_loop)]
        print(f"  {name} ({net.n_nodes} nodes, {net.n_edges} edges):")
        print(f"    single runs:            {med[0]:9.0f} ticks/s")
        print(f"    batched, B = {B:<5d}     {med[1]:9.0f} board-ticks/s   ratio {med[1] / med[0]:5.1f}x")
        print(f"    batched loop alone:     {med[2]:9.0f} board-ticks/s   ratio {med[2] / med[0]:5.1f}x "
              "(without making the run files)")
        print("    each repeat (single, batched, loop alone): "
              + "; ".join(f"{a:.0f}, {b:.0f}, {c:.0f}" for a, b, c in zip(single, batch, batch_loop)))
    print(f"  peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
