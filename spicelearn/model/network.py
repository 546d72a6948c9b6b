"""Networks: networkx graphs compiled to the arrays the engines use.

Conventions (DESIGN.md section 1): node ids are strings; edges are sorted by
node ids and oriented from ``u`` to ``v`` with ``u < v``, so that the voltage drop
of edge ``j`` is ``dv_j = v_u - v_v``, i.e. ``dv = incidence @ v``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from functools import cached_property

import networkx as nx
import numpy as np

from ..checks import check_seed, show, text_or_path
from ..errors import NetworkError

__all__ = ["CompiledNetwork", "compile_network", "load_network", "equilibrium", "SINGULAR_CONDUCTANCE", "BUILTIN_NETWORKS"]

#: The most positions a pot may have (digital pots have 32 to 1,024; the engines keep a table of every edge's
#: conductance at every position): the range of the graphs' ``position`` attributes.
MAX_POSITIONS = 65_536


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """A network with a fixed node and edge order.

    Attributes
    ----------
    nodes : tuple of str, shape (N,)
        Node ids in index order (sorted).
    edges : tuple of (str, str), shape (E,)
        Edges ``(u, v)`` with ``u < v``, sorted.
    incidence : ndarray, shape (E, N)
        ``+1`` at ``u`` and ``-1`` at ``v`` on row ``j``.
    capacitance : ndarray or None, shape (E,)
        Per-edge capacitance in farad from the graph's ``capacitance``
        attributes, or None where the graph gives none.
    position : ndarray or None, shape (E,)
        Initial potentiometer positions from the graph's ``position``
        attributes, or None.
    pos : ndarray or None, shape (N, 2)
        Node coordinates for drawing, where the graph has them.
    name : str
        A label for files and plots.
    builtin : (str, int) or None
        ``(name, network_seed)`` of a built-in network, None for any other graph.
    """

    nodes: tuple
    edges: tuple
    incidence: np.ndarray
    capacitance: np.ndarray | None = None
    position: np.ndarray | None = None
    pos: np.ndarray | None = None
    name: str = "network"
    builtin: tuple | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def node_index(self) -> dict:
        """Map node id -> index."""
        return {n: i for i, n in enumerate(self.nodes)}

    @property
    def edge_labels(self) -> list:
        """Edge labels ``"u|v"`` in compiled order (the run file's coordinate)."""
        return [f"{u}|{v}" for u, v in self.edges]

    @cached_property
    def edge_nodes(self) -> np.ndarray:
        """Node indices of the two ends of every edge, shape (E, 2); read-only, built once."""
        idx = self.node_index
        out = np.array([[idx[u], idx[v]] for u, v in self.edges], dtype=int).reshape(-1, 2)
        out.setflags(write=False)
        return out

    def laplacian(self, weights: np.ndarray) -> np.ndarray:
        """Weighted Laplacian ``B^T diag(w) B``, shape (N, N)."""
        B = self.incidence
        return B.T @ (np.asarray(weights, dtype=float)[:, None] * B)

    def components(self) -> list:
        """Connected components, as sorted lists of node indices (found once: every task bound to the network asks)."""
        return [list(c) for c in self._components]

    @cached_property
    def _components(self) -> tuple:
        g = nx.Graph()
        g.add_nodes_from(range(self.n_nodes))
        g.add_edges_from(map(tuple, self.edge_nodes))
        return tuple(tuple(sorted(c)) for c in nx.connected_components(g))

    def content_hash(self) -> str:
        """SHA-256 of what the simulation depends on: node ids, edges, capacitance and position attributes (computed
        once: every run file records it)."""
        return self._content_hash

    @cached_property
    def _content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([list(self.nodes), [list(e) for e in self.edges]]).encode())
        for arr in (self.capacitance, self.position):
            h.update(b"-" if arr is None else np.asarray(arr, dtype=float).tobytes())
        return h.hexdigest()

    def to_graphml(self) -> str:
        """The network as GraphML text (what :func:`load_network` reads back, attributes included)."""
        return "\n".join(nx.generate_graphml(self.to_graph()))

    def to_graph(self) -> nx.Graph:
        """A fresh networkx graph with the compiled attributes."""
        g = nx.Graph(name=self.name)
        for i, n in enumerate(self.nodes):
            attrs = {} if self.pos is None else {"x": float(self.pos[i, 0]), "y": float(self.pos[i, 1])}
            g.add_node(n, **attrs)
        for j, (u, v) in enumerate(self.edges):
            attrs = {}
            if self.capacitance is not None:
                attrs["capacitance"] = float(self.capacitance[j])
            if self.position is not None:
                attrs["position"] = int(self.position[j])
            g.add_edge(u, v, **attrs)
        return g


#: The error of an equilibrium whose floating nodes' conductance matrix is singular.
SINGULAR_CONDUCTANCE = ("the conductance matrix of the floating nodes is singular: "
                        "a floating part of the network has no path to a driven node")


