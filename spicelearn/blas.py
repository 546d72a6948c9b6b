"""How many threads BLAS gets: one for small networks.

At the sizes of lab16 and delaunay64 (up to a few hundred nodes) a matrix product or
eigensolve takes microseconds, and a second BLAS thread only contends: with the other
core busy, a 64 x 143 x 64 product was measured at 3 to 15 ms on two threads against
0.1 ms on one. Every driver of many small solves runs inside :func:`limit_for`.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

__all__ = ["limit_for", "SMALL_NETWORK"]

#: Networks up to this many nodes run their linear algebra on one BLAS thread.
SMALL_NETWORK = 256


@lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's handle on the BLAS libraries of this process (numpy's and scipy's), found once: the search
    reads the process's shared libraries and cost 0.95 ms a call, a quarter of a one-step run's set-up (0.014 ms
    with the handle kept)."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, so that the handle covers it too)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def limit_for(network):
    """A context in which BLAS runs on one thread when ``network`` (a CompiledNetwork) is small; the previous
    limits come back on exit."""
    if network.n_nodes > SMALL_NETWORK:
        return nullcontext()
    return _controller().limit(limits=1, user_api="blas")
