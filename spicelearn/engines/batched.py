"""The batched ``exact`` engine: B runs on one network in lockstep, each on its own board.

The physics and the arithmetic are those of :mod:`spicelearn.engines.exact`,
with a leading batch axis on every array: the twins' RC transient between
ticks solved exactly in the coordinates ``y = K^T v_F`` of each board's
capacitors (``L_C[FF] = K K^T``), one symmetric eigensolve of
``A = W diag(g) W^T`` per board and tick, the clamped twin through the Schur
complement of the resolvent and the 15-node contour quadrature. Every stacked
operation (``np.matmul``, ``np.linalg.eigh``, ``np.linalg.solve``) calls the
same LAPACK or BLAS kernel on each board's slice as the single engine does on
its arrays, so a batch of B runs gives the voltages of B single runs.

The B runs share the network and its source and target nodes; each has its
own board (part values, capacitance model, capacitors of each twin), task
voltages and clock period. Memory: the engine holds, per board, three
``(n_F, n_F)`` matrices and ``W`` ``(n_F, E)`` for each twin frame, and the
decomposition of the tick, about ``8 (4 n_F^2 + 2 n_F E)`` bytes per board
and twin (lab16: 3 kB; delaunay64: 0.25 MB).

The array code uses only ``matmul``, ``eigh``, ``solve``, ``cholesky``,
elementwise functions and fancy indexing, with state passed in and out as
frozen dataclasses: what ``jax.numpy`` or ``torch`` offer under the same names
(see docs/architecture.md).

The protocol is the single engines' (:mod:`spicelearn.engines.base`) with a
leading batch axis: ``init(positions (B, E))``, ``relax(state, clamp (B, M_T),
duration (B,))``, ``set_positions``, ``equilibrium_free -> (B, N)``, and
``voltages(state) -> (v_free, v_clamped)``, each (B, N).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import scipy.linalg as sla

from ..errors import ConfigError, NetworkError
from ..model.board import Board
from ..model.network import CompiledNetwork
from ..model.task import BoundTask
from .exact import contour_quadrature

__all__ = ["BatchedExactEngine", "BatchState", "batch_memory"]

_QUAD_S, _QUAD_W = contour_quadrature()


def _t(a: np.ndarray) -> np.ndarray:
    """The transposes of a stack of matrices (B, m, n) -> (B, n, m), a view."""
    return np.swapaxes(a, -1, -2)


def _mv(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Stacked matrix-vector products ``a[b] @ x[b]``: (B, m, n), (B, n) -> (B, m)."""
    return np.matmul(a, x[..., None])[..., 0]


