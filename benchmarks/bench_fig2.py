"""Fig. 2's sweep time: one ode run, the previous method against the current one, and optionally the full figure.

    .venv/bin/python benchmarks/bench_fig2.py [--repeat 3] [--steps 3000] [--full [--out-dir DIR]]

Per run (delaunay64, 3000 steps, a few representative (task, R) points of Fig. 2's grid):

* previous: the ``twins`` formulation (both twins' voltages, rtol 1e-8, atol 1e-11, LSODA below
  R = 3 and RK45 above) driven through ``scipy.integrate.solve_ivp`` one segment per floor event
  (cold restarts), and the equilibrium error ``mse_eq`` solved step by step, as the package did
  before (reproduced here in :func:`previous_run`);
* current: :func:`spicelearn.continuous.ode.train_ode` with its defaults (the ``nudge``
  formulation, rtol 1e-7, atol 1e-10, LSODA below R = 15, warm restarts, batched ``mse_eq``).

Medians of ``--repeat`` runs of each, interleaved so that the load of the machine hits both alike; the
ratio is previous / current. Accuracy: the largest ``|ln(mse_eq / mse_eq_ref)|`` of each against a tight
reference (nudge, rtol 1e-10) and the steps to 1e-6 (tau). ``--full`` then runs
``spicelearn figure fig2`` (950 grid runs, 7 curves, the quasistatic limit) into a fresh folder and prints
its wall time and fitted exponents; the previous method's full figure is estimated from the per-run
ratio (running it takes over 20 minutes on two cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from scipy.integrate import solve_ivp

from spicelearn.blas import limit_for
from spicelearn.continuous.ode import OdeModel, _frozen, train_ode
from spicelearn.model.network import load_network
from spicelearn.model.task import bind
from spicelearn.runfile import tau

POINTS = [("random:10,3,0", 0.01), ("random:10,3,0", 1.0), ("random:10,3,0", 4.64), ("random:10,3,7", 10.0),
          ("random:10,3,7", 100.0), ("random:10,3,21", 464.0)]


def previous_run(net, task, R, steps, rtol=1e-8, atol=1e-11, release_rate=1e-7):
    """The previous method: normalised mse_eq (steps,). Twins' voltages, solve_ivp per segment, mse_eq per step."""
    bound = bind(net, task)
    m = OdeModel(bound.network, bound)
    method = "LSODA" if R < 3 else "RK45"
    t_eval = np.arange(1, steps + 1, dtype=float)
    with limit_for(bound.network):
        s0 = m.init(1.0)
        x, t, E, floor = m.pack(s0), 0.0, m.E, m.g_floor
        rate = lambda y: m._raw_dg(y, 1.0)  # noqa: E731
        frozen, ys = _frozen(x, E, floor, rate(x)), []
        kw = {"jac": m.jac} if method == "LSODA" else {}
        while True:
            x[:E][frozen] = floor
            active = ~frozen

            def hit(t, y, *a):
                return float(np.min(y[:E][active]) - (floor - atol)) if active.any() else 1.0

            def release(t, y, *a):
                return float(np.max(rate(y)[frozen])) - release_rate if frozen.any() else -1.0

            hit.terminal, hit.direction, release.terminal, release.direction = True, -1, True, 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sol = solve_ivp(m.rhs, (t, float(steps)), x, method=method, t_eval=t_eval[t_eval > t], rtol=rtol,
                                atol=atol, events=[hit, release], args=(1.0, 1.0 / R, frozen), **kw)
            ys.append(np.reshape(sol.y, (x.size, -1)))
            if sol.status == 0:
                break
            kind = min((e[0], i) for i, e in enumerate(sol.t_events) if e.size)[1]
            t, x = float(sol.t_events[kind][0]), np.array(sol.y_events[kind][0])
            frozen = frozen.copy()
            if kind == 0:
                frozen[np.flatnonzero(active)[np.argmin(x[:E][active])]] = True
            else:
                frozen[np.flatnonzero(frozen)[np.argmax(rate(x)[frozen])]] = False
        G = np.concatenate(ys, axis=1)[:E].T
        mse0 = bound.mse(s0.v_free)
        return np.array([bound.mse(m.equilibrium_free(g)) for g in G]) / mse0


