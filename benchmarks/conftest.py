"""Shared fixtures of the pytest-benchmark suites.

    pytest benchmarks --benchmark-only       time the real layers and GEMMs
    pytest benchmarks --benchmark-disable    fast correctness pass: every benchmarked
                                             callable runs once on a reduced shape and
                                             is checked against the NumPy oracle

Options: --fc-threads N (default fastconv's), --fc-batch N (conv batch, default 1),
--fc-rounds N (timed rounds per benchmark, default 5).  Select with -k, e.g.
-k "resnet50 and (c-auto or torch)".  Rows of one layer share a benchmark group.
"""
from __future__ import annotations

import pytest

import fastconv


def pytest_addoption(parser):
    group = parser.getgroup("fastconv")
    group.addoption("--fc-threads", type=int, default=None, help="threads for fastconv and peers")
    group.addoption("--fc-batch", type=int, default=1, help="conv batch size (default 1)")
    group.addoption("--fc-rounds", type=int, default=5, help="timed rounds per benchmark")


@pytest.fixture(scope="session")
def reduced(request) -> bool:
    """True for the correctness pass: shapes shrink so everything runs in seconds."""
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="session", autouse=True)
def threads(request):
    n = request.config.getoption("fc_threads") or fastconv.get_num_threads()
    old = fastconv.get_num_threads()
    fastconv.set_num_threads(n)
    yield n
    fastconv.set_num_threads(old)


@pytest.fixture(scope="session")
def batch(request, reduced) -> int:
    n = request.config.getoption("fc_batch")
    return min(n, 2) if reduced else n


@pytest.fixture
def torch(threads):
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield torch
    torch.set_num_threads(old)


@pytest.fixture
def blas_threads(threads):
    """NumPy's BLAS limited to the same thread count (when threadpoolctl is there)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


@pytest.fixture
def measure(benchmark, request):
    """measure(entry, fn, batch) -> fn's result: times fn in `entry`'s group and
    records GFLOP/s and GB/s (of the bytes any implementation must move) in
    extra_info.  Keywords group=, flops=, nbytes= stand in for an entry."""
    rounds = request.config.getoption("fc_rounds")

    def run(entry, fn, batch=1, *, group=None, flops=None, nbytes=None):
        if entry is not None:
            group = entry.id + (f" batch {batch}" if entry.kind == "conv" else "")
            flops, nbytes = entry.flops(batch), entry.min_bytes(batch)
        benchmark.group = group
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and not benchmark.disabled:
            seconds = stats.stats.median
            benchmark.extra_info["gflops"] = flops / seconds * 1e-9
            if nbytes:
                benchmark.extra_info["gbps"] = nbytes / seconds * 1e-9
        return result
    return run
