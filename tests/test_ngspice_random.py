"""The ngspice engine against the exact engine on random networks, off the grid its tolerances were checked on (slow).

DESIGN.md promises 1e-5 V at every node and tick on any network. The cases are drawn once, from
one seeded generator at import (the seed was fixed before any result was seen): Delaunay networks
of 12 to 64 nodes, random tasks, c from 2.2 uF to 2.2 mF and R from 0.1 to 10 (log-uniform), the
two capacitance models in turn. Each is a 300-step exact training run (noise 0) replayed through
both engines. The worst case is printed (also without ``-s``).
"""

import numpy as np
import pytest

from spicelearn.errors import NetworkError
from spicelearn.loop import replay_run, train
from spicelearn.model.generators import delaunay
from spicelearn.model.hardware import Hardware

pytest.importorskip("PySpice")

TOL = 1e-5  # volts
STEPS = 300
N_CASES = 24


def _draw_cases(rng, n_cases):
    """``(n_nodes, n_edges, network_seed, task, model, c, R)`` for each case."""
    cases = []
    for i in range(n_cases):
        n = int(rng.integers(12, 65))
        m = int(rng.integers(int(1.4 * n), int(2.2 * n) + 1))  # delaunay64 has 2.2 edges per node
        ms, mt = int(rng.integers(2, 6)), int(rng.integers(1, 4))  # two sources at least: something to learn
        c = float(2.2e-6 * 10 ** rng.uniform(0, 3))
        R = float(10 ** rng.uniform(-1, 1))
        net_seed, task_seed = (int(s) for s in rng.integers(0, 2**31, 2))
        cases.append((n, m, net_seed, f"random:{ms},{mt},{task_seed}", ("per_edge", "global")[i % 2], c, R))
    return cases


CASES = _draw_cases(np.random.default_rng(20260515), N_CASES)


def _network(n, m, seed):
    """``delaunay(n, m, seed)``, or with fewer edges where that triangulation cannot be thinned to ``m``."""
    while True:
        try:
            return delaunay(n, m, seed)
        except NetworkError:
            if m <= n:
                raise
            m -= 1


def _describe(case):
    n, m, seed, task, model, c, R = case
    return f"delaunay({n}, {m}, {seed}) {task} {model} c={c:.3g} F R={R:.3g}"


@pytest.mark.slow
def test_random_networks_agree_with_exact_engine(capsys):
    results = []
    for case in CASES:
        n, m, seed, task, model, c, R = case
        hw = Hardware.from_R(R, capacitance=c, capacitance_model=model)
        ds = train(_network(n, m, seed), task, hw, steps=STEPS, backend="exact")
        assert np.ptp(ds["position"].values, axis=0).max() > 2, _describe(case)  # the pots did move
        res = replay_run(ds, engines=("exact", "ngspice"))
        # the replay's exact engine reproduces the run itself: same circuit, same clamps
        np.testing.assert_allclose(res.v_free[0], ds["v_free"].values, atol=1e-12)
        results.append((res.max_error, int(res.error.argmax()), case))
        print(f"{_describe(case)}: max |dv| = {res.max_error:.2e} V at step {results[-1][1]}", flush=True)
    err, step, case = max(results, key=lambda r: r[0])
    with capsys.disabled():
        print(f"\nngspice against exact on {len(results)} random networks: worst {err:.2e} V at step {step} "
              f"of {_describe(case)}")
    failed = [f"{_describe(c)}: {e:.2e} V" for e, _, c in results if not e < TOL]
    assert not failed, f"{len(failed)} of {len(results)} cases above {TOL} V:\n" + "\n".join(failed)
