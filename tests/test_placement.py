"""Where the C core's threads run (csrc/threads.c).

Worker threads are bound to CPUs other than the caller's, so that the
scheduler cannot stack them on the caller's CPU; the caller itself is never
bound, and a caller allowed fewer CPUs than threads gets no binding at all.
"""
import os
import sys
import threading

import numpy as np
import pytest

import fastconv

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least 2 allowed CPUs")


@pytest.fixture
def two_threads():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    yield
    fastconv.set_num_threads(before)


def parallel_calls():
    """A GEMM, a direct conv and an im2col conv, each big enough for 2 threads."""
    rng = np.random.default_rng(0)
    a, b = rng.random((256, 300), np.float32), rng.random((300, 200), np.float32)
    x, w = rng.random((1, 16, 40, 40), np.float32), rng.random((32, 16, 3, 3), np.float32)
    np.testing.assert_allclose(fastconv.matmul(a, b, backend="c"), a @ b, rtol=1e-4)
    ref = fastconv.conv2d(x, w, backend="numpy")
    for algo in ("direct", "im2col"):
        np.testing.assert_allclose(fastconv.conv2d(x, w, algorithm=algo, backend="c"), ref,
                                   rtol=1e-4, atol=1e-4)


def cpu_list(text):
    """{0, 2, 3} for "0,2-3", the kernel's CPU list format."""
    cpus = set()
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def bound_cpus(tid):
    """The CPUs thread `tid` of this process may run on."""
    with open(f"/proc/self/task/{tid}/status") as f:
        line = next(l for l in f if l.startswith("Cpus_allowed_list:"))
    return cpu_list(line.split(":")[1])


def test_the_caller_is_never_bound(two_threads):
    before = os.sched_getaffinity(0)
    parallel_calls()
    assert os.sched_getaffinity(0) == before


def test_a_worker_is_bound_to_one_allowed_cpu(two_threads):
    parallel_calls()
    me = threading.get_native_id()
    allowed = os.sched_getaffinity(0)
    single = [bound_cpus(int(t)) for t in os.listdir("/proc/self/task") if int(t) != me]
    single = [c for c in single if len(c) == 1]
    assert single, "no thread of the process is bound to a single CPU"
    assert any(c <= allowed for c in single)


def test_fewer_allowed_cpus_than_threads(two_threads):
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        parallel_calls()
        assert os.sched_getaffinity(0) == {min(before)}
    finally:
        os.sched_setaffinity(0, before)


NUMBA_ONLY = r"""
import os, sys, threading
import numpy as np
import numba
import fastconv
fastconv.set_num_threads(2)
a = np.ones((256, 300), np.float32)
for _ in range(3):
    fastconv.matmul(a, a.T, backend="numba")
if numba.threading_layer() != "omp":
    print("not omp")
    sys.exit(0)
me = threading.get_native_id()
for tid in os.listdir("/proc/self/task"):
    if int(tid) != me:
        with open(f"/proc/self/task/{tid}/status") as f:
            print(next(l for l in f if l.startswith("Cpus_allowed_list:")).split(":")[1].strip())
"""


@pytest.mark.slow
def test_numba_omp_workers_are_placed_too():
    """In a process that runs only the Numba backend, its OpenMP workers (the
    C core's runtime) get the same placement."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", NUMBA_ONLY], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "not omp":
        pytest.skip("Numba's threading layer here is not OpenMP")
    workers = [cpu_list(line) for line in out.stdout.split()]
    assert any(len(cpus) == 1 for cpus in workers), out.stdout
