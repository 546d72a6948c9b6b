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
conservation on the floating nodes).

In the fast path (``method="dense"``) each tick (``set_positions``) forms ``A`` and
solves with it once (Cholesky); the equilibria are direct solves:

* free twin: ``y* = -A^{-1} r``;
* clamped twin: ``y1* = ystar_1 + G (ystar_2 - y2)``, ``G = A11^{-1} A12 =
  -[A^-1]_12 [A^-1]_22^-1`` (block inverse), the target columns of ``A^-1`` coming
  from the same solve ``A X = [r, E_T]``.

``A = K^-1 L_G[FF] K^-T`` is formed from the Laplacian of the floating nodes,
assembled by one ``bincount`` into a sparse matrix (:class:`FloatingLaplacian`): its
product with ``K^-T`` costs a few entries a row, the one with ``K^-1`` n_F^3.

The transient ``y(t) = y* + exp(-t A) (y0 - y*)`` (and ``exp(-t A11)`` for the
clamped twin) is computed one of two ways, chosen per tick (``method="dense"``):

* **Chebyshev** (the fast path): the spectrum of ``t A`` lies in a known interval
  ``[t lo, t hi]`` (per-edge capacitors: ``lo, hi = min, max g_j / c_j``, the
  Rayleigh quotient of the pencil being a weighted mean of the edges' ratios;
  global capacitance: ``[0, max_(u,v) t_u + t_v]``, ``t_i = sum_{j~i} g_j / C_i`` at
  floating nodes, Gershgorin on the edges, :func:`edge_rate_bound`), so
  ``exp(-x)`` is expanded in Chebyshev polynomials on that interval, with
  coefficients ``2 (-1)^k e^{-t lo} I_k(rho)`` (modified Bessel functions, exact
  tail bound) truncated where the tail is below ``1e-15``. The three-term
  recurrence ``T_{k+1} = [-I, 2u] [T_{k-1}; T_k]`` is one matrix product per term
  for both twins (:class:`_Recurrence`: the terms are adjacent blocks of one buffer,
  the twins its two columns; the clamped twin's vector has zeros at the targets, so
  ``A`` times it is ``A11`` times it where the target rows are zeroed again); from
  :data:`SPLIT_TWINS_FROM` floating nodes, a matrix-vector product per twin. The
  interval is rounded outward on a grid (1.1 % steps) so that the coefficients are
  computed once per interval and cached.
