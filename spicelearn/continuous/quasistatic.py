"""The quasistatic limit R -> 0 of the ``ode`` engine: learning on equilibrium states only.

The voltages of both twins are their equilibria at the current conductances
(the clamps nudged from the free equilibrium), so only the conductances move:

    dg/dt = gamma_l / (2 eta) (dv_F*^2 - dv_C*^2) = -gamma_l dC/dg |_clamps fixed,

with the same floor as the ``ode`` engine. Time is in training steps.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..blas import limit_for
from ..checks import check_record_memory, check_steps, record_bytes
from ..model.rules import continuous_rule
from ..model.task import bind
from ..runfile import make_dataset
from .ode import OdeModel, OdeState, check_continuous, integrate_floored, run_record

__all__ = ["QuasistaticModel", "train_quasistatic"]


class QuasistaticModel:
    """Coupled learning on equilibrium states (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    eta : float
    g_floor : float
    """

    def __init__(self, network, task, eta: float = 1e-3, g_floor: float = 1e-6):
        self.ode = OdeModel(network, task, eta=eta, capacitance_model="global", g_floor=g_floor)
        self.task, self.eta, self.g_floor = task, self.ode.eta, self.ode.g_floor
        self.equilibrium_free = self.ode.equilibrium_free

    def rate(self, g, gamma_l: float = 1.0, edges=None) -> np.ndarray:
        """``dg/dt`` without the floor, shape (E,), or of the edges at the indices ``edges`` only."""
        vf, vc = self.ode.equilibrium(g)
        B = self.ode.network.incidence
        dg = continuous_rule(B @ vf, B @ vc, self.eta, gamma_l)
        return dg if edges is None else dg[edges]

    def rhs(self, t, g, gamma_l: float, frozen) -> np.ndarray:
        dg = self.rate(g, gamma_l)
        dg[frozen] = 0.0
        return dg

    def integrate(self, g0, t_eval, *, gamma_l: float = 1.0, rtol: float = 1e-8, atol: float = 1e-11,
                  method: str = "RK45") -> list[OdeState]:
        """Equilibrium states at the times ``t_eval`` (> 0), starting at ``g0`` at t = 0."""
        g0 = self.ode.init(g0).g
        sol = integrate_floored(self.rhs, g0, 0.0, t_eval, n_g=g0.size, g_floor=self.g_floor,
                                raw_rate=lambda g, edges=None: self.rate(g, gamma_l, edges), args=(float(gamma_l),),
                                method=method, rtol=rtol, atol=atol)
        self.nfev, self.n_events = sol.nfev, sol.n_events
        vf, vc = self.ode.equilibria(sol.y.T)
        return [OdeState(float(t), sol.y[:, i].copy(), vf[i], vc[i]) for i, t in enumerate(sol.t)]


def train_quasistatic(network, task, *, eta: float = 1e-3, steps: int = 3000, g0=1.0, g_floor: float = 1e-6,
                      rtol: float = 1e-8, atol: float = 1e-11, method: str = "RK45",
                      network_seed: int = 0) -> xr.Dataset:
    """Coupled learning in the quasistatic limit; same run file as :func:`~spicelearn.engines.ode.train_ode`.

    ``mse`` equals ``mse_eq`` here (the voltages are always in equilibrium);
    ``R`` is recorded as 0.
    """
    (eta, rtol, atol), steps = check_continuous(eta, rtol, atol), check_steps(steps)
    bound = bind(network, task, network_seed=network_seed)
    check_record_memory(steps, record_bytes(1, bound.network.n_nodes, bound.network.n_edges))
    model = QuasistaticModel(bound.network, bound, eta=eta, g_floor=g_floor)
    t = np.arange(1, steps + 1, dtype=float)
    with limit_for(bound.network):
        mse0 = float(bound.mse(model.equilibrium_free(model.ode.start(g0).g)))
        record = dict(run_record(model, model.integrate(g0, t, rtol=rtol, atol=atol, method=method)), mse0=mse0)
    attrs = dict(backend="quasistatic", seed=-1, capacitance_model="none (equilibrium)", R=0.0, gamma_l=1.0,
                 eta=eta, rule="continuous", g0=float(np.mean(g0)), g_floor=g_floor, rtol=rtol, atol=atol,
                 method=method)
    return make_dataset(bound, None, record=record, time=t, time_units="training steps", attrs=attrs)
