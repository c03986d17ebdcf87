"""Child processes run fastconv: forked (after a parallel call in the parent,
which leaves GNU OpenMP's worker pool unusable in the child) and spawned,
through multiprocessing.Pool and ProcessPoolExecutor.  Each scenario runs in
its own process group with a timeout, so a hang fails the test and is killed."""
import os
import signal
import subprocess
import sys

import pytest

import fastconv
from checks import slow_except

HERE = os.path.dirname(__file__)
SRC = os.path.dirname(os.path.dirname(fastconv.__file__))

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def scenario(method, pool, backend, threads, timeout=240):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "forked.py"), method, pool,
                             backend, str(threads)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and its hung children
        out, err = proc.communicate()
        pytest.fail(f"timed out:\n{out}\n{err}")
    assert proc.returncode == 0, out + err
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("child ")]


@pytest.mark.parametrize("threads", slow_except([1, 2, 3], (1,)))
def test_forked_pool_after_parallel_call(threads):
    # More than one thread in the parent: the child runs single-threaded.
    assert scenario("fork", "pool", "c", threads) == [f"exact threads=1"] * 2


@pytest.mark.parametrize("method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_process_pool_executor(method):
    got = scenario(method, "executor", "c", 2)
    assert len(got) == 2 and all(r.startswith("exact threads=") for r in got), got
    if method == "fork":
        assert got == ["exact threads=1"] * 2


@pytest.mark.slow
def test_spawned_pool_keeps_its_threads():
    got = scenario("spawn", "pool", "c", 2)
    assert all(r.startswith("exact threads=") for r in got), got
    assert got[0] == f"exact threads={len(os.sched_getaffinity(0))}"  # a fresh default


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["pool", "executor"])
def test_numba_in_a_forked_child(pool):
    # Numba's omp layer would terminate the child: its kernels run serial
    # twins there, compiled in the child (within the 10 s).
    assert scenario("fork", pool, "numba", 2) == ["exact threads=1"] * 2


@pytest.mark.slow
def test_numba_in_spawned_children():
    assert scenario("spawn", "executor", "numba", 2)[0].startswith("exact")
