"""Networks: compilation conventions, built-ins, and clear errors for bad graphs."""

import networkx as nx
import numpy as np
import pytest

from spicelearn.errors import ConfigError, NetworkError
from spicelearn.model.generators import delaunay, delaunay64, lab16, periodic_lattice, square_lattice
from spicelearn.model.network import compile_network, load_network


def test_compiled_order_and_orientation():
    g = nx.Graph([("b", "a"), ("c", "b"), ("a", "c")])
    net = compile_network(g)
    assert net.nodes == ("a", "b", "c")
    assert net.edges == (("a", "b"), ("a", "c"), ("b", "c"))
    v = np.array([1.0, 2.0, 4.0])
    # dv_j = v_u - v_v
    np.testing.assert_allclose(net.incidence @ v, [-1.0, -3.0, -2.0])
    assert net.edge_labels == ["a|b", "a|c", "b|c"]
    # the ends of every edge as indices, built once (engines and loops read them) and read-only
    np.testing.assert_array_equal(net.edge_nodes, [[0, 1], [0, 2], [1, 2]])
    assert net.edge_nodes is net.edge_nodes
    with pytest.raises(ValueError):
        net.edge_nodes[0, 0] = 2


def test_laplacian_is_weighted_and_annihilates_constants(lab):
    w = np.arange(1, lab.n_edges + 1, dtype=float)
    L = lab.laplacian(w)
    np.testing.assert_allclose(L @ np.ones(lab.n_nodes), 0, atol=1e-12)
    np.testing.assert_allclose(L, L.T)
    # power = 1/2 sum_j w_j dv_j^2 = 1/2 v^T L v
    v = np.random.default_rng(0).normal(size=lab.n_nodes)
    assert v @ L @ v == pytest.approx(np.sum(w * (lab.incidence @ v) ** 2))


def test_user_graph_not_mutated():
    g = nx.Graph()
    g.add_edge(1, 2, capacitance=1e-6)
    g.add_edge(2, 3, capacitance=2e-6)
    before = nx.to_dict_of_dicts(g)
    net = compile_network(g)
    assert nx.to_dict_of_dicts(g) == before and list(g.nodes) == [1, 2, 3]
    assert net.nodes == ("1", "2", "3")
    np.testing.assert_allclose(net.capacitance, [1e-6, 2e-6])


def test_builtins():
    lab = load_network("lab16")
    assert (lab.n_nodes, lab.n_edges) == (9, 16)
    assert lab.nodes == tuple(str(i) for i in range(9))
    d = load_network("delaunay64")
    assert (d.n_nodes, d.n_edges) == (64, 143)
    assert nx.check_planarity(delaunay64(seed=0))[0]
    # seeded: same seed, same graph; other seed, other graph
    assert sorted(delaunay64(1).edges) == sorted(delaunay64(1).edges)
    assert sorted(delaunay64(1).edges) != sorted(delaunay64(2).edges)
    assert delaunay(30, 60, seed=3).number_of_edges() == 60


def test_lattices():
    sq = square_lattice(3, 4)
    assert sq.number_of_edges() == 3 * 3 + 2 * 4
    per = periodic_lattice(3, 4)
    assert per.number_of_edges() == 2 * 12 and all(d == 4 for _, d in per.degree)
    with pytest.raises(NetworkError, match="periodic"):
        square_lattice(2, 5, periodic=True)


def test_graphml_roundtrip(tmp_path):
    g = lab16()
    for j, e in enumerate(g.edges):
        g.edges[e]["capacitance"] = 1e-6 * (j + 1)
        g.edges[e]["position"] = j
    path = tmp_path / "net.graphml"
    nx.write_graphml(compile_network(g).to_graph(), path)
    net = load_network(str(path))
    assert net.n_edges == 16 and net.name == "net"
    assert sorted(net.capacitance) == pytest.approx(sorted(1e-6 * (j + 1) for j in range(16)))


