"""Equilibria through an independent set eliminated first (engines.elimination), against dense solves."""

import networkx as nx
import numpy as np
import pytest

import spicelearn as sl
from spicelearn.engines.batched import _solve_spd
from spicelearn.engines.elimination import EliminatedLaplacian, independent_set
from spicelearn.engines.exact import FloatingLaplacian
from spicelearn.errors import ConfigError, NetworkError
from spicelearn.model.network import compile_network
from spicelearn.model.task import bind


def _setup(name="delaunay64", task="random:5,3,0", size=6, seed=0):
    bound = bind(name, task)
    net = bound.network
    floating = np.concatenate([bound.clamped_floating, bound.target_index])
    lap = FloatingLaplacian(net, floating, size)
    g = np.random.default_rng(seed).uniform(1e-5, 1.3e-3, (size, net.n_edges))  # the pots' range, 781 Ohm to 100 kOhm
    keep = np.arange(bound.clamped_floating.size, floating.size)
    return lap, g, keep


def test_the_eliminated_nodes_are_independent_and_the_kept_ones_remain():
    lap, _, keep = _setup()
    el = EliminatedLaplacian(lap, keep)
    I = el.eliminated
    adjacent = {(int(r), int(c)) for r, c in zip(lap.rows, lap.cols) if r != c}
    assert not any((int(a), int(b)) in adjacent for a in I for b in I)
    assert not set(keep) & set(I.tolist())
    assert np.array_equal(np.sort(np.concatenate([I, el.remaining])), np.arange(lap.n_f))
    assert el.remaining[-keep.size:].tolist() == keep.tolist()  # the kept targets stay last, in order
    assert 15 <= I.size <= 30  # delaunay64: 22 of 59 go, where the dense solve costs n^3


@pytest.mark.parametrize("reduce", [None, 1])
def test_solves_are_the_dense_laplacians_solves(reduce):
    """Against numpy's solve of the dense Laplacians, for a right-hand side nonzero everywhere and the unit vectors of
    the kept nodes (which ``reduce=1`` leaves unreduced)."""
    lap, g, keep = _setup()
    el = EliminatedLaplacian(lap, keep)
    rng = np.random.default_rng(1)
    b = np.zeros((lap.size, lap.n_f, 1 + keep.size))
    b[:, :, 0] = rng.normal(0.0, 1e-3, (lap.size, lap.n_f))  # amperes, as B_F^T g V
    b[:, keep, 1 + np.arange(keep.size)] = 1.0
    x = el.solve(lap.entries(g), b, _solve_spd, reduce=reduce)
    dense = lap.dense(g)
    expected = np.linalg.solve(dense, b)
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    # Kirchhoff's current law at every node: L x = b to rounding
    np.testing.assert_allclose(dense @ x, b, rtol=0, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("length", [9, 4])
def test_a_chain_keeps_every_other_node_and_one_node_may_go_alone(length):
    """A chain's clamped-floating nodes (a path of six, or a single node): half of the path goes, its ends first; where
    the single node goes, the Schur complement is empty."""
    net = compile_network(nx.path_graph([str(i) for i in range(length)]))
    bound = sl.Task({"0": 0.0, str(length - 1): 1.0}, {str(length - 2): 0.5}).bind(net)
    floating = bound.clamped_floating
    lap = FloatingLaplacian(net, floating, 2)
    el = EliminatedLaplacian(lap)
    assert el.eliminated.size == (3 if length == 9 else 1) and el.n_r == floating.size - el.eliminated.size
    g = np.random.default_rng(3).uniform(1e-5, 1e-3, (2, net.n_edges))
    b = np.random.default_rng(4).normal(size=(2, floating.size, 2))
    np.testing.assert_allclose(el.solve(lap.entries(g), b, _solve_spd), np.linalg.solve(lap.dense(g), b), rtol=1e-12)


def test_a_boards_solution_does_not_depend_on_its_batch():
    lap, g, keep = _setup(size=5)
    b = np.random.default_rng(2).normal(size=(5, lap.n_f, 2))
    x = EliminatedLaplacian(lap, keep).solve(lap.entries(g), b, _solve_spd)
    order = [3, 0, 4, 1, 2]
    other = _setup(size=5)[0]
    y = EliminatedLaplacian(other, keep).solve(other.entries(g[order]), b[order], _solve_spd)
    np.testing.assert_array_equal(y, x[order])


def test_a_floating_island_is_refused():
    """A floating node cut off by zero conductances: singular, whether it is eliminated or remains."""
    lap, g, keep = _setup(size=2)
    el = EliminatedLaplacian(lap, keep)
    b = np.ones((2, lap.n_f, 1))
    for node in (el.eliminated[0], el.remaining[0]):
        cut = g.copy()
        bound = bind("delaunay64", "random:5,3,0")
        node_id = np.concatenate([bound.clamped_floating, bound.target_index])[node]
        cut[1, np.any(bound.network.edge_nodes == node_id, axis=1)] = 0.0
        with pytest.raises(NetworkError):
            el.solve(lap.entries(cut), b, _solve_spd)


def test_nodes_without_a_diagonal_entry_are_not_eliminated():
    rows = np.array([0, 0, 1, 1])
    cols = np.array([0, 1, 0, 1])
    assert independent_set(rows, cols, 3).tolist() == [0]  # node 2 has no entry at all: it stays (and is singular)
    assert independent_set(rows, cols, 3, keep=[0]).tolist() == [1]


def test_a_batch_of_another_size_is_refused_with_the_shapes():
    lap, g, keep = _setup(size=3)
    el = EliminatedLaplacian(lap, keep)
    with pytest.raises(ConfigError, match=r"3 boards .* 59 nodes, got shapes \(2, \d+\) and \(2, 59, 1\)"):
        el.solve(lap.entries(g)[:2], np.ones((2, lap.n_f, 1)), _solve_spd)
