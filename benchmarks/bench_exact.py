"""Learning steps per second of the `exact` engine on delaunay64 (per_edge, one process).

Measured in one run, repeats interleaved (the machine's speed drifts; the ratios are what to read):

* ``train`` (the whole loop) with the engine of the previous commit (``--against``, default the commit
  before the fast path; its ``spicelearn/engines/exact.py`` loaded from git), with this commit's
  ``method="eigen"`` (the default, the same arithmetic) and with ``method="dense"`` (the fast path);
* the straightforward method, two dense generalised eigensolves per tick (free and clamped twins),
  in a minimal loop, and the engines in the same minimal loop (what the engine itself costs, without
  the driver's bookkeeping).

    .venv/bin/python benchmarks/bench_exact.py [--steps 3000] [--repeats 5] [--R 1] [--against REV]
    .venv/bin/python benchmarks/bench_exact.py --crossover    # Chebyshev against eigen per tick, by R

Prints medians over repeats and their ratios, and the peak memory of one run.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
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


def module_at(rev: str, module: str, siblings: tuple = ()):
    """The module ``module`` of this package (``"engines.exact"``) as it was at git revision ``rev``, loaded beside
    today's as ``spicelearn.<module>_at_<rev>``: its relative imports are today's modules, except those of the
    modules ``siblings`` (modules of its package that this function loaded at the same revision)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "show", f"{rev}:spicelearn/{module.replace('.', '/')}.py"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    for sibling in siblings:
        name = sibling.__name__.rsplit(".", 1)[1]
        src = src.replace(f"from .{name.split('_at_')[0]} import", f"from .{name} import")
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location(f"spicelearn.{module}_at_{rev.replace('~', '_')}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
    finally:
        os.unlink(path)
    return mod


def previous_engine(rev: str):
    """``ExactEngine`` of ``spicelearn/engines/exact.py`` at git revision ``rev`` (a module of this package)."""
    return module_at(rev, "engines.exact").ExactEngine


def engine_loop(engine, task, hw, steps):
    """The engine in the naive loop's minimal driver (nudge, relax, XOR rule, tick, equilibrium error)."""
    S, T = task.source_index, task.target_index
    B = engine.network.incidence
    p = np.full(engine.network.n_edges, hw.pot.start)
    st = engine.init(p)
    for _ in range(steps):
        vf = st.v_free
        st = engine.relax(st, vf[T] + hw.eta * (task.target_voltage - vf[T]), hw.period)
        p = hw.pot.step(p, xor_rule(B @ st.v_free, B @ st.v_clamped))
        st = engine.set_positions(st, p)
        d = task.target_voltage - engine.equilibrium_free(st)[T]
        _ = d @ d
    return p


def crossover(net, task, repeats: int):
    """Per-tick cost of the Chebyshev path against the eigen path, by R: where ``dense`` should switch."""
    from spicelearn.engines.exact import ExactEngine

    print(f"{'R':>8} {'terms':>6} {'chebyshev us':>13} {'eigen us':>9}")
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 128, net.n_edges)
    for R in (1000, 10, 1, 0.3, 0.1, 0.05, 0.03, 0.02, 0.01):
        hw = Hardware.from_R(R, capacitance=2.2e-6)
        board = Board.nominal(net, hw)
        out = {}
        for method in ("chebyshev", "eigen"):
            eng = ExactEngine(net, task, board, method=method)
            st = eng.init(pos)
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(50):
                    s2 = eng.set_positions(st, pos)
                    eng.relax(s2, st.clamp, hw.period)
                ts.append((time.perf_counter() - t0) / 50)
            out[method] = 1e6 * float(np.median(ts))
            if method == "chebyshev":
                terms = eng._chebyshev(s2.ops, s2.ops_c, hw.period)[2].size
        print(f"{R:8g} {terms:6d} {out['chebyshev']:13.0f} {out['eigen']:9.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--task", default="random:5,3,0")
    ap.add_argument("--against", default="f0490b2", help="git revision of the previous engine")
    ap.add_argument("--crossover", action="store_true", help="Chebyshev against eigen per tick, by R")
    args = ap.parse_args()

    net = load_network("delaunay64")
    task = load_task(args.task, net).bind(net)
    if args.crossover:
        with threadpool_limits(1, user_api="blas"):
            crossover(net, task, args.repeats)
        return
    from spicelearn.engines.exact import ExactEngine

    hw = Hardware.from_R(args.R, capacitance=2.2e-6)
    print(f"delaunay64 ({net.n_nodes} nodes, {net.n_edges} edges), task {args.task}, per_edge, R = {args.R}, "
          f"{args.steps} steps, {args.repeats} repeats, interleaved")
    engines = {"previous": previous_engine(args.against), "eigen": functools.partial(ExactEngine, method="eigen"),
               "dense": functools.partial(ExactEngine, method="dense")}
    board = Board.nominal(net, hw)
    naive_steps = max(args.steps // 5, 100)
    rates = {k: [] for k in list(engines) + ["naive"] + [f"{k} (minimal loop)" for k in engines]}
    runs = {}
    for _ in range(args.repeats):
        for name, factory in engines.items():
            t0 = time.perf_counter()
            runs[name] = train(net, task.task, hw, steps=args.steps, backend=factory)
            rates[name].append(args.steps / (time.perf_counter() - t0))
        with threadpool_limits(1, user_api="blas"):  # as fast as it gets at this size; same as the engines
            t0 = time.perf_counter()
            p = naive_loop(net, task, hw, naive_steps)
            rates["naive"].append(naive_steps / (time.perf_counter() - t0))
            for name, factory in engines.items():
                eng = factory(net, task, board)
                t0 = time.perf_counter()
                q = engine_loop(eng, task, hw, naive_steps)
                rates[f"{name} (minimal loop)"].append(naive_steps / (time.perf_counter() - t0))
                assert np.array_equal(p, q), name
    med = {k: float(np.median(v)) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:24s}: median {v:8.0f} steps/s  (min {min(rates[k]):.0f}, max {max(rates[k]):.0f})")
    same = np.array_equal(runs["dense"]["position"].values, runs["previous"]["position"].values)
    dv = max(float(np.abs(runs["dense"][k].values - runs["previous"][k].values).max()) for k in ("v_free", "v_clamped"))
    # this commit's eigen path against the previous engine's (its default where it has no `method`: f0490b2)
    previous = engines["previous"]
    if "method" in inspect.signature(previous).parameters:
        previous = functools.partial(previous, method="eigen")
        runs["previous eigen"] = train(net, task.task, hw, steps=args.steps, backend=previous)
    ref = runs.get("previous eigen", runs["previous"])
    bit = all(np.array_equal(runs["eigen"][k].values, ref[k].values) for k in ("v_free", "v_clamped"))
    print(f"train, dense / previous commit : {med['dense'] / med['previous']:.2f}x   (same positions: {same}; "
          f"max |dv| {dv:.1e} V; eigen bit for bit the previous engine's eigen path: {bit})")
    print(f"train, dense / naive           : {med['dense'] / med['naive']:.2f}x   (previous / naive: "
          f"{med['previous'] / med['naive']:.2f}x)")
    print(f"minimal loop, dense / naive    : {med['dense (minimal loop)'] / med['naive']:.2f}x   (previous / naive: "
          f"{med['previous (minimal loop)'] / med['naive']:.2f}x; same positions as naive after {naive_steps} steps)")

    tracemalloc.start()
    train(net, task.task, hw, steps=args.steps, backend=engines["dense"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory       : peak {peak / 2**20:.1f} MiB traced in one {args.steps}-step run "
          f"(run file arrays ~{(args.steps * (2 * net.n_nodes * 8 + net.n_edges * 2)) / 2**20:.1f} MiB); "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
