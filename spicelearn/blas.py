"""How many threads BLAS gets: one for small networks.

At the sizes of lab16 and delaunay64 (up to a few hundred nodes) a matrix product or
eigensolve takes microseconds, and a second BLAS thread only contends: with the other
core busy, a 64 x 143 x 64 product was measured at 3 to 15 ms on two threads against
0.1 ms on one. Every driver of many small solves runs inside :func:`limit_for`.
"""

from __future__ import annotations

from contextlib import nullcontext

__all__ = ["limit_for", "SMALL_NETWORK"]

#: Networks up to this many nodes run their linear algebra on one BLAS thread.
SMALL_NETWORK = 256


def limit_for(network):
    """A context in which BLAS runs on one thread when ``network`` (a CompiledNetwork) is small."""
    if network.n_nodes > SMALL_NETWORK:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")
