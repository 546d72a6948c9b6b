"""Speed and memory of the ngspice engine on delaunay64 (the learning loop of DESIGN.md section 2).

One learning run with the ngspice engine; at ``--obvious`` ticks spread over it, the same tick
(same resistances, voltages and clamp) is also simulated by the obvious approach: PySpice's
``Circuit(...).simulator().transient(...)`` rebuilt from scratch (in a child process: PySpice's
simulator re-registers ngspice's callbacks). Prints medians of milliseconds per clock tick for

* the ngspice engine's ``relax`` (circuits loaded once per segment, per tick ``alter`` +
  ``resume``; the twins on two ngspice instances in two threads), wall clock and CPU time of
  the process, over the whole run and over the sampled ticks; the whole learning-loop tick
  (comparators and ``mse_eq`` too); ngspice's time points per tick of each twin's circuit;
* the same with both twins on one instance (``parallel=False``), a second run;
* the obvious approach on the sampled ticks, and the speed-ups tick by tick;
* the exact engine;

and the resident-memory growth of the ngspice engine over the run. Ticks late in a run cost more
than early ones (learning spreads the RC times, and ngspice takes more time points), so the
approaches are compared on the same ticks.

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
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from spicelearn.engines import get_engine  # noqa: E402
from spicelearn.loop import train  # noqa: E402
from spicelearn.model.board import Board  # noqa: E402
from spicelearn.model.hardware import Hardware  # noqa: E402
from spicelearn.model.network import load_network  # noqa: E402
from spicelearn.model.task import load_task  # noqa: E402

NETWORK, TASK = "delaunay64", "random:5,3,0"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Timed:
    """An engine that times another one's ``relax`` inside the learning loop of ``spicelearn.train``.

    It records, per tick, the wall-clock and CPU seconds of ``relax`` and the time between the
    starts of successive ``relax`` calls (the whole loop tick: comparators, pot step and
    ``mse_eq`` too); the RSS at tick ``memory_after``; and, for each tick in ``sample``, the
    arrays the tick starts from: positions, v_free, v_clamped, clamp.
    """

    def __init__(self, engine, memory_after=None, sample=()):
        self.engine, self.memory_after, self.sample = engine, memory_after, set(sample)
        self.name = engine.name
        self.network, self.task, self.board = engine.network, engine.task, engine.board
        self.starts, self.wall, self.cpu, self.samples, self.rss0 = [], [], [], [], None

    def init(self, positions):
        return self.engine.init(positions)

    def relax(self, state, clamp, duration):
        k = len(self.starts)
        if k == self.memory_after:
            self.rss0 = rss_mb()
        if k in self.sample:
            self.samples.append(dict(positions=np.array(state.positions), v_free=state.v_free.copy(),
                                     v_clamped=state.v_clamped.copy(), clamp=np.array(clamp)))
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.engine.relax(state, clamp, duration)
        self.cpu.append(time.process_time() - c0)
        self.wall.append(time.perf_counter() - t0)
        self.starts.append(t0)
        return out

    def set_positions(self, state, positions):
        return self.engine.set_positions(state, positions)

    def equilibrium_free(self, state):
        return self.engine.equilibrium_free(state)

    def close(self):
        self.engine.close()


def learning_loop(backend: str, hw: Hardware, ticks: int, memory_after: int | None = None, sample=(), **options):
    """Per-tick seconds of ``spicelearn.train``'s learning loop with one engine (see :class:`Timed`).

    Returns a dict: ``relax``, ``relax_cpu`` and ``tick`` (seconds, shape (ticks,); the last
    tick's ``tick`` is its ``relax``), ``growth`` (the RSS growth after tick ``memory_after``, MB)
    and ``samples``.
    """
    timed = []

    def factory(net, task, hardware):
        timed.append(Timed(get_engine(backend)(net, task, hardware, **options), memory_after, sample))
        return timed[0]

    train(NETWORK, TASK, hw, steps=ticks, backend=factory, seed=0)
    t = timed[0]
    growth = None if t.rss0 is None else rss_mb() - t.rss0
    tick = np.append(np.diff(t.starts), t.wall[-1])
    points = {k: n / len(t.starts) for k, n in getattr(t.engine, "time_points", {}).items()}
    return dict(relax=np.array(t.wall), relax_cpu=np.array(t.cpu), tick=tick, growth=growth, samples=t.samples,
                points=points)


def obvious(hw: Hardware, samples: list) -> dict:
    """PySpice's high-level path, the circuit rebuilt and re-parsed for each sampled tick (clamps as DC sources,
    .ic, uic), with the ngspice engine's options."""
    import logging

    from PySpice.Spice.Netlist import Circuit

    from spicelearn.spice.netlist import simulator_options, spice_node_names, voltage_scale

    logging.getLogger("PySpice").setLevel(logging.CRITICAL)
    net = load_network(NETWORK)
    task = load_task(TASK, net).bind(net)
    board = Board.nominal(net, hw)
    exact = get_engine("exact")(net, task, board)
    names = spice_node_names(net)
    eu, ev = net.edge_nodes.T
    src, tgt = task.source_index, task.target_index
    times, rss, err = [], [], 0.0
    for smp in samples:
        p, v_free, v_clamped, clamp = smp["positions"], smp["v_free"], smp["v_clamped"], smp["clamp"]
        t0 = time.perf_counter()
        c = Circuit("twins")
        r = board.resistance(p)
        for k, twin in enumerate("fc"):
            for j, (a, b) in enumerate(zip(eu, ev)):
                c.R(f"{twin}{j}", f"{twin}_{names[a]}", f"{twin}_{names[b]}", float(r[k, j]))
                if hw.capacitance_model == "per_edge":
                    c.C(f"{twin}{j}", f"{twin}_{names[a]}", f"{twin}_{names[b]}", float(board.capacitance[j]))
            if hw.capacitance_model == "global":
                for i in range(net.n_nodes):
                    c.C(f"{twin}n{i}", f"{twin}_{names[i]}", c.gnd, float(board.capacitance[i]))
            for i, v in zip(src, task.source_voltage):
                c.V(f"{twin}s{i}", f"{twin}_{names[i]}", c.gnd, float(v))
        for i, v in zip(tgt, clamp):
            c.V(f"t{i}", f"c_{names[i]}", c.gnd, float(v))
        sim = c.simulator(simulator="ngspice-shared")
        volts = voltage_scale(hw.capacitance_model, task.source_voltage, task.target_voltage, clamp, v_free,
                              v_clamped)
        sim.options(**simulator_options(board, board.period, volts))
        ic = {f"f_{names[i]}": float(v_free[i]) for i in range(net.n_nodes)}
        ic.update({f"c_{names[i]}": float(v_clamped[i]) for i in range(net.n_nodes)})
        sim.initial_condition(**ic)
        an = sim.transient(step_time=board.period / 100, end_time=board.period, use_initial_condition=True)
        v_end = np.array([float(an.nodes[f"f_{names[i]}"][-1]) for i in range(net.n_nodes)])
        times.append(time.perf_counter() - t0)
        rss.append(rss_mb())
        state = exact.relax(exact.state(p, v_free, v_clamped, clamp), clamp, board.period)  # the same tick, exactly
        err = max(err, float(np.abs(state.v_free - v_end).max()))
    return {"times_s": times, "rss_growth_mb_per_tick": (rss[-1] - rss[0]) / max(len(rss) - 1, 1),
            "max_free_dv_vs_exact": err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=5000, help="ticks of the ngspice engine's run (memory too)")
    ap.add_argument("--obvious", type=int, default=30, help="ticks of the run also timed with the rebuilt circuit")
    ap.add_argument("--model", default="per_edge", choices=["per_edge", "global"])
    ap.add_argument("--R", type=float, default=1.0)
    ap.add_argument("--child-obvious", metavar="SAMPLES.npz", help=argparse.SUPPRESS)
    args = ap.parse_args()
    hw = Hardware.from_R(args.R, capacitance=2.2e-6, capacitance_model=args.model)
    if args.child_obvious:
        with np.load(args.child_obvious) as z:
            samples = [{k: z[f"{k}_{i}"] for k in ("positions", "v_free", "v_clamped", "clamp")}
                       for i in range(int(z["n"]))]
        print(json.dumps(obvious(hw, samples)))
        return

    t_exact = learning_loop("exact", hw, 300)["tick"]
    warm = min(200, args.ticks // 2)
    sampled = np.unique(np.linspace(1, args.ticks - 1, args.obvious).astype(int))
    par = learning_loop("ngspice", hw, args.ticks, memory_after=warm, sample=sampled)
    one = learning_loop("ngspice", hw, args.ticks, parallel=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "samples.npz")
        np.savez(path, n=len(par["samples"]),
                 **{f"{k}_{i}": v for i, smp in enumerate(par["samples"]) for k, v in smp.items()})
        child = subprocess.run([sys.executable, __file__, "--child-obvious", path, "--model", args.model,
                                "--R", str(args.R)], capture_output=True, text=True, check=True)
    obv = json.loads(child.stdout.strip().splitlines()[-1])
    t_obv = np.array(obv["times_s"])

    def ms(t):
        return 1e3 * np.median(t)

    print(f"{NETWORK}, task {TASK}, {args.model} c = 2.2 uF, R = {args.R}; medians of ms per clock tick "
          f"({args.ticks} ticks; sampled: {len(sampled)} ticks spread over the run)")
    print(f"  ngspice engine, twins in parallel    {ms(par['relax']):8.2f} ms/tick   "
          f"(CPU {ms(par['relax_cpu']):.2f} ms; sampled ticks {ms(par['relax'][sampled]):.2f}; target <= 6)")
    print(f"    whole learning-loop tick           {ms(par['tick']):8.2f} ms/tick   (comparators and mse_eq too)")
    print("    ngspice time points per tick       "
          + ", ".join(f"{n:.0f} ({'free' if k == 'f' else 'clamped' if k == 'c' else k} twin)"
                      for k, n in par["points"].items()))
    print(f"  ngspice engine, one instance         {ms(one['relax']):8.2f} ms/tick   "
          f"(CPU {ms(one['relax_cpu']):.2f} ms; parallel=False, a second run)")
    print(f"  PySpice circuit rebuilt, same ticks  {ms(t_obv):8.2f} ms/tick   "
          f"(RSS +{obv['rss_growth_mb_per_tick']:.2f} MB/tick; "
          f"max |dv_free - exact| {obv['max_free_dv_vs_exact']:.1e} V)")
    print(f"  speed-up over the rebuilt circuit    {np.median(t_obv / par['relax'][sampled]):8.1f} x   "
          f"(median of tick-by-tick ratios; target >= 6; by CPU time "
          f"{np.median(t_obv / par['relax_cpu'][sampled]):.1f} x)")
    print(f"    one instance (medians)             {ms(t_obv) / ms(one['relax']):8.1f} x")
    print(f"  exact engine                         {ms(t_exact):8.2f} ms/tick   (300 ticks, whole loop tick)")
    print(f"  exact / ngspice time ratio           {ms(t_exact) / ms(par['tick']):8.3f}   (whole loop ticks)")
    print(f"  ngspice RSS growth over {args.ticks - warm} ticks  {par['growth']:8.1f} MB     (target < 20)")


if __name__ == "__main__":
    main()
