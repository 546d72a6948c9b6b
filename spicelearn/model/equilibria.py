"""Equilibria at many conductance vectors at once: one sparse LDL^T analysis, the factorisations vectorised.

The equilibrium of :func:`~spicelearn.model.network.equilibrium` solves ``L_FF(g) v_F = -L_FD(g) v_D``
on the floating nodes F (the rest, D, driven). A learning run needs it at every step, for thousands of
conductance vectors ``g`` on one node partition: ``mse_eq`` of the ``ode`` engine, for instance. The
floating Laplacian of a planar network is sparse, and so is its Cholesky factor in a minimum-degree order
(delaunay64: about 200 entries below the diagonal against 1,711 dense), but a LAPACK solve per vector pays
for the dense matrix and a sparse solver per vector pays its set-up each time.

:class:`Equilibria` does the symbolic part once (ordering, the pattern of the factor, which entries each
pivot updates) and then factorises and solves a whole stack of Laplacians with one loop over the pivots,
each pivot a handful of array operations across the stack (entries in rows, vectors in columns, so each
operation reads contiguous memory). LDL^T without pivoting is stable for these symmetric positive-definite
matrices; the results agree with a dense solve to rounding (``tests/test_equilibria.py``).
"""

from __future__ import annotations

import heapq

import numpy as np
from scipy import sparse

from ..errors import NetworkError
from .network import SINGULAR_CONDUCTANCE, CompiledNetwork

__all__ = ["Equilibria", "minimum_degree_order"]

#: Conductance vectors per block of the factorisation (the block's entries stay in cache).
CHUNK = 512
#: Fewer vectors than this go through dense LAPACK solves instead (the loop over pivots costs more).
DENSE_BELOW = 8


def minimum_degree_order(adjacency: list) -> tuple[np.ndarray, list]:
    """A minimum-degree elimination order of a graph and the pattern it gives the Cholesky factor.

    Parameters
    ----------
    adjacency : list of sets of int, length n
        Neighbours of each vertex (no self loops).

    Returns
    -------
    order : ndarray of int, shape (n,)
        Vertices in elimination order (ties broken by the lowest vertex).
    later : list of sets, length n
        ``later[k]``: the vertices still uneliminated that are adjacent to ``order[k]`` when it is
        eliminated (the rows of the factor's column k, fill included).
    """
    adj = [set(a) for a in adjacency]
    heap = [(len(a), i) for i, a in enumerate(adj)]
    heapq.heapify(heap)
    done = np.zeros(len(adj), bool)
    order, later = [], []
    while heap:
        deg, k = heapq.heappop(heap)
        if done[k] or deg != len(adj[k]):
            continue  # eliminated already, or a stale degree
        done[k] = True
        nb = adj[k]
        for i in nb:  # eliminating k joins its neighbours into a clique
            adj[i].discard(k)
            adj[i] |= nb - {i}
            heapq.heappush(heap, (len(adj[i]), i))
        order.append(k)
        later.append(nb)
    return np.array(order, dtype=int), later