@pytest.mark.parametrize("make, match", [
    (lambda: nx.Graph([(0, 1), (2, 3)]), "disconnected"),
    (lambda: nx.Graph([(0, 1), (1, 1)]), "self-loops"),
    (lambda: nx.MultiGraph([(0, 1), (0, 1), (1, 2)]), "parallel edges"),
    (lambda: nx.DiGraph([(0, 1)]), "directed"),
    (lambda: nx.Graph(), "no edges"),
])
def test_bad_topology(make, match):
    with pytest.raises(NetworkError, match=match):
        compile_network(make())


@pytest.mark.parametrize("value", [0.0, -1e-6, float("nan"), float("inf")])
def test_bad_capacitance(value):
    g = nx.Graph()
    g.add_edge("a", "b", capacitance=1e-6)
    g.add_edge("b", "c", capacitance=value)
    with pytest.raises(NetworkError, match=r"capacitance.*b\|c"):
        compile_network(g)


@pytest.mark.parametrize("value", [-1, 65536, 3.5])
def test_bad_position(value):
    g = nx.Graph()
    g.add_edge("a", "b", position=value)
    with pytest.raises(NetworkError, match="position.*0..65535"):
        compile_network(g)


def test_graph_positions_beyond_a_128_position_pot_are_the_pots_to_refuse():
    """A 256-position pot may start where the graph says, 200; the lab's 128-position one may not."""
    import spicelearn as sl

    g = nx.path_graph(3)
    nx.set_edge_attributes(g, 200, "position")
    task = sl.Task({"0": 1.0}, {"2": 0.5})
    ds = sl.train(g, task, sl.Hardware(pot=sl.Potentiometer(n_positions=256, start=0)), steps=2)
    assert ds.position_start.values.tolist() == [200, 200]
    with pytest.raises(ConfigError, match=r"`positions` must be integers in 0..127"):
        sl.train(g, task, steps=2)


def test_unknown_network_name():
    with pytest.raises(NetworkError, match="built-in.*lab16"):
        load_network("lab17")
    for spec in (None, 3, ["lab16"], b"lab16"):  # not text: one clear error, not os.fspath's TypeError
        with pytest.raises(ConfigError, match=r"`network` must be a built-in name \(lab16, delaunay64\)"):
            load_network(spec)


@pytest.mark.parametrize("node", ["a|b", "a\x00b", "\x01", "\x1f", "\ud800"])
def test_node_ids_that_no_edge_label_or_file_can_keep_are_refused(node):
    g = nx.Graph([(node, "c"), ("c", "d")])
    with pytest.raises(NetworkError, match="node ids with '|' or a control character"):
        compile_network(g)


def test_a_multigraph_without_parallel_edges_says_how_to_pass_it():
    with pytest.raises(NetworkError, match=r"multigraph \(without parallel edges\): pass networkx.Graph\(graph\)"):
        compile_network(nx.MultiGraph([("a", "b"), ("b", "c")]))


def test_a_boolean_edge_attribute_is_not_a_number():
    g = nx.path_graph(3)
    nx.set_edge_attributes(g, True, "capacitance")  # float(True) would be a farad
    with pytest.raises(NetworkError, match="`capacitance`=True is not a number"):
        compile_network(g)


@pytest.mark.parametrize("attrs", [{"x": "abc", "y": 0.0}, {"x": float("nan"), "y": 1.0}, {"pos": (1.0,)},
                                   {"pos": "here"}])
def test_bad_node_positions_name_the_node(attrs):
    g = nx.path_graph(3)
    for n in g.nodes:
        g.nodes[n].update(x=float(n), y=0.0)
    g.nodes[1].pop("x"), g.nodes[1].pop("y")
    g.nodes[1].update(attrs)
    with pytest.raises(NetworkError, match="node '1' has the position .* must be finite numbers"):
        compile_network(g)


def test_bad_graphml(tmp_path):
    p = tmp_path / "bad.graphml"
    p.write_text("<graphml><oops")
    with pytest.raises(NetworkError, match="GraphML"):
        load_network(str(p))
