"""The exact engine of this tree against the one of a git revision, tick by tick in one process.

    .venv/bin/python benchmarks/bench_ab.py [--against HEAD] [--network lab16] [--task default]
        [--boards 0] [--steps 3000] [--R 1] [--noise 0.01] [--model per_edge]

Both engines run the same minimal loop side by side (the supervisor's nudge, a relaxation, the comparators'
rule with its noise, a clock tick, the free equilibrium), one tick of each in turn and the first of every
pair alternating, so that this machine's drift (up to 1.5x within an hour) falls on both alike: ratios agree
to about 2 % from run to run, where whole runs in alternating processes scatter by 15 %. ``--boards 0`` compares
the single engine (``spicelearn/engines/exact.py``), ``--boards B`` the batched one on B nominal boards
(``spicelearn/engines/batched.py``, with the revision's ``exact.py``). Prints the
ticks (or board-ticks) per second of each, their ratio, and whether the two engines kept the same positions,
with their largest voltage difference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench_exact import module_at
from spicelearn.engines.batched import BatchedExactEngine
from spicelearn.engines.exact import ExactEngine
from spicelearn.loop import Decide, supervisors
from spicelearn.model.board import Board
from spicelearn.model.hardware import Comparator, Hardware
from spicelearn.model.network import load_network
from spicelearn.model.rules import xor_rule
from spicelearn.model.task import bind


def _stepper(engine, task, boards, batched: bool, seed: int):
    """One tick of the minimal loop for ``engine`` (batched, or a single engine as a batch of one):
    ``step(state, positions, k) -> (state, positions)``, and the start state and positions."""
    hw, B = boards[0].hardware, len(boards)
    nudge = supervisors([task] * B, boards)  # the supervisors' clamps from the free twins' voltages (B, N)
    edge_nodes = (task.network.edge_nodes[:, 0], task.network.edge_nodes[:, 1])
    decide = Decide.rules(boards, [xor_rule] * B, [np.random.default_rng(seed + b) for b in range(B)], [None] * B)
    p0 = np.full((B, task.network.n_edges), hw.pot.start)
    if batched:
        period = np.full(B, boards[0].period)

        def step(s, p, k):
            s = engine.relax(s, nudge(s.v_free), period)
            p = decide(k, p, s.v_free, s.v_clamped, edge_nodes)
            s = engine.set_positions(s, p)
            engine.equilibrium_free(s)
            return s, p

        return step, engine.init(p0, default_clamp=nudge), p0

    def step(s, p, k):
        s = engine.relax(s, nudge(s.v_free[None])[0], boards[0].period)
        p = decide(k, p, s.v_free[None], s.v_clamped[None], edge_nodes)
        s = engine.set_positions(s, p[0])
        engine.equilibrium_free(s)
        return s, p

    return step, engine.init(p0[0]), p0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="HEAD", help="git revision of the other engine (default HEAD)")
    ap.add_argument("--network", default="lab16")
    ap.add_argument("--task", default="default")
    ap.add_argument("--boards", type=int, default=0, help="0: the single engine; B: the batched one on B boards")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.01, help="comparator noise (V)")
    ap.add_argument("--model", default="per_edge", choices=("per_edge", "global"), help="capacitance model")
    args = ap.parse_args()
    task = bind(args.network, args.task)
    net = task.network
    hw = Hardware.from_R(args.R, capacitance_model=args.model, comparator=Comparator(noise=args.noise))
    boards = [Board.nominal(net, hw)] * max(args.boards, 1)
    if args.boards:
        other = module_at(args.against, "engines.batched",
                          siblings=(module_at(args.against, "engines.exact"),)).BatchedExactEngine
        engines = {"this tree": BatchedExactEngine(net, [task] * args.boards, boards),
                   args.against: other(net, [task] * args.boards, boards)}
    else:
        other = module_at(args.against, "engines.exact").ExactEngine
        engines = {"this tree": ExactEngine(net, task, boards[0]), args.against: other(net, task, boards[0])}
    seconds = dict.fromkeys(engines, 0.0)
    with threadpool_limits(1, user_api="blas"):
        runs = {name: _stepper(eng, task, boards, args.boards > 0, seed=0) for name, eng in engines.items()}
        state = {name: (r[1], r[2]) for name, r in runs.items()}
        names = list(engines)
        for k in range(args.steps):
            for name in (names if k % 2 else names[::-1]):
                t0 = time.perf_counter()
                state[name] = runs[name][0](*state[name], k)
                seconds[name] += time.perf_counter() - t0
    unit = "board-ticks/s" if args.boards else "ticks/s"
    what = f"batched, B = {args.boards}" if args.boards else "single engine"
    print(f"{net.name} ({net.n_nodes} nodes, {net.n_edges} edges), {args.model}, {what}, {args.steps} steps, "
          f"R = {args.R}, noise {args.noise} V, ticks interleaved")
    for name in names:
        print(f"  {name:>12s}: {max(args.boards, 1) * args.steps / seconds[name]:10.0f} {unit}")
    (sa, pa), (sb, pb) = state.values()
    dv = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
             for a, b in ((sa.v_free, sb.v_free), (sa.v_clamped, sb.v_clamped)))
    print(f"  this tree / {args.against}: {seconds[names[1]] / seconds[names[0]]:.3f}x   (same positions: "
          f"{np.array_equal(pa, pb)}; max |dv| {dv:.1e} V)")


if __name__ == "__main__":
    main()