def current_run(net, task, R, steps, **kw):
    ds = train_ode(net, task, R=R, steps=steps, **kw)
    return (ds.mse_eq / ds.mse0).values


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def full_figure(out_dir: str | None) -> None:
    out_dir = out_dir or tempfile.mkdtemp(prefix="bench_fig2_")
    if os.path.exists(os.path.join(out_dir, "sweeps")):
        sys.exit(f"--out-dir {out_dir!r} already holds sweeps (a rerun would only combine them); give a fresh folder")
    exe = [os.path.join(os.path.dirname(sys.executable), "spicelearn"), "figure", "fig2", "--out-dir", out_dir]
    t0 = time.perf_counter()
    proc = subprocess.run(exe, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    import xarray as xr

    with xr.open_dataset(os.path.join(out_dir, "fig2.nc")) as ds:
        a = ds.attrs
        print(f"full Fig. 2 (spicelearn figure fig2, {out_dir}): {wall:.0f} s wall = {wall / 60:.1f} min; "
              f"tau ~ R^({a['tau_exponent_below_Rc']:.3f} +/- {a['tau_exponent_stderr_below_Rc']:.3f}) below R_c, "
              f"R^({a['tau_exponent_above_Rc']:.3f} +/- {a['tau_exponent_stderr_above_Rc']:.3f}) above")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--full", action="store_true", help="also run the full Fig. 2 and time it")
    p.add_argument("--out-dir", default=None, help="fresh folder for --full (default: a temporary one)")
    a = p.parse_args(argv)
    net = load_network("delaunay64")
    print(f"delaunay64, {a.steps} steps, medians of {a.repeat} interleaved runs; "
          f"d: max |ln(mse_eq / reference)|, reference = nudge at rtol 1e-10")
    print(f"{'task':>15} {'R':>7} {'previous':>9} {'current':>8} {'ratio':>6} {'d prev':>8} {'d curr':>8} "
          f"{'tau ref/prev/curr':>18}")
    ratios, t_prev_all, t_curr_all = [], [], []
    for task, R in POINTS:
        ref = current_run(net, task, R, a.steps, rtol=1e-10, atol=1e-13, method="LSODA" if R < 15 else "DOP853")
        tp, tc = [], []
        for _ in range(a.repeat):
            dt, prev = timed(lambda: previous_run(net, task, R, a.steps))
            tp.append(dt)
            dt, curr = timed(lambda: current_run(net, task, R, a.steps))
            tc.append(dt)
        ok = ref > 1e-13
        d = [float(np.max(np.abs(np.log(e[ok] / ref[ok])))) for e in (prev, curr)]
        taus = "/".join(f"{tau(e, 1.0, threshold=1e-6, window=1):g}" for e in (ref, prev, curr))
        mp, mc = statistics.median(tp), statistics.median(tc)
        ratios.append(mp / mc)
        t_prev_all.append(mp)
        t_curr_all.append(mc)
        print(f"{task:>15} {R:>7g} {mp:>8.2f}s {mc:>7.2f}s {mp / mc:>5.1f}x {d[0]:>8.1e} {d[1]:>8.1e} {taus:>18}",
              flush=True)
    print(f"per run: previous {statistics.median(t_prev_all):.2f} s, current {statistics.median(t_curr_all):.2f} s "
          f"(medians over the points); ratio {statistics.median(ratios):.1f}x (median), "
          f"{sum(t_prev_all) / sum(t_curr_all):.1f}x (total)")
    if a.full:
        full_figure(a.out_dir)


if __name__ == "__main__":
    main()
