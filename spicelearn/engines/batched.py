"""The batched ``exact`` engine: B runs on one network in lockstep, each on its own board.

The physics is that of :mod:`spicelearn.engines.exact`, with a leading batch axis on every array: the
twins' RC transient between ticks solved exactly. Per tick and board: one Cholesky solve for both twins'
equilibria (the clamped twin's by the block inverse), and the transients by a Chebyshev expansion of
``exp(-x)`` on the bounds of the spectrum (one stacked matrix-vector product per twin and term); where the
expansion would be long (small R), one eigensolve per board and the contour quadrature of the clamped twin's
resolvent. A batch of B runs gives the voltages of B single runs to rounding (``tests/test_batched.py``:
positions equal, voltages within 1e-10 V; we see ~1e-14).

Two coordinates, by size:

* small networks (up to :data:`_SMALL` floating nodes) work as the single engine does, in the coordinates
  ``y = K^T v_F`` of each board's capacitors (``L_C[FF] = K K^T``), on the symmetric ``A = W diag(g) W^T``: ``A``
  of every board from a table of the edges' ``w_e (x) w_e`` by one einsum with the batch axis last, the clamped
  twin's matrix its leading block, and the recurrence the same way (an einsum per twin and term);
* larger ones with capacitors on the edges (any frame not diagonal) work in node voltages, on the rates
  ``M = C^-1 L_G[FF]`` (``C = L_C[FF]``; ``M = K^-T A K^T``, the same spectrum) and the clamped twin's
  ``M_C = C_CC^-1 L_G[CC]``, made for the batch by one sparse product of the Laplacians' entries
  (:class:`_NodeOperators`) where ``A`` costs a dense n_F^3 product a board (the eigen path makes ``A`` where it needs
  it); equal twins share one operator, similar to ``M``, in the coordinates of the clamped-floating nodes' charges,
  whose leading block is ``M_C``. The equilibria are solves of ``L_G[FF]`` with an independent set of its nodes
  eliminated first, then the Cholesky solve of the Schur complement on the rest
  (:class:`~spicelearn.engines.elimination.EliminatedLaplacian`: delaunay64's 59 x 59 become 37 x 37), and a clamp
  step moves ``v_C`` by ``-C_CC^-1 C_CT dV_T`` (charge conserved). delaunay64, B = 64: 1.08x to 1.10x the board-ticks
  a second of the capacitors' frames with an operator a twin (``benchmarks/bench_ab.py --boards 64``, 18.4k against
  16.7k to 17.1k), then 1.09x with one for both twins and 1.06x with the elimination; node voltages stay exact with
  capacitors spread over four decades (the recurrence on a non-symmetric ``M``: ~1e-14 V from the single engine).
  Larger networks whose every frame is diagonal (capacitors to ground, ``global``) stay in the frames, where ``A`` is
  the Laplacian scaled by ``k_i k_j`` (no product) and the clamped twin's matrix its leading block: one matrix read a
  term for both twins (1.18x the node voltages' board-ticks there).

The B runs share the network and its source and target nodes; each has its own board (part values,
capacitance model, capacitors of each twin), task voltages and clock period. Where every board has the
same capacitors (nominal boards, or boards whose only imperfections are in their pots and comparators),
the boards share one frame (:class:`_Frames` with a leading axis of one, which broadcasts, and one ``C^-1``);
otherwise each board has its own.

Memory: per board, three ``(n_F, n_F)`` matrices, ``W`` ``(n_F, E)`` and the node map ``(n_F, N)`` for
each twin frame (once for a shared frame), the tick's operators and the recurrence's terms; at most
:func:`engine_bytes` (lab16: 20 kB; delaunay64: 1.07 MB, measured 0.8 MB for imperfect boards and 0.35 MB for
nominal ones, which share one frame).

The array code uses only ``matmul``, ``einsum``, ``eigh``, ``solve``, a Cholesky solve, ``bincount``, a
sparse-dense product, elementwise functions and fancy indexing, with state passed in and out as frozen dataclasses:
what ``jax.numpy`` or ``torch`` offer under the same names (see docs/architecture.md). A board's run does not
depend on the rest of its batch, bit for bit (a sweep resumed after a kill, whose batches are composed
differently, ends with the same files): every product is one per board (a stacked ``matmul`` calls BLAS
once per board with the same shapes), einsum's loops sum in one order, and no BLAS product runs across
boards (OpenBLAS rounds a row of a product by its place among the rows on some processors: its SkylakeX
kernels, for instance). One exception: numpy takes other loops for a stack of one, which round differently
(:func:`spicelearn.loop.train_batch` never runs a board alone).

The protocol is the single engines' (:mod:`spicelearn.engines.base`) with a
leading batch axis: ``init(positions (B, E))``, ``relax(state, clamp (B, M_T),
duration (B,))``, ``set_positions``, ``equilibrium_free -> (B, N)``, and
``voltages(state) -> (v_free, v_clamped)``, each (B, N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy.linalg import lapack
from scipy.sparse import csr_array

from ..errors import ConfigError, NetworkError
from ..model.board import Board
from ..model.network import SINGULAR_CONDUCTANCE as _SINGULAR, CompiledNetwork
from ..model.task import BoundTask
from .elimination import EliminatedLaplacian
from .exact import (CHEBYSHEV_TOL, SPARSE_FROM, FloatingLaplacian, capacitor_frame, chebyshev_plan,
                    contour_quadrature, edge_rate_bound, frame_transform, per_edge_rate_bounds)

__all__ = ["BatchedExactEngine", "BatchState", "worth_batching", "engine_bytes"]

_QUAD_S, _QUAD_W = contour_quadrature()


def worth_batching(task: BoundTask) -> bool:
    """Whether runs of ``task`` (bound to its network) gain from this engine: below
    :data:`~spicelearn.engines.exact.SPARSE_FROM` floating nodes, where single runs take the dense path too. From
    there on single runs take the sparse path, whose factorisations grow far slower than a batch's n_F^3 work a
    board-tick (measured, B = 8: 0.57 against 0.88 ms a board-tick at 128 nodes, 2.5 against 3.0 at 256, 5.4 against
    3.5 at 384; at 1,024 nodes single runs take 4.4 ms a tick, a dense tick 66 ms), and a batch would hold 5 n_F^2
    numbers a board (40 MB at 1,024 nodes)."""
    return task.free_floating.size < SPARSE_FROM


def _max_terms(n_f: int) -> int:
    """The longest Chebyshev expansion the engine runs on ``n_f`` floating nodes (longer ones take the eigensolve)."""
    return max(60, 2 * n_f + 10)


def engine_bytes(n_f: int, n_edges: int, n_nodes: int) -> int:
    """Bytes the engine holds per board at most on a network of ``n_f`` floating nodes: each twin's own frame (``K``,
    ``K^-1`` and its transpose, ``W``, the node map), twice while the engine stacks them; each twin's ``A``, twice
    while a tick makes the next (in node voltages, less: both twins' operators and the dense Laplacians); the Chebyshev matrices and the temporaries of the sparse product and the Cholesky
    solve; the longest expansion's terms (lab16: 20 kB; delaunay64: 1.07 MB, where imperfect boards, whose frames and
    twins all differ, measured 0.8 MB)."""
    n = n_f
    frame = 3 * n * n + n * n_edges + n * n_nodes
    return 8 * (2 * 2 * frame + 2 * 2 * n * n + 4 * n * n + 2 * _max_terms(n) * n)


def _t(a: np.ndarray) -> np.ndarray:
    """The transposes of a stack of matrices (B, m, n) -> (B, n, m), a view."""
    return np.swapaxes(a, -1, -2)


def _mv(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Stacked matrix-vector products ``a[b] @ x[b]``: (B, m, n), (B, n) -> (B, m)."""
    return np.matmul(a, x[..., None])[..., 0]


