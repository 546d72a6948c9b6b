"""Wall time of the ``ode`` engine against naive RK45 on the same equations (delaunay64, random:5,3,0).

    .venv/bin/python benchmarks/bench_ode.py [--steps 3000] [--naive-steps-stiff 100] [--repeat 3]

The engine (``method="auto"``) integrates with LSODA and a dense analytic
Jacobian below R = 3, RK45 above, with floor events
(:func:`spicelearn.continuous.ode.integrate_floored`). The naive reference is
``scipy.integrate.solve_ivp(method="RK45", rtol=1e-8)`` on the same right-hand
side with the floor as a projection inside it. At R = 0.01 RK45 is limited by
stability (step ~ R / |L_g|), so it is timed on ``--naive-steps-stiff`` steps
and its time is scaled to the full length (its step size is set by stability,
so its cost per training step is uniform); the script says so.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.integrate import solve_ivp

from spicelearn.continuous.ode import OdeModel, train_ode
from spicelearn.model.network import load_network
from spicelearn.model.task import load_task

TASK = "random:5,3,0"


def naive(model: OdeModel, R: float, steps: int, rtol: float = 1e-8, atol: float = 1e-11):
    """RK45 on the projected equations; normalised mse_eq at t = 1..steps."""
    E, floor = model.E, model.g_floor

    def f(t, x):
        dx = model.rhs(t, x, 1.0, 1.0 / R)
        dx[:E][(x[:E] <= floor) & (dx[:E] < 0)] = 0.0
        return dx

    s0 = model.init(1.0)
    t = np.arange(1, steps + 1, dtype=float)
    sol = solve_ivp(f, (0.0, float(steps)), model.pack(s0), method="RK45", t_eval=t, rtol=rtol, atol=atol)
    mse0 = model.task.mse(s0.v_free)
    return np.array([model.task.mse(model.equilibrium_free(np.maximum(g, floor))) for g in sol.y[:E].T]) / mse0


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--naive-steps-stiff", type=int, default=100, help="steps of the naive run at R = 0.01")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    net = load_network("delaunay64")
    bound = load_task(TASK, net).bind(net)
    model = OdeModel(net, bound)
    print(f"delaunay64, {TASK}, eta = 1e-3, rtol = 1e-8, {a.steps} steps; ode: median of {a.repeat} runs, "
          "naive: 1 run")
    print(f"{'R':>6} {'ode [s]':>9} {'naive [s]':>10} {'speed-up':>9} {'max rel d mse_eq':>17} {'max abs d':>10}"
          f"  (d: ode - naive, normalised mse_eq, on the naive run's steps)")
    for R in (0.01, 1.0, 100.0):
        n = a.naive_steps_stiff if R < 0.1 else a.steps
        t_ode, ds = timed(lambda: train_ode(net, TASK, R=R, steps=a.steps), a.repeat)
        t_naive, ref = timed(lambda: naive(model, R, n), 1)
        got = (ds.mse_eq / ds.mse0).values[:n]
        rel, ab = np.max(np.abs(got - ref) / ref), np.max(np.abs(got - ref))
        t_full = t_naive * a.steps / n
        note = f"  naive timed on {n} steps ({t_naive:.2f} s), scaled x{a.steps / n:g}" if n != a.steps else ""
        print(f"{R:>6g} {t_ode:>9.2f} {t_full:>10.2f} {t_full / t_ode:>8.1f}x {rel:>17.2e} {ab:>10.2e}{note}")


if __name__ == "__main__":
    main()
