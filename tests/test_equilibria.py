"""Batched equilibria (:class:`spicelearn.model.equilibria.Equilibria`): the sparse LDL^T across a stack against one
dense solve per vector, Kirchhoff's current law, the fill of the minimum-degree order, and a singular network."""

import networkx as nx
import numpy as np
import pytest

from spicelearn.errors import NetworkError
from spicelearn.model.equilibria import DENSE_BELOW, Equilibria, minimum_degree_order
from spicelearn.model.network import compile_network, equilibrium, load_network
from spicelearn.model.task import load_task


def grid(n):
    """An n x n square grid (string node ids)."""
    return compile_network(nx.relabel_nodes(nx.grid_2d_graph(n, n), lambda p: f"n{p[0]:02d}{p[1]:02d}"), name="grid")


@pytest.fixture(scope="module", params=["delaunay64", "lab16", "grid12"])
def case(request):
    net = grid(12) if request.param == "grid12" else load_network(request.param)
    bound = load_task("random:3,2,4", net).bind(net)
    return net, bound.clamped_floating


@pytest.mark.parametrize("T", [1, DENSE_BELOW - 1, DENSE_BELOW, 37])
def test_matches_one_dense_solve_per_vector(case, T):
    net, floating = case
    rng = np.random.default_rng(T)
    G = np.exp(2.0 * rng.normal(size=(T, net.n_edges)))  # conductances over about five decades
    v = rng.normal(size=(T, net.n_nodes))
    G0, v0 = G.copy(), v.copy()
    V = Equilibria(net, floating)(G, v, chunk=16)  # chunks of 16: the last one partial
    ref = np.array([equilibrium(net, G[i], floating, v[i]) for i in range(T)])
    np.testing.assert_allclose(V, ref, rtol=0, atol=1e-12 * np.abs(v).max())
    np.testing.assert_array_equal(G, G0)  # inputs untouched
    np.testing.assert_array_equal(v, v0)


def test_kirchhoff_current_law_and_driven_nodes(case):
    net, floating = case
    rng = np.random.default_rng(1)
    G = rng.uniform(0.1, 10.0, size=(200, net.n_edges))
    v = rng.normal(size=net.n_nodes)  # one set of driven voltages for every row
    V = Equilibria(net, floating)(G, v)
    B = net.incidence
    currents = (G * (V @ B.T)) @ B  # (T, N): net current out of every node
    assert np.abs(currents[:, floating]).max() < 1e-12 * np.abs(G).max()
    driven = np.setdiff1d(np.arange(net.n_nodes), floating)
    np.testing.assert_array_equal(V[:, driven], np.broadcast_to(v[driven], (200, driven.size)))
    # the maximum principle: floating voltages within the driven ones
    assert V[:, floating].max() <= v[driven].max() + 1e-12 and V[:, floating].min() >= v[driven].min() - 1e-12


def test_minimum_degree_fill_is_closed():
    """Every pivot's later neighbours form a clique in the factor's pattern (what the numeric loop relies on)."""
    net = load_network("delaunay64")
    adj = [set() for _ in range(net.n_nodes)]
    for a, b in net.edge_nodes:
        adj[a].add(b), adj[b].add(a)
    order, later = minimum_degree_order(adj)
    assert sorted(order) == list(range(net.n_nodes))
    rank = {int(k): i for i, k in enumerate(order)}
    pattern = {(rank[int(r)], i) for i, k in enumerate(order) for r in later[i]}
    assert all(rank[int(r)] > i for i, k in enumerate(order) for r in later[i])  # below the diagonal
    for i in range(len(order)):
        rows = sorted(rank[int(r)] for r in later[i])
        assert all((p, q) in pattern for j, q in enumerate(rows) for p in rows[j + 1:])
    # sparse: far fewer entries than the dense triangle
    assert len(pattern) < 0.2 * net.n_nodes * (net.n_nodes - 1) / 2


@pytest.mark.parametrize("T", [1, 50])
def test_a_floating_island_is_a_clear_error(T):
    g = nx.Graph()
    g.add_edges_from([("a", "b"), ("b", "c"), ("x", "y")])  # x, y: no path to a driven node
    net = compile_network(g, allow_disconnected=True)
    idx = net.node_index
    floating = np.array([idx["b"], idx["x"], idx["y"]])
    with pytest.raises(NetworkError, match="singular"):
        Equilibria(net, floating)(np.ones((T, net.n_edges)), np.zeros(net.n_nodes))