def _cross3(u: np.ndarray, v: np.ndarray) -> tuple:
    """The cross product of stacks of 3-vectors (..., 3), as its three components (numpy's ``cross`` costs
    more in its set-up than in its arithmetic here)."""
    u0, u1, u2 = u[..., 0], u[..., 1], u[..., 2]
    v0, v1, v2 = v[..., 0], v[..., 1], v[..., 2]
    return u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0


def _dot3(u: np.ndarray, w: tuple) -> np.ndarray:
    """``u . w`` for a stack of 3-vectors u (..., 3) and one given by its components w."""
    return u[..., 0] * w[0] + u[..., 1] * w[1] + u[..., 2] * w[2]


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
    if m == 3:  # Cramer's rule: x_i = det(a with column i replaced by b) / det(a), by triple products
        c0, c1, c2 = a[..., :, 0], a[..., :, 1], a[..., :, 2]
        x12, x20, x01 = _cross3(c1, c2), _cross3(c2, c0), _cross3(c0, c1)
        det = _dot3(c0, x12)
        out = np.empty(np.broadcast_shapes(a.shape[:-1], b.shape), dtype=np.result_type(a, b))
        out[..., 0], out[..., 1], out[..., 2] = _dot3(b, x12), _dot3(b, x20), _dot3(b, x01)
        out /= det[..., None]
        return out
    return np.linalg.solve(a, b[..., None])[..., 0]