* **eigen** (every regime): one symmetric eigensolve ``A = U diag(lam) U^T``
  (computed only when needed, and cached with the tick's operators); the free
  twin decays mode by mode; the clamped twin's resolvents follow from those of
  ``A`` through the Schur complement of the inverse,
  ``(A11 + z)^-1 = R11 - R12 R22^-1 R21`` with ``R = (A + z)^-1 = U (lam + z)^-1 U^T``
  and ``R22`` only M_T x M_T, and the exponential is a 15-node quadrature of the
  inverse Laplace transform on a hyperbolic contour (Weideman & Trefethen 2007),
  accurate to ~1e-13 for any spectrum on [0, inf), so any R.

The Chebyshev expansion needs about ``t (hi - lo) / 2`` terms (more when the
interval is wide and the transient has not decayed: small R); above
:data:`CHEBYSHEV_MAX_TERMS` terms the eigen path is cheaper and ``dense`` takes
it. A transient that has decayed below 1e-15 over the tick (``t lo > 35``) costs
nothing: the twins sit at their equilibria.

Networks of :data:`SPARSE_FROM` floating nodes or more take the sparse path of
:mod:`spicelearn.engines.sparse` (sparse factorisations of the Laplacians and a
shift-and-invert Krylov approximation of the exponential's action); ``method``
forces a path. The default (``method=None``) is :data:`DENSE_DEFAULT` (``dense``)
below that size; ``eigen`` is the arithmetic of spicelearn 0.2, operation for operation.

Node voltages come from the coordinates by one product with ``K^-1`` scattered to the
floating nodes' columns (both twins at once where their capacitors are equal), and a
state keeps the coordinates it was made from, so the next tick starts from them.

Both capacitance models share this code: ``global`` is ``L_C = diag(C)``.

A board whose twins differ (pots of different R_AB, wiper or leakage) gives the
clamped twin its own matrix ``A_C`` at its own conductances (and its own
factorisation); twins with different capacitors also have their own Cholesky
frame (``K``, ``W``). With equal twins (every nominal board) the clamped twin
reuses the free twin's operators, as above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack
from scipy.special import ive

from ..errors import ConfigError, NetworkError
from ..model.board import Board
from ..model.network import CompiledNetwork
from ..model.task import BoundTask
from .base import Engine, EngineState

__all__ = ["ExactEngine", "ExactState", "contour_quadrature", "capacitor_frame", "chebyshev_plan", "FloatingLaplacian",
           "METHODS", "SPARSE_FROM", "CHEBYSHEV_MAX_TERMS", "DENSE_DEFAULT"]

#: The engine's ways of solving a tick (``ExactEngine(..., method=...)``).
METHODS = ("auto", "dense", "chebyshev", "eigen", "sparse")

#: ``method="auto"`` takes the sparse path from this many floating nodes of the free twin on (measured:
#: ``benchmarks/bench_large.py --sizes 240 256 272 288 304 --repeats 7``: sparse / dense 1.31 at 256 nodes,
#: 1.27 at 272, 0.87 at 288; the dense path's paired recurrence moved it up from 250. Measured again with the sparse
#: Laplacian in the dense path, on another machine: 1.12 at 256, 1.06 at 264, 0.90 to 0.97 at 272 and 276, the dense
#: path jumping to 3 ms a tick at some sizes (1.7 to 2 ms at the others), so the crossover still lies near here).
SPARSE_FROM = 280

#: The dense path of the default ``method=None``: ``"dense"``, the fast path (benchmarks/bench_exact.py).
#: ``"eigen"`` is the previous releases' arithmetic, operation for operation: tests/test_reference.py runs it
#: against the reference runs bit for bit, and the default against them to 1e-12 V with the same positions (an
#: exact comparator tie no longer depends on the last bits: :data:`spicelearn.model.rules.TIE`).
DENSE_DEFAULT = "dense"

#: ``method="dense"`` takes the eigen path where the Chebyshev expansion needs more terms than this
#: (measured: ``benchmarks/bench_exact.py --crossover``).
CHEBYSHEV_MAX_TERMS = 150

#: Chebyshev expansions stop where the tail of the coefficients falls below this, relative to the vector.
CHEBYSHEV_TOL = 1e-15

#: From this many floating nodes, equal twins run a recurrence each, one matrix-vector product a term (gemv),
#: rather than one product with both as two columns (gemm); measured per term, two gemv against one gemm:
#: 0.79 against 0.58 us at 16 nodes, 0.78 against 0.90 at 24, 1.46 against 2.78 at 59 (delaunay64: 1.14x in the
#: minimal loop of ``benchmarks/bench_exact.py``, whole runs 1.13x to 1.4x in three measurements).
SPLIT_TWINS_FROM = 24

#: Intervals of the Chebyshev expansion are rounded outward to powers of 2^(1/_GRID).
_GRID = 64


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


#: ``method="chebyshev"`` (forced) refuses a tick whose expansion would need more terms than this.
FORCED_MAX_TERMS = 10_000


@lru_cache(maxsize=4096)
def _plan(ia: int | None, ib: int, max_terms: int) -> tuple:
    lo = 0.0 if ia is None else 2.0 ** (ia / _GRID)
    return chebyshev_plan(lo, 2.0 ** (ib / _GRID), max_terms=max_terms)


def chebyshev_plan(lo: float, hi: float, tol: float = CHEBYSHEV_TOL, max_terms: int | None = None) -> tuple:
    """Chebyshev expansion of ``exp(-x)`` on ``[lo, hi]``, ``0 <= lo < hi``.

    ``exp(-x) = sum_k c_k T_k(u)``, ``u = (x - center) / half``, with
    ``c_0 = e^{-lo} I_0(half) e^{-half}`` and ``c_k = 2 (-1)^k e^{-lo} I_k(half) e^{-half}``;
    the expansion stops at the first ``m`` with ``sum_{k > m} |c_k| <= tol``, a bound
    of the error anywhere on the interval.

    Parameters
    ----------
    lo, hi : float
    tol : float
    max_terms : int, optional
        Give up where the expansion needs more than ``max_terms + 1`` coefficients (``m > max_terms``); without
        computing them where ``|c_{max_terms + 1}| > tol`` or ``half > max_terms^2`` (it needs about
        ``sqrt(2 half ln(1 / tol))``): a wide interval would otherwise cost ``half`` coefficients' memory (rates
        spread over twelve decades: hundreds of GB).

    Returns
    -------
    center, half : float
    coef : ndarray, shape (m + 1,), or None
        Empty where ``e^{-lo} <= tol``: the function is below ``tol`` on the whole interval; None where
        the expansion needs more than ``max_terms + 1`` coefficients.
    """
    if not (0.0 <= lo < hi and math.isfinite(hi)):
        raise ConfigError(f"`lo`, `hi` must satisfy 0 <= lo < hi < inf, got {lo!r}, {hi!r}")
    center, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    if math.exp(-lo) <= tol:
        return center, half, np.empty(0)
    if max_terms is not None and (half > max_terms ** 2
                                  or 2.0 * math.exp(-lo) * float(ive(max_terms + 1, half)) > tol):
        return center, half, None
    kmax = int(half + 12.0 * math.sqrt(half) + 40.0)
    c = ive(np.arange(kmax + 1), half) * math.exp(-lo)
    c[1:] *= 2.0
    c[1::2] *= -1.0
    tail = np.cumsum(np.abs(c[::-1]))[::-1]  # tail[k] = sum_{j >= k} |c_j|
    m = int(np.argmax(tail <= tol)) - 1 if tail[-1] <= tol else kmax
    if max_terms is not None and m > max_terms:
        return center, half, None
    return center, half, c[:max(m, 0) + 1].copy()


def summing_matrix(at: np.ndarray, n_rows: int, columns: np.ndarray, n_columns: int, weights=None):
    """The CSR matrix (n_rows, n_columns) that sums terms into rows: its product with ``x`` gives in row ``r`` the
    sum of ``weights[t] x[columns[t]]`` over the terms ``t`` with ``at[t] = r``, added in the terms' order (a stable
    sort), the same for every column of ``x`` (a board's sums do not depend on its batch). ``weights`` default 1."""
    from scipy.sparse import csr_array

    order = np.argsort(at, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(at, minlength=n_rows))])
    data = np.ones(at.size) if weights is None else np.asarray(weights, dtype=float)[order]
    return csr_array((data, np.asarray(columns)[order], indptr), shape=(n_rows, n_columns))


