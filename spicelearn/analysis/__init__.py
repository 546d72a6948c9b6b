"""Analysis of runs: metrics (tau, oscillation frequency, the contrastive Hessian, power laws) and plots."""
