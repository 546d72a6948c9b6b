"""The ``exact`` engine: the linear RC transient between clock ticks, solved exactly.

Between ticks the resistances and driven voltages are constant, so each twin
obeys ``L_C[FF] dv_F/dt = -L_G[FF] v_F - L_G[FD] v_D`` on its floating nodes F.
With the Cholesky factor ``L_C[FF] = K K^T`` (fixed: capacitances never change)
and ``y = K^T v_F`` this becomes ``dy/dt = -A y - r`` with the symmetric
``A = W diag(g) W^T``, ``W = K^{-1} B_F^T`` precomputed once.

The free twin's floating nodes are ordered (clamped-floating C, then targets T).
Because K is lower triangular, the clamped twin is the *same* system with the
trailing target coordinates frozen: its matrix is the leading block ``A11`` and a
step of the clamp voltages leaves ``y1`` unchanged (that is exactly charge
conservation on the floating nodes). So each tick needs one symmetric eigensolve
``A = U diag(lam) U^T``:

* free twin: ``y(t) = y* + U exp(-lam t) U^T (y0 - y*)``, ``y* = -A^{-1} r``;
* clamped twin: resolvents of ``A11`` follow from those of ``A`` through the
  Schur complement of the inverse, ``(A11 + z)^-1 = R11 - R12 R22^-1 R21`` with
  ``R = (A + z)^-1 = U (lam + z)^-1 U^T`` and ``R22`` only M_T x M_T; the
  exponential is a 15-node quadrature of the inverse Laplace transform on a
  hyperbolic contour (Weideman & Trefethen 2007), accurate to ~1e-13 for any
  spectrum on [0, inf), so any R.

Both capacitance models share this code: ``global`` is ``L_C = diag(C)``.

A board whose twins differ (pots of different R_AB, wiper or leakage) gives the
clamped twin its own matrix ``A_C`` at its own conductances and a second
eigensolve; twins with different capacitors also have their own Cholesky frame
(``K``, ``W``). With equal twins (every nominal board) the clamped twin reuses
the free twin's decomposition, as above.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla

from ..errors import NetworkError
from ..model.board import Board
from ..model.network import CompiledNetwork
from ..model.task import BoundTask
from .base import Engine, EngineState

__all__ = ["ExactEngine", "ExactState", "contour_quadrature"]


def contour_quadrature(n: int = 14):
    """Nodes ``s`` and weights ``w`` with ``exp(-x) ~= Re sum_k w_k / (x + s_k)`` for x >= 0.

    Trapezoidal rule on the hyperbola ``s(theta) = mu (1 + sin(i theta - alpha))``
    with the parameters of Weideman & Trefethen (Math. Comp. 76, 2007);
    conjugate symmetry halves the nodes. Error ~6e-14 at ``n = 14``.
    """
    alpha, h, mu = 1.1721, 1.0818 / n, 4.4921 * n
    theta = h * np.arange(n + 1)
    s = mu * (1.0 + np.sin(1j * theta - alpha))
    ds = mu * 1j * np.cos(1j * theta - alpha)
    w = h / (2j * np.pi) * np.exp(s) * ds
    w[1:] *= 2.0
    return s, w


_QUAD_S, _QUAD_W = contour_quadrature()


@dataclass(frozen=True, eq=False)
class _Operators:
    """Eigen-decomposition ``A = U diag(lam) U^T`` at one set of positions.

    ``U1``, ``U2`` are the rows of ``U`` of the clamped-floating and target
    coordinates; ``U2U2`` holds the products ``U2[i, a] U2[j, a]``, shape
    (M_T * M_T, n_F), so that ``R22(z)`` is one matrix product.
    """

    lam: np.ndarray  # (n_F,)
    U: np.ndarray  # (n_F, n_F)
    U1: np.ndarray  # (n_C, n_F)
    U2: np.ndarray  # (M_T, n_F)
    U2U2: np.ndarray  # (M_T * M_T, n_F)
    ystar: np.ndarray  # (n_F,) free-twin equilibrium -A^-1 r, r = W diag(g) B_S V_S


def _cmatmul(real: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``real @ z`` for a real matrix and a complex C-contiguous (n, K) array, without complex copies."""
    out = real @ np.ascontiguousarray(z).view(np.float64)
    return out.view(np.complex128)