def equilibrium(network: CompiledNetwork, g: np.ndarray, floating: np.ndarray, v: np.ndarray) -> np.ndarray:
    """DC node voltages, shape (N,): ``v`` (N,) on the driven nodes, Kirchhoff's current law on ``floating``.

    Parameters
    ----------
    g : ndarray, shape (E,)
        Edge conductances.
    floating : ndarray of int
        Indices of the nodes no source holds.
    v : ndarray, shape (N,)
        Voltages; those of the driven nodes are used.
    """
    L = network.laplacian(g)
    fixed = np.setdiff1d(np.arange(network.n_nodes), floating)
    out = np.array(v, dtype=float)
    try:
        out[floating] = np.linalg.solve(L[np.ix_(floating, floating)], -L[np.ix_(floating, fixed)] @ out[fixed])
    except np.linalg.LinAlgError:
        raise NetworkError(SINGULAR_CONDUCTANCE) from None
    return out


def _edge_attribute(graph: nx.Graph, edges, key: str) -> np.ndarray | None:
    present = [key in graph.edges[u, v] for u, v in edges]
    if not any(present):
        return None
    if not all(present):
        missing = [f"{u}|{v}" for (u, v), p in zip(edges, present) if not p][:5]
        raise NetworkError(
            f"edge attribute `{key}` is set on some edges but not on {missing}...; "
            f"set it on every edge or on none"
        )
    out = []
    for u, v in edges:
        value = graph.edges[u, v][key]
        try:
            if isinstance(value, (bool, np.bool_)):  # float(True) is 1: a farad, or a position, by accident
                raise TypeError
            out.append(float(value))
        except (TypeError, ValueError):
            raise NetworkError(f"edge {u}|{v}: `{key}`={show(value)} is not a number") from None
    return np.array(out)


def compile_network(graph: nx.Graph, *, name: str | None = None, allow_disconnected: bool = False) -> CompiledNetwork:
    """Compile a networkx graph into a :class:`CompiledNetwork`.

    The graph is not modified. Node ids become strings.

    Parameters
    ----------
    graph : networkx.Graph
        Undirected graph; optional edge attributes ``capacitance`` (farad) and
        ``position`` (0..127); optional node attributes ``x``, ``y`` or ``pos``.
    name : str, optional
        Label of the network (default: the graph's ``name`` or ``"network"``).
    allow_disconnected : bool
        Accept a graph of several components; each must then hold a driven
        node, which is checked when a task is bound to the network.

    Raises
    ------
    NetworkError
        For a directed graph or multigraph (parallel edges), self-loops, an
        empty or disconnected graph, duplicate node ids once converted to
        strings, non-positive or non-finite capacitances, or positions outside
        0..65535 (:data:`MAX_POSITIONS`; each pot checks its own range where a run starts).
    """
    if not isinstance(allow_disconnected, (bool, np.bool_)):  # ("no" would be true)
        raise NetworkError(f"`allow_disconnected` must be True or False, got {allow_disconnected!r:.40}")
    if not isinstance(graph, nx.Graph):
        raise NetworkError(f"`graph` must be a networkx.Graph, got {type(graph).__name__}")
    if graph.is_directed():
        raise NetworkError("`graph` is directed; resistor networks are undirected: pass graph.to_undirected()")
    if graph.is_multigraph():
        parallel = [(u, v) for u, v in graph.edges() if graph.number_of_edges(u, v) > 1]
        raise NetworkError(
            f"`graph` has parallel edges (e.g. {parallel[:3]}); merge them into one edge "
            f"(two resistors in parallel are one conductance)" if parallel else
            "`graph` is a multigraph (without parallel edges): pass networkx.Graph(graph)"
        )
    loops = list(nx.selfloop_edges(graph))
    if loops:
        raise NetworkError(f"`graph` has self-loops at nodes {sorted({str(u) for u, _ in loops})}; remove them")
    if graph.number_of_edges() == 0:
        raise NetworkError("`graph` has no edges")
    labels = {n: str(n) for n in graph.nodes}
    odd = [x for x in labels.values() if "|" in x or any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127
                                                        or 0xD800 <= ord(c) < 0xE000 for c in x)]
    if odd:  # "|" joins node ids into edge labels; control characters (but tab and newlines, which XML keeps) and
        # lone surrogates no file keeps
        raise NetworkError(f"`graph` has node ids with '|' or a control character, e.g. {odd[:3]}; '|' joins the ids "
                           "of an edge's nodes in its label, and run files and GraphML cannot keep control "
                           "characters: relabel them")
    if len(set(labels.values())) != len(labels):
        raise NetworkError("`graph` has node ids that coincide once converted to strings; relabel them")
    g = nx.relabel_nodes(graph, labels, copy=True)
    if not allow_disconnected and not nx.is_connected(g):
        comps = sorted((sorted(c) for c in nx.connected_components(g)), key=len)
        raise NetworkError(
            f"`graph` is disconnected ({len(comps)} components; smallest: {comps[0][:8]}); "
            f"every part must connect to a driven node: connect them or remove the isolated part"
        )
    nodes = tuple(sorted(g.nodes))
    idx = {n: i for i, n in enumerate(nodes)}
    edges = tuple(sorted(tuple(sorted((u, v))) for u, v in g.edges))
    B = np.zeros((len(edges), len(nodes)))
    for j, (u, v) in enumerate(edges):
        B[j, idx[u]] = 1.0
        B[j, idx[v]] = -1.0

    cap = _edge_attribute(g, edges, "capacitance")
    if cap is not None:
        bad = [f"{u}|{v}={show(c)}" for (u, v), c in zip(edges, cap) if not (math.isfinite(c) and c > 0)]
        if bad:
            raise NetworkError(f"edge `capacitance` must be finite and > 0 farad; got {bad[:5]}")
    position = _edge_attribute(g, edges, "position")
    if position is not None:
        bad = [f"{u}|{v}={show(p)}" for (u, v), p in zip(edges, position)
               if not (math.isfinite(p) and p == int(p) and 0 <= p < MAX_POSITIONS)]
        if bad:  # (the pots' own range is checked where a run starts: initial_positions)
            raise NetworkError(f"edge `position` must be an integer in 0..{MAX_POSITIONS - 1}; got {bad[:5]}")
        position = position.astype(int)

    pos = _node_positions(g, nodes)
    return CompiledNetwork(
        nodes=nodes, edges=edges, incidence=B, capacitance=cap, position=position, pos=pos,
        name=_network_name(name or g.graph.get("name") or "network"),
    )


