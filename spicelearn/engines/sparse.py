"""The sparse path of the ``exact`` engine, for large networks (``ExactEngine(..., method="sparse")``).

The same physics as :mod:`spicelearn.engines.exact`, in node voltages: on each
twin's floating nodes ``L_C dv/dt = -L_G v - L_GD v_D``, with the planar
Laplacians kept sparse. Both twins are one block-diagonal system of
``n_F + n_C`` unknowns (free twin: every node but the sources; clamped twin:
the clamped-floating nodes C), ``Cb = blockdiag(L_C[FF], L_C[CC])`` and
``Lb = blockdiag(L_G[FF], L_G[CC])``.

Per tick (``set_positions``), two sparse LU factorisations (SuperLU, symmetric
mode, minimum-degree ordering of ``A + A^T``):

* ``Lb``: the equilibria, by direct solves: the free one, and the clamped one as
  ``a0 + Gc clamp`` (``Gc`` the M_T columns of the targets' couplings);
* ``Cb + gamma Lb``, ``gamma = t / NU`` for the clock period ``t`` (the same for
  ticks within a factor 2 of the period, as with clock jitter: any pole gives the
  right answer, a pole near ``t / NU`` the fewest steps; refactorised otherwise).

The transient ``exp(-t Cb^-1 Lb) b`` is a shift-and-invert Krylov (rational
Krylov with one repeated pole) approximation: Lanczos on
``Z = (Cb + gamma Lb)^-1 Cb``, self-adjoint in the ``Cb`` inner product, with full
re-orthogonalisation; on the projection ``H = V^T Cb Z V`` the exponential is
``exp(-(t / gamma) (H^-1 - I))``, taken by a small symmetric eigensolve. Its
error does not depend on the spread of the network's rates (Eshof & Hochbruck,
SIAM J. Sci. Comput. 27, 2006), so every R costs about the same; the iteration
stops when two successive approximations differ by less than ``KRYLOV_TOL``
relative to the vector (2 to 40 steps on 1,024 nodes from random states, R from
0.001 to 1000, both capacitance models). One Krylov space serves both twins:
the block-diagonal operator's space of the stacked vector.

A step of the clamps conserves the charge on every clamped-floating node:
``L_C[CC] dv_C = -L_C[CT] dv_T``, one solve with the fixed factor of ``L_C[CC]``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import NetworkError

__all__ = ["SparseTransient", "NU", "KRYLOV_TOL", "KRYLOV_MAX"]

#: The pole of the shift-and-invert Krylov space: ``gamma = t / NU`` (measured: fewest steps near 8-16).
NU = 10.0

#: The Krylov iteration stops when successive approximations differ by less than this, relative to the vector.
KRYLOV_TOL = 1e-14

#: At most this many Krylov steps (then it stops with what it has, having warned nobody: it never took this many
#: in the measurements of benchmarks/bench_large.py).
KRYLOV_MAX = 80


def _splu(M: sp.csc_matrix, what: str):
    try:
        return spla.splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                         options=dict(SymmetricMode=True))
    except RuntimeError:
        raise NetworkError(f"the {what} of the floating nodes is singular: "
                           "a floating part of the network has no path to a driven node") from None


class _Pattern:
    """A fixed sparsity pattern (CSC) of ``blockdiag(L[FF], L[CC])`` for edge weights ``w`` (E,) per twin.

    ``matrix(w0, w1)`` assembles it: one ``bincount`` into the pattern's slots. ``couple`` gives
    the couplings of the floating nodes to driven ones: ``sum_j w_j v_d(j)`` per floating row.
    """

    def __init__(self, edge_nodes: np.ndarray, index_f: np.ndarray, index_c: np.ndarray, n_f: int, n_c: int,
                 diagonal: bool):
        rows, cols, edge, sign, twin = [], [], [], [], []
        E = edge_nodes.shape[0]
        j = np.arange(E)
        for t, (index, offset) in enumerate(((index_f, 0), (index_c, n_f))):
            a, b = index[edge_nodes[:, 0]], index[edge_nodes[:, 1]]
            for p, q in ((a, b), (b, a)):
                ok = p >= 0
                rows.append(p[ok] + offset); cols.append(p[ok] + offset); edge.append(j[ok])
                sign.append(np.ones(ok.sum())); twin.append(np.full(ok.sum(), t))
                both = ok & (q >= 0)
                rows.append(p[both] + offset); cols.append(q[both] + offset); edge.append(j[both])
                sign.append(-np.ones(both.sum())); twin.append(np.full(both.sum(), t))
        rows, cols, self.edge = np.concatenate(rows), np.concatenate(cols), np.concatenate(edge)
        self.sign, self.twin = np.concatenate(sign), np.concatenate(twin)
        self.n = n = n_f + n_c
        if diagonal:  # node weights (global capacitance): the diagonal alone
            self.edge = None
        keys = cols.astype(np.int64) * n + rows
        uniq, self.slot = np.unique(keys, return_inverse=True)
        self.indices = (uniq % n).astype(np.int32)
        self.indptr = np.searchsorted(uniq // n, np.arange(n + 1)).astype(np.int32)
        self.nslots = uniq.size
        self.E = E

    def matrix(self, w0: np.ndarray, w1: np.ndarray) -> sp.csc_matrix:
        w = np.where(self.twin == 0, w0[self.edge], w1[self.edge]) * self.sign
        data = np.bincount(self.slot, weights=w, minlength=self.nslots)
        return sp.csc_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))


class _SparseOps:
    """What one tick's positions fix (both twins): the factor of ``Lb``, the equilibria, the shifted factors.

    Attributes
    ----------
    L : csc_matrix, shape (n_F + n_C, n_F + n_C)
    lu : SuperLU
        Factor of ``L``.
    vstar : ndarray, shape (n_F,)
        The free twin's equilibrium on its floating nodes.
    a0 : ndarray, shape (n_C,)
    Gc : ndarray, shape (n_C, M_T)
        The clamped equilibrium on C is ``a0 + Gc clamp``.
    """

    def __init__(self, owner, L, lu, vstar, a0, Gc):
        self.owner, self.L, self.lu, self.vstar, self.a0, self.Gc = owner, L, lu, vstar, a0, Gc
        self._shifted = {}
        self._lam = None

    def shifted(self, gamma: float):
        """A solver of the block system ``(Cb + gamma Lb) w = y``, (n_F + n_C,) -> (n_F + n_C,), cached per
        gamma (a tick of another duration adds one)."""
        solve = self._shifted.get(gamma)
        if solve is None:
            if len(self._shifted) > 4:
                self._shifted.clear()
            owner = self.owner
            lu = _splu((owner.Cf + gamma * self.L).tocsc(), "capacitance matrix")
            solve = self._shifted[gamma] = lu.solve if not owner.shared else owner.schur_solver(lu)
        return solve

    @property
    def lam(self) -> np.ndarray:
        """The free twin's relaxation rates (1/s), ascending: eigenvalues of ``L_C^-1 L_G`` on its floating nodes
        (a dense eigensolve, computed on first use)."""
        if self._lam is None:
            n = self.owner.n_f
            self._lam = sla.eigh(self.L[:n, :n].toarray(), self.owner.Cf[:n, :n].toarray(), eigvals_only=True)
        return self._lam


class SparseTransient:
    """The sparse path of an :class:`~spicelearn.engines.exact.ExactEngine` (see module docstring).

    Parameters
    ----------
    engine : ExactEngine
        Its network, task, board and node order (``floating``: C then T).
    """

    def __init__(self, engine):
        net, task, board = engine.network, engine.task, engine.board
        self.engine = engine
        N = net.n_nodes
        en = net.edge_nodes
        self.F, self.C, self.T = engine.floating, task.clamped_floating, task.target_index
        self.n_f, self.n_c, self.m_t = self.F.size, self.C.size, self.T.size
        index_f = np.full(N, -1)
        index_f[self.F] = np.arange(self.n_f)
        index_c = np.full(N, -1)
        index_c[self.C] = np.arange(self.n_c)
        # equal twins: the clamped twin's matrices are the leading blocks (C) of the free twin's, and one
        # factorisation of size n_F serves both (a rank-M_T Schur correction); else a block system of both
        self.shared = engine._twins_identical and board.capacitors_identical and self.n_c > 0
        n_block = 0 if self.shared else self.n_c
        self.pattern = _Pattern(en, index_f, index_c if not self.shared else np.full(N, -1), self.n_f, n_block,
                                diagonal=False)
        # capacitance matrices, fixed: per-edge Laplacians or node capacitors
        per_edge = board.hardware.capacitance_model == "per_edge"
        c0, c1 = board.twin_capacitance(0), board.twin_capacitance(1)
        if per_edge:
            self.Cf = self.pattern.matrix(c0, c1)  # the factorised matrix's capacitance part
            # -L_C[CT] of the clamped twin: couplings of C nodes to targets through edge capacitors
            self.CCT = self._coupling(en, index_c, self.T, c1)
        else:
            self.Cf = sp.diags(np.concatenate([c0[self.F], c1[self.C][:n_block]])).tocsc()
            self.CCT = sp.csc_matrix((self.n_c, self.m_t))
        nf, nc = self.n_f, self.n_c
        CC = (self.Cf[:nc, :nc] if self.shared else self.Cf[nf:, nf:]).tocsc()
        # Cb = blockdiag(L_C[FF], L_C[CC]): the Krylov space's inner product
        self.Cb = self.Cf if not self.shared else sp.block_diag([self.Cf, CC]).tocsc()
        self.lu_CC = _splu(CC, "capacitance matrix") if nc else None
        self._E_T = np.zeros((nf, self.m_t))
        self._E_T[nc + np.arange(self.m_t), np.arange(self.m_t)] = 1.0
        # couplings of floating nodes to driven ones, per edge: (row, edge, driven node)
        self._src_f = self._driven_edges(en, index_f, task.source_index)
        self._src_c = self._driven_edges(en, index_c, task.source_index)
        self._tgt_c = self._driven_edges(en, index_c, self.T)
        self.v_s = np.zeros(N)
        self.v_s[task.source_index] = task.source_voltage
        self._tpos = np.full(N, -1)
        self._tpos[self.T] = np.arange(self.m_t)
        self._template = np.zeros(N)
        self._template[task.source_index] = task.source_voltage
        self.period = board.period
        self._basis = None

    @staticmethod
    def _driven_edges(en, index, driven):
        """(row, edge, driven node) of every edge from a floating node (in ``index``) to a node of ``driven``."""
        is_d = np.zeros(index.size, bool)
        is_d[driven] = True
        rows, edges, nodes = [], [], []
        for p, q in ((0, 1), (1, 0)):
            ok = (index[en[:, p]] >= 0) & is_d[en[:, q]]
            rows.append(index[en[ok, p]]); edges.append(np.flatnonzero(ok)); nodes.append(en[ok, q])
        return np.concatenate(rows), np.concatenate(edges), np.concatenate(nodes)

    def _coupling(self, en, index_c, T, c) -> sp.csc_matrix:
        rows, edges, nodes = self._driven_edges(en, index_c, T)
        tpos = np.full(index_c.size, -1)
        tpos[T] = np.arange(T.size)
        return sp.csc_matrix((c[edges], (rows, tpos[nodes])), shape=(self.n_c, T.size))

    def schur_solver(self, lu):
        """A solver of ``blockdiag(M, M[CC]) w = y`` from the factor ``lu`` of ``M`` (n_F, n_F) alone.

        ``M[CC]^-1 b = z_C - Z_C Z_T^-1 z_T``, ``z = M^-1 [b; 0]``, ``Z = M^-1 E_T`` (the block inverse).
        """
        nf, nc = self.n_f, self.n_c
        Z = lu.solve(self._E_T)
        ZC, ZTinv = Z[:nc], np.linalg.inv(Z[nc:])
        rhs = np.zeros((nf, 2))

        def solve(y):
            rhs[:, 0] = y[:nf]
            rhs[:nc, 1] = y[nf:]
            z = lu.solve(rhs)
            zc = z[:nc, 1] - ZC @ (ZTinv @ z[nc:, 1])
            return np.concatenate([z[:, 0], zc])

        return solve

    # -- per tick ------------------------------------------------------------------------
    def operators(self, positions) -> tuple:
        eng = self.engine
        g0 = eng.board.conductance(positions, 0)
        g1 = g0 if eng._twins_identical else eng.board.conductance(positions, 1)
        L = self.pattern.matrix(g0, g1)
        lu = _splu(L, "conductance matrix")
        nf, nc, mt = self.n_f, self.n_c, self.m_t
        if self.shared:
            # free equilibrium and the target columns of L^-1: the clamped equilibrium is a rank-M_T correction,
            # v_C* = v*_C + G (v*_T - clamp), G = L_CC^-1 L_CT = -[L^-1]_CT [L^-1]_TT^-1
            rhs = np.zeros((nf, 1 + mt))
            r, e, d = self._src_f
            rhs[:, 0] = np.bincount(r, weights=g0[e] * self.v_s[d], minlength=nf)
            rhs[:, 1:] = self._E_T
            x = lu.solve(rhs)
            vstar = x[:, 0]
            G = -x[:nc, 1:] @ np.linalg.inv(x[nc:, 1:])
            ops = _SparseOps(self, L, lu, vstar, vstar[:nc] + G @ vstar[nc:], -G)
            return ops, ops
        rhs = np.zeros((nf + nc, 1 + mt))
        r, e, d = self._src_f
        rhs[:nf, 0] = np.bincount(r, weights=g0[e] * self.v_s[d], minlength=nf)
        if nc:
            r, e, d = self._src_c
            rhs[nf:, 0] = np.bincount(r, weights=g1[e] * self.v_s[d], minlength=nc)
            r, e, d = self._tgt_c
            np.add.at(rhs, (nf + r, 1 + self._tpos[d]), g1[e])
        x = lu.solve(rhs)
        ops = _SparseOps(self, L, lu, x[:nf, 0], x[nf:, 0], x[nf:, 1:])
        return ops, ops

    def equilibrium_free(self, ops: _SparseOps) -> np.ndarray:
        v = self._template.copy()
        v[self.F] = ops.vstar
        return v

    def equilibrium_clamped(self, ops: _SparseOps, clamp: np.ndarray) -> np.ndarray:
        v = self._template.copy()
        v[self.C] = ops.a0 + ops.Gc @ clamp
        v[self.T] = clamp
        return v

    def relax(self, ops: _SparseOps, ops_c, v_free, v_clamped, clamp_old, clamp, duration: float) -> tuple:
        nf, nc = self.n_f, self.n_c
        b = np.empty(nf + nc)
        b[:nf] = v_free[self.F] - ops.vstar
        vc_star = ops.a0 + ops.Gc @ clamp
        if nc:
            vc = v_clamped[self.C]
            if self.m_t:  # the clamp step: charge on every clamped-floating node conserved,
                # L_C[CC] dv_C = -L_C[CT] dv_T, and -L_C[CT] = CCT holds the edge capacitances
                vc = vc + self.lu_CC.solve(self.CCT @ (clamp - v_clamped[self.T]))
            b[nf:] = vc - vc_star
        x = self.expm_action(ops, b, duration)
        vf = self._template.copy()
        vf[self.F] = ops.vstar + x[:nf]
        vcl = self._template.copy()
        vcl[self.C] = vc_star + x[nf:]
        vcl[self.T] = clamp
        return vf, vcl

    def expm_action(self, ops: _SparseOps, b: np.ndarray, t: float) -> np.ndarray:
        """``exp(-t Cb^-1 Lb) b``, shape (n_F + n_C,), by the shift-and-invert Krylov method."""
        Cb = self.Cb
        beta0 = float(np.sqrt(b @ (Cb @ b)))
        if beta0 == 0.0:
            return np.zeros_like(b)
        gamma = (self.period if 0.5 <= t / self.period <= 2.0 else t) / NU
        solve = ops.shifted(gamma)
        if self._basis is None:  # the Krylov basis and its Cb-image, columns contiguous, reused every tick
            self._basis = (np.empty((b.size, KRYLOV_MAX + 1), order="F"), np.empty((b.size, KRYLOV_MAX + 1), order="F"))
        V, CV = self._basis
        H = np.zeros((KRYLOV_MAX + 1, KRYLOV_MAX))
        V[:, 0] = b / beta0
        CV[:, 0] = Cb @ V[:, 0]
        prev = None
        for j in range(KRYLOV_MAX):
            w = solve(CV[:, j])
            for _ in range(2):  # full re-orthogonalisation in the Cb inner product, twice
                h = CV[:, :j + 1].T @ w
                w -= V[:, :j + 1] @ h
                H[:j + 1, j] += h
            Cw = Cb @ w
            beta = float(np.sqrt(max(w @ Cw, 0.0)))
            k = j + 1
            coef = self._small_exp(H[:k, :k], t / gamma) * beta0
            if prev is not None and np.linalg.norm(coef - np.append(prev, 0.0)) <= KRYLOV_TOL * beta0:
                break
            if beta <= 1e-14 * beta0 * max(1.0, abs(H[j, j])):  # an invariant subspace: exact
                break
            prev = coef
            H[k, j] = beta
            V[:, k] = w / beta
            CV[:, k] = Cw / beta
        return V[:, :coef.size] @ coef  # a new array: V is reused

    @staticmethod
    def _small_exp(H: np.ndarray, s: float) -> np.ndarray:
        """``exp(-s (H^-1 - I)) e_1`` for the projected (symmetric) ``H``, shape (k,)."""
        theta, Q = np.linalg.eigh(0.5 * (H + H.T))
        theta = np.clip(theta, 1e-300, 1.0)
        return Q @ (np.exp(-s * (1.0 / theta - 1.0)) * Q[0])
