"""Speed and memory of the ngspice engine on delaunay64 (the learning loop of DESIGN.md section 2).

Prints medians of milliseconds per clock tick for

* the ngspice engine (circuit loaded once per segment, per tick ``alter`` + ``resume``);
* the obvious approach: PySpice's ``Circuit(...).simulator().transient(...)`` rebuilt every
  tick (run in a child process: PySpice's simulator re-registers ngspice's callbacks);
* the exact engine;

and the resident-memory growth of the ngspice engine over 5,000 ticks.

    .venv/bin/python benchmarks/bench_ngspice.py [--ticks 5000] [--obvious 30] [--model per_edge]
"""

from __future__ import annotations

import os

# One BLAS thread: per-tick latency of small matrices; ngspice is single-threaded too, and idle
# BLAS threads that spin on a shared machine make the exact engine's timings erratic.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from spicelearn.engines import get_engine  # noqa: E402
from spicelearn.hardware import Hardware  # noqa: E402
from spicelearn.network import load_network  # noqa: E402
from spicelearn.rules import comparator_rule  # noqa: E402
from spicelearn.task import load_task  # noqa: E402

NETWORK, TASK = "delaunay64", "random:5,3,0"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def learning_loop(backend: str, hw: Hardware, ticks: int, memory_after: int | None = None):
    """Per-tick seconds of the learning loop (relax, comparators, tick, equilibrium error) with one engine."""
    net = load_network(NETWORK)
    task = load_task(TASK, net).bind(net)
    engine = get_engine(backend)(net, task, hw)
    rule = comparator_rule(hw.rule)
    rng = np.random.default_rng(0)
    eu, ev = net.edge_nodes.T
    tgt, V_T = task.target_index, task.target_voltage
    p = np.full(net.n_edges, hw.pot.start)
    state = engine.init(p)
    times, rss0 = np.empty(ticks), None
    for k in range(ticks):
        if k == memory_after:
            rss0 = rss_mb()
        t0 = time.perf_counter()
        vt = state.v_free[tgt]
        state = engine.relax(state, vt + hw.eta * (V_T - vt), hw.period)
        vf, vc = state.v_free, state.v_clamped
        p = hw.pot.step(p, rule(vf[eu] - vf[ev], vc[eu] - vc[ev], hw.comparator, rng))
        state = engine.set_positions(state, p)
        engine.equilibrium_free(state)
        times[k] = time.perf_counter() - t0
    growth = None if rss0 is None else rss_mb() - rss0
    return times, growth


