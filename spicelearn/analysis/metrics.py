"""Metrics of a training run: tau, the frequency of the error's oscillations, the contrastive Hessian.

The contrastive function of the paper, at equilibrium and as a function of the
conductances g alone (the clamps follow the free equilibrium):

    C(g) = [P_C(g, c(g)) - P_F(g)] / eta,   c(g) = (1 - eta) v_T^F(g) + eta V_T,

with ``P = sum_j g_j dv_j^2 / 2`` at the equilibrium of each twin. Its
gradient and Hessian are analytic (envelope theorem plus the sensitivities of
the equilibria, see :func:`contrastive`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..model.network import equilibrium
from ..runfile import tau

__all__ = ["tau", "oscillation_frequency", "Contrastive", "contrastive", "hessian_top_eigenvalues", "PowerLaw",
           "power_law_fit"]


def oscillation_frequency(errors, time=None, prominence: float = 0.1) -> float:
    """Frequency of the oscillations of an error curve, from the spacing of its peaks.

    Peaks are local maxima of ``log10(errors)`` that stand out by at least
    ``prominence`` decades (``scipy.signal.find_peaks``); the frequency is
    ``(n_peaks - 1) / (t_last - t_first)``.

    Parameters
    ----------
    errors : array, shape (steps,)
        Positive errors (e.g. ``mse_eq``).
    time : array, shape (steps,), optional
        Sample times (default: the step index).
    prominence : float
        Decades a peak must rise above its surroundings.

    Returns
    -------
    float
        Cycles per unit of ``time``; NaN with fewer than two peaks (no oscillation).
    """
    from scipy.signal import find_peaks

    e = np.asarray(errors, dtype=float)
    if e.ndim != 1 or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ConfigError("`errors` must be a 1-d array of finite positive values")
    t = np.arange(e.size, dtype=float) if time is None else np.asarray(time, dtype=float)
    if t.shape != e.shape:
        raise ConfigError(f"`time` has shape {t.shape}, `errors` {e.shape}: give one time per error")
    if not prominence > 0:
        raise ConfigError(f"`prominence` must be > 0 decades, got {prominence!r}")
    peaks, _ = find_peaks(np.log10(e), prominence=prominence)
    if peaks.size < 2:
        return float("nan")
    return float((peaks.size - 1) / (t[peaks[-1]] - t[peaks[0]]))


@dataclass(frozen=True)
class Contrastive:
    """The contrastive function at one set of conductances.

    Attributes
    ----------
    value : float
        ``C(g)``.
    gradient : ndarray, shape (E,)
        ``dC/dg`` with the clamps following the free equilibrium.
    rule_gradient : ndarray, shape (E,)
        ``dC/dg`` at fixed clamps, ``(dv_C^2 - dv_F^2) / (2 eta)``: minus the
        coupled-learning rate (``gamma_l = 1``).
    hessian : ndarray, shape (E, E) or None
        ``d^2 C / dg^2`` (symmetric), when asked for.
    """

    value: float
    gradient: np.ndarray
    rule_gradient: np.ndarray
    hessian: np.ndarray | None


def contrastive(network, task, g, eta: float = 1e-3, hessian: bool = True) -> Contrastive:
    """Value, gradient and Hessian of the contrastive function ``C(g)`` (module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    g : array, shape (E,)
        Conductances (> 0).
    eta : float
    hessian : bool
        Also compute the (E, E) Hessian.

    Notes
    -----
    The clamped equilibrium differs from the free one by ``eta`` times the
    harmonic extension of the target error ``d = V_T - v_T^F``, whose edge
    drops are ``K d`` (``K = d dv_C / dc``, shape (E, M_T)). Because the free
    currents vanish on every node but the sources, this gives exactly

        C = (eta / 2) d^T S d,   S = K^T diag(g) K   (Schur complement at the targets),

    free of the cancellation in ``P_C - P_F``. With ``A = L_FF^-1``,
    ``M_F = B_F A B_F^T``, ``M_C`` alike on the clamped twin's floating nodes,
    ``J = d v_T^F / dg = -(A B_F^T)_T diag(dv_F)``, ``dS/dg_k = K_k K_k^T``,
    ``d(K d)/dg = -M_C diag(K d)`` and ``p = B_F A (S d on the targets)``:

        dC/dg = (eta / 2) [(K d)^2 - 2 J^T S d]
        d2C/dg2 = eta [-diag(Kd) M_C diag(Kd) - diag(Kd) K J - (diag(Kd) K J)^T
                       + J^T S J - M_F o (dv_F p^T + p dv_F^T)].
    """
    from ..continuous.ode import OdeModel

    m = OdeModel(network, task, eta=eta)
    eta = m.eta
    g = m.check_g(g)
    v_free = equilibrium(network, g, m.free_nodes, task.driven_voltages())  # one vector: one dense solve
    dvF = np.asarray(network.incidence, dtype=float) @ v_free
    d = m.V_T - v_free[task.target_index]
    BgF, BgC = m.B_F.T * g, m.B_C.T * g
    AB = np.linalg.solve(BgF @ m.B_F, m.B_F.T)  # A B_F^T, (nF, E)
    X = np.linalg.solve(BgC @ m.B_C, m.B_C.T)  # L_CC^-1 B_C^T, (nC, E)
    K = m.B_T - X.T @ (BgC @ m.B_T)  # (E, M_T)
    S = (K.T * g) @ K
    Kd, Sd = K @ d, S @ d
    J = -AB[m.tpos] * dvF  # (M_T, E)
    value = 0.5 * eta * float(d @ Sd)
    grad = 0.5 * eta * (Kd * Kd - 2.0 * (J.T @ Sd))
    rule = Kd * (dvF + 0.5 * eta * Kd)  # (dv_C^2 - dv_F^2) / (2 eta), dv_C = dv_F + eta K d
    H = None
    if hessian:
        MF, MC = m.B_F @ AB, m.B_C @ X
        KdKJ = Kd[:, None] * (K @ J)
        p = AB.T[:, m.tpos] @ Sd
        H = eta * (-Kd[:, None] * MC * Kd - KdKJ - KdKJ.T + J.T @ S @ J
                   - MF * (np.outer(dvF, p) + np.outer(p, dvF)))
        H = 0.5 * (H + H.T)  # symmetric analytically; remove rounding
    return Contrastive(value, grad, rule, H)


def hessian_top_eigenvalues(network, task, g, eta: float = 1e-3, k: int = 3) -> np.ndarray:
    """The ``k`` largest eigenvalues of ``d^2 C / dg^2``, descending, shape (k,)."""
    if int(k) != k or k < 1:
        raise ConfigError(f"`k` must be an integer >= 1, got {k!r}")
    H = contrastive(network, task, g, eta).hessian
    return np.linalg.eigvalsh(H)[::-1][:int(k)]


@dataclass(frozen=True)
class PowerLaw:
    """``y = prefactor * x ** exponent`` fitted in log-log; ``stderr`` of the exponent; ``n`` points."""

    exponent: float
    stderr: float
    prefactor: float
    n: int

    def __call__(self, x):
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    def __str__(self) -> str:
        return f"{self.exponent:.3f} +/- {self.stderr:.3f} ({self.n} points)"


def power_law_fit(x, y) -> PowerLaw:
    """Least-squares fit of ``log y = log a + b log x`` over the finite positive points.

    The standard error of ``b`` comes from the residuals (needs >= 3 points;
    with exactly 2 it is NaN).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        raise ConfigError(f"a power-law fit needs >= 2 finite positive points, got {int(ok.sum())}")
    lx, ly = np.log(x[ok]), np.log(y[ok])
    A = np.column_stack([np.ones_like(lx), lx])
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    n = int(ok.sum())
    if n > 2:
        resid = ly - A @ coef
        cov = np.linalg.inv(A.T @ A) * (resid @ resid) / (n - 2)
        err = float(np.sqrt(cov[1, 1]))
    else:
        err = float("nan")
    return PowerLaw(float(coef[1]), err, float(np.exp(coef[0])), n)