def _network_name(name) -> str:
    """A network's name: text (run files and GraphML keep it)."""
    if not isinstance(name, str):
        raise NetworkError(f"the network's `name` (or the graph's 'name' attribute) must be text, got "
                           f"{type(name).__name__} {show(name):.40}")
    return name


def _node_positions(g: nx.Graph, nodes) -> np.ndarray | None:
    """The nodes' drawing positions (N, 2), from their ``pos`` or ``x`` and ``y`` attributes; None where a node has
    none."""
    out = []
    for n in nodes:
        d = g.nodes[n]
        if "pos" in d:
            given = d["pos"]
        elif "x" in d and "y" in d:
            given = (d["x"], d["y"])
        else:
            return None
        try:
            xy = tuple(float(v) for v in given)[:2]
        except (TypeError, ValueError):
            xy = ()
        if len(xy) != 2 or not all(math.isfinite(v) for v in xy):
            raise NetworkError(f"node {n!r} has the position {show(given):.60}; node `x` and `y` (or `pos`) must be "
                               "finite numbers, or absent on every node")
        out.append(xy)
    return np.array(out)


def _builtin(name: str, network_seed: int):
    from . import generators

    return {
        "lab16": lambda: generators.lab16(),
        "delaunay64": lambda: generators.delaunay64(seed=network_seed),
    }.get(name)


BUILTIN_NETWORKS = ("lab16", "delaunay64")


def load_network(spec, *, network_seed: int = 0, allow_disconnected: bool = False) -> CompiledNetwork:
    """Load and compile a network.

    Parameters
    ----------
    spec : str, os.PathLike, networkx.Graph or CompiledNetwork
        A built-in name (``"lab16"``, ``"delaunay64"``), a GraphML file, a
        graph, or an already compiled network (returned as is).
    network_seed : int
        Seed of random built-ins (``delaunay64``).
    """
    if isinstance(spec, CompiledNetwork):
        return spec
    if isinstance(spec, nx.Graph):
        return compile_network(spec, allow_disconnected=allow_disconnected)
    spec = text_or_path("network", spec, f"a built-in name ({', '.join(BUILTIN_NETWORKS)}), a GraphML file, a "
                        "networkx graph or a compiled network")
    make = _builtin(spec, network_seed)
    if make is not None:
        check_seed("network_seed", network_seed)
        net = compile_network(make(), name=spec)
        return replace(net, builtin=(spec, int(network_seed)))
    if not os.path.exists(spec):
        raise NetworkError(
            f"`NETWORK`={spec!r} is neither a built-in ({', '.join(BUILTIN_NETWORKS)}) nor an existing GraphML file"
        )
    try:
        graph = nx.read_graphml(spec)
    except Exception as exc:  # networkx raises several types for malformed XML
        raise NetworkError(f"cannot read GraphML file {spec!r}: {exc}") from None
    name = os.path.splitext(os.path.basename(spec))[0]
    return compile_network(graph, name=name, allow_disconnected=allow_disconnected)
