"""Train the lab board stand-in at three learning rates and plot the errors.

    .venv/bin/python examples/train_lab16.py
"""

import os

import spicelearn as sl
from spicelearn.analysis.plotting import plot_runs

runs = []
for R in (0.1, 1.0, 10.0):
    hw = sl.Hardware.from_R(R, capacitance=22e-6, eta=0.5, comparator=sl.Comparator(noise=0.01))
    ds = sl.train("lab16", "default", hw, steps=3000, seed=1, progress=True)
    print(sl.summary(ds), end="\n\n")
    runs.append(ds)
os.makedirs("out", exist_ok=True)
plot_runs(runs, "out/example_lab16.png", variables=("mse", "mse_eq"))
print("wrote out/example_lab16.png")
