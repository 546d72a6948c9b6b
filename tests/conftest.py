import networkx as nx
import pytest
from threadpoolctl import threadpool_limits

from spicelearn.model.network import load_network


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """The tests' networks are small: BLAS on one thread (see spicelearn.blas; two threads only contend)."""
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def lab():
    return load_network("lab16")


@pytest.fixture(scope="session")
def d64():
    return load_network("delaunay64")


def chain(n: int, **edge_attrs) -> nx.Graph:
    """A path 0-1-...-(n-1) with string node ids."""
    g = nx.path_graph(n)
    g = nx.relabel_nodes(g, str)
    nx.set_edge_attributes(g, {e: dict(edge_attrs) for e in g.edges})
    return g
