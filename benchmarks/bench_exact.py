"""Learning steps per second of the `exact` engine on delaunay64 (per_edge, one process).

Compares the engine with the straightforward method: two dense generalised
eigensolves per tick (free and clamped twins), same loop, same results.

    .venv/bin/python benchmarks/bench_exact.py [--steps 3000] [--repeats 5] [--R 1]

Prints medians over repeats and their ratio, and the peak memory of one run.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import scipy.linalg as sla
from threadpoolctl import threadpool_limits

from spicelearn.loop import train
from spicelearn.model.board import Board
from spicelearn.model.hardware import Hardware
from spicelearn.model.network import load_network
from spicelearn.model.rules import xor_rule
from spicelearn.model.task import load_task


def naive_loop(net, task, hw, steps):
    """Reference: generalised eigensolve of (L_G, L_C) on each twin's floating nodes, every tick."""
    LC = Board.nominal(net, hw).capacitance_matrix(net)
    S, T = task.source_index, task.target_index
    n = net.n_nodes
    fl_f = np.setdiff1d(np.arange(n), S)
    fl_c = np.setdiff1d(np.arange(n), np.concatenate([S, T]))
    p = np.full(net.n_edges, hw.pot.start)
    B = net.incidence

    def relax(v, driven, fl, vd_new, LG, t):
        q = LC[fl] @ v
        vj = np.linalg.solve(LC[np.ix_(fl, fl)], q - LC[np.ix_(fl, driven)] @ vd_new)
        lam, X = sla.eigh(LG[np.ix_(fl, fl)], LC[np.ix_(fl, fl)])
        vstar = -X @ ((X.T @ (LG[np.ix_(fl, driven)] @ vd_new)) / lam)
        out = np.empty(n)
        out[driven] = vd_new
        out[fl] = vstar + X @ (np.exp(-lam * t) * (X.T @ (LC[np.ix_(fl, fl)] @ (vj - vstar))))
        return out

    LG = net.laplacian(hw.pot.conductance(p))
    vf = np.zeros(n)
    vf[S] = task.source_voltage
    vf[fl_f] = -np.linalg.solve(LG[np.ix_(fl_f, fl_f)], LG[np.ix_(fl_f, S)] @ task.source_voltage)
    vc = vf.copy()
    drv_c = np.concatenate([S, T])
    for _ in range(steps):
        clamp = vf[T] + hw.eta * (task.target_voltage - vf[T])
        vf = relax(vf, S, fl_f, task.source_voltage, LG, hw.period)
        vc = relax(vc, drv_c, fl_c, np.concatenate([task.source_voltage, clamp]), LG, hw.period)
        p = hw.pot.step(p, xor_rule(B @ vf, B @ vc))
        LG = net.laplacian(hw.pot.conductance(p))
        veq = -np.linalg.solve(LG[np.ix_(fl_f, fl_f)], LG[np.ix_(fl_f, S)] @ task.source_voltage)
        _ = np.sum((task.target_voltage - veq[np.searchsorted(fl_f, T)]) ** 2)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--task", default="random:5,3,0")
    args = ap.parse_args()

    net = load_network("delaunay64")
    task = load_task(args.task, net).bind(net)
    hw = Hardware.from_R(args.R, capacitance=2.2e-6)
    print(f"delaunay64 ({net.n_nodes} nodes, {net.n_edges} edges), task {args.task}, per_edge, R = {args.R}, "
          f"{args.steps} steps, {args.repeats} repeats")

    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ds = train(net, task.task, hw, steps=args.steps)
        rates.append(args.steps / (time.perf_counter() - t0))
    exact = float(np.median(rates))
    print(f"exact engine : median {exact:8.0f} steps/s  (min {min(rates):.0f}, max {max(rates):.0f})")

    naive_steps = max(args.steps // 5, 100)
    nrates = []
    for _ in range(max(args.repeats // 2, 1)):
        t0 = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):  # as fast as it gets at this size; same as the engine
            p = naive_loop(net, task, hw, naive_steps)
        nrates.append(naive_steps / (time.perf_counter() - t0))
    naive = float(np.median(nrates))
    same = np.array_equal(p, ds["position"].values[naive_steps - 1]) if naive_steps <= args.steps else None
    print(f"naive (2 generalised eigh per tick, {naive_steps} steps): median {naive:8.0f} steps/s")
    print(f"speed-up     : {exact / naive:.1f}x   (same positions after {naive_steps} steps: {same})")

    tracemalloc.start()
    train(net, task.task, hw, steps=args.steps)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory       : peak {peak / 2**20:.1f} MiB traced in one {args.steps}-step run "
          f"(run file arrays ~{(args.steps * (2 * net.n_nodes * 8 + net.n_edges * 2)) / 2**20:.1f} MiB); "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