def _solve_small(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for stacks of small systems, a (..., m, m), b (..., m): by cofactors for m <= 3 (a few
    elementwise operations on the whole stack, where LAPACK would be called once per matrix), else LAPACK."""
    m = a.shape[-1]
    if m == 1:
        return b / a[..., 0]
    if m == 2:
        det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
        x0 = a[..., 1, 1] * b[..., 0] - a[..., 0, 1] * b[..., 1]
        x1 = a[..., 0, 0] * b[..., 1] - a[..., 1, 0] * b[..., 0]
        return np.stack([x0, x1], axis=-1) / det[..., None]
    if m == 3:
        c = np.stack([np.cross(a[..., 1, :], a[..., 2, :]), np.cross(a[..., 2, :], a[..., 0, :]),
                      np.cross(a[..., 0, :], a[..., 1, :])], axis=-1)  # adjugate: c[..., i, j] = cof(a)[j, i]
        det = np.sum(a[..., 0, :] * c[..., :, 0], axis=-1)
        return np.sum(c * b[..., None, :], axis=-1) / det[..., None]
    return np.linalg.solve(a, b[..., None])[..., 0]


def _reciprocal(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """``1 / (re + i im)`` in real arithmetic (a complex division costs several times more), complex."""
    den = re * re + im * im
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), dtype=np.complex128)
    out.real = re / den
    out.imag = -im / den
    return out


@dataclass(frozen=True, eq=False)
class _Frames:
    """Each board's coordinates of one twin's capacitors: ``L_C[FF] = K K^T``, ``W = K^-1 B_F^T``."""

    K: np.ndarray  # (B, n_F, n_F) lower triangular
    Kinv: np.ndarray  # (B, n_F, n_F)
    W: np.ndarray  # (B, n_F, E)
    K22T: np.ndarray  # (B, M_T, M_T)


@dataclass(frozen=True, eq=False)
class _Ops:
    """Each board's decomposition ``A = U diag(lam) U^T`` at its positions (the single engine's, stacked)."""

    lam: np.ndarray  # (B, n_F)
    U: np.ndarray  # (B, n_F, n_F)
    U1: np.ndarray  # (B, n_C, n_F)
    U2: np.ndarray  # (B, M_T, n_F)
    U2U2: np.ndarray  # (B, M_T * M_T, n_F)
    ystar: np.ndarray  # (B, n_F)


@dataclass(frozen=True, eq=False)
class BatchState:
    """State of B pairs of twin networks.

    Attributes
    ----------
    positions : ndarray of int, shape (B, E)
    v_free, v_clamped : ndarray, shape (B, N)
    clamp : ndarray, shape (B, M_T)
    ops, ops_c
        The decompositions of the free and the clamped twins at ``positions``.
    """

    positions: np.ndarray
    v_free: np.ndarray
    v_clamped: np.ndarray
    clamp: np.ndarray
    ops: _Ops = None
    ops_c: _Ops = None


def batch_memory(network: CompiledNetwork, n_floating: int | None = None) -> int:
    """Bytes the engine holds per board on ``network`` (frames of both twins and one tick's decompositions)."""
    n = network.n_nodes if n_floating is None else n_floating
    return 8 * 2 * (4 * n * n + 2 * n * network.n_edges)


class BatchedExactEngine:
    """The exact engine on B boards at once (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    tasks : sequence of BoundTask, length B
        Bound to ``network``, all with the same source and target nodes (their voltages may differ).
    boards : sequence of Board, length B
    """

    name = "exact"

    def __init__(self, network: CompiledNetwork, tasks: Sequence[BoundTask], boards: Sequence[Board]):
        tasks, boards = tuple(tasks), tuple(boards)
        if not tasks or len(tasks) != len(boards):
            raise ConfigError(f"`tasks` and `boards` must be two non-empty sequences of one length, got "
                              f"{len(tasks)} and {len(boards)}")
        for b, (task, board) in enumerate(zip(tasks, boards)):
            if not isinstance(board, Board):
                raise ConfigError(f"`boards[{b}]` must be a spicelearn Board, got {type(board).__name__}")
            if task.network is not network:
                raise ConfigError(f"`tasks[{b}]` is bound to another network; bind every task to this one")
            if not (np.array_equal(task.source_index, tasks[0].source_index)
                    and np.array_equal(task.target_index, tasks[0].target_index)):
                raise ConfigError(f"`tasks[{b}]` drives other nodes than `tasks[0]`: a batch shares its source and "
                                  "target nodes (run the others in another batch)")
            board.check(network)
        self.network, self.tasks, self.boards = network, tasks, boards
        task = tasks[0]
        self.source_index, self.target_index = task.source_index, task.target_index
        self.floating = np.concatenate([task.clamped_floating, task.target_index])
        self.n_c = task.clamped_floating.size
        self.size = len(boards)
        free = self._frames(0)
        self.frames = (free, free if all(b.capacitors_identical for b in boards) else self._frames(1))
        self._twins_identical = all(b.twins_identical for b in boards)
        # conductances: 1 / ((p + 1) (r_ab / n) + wiper) + 1 / leakage, as Board.conductance computes them
        self._top = np.array([[b.hardware.pot.n_positions - 1] for b in boards])  # (B, 1)
        self._step_r = np.stack([b.r_ab / b.hardware.pot.n_positions for b in boards])  # (B, 2, E)
        self._wiper = np.stack([b.wiper for b in boards])
        self._inv_leak = 1.0 / np.stack([b.leakage for b in boards])
        self.source_voltage = np.stack([t.source_voltage for t in tasks])  # (B, M_S)
        self.b_src = _mv(np.broadcast_to(network.incidence[:, self.source_index],
                                         (self.size,) + (network.n_edges, self.source_index.size)),
                         self.source_voltage)  # (B, E)
        self._v_template = np.zeros((self.size, network.n_nodes))
        self._v_template[:, self.source_index] = self.source_voltage

    # -- helpers -------------------------------------------------------------------
    def _frames(self, twin: int) -> _Frames:
        """Every board's frame of ``twin``; boards with the same capacitors share one computation."""
        net, F, nc = self.network, self.floating, self.n_c
        BF_T = net.incidence[:, F].T
        cache, out = {}, []
        for board in self.boards:
            c = board.twin_capacitance(twin)
            key = (board.hardware.capacitance_model, c.tobytes())
            if key not in cache:
                LC = board.capacitance_matrix(net, twin)
                try:
                    K = np.linalg.cholesky(LC[np.ix_(F, F)])
                except np.linalg.LinAlgError:
                    raise NetworkError("the capacitance matrix of the floating nodes is singular: "
                                       "some floating node has no capacitive path to a driven node") from None
                Kinv = sla.solve_triangular(K, np.eye(K.shape[0]), lower=True)
                cache[key] = (K, Kinv, Kinv @ BF_T, K[nc:, nc:].T)
            out.append(cache[key])
        return _Frames(*(np.stack(parts) for parts in zip(*out)))

    def conductance(self, positions: np.ndarray, twin: int) -> np.ndarray:
        """Conductance (S) of every edge of every board's ``twin`` at ``positions`` (B, E), shape (B, E)."""
        return 1.0 / ((positions + 1.0) * self._step_r[:, twin] + self._wiper[:, twin]) + self._inv_leak[:, twin]

    def _decompositions(self, positions) -> tuple:
        ops = self._decompose(self.frames[0], self.conductance(positions, 0))
        if self._twins_identical:
            return ops, ops
        return ops, self._decompose(self.frames[1], self.conductance(positions, 1))

    def _decompose(self, frames: _Frames, g: np.ndarray) -> _Ops:
        Wg = frames.W * g[:, None, :]
        lam, U = np.linalg.eigh(Wg @ _t(frames.W))
        bad = lam[:, 0] <= 0
        if np.any(bad):
            raise NetworkError(f"the conductance matrix of the floating nodes of board {int(np.argmax(bad))} is "
                               "singular: a floating part of the network has no path to a driven node")
        nc = self.n_c
        U1, U2 = U[:, :nc], U[:, nc:]
        m = U2.shape[1]
        U2U2 = (U2[:, :, None, :] * U2[:, None, :, :]).reshape(self.size, m * m, -1)
        ystar = -_mv(U, _mv(_t(U), _mv(Wg, self.b_src)) / lam)
        return _Ops(lam=lam, U=U, U1=U1, U2=U2, U2U2=U2U2, ystar=ystar)

    def _to_v(self, y: np.ndarray, twin: int = 0) -> np.ndarray:
        v = self._v_template.copy()
        v[:, self.floating] = _mv(_t(self.frames[twin].Kinv), y)
        return v

    def _to_y(self, v: np.ndarray, twin: int = 0) -> np.ndarray:
        return _mv(_t(self.frames[twin].K), v[:, self.floating])

    @staticmethod
    def _sub_resolvent(ops: _Ops, b: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``sum_k w_k (A11 + z_k)^-1 b`` per board, real part, shape (B, n_C); ``z``, ``w`` (B, K)."""
        m = ops.U2.shape[1]
        D = _reciprocal(ops.lam[:, :, None] + z.real[:, None, :], z.imag[:, None, :])  # (B, n_F, K)
        c = _mv(_t(ops.U1), b)
        Dc = D * c[:, :, None]
        p2 = (ops.U2 @ np.ascontiguousarray(Dc).view(np.float64)).view(np.complex128)  # (B, M_T, K)
        R22 = (ops.U2U2 @ np.ascontiguousarray(D).view(np.float64)).view(np.complex128)
        R22 = np.moveaxis(R22.reshape(R22.shape[0], m, m, -1), -1, 1)  # (B, K, M_T, M_T)
        q = _solve_small(R22, _t(p2))  # (B, K, M_T)
        e = _mv(Dc - D * (_t(ops.U2) @ _t(q)), w)  # (B, n_F)
        return _mv(ops.U1, e.real)

    def _clamped_equilibrium_y1(self, ops: _Ops, y2: np.ndarray) -> np.ndarray:
        """Clamped equilibrium from the free one, a rank-M_T correction (see the single engine)."""
        P = (ops.U1 / ops.lam[:, None, :]) @ _t(ops.U2)  # (B, n_C, M_T)
        Q = (ops.U2 / ops.lam[:, None, :]) @ _t(ops.U2)  # (B, M_T, M_T)
        nc = self.n_c
        return ops.ystar[:, :nc] - _mv(P, _solve_small(Q, ops.ystar[:, nc:] - y2))

    def _check_positions(self, positions) -> np.ndarray:
        p = np.asarray(positions)
        shape = (self.size, self.network.n_edges)
        if p.shape != shape:
            raise ConfigError(f"`positions` must have shape {shape}, got {p.shape}")
        if p.dtype.kind not in "iu":
            return np.stack([b.hardware.pot.check_positions(row, shape[1]) for b, row in zip(self.boards, p)])
        bad = np.any((p < 0) | (p > self._top), axis=1)
        if np.any(bad):
            b = int(np.argmax(bad))
            raise ConfigError(f"`positions` of board {b} must be integers in 0..{int(self._top[b, 0])}, got range "
                              f"[{p[b].min()}, {p[b].max()}]")
        return p.astype(int, copy=False)

    def _check_clamp(self, clamp) -> np.ndarray:
        c = np.asarray(clamp, dtype=float)
        shape = (self.size, self.target_index.size)
        if c.shape != shape or not np.all(np.isfinite(c)):
            raise ConfigError(f"`clamp` must be finite volts with shape {shape}, got shape {c.shape}")
        return c

    # -- the protocol, batched ----------------------------------------------------------
    def init(self, positions, clamp=None, default_clamp=None) -> BatchState:
        """Both twins of every board at equilibrium at ``positions`` (B, E); ``clamp`` (B, M_T), or
        ``default_clamp(v_free (B, N)) -> (B, M_T)`` of it (the supervisors' nudge)."""
        positions = self._check_positions(positions)
        ops, ops_c = self._decompositions(positions)
        v_free = self._to_v(ops.ystar)
        if clamp is None:
            if default_clamp is None:
                raise ConfigError("give `clamp` (B, M_T) or the supervisors' `default_clamp`")
            clamp = default_clamp(v_free)
        clamp = self._check_clamp(clamp)
        y2 = _mv(self.frames[1].K22T, clamp)
        v_clamped = self._to_v(np.concatenate([self._clamped_equilibrium_y1(ops_c, y2), y2], axis=1), 1)
        v_clamped[:, self.target_index] = clamp
        return BatchState(positions, v_free, v_clamped, clamp, ops, ops_c)

    def relax(self, state: BatchState, clamp, duration) -> BatchState:
        """Step every board's clamps to ``clamp`` (B, M_T), then relax ``duration`` (B,) seconds (0: the jump
        alone: the clamped twin's ``y1`` is its floating nodes' charge, conserved)."""
        clamp = self._check_clamp(clamp)
        d = np.asarray(duration, dtype=float)
        if d.shape != (self.size,) or not np.all(np.isfinite(d) & (d >= 0)):
            raise ConfigError(f"`duration` must be finite and >= 0 seconds with shape ({self.size},), got {d!r:.80}")
        ops, nc = state.ops, self.n_c
        y = self._to_y(state.v_free)
        ystar = ops.ystar
        a = _mv(_t(ops.U), y - ystar)
        y = ystar + _mv(ops.U, np.exp(-ops.lam * d[:, None]) * a)
        v_free = self._to_v(y)
        y1 = self._to_y(state.v_clamped, 1)[:, :nc]
        y2 = _mv(self.frames[1].K22T, clamp)
        if nc:
            moving = d > 0
            t = np.where(moving, d, 1.0)[:, None]
            y1star = self._clamped_equilibrium_y1(state.ops_c, y2)
            relaxed = y1star + self._sub_resolvent(state.ops_c, y1 - y1star, _QUAD_S / t, _QUAD_W / t)
            y1 = np.where(moving[:, None], relaxed, y1)
        v_clamped = self._to_v(np.concatenate([y1, y2], axis=1), 1)
        v_clamped[:, self.target_index] = clamp
        return replace(state, v_free=v_free, v_clamped=v_clamped, clamp=clamp)

    def set_positions(self, state: BatchState, positions) -> BatchState:
        """Clock tick of every board: new resistances; node voltages do not jump."""
        positions = self._check_positions(positions)
        ops, ops_c = self._decompositions(positions)
        return replace(state, positions=positions, ops=ops, ops_c=ops_c)

    def equilibrium_free(self, state: BatchState) -> np.ndarray:
        """Free twins' equilibrium voltages at the state's resistances, shape (B, N)."""
        return self._to_v(state.ops.ystar)

    @staticmethod
    def voltages(state: BatchState) -> tuple:
        """``(v_free, v_clamped)``, each (B, N)."""
        return state.v_free, state.v_clamped

    def close(self) -> None:
        """Nothing to release (the protocol's)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
