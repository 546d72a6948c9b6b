"""The ``ode`` engine: the paper's in-silico model, continuous coupled learning (paper Eq. 3).

Twin networks share the conductances ``g`` (shape (E,)). The free twin's
floating nodes F (every node but the sources) and the clamped twin's floating
nodes C (every node but sources and targets) relax with rate ``gamma_p``; the
clamped targets follow the free targets continuously,
``v_T^C(t) = (1 - eta) v_T^F(t) + eta V_T``; and

    dg/dt = gamma_l / (2 eta) (dv_F^2 - dv_C^2),   g kept >= g_floor.

Capacitance models, in units where the mean capacitance is 1:

* ``global`` (the paper's): one unit capacitor from every node to ground,
  ``dv/dt = -gamma_p L_g v`` on the floating nodes;
* ``per_edge`` (the lab board): a capacitor in parallel with every edge,
  ``L_c dv/dt = -gamma_p L_g v``; there the moving clamps push charge into the
  clamped twin's floating nodes through the target capacitors.

Time is in training steps (``gamma_l = 1``, ``gamma_p = 1 / R``). The run
starts from both twins in equilibrium at ``g = g0`` (the paper's relaxation
with ``gamma_l = 0``, done exactly).

The state ``x = (g, u, w)`` (free floating voltages u, clamped floating
voltages w) obeys a stiff ODE at small R (``gamma_p |L_g| >> gamma_l``).
With global capacitance the default state is ``x = (g, u, d)`` instead,
``d = (w - u_C) / eta`` (:class:`NudgeOdeModel`, ``formulation="nudge"``): the
same equations after a change of variables, in which the learning signal
``dv_F^2 - dv_C^2`` no longer cancels two order-1 squares, so the
integrator's tolerance applies to the signal itself (``rtol = 1e-7`` there is
more accurate than ``1e-8`` on the twins' voltages, see
``tests/test_ode_fast.py`` and ``benchmarks/bench_fig2.py``). ``formulation="twins"``
keeps the twins' voltages (the only choice for ``per_edge``).

It is integrated with scipy's ``LSODA`` (which switches between Adams and
BDF) and a dense analytic Jacobian where the voltages are stiff, RK45 above
(``AUTO_STIFF_BELOW_R``). Conductances that reach the floor are held there
through terminal events (:func:`integrate_floored`), so each integrated
segment is smooth; a segment after an event starts with the step size the
last one ended with. The equilibrium error ``mse_eq`` of the run file is
solved for all steps at once (:func:`free_equilibria`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import sparse

from ..blas import limit_for
from ..checks import check_eta, check_R, check_record_memory, check_steps, finite, positive, record_bytes
from ..errors import ConfigError, NetworkError, SpicelearnError, TaskError
from ..model.equilibria import Equilibria
from ..model.hardware import CAPACITANCE_MODELS
from ..model.network import CompiledNetwork
from ..model.rules import continuous_rule
from ..model.task import BoundTask, bind, nudge
from ..runfile import make_dataset

__all__ = ["OdeModel", "NudgeOdeModel", "OdeState", "train_ode", "integrate_floored", "run_record", "record_arrays",
           "free_equilibria", "DEFAULTS", "FORMULATIONS", "TOLERANCES"]

#: Defaults of the paper's model (DESIGN.md section 3).
DEFAULTS = dict(R=1.0, eta=1e-3, steps=3000, capacitance_model="global", g0=1.0, g_floor=1e-6,
                rtol=None, atol=None, method="auto", formulation="auto")

#: With ``method="auto"``: below this R the voltages are stiff against learning (LSODA with the
#: analytic Jacobian); above it the system is not stiff and RK45 restarts cheaply at floor events.
#: Per formulation: in ``nudge`` variables LSODA stays cheaper than RK45 (limited by stability there)
#: up to R ~ 20 (``benchmarks/bench_fig2.py``).
AUTO_STIFF_BELOW_R = {"twins": 3.0, "nudge": 15.0}


@dataclass(frozen=True, eq=False)
class OdeState:
    """State of the twins.

    Attributes
    ----------
    t : float
        Time (training steps when ``gamma_l = 1``).
    g : ndarray, shape (E,)
        Conductances (dimensionless; 1 at the start).
    v_free, v_clamped : ndarray, shape (N,)
        Node voltages in compiled node order.
    """

    t: float
    g: np.ndarray
    v_free: np.ndarray
    v_clamped: np.ndarray


class OdeModel:
    """The coupled ODE of both twins and the conductances (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    eta : float
        Nudge in (0, 1].
    capacitance_model : {"global", "per_edge"}
    capacitance : array, shape (E,), optional
        Relative per-edge capacitances (``per_edge`` only); scaled to mean 1.
        Default: the network's ``capacitance`` attributes, else all 1.
    g_floor : float
        Conductances never go below this value.
    """

    def __init__(self, network: CompiledNetwork, task: BoundTask, eta: float = 1e-3,
                 capacitance_model: str = "global", capacitance=None, g_floor: float = 1e-6):
        if capacitance_model not in CAPACITANCE_MODELS:
            raise ConfigError(f"`capacitance_model` must be one of {CAPACITANCE_MODELS}, got {capacitance_model!r}")
        self.network, self.task = network, task
        self.eta = check_eta(eta)
        self.g_floor = finite("g_floor", g_floor)
        if self.g_floor < 0:
            raise ConfigError(f"`g_floor` must be >= 0, got {g_floor!r}")
        self.capacitance_model = capacitance_model
        N, E = network.n_nodes, network.n_edges
        src, tgt = task.source_index, task.target_index
        self.free_nodes, self.clamped_nodes = task.free_floating, task.clamped_floating  # F, C
        if self.clamped_nodes.size == 0:
            raise TaskError(f"task drives or targets all {N} nodes of {network.name!r}; "
                            "leave at least one node floating")
        pos_in_F = np.full(N, -1)
        pos_in_F[self.free_nodes] = np.arange(self.free_nodes.size)
        self.tpos = pos_in_F[tgt]  # targets inside u
        B = np.asarray(network.incidence, dtype=float)
        self.B_F, self.B_C, self.B_T = B[:, self.free_nodes], B[:, self.clamped_nodes], B[:, tgt]
        self.b_S = B[:, src] @ task.source_voltage  # (E,)
        self.V_T = np.asarray(task.target_voltage, dtype=float)
        self.nF, self.nC, self.E = self.free_nodes.size, self.clamped_nodes.size, E
        self._v_template = task.driven_voltages()
        # capacitance: inverse mass matrices of both twins
        if capacitance_model == "global":
            if capacitance is not None:
                raise ConfigError("`capacitance` per edge needs `capacitance_model`='per_edge'")
            self.Minv_F = self.Minv_C = self.P = None
        else:
            c = network.capacitance if capacitance is None else capacitance
            c = np.ones(E) if c is None else np.asarray(c, dtype=float)
            if c.shape != (E,) or not np.all(np.isfinite(c) & (c > 0)):
                raise ConfigError(f"`capacitance` must be {E} positive values, got shape {c.shape}")
            Lc = network.laplacian(c / c.mean())
            try:
                self.Minv_F = np.linalg.inv(np.linalg.cholesky(Lc[np.ix_(self.free_nodes, self.free_nodes)]))
                self.Minv_F = self.Minv_F.T @ self.Minv_F
                Lcc = Lc[np.ix_(self.clamped_nodes, self.clamped_nodes)]
                self.Minv_C = np.linalg.inv(Lcc)
                np.linalg.cholesky(Lcc)
            except np.linalg.LinAlgError:
                raise NetworkError("the capacitance matrix of the floating nodes is singular: some floating "
                                   "node has no capacitive path to a driven node") from None
            self.P = self.Minv_C @ Lc[np.ix_(self.clamped_nodes, tgt)]  # (nC, M_T)

    @functools.cached_property
    def free_equilibria(self) -> Equilibria:
        """The free twin's equilibria at many conductance vectors (the symbolic analysis, done once)."""
        return Equilibria(self.network, self.free_nodes)

    @functools.cached_property
    def clamped_equilibria(self) -> Equilibria:
        """The clamped twin's equilibria at many conductance vectors."""
        return Equilibria(self.network, self.clamped_nodes)

    def equilibria(self, G) -> tuple[np.ndarray, np.ndarray]:
        """Free and clamped equilibria at conductances ``G`` (T, E), each shape (T, N)."""
        v_free = self.free_equilibria(G, self._v_template)
        v_driven = np.repeat(self._v_template[None, :], v_free.shape[0], axis=0)
        v_driven[:, self.task.target_index] = self.clamp(v_free)
        return v_free, self.clamped_equilibria(G, v_driven)

    # -- voltages ------------------------------------------------------------
    def clamp(self, v_free: np.ndarray) -> np.ndarray:
        """Clamp voltages: the supervisor's nudge ``v_T^F + eta (V_T - v_T^F)``, shape (M_T,)."""
        return self.task.nudge(v_free, self.eta)

    def equilibrium(self, g) -> tuple[np.ndarray, np.ndarray]:
        """Free and clamped equilibria at conductances ``g``, each shape (N,)."""
        v_free, v_clamped = self.equilibria(np.asarray(g, dtype=float)[None, :])
        return v_free[0], v_clamped[0]

    def equilibrium_free(self, g) -> np.ndarray:
        """Free equilibrium at ``g``, shape (N,)."""
        return self.free_equilibria(np.asarray(g, dtype=float)[None, :], self._v_template)[0]

    def _to_v(self, u, w, c=None) -> np.ndarray:
        v = self._v_template.copy()
        if u is not None:
            v[self.free_nodes] = u
        if w is not None:
            v[self.clamped_nodes] = w
            v[self.task.target_index] = c
        return v

    # -- state ----------------------------------------------------------------
    def init(self, g) -> OdeState:
        """Both twins in equilibrium at ``g`` (the relaxation with ``gamma_l = 0``, to its end)."""
        g = self.check_g(g)
        vf, vc = self.equilibrium(g)
        return OdeState(0.0, g, vf, vc)

    def state(self, g, v_free, v_clamped, t: float = 0.0) -> OdeState:
        """A state with given voltages; sources and clamped targets are overwritten."""
        g = self.check_g(g)
        vf = np.array(v_free, dtype=float)
        vc = np.array(v_clamped, dtype=float)
        vf[self.task.source_index] = self.task.source_voltage
        vc[self.task.source_index] = self.task.source_voltage
        vc[self.task.target_index] = self.clamp(vf)
        return OdeState(float(t), g, vf, vc)

    def check_g(self, g) -> np.ndarray:
        """Conductances broadcast to shape (E,), checked finite and > 0."""
        a = np.asarray(g)
        if a.dtype.kind not in "iuf" or a.shape not in ((), (self.E,)):
            raise ConfigError(f"conductances `g` must be one number or one per edge, shape ({self.E},), got dtype "
                              f"{a.dtype} and shape {a.shape}")
        g = np.broadcast_to(a.astype(float), (self.E,)).copy()
        if not np.all(np.isfinite(g)) or np.any(g <= 0) or np.any(g > MOST_G):
            raise ConfigError(f"conductances `g` must be > 0 and <= {MOST_G:g} (the model's units: g0 = 1), got range "
                              f"[{g.min()}, {g.max()}]")
        return g

    def start(self, g0) -> OdeState:
        """:meth:`init` at the user's start ``g0``, which must be at or above the floor (the rule keeps
        ``g >= g_floor``: a start below it would be lifted unseen)."""
        g = self.check_g(g0)
        if np.any(g < self.g_floor):
            raise ConfigError(f"`g0` must be >= `g_floor`={self.g_floor:g}, got a least {g.min():g}")
        return self.init(g)

    def pack(self, state: OdeState) -> np.ndarray:
        return np.concatenate([state.g, state.v_free[self.free_nodes], state.v_clamped[self.clamped_nodes]])

    def unpack(self, x: np.ndarray, t: float = 0.0) -> OdeState:
        g, u, w = np.split(np.asarray(x), [self.E, self.E + self.nF])
        vf = self._to_v(u, None)
        return OdeState(float(t), g.copy(), vf, self._to_v(None, w, self.clamp(vf)))

    # -- equations ------------------------------------------------------------
    def _parts(self, x):
        E, nF = self.E, self.nF
        g, u, w = x[:E], x[E:E + nF], x[E + nF:]
        c = nudge(u[self.tpos], self.V_T, self.eta)
        dvF = self.B_F @ u + self.b_S
        dvC = self.B_C @ w + self.B_T @ c + self.b_S
        return g, dvF, dvC

    def _raw_dg(self, x, gamma_l, edges=None):
        """``dg/dt`` without the floor, shape (E,), or of the edges at the indices ``edges`` only."""
        _, dvF, dvC = self._parts(x)
        dg = continuous_rule(dvF, dvC, self.eta, gamma_l)
        return dg if edges is None else dg[edges]

    def rhs(self, t, x, gamma_l: float, gamma_p: float, frozen=None) -> np.ndarray:
        """``dx/dt`` of ``x = (g, u, w)``, shape (E + nF + nC,); edges in ``frozen`` (E,) hold their g."""
        g, dvF, dvC = self._parts(x)
        du = -gamma_p * (self.B_F.T @ (g * dvF))
        dw = -gamma_p * (self.B_C.T @ (g * dvC))
        if self.Minv_F is not None:
            du = self.Minv_F @ du
            dw = self.Minv_C @ dw - (1.0 - self.eta) * (self.P @ du[self.tpos])
        dg = continuous_rule(dvF, dvC, self.eta, gamma_l)
        if frozen is not None:
            dg[frozen] = 0.0
        return np.concatenate([dg, du, dw])

    def jac(self, t, x, gamma_l: float, gamma_p: float, frozen=None) -> np.ndarray:
        """Analytic Jacobian of :meth:`rhs`, dense, shape (n, n)."""
        g, dvF, dvC = self._parts(x)
        E, nF, nC, eta = self.E, self.nF, self.nC, self.eta
        n = E + nF + nC
        J = np.zeros((n, n))
        sg, su, sw = slice(0, E), slice(E, E + nF), slice(E + nF, n)
        dC_du = np.zeros((E, nF))  # d dvC / du (through the clamps)
        dC_du[:, self.tpos] = (1.0 - eta) * self.B_T
        k = gamma_l / eta
        J[sg, su] = k * (dvF[:, None] * self.B_F - dvC[:, None] * dC_du)
        J[sg, sw] = -k * dvC[:, None] * self.B_C
        if frozen is not None:
            J[np.flatnonzero(frozen)] = 0.0
        BgF = self.B_F.T * g
        BgC = self.B_C.T * g
        Jug = -gamma_p * self.B_F.T * dvF
        Juu = -gamma_p * BgF @ self.B_F
        Jwg = -gamma_p * self.B_C.T * dvC
        Jwu = -gamma_p * BgC @ dC_du
        Jww = -gamma_p * BgC @ self.B_C
        if self.Minv_F is not None:
            Jug, Juu = self.Minv_F @ Jug, self.Minv_F @ Juu
            Jwg, Jwu, Jww = self.Minv_C @ Jwg, self.Minv_C @ Jwu, self.Minv_C @ Jww
            PT = (1.0 - eta) * self.P
            Jwg = Jwg - PT @ Jug[self.tpos]
            Jwu = Jwu - PT @ Juu[self.tpos]
        J[su, sg], J[su, su] = Jug, Juu
        J[sw, sg], J[sw, su], J[sw, sw] = Jwg, Jwu, Jww
        return J

    def integrate(self, state: OdeState, t_eval, *, gamma_l: float = 1.0, gamma_p: float = 1.0,
                  rtol: float = 1e-8, atol: float = 1e-11, method: str = "LSODA") -> list[OdeState]:
        """Integrate from ``state`` and return the states at the times ``t_eval`` (increasing, > state.t).

        ``gamma_l = 0`` freezes the conductances: plain RC relaxation.
        ``method`` is any of scipy's ``solve_ivp`` methods; the implicit ones
        get the analytic Jacobian.
        """
        sol = self.solve(state, t_eval, gamma_l=gamma_l, gamma_p=gamma_p, rtol=rtol, atol=atol, method=method)
        return [self.unpack(sol.y[:, i], sol.t[i]) for i in range(sol.t.size)]

    def solve(self, state: OdeState, t_eval, *, gamma_l: float = 1.0, gamma_p: float = 1.0, rtol: float = 1e-8,
              atol: float = 1e-11, method: str = "LSODA") -> "FlooredSolution":
        """As :meth:`integrate`, but the packed states: ``y`` (n, len(t_eval)) (see :meth:`voltages`)."""
        gamma_l, gamma_p = float(gamma_l), float(gamma_p)
        sol = integrate_floored(self.rhs, self.pack(state), state.t, t_eval, n_g=self.E, g_floor=self.g_floor,
                                raw_rate=lambda x, edges=None: self._raw_dg(x, gamma_l, edges),
                                args=(gamma_l, gamma_p),
                                jac=self.jac, method=method, rtol=rtol, atol=atol, learning=gamma_l > 0)
        self.nfev, self.n_events = sol.nfev, sol.n_events
        return sol

    def voltages(self, X: np.ndarray):
        """Conductances (T, E) and node voltages of both twins (T, N) from packed states ``X`` (n, T)."""
        E, nF = self.E, self.nF
        vf = np.repeat(self._v_template[None, :], X.shape[1], axis=0)
        vf[:, self.free_nodes] = X[E:E + nF].T
        vc = vf.copy()
        vc[:, self.clamped_nodes] = X[E + nF:].T
        vc[:, self.task.target_index] = self.clamp(vf)
        return np.array(X[:E].T), vf, vc


class NudgeOdeModel(OdeModel):
    """The ``global`` model of :class:`OdeModel` in the variables ``x = (g, u, d)``, ``d = (w - u_C) / eta``.

    The clamped twin differs from the free one by order ``eta``: its floating
    voltages are ``w = u_C + eta d`` and its drops ``dv_C = dv_F + eta e`` with

        e = B_C d + B_T (V_T - u_T),

    so the rule reads ``dg/dt = -gamma_l (dv_F + eta e / 2) e``, the same
    ``gamma_l / (2 eta) (dv_F^2 - dv_C^2)`` without its cancellation (two
    order-1 squares whose difference is of order ``eta``), and ``d`` relaxes as

        dd/dt = -gamma_p B_C^T (g e)

    (the clamps follow ``u_T`` continuously, which is what ``-B_T u_T`` in
    ``e`` says). Same physics as :class:`OdeModel` (a change of variables); the
    integrator's error control now sees the nudge signal ``d`` at its own scale,
    so a tolerance on it means what it says.

    Parameters
    ----------
    network, task, eta, g_floor
        As :class:`OdeModel` (``capacitance_model`` is ``"global"``).
    """

    def __init__(self, network: CompiledNetwork, task: BoundTask, eta: float = 1e-3, g_floor: float = 1e-6):
        super().__init__(network, task, eta=eta, capacitance_model="global", g_floor=g_floor)
        E, nF, nC = self.E, self.nF, self.nC
        Bt_u = np.zeros((E, nF))
        Bt_u[:, self.tpos] = -self.B_T
        #: (dv_F, e) = M @ (u, d) + c0, shapes (2E, nF + nC) and (2E,)
        self.M = np.block([[self.B_F, np.zeros((E, nC))], [Bt_u, self.B_C]])
        self.c0 = np.concatenate([self.b_S, self.B_T @ self.V_T])
        #: currents into the floating nodes, (du, dd) = -gamma_p MT @ (g dv_F, g e), shape (nF + nC, 2E)
        self.MT = np.ascontiguousarray(np.block([[self.B_F.T, np.zeros((nF, E))], [np.zeros((nC, E)), self.B_C.T]]))
        self._c_pos = np.searchsorted(self.free_nodes, self.clamped_nodes)  # C inside u
        # M and MT by their nonzeros (two per row of M): products as a gather and a bincount, a few us each
        # and out of the cache's way (the dense pair is half a megabyte)
        self._M_nz, self._MT_nz = _nonzeros(self.M), _nonzeros(self.MT)
        #: the Jacobian as a sparse linear map of six edge vectors (see jac)
        self._jac_map = self._jacobian_map()

    def pack(self, state: OdeState) -> np.ndarray:
        u = state.v_free[self.free_nodes]
        d = (state.v_clamped[self.clamped_nodes] - u[self._c_pos]) / self.eta
        return np.concatenate([state.g, u, d])

    def unpack(self, x: np.ndarray, t: float = 0.0) -> OdeState:
        g, vf, vc = self.voltages(np.asarray(x)[:, None])
        return OdeState(float(t), g[0], vf[0], vc[0])

    def voltages(self, X: np.ndarray):
        """Conductances (T, E) and node voltages of both twins (T, N) from states ``X`` of shape (n, T)."""
        E, nF = self.E, self.nF
        g, u, d = X[:E].T, X[E:E + nF].T, X[E + nF:].T
        vf = np.repeat(self._v_template[None, :], X.shape[1], axis=0)
        vf[:, self.free_nodes] = u
        vc = vf.copy()
        vc[:, self.clamped_nodes] += self.eta * d
        vc[:, self.task.target_index] = self.clamp(vf)
        return np.array(g), vf, vc

    def _drops(self, x):
        y = _product(self._M_nz, x[self.E:])
        y += self.c0
        return y[:self.E], y[self.E:]  # dv_F, e

    def _raw_dg(self, x, gamma_l, edges=None):
        dvF, e = self._drops(x)  # a gather and a bincount: all edges cost little more than a few
        if edges is not None:
            dvF, e = dvF[edges], e[edges]
        return (-gamma_l) * (dvF + (0.5 * self.eta) * e) * e

    def rhs(self, t, x, gamma_l: float, gamma_p: float, frozen=None) -> np.ndarray:
        """``dx/dt`` of ``x = (g, u, d)``, shape (E + nF + nC,); edges in ``frozen`` (E,) hold their g."""
        E = self.E
        y = _product(self._M_nz, x[E:])
        y += self.c0
        dvF, e = y[:E], y[E:]
        out = np.empty(x.size)
        out[:E] = (-gamma_l) * (dvF + (0.5 * self.eta) * e) * e
        if frozen is not None:
            out[:E][frozen] = 0.0
        g = x[:E]
        y[:E] *= g
        y[E:] *= g
        out[E:] = _product(self._MT_nz, y)
        out[E:] *= -gamma_p
        return out

    def _jacobian_map(self):
        """The Jacobian's entries as a sparse map ``J.ravel() = K @ s`` of ``s`` (6E,) (see :meth:`jac`)."""
        E, M, MT = self.E, self.M, self.MT
        n = E + M.shape[1]
        flat, src, val = [], [], []

        def add(rows, cols, which, vals):
            flat.append(rows * n + cols)
            src.append(which)
            val.append(vals)

        for half in (0, 1):  # d(dg)/d(u, d): rows of M scaled by s_0 = -gl e and s_1 = -gl (dvF + eta e)
            r, c = np.nonzero(M[half * E:(half + 1) * E])
            add(r, E + c, half * E + r, M[half * E + r, c])
        for half in (0, 1):  # d(du, dd)/dg: columns of MT scaled by s_2 = -gp dvF and s_3 = -gp e
            i, r = np.nonzero(MT[:, half * E:(half + 1) * E])
            add(E + i, r, (2 + half) * E + r, MT[i, half * E + r])
        # d(du, dd)/d(u, d) = -gp MT diag(g, g) M: the outer products of edge k, scaled by s_4.. = -gp (g, g)
        for k in range(2 * E):
            i, j = np.nonzero(MT[:, k])[0], np.nonzero(M[k])[0]
            i, j = np.repeat(i, j.size), np.tile(j, i.size)
            add(E + i, E + j, np.full(i.size, 4 * E + k), MT[i, k] * M[k, j])
        return sparse.csc_matrix((np.concatenate(val), (np.concatenate(flat), np.concatenate(src))),
                                 shape=(n * n, 6 * E))  # by columns: a product scatters into zeros

    def jac(self, t, x, gamma_l: float, gamma_p: float, frozen=None) -> np.ndarray:
        """Analytic Jacobian of :meth:`rhs`, dense, shape (n, n)."""
        E = self.E
        dvF, e = self._drops(x)
        g = x[:E]
        s = np.concatenate([e, dvF + self.eta * e, dvF, e, g, g])
        s[:2 * E] *= -gamma_l
        s[2 * E:] *= -gamma_p
        if frozen is not None:  # held edges: rows of dg zero
            s[:E][frozen] = 0.0
            s[E:2 * E][frozen] = 0.0
        return (self._jac_map @ s).reshape(x.size, x.size)


def _nonzeros(A: np.ndarray) -> tuple:
    """``(rows, columns, values, n_rows)`` of the nonzeros of a dense matrix (see :func:`_product`)."""
    r, c = np.nonzero(A)
    return r, c, A[r, c], A.shape[0]


def _product(nz: tuple, x: np.ndarray) -> np.ndarray:
    """``A @ x`` from the nonzeros ``nz`` of ``A`` (:func:`_nonzeros`)."""
    r, c, v, n = nz
    return np.bincount(r, weights=v * x[c], minlength=n)


def free_equilibria(model: OdeModel, G, chunk: int = 512) -> np.ndarray:
    """Free equilibria at many conductance vectors at once: ``G`` (T, E) -> node voltages (T, N).

    The same solve as :meth:`OdeModel.equilibrium_free`, batched through the model's
    :class:`~spicelearn.model.equilibria.Equilibria` (``chunk`` vectors factorised at once).
    """
    return model.free_equilibria(G, model._v_template, chunk=chunk)


@dataclass(frozen=True)
class FlooredSolution:
    """Result of :func:`integrate_floored`: ``y`` (n, len(t)) at the times ``t``; counters."""

    t: np.ndarray
    y: np.ndarray
    nfev: int
    n_events: int


@dataclass(frozen=True)
class _Segment:
    t: np.ndarray  # output times reached, shape (k,)
    y: np.ndarray  # states there, shape (n, k)
    status: int  # 0: reached the end, 1: a terminal event, -1: failed
    t_stop: float
    y_stop: np.ndarray
    event: int  # index of the event that stopped the segment (-1 if none)
    nfev: int
    last_step: float
    message: str


_SOLVERS = None


def _segment(fun, x, t0, t_end, t_eval, *, method, rtol, atol, events, args, first_step=None, **kw) -> _Segment:
    """One smooth segment: scipy's stepper ``method`` from ``t0`` until ``t_end`` or the first terminal event.

    What :func:`scipy.integrate.solve_ivp` does with ``t_eval`` and terminal
    events (the same dense output and root finding), without its per-call set-up,
    and with a first step that may be given (a warm restart after an event).
    Each event function ``event(t, y)`` has ``direction`` (-1 or 1).
    """
    global _SOLVERS
    if _SOLVERS is None:
        from scipy.integrate import BDF, DOP853, LSODA, RK23, RK45, Radau

        _SOLVERS = {"LSODA": LSODA, "RK45": RK45, "RK23": RK23, "DOP853": DOP853, "BDF": BDF, "Radau": Radau}
    from scipy.optimize import brentq

    if method not in _SOLVERS:
        raise ConfigError(f"`method` must be one of {tuple(_SOLVERS)}, got {method!r}")
    if "jac" in kw:
        jac = kw.pop("jac")
        kw["jac"] = lambda t, y: jac(t, y, *args)
    if first_step is not None:
        kw["first_step"] = first_step
    solver = _SOLVERS[method](lambda t, y: fun(t, y, *args), t0, x, t_end, rtol=rtol, atol=atol, **kw)
    ts, ys, i_eval = [], [], 0
    g_old = [ev(t0, x) for ev in events]
    status, t_stop, y_stop, kind, message = None, t0, x, -1, ""
    while status is None:
        message = solver.step() or ""
        if solver.status == "failed":
            status, t_stop = -1, solver.t
            break
        t_old, t, y = solver.t_old, solver.t, solver.y
        sol = None
        if events:
            g_new = [ev(t, y) for ev in events]
            crossed = [i for i, ev in enumerate(events)  # a sign change in the event's direction
                       if ((g_old[i] >= 0 >= g_new[i]) if ev.direction < 0 else (g_old[i] <= 0 <= g_new[i]))]
            if crossed:
                sol = solver.dense_output()
                roots = [brentq(lambda s, ev=events[i]: ev(s, sol(s)), t_old, t, xtol=4 * np.finfo(float).eps,
                                rtol=4 * np.finfo(float).eps) for i in crossed]
                j = int(np.argmin(roots))
                kind, t = crossed[j], roots[j]
                y = sol(t)
                status = 1
            g_old = g_new
        if status is None and solver.status == "finished":
            status = 0
        i_new = int(np.searchsorted(t_eval, t, side="right"))
        if i_new > i_eval:
            sol = solver.dense_output() if sol is None else sol
            ts.append(t_eval[i_eval:i_new])
            ys.append(np.reshape(sol(t_eval[i_eval:i_new]), (x.size, -1)))
            i_eval = i_new
        t_stop, y_stop = t, y
    last = float(abs(solver.t - solver.t_old)) if solver.t_old is not None else 0.0
    y_out = np.concatenate(ys, axis=1) if ys else np.empty((x.size, 0))
    t_out = np.concatenate(ts) if ts else np.empty(0)
    return _Segment(t_out, y_out, status, float(t_stop), np.array(y_stop, dtype=float), kind, solver.nfev, last,
                    message)


def _frozen(x, n_g: int, g_floor: float, rate: np.ndarray) -> np.ndarray:
    """Edges held at the floor: at it (to rounding) and pushed further down (beyond rounding)."""
    at_floor = x[:n_g] <= g_floor * (1 + 1e-9) + 1e-300
    return at_floor & (rate < -1e-12 * max(float(np.max(np.abs(rate))), 1e-300))


def integrate_floored(fun, x0, t0: float, t_eval, *, n_g: int, g_floor: float, raw_rate, args=(), jac=None,
                      method: str = "LSODA", rtol: float = 1e-8, atol: float = 1e-11,
                      learning: bool = True, release_rate: float = 1e-7,
                      max_events: int = 100_000, warm_restart: bool = True) -> FlooredSolution:
    """Integrate ``dx/dt = fun(t, x, *args, frozen)`` whose first ``n_g`` entries are conductances kept >= ``g_floor``.

    The floor makes the system piecewise smooth. An edge that reaches the
    floor while pushed down is held there (a terminal event ends the
    segment) until its rate exceeds
    ``release_rate`` (another event); the integrator restarts at each event,
    so each segment is smooth and keeps the solver's order. The small release
    threshold stops chattering where an edge's optimum sits on the floor
    (its rate hovers around zero); it delays a release by at most the time the
    rate takes to grow from 0 to ``release_rate``. An edge counts as reaching
    the floor ``atol`` below it: a just-released edge starts exactly on the
    floor, rises at about ``release_rate``, and the solver's own error on it
    (up to ``atol``) must not send it straight back (an endless release-hit
    loop at one instant).

    Parameters
    ----------
    fun, jac : callables ``(t, x, *args, frozen)``; ``jac`` is used by implicit methods.
    raw_rate : callable ``(x, edges=None)``
        ``dg/dt`` without the floor, shape (n_g,), or of the edges at the indices ``edges`` only
        (called at every step with the held edges).
    x0 : ndarray, shape (n,)
    t0 : float
    t_eval : array, increasing, all > t0
    """
    t_eval = np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or t_eval.size == 0 or np.any(np.diff(t_eval) <= 0) or t_eval[0] <= t0:
        raise ConfigError("`t_eval` must be increasing times after the start time")
    kw = {"jac": jac} if jac is not None and method not in ("RK45", "RK23", "DOP853") else {}
    x, t, t_end = np.array(x0, dtype=float), float(t0), float(t_eval[-1])
    ys, ts, nfev, n_events, first_step = [], [], 0, 0, None
    frozen = _frozen(x, n_g, g_floor, raw_rate(x)) if learning else np.zeros(n_g, bool)
    while True:
        x[:n_g][frozen] = g_floor
        active = ~frozen

        moving, held = np.flatnonzero(active), np.flatnonzero(frozen)

        def hit(t, y, *a):  # an active edge reaches the floor (to within the solver's error)
            return float(y[moving].min() - (g_floor - atol)) if moving.size else 1.0

        def release(t, y, *a):  # a held edge is pushed up again
            return float(raw_rate(y, held).max()) - release_rate if held.size else -1.0

        hit.terminal, hit.direction = True, -1
        release.terminal, release.direction = True, 1
        with warnings.catch_warnings(record=True) as caught:  # the integrator's own notes go into a failure
            warnings.simplefilter("always")
            seg = _segment(fun, x, t, t_end, t_eval[t_eval > t], method=method, rtol=rtol, atol=atol,
                           events=(hit, release) if learning else (), args=(*args, frozen), first_step=first_step,
                           **kw)
        nfev += seg.nfev
        if seg.status < 0:
            notes = "".join(f" ({w.message})" for w in caught[:1])
            raise SpicelearnError(f"the ODE integration failed at t = {seg.t_stop:g}: {seg.message}{notes}")
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        ys.append(seg.y)
        ts.append(seg.t)
        if seg.status == 0:
            break
        n_events += 1
        if n_events > max_events:
            raise SpicelearnError(f"more than {max_events} conductances reached or left the floor "
                                  f"`g_floor`={g_floor!r} before t = {t_end}; lower the floor or `rtol`")
        if warm_restart:  # the next segment starts with the step size this one ended with
            first_step = min(seg.last_step, max(t_end - seg.t_stop, 1e-300)) if seg.last_step > 0 else None
        kind, t, x = seg.event, seg.t_stop, seg.y_stop
        # hysteresis: the edge that caused the event changes side, whatever rounding says
        frozen = frozen.copy()
        if kind == 0:
            frozen[moving[np.argmin(x[moving])]] = True
        else:
            frozen[held[np.argmax(raw_rate(x, held))]] = False
    return FlooredSolution(np.concatenate(ts), np.concatenate(ys, axis=1), nfev, n_events)


def run_record(model, states: list[OdeState]) -> dict:
    """The run file's arrays from the states at integer steps (``model`` has ``task`` and ``equilibrium_free``)."""
    g = np.array([s.g for s in states])
    vf = np.array([s.v_free for s in states])
    vc = np.array([s.v_clamped for s in states])
    return record_arrays(model, g, vf, vc)


def record_arrays(model, g, v_free, v_clamped) -> dict:
    """The run file's arrays from conductances (T, E) and voltages (T, N) of both twins; ``mse_eq`` batched.

    ``model`` is an :class:`OdeModel` or has one as ``ode`` (the quasistatic model).
    """
    ode = model if isinstance(model, OdeModel) else model.ode
    mse_eq = ode.task.mse(free_equilibria(ode, g))
    return dict(conductance=g, v_free=v_free, v_clamped=v_clamped, mse=ode.task.mse(v_free), mse_eq=mse_eq)


#: Formulations of the state: ``twins`` integrates both twins' voltages (u, w), any capacitance model;
#: ``nudge`` integrates (u, d) with d = (w - u_C) / eta (:class:`NudgeOdeModel`), global capacitance only.
FORMULATIONS = ("auto", "nudge", "twins")
#: Default (rtol, atol) of each formulation.
TOLERANCES = {"twins": (1e-8, 1e-11), "nudge": (1e-7, 1e-10)}
#: The least ``R`` and ``eta`` the continuous models integrate: the rule divides by ``eta``, the voltages relax
#: ``1 / R`` times faster than the conductances learn; below these the rates overflow the integrator (it ran
#: for ever at ``R`` = 1e-300 or ``eta`` = 5e-324), and ``R`` is far inside the quasistatic limit.
LEAST_R, LEAST_ETA = 1e-12, 1e-12
#: The largest conductance a continuous model starts from, in its units (g0 = 1): the voltages' rates scale with it.
MOST_G = 1e12


def check_continuous(eta, rtol, atol, R=None) -> tuple:
    """``(eta, rtol, atol)`` of a continuous model, checked: ``eta`` in [:data:`LEAST_ETA`, 1], tolerances finite
    and > 0, and ``R`` (where given) at least :data:`LEAST_R`."""
    eta = check_eta(eta)
    if eta < LEAST_ETA:
        raise ConfigError(f"`eta`={eta:g} is below {LEAST_ETA:g}: the continuous rule divides by eta and its rates "
                          "would overflow the integrator")
    if R is not None and check_R(R) < LEAST_R:
        raise ConfigError(f"`R`={R:g} is below {LEAST_R:g}: far inside the quasistatic limit, where "
                          "spicelearn.train_quasistatic integrates the same learning without the voltages' transients")
    return eta, positive("rtol", rtol), positive("atol", atol)


def train_ode(network, task, *, R: float = 1.0, eta: float = 1e-3, steps: int = 3000,
              capacitance_model: str = "global", g0=1.0, g_floor: float = 1e-6, rtol: float | None = None,
              atol: float | None = None, method: str = "auto", formulation: str = "auto",
              network_seed: int = 0) -> xr.Dataset:
    """Continuous coupled learning of the paper (Eq. 3), integrated in time.

    Parameters
    ----------
    network : str, path, networkx.Graph or CompiledNetwork
    task : Task, dict, str (JSON path, ``random:MS,MT,SEED``)
    R : float
        Scaled learning rate ``gamma_l / gamma_p`` (> 0); time unit = one
        training step (``gamma_l = 1``, ``gamma_p = 1 / R``).
    eta : float
        Nudge, in (0, 1].
    steps : int
        Training steps (time units) to integrate; records at t = 1 .. steps.
    capacitance_model : {"global", "per_edge"}
    g0 : float or array (E,)
        Initial conductances.
    g_floor : float
        Lower bound of the conductances.
    rtol, atol : float, optional
        Tolerances of the integrator; default ``TOLERANCES[formulation]``.
    method : str
        scipy ``solve_ivp`` method (``LSODA``, ``BDF``, ``Radau``, ``RK45``...), or ``auto``:
        LSODA below ``R = AUTO_STIFF_BELOW_R``, RK45 above.
    formulation : {"auto", "nudge", "twins"}
        State variables: ``nudge`` (:class:`NudgeOdeModel`, the default for ``global``),
        ``twins`` (:class:`OdeModel`, the voltages of both twins; the only one for ``per_edge``).
    network_seed : int

    Returns
    -------
    xarray.Dataset
        The run file of DESIGN.md section 4 with ``conductance (step, edge)``;
        ``time`` in training steps (step k is recorded at t = k + 1).
    """
    R, steps = check_R(R), check_steps(steps)
    if formulation not in FORMULATIONS:
        raise ConfigError(f"`formulation` must be one of {FORMULATIONS}, got {formulation!r}")
    if formulation == "auto":
        formulation = "nudge" if capacitance_model == "global" else "twins"
    if formulation == "nudge" and capacitance_model != "global":
        raise ConfigError(f"`formulation`='nudge' needs `capacitance_model`='global', got {capacitance_model!r}; "
                          "use 'twins'")
    eta, rtol, atol = check_continuous(eta, TOLERANCES[formulation][0] if rtol is None else rtol,
                                       TOLERANCES[formulation][1] if atol is None else atol, R)
    if method == "auto":
        method = "LSODA" if R < AUTO_STIFF_BELOW_R[formulation] else "RK45"
    bound = bind(network, task, network_seed=network_seed)
    check_record_memory(steps, record_bytes(1, bound.network.n_nodes, bound.network.n_edges))
    if formulation == "nudge":
        model = NudgeOdeModel(bound.network, bound, eta=eta, g_floor=g_floor)
    else:
        model = OdeModel(bound.network, bound, eta=eta, capacitance_model=capacitance_model, g_floor=g_floor)
    t = np.arange(1, steps + 1, dtype=float)
    with limit_for(bound.network):
        s0 = model.start(g0)
        try:
            sol = model.solve(s0, t, gamma_l=1.0, gamma_p=1.0 / R, rtol=rtol, atol=atol, method=method)
        except SpicelearnError as exc:
            hint = (f"; at `R`={R:g} the voltages relax {1 / R:.3g} times faster than the conductances learn: "
                    "that is the quasistatic limit, spicelearn.train_quasistatic" if R < 1e-4 else "")
            raise SpicelearnError(f"{exc}{hint}") from None
        record = dict(record_arrays(model, *model.voltages(sol.y)), mse0=float(bound.mse(s0.v_free)))
    attrs = dict(backend="ode", seed=-1, capacitance_model=capacitance_model, R=R, gamma_l=1.0, gamma_p=1.0 / R,
                 eta=eta, rule="continuous", g0=float(np.mean(g0)), g_floor=g_floor, rtol=rtol, atol=atol,
                 method=method, formulation=formulation)
    return make_dataset(bound, None, record=record, time=t, time_units="training steps", attrs=attrs)