def _cholesky_solve_last(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for symmetric positive-definite systems with the batch axis last: a (n, n, B), b (n, k, B) ->
    (n, k, B). Right-looking Cholesky ``a = L L^T`` column by column, each step on the whole batch, the forward
    substitution alongside, then the backward one; every board's arithmetic in one order whatever the batch."""
    n = a.shape[0]
    L, x = np.array(a), np.array(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(n):
            d = L[j, j]
            np.sqrt(d, out=d)  # NaN where not positive (checked below, once)
            col = L[j + 1:, j]
            col /= d
            L[j + 1:, j + 1:] -= col[:, None] * col[None, :]
            x[j] /= d
            x[j + 1:] -= col[:, None] * x[j]
    diag = L[np.arange(n), np.arange(n)]
    if not np.all(diag > 0):  # a pivot <= 0 (or NaN after one): not positive definite
        raise NetworkError(_SINGULAR)
    for j in range(n - 1, -1, -1):
        if j < n - 1:
            x[j] -= np.einsum("ib,icb->cb", L[j + 1:, j], x[j + 1:])
        x[j] /= L[j, j]
    return x


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for a stack of symmetric positive-definite systems a (B, n, n), b (B, n, k).

    Up to :data:`_SMALL` unknowns a Cholesky factorisation with the batch axis last, a few elementwise operations
    per column for the whole batch (lab16's 1,000 7 x 7 systems: 0.7 ms against 1.05 ms for numpy's stacked LU
    solve); above, LAPACK's Cholesky solve board by board (half the work of the LU: 64 of delaunay64's 59 x 59
    systems took 1.2 ms against 1.8 ms). Raises :class:`~spicelearn.errors.NetworkError` where a matrix is singular
    (a floating island).
    """
    if a.shape[-1] <= _SMALL:
        x = _cholesky_solve_last(np.moveaxis(a, 0, -1), np.moveaxis(b, 0, -1))
        return np.moveaxis(x, -1, 0)
    out = np.array(_t(b), order="C")  # (B, k, n): each board's right-hand sides a Fortran-ordered (n, k), solved in
    # place (no copy in and out: 0.6 us less a board on delaunay64)
    posv = lapack.dposv
    for i in range(a.shape[0]):  # a[i].T: Fortran-ordered, LAPACK's copy a plain one (0.7 us less a board on
        # delaunay64), its lower triangle a[i]'s upper one (the matrices are symmetric)
        _, x, info = posv(a[i].T, out[i].T, lower=1, overwrite_b=1)
        if info != 0:
            raise NetworkError(_SINGULAR)
        if not np.may_share_memory(x, out[i]):
            out[i] = x.T
    return _t(out)


def _recurrence(terms: np.ndarray, product, zero=None) -> None:
    """The Chebyshev terms ``T_k = 2u T_{k-1} - T_{k-2}`` (``T_1 = u T_0``) in place in ``terms[1:]`` from ``terms[0]``;
    ``product(y, out)`` writes ``2u y`` into ``out`` and returns it; ``zero`` indexes the entries of a term set to zero
    after each product (the clamped twin's targets)."""
    for k in range(1, terms.shape[0]):
        t = product(terms[k - 1], terms[k])
        if k == 1:
            t *= 0.5
        else:
            t -= terms[k - 2]
        if zero is not None:
            t[zero] = 0.0


def _reciprocal(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """``1 / (re + i im)`` in real arithmetic (a complex division costs several times more), complex."""
    den = re * re + im * im
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), dtype=np.complex128)
    out.real = re / den
    out.imag = -im / den
    return out


@dataclass(frozen=True, eq=False)
class _Frames:
    """The coordinates of one twin's capacitors on every board: ``L_C[FF] = K K^T``, ``W = K^-1 B_F^T``. Every
    array has a leading axis of B, or of 1 where all boards have the same capacitors (nominal boards), which
    broadcasts in every product: each board's product is then one of the same shape with the same matrix."""

    K: np.ndarray  # (B | 1, n_F, n_F) lower triangular
    Kinv: np.ndarray  # (B | 1, n_F, n_F)
    KinvT: np.ndarray  # (B | 1, n_F, n_F), contiguous
    W: np.ndarray  # (B | 1, n_F, E)
    K22T: np.ndarray  # (B | 1, M_T, M_T)
    Kp: np.ndarray  # (B | 1, n_F, N): K^-1 with its columns at the floating nodes (v = y Kp + sources)
    kinv_diag: np.ndarray | None  # (B | 1, n_F): the diagonal of K^-1 where every board's K is diagonal, else None
    # a shared frame of a small network: w_e (x) w_e at the entries (i, j <= i) of the lower triangle (einsum)
    kr: np.ndarray | None = None  # (n_F (n_F + 1) / 2, E)
    sym: np.ndarray | None = None  # (n_F^2,): the row of kr of every entry (i, j) of A, row-major

    @property
    def shared(self) -> bool:
        return self.K.shape[0] == 1


class _Tick:
    """What one tick's positions fix for one twin of every board: the equilibria, the bounds of the spectrum, and
    what the transient's operators are made from; ``A`` and its eigen-decomposition on first use (:meth:`eigen`).

    Attributes
    ----------
    A : ndarray, shape (B, n_F, n_F)
        The rates in the capacitors' frame, ``K^-1 L_G[FF] K^-T`` (made on first use where the engine works in node
        voltages: only its eigen path needs it).
    ystar : ndarray, shape (B, n_F)
        Free-twin equilibrium in the engine's coordinates (``-A^-1 r``; node voltages: ``-L_G[FF]^-1 B_F^T g V``).
    P, Q : ndarray, shapes (B, n_C, M_T), (B, M_T, M_T)
        Blocks ``[.]_CT`` and ``[.]_TT`` of the inverse of the matrix solved (``A`` or ``L_G[FF]``): the clamped
        equilibrium is a rank-M_T correction of the free one.
    lo, hi : ndarray, shape (B,)
        Bounds of the spectrum of the rates (1/s).
    entries : ndarray, shape (B, nnz), or None
        The sparse entries of ``L_G[FF]`` (:meth:`~spicelearn.engines.exact.FloatingLaplacian.entries`), where the
        engine works in node voltages.
    """

    def __init__(self, ystar, P, Q, lo, hi, n_c, A=None, entries=None, make_A=None):
        self.ystar, self.P, self.Q, self.lo, self.hi, self.n_c = ystar, P, Q, lo, hi, n_c
        self.entries, self._A, self._make_A = entries, A, make_A
        self._eigen = None

    @property
    def A(self) -> np.ndarray:
        if self._A is None:
            self._A = self._make_A()
        return self._A

    def take(self, idx: np.ndarray) -> "_Tick":
        """The boards ``idx`` (integer indices) of this tick."""
        out = _Tick(self.ystar[idx], self.P[idx], self.Q[idx], self.lo[idx], self.hi[idx], self.n_c, A=self.A[idx],
                    entries=None if self.entries is None else self.entries[idx])
        if self._eigen is not None:
            out._eigen = tuple(a[idx] for a in self._eigen)
        return out

    def eigen(self) -> tuple:
        """``(lam (B, n_F), U (B, n_F, n_F), U1, U2, U2U2)``: ``A = U diag(lam) U^T``, ``U1``, ``U2`` the rows of
        the clamped-floating and target coordinates, ``U2U2`` (B, M_T^2, n_F) the products ``U2[i] U2[j]``."""
        if self._eigen is None:
            lam, U = np.linalg.eigh(self.A)
            U1, U2 = U[:, :self.n_c], U[:, self.n_c:]
            m = U2.shape[1]
            self._eigen = lam, U, U1, U2, (U2[:, :, None, :] * U2[:, None, :, :]).reshape(len(lam), m * m, -1)
        return self._eigen


class _NodeOperators:
    """The twins' rates in node voltages on every board, scaled and shifted for the Chebyshev recurrence and
    transposed, from one sparse product a tick and no dense one. ``M = C^-1 L_G[FF]`` (the free twin, ``C = L_C[FF]``) is
    ``K^-T A K^T``: the capacitors' frame's rates, the same spectrum; the clamped twin's rates on its clamped-floating
    nodes are ``M_C = C_CC^-1 L_G[CC]``.

    Equal twins share one operator, ``N = S^-1 M S`` in the charge coordinates ``z = S^-1 v = [v_C + H v_T, v_T]``
    (``S = [I, -H; 0, I]``, ``H = C_CC^-1 C_CT``; ``C_CC z_C`` is the charge on the clamped-floating nodes). Its leading
    block is the clamped twin's ``M_C``: the C rows of ``S^-1 C^-1 w`` are ``C_CC^-1 w_C``. So one matrix a term
    serves both twins (the clamped twin's target rows zeroed after each product), as in the capacitors' frames:
    ``N^T = S^T L_G[FF] D``, ``D = C^-1 S^-T``, the sparse product and then a rank-M_T update of the target rows
    (delaunay64, B = 64: 1.09x the board-ticks of one operator a twin). Twins that differ have one each:
    ``[M^T; M_C^T] = [L_G[FF], 0; 0, L_G[CC]] [C^-1; C_CC^-1]``. Board by board: each its own rows; a block-diagonal
    matrix against a stack where the boards' capacitors differ.

    Parameters
    ----------
    laplacian : FloatingLaplacian
        The pattern of ``L_G[FF]`` (``size`` boards).
    n_c : int
        Clamped-floating nodes (the first of the floating nodes).
    cinv, cinv_cc : ndarray, shapes (B | 1, n_F, n_F), (B | 1, n_C, n_C)
        ``C^-1`` of the free twins and ``C_CC^-1`` of the clamped twins (a leading axis of 1: shared).
    jump : ndarray, shape (B | 1, n_C, M_T), optional
        ``H`` where the twins are equal (one operator, :attr:`twins` 1); None where they differ (:attr:`twins` 2).
    """

    def __init__(self, laplacian: FloatingLaplacian, n_c: int, cinv: np.ndarray, cinv_cc: np.ndarray,
                 jump: np.ndarray | None = None):
        nf, size, nnz = laplacian.n_f, laplacian.size, laplacian.nnz
        rows, cols = laplacian.rows, laplacian.cols
        self.n_f, self.n_c, self.size, self._nnz = nf, n_c, size, nnz
        if jump is not None:  # equal twins, the charge coordinates: N^T = S^T L_G[FF] D, D = C^-1 S^-T
            self.twins, r, c = 1, rows, cols
            D = np.array(np.broadcast_to(cinv, (max(cinv.shape[0], jump.shape[0]),) + cinv.shape[1:]))
            D[:, :, :n_c] += cinv[:, :, n_c:] @ _t(jump)
            self._jump_t = _t(jump)  # (B | 1, M_T, n_C): H^T
        else:  # a board's 2 n_F rows: the free twin's n_F, then the clamped twin's (its last M_T empty)
            self.twins = 2
            self._inner = np.flatnonzero((rows < n_c) & (cols < n_c))  # the entries of L_G[CC]
            r = np.concatenate([rows, rows[self._inner] + nf])
            c = np.concatenate([cols, cols[self._inner] + nf])
            D = np.zeros((max(cinv.shape[0], cinv_cc.shape[0]), 2 * nf, nf))
            D[:, :nf], D[:, nf:nf + n_c, :n_c] = cinv, cinv_cc
        k, height = r.size, self.twins * nf  # the entries (row by row) and the rows of a board
        shared = D.shape[0] == 1
        board = np.repeat(np.arange(size), k)
        indptr = np.searchsorted(board * height + np.tile(r, size), np.arange(size * height + 1))
        self._data = np.zeros(size * k)
        self._S = csr_array((self._data, np.tile(c, size) + (0 if shared else board * height), indptr),
                            shape=(size * height, height if shared else size * height))
        self._D = D[0] if shared else D.reshape(size * height, nf)

    def matrices(self, free: np.ndarray, clamped: np.ndarray, s: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """The transposed operators of every board, shape (size, twins, n_F, n_F), from the entries of the free and
        the clamped twins' ``L_G[FF]`` (size, nnz) and ``s``, ``shift`` (size,): ``(s N - shift I)^T`` for equal twins,
        else ``(s M - shift I)^T`` and ``(s M_C - shift I)^T`` (padded with zeros to n_F x n_F)."""
        nf, nc, nnz = self.n_f, self.n_c, self._nnz
        data = self._data.reshape(self.size, -1)
        np.multiply(free, s[:, None], out=data[:, :nnz])
        if self.twins == 2:
            np.multiply(clamped[:, self._inner], s[:, None], out=data[:, nnz:])
        M = (self._S @ self._D).reshape(self.size, self.twins, nf * nf)
        if self.twins == 1:  # the rows of the targets: S^T's, - H^T times the clamped-floating rows
            X = M.reshape(self.size, nf, nf)
            X[:, nc:] -= self._jump_t @ X[:, :nc]
        else:
            M[:, 1, :nc * (nf + 1):nf + 1] -= shift[:, None]
        M[:, 0, ::nf + 1] -= shift[:, None]  # the diagonals, strided views
        return M.reshape(self.size, self.twins, nf, nf)


#: Half-widths of the expansions' intervals are rounded up to powers of 2^(1/_GRID) (so that their Bessel
#: coefficients are computed once and kept) and are at least 2^(_GRID_MIN / _GRID).
_GRID, _GRID_MIN = 64, -64 * 40
#: Up to this many floating nodes the recurrence runs with the batch axis last (measured: 5x faster for lab16's 7
#: at B = 1000; slower than B matrix products at delaunay64's 59).
_SMALL = 24


#: The table of expansions keeps none longer than this many terms (rows that would be longer are marked as such,
#: their coefficients never computed): above every engine's :attr:`~BatchedExactEngine.chebyshev_max_terms` (at most
#: ``2 SPARSE_FROM + 10``), far below the ``rho`` terms of the widest intervals (tiny R or capacitances).
_TABLE_MAX_TERMS = 1000
assert _TABLE_MAX_TERMS >= 2 * SPARSE_FROM + 10
#: The first grid index whose expansion is too long for the table whatever its coefficients (``rho`` over
#: ``_TABLE_MAX_TERMS^2``, :func:`~spicelearn.engines.exact.chebyshev_plan`): wider intervals look this row up, so
#: that the table spans a bounded range of indices (tiny R or capacitances: ``rho`` up to 1e300).
_J_TOO_LONG = math.ceil(_GRID * math.log2(_TABLE_MAX_TERMS ** 2))
assert 2.0 ** (_J_TOO_LONG / _GRID) > _TABLE_MAX_TERMS ** 2


def _bessel_terms(j: int) -> np.ndarray | None:
    """The coefficients of ``exp(-x) = sum_k c_k T_k(x / rho - 1)`` on ``[0, 2 rho]``, ``rho = 2^(j / _GRID)``
    (:func:`~spicelearn.engines.exact.chebyshev_plan`: ``2 (-1)^k I_k(rho) e^{-rho}``, the first halved, up to
    where the tail is below :data:`CHEBYSHEV_TOL`); on ``[a, a + 2 rho]`` they are scaled by ``e^{-a}``. None where
    there would be more than ``_TABLE_MAX_TERMS + 1`` of them."""
    return chebyshev_plan(0.0, 2.0 * 2.0 ** (j / _GRID), CHEBYSHEV_TOL, max_terms=_TABLE_MAX_TERMS)[2]


def chebyshev_coefficients(a: np.ndarray, rho: np.ndarray) -> tuple:
    """Coefficients of ``exp(-x)`` on ``[a_b, a_b + 2 rho_b]`` for every board, each interval widened to the grid.

    Parameters
    ----------
    a, rho : ndarray, shape (B,)
        Lower ends (>= 0) and half-widths of the intervals that hold the spectra of ``t A``.

    Returns
    -------
    coef : ndarray, shape (B, m)
        ``exp(-x) = sum_k coef[b, k] T_k(u)``, zero past each board's own length; zero rows where the
        transient has decayed below the tolerance over the whole interval (``e^{-a} <= tol``).
    center, half : ndarray, shape (B,)
        ``u = (x - center) / half``.
    terms : ndarray of int, shape (B,)
        The length of each board's expansion (0 where decayed; ``_TABLE_MAX_TERMS + 2`` where longer).
    """
    a = np.maximum(a * (1.0 - 1e-9), 0.0)  # below the rounding of the bounds
    j = np.ceil(_GRID * np.log2(np.maximum(rho + 1e-9 * a, 2.0 ** (_GRID_MIN / _GRID)))).astype(int)
    half = 2.0 ** (j / _GRID)
    table, size = _TABLE.rows(np.minimum(j, _J_TOO_LONG))
    scale = np.exp(-a)
    decayed = scale <= CHEBYSHEV_TOL
    scale[decayed] = 0.0
    return table * scale[:, None], a + half, half, np.where(decayed, 0, size)


class _BesselTable:
    """The rows of :func:`_bessel_terms` for a contiguous range of grid indices, zero-padded into one array, so
    that every tick looks its boards' rows up by indexing (computing only rows never needed before)."""

    def __init__(self):
        self.j0, self.coef, self.size = 0, np.zeros((0, 1)), np.zeros(0, dtype=int)

    def rows(self, j: np.ndarray) -> tuple:
        """``(coef (B, m), size (B,))``: the rows of grid indices ``j`` (B,), ``m`` the longest of them."""
        lo, hi = int(j.min()), int(j.max())
        if not self.size.size or lo < self.j0 or hi >= self.j0 + self.size.size:
            j0 = min(lo, self.j0) if self.size.size else lo
            j1 = max(hi + 1, self.j0 + self.size.size) if self.size.size else hi + 1
            coef, size = np.zeros((j1 - j0, self.coef.shape[1])), np.zeros(j1 - j0, dtype=int)
            coef[self.j0 - j0:self.j0 - j0 + self.size.size], size[self.j0 - j0:self.j0 - j0 + self.size.size] = \
                self.coef, self.size
            self.j0, self.coef, self.size = j0, coef, size
        idx = j - self.j0
        missing = idx[self.size[idx] == 0]
        for i in np.unique(missing) if missing.size else ():
            row = _bessel_terms(int(i) + self.j0)
            if row is None:  # too long for the Chebyshev path: its length marked, no coefficients
                self.size[i] = _TABLE_MAX_TERMS + 2
                continue
            if row.size > self.coef.shape[1]:
                self.coef = np.pad(self.coef, ((0, 0), (0, row.size - self.coef.shape[1])))
            self.coef[i, :row.size], self.size[i] = row, row.size
        size = self.size[idx]
        return self.coef[idx, :int(size.max())], size


_TABLE = _BesselTable()


@dataclass(frozen=True, eq=False)
class BatchState:
    """State of B pairs of twin networks.

    Attributes
    ----------
    positions : ndarray of int, shape (B, E)
    v_free, v_clamped : ndarray, shape (B, N)
    clamp : ndarray, shape (B, M_T)
    free, clamped : _Tick
        What the positions fix for the free and the clamped twins (one object where they are equal).
    coords : tuple, optional
        ``(v_free, v_clamped, y_free (B, n_F), y1 (B, n_C))``: both twins' coordinates in their capacitors'
        frames where the engine computed them, valid while ``v_free`` and ``v_clamped`` are these very arrays
        (as the single engine's :class:`~spicelearn.engines.exact.ExactState` keeps them).
    """

    positions: np.ndarray
    v_free: np.ndarray
    v_clamped: np.ndarray
    clamp: np.ndarray
    free: _Tick = None
    clamped: _Tick = None
    coords: tuple | None = None


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
        if not isinstance(network, CompiledNetwork):
            raise ConfigError(f"`network` must be a compiled network (load_network), got {type(network).__name__}")
        for name, value in (("tasks", tasks), ("boards", boards)):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"`{name}` must be a sequence (list or tuple), one per board, got "
                                  f"{type(value).__name__}")
        tasks, boards = tuple(tasks), tuple(boards)
        if not tasks or len(tasks) != len(boards):
            raise ConfigError(f"`tasks` and `boards` must be two non-empty sequences of one length, got "
                              f"{len(tasks)} and {len(boards)}")
        for b, (task, board) in enumerate(zip(tasks, boards)):
            if not isinstance(board, Board):
                raise ConfigError(f"`boards[{b}]` must be a spicelearn Board, got {type(board).__name__}")
            if not isinstance(task, BoundTask):
                raise ConfigError(f"`tasks[{b}]` must be a task bound to the network (task.bind(network)), got "
                                  f"{type(task).__name__}")
            if task.network is not network:
                raise ConfigError(f"`tasks[{b}]` is bound to another network; bind every task to this one")
            if task is not tasks[0] and not (np.array_equal(task.source_index, tasks[0].source_index)
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
        self.n_f = self.floating.size
        free = self._frames(0)
        self.frames = (free, free if all(b.capacitors_identical for b in boards) else self._frames(1))
        self._twins_identical = all(b.twins_identical for b in boards)
        self._scratch = {}  # buffers kept between ticks (_buffer)
        # larger networks: every board's floating Laplacian, sparse; they work in node voltages (_NodeOperators)
        # unless every frame is diagonal (capacitors to ground, where A is the Laplacian scaled, no product, and the
        # clamped twin's matrix a block of it: delaunay64 global, B = 64, 1.18x the node voltages' board-ticks)
        self._laplacian = FloatingLaplacian(network, self.floating, self.size) if self.n_f > _SMALL else None
        self._node = self.n_f > _SMALL and any(f.kinv_diag is None for f in self.frames)
        if self._node:
            n, nc, f, c = self.n_f, self.n_c, free, self.frames[1]
            L = self._laplacian
            kinv_cc = c.Kinv[:, :nc, :nc]  # K^-1's leading block is K_CC^-1 (K lower triangular)
            # a clamp step conserves the clamped-floating nodes' charge C_CC v_C + C_CT v_T: v_C moves by -H dV_T
            self._jump = _t(c.K[:, nc:, :nc] @ kinv_cc)  # (B | 1, n_C, M_T): H = C_CC^-1 C_CT = (K_TC K_CC^-1)^T
            self._ops = _NodeOperators(L, nc, _t(f.Kinv) @ f.Kinv, _t(kinv_cc) @ kinv_cc,
                                       self._jump if self._twins_identical else None)
            self._b_floating = csr_array(network.incidence[:, self.floating].T)  # (n_F, E): B_F^T
            # the equilibria: an independent set of the clamped-floating nodes eliminated, then the dense Cholesky
            # solve of the Schur complement on the rest (the targets among them)
            self._eliminated = EliminatedLaplacian(L, keep=np.arange(nc, n))
            self._diagonal = np.flatnonzero(L.rows == L.cols)  # the entries on the diagonal, and their rows
            self._diagonal_row = L.rows[self._diagonal]
        # bounds of the spectra (_rate_bounds): per-edge capacitors, the edges' g / c; capacitors to ground, the
        # edges' sums of the rates' diagonal (exact.grounded_rate_bound)
        self._per_edge = np.array([b.hardware.capacitance_model == "per_edge" for b in boards])
        self._ratio_c = tuple(1.0 / np.stack([b.twin_capacitance(t) if pe else np.ones(network.n_edges)
                                              for b, pe in zip(boards, self._per_edge)], axis=1) for t in (0, 1))
        self._unit_T = np.eye(self.n_f)[:, self.n_c:]  # (n_F, M_T): the target coordinates
        #: The Chebyshev path takes ticks whose longest expansion needs at most this many terms.
        self.chebyshev_max_terms = _max_terms(self.n_f)
        # conductances: 1 / ((p + 1) (r_ab / n) + wiper) + 1 / leakage, as Board.conductance computes them
        self._top = np.array([[b.hardware.pot.n_positions - 1] for b in boards])  # (B, 1)
        self._step_r = np.stack([b.r_ab / b.hardware.pot.n_positions for b in boards])  # (B, 2, E)
        self._wiper = np.stack([b.wiper for b in boards])
        self._inv_leak = 1.0 / np.stack([b.leakage for b in boards])
        self.source_voltage = np.stack([t.source_voltage for t in tasks])  # (B, M_S)
        self.b_src = _mv(np.broadcast_to(network.incidence[:, self.source_index],
                                         (self.size,) + (network.n_edges, self.source_index.size)),
                         self.source_voltage)  # (B, E)
        # voltages board-fastest (Fortran order) for small networks, as their einsums over the batch lay them out
        self._v_template_order = "F" if self.n_f <= _SMALL else "C"
        self._v_template = np.zeros((self.size, network.n_nodes), order=self._v_template_order)
        self._v_template[:, self.source_index] = self.source_voltage

    # -- helpers -------------------------------------------------------------------
    def _frames(self, twin: int) -> _Frames:
        """Every board's frame of ``twin`` (:func:`~spicelearn.engines.exact.capacitor_frame`); boards with the
        same capacitors share one computation, and a batch whose boards all have the same, one frame."""
        cache, out = {}, []
        for board in self.boards:
            key = (board.hardware.capacitance_model, board.twin_capacitance(twin).tobytes())
            if key not in cache:
                f = capacitor_frame(self.network, board, self.floating, self.n_c, twin)
                cache[key] = (f.K, f.Kinv, np.ascontiguousarray(f.Kinv.T), f.W, f.K22T, f.Kp, f.kinv_diag)
            out.append(cache[key])
        frames = _Frames(*(None if any(p is None for p in parts) else np.stack(parts)
                           for parts in zip(*(out[:1] if len(cache) == 1 else out))))
        if frames.shared and self.n_f <= _SMALL:
            W = frames.W[0]
            i, j = np.tril_indices(self.n_f)
            sym = np.empty((self.n_f, self.n_f), dtype=np.intp)
            sym[i, j] = sym[j, i] = np.arange(i.size)
            frames = replace(frames, kr=W[i] * W[j], sym=sym.reshape(-1))
        return frames

    def conductance(self, positions: np.ndarray, twin: int) -> np.ndarray:
        """Conductance (S) of every edge of every board's ``twin`` at ``positions`` (B, E), shape (B, E)."""
        return 1.0 / ((positions + 1.0) * self._step_r[:, twin] + self._wiper[:, twin]) + self._inv_leak[:, twin]

    def _ticks(self, positions) -> tuple:
        """``(free, clamped)`` :class:`_Tick` at ``positions`` (B, E); one object where the twins are equal."""
        free = self._tick(0, self.conductance(positions, 0))
        if self._twins_identical:
            return free, free
        return free, self._tick(1, self.conductance(positions, 1))

    def _tick(self, twin: int, g: np.ndarray) -> _Tick:
        frames, nc = self.frames[twin], self.n_c
        gT = np.ascontiguousarray(g.T)  # (E, B): reductions over the edges run along rows (15x faster for lab16)
        rates = None if self._per_edge.all() else np.zeros((self.size, self.network.n_nodes))  # capacitors to ground:
        # the rates' diagonal s_i / c_i at the floating nodes (_rate_bounds)
        A = entries = make_A = None
        if self._node:  # larger networks, node voltages: solves of L_G[FF] (EliminatedLaplacian); the transient's
            # operators are made by relax
            entries = self._laplacian.entries(g)
            r = (self._b_floating @ (gT * self.b_src.T)).T  # B_F^T (g V) board by board (a column each)
            if rates is not None:
                kinv = np.diagonal(frames.Kinv, 0, 1, 2)[:, self._diagonal_row]  # c_i^-1/2 where K is diagonal
                rates[:, self.floating[self._diagonal_row]] = entries[:, self._diagonal] * kinv * kinv

            def make_A():  # the eigen path's matrices (capacitors' frame)
                return frame_transform(self._laplacian, g, frames.kinv_diag, frames.Kinv, frames.KinvT)
        else:
            if frames.kr is not None:  # one frame: A of every board in one einsum (einsum's loops, not BLAS: each
                # board's sums in one order whatever the batch), its lower triangle, then mirrored (lab16: 84 against
                # 135 us for 1,000 boards)
                lower = np.einsum("xe,eb->xb", frames.kr, gT)
                A = np.moveaxis(lower[frames.sym].reshape(self.n_f, self.n_f, self.size), -1, 0)
                r = np.einsum("ie,eb->bi", frames.W[0], gT * self.b_src.T)
            elif self.n_f <= _SMALL:
                A = (frames.W * g[:, None, :]) @ _t(frames.W)
                r = _mv(frames.W, g * self.b_src)
            else:  # diagonal frames: A is L_G[FF] scaled by k_i k_j (exact.frame_transform)
                A = frame_transform(self._laplacian, g, frames.kinv_diag, frames.Kinv, frames.KinvT)
                r = _mv(frames.W, g * self.b_src)
            if rates is not None:
                rates[:, self.floating] = np.diagonal(A, 0, 1, 2)
        rhs = np.concatenate([r[:, :, None], np.broadcast_to(self._unit_T, (self.size,) + self._unit_T.shape)], axis=2)
        Z = self._eliminated.solve(entries, rhs, _solve_spd, reduce=1) if self._node else _solve_spd(A, rhs)
        lo, hi = self._rate_bounds(twin, gT, rates)
        return _Tick(A=A, ystar=-Z[:, :, 0], P=Z[:, :nc, 1:], Q=Z[:, nc:, 1:], lo=lo, hi=hi, n_c=nc, entries=entries,
                     make_A=make_A)

    def _rate_bounds(self, twin: int, gT: np.ndarray, rates: np.ndarray | None) -> tuple:
        """Bounds ``(lo, hi)`` (B,) on the spectra of every board's ``twin``: per-edge capacitors, the edges' ``g / c``
        (:func:`~spicelearn.engines.exact.per_edge_rate_bounds`, ``gT`` (E, B)); capacitors to ground, ``[0,
        edge_rate_bound(rates)]`` (:func:`~spicelearn.engines.exact.edge_rate_bound`, ``rates`` (B, N) the rates'
        diagonal ``s_i / c_i`` at the floating nodes, zero elsewhere; None where every board has per-edge ones)."""
        lo, hi = per_edge_rate_bounds(gT, self._ratio_c[twin], axis=0)  # (E, B): along rows
        if rates is None:
            return lo, hi
        grounded = edge_rate_bound(rates, self.network.edge_nodes)
        return np.where(self._per_edge, lo, 0.0), np.where(self._per_edge, hi, grounded)

    def _to_v(self, y: np.ndarray, twin: int = 0) -> np.ndarray:
        """Node voltages (B, N) from the coordinates ``y`` (B, n_F) of one twin: ``v_F = K^-T y``, or ``y`` itself
        where the engine works in node voltages."""
        if self._node:
            v = np.array(self._v_template)
            v[:, self.floating] = y
            return v
        Kp = self.frames[twin].Kp
        if self.n_f <= _SMALL and Kp.shape[0] == 1:  # one frame: an einsum over the batch, the voltages laid out
            # board-fastest (Fortran order) as the coordinates are (lab16: 13 against 35 us for 1,000 boards)
            v = np.einsum("bj,jn->bn", y, Kp[0], order="F")
            v += self._v_template
            return v
        # a row per board: y^T K^-1, scattered (Kp); the voltages laid out as the template is
        return np.add(np.matmul(y[:, None, :], Kp)[:, 0], self._v_template, order=self._v_template_order)

    def _to_y(self, v: np.ndarray, twin: int = 0) -> np.ndarray:
        """The coordinates ``y = K^T v_F`` (B, n_F) of one twin from node voltages (B, N) (``v_F`` where the engine
        works in node voltages)."""
        if self._node:
            return v[:, self.floating]
        return _mv(_t(self.frames[twin].K), v[:, self.floating])

    def _stack_y(self, y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
        """The clamped twin's coordinates ``[y1, y2]`` (B, n_F) from (B, n_C) and (B, M_T); board-fastest for small
        networks (the layout of their einsums over the batch), else a row per board (BLAS's)."""
        y = np.empty((y1.shape[0], self.n_f), order="F" if self.n_f <= _SMALL else "C")
        y[:, :y1.shape[1]], y[:, y1.shape[1]:] = y1, y2
        return y

    def _target_coords(self, clamp: np.ndarray) -> np.ndarray:
        """The clamped twin's target coordinates (B, M_T) at clamp voltages (B, M_T): ``K_TT^T V_T``, or ``V_T``."""
        return clamp if self._node else _mv(self.frames[1].K22T, clamp)

    def _coords(self, state: BatchState) -> tuple:
        """``(y_free (B, n_F), y1 (B, n_C))`` of a state: kept where the engine made its voltages, else computed
        (a state made by ``dataclasses.replace`` with other voltages)."""
        c = state.coords
        if c is not None and c[0] is state.v_free and c[1] is state.v_clamped:
            return c[2], c[3]
        return self._to_y(state.v_free), self._to_y(state.v_clamped, 1)[:, :self.n_c]

    @staticmethod
    def _sub_resolvent(tick: _Tick, b: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``sum_k w_k (A11 + z_k)^-1 b`` per board, real part, shape (B, n_C); ``z``, ``w`` (B, K).

        Schur complement of the resolvent of A: with ``R = (A + z)^-1``,
        ``(A11 + z)^-1 b = U1 D (c - U2^T R22^-1 U2 D c)``, ``c = U1^T b``,
        ``D = (lam + z)^-1``, ``R22 = U2 D U2^T`` (M_T x M_T).
        """
        lam, _, U1, U2, U2U2 = tick.eigen()
        m = U2.shape[1]
        D = _reciprocal(lam[:, :, None] + z.real[:, None, :], z.imag[:, None, :])  # (B, n_F, K)
        c = _mv(_t(U1), b)
        Dc = D * c[:, :, None]
        p2 = (U2 @ np.ascontiguousarray(Dc).view(np.float64)).view(np.complex128)  # (B, M_T, K)
        R22 = (U2U2 @ np.ascontiguousarray(D).view(np.float64)).view(np.complex128)
        R22 = np.moveaxis(R22.reshape(R22.shape[0], m, m, -1), -1, 1)  # (B, K, M_T, M_T)
        q = _solve_small(R22, _t(p2))  # (B, K, M_T)
        e = _mv(Dc - D * (_t(U2) @ _t(q)), w)  # (B, n_F)
        return _mv(U1, e.real)

    @staticmethod
    def _clamped_equilibrium_y1(tick: _Tick, y2: np.ndarray) -> np.ndarray:
        """Clamped equilibrium from the free one, a rank-M_T correction (block inverse of A):
        ``y1* = ystar_1 + A11^-1 A12 (ystar_2 - y2)``, ``A11^-1 A12 = -[A^-1]_12 [A^-1]_22^-1``."""
        nc = tick.n_c
        return tick.ystar[:, :nc] - _mv(tick.P, _solve_small(tick.Q, tick.ystar[:, nc:] - y2))

    def _transient(self, free: _Tick, clamped: _Tick, x: np.ndarray, x1: np.ndarray, d: np.ndarray) -> tuple:
        """``exp(-d M) x`` (B, n_F) of the free twins and ``exp(-d M_C) x1`` (B, n_C) of the clamped twins, ``M`` their
        rates in the engine's coordinates.

        Chebyshev expansions on the bounds of the spectra (:func:`chebyshev_coefficients`), one stacked recurrence
        for both twins, on the boards whose expansion needs at most :attr:`chebyshev_max_terms` terms; on the others
        the eigen-decomposition (free twins) and the contour quadrature (clamped twins), each board its own path (a
        board's result is its own: the others' expansions in the recurrence are zero)."""
        lo, hi = np.minimum(free.lo, clamped.lo) * d, np.maximum(free.hi, clamped.hi) * d
        coef, center, half, terms = chebyshev_coefficients(lo, 0.5 * (hi - lo))
        slow = np.flatnonzero(terms > self.chebyshev_max_terms)
        if slow.size == d.size:
            return self._eigen_transient(free, clamped, x, x1, d)
        s, shift = 2.0 * d / half, 2.0 * center / half
        if slow.size:
            coef = coef[:, :int(np.delete(terms, slow).max())]
            coef[slow], s[slow], shift[slow] = 0.0, 0.0, 0.0
        out, out1 = self._chebyshev(free, clamped, x, x1, coef, s, shift)
        if slow.size:
            f = free.take(slow)
            out[slow], out1[slow] = self._eigen_transient(f, f if clamped is free else clamped.take(slow), x[slow],
                                                          x1[slow], d[slow], slow)
        return out, out1

    def _eigen_transient(self, free: _Tick, clamped: _Tick, x, x1, d, boards=slice(None)) -> tuple:
        """The transients of the ``boards`` of ``free`` and ``clamped`` through the eigen-decompositions in the
        capacitors' frames: the free twins mode by mode, the clamped twins by the contour quadrature of the inverse
        Laplace transform. Where the engine works in node voltages, ``x`` and ``x1`` go to the frames and back
        (``y = K^T v``)."""
        if self._node:
            K, K1 = (f.K if f.shared else f.K[boards] for f in self.frames)
            Ki, Ki1 = (f.Kinv if f.shared else f.Kinv[boards] for f in self.frames)
            nc = self.n_c
            y, y1 = self._eigen_frames(free, clamped, _mv(_t(K), x), _mv(_t(K1[:, :nc, :nc]), x1), d)
            return _mv(_t(Ki), y), _mv(_t(Ki1[:, :nc, :nc]), y1)
        return self._eigen_frames(free, clamped, x, x1, d)

    def _eigen_frames(self, free: _Tick, clamped: _Tick, x, x1, d) -> tuple:
        """:meth:`_eigen_transient` in the capacitors' frames."""
        lam, U = free.eigen()[:2]
        out = _mv(U, np.exp(-lam * d[:, None]) * _mv(_t(U), x))
        if not self.n_c:
            return out, x1
        moving = d > 0
        t = np.where(moving, d, 1.0)[:, None]
        out1 = self._sub_resolvent(clamped, x1, _QUAD_S / t, _QUAD_W / t)
        return out, np.where(moving[:, None], out1, x1)

    def _chebyshev(self, free, clamped, x, x1, coef, s, shift) -> tuple:
        """The Chebyshev recurrence ``T_{k+1} = 2u T_k - T_{k-1}``, ``2u = s M - shift`` (B,), on the stacked vectors
        of both twins, the sums ``sum_k coef_k T_k`` (coef (B, m))."""
        B, n, nc = x.shape[0], self.n_f, self.n_c
        m = coef.shape[1]
        idx, idc = np.arange(n), np.arange(nc)
        if self.n_f <= _SMALL:  # the batch axis last: one einsum over all boards beats B tiny matrix products
            # an einsum per twin and term: the free twin's matrix, and the clamped twin's A11, which for equal twins
            # is the free twin's leading block (lab16: 20 against 24 us a term for one einsum on both twins with the
            # clamped twin's matrix padded with zeros)
            Mf = np.multiply(np.moveaxis(free.A, 0, -1), s, out=self._buffer("small M", (n, n, self.size))[..., :B])
            Mf[idx, idx] -= shift
            if clamped is free:
                Mc = Mf[:nc, :nc]
            else:
                Mc = np.multiply(np.moveaxis(clamped.A, 0, -1)[:nc, :nc], s,
                                 out=self._buffer("small M11", (nc, nc, self.size))[..., :B])
                Mc[idc, idc] -= shift
            terms = self._buffer("small terms", (m, 2, n, self.size))[..., :B]  # T_k, the batch axis last; the
            terms[0].fill(0.0)  # clamped twin's target rows stay zero
            terms[0, 0], terms[0, 1, :nc] = x.T, x1.T

            def product(y, out):
                np.einsum("ijb,jb->ib", Mf, y[0], out=out[0])
                np.einsum("ijb,jb->ib", Mc, y[1, :nc], out=out[1, :nc])
                return out

            _recurrence(terms, product)
            # the terms in order (see below); the coefficients contiguous along the batch (einsum's loop over the
            # boards then runs on unit strides: 80 against 180 us for lab16's 1,000 boards of 26 terms)
            acc = np.einsum("kb,kpib->pib", np.ascontiguousarray(coef.T), terms)
            return acc[0].T, acc[1, :nc].T
        # larger networks: the terms T_k (B, 2, n, 1) of the batch one after another in a buffer kept between ticks,
        # the twins' vectors one column each, a matrix-vector product per twin and term (numpy takes gemv for a
        # single column: two of them cost half a product with two columns). Equal twins share each board's matrix
        # (P = 1, broadcast; the clamped twin's target rows zeroed: [2u [y1; 0]]_1 = 2u_11 y1): in the capacitors'
        # frames A, in node voltages N in the charge coordinates (_NodeOperators); twins that differ have one each
        # (P = 2, the clamped twin's padded with zeros: its vector's target rows stay zero)
        zero = None
        if self._node:
            M = _t(self._ops.matrices(free.entries, clamped.entries, s, shift))  # (B, P, n, n)
            if M.shape[1] == 1:  # the charge coordinates: z = [v_C + H v_T, v_T] (the clamped twin's: v_C)
                x = np.array(x)
                x[:, :nc] += _mv(self._jump, x[:, nc:])
                zero = (slice(None), 1, slice(nc, None))
        else:
            P = 1 if clamped is free else 2
            M = self._buffer(("M", P), (self.size, P, n, n))[:B]  # its padding stays zero
            np.multiply(free.A, s[:, None, None], out=M[:, 0])
            M[:, 0, idx, idx] -= shift[:, None]
            if P == 2:
                np.multiply(clamped.A[:, :nc, :nc], s[:, None, None], out=M[:, 1, :nc, :nc])
                M[:, 1, idc, idc] -= shift[:, None]
            else:
                zero = (slice(None), 1, slice(nc, None))
        buf = self._buffer("terms", (m, self.size, 2, n, 1))[:, :B]
        t0 = buf[0]
        t0.fill(0.0)
        t0[:, 0, :, 0] = x
        t0[:, 1, :nc, 0] = x1
        _recurrence(buf, lambda y, out: np.matmul(M, y, out=out), zero=zero)
        # sum_k coef_k T_k, the terms in order for every board (einsum's loop: trailing zero coefficients of a
        # shorter expansion add exact zeros, so a board's sum does not depend on the batch's longest expansion)
        acc = np.einsum("bk,kbtn->btn", coef, buf[..., 0])
        if zero is not None and self._node:  # back from the charge coordinates
            acc[:, 0, :nc] -= _mv(self._jump, acc[:, 0, nc:])
        return acc[:, 0], acc[:, 1, :nc]

    def _buffer(self, key, shape: tuple) -> np.ndarray:
        """A zeroed array of ``shape`` kept between ticks under ``key`` (fresh megabytes every tick cost their pages
        again); its first axis grows when a later call asks for more (the recurrence's terms)."""
        buf = self._scratch.get(key)
        if buf is None or buf.shape[0] < shape[0]:
            rows = max(shape[0], 2 * buf.shape[0] if buf is not None else 0)
            buf = self._scratch[key] = np.zeros((rows,) + tuple(shape[1:]))
        return buf[:shape[0]]

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
        c = np.asarray(clamp)
        shape = (self.size, self.target_index.size)
        if c.shape != shape or c.dtype.kind not in "iuf" or not np.all(np.isfinite(c)):
            raise ConfigError(f"`clamp` must be finite volts with shape {shape}, got dtype {c.dtype} and shape "
                              f"{c.shape}")
        return c.astype(float, copy=False)

    def _check_state(self, state) -> None:
        if not isinstance(state, BatchState) or np.shape(state.v_free) != (self.size, self.network.n_nodes):
            got = f"{type(state).__name__}" + (f" of shape {np.shape(state.v_free)}" if isinstance(state, BatchState)
                                                else "")
            raise ConfigError(f"`state` must be a state this engine returned, ({self.size}, {self.network.n_nodes}) "
                              f"voltages; got {got}")

    # -- the protocol, batched ----------------------------------------------------------
    def init(self, positions, clamp=None, default_clamp=None) -> BatchState:
        """Both twins of every board at equilibrium at ``positions`` (B, E); ``clamp`` (B, M_T), or
        ``default_clamp(v_free (B, N)) -> (B, M_T)`` of it (the supervisors' nudge)."""
        positions = self._check_positions(positions)
        free, clamped = self._ticks(positions)
        v_free = self._to_v(free.ystar)
        if clamp is None:
            if not callable(default_clamp):
                raise ConfigError("give `clamp` (B, M_T) or the supervisors' `default_clamp`, a function of the free "
                                  f"twins' voltages (B, N); got {type(default_clamp).__name__}")
            clamp = default_clamp(v_free)
        clamp = self._check_clamp(clamp)
        y2 = self._target_coords(clamp)
        y1 = self._clamped_equilibrium_y1(clamped, y2)
        v_clamped = self._to_v(self._stack_y(y1, y2), 1)
        v_clamped[:, self.target_index] = clamp
        return BatchState(positions, v_free, v_clamped, clamp, free, clamped, (v_free, v_clamped, free.ystar, y1))

    def relax(self, state: BatchState, clamp, duration) -> BatchState:
        """Step every board's clamps to ``clamp`` (B, M_T), then relax ``duration`` (B,) seconds (0: the jump
        alone, which conserves the charge on the clamped twin's floating nodes: its ``y1``, or ``C_CC v_C + C_CT v_T``
        in node voltages)."""
        self._check_state(state)
        clamp = self._check_clamp(clamp)
        d = np.asarray(duration)
        if d.shape != (self.size,) or d.dtype.kind not in "iuf" or not np.all(np.isfinite(d) & (d >= 0)):
            raise ConfigError(f"`duration` must be finite and >= 0 seconds with shape ({self.size},), got {d!r:.80}")
        d = d.astype(float, copy=False)
        free, clamped, nc = state.free, state.clamped, self.n_c
        y2 = self._target_coords(clamp)
        y1star = self._clamped_equilibrium_y1(clamped, y2)
        y_free, y1 = self._coords(state)
        if self._node:  # the jump: v_C - C_CC^-1 C_CT dV_T (in the capacitors' frames y1 is conserved)
            y1 = y1 - _mv(self._jump, clamp - state.v_clamped[:, self.target_index])
        x, x1 = self._transient(free, clamped, y_free - free.ystar, y1 - y1star, d)
        y_free, y1 = free.ystar + x, y1star + x1
        v_free = self._to_v(y_free)
        v_clamped = self._to_v(self._stack_y(y1, y2), 1)
        v_clamped[:, self.target_index] = clamp
        return replace(state, v_free=v_free, v_clamped=v_clamped, clamp=clamp, coords=(v_free, v_clamped, y_free, y1))

    def set_positions(self, state: BatchState, positions) -> BatchState:
        """Clock tick of every board: new resistances; node voltages do not jump."""
        self._check_state(state)
        positions = self._check_positions(positions)
        free, clamped = self._ticks(positions)
        return replace(state, positions=positions, free=free, clamped=clamped)

    def equilibrium_free(self, state: BatchState) -> np.ndarray:
        """Free twins' equilibrium voltages at the state's resistances, shape (B, N)."""
        self._check_state(state)
        return self._to_v(state.free.ystar)

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
