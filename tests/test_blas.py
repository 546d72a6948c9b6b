"""BLAS threads: one inside `limit_for` for a small network, the previous limits back on exit."""

import scipy.linalg  # noqa: F401  (its BLAS loaded, as in any run)
from threadpoolctl import threadpool_info, threadpool_limits

from spicelearn.blas import SMALL_NETWORK, limit_for


def _blas_threads() -> list:
    return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]


class _Net:
    def __init__(self, n_nodes):
        self.n_nodes = n_nodes


def test_small_networks_run_blas_on_one_thread_and_the_limits_come_back(lab):
    with threadpool_limits(2, user_api="blas"):  # the tests run on one thread (conftest); lift it here
        before = _blas_threads()
        assert before and all(n == 2 for n in before)  # numpy's and scipy's BLAS
        for _ in range(2):  # the handle on the libraries is kept: the second time must work alike
            with limit_for(lab):
                assert _blas_threads() == [1] * len(before)
            assert _blas_threads() == before
        with limit_for(_Net(SMALL_NETWORK + 1)):  # a large network keeps its threads
            assert _blas_threads() == before