@dataclass(frozen=True, eq=False)
class ExactState(EngineState):
    """State of the twin networks (:class:`~spicelearn.engines.base.EngineState`) and the cached
    decompositions at ``positions``: ``ops`` of the free twin, ``ops_c`` of the clamped twin (the
    same object when the twins are equal)."""

    ops: _Operators = None
    ops_c: _Operators = None


@dataclass(frozen=True, eq=False)
class _Frame:
    """The coordinates ``y = K^T v_F`` of one twin's capacitors: ``L_C[FF] = K K^T``, ``W = K^-1 B_F^T``."""

    K: np.ndarray  # (n_F, n_F) lower triangular
    Kinv: np.ndarray  # (n_F, n_F)
    W: np.ndarray  # (n_F, E)
    K22T: np.ndarray  # (M_T, M_T): y2 = K22^T v_T


class ExactEngine(Engine):
    """Exact RC transient of the free and clamped twins (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    board : Board
    """

    name = "exact"

    def __init__(self, network: CompiledNetwork, task: BoundTask, board: Board):
        super().__init__(network, task, board)
        n = network.n_nodes
        src, tgt = task.source_index, task.target_index
        self.floating = np.concatenate([task.clamped_floating, tgt])  # free twin's floating nodes, C then T
        self.n_c = task.clamped_floating.size
        self._twins_identical = board.twins_identical
        free = self._frame(0)
        self.frames = (free, free if board.capacitors_identical else self._frame(1))
        self.b_src = network.incidence[:, src] @ task.source_voltage  # (E,) edge drops from the sources alone
        self._v_template = np.zeros(n)
        self._v_template[src] = task.source_voltage

    # -- helpers ---------------------------------------------------------------
    def _frame(self, twin: int) -> _Frame:
        LC = self.board.capacitance_matrix(self.network, twin)
        try:
            K = np.linalg.cholesky(LC[np.ix_(self.floating, self.floating)])
        except np.linalg.LinAlgError:
            raise NetworkError("the capacitance matrix of the floating nodes is singular: "
                               "some floating node has no capacitive path to a driven node") from None
        Kinv = sla.solve_triangular(K, np.eye(K.shape[0]), lower=True)
        return _Frame(K=K, Kinv=Kinv, W=Kinv @ self.network.incidence[:, self.floating].T,
                      K22T=K[self.n_c:, self.n_c:].T)

    def _decompositions(self, positions) -> tuple:
        """``(ops, ops_c)`` of the free and the clamped twin at ``positions``."""
        ops = self._decompose(self.frames[0], self.board.conductance(positions, 0))
        if self._twins_identical:
            return ops, ops
        return ops, self._decompose(self.frames[1], self.board.conductance(positions, 1))

    def _decompose(self, frame: _Frame, g) -> _Operators:
        Wg = frame.W * g
        lam, U = np.linalg.eigh(Wg @ frame.W.T)
        if lam[0] <= 0:
            raise NetworkError("the conductance matrix of the floating nodes is singular: "
                               "a floating part of the network has no path to a driven node")
        U1, U2 = U[:self.n_c], U[self.n_c:]
        m = U2.shape[0]
        U2U2 = (U2[:, None, :] * U2[None, :, :]).reshape(m * m, -1)
        ystar = -(U @ ((U.T @ (Wg @ self.b_src)) / lam))
        return _Operators(lam=lam, U=U, U1=U1, U2=U2, U2U2=U2U2, ystar=ystar)

    def _to_v(self, y: np.ndarray, twin: int = 0) -> np.ndarray:
        v = self._v_template.copy()
        v[self.floating] = self.frames[twin].Kinv.T @ y
        return v

    def _to_y(self, v: np.ndarray, twin: int = 0) -> np.ndarray:
        return self.frames[twin].K.T @ v[self.floating]

    @staticmethod
    def _sub_resolvent(ops: _Operators, b: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``sum_k w_k (A11 + z_k)^-1 b``, real part, shape (n_C,).

        Schur complement of the resolvent of A: with ``R = (A + z)^-1``,
        ``(A11 + z)^-1 b = U1 D (c - U2^T R22^-1 U2 D c)``, ``c = U1^T b``,
        ``D = (lam + z)^-1``, ``R22 = U2 D U2^T`` (M_T x M_T).
        """
        m = ops.U2.shape[0]
        D = 1.0 / (ops.lam[:, None] + z[None, :])  # (n_F, K)
        c = ops.U1.T @ b
        Dc = D * c[:, None]
        p2 = _cmatmul(ops.U2, Dc)  # (M_T, K)
        R22 = _cmatmul(ops.U2U2, D)
        R22 = np.moveaxis(R22.reshape(m, m, -1), -1, 0)  # (K, M_T, M_T)
        q = np.linalg.solve(R22, p2.T[..., None])[..., 0]  # (K, M_T)
        e = (Dc - D * (ops.U2.T @ q.T)) @ w  # (n_F,)
        return ops.U1 @ e.real

    def _clamped_equilibrium_y1(self, ops: _Operators, y2: np.ndarray) -> np.ndarray:
        """Clamped equilibrium from the free one ``ystar``: a rank-M_T correction.

        ``y1* = ystar_1 + A11^-1 A12 (ystar_2 - y2)`` with
        ``A11^-1 A12 = -[A^-1]_12 [A^-1]_22^-1`` (block inverse of A).
        """
        P = (ops.U1 / ops.lam) @ ops.U2.T  # [A^-1]_12, (n_C, M_T)
        Q = (ops.U2 / ops.lam) @ ops.U2.T  # [A^-1]_22, (M_T, M_T)
        nc = self.n_c
        return ops.ystar[:nc] - P @ np.linalg.solve(Q, ops.ystar[nc:] - y2)

    # -- engine interface -------------------------------------------------------
    def state(self, positions, v_free, v_clamped, clamp) -> ExactState:
        """A state with given node voltages (e.g. off equilibrium); driven nodes are overwritten."""
        positions = self._check_positions(positions)
        v_free, v_clamped, clamp = self.task.impose(v_free, v_clamped, self._check_clamp(clamp))
        ops, ops_c = self._decompositions(positions)
        return ExactState(positions, v_free, v_clamped, clamp, ops, ops_c)

    def _init(self, positions, clamp) -> ExactState:
        ops, ops_c = self._decompositions(positions)
        v_free = self._to_v(ops.ystar)
        if clamp is None:
            clamp = self.default_clamp(v_free)
        y2 = self.frames[1].K22T @ clamp
        v_clamped = self._to_v(np.concatenate([self._clamped_equilibrium_y1(ops_c, y2), y2]), 1)
        v_clamped[self.task.target_index] = clamp
        return ExactState(positions, v_free, v_clamped, clamp, ops, ops_c)

    def _set_positions(self, state: ExactState, positions) -> ExactState:
        ops, ops_c = self._decompositions(positions)
        return replace(state, positions=positions, ops=ops, ops_c=ops_c)

    def _equilibrium_free(self, state: ExactState) -> np.ndarray:
        return self._to_v(state.ops.ystar)

    def _relax(self, state: ExactState, clamp, duration: float) -> ExactState:
        ops, nc = state.ops, self.n_c
        # free twin: sources constant, exact modal decay
        y = self._to_y(state.v_free)
        ystar = ops.ystar
        a = ops.U.T @ (y - ystar)
        y = ystar + ops.U @ (np.exp(-ops.lam * duration) * a)
        v_free = self._to_v(y)
        # clamped twin: y1 conserved across the clamp step; y2 follows the clamps
        y1 = self._to_y(state.v_clamped, 1)[:nc]
        y2 = self.frames[1].K22T @ clamp
        if nc:
            y1star = self._clamped_equilibrium_y1(state.ops_c, y2)
            y1 = y1star + self._sub_resolvent(state.ops_c, y1 - y1star, _QUAD_S / duration, _QUAD_W / duration)
        v_clamped = self._to_v(np.concatenate([y1, y2]), 1)
        v_clamped[self.task.target_index] = clamp
        return replace(state, v_free=v_free, v_clamped=v_clamped, clamp=clamp)