class Equilibria:
    """DC equilibria of one network and node partition at many conductance vectors.

    Parameters
    ----------
    network : CompiledNetwork
    floating : array of int
        Node indices where Kirchhoff's current law holds; every other node is driven.

    Examples
    --------
    >>> eq = Equilibria(net, floating)            # doctest: +SKIP
    >>> V = eq(G, v)  # G (T, E), v (N,) or (T, N) -> (T, N)   # doctest: +SKIP
    """

    def __init__(self, network: CompiledNetwork, floating):
        floating = np.asarray(floating, dtype=int)
        N, E = network.n_nodes, network.n_edges
        self.network, self.floating = network, floating
        n = self.n = floating.size
        local = np.full(N, -1)
        local[floating] = np.arange(n)
        ends = network.edge_nodes  # (E, 2)
        la, lb = local[ends[:, 0]], local[ends[:, 1]]
        both = (la >= 0) & (lb >= 0)
        adjacency = [set() for _ in range(n)]
        for a, b in zip(la[both], lb[both]):
            if a != b:
                adjacency[a].add(b)
                adjacency[b].add(a)
        order, later = minimum_degree_order(adjacency)
        rank = np.empty(n, dtype=int)
        rank[order] = np.arange(n)
        self.order = order  # pivot k is floating node order[k]
        # entries: the n diagonals first, then column k's rows below the diagonal, column by column
        self._rows, self._cols, index = [], [], {}
        nnz = n
        for k in range(n):
            rows = np.sort(rank[list(later[k])]).astype(int)
            self._rows.append(rows)
            self._cols.append(np.arange(nnz, nnz + rows.size))
            index.update({(int(r), k): nnz + j for j, r in enumerate(rows)})
            nnz += rows.size
        self.nnz = nnz

        def entry(p, q):
            return p if p == q else index[(max(p, q), min(p, q))]

        # each pivot k updates the entries (p, q), p >= q, of its rows: pairs into its column, and targets
        self._pairs, tril = [], {}
        for k in range(n):
            rows = self._rows[k]
            if rows.size not in tril:
                tril[rows.size] = np.tril_indices(rows.size)
            p, q = tril[rows.size]
            self._pairs.append((p, q, np.array([entry(int(rows[i]), int(rows[j])) for i, j in zip(p, q)],
                                               dtype=int)))
        # assembly: entries = A_map @ g, right-hand side = b_map @ (g * voltage at the driven end)
        ra, rb = np.where(la >= 0, rank[np.maximum(la, 0)], -1), np.where(lb >= 0, rank[np.maximum(lb, 0)], -1)
        r_idx, c_idx, vals = [], [], []
        b_rows, b_cols, self._driven_end = [], [], np.full(E, -1)
        for e in range(E):
            a, b = int(ra[e]), int(rb[e])
            for x, y, other in ((a, b, ends[e, 1]), (b, a, ends[e, 0])):
                if x < 0:
                    continue
                r_idx.append(x), c_idx.append(e), vals.append(1.0)  # diagonal
                if y < 0:  # the other end is driven
                    b_rows.append(x), b_cols.append(e)
                    self._driven_end[e] = other
            if a >= 0 and b >= 0 and a != b:
                r_idx.append(entry(a, b)), c_idx.append(e), vals.append(-1.0)
        self._A_map = sparse.csr_matrix((vals, (r_idx, c_idx)), shape=(nnz, E))
        # the entries' places in the dense matrix (pivot order), for a stack too small to amortise the loop
        rows_all = np.concatenate([np.arange(n), *self._rows]).astype(int)
        cols_all = np.concatenate([np.arange(n), *(np.full(r.size, k) for k, r in enumerate(self._rows))])
        self._dense_at = (np.concatenate([rows_all, cols_all[n:]]), np.concatenate([cols_all, rows_all[n:]]),
                          np.concatenate([np.arange(nnz), np.arange(n, nnz)]))
        self._b_map = sparse.csr_matrix((np.ones(len(b_rows)), (b_rows, b_cols)), shape=(n, E))
        self._has_driven_end = self._driven_end >= 0

    def __call__(self, G, v, chunk: int = CHUNK) -> np.ndarray:
        """Equilibria at the conductances ``G`` (T, E) with driven voltages from ``v`` (N,) or (T, N).

        ``chunk`` conductance vectors are factorised at once.

        Returns
        -------
        ndarray, shape (T, N)
            ``v`` on the driven nodes, Kirchhoff's current law on the floating ones.
        """
        G = np.atleast_2d(np.asarray(G, dtype=float))
        T = G.shape[0]
        v = np.asarray(v, dtype=float)
        out = np.array(np.broadcast_to(v, (T, self.network.n_nodes)))
        if self.n == 0:
            return out
        for lo in range(0, T, chunk):
            g = G[lo:lo + chunk]
            vo = np.zeros_like(g)
            vo[:, self._has_driven_end] = out[lo:lo + chunk][:, self._driven_end[self._has_driven_end]]
            V, b = np.asarray(self._A_map @ g.T), np.asarray(self._b_map @ (g * vo).T)
            x = self._solve_dense(V, b) if g.shape[0] < DENSE_BELOW else self._solve(V, b)
            out[lo:lo + chunk, self.floating[self.order]] = x.T
        return out

    def _solve_dense(self, V, b):
        """As :meth:`_solve`, through dense matrices and LAPACK (a few vectors: no loop over the pivots)."""
        r, c, src = self._dense_at
        A = np.zeros((V.shape[1], self.n, self.n))
        A[:, r, c] = V[src].T
        try:
            return np.linalg.solve(A, b.T[..., None])[..., 0].T
        except np.linalg.LinAlgError:
            raise NetworkError(SINGULAR_CONDUCTANCE) from None

    def _solve(self, V, b):
        """Factorise the stack of entries ``V`` (nnz, T) in place and solve for ``b`` (n, T), pivot order."""
        n = self.n
        for k in range(n):  # right-looking LDL^T
            c = self._cols[k]
            if c.size:
                a = V[c]
                l = a / V[k]
                p, q, tgt = self._pairs[k]
                V[tgt] -= l[p] * a[q]
                V[c] = l
        D = V[:n]
        if not np.all(D > 0):
            raise NetworkError(SINGULAR_CONDUCTANCE)
        for k in range(n):  # L y = b
            c = self._cols[k]
            if c.size:
                b[self._rows[k]] -= V[c] * b[k]
        b /= D
        for k in range(n - 1, -1, -1):  # L^T x = y
            c = self._cols[k]
            if c.size:
                b[k] -= np.einsum("it,it->t", V[c], b[self._rows[k]])
        return b