class FloatingLaplacian:
    """The conductance Laplacians ``L_G[FF]`` of the floating nodes ``floating`` (n_F,) of ``size`` boards as
    contributions of the edges: every edge between two floating nodes gives four entries, an edge with one floating
    end one, each entry summed over its edges in one order (the same numbers whatever the batch and the form).

    :meth:`dense` gives the matrices; :meth:`times` their products with ``K^-T`` through one sparse matrix of a fixed
    pattern (CSR, a block of n_F rows per board), a few entries a row (delaunay64: about 300 of 59^2) where a dense product
    costs n_F^3. :func:`frame_transform` builds ``A`` on them.
    """

    def __init__(self, network: CompiledNetwork, floating: np.ndarray, size: int = 1):
        nf = self.n_f = floating.size
        self.size = size
        index = np.full(network.n_nodes, -1)
        index[floating] = np.arange(nf)
        a, b = index[network.edge_nodes[:, 0]], index[network.edge_nodes[:, 1]]
        e = np.arange(network.n_edges)
        both = (a >= 0) & (b >= 0)
        slot = np.concatenate([(a * nf + a)[a >= 0], (b * nf + b)[b >= 0], (a * nf + b)[both], (b * nf + a)[both]])
        self._edge = np.concatenate([e[a >= 0], e[b >= 0], e[both], e[both]])
        self._sign = np.concatenate([np.ones((a >= 0).sum() + (b >= 0).sum()), -np.ones(2 * both.sum())])
        boards = np.arange(size)[:, None]
        self._slot = (boards * nf * nf + slot).reshape(-1)  # (size * K,): dense entries, board b's offset b n_F^2
        entries, entry = np.unique(slot, return_inverse=True)  # the sparse entries, row by row
        self.nnz = entries.size
        self._entry = entry
        self.rows, self.cols = np.divmod(entries, nf)  # the pattern: the entries' rows and columns, row by row
        self._data = np.zeros(size * self.nnz)  # every board's entries, shared with the matrices below
        self._matrices = {}
        if size > 1:  # a batch's entries from its conductances (entries): a row per entry, its edges' signs in the
            # bincount's order
            self._edges = summing_matrix(entry, self.nnz, self._edge, network.n_edges, self._sign)

    def _weights(self, g: np.ndarray) -> np.ndarray:
        return (np.take(g, self._edge, axis=-1) * self._sign).reshape(-1)

    def entries(self, g: np.ndarray) -> np.ndarray:
        """The sparse entries of every board's Laplacian at conductances ``g`` (size, E) (or (E,) for one board),
        (size, nnz): board ``b``'s entry ``k`` at row ``rows[k]`` and column ``cols[k]``.

        One board: a ``bincount`` of its edges' contributions; a batch: one sparse product, a row per entry and a
        column per board (delaunay64, 64 boards: 12 against 140 us; a view of an (nnz, size) array). Both add each
        entry's contributions in one order, from zero: the same numbers."""
        if self.size == 1:
            return np.bincount(self._entry, weights=self._weights(g), minlength=self.nnz)[None]
        return (self._edges @ np.ascontiguousarray(g.T)).T

    def dense(self, g: np.ndarray) -> np.ndarray:
        """The Laplacians at conductances ``g`` (size, E) (or (E,) for one board), (size, n_F, n_F)."""
        n = self.n_f
        return np.bincount(self._slot, weights=self._weights(g), minlength=self.size * n * n).reshape(-1, n, n)

    def times(self, g: np.ndarray, D: np.ndarray) -> np.ndarray:
        """``L_b D_b`` of every board at conductances ``g`` (size, E), (size, n_F, k), for ``D`` (n_F, k) or
        (1, n_F, k) shared by the boards, or (size, n_F, k) one per board."""
        self._data[:] = self.entries(g).reshape(-1)
        nf, shared = self.n_f, D.ndim == 2 or D.shape[0] == 1
        out = self._matrix(not shared) @ D.reshape(nf if shared else self.size * nf, -1)
        return out.reshape(self.size, nf, -1)

    def _matrix(self, per_board: bool):
        """The CSR matrix on the entries: (size n_F, n_F), every board's rows against one matrix's, or
        block-diagonal (size n_F, size n_F) against a stack of the boards' own."""
        S = self._matrices.get(per_board)
        if S is None:
            from scipy.sparse import csr_array

            nf, size = self.n_f, self.size
            first = np.repeat(np.arange(size) * nf, self.nnz)  # each entry's board's first row
            indptr = np.searchsorted(first + np.tile(self.rows, size), np.arange(size * nf + 1))
            cols = np.tile(self.cols, size) + (first if per_board else 0)
            S = self._matrices[per_board] = csr_array((self._data, cols, indptr),
                                                      shape=(size * nf, size * nf if per_board else nf))
        return S


def _inv_small(Q: np.ndarray) -> np.ndarray:
    """The inverse of a small matrix (M_T x M_T): cofactors for up to 3 x 3 (numpy's call costs more than the
    arithmetic there), else LAPACK."""
    m = Q.shape[0]
    if m == 1:
        return 1.0 / Q
    if m == 2:
        (a, b), (c, d) = Q.tolist()
        det = a * d - b * c
        return np.array([[d, -b], [-c, a]]) / det
    if m == 3:
        (a, b, c), (d, e, f), (g, h, i) = Q.tolist()
        A, B, C = e * i - f * h, f * g - d * i, d * h - e * g
        det = a * A + b * B + c * C
        return np.array([[A, c * h - b * i, b * f - c * e],
                         [B, a * i - c * g, c * d - a * f],
                         [C, b * g - a * h, a * e - b * d]]) / det
    return np.linalg.inv(Q)


