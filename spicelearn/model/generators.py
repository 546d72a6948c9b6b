"""Built-in networks: the lab board stand-in, random Delaunay networks, lattices.

Every function returns a new :class:`networkx.Graph` with string node ids and
node coordinates in ``pos``; random ones take ``seed``.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from ..errors import NetworkError

__all__ = ["lab16", "delaunay", "delaunay64", "square_lattice", "periodic_lattice", "LAB16_TASK"]

#: Default task of ``lab16``: drive "0" at 0 V and "8" at 1 V; ask 0.25 V at "2", 0.65 V at "6".
LAB16_TASK = {"sources": {"0": 0.0, "8": 1.0}, "targets": {"2": 0.25, "6": 0.65}}


def lab16() -> nx.Graph:
    """The stand-in for the lab board: a 3x3 grid with one diagonal per cell.

    Nodes "0".."8" row by row; 12 grid edges and 4 diagonals (16 edges).
    """
    g = nx.Graph(name="lab16")
    for r in range(3):
        for c in range(3):
            g.add_node(str(3 * r + c), pos=(float(c), float(-r)))
    for r in range(3):
        for c in range(3):
            i = 3 * r + c
            if c < 2:
                g.add_edge(str(i), str(i + 1))
            if r < 2:
                g.add_edge(str(i), str(i + 3))
            if r < 2 and c < 2:
                g.add_edge(str(i), str(i + 4))
    return g


def delaunay(n_nodes: int, n_edges: int, seed: int | None = 0) -> nx.Graph:
    """A random planar network: Delaunay triangulation of random points, thinned.

    Points are uniform in the unit square; random edges are removed (never one
    whose removal disconnects the graph or leaves a node with fewer than two
    edges) until ``n_edges`` remain.

    Raises
    ------
    NetworkError
        If ``n_nodes < 4`` or ``n_edges`` is outside ``[n_nodes, n_triangulation]``.
    """
    from scipy.spatial import Delaunay

    if int(n_nodes) != n_nodes or n_nodes < 4:
        raise NetworkError(f"`n_nodes` must be an integer >= 4, got {n_nodes!r}")
    rng = np.random.default_rng(seed)
    pts = rng.random((int(n_nodes), 2))
    tri = Delaunay(pts)
    g = nx.Graph(name=f"delaunay{n_nodes}")
    for i, p in enumerate(pts):
        g.add_node(str(i), pos=(float(p[0]), float(p[1])))
    for simplex in tri.simplices:
        for a in range(3):
            u, v = int(simplex[a]), int(simplex[(a + 1) % 3])
            g.add_edge(str(u), str(v))
    if not (n_nodes <= n_edges <= g.number_of_edges()):
        raise NetworkError(
            f"`n_edges`={n_edges} must lie in [{n_nodes}, {g.number_of_edges()}] "
            f"for this triangulation of {n_nodes} points"
        )
    candidates = sorted(g.edges, key=lambda e: (int(e[0]), int(e[1])))
    order = rng.permutation(len(candidates))
    for k in order:
        if g.number_of_edges() == n_edges:
            break
        u, v = candidates[k]
        if g.degree(u) <= 2 or g.degree(v) <= 2:
            continue
        g.remove_edge(u, v)
        if not nx.has_path(g, u, v):
            g.add_edge(u, v)
    if g.number_of_edges() != n_edges:
        raise NetworkError(f"could not thin the triangulation to `n_edges`={n_edges}; try another `seed`")
    return g


def delaunay64(seed: int | None = 0) -> nx.Graph:
    """The paper's simulation network: 64 nodes, 143 edges."""
    g = delaunay(64, 143, seed=seed)
    g.graph["name"] = "delaunay64"
    return g


def square_lattice(rows: int, cols: int, periodic: bool = False) -> nx.Graph:
    """A ``rows`` x ``cols`` square lattice; node ``r*cols + c``.

    With ``periodic=True`` the lattice wraps in both directions (a torus),
    which needs at least 3 rows and 3 columns.
    """
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise NetworkError(f"lattice needs at least 2 nodes, got `rows`={rows}, `cols`={cols}")
    if periodic and (rows < 3 or cols < 3):
        raise NetworkError(
            f"a periodic lattice needs `rows` >= 3 and `cols` >= 3 (else edges repeat), got {rows}x{cols}"
        )
    g = nx.Graph(name=f"{'periodic' if periodic else 'square'}{rows}x{cols}")
    for r in range(rows):
        for c in range(cols):
            g.add_node(str(r * cols + c), pos=(float(c), float(-r)))
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols or periodic:
                g.add_edge(str(i), str(r * cols + (c + 1) % cols))
            if r + 1 < rows or periodic:
                g.add_edge(str(i), str(((r + 1) % rows) * cols + c))
    return g


def periodic_lattice(rows: int, cols: int) -> nx.Graph:
    """A square lattice with periodic boundaries (see :func:`square_lattice`)."""
    return square_lattice(rows, cols, periodic=True)