def obvious(hw: Hardware, ticks: int) -> dict:
    """PySpice's high-level path, the circuit rebuilt and re-parsed every tick (clamps as DC sources, .ic, uic)."""
    import logging

    from PySpice.Spice.Netlist import Circuit

    from spicelearn.netlist import TOLERANCES, spice_node_names

    logging.getLogger("PySpice").setLevel(logging.CRITICAL)
    net = load_network(NETWORK)
    task = load_task(TASK, net).bind(net)
    exact = get_engine("exact")(net, task, hw)
    names = spice_node_names(net)
    rule = comparator_rule(hw.rule)
    rng = np.random.default_rng(0)
    eu, ev = net.edge_nodes.T
    tgt, V_T, src = task.target_index, task.target_voltage, task.source_index
    p = np.full(net.n_edges, hw.pot.start)
    state = exact.init(p)
    v_free, v_clamped = state.v_free, state.v_clamped
    times, rss0, err = [], None, 0.0
    for k in range(ticks):
        if k == 2:
            rss0 = rss_mb()
        t0 = time.perf_counter()
        vt = v_free[tgt]
        clamp = vt + hw.eta * (V_T - vt)
        c = Circuit("twins")
        r = hw.pot.resistance(p)
        for twin in "fc":
            for j, (a, b) in enumerate(zip(eu, ev)):
                c.R(f"{twin}{j}", f"{twin}_{names[a]}", f"{twin}_{names[b]}", float(r[j]))
                if hw.capacitance_model == "per_edge":
                    c.C(f"{twin}{j}", f"{twin}_{names[a]}", f"{twin}_{names[b]}", float(hw.capacitance))
            if hw.capacitance_model == "global":
                for i in range(net.n_nodes):
                    c.C(f"{twin}n{i}", f"{twin}_{names[i]}", c.gnd, float(hw.capacitance))
            for i, v in zip(src, task.source_voltage):
                c.V(f"{twin}s{i}", f"{twin}_{names[i]}", c.gnd, float(v))
        for i, v in zip(tgt, clamp):
            c.V(f"t{i}", f"c_{names[i]}", c.gnd, float(v))
        sim = c.simulator(simulator="ngspice-shared")
        sim.options(**TOLERANCES[hw.capacitance_model])
        ic = {f"f_{names[i]}": float(v_free[i]) for i in range(net.n_nodes)}
        ic.update({f"c_{names[i]}": float(v_clamped[i]) for i in range(net.n_nodes)})
        sim.initial_condition(**ic)
        an = sim.transient(step_time=hw.period / 100, end_time=hw.period, use_initial_condition=True)
        v_free = np.array([float(an.nodes[f"f_{names[i]}"][-1]) for i in range(net.n_nodes)])
        v_clamped = np.array([float(an.nodes[f"c_{names[i]}"][-1]) for i in range(net.n_nodes)])
        p = hw.pot.step(p, rule(v_free[eu] - v_free[ev], v_clamped[eu] - v_clamped[ev], hw.comparator, rng))
        times.append(time.perf_counter() - t0)
        state = exact.relax(state, clamp, hw.period)  # the same tick with the exact engine, for reference
        err = max(err, float(np.abs(state.v_free - v_free).max()))
        state = exact.set_positions(state, p)
    return {"median_s": float(np.median(times)), "rss_growth_mb_per_tick": (rss_mb() - rss0) / (ticks - 2),
            "max_free_dv_vs_exact": err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=5000, help="ticks of the ngspice engine (memory run)")
    ap.add_argument("--obvious", type=int, default=30, help="ticks of the rebuilt-circuit approach")
    ap.add_argument("--model", default="per_edge", choices=["per_edge", "global"])
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--child-obvious", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    hw = Hardware.from_R(args.R, capacitance=2.2e-6, capacitance_model=args.model)
    if args.child_obvious:
        print(json.dumps(obvious(hw, args.obvious)))
        return

    child = subprocess.run([sys.executable, __file__, "--child-obvious", "--obvious", str(args.obvious),
                            "--model", args.model, "--R", str(args.R)], capture_output=True, text=True, check=True)
    obv = json.loads(child.stdout.strip().splitlines()[-1])
    t_exact, _ = learning_loop("exact", hw, 300)
    warm = min(200, args.ticks // 2)
    t_ng, growth = learning_loop("ngspice", hw, args.ticks, memory_after=warm)
    ms = {"ngspice": 1e3 * np.median(t_ng), "obvious": 1e3 * obv["median_s"], "exact": 1e3 * np.median(t_exact)}
    print(f"{NETWORK}, task {TASK}, {args.model} c = 2.2 uF, R = {args.R}; medians of ms per clock tick")
    print(f"  ngspice engine (alter + resume)      {ms['ngspice']:8.2f} ms/tick   ({args.ticks} ticks)")
    print(f"  PySpice circuit rebuilt every tick   {ms['obvious']:8.2f} ms/tick   ({args.obvious} ticks; "
          f"RSS +{obv['rss_growth_mb_per_tick']:.2f} MB/tick; "
          f"max |dv_free - exact| {obv['max_free_dv_vs_exact']:.1e} V)")
    print(f"  exact engine                         {ms['exact']:8.2f} ms/tick   (300 ticks)")
    print(f"  speed-up over the rebuilt circuit    {ms['obvious'] / ms['ngspice']:8.1f} x   (target >= 6)")
    print(f"  exact / ngspice time ratio           {ms['exact'] / ms['ngspice']:8.3f}")
    print(f"  ngspice RSS growth over {args.ticks - warm} ticks  {growth:8.1f} MB     (target < 20)")


if __name__ == "__main__":
    main()
