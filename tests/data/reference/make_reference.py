"""Reference runs, kept as regression data for refactors.

The exact-engine files were made by the code before the structure change (commit 385523c,
``spicelearn.cosim.train``); ``tests/test_reference.py`` checks that today's code reproduces
them bit for bit on the same numpy, scipy and BLAS kernel (``reference_blas``; to 1e-12 V on another: files
made before that attribute, on another processor, are checked to 1e-12 V). The ngspice files of that
commit are in ``before_issue11/``: the structure change (issue 10) reproduced them within 1e-9 V
(this test passed on them until the next change); the ngspice tolerances derived from the circuit (issue 11) then changed
ngspice's results by up to 4e-6 V, so the ngspice files here were made again after that change
(``python make_reference.py COMMIT ngspice``) and the test checks them within 1e-7 V (NGSPICE_TOL in
tests/test_reference.py: the starting equilibrium's last bits differ between BLAS kernels), and the old
ones within the engine's promise of 1e-5 V. The two noiseless lab16 ngspice files were made again when
comparators stopped firing on exact ties decided by rounding (issue 14, ``spicelearn.model.rules.TIE``):
their uniform start has one at tick 0. The exact-engine files were unchanged by it.
"""

import os
import sys

import numpy as np
import scipy

import spicelearn as sl

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [  # network, task, capacitance model, capacitance, R, noise, backend, steps
    ("lab16", "default", "per_edge", 22e-6, 1.0, 0.01, "exact", 60),
    ("lab16", "default", "global", 2.2e-6, 10.0, 0.01, "exact", 60),
    ("delaunay64", "random:5,3,1", "per_edge", 2.2e-6, 0.3, 0.01, "exact", 40),
    ("delaunay64", "random:5,3,1", "global", 2.2e-6, 3.0, 0.0, "exact", 40),
    ("lab16", "default", "per_edge", 2.2e-6, 1.0, 0.0, "ngspice", 30),
    ("lab16", "default", "global", 22e-6, 3.0, 0.0, "ngspice", 30),
    ("delaunay64", "random:5,3,1", "per_edge", 2.2e-6, 1.0, 0.0, "ngspice", 20),
    ("delaunay64", "random:5,3,1", "global", 2.2e-6, 0.3, 0.0, "ngspice", 20),
]


def blas_kernel() -> str:
    """The BLAS library and the kernel it chose for this processor (OpenBLAS's ``architecture``): the last bits of
    a run depend on it, so a reference is reproduced bit for bit only with the same kernel."""
    from threadpoolctl import threadpool_info

    return ";".join(sorted({f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}"
                            for i in threadpool_info() if i.get("user_api") == "blas"}))


def name(case) -> str:
    net, _, model, _, R, _, backend, _ = case
    return f"{net}_{model}_R{R:g}_{backend}.nc"


if __name__ == "__main__":
    only = sys.argv[2] if len(sys.argv) > 2 else None  # a backend: make only its files
    for case in CASES:
        net, task, model, c, R, noise, backend, steps = case
        if only is not None and backend != only:
            continue
        hw = sl.Hardware.from_R(R, capacitance=c, capacitance_model=model, eta=0.5,
                                comparator=sl.Comparator(noise=noise))
        ds = sl.train(net, task, hw, steps=steps, backend=backend, seed=3)
        ds.attrs.update(reference_numpy=np.__version__, reference_scipy=scipy.__version__, reference_blas=blas_kernel())
        ds.attrs["reference_commit"] = sys.argv[1] if len(sys.argv) > 1 else ""
        sl.save_run(ds, os.path.join(HERE, name(case)))
        print("wrote", name(case), float(ds.mse[-1] / ds.mse0))