class _Recurrence:
    """Buffers of the Chebyshev recurrence ``T_{k+1} = [-I, 2u] [T_{k-1}; T_k]`` on ``cols`` vectors of ``n``:
    the terms ``T_k`` (n, cols) are adjacent blocks of one buffer, after a block of zeros (``T_{-1}``, so that
    ``2 T_1 = [-I, 2u] [0; T_0]``), and each term is one matrix product with ``M = [-I, 2u]`` (n, 2n) and no
    copy; ``zero`` (an index of a term) is set to zero after every product."""

    def __init__(self, n: int, cols: int, zero=None):
        self.n, self.cols, self.zero = n, cols, zero if zero is not None else slice(0, 0)
        self.buf, self.views = np.zeros((1, n, cols)), []

    def start(self, m: int) -> np.ndarray:
        """Room for ``m`` terms; returns ``T_0`` (n, cols) to fill (its ``zero`` entries are zero)."""
        if self.buf.shape[0] < m + 1:
            m = max(m, 32, 2 * self.buf.shape[0])
            n, c = self.n, self.cols
            self.buf = buf = np.zeros((m + 1, n, c))  # buf[k + 1] = T_k
            flat = buf.reshape(-1)
            self.views = [(flat[k * n * c:(k + 2) * n * c].reshape(2 * n, c), buf[k + 2], buf[k + 2][self.zero])
                          for k in range(m - 1)]
        return self.buf[1]

    def run(self, M: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """``sum_k coef[k] T_k`` (n, cols) from the ``T_0`` that :meth:`start` returned."""
        m, buf = coef.size, self.buf
        if m > 1:
            dot = M.dot
            views = self.views
            x, y, z = views[0]
            dot(x, out=y)  # 2 T_1 = 2u T_0
            y *= 0.5
            z.fill(0.0)
            for x, y, z in views[1:m - 1]:
                dot(x, out=y)
                z.fill(0.0)
        return coef.dot(buf[1:m + 1].reshape(m, -1)).reshape(self.n, self.cols)


class _Operators:
    """What the tick's positions fix for one twin: ``A`` (n_F, n_F), the equilibria, the spectrum's bounds.

    Attributes
    ----------
    A : ndarray, shape (n_F, n_F)
    ystar : ndarray, shape (n_F,)
        Free-twin equilibrium ``-A^-1 r``, ``r = W diag(g) B_S V_S``.
    G : ndarray, shape (n_C, M_T)
        ``A11^-1 A12``: the clamped equilibrium is ``h - G y2``.
    h : ndarray, shape (n_C,)
        ``ystar_1 + G ystar_2``.
    lo, hi : float
        Bounds of the spectrum of ``A`` (rates, 1/s), of both twins where they differ.
    lam, U, U1, U2, U2U2
        The eigen-decomposition ``A = U diag(lam) U^T`` (computed on first use): ``U1``, ``U2``
        the rows of the clamped-floating and target coordinates, ``U2U2`` the products
        ``U2[i, a] U2[j, a]``, shape (M_T * M_T, n_F), so that ``R22(z)`` is one matrix product.
    """

    def __init__(self, A, ystar, G, h, lo, hi, n_c):
        self.A, self.ystar, self.G, self.h = A, ystar, G, h
        self.lo, self.hi, self.n_c = lo, hi, n_c
        self._eig = None

    def bounded(self, lo: float, hi: float) -> "_Operators":
        """These operators with the spectrum's bounds ``lo``, ``hi`` (an interval that holds both twins')."""
        return _Operators(self.A, self.ystar, self.G, self.h, lo, hi, self.n_c)

    def _decomposed(self) -> tuple:
        if self._eig is None:
            lam, U = np.linalg.eigh(self.A)
            U1, U2 = U[:self.n_c], U[self.n_c:]
            m = U2.shape[0]
            self._eig = lam, U, U1, U2, (U2[:, None, :] * U2[None, :, :]).reshape(m * m, -1)
        return self._eig

    lam = property(lambda self: self._decomposed()[0])
    U = property(lambda self: self._decomposed()[1])
    U1 = property(lambda self: self._decomposed()[2])
    U2 = property(lambda self: self._decomposed()[3])
    U2U2 = property(lambda self: self._decomposed()[4])


def _cmatmul(real: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``real @ z`` for a real matrix and a complex C-contiguous (n, K) array, without complex copies."""
    out = real @ np.ascontiguousarray(z).view(np.float64)
    return out.view(np.complex128)


@dataclass(frozen=True, eq=False)
class _Eigen:
    """Eigen-decomposition ``A = U diag(lam) U^T`` at one set of positions (``method="eigen"``).

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


@dataclass(frozen=True, eq=False)
class ExactState(EngineState):
    """State of the twin networks (:class:`~spicelearn.engines.base.EngineState`) and the cached
    operators at ``positions``: ``ops`` of the free twin, ``ops_c`` of the clamped twin (the
    same object when the twins are equal)."""

    ops: object = None
    ops_c: object = None
    #: ``(v_free, v_clamped, y_free (n_F,), y1 (n_C,))``: the coordinates of both twins in their capacitors'
    #: frames where the engine computed them (``method="dense"``), valid while ``v_free`` and ``v_clamped`` are
    #: these very arrays (a state made by ``dataclasses.replace`` with other voltages recomputes them).
    coords: tuple | None = None


@dataclass(frozen=True, eq=False)
class _Frame:
    """The coordinates ``y = K^T v_F`` of one twin's capacitors: ``L_C[FF] = K K^T``, ``W = K^-1 B_F^T``."""

    K: np.ndarray  # (n_F, n_F) lower triangular
    Kinv: np.ndarray  # (n_F, n_F)
    W: np.ndarray  # (n_F, E)
    K22T: np.ndarray  # (M_T, M_T): y2 = K22^T v_T
    Kp: np.ndarray  # (n_F, N): K^-1 with its columns at the floating nodes, zero at the sources (v = y Kp + sources)
    #: (n_F,): the diagonal of ``K^-1`` where ``K`` is diagonal (capacitors to ground, the ``global`` model), else None
    kinv_diag: np.ndarray | None = None


def capacitor_frame(network: CompiledNetwork, board: Board, floating: np.ndarray, n_c: int, twin: int) -> _Frame:
    """The coordinates of one twin's capacitors on its floating nodes ``floating`` (clamped-floating first, then
    the ``M_T`` targets; ``n_c`` of the former): ``L_C[FF] = K K^T``, ``W = K^-1 B_F^T``, ``K22T`` (the targets'
    block of ``K^T``), ``Kp`` (the node map: ``K^-1`` with its columns at the floating nodes)."""
    LC = board.capacitance_matrix(network, twin)
    try:
        K = np.linalg.cholesky(LC[np.ix_(floating, floating)])
    except np.linalg.LinAlgError:
        raise NetworkError("the capacitance matrix of the floating nodes is singular: "
                           "some floating node has no capacitive path to a driven node") from None
    Kinv = sla.solve_triangular(K, np.eye(K.shape[0]), lower=True)
    Kp = np.zeros((floating.size, network.n_nodes))
    Kp[:, floating] = Kinv
    diagonal = not np.any(np.tril(K, -1))
    return _Frame(K=K, Kinv=Kinv, W=Kinv @ network.incidence[:, floating].T, K22T=K[n_c:, n_c:].T, Kp=Kp,
                  kinv_diag=np.diag(Kinv).copy() if diagonal else None)


def per_edge_rate_bounds(g: np.ndarray, inv_c: np.ndarray, axis: int = -1) -> tuple:
    """Bounds ``(lo, hi)`` on the rates of a twin with a capacitor on every edge (``per_edge``), the eigenvalues of
    ``L_C[FF]^-1 L_G[FF]``: the least and the largest ``g / c`` over the edges, since ``L_G = sum g_e b_e b_e^T``
    lies between ``min (g / c) L_C`` and ``max (g / c) L_C`` edge by edge (and so does its floating block).

    Parameters
    ----------
    g, inv_c : ndarray
        The edges' conductances and reciprocal capacitances, broadcasting, the edges along ``axis``.

    Returns
    -------
    lo, hi : ndarray
        ``g / c`` reduced over ``axis``.
    """
    r = g * inv_c
    return r.min(axis=axis), r.max(axis=axis)


def edge_rate_bound(t: np.ndarray, edge_nodes: np.ndarray) -> np.ndarray:
    """An upper bound on the rates of a twin with capacitors to ground (``global``), the eigenvalues of
    ``C^-1 L_G[FF]``: the largest ``t_u + t_v`` over the edges ``(u, v)``, where ``t = s / c`` at floating nodes (``s``
    a node's conductance to all its neighbours, the Laplacian's diagonal) and 0 at driven ones. Gershgorin's
    theorem on ``X^T X``, ``C^-1/2 L_G[FF] C^-1/2 = X X^T`` with a column of ``X`` per edge, after scaling by the
    edges' ``sqrt(g)``; it holds for the clamped twin's block too (interlacing). On delaunay64 it is 1.1 to 1.3 times
    the largest rate, where Gershgorin's ``2 max t`` is 1.2 to 1.8 times it.

    Parameters
    ----------
    t : ndarray, shape (..., N)
    edge_nodes : ndarray of int, shape (E, 2)

    Returns
    -------
    ndarray, shape (...)
    """
    return (t[..., edge_nodes[:, 0]] + t[..., edge_nodes[:, 1]]).max(axis=-1)


#: :func:`frame_transform` multiplies one board's sparse Laplacian by ``K^-T`` from this many floating nodes on, a
#: dense Laplacian below (measured, ``K^-1 L K^-T`` of a Delaunay graph's Laplacian: dense 6.9 against sparse
#: 8.0 us at 40 nodes, 19.5 against 16.8 us at 59); a batch of boards always (one sparse product for the batch).
SPARSE_LAPLACIAN_FROM = 48


def grounded_rate_bound(A: np.ndarray, floating: np.ndarray, network: CompiledNetwork) -> np.ndarray:
    """:func:`edge_rate_bound` of twins with capacitors to ground from their matrices ``A`` (..., n_F, n_F) on the
    nodes ``floating``: in a diagonal frame ``A``'s diagonal is ``t = s / c`` there. Shape (...)."""
    t = np.zeros(A.shape[:-2] + (network.n_nodes,))
    t[..., floating] = np.diagonal(A, axis1=-2, axis2=-1)
    return edge_rate_bound(t, network.edge_nodes)


def frame_transform(L: FloatingLaplacian, g: np.ndarray, kinv_diag: np.ndarray | None, Kinv: np.ndarray,
                    KinvT: np.ndarray) -> np.ndarray:
    """``A = K^-1 L K^-T`` (size, n_F, n_F) of the conductance Laplacians ``L`` at ``g`` (size, E) in capacitor frames
    (``Kinv``, ``KinvT`` (n_F, n_F), or (size, n_F, n_F) one per board): ``L K^-T`` on the sparse Laplacians, then
    one product by ``K^-1`` (a single small board: two dense products, see :data:`SPARSE_LAPLACIAN_FROM`); or, where
    ``K`` is diagonal (``kinv_diag`` (..., n_F), else None), ``L`` scaled by ``k_i k_j``: the products' numbers (they
    add exact zeros to ``(k_i L_ij) k_j``) without their work."""
    if kinv_diag is not None:
        A = L.dense(g)
        A *= kinv_diag[..., :, None]
        A *= kinv_diag[..., None, :]
        return A
    if L.size == 1 and L.n_f < SPARSE_LAPLACIAN_FROM:
        return np.matmul(np.matmul(Kinv, L.dense(g)), KinvT)
    return np.matmul(Kinv, L.times(g, KinvT))


class ExactEngine(Engine):
    """Exact RC transient of the free and clamped twins (see module docstring).

    Parameters
    ----------
    network : CompiledNetwork
    task : BoundTask
    board : Board
    method : {None, "auto", "dense", "chebyshev", "eigen", "sparse"}
        How ticks are solved. ``dense``: each tick the Chebyshev expansion where it needs at most
        :data:`CHEBYSHEV_MAX_TERMS` terms and the eigensolve otherwise (the fast path); ``auto``: the
        sparse path (:mod:`spicelearn.engines.sparse`) from :data:`SPARSE_FROM` floating nodes on, ``dense``
        below.
        ``chebyshev`` and ``eigen`` force one dense path every tick (``eigen`` is the engine of
        spicelearn 0.2, operation for operation); ``sparse`` the sparse path. They agree to ~1e-13
        relative (dense) and 1e-10 V (sparse against dense). None (default): :data:`DENSE_DEFAULT`
        below :data:`SPARSE_FROM` floating nodes, ``sparse`` from there on.
    """

    name = "exact"

    def __init__(self, network: CompiledNetwork, task: BoundTask, board: Board, *, method: str | None = None):
        super().__init__(network, task, board)
        if method is not None and method not in METHODS:
            raise ConfigError(f"`method` must be None or one of {METHODS}, got {method!r}")
        n = network.n_nodes
        src, tgt = task.source_index, task.target_index
        self.floating = np.concatenate([task.clamped_floating, tgt])  # free twin's floating nodes, C then T
        self.n_c = task.clamped_floating.size
        self._twins_identical = board.twins_identical
        self._v_template = np.zeros(n)
        self._v_template[src] = task.source_voltage
        if method is None or method == "auto":
            method = "sparse" if self.floating.size >= SPARSE_FROM else ("dense" if method else DENSE_DEFAULT)
        self.method = method
        self._sparse = None
        if method == "sparse":
            from .sparse import SparseTransient

            self._sparse = SparseTransient(self)
            return
        self.b_src = network.incidence[:, src] @ task.source_voltage  # (E,) edge drops from the sources alone
        free = self._frame(0)
        self.frames = (free, free if board.capacitors_identical else self._frame(1))
        nc, nf = self.n_c, self.floating.size
        self._Kinv = tuple(np.ascontiguousarray(f.Kinv) for f in self.frames)
        # the floating nodes' Laplacian L_G[FF] (n_F, n_F), sparse, assembled from the edges' conductances
        self._laplacian = FloatingLaplacian(network, self.floating)
        self._rhs = np.zeros((nf, 1 + tgt.size), order="F")  # [r, E_T]
        self._rhs[nc + np.arange(tgt.size), 1 + np.arange(tgt.size)] = 1.0
        # contiguous copies of what every tick multiplies by
        self._KT = tuple(np.ascontiguousarray(f.K.T) for f in self.frames)
        self._KT_top = np.ascontiguousarray(self.frames[1].K.T[:nc])  # y1 = K^T[C] v_F of the clamped twin
        self._KinvT = tuple(np.ascontiguousarray(f.Kinv.T) for f in self.frames)
        # conductance of every edge at every position, per twin: (E * P,) flat, edge-major
        P = board.hardware.pot.n_positions
        pos = np.arange(P)[:, None]
        self._gtab = tuple(np.ascontiguousarray(board.conductance(pos, t).T).reshape(-1) for t in (0, 1))
        self._gbase = np.arange(network.n_edges) * P
        self._per_edge = board.capacitance.shape[-1] == network.n_edges and \
            board.hardware.capacitance_model == "per_edge"
        if self._per_edge:
            self._inv_c = tuple(1.0 / board.twin_capacitance(t) for t in (0, 1))
        # Chebyshev recurrences T_{k+1} = [-I, 2u] [T_{k-1}; T_k], one matrix product per term: [T_{k-1}; T_k]
        # are adjacent blocks of one buffer (_Recurrence); equal twins share the free twin's matrix
        self._M = (np.hstack([-np.eye(nf), np.zeros((nf, nf))]), np.hstack([-np.eye(nc), np.zeros((nc, nc))]))
        self._Mdiag = tuple(M.reshape(-1)[M.shape[0]::2 * M.shape[0] + 1] for M in self._M)  # views: diagonal of 2u
        self._pair = _Recurrence(nf, 2, zero=(slice(nc, None), 1))  # both twins, the clamped one's targets zero
        self._single = (_Recurrence(nf, 1), _Recurrence(nc, 1))  # twins with matrices of their own
        self._split = (self._single[0], _Recurrence(nf, 1, zero=(slice(nc, None), 0)))  # equal twins, one each
        # node voltages v = y @ Kp + v_src (the frames' node maps); both twins in one product where they share a frame
        self._Kp = tuple(f.Kp for f in self.frames)

    # -- helpers ---------------------------------------------------------------
    def _frame(self, twin: int) -> _Frame:
        return capacitor_frame(self.network, self.board, self.floating, self.n_c, twin)

    def _conductance(self, positions, twin: int) -> np.ndarray:
        """The board's conductances at ``positions`` (E,), from the table (the same numbers)."""
        return self._gtab[twin].take(self._gbase + positions)

    def _bounds(self, g, A, twin: int) -> tuple:
        """Bounds (lo, hi) of the rates of one twin at conductances ``g``, of matrix ``A``: per-edge capacitors, the
        edges' ``g / c``; capacitors to ground, 0 and :func:`grounded_rate_bound`."""
        if self._per_edge:
            lo, hi = per_edge_rate_bounds(g, self._inv_c[twin])
            return float(lo), float(hi)
        return 0.0, float(grounded_rate_bound(A, self.floating, self.network))

    def _decompositions(self, positions) -> tuple:
        """``(ops, ops_c)`` of the free and the clamped twin at ``positions``."""
        if self._sparse is not None:
            return self._sparse.operators(positions)
        if self.method == "eigen":
            return self._eigen_decompositions(positions)
        ops = self._decompose(self.frames[0], self._conductance(positions, 0))
        if self._twins_identical:
            return ops, ops
        ops_c = self._decompose(self.frames[1], self._conductance(positions, 1))
        lo, hi = min(ops.lo, ops_c.lo), max(ops.hi, ops_c.hi)  # one interval for both twins' expansions
        return ops.bounded(lo, hi), ops_c.bounded(lo, hi)

    def _decompose(self, frame: _Frame, g) -> _Operators:
        """One twin's operators at conductances ``g``, with the bounds of its own rates."""
        twin = 0 if frame is self.frames[0] else 1
        # A = K^-1 L_G[FF] K^-T (from 48 nodes the sparse Laplacian by K^-T, then one n_F^3 product; not n_F^2 E)
        A = frame_transform(self._laplacian, g, frame.kinv_diag, self._Kinv[twin], self._KinvT[twin])[0]
        # one Cholesky solve for the equilibrium and the target columns of A^-1: A X = [r, E_T],
        # r = W diag(g) B_S V_S
        rhs = self._rhs
        rhs[:, 0] = frame.W.dot(g * self.b_src)
        x, info = lapack.dposv(A, rhs, lower=1)[1:]
        if info != 0:
            raise NetworkError("the conductance matrix of the floating nodes is singular: "
                               "a floating part of the network has no path to a driven node")
        ystar = -x[:, 0]
        nc = self.n_c
        if nc and x.shape[1] > 1:
            # A11^-1 A12 = -[A^-1]_12 [A^-1]_22^-1 (block inverse of A)
            G = x[:nc, 1:].dot(_inv_small(x[nc:, 1:]))
            np.negative(G, out=G)
            h = ystar[:nc] + G.dot(ystar[nc:])
        else:
            G, h = np.zeros((nc, x.shape[1] - 1)), ystar[:nc].copy()
        return _Operators(A, ystar, G, h, *self._bounds(g, A, twin), nc)

    def _to_v(self, y: np.ndarray) -> np.ndarray:
        """Node voltages (N,) of the free twin from its coordinates ``y`` (n_F,)."""
        return y.dot(self._Kp[0]) + self._v_template

    def _dense_state(self, positions, ops, ops_c, clamp, y_free, y1, y2) -> ExactState:
        """The state with the twins at ``y_free`` (n_F,) and ``[y1, y2]`` ((n_C,), (M_T,)); the clamped twin's
        targets exactly at ``clamp``."""
        Kp = self._Kp
        if Kp[0] is Kp[1]:
            Y = np.empty((2, y_free.size))
            Y[0], Y[1, :y1.size], Y[1, y1.size:] = y_free, y1, y2
            v_free, v_clamped = Y.dot(Kp[0]) + self._v_template
        else:
            v_free, v_clamped = self._to_v(y_free), np.concatenate([y1, y2]).dot(Kp[1]) + self._v_template
        v_clamped[self.task.target_index] = clamp
        return ExactState(positions, v_free, v_clamped, clamp, ops, ops_c, (v_free, v_clamped, y_free, y1))

    def _coords(self, state: ExactState) -> tuple:
        """``(y_free (n_F,), y1 (n_C,))`` of a state: the clamped twin's ``y1`` is its floating nodes' charge,
        conserved across a step of the clamps."""
        c = state.coords
        if c is not None and c[0] is state.v_free and c[1] is state.v_clamped:
            return c[2], c[3]
        F = self.floating
        return self._KT[0] @ state.v_free[F], self._KT_top @ state.v_clamped[F]

    def _chebyshev(self, ops: _Operators, ops_c: _Operators, duration: float):
        """The tick's expansion ``(center, half, coef)`` for ``exp(-duration A)``, or None where ``dense``
        takes the eigen path."""
        if self.method == "eigen":
            return None
        lo, hi = ops.lo * duration, ops.hi * duration
        ia = math.floor(_GRID * math.log2(lo)) - 1 if lo > 1e-300 else None
        ib = math.ceil(_GRID * math.log2(hi)) + 1
        if ia is not None and ib <= ia:
            ib = ia + 1
        dense = self.method == "dense"
        plan = _plan(ia, ib, CHEBYSHEV_MAX_TERMS if dense else FORCED_MAX_TERMS)
        if plan[2] is None and not dense:
            raise ConfigError(f"method='chebyshev' would need over {FORCED_MAX_TERMS:,} terms for this tick (rates "
                              f"times the period over [{lo:.3g}, {hi:.3g}]); use method='dense', which takes the "
                              "eigensolve where the expansion is long")
        return None if plan[2] is None else plan

    def _chebyshev_transient(self, ops, ops_c, plan, duration: float, bf: np.ndarray, bc: np.ndarray):
        """``exp(-t A) bf`` (n_F,) and ``exp(-t A11) bc`` (n_C,) by the Chebyshev recurrence of ``plan``."""
        center, half, coef = plan
        nf, nc = bf.size, self.n_c
        if coef.size == 0:
            return np.zeros(nf), np.zeros(nc)
        (Mf, Mc), (df, dc) = self._M, self._Mdiag
        s, d = 2.0 * duration / half, 2.0 * center / half  # 2u(tA) = s A - d I, u = (tA - center) / half
        np.multiply(ops.A, s, out=Mf[:, nf:])
        df -= d
        if ops_c is ops and nf < SPLIT_TWINS_FROM:  # one product per term for both twins: the clamped twin's
            x = self._pair.start(coef.size)  # matrix is the leading block
            x[:, 0] = bf
            x[:nc, 1] = bc
            r = self._pair.run(Mf, coef)
            return r[:, 0], r[:nc, 1]
        if ops_c is ops:  # the same, a matrix-vector product per twin and term
            recs, Ms, bc = self._split, (Mf, Mf), np.concatenate([bc, np.zeros(nf - nc)])
        else:
            np.multiply(ops_c.A[:nc, :nc], s, out=Mc[:, nc:])
            dc -= d
            recs, Ms = self._single, (Mf, Mc)
        out = []
        for rec, M, b in zip(recs, Ms, (bf, bc)):
            if b.size == 0:
                out.append(b.copy())
                continue
            rec.start(coef.size)[:, 0] = b
            out.append(rec.run(M, coef)[:, 0])
        return out[0], out[1][:nc]

    @staticmethod
    def _sub_resolvent(ops: _Operators, b: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``sum_k w_k (A11 + z_k)^-1 b``, real part, shape (n_C,).

        Schur complement of the resolvent of A: with ``R = (A + z)^-1``,
        ``(A11 + z)^-1 b = U1 D (c - U2^T R22^-1 U2 D c)``, ``c = U1^T b``,
        ``D = (lam + z)^-1``, ``R22 = U2 D U2^T`` (M_T x M_T).
        """
        lam, U1, U2, U2U2 = ops.lam, ops.U1, ops.U2, ops.U2U2
        m = U2.shape[0]
        D = 1.0 / (lam[:, None] + z[None, :])  # (n_F, K)
        c = U1.T @ b
        Dc = D * c[:, None]
        p2 = _cmatmul(U2, Dc)  # (M_T, K)
        R22 = _cmatmul(U2U2, D)
        R22 = np.moveaxis(R22.reshape(m, m, -1), -1, 0)  # (K, M_T, M_T)
        q = np.linalg.solve(R22, p2.T[..., None])[..., 0]  # (K, M_T)
        e = (Dc - D * (U2.T @ q.T)) @ w  # (n_F,)
        return U1 @ e.real

    # -- method="eigen": the previous engine's arithmetic, operation for operation -----------
    def _eigen_decompositions(self, positions) -> tuple:
        ops = self._eigen_decompose(self.frames[0], self.board.conductance(positions, 0))
        if self._twins_identical:
            return ops, ops
        return ops, self._eigen_decompose(self.frames[1], self.board.conductance(positions, 1))

    def _eigen_decompose(self, frame: _Frame, g) -> _Eigen:
        Wg = frame.W * g
        lam, U = np.linalg.eigh(Wg @ frame.W.T)
        if lam[0] <= 0:
            raise NetworkError("the conductance matrix of the floating nodes is singular: "
                               "a floating part of the network has no path to a driven node")
        U1, U2 = U[:self.n_c], U[self.n_c:]
        m = U2.shape[0]
        U2U2 = (U2[:, None, :] * U2[None, :, :]).reshape(m * m, -1)
        ystar = -(U @ ((U.T @ (Wg @ self.b_src)) / lam))
        return _Eigen(lam=lam, U=U, U1=U1, U2=U2, U2U2=U2U2, ystar=ystar)

    def _eigen_to_v(self, y: np.ndarray, twin: int = 0) -> np.ndarray:
        v = self._v_template.copy()
        v[self.floating] = self.frames[twin].Kinv.T @ y
        return v

    def _eigen_clamped_y1(self, ops: _Eigen, y2: np.ndarray) -> np.ndarray:
        """Clamped equilibrium from the free one ``ystar``: a rank-M_T correction.

        ``y1* = ystar_1 + A11^-1 A12 (ystar_2 - y2)`` with
        ``A11^-1 A12 = -[A^-1]_12 [A^-1]_22^-1`` (block inverse of A).
        """
        P = (ops.U1 / ops.lam) @ ops.U2.T  # [A^-1]_12, (n_C, M_T)
        Q = (ops.U2 / ops.lam) @ ops.U2.T  # [A^-1]_22, (M_T, M_T)
        nc = self.n_c
        return ops.ystar[:nc] - P @ np.linalg.solve(Q, ops.ystar[nc:] - y2)

    def _eigen_init(self, positions, clamp) -> ExactState:
        ops, ops_c = self._eigen_decompositions(positions)
        v_free = self._eigen_to_v(ops.ystar)
        if clamp is None:
            clamp = self.default_clamp(v_free)
        y2 = self.frames[1].K22T @ clamp
        v_clamped = self._eigen_to_v(np.concatenate([self._eigen_clamped_y1(ops_c, y2), y2]), 1)
        v_clamped[self.task.target_index] = clamp
        return ExactState(positions, v_free, v_clamped, clamp, ops, ops_c)

    def _eigen_relax(self, state: ExactState, clamp, duration: float) -> ExactState:
        ops, nc = state.ops, self.n_c
        # free twin: sources constant, exact modal decay
        y = self.frames[0].K.T @ state.v_free[self.floating]
        ystar = ops.ystar
        a = ops.U.T @ (y - ystar)
        y = ystar + ops.U @ (np.exp(-ops.lam * duration) * a)
        v_free = self._eigen_to_v(y)
        # clamped twin: y1 conserved across the clamp step; y2 follows the clamps
        y1 = (self.frames[1].K.T @ state.v_clamped[self.floating])[:nc]
        y2 = self.frames[1].K22T @ clamp
        if nc:
            y1star = self._eigen_clamped_y1(state.ops_c, y2)
            y1 = y1star + self._sub_resolvent(state.ops_c, y1 - y1star, _QUAD_S / duration, _QUAD_W / duration)
        v_clamped = self._eigen_to_v(np.concatenate([y1, y2]), 1)
        v_clamped[self.task.target_index] = clamp
        return replace(state, v_free=v_free, v_clamped=v_clamped, clamp=clamp)

    # -- engine interface -------------------------------------------------------
    def state(self, positions, v_free, v_clamped, clamp) -> ExactState:
        """A state with given node voltages (e.g. off equilibrium); driven nodes are overwritten."""
        positions = self._check_positions(positions)
        v_free, v_clamped, clamp = self.task.impose(v_free, v_clamped, self._check_clamp(clamp))
        ops, ops_c = self._decompositions(positions)
        return ExactState(positions, v_free, v_clamped, clamp, ops, ops_c)

    def _init(self, positions, clamp) -> ExactState:
        if self.method == "eigen":
            return self._eigen_init(positions, clamp)
        ops, ops_c = self._decompositions(positions)
        if self._sparse is not None:
            v_free = self._sparse.equilibrium_free(ops)
            if clamp is None:
                clamp = self.default_clamp(v_free)
            v_clamped = self._sparse.equilibrium_clamped(ops_c, clamp)
            return ExactState(positions, v_free, v_clamped, clamp, ops, ops_c)
        if clamp is None:
            clamp = self.default_clamp(self._to_v(ops.ystar))
        y2 = self.frames[1].K22T @ clamp
        return self._dense_state(positions, ops, ops_c, clamp, ops.ystar, ops_c.h - ops_c.G @ y2, y2)

    def _set_positions(self, state: ExactState, positions) -> ExactState:
        ops, ops_c = self._decompositions(positions)
        return ExactState(positions, state.v_free, state.v_clamped, state.clamp, ops, ops_c, state.coords)

    def _equilibrium_free(self, state: ExactState) -> np.ndarray:
        if self._sparse is not None:
            return self._sparse.equilibrium_free(state.ops)
        if self.method == "eigen":
            return self._eigen_to_v(state.ops.ystar)
        return self._to_v(state.ops.ystar)

    def _relax(self, state: ExactState, clamp, duration: float) -> ExactState:
        if self.method == "eigen":
            return self._eigen_relax(state, clamp, duration)
        ops, ops_c, nc = state.ops, state.ops_c, self.n_c
        if self._sparse is not None:
            v_free, v_clamped = self._sparse.relax(ops, ops_c, state.v_free, state.v_clamped, state.clamp,
                                                   clamp, duration)
            return ExactState(state.positions, v_free, v_clamped, clamp, ops, ops_c)
        ystar = ops.ystar
        y_free, y1 = self._coords(state)
        bf = y_free - ystar  # free twin: sources constant
        # clamped twin: y1 conserved across the clamp step; y2 follows the clamps
        y2 = self.frames[1].K22T @ clamp
        y1star = ops_c.h - ops_c.G @ y2
        bc = y1 - y1star
        plan = self._chebyshev(ops, ops_c, duration)
        if plan is None:
            lam, U = ops._decomposed()[:2]
            rf = U @ (np.exp(-lam * duration) * (U.T @ bf))
            rc = self._sub_resolvent(ops_c, bc, _QUAD_S / duration, _QUAD_W / duration) if nc else bc
        else:
            rf, rc = self._chebyshev_transient(ops, ops_c, plan, duration, bf, bc)
        return self._dense_state(state.positions, ops, ops_c, clamp, ystar + rf, y1star + rc, y2)
