"""Experiments built on runs: parameter sweeps, the paper's figures, the demo."""
