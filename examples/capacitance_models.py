"""Per-edge capacitors (the lab board) against the paper's global capacitance, same task and R.

    .venv/bin/python examples/capacitance_models.py
"""

import numpy as np

import spicelearn as sl

for model in ("per_edge", "global"):
    hw = sl.Hardware.from_R(1.0, capacitance=22e-6, capacitance_model=model)
    ds = sl.train("delaunay64", "random:5,3,0", hw, steps=3000)
    tail = np.median(ds["mse_eq"].values[-500:]) / float(ds["mse0"])
    tau = sl.tau(ds["mse"].values, float(ds["mse0"]))
    print(f"{model:9s} median mse_eq / mse0 over the last 500 steps: {tail:.2e}; tau (mse) = {tau}")
