"""Settings have one meaning each (fastconv.config): set_backend and
set_num_threads are process-wide, `with config(...)` / `with threads(n)` are
scoped to the calling thread and restored exactly; every setter validates.
threadpoolctl sees fastconv and limits it."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastconv

SRC = os.path.dirname(os.path.dirname(fastconv.__file__))


@pytest.fixture(autouse=True)
def restore_settings():
    backend, threads = fastconv.get_backend(), fastconv.get_num_threads()
    yield
    fastconv.set_backend(backend)
    fastconv.set_num_threads(threads)


def in_new_thread(f):
    box = []
    t = threading.Thread(target=lambda: box.append(f()))
    t.start()
    t.join(30)
    return box[0]


def run_python(code: str, timeout=120) -> str:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_set_backend_is_process_wide():
    fastconv.set_backend("numba")
    assert in_new_thread(fastconv.get_backend) == "numba"
    fastconv.set_backend("c")
    assert in_new_thread(fastconv.get_backend) == "c"


def test_set_num_threads_is_process_wide():
    fastconv.set_num_threads(3)
    assert in_new_thread(fastconv.get_num_threads) == 3


def test_config_is_scoped_to_the_thread():
    fastconv.set_num_threads(2)
    with fastconv.config(backend="numpy", num_threads=1):
        assert (fastconv.get_backend(), fastconv.get_num_threads()) == ("numpy", 1)
        assert in_new_thread(lambda: (fastconv.get_backend(), fastconv.get_num_threads())) \
            == ("c", 2)
        fastconv.set_backend("numba")  # process-wide change under a scoped value
        assert fastconv.get_backend() == "numpy"
    assert (fastconv.get_backend(), fastconv.get_num_threads()) == ("numba", 2)


def test_overlapping_scopes_in_threads_restore_exactly():
    fastconv.set_num_threads(2)
    n = 6
    inside, errors = threading.Barrier(n), []

    def worker(i):
        try:
            with fastconv.config(num_threads=i + 1, backend=("c", "numba", "numpy")[i % 3]):
                with fastconv.threads(10 + i):
                    inside.wait(10)  # all six scopes are open at once
                    assert fastconv.get_num_threads() == 10 + i
                assert fastconv.get_num_threads() == i + 1
                assert fastconv.get_backend() == ("c", "numba", "numpy")[i % 3]
            assert (fastconv.get_num_threads(), fastconv.get_backend()) == (2, "c")
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(f"thread {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert (fastconv.get_num_threads(), fastconv.get_backend()) == (2, "c")


def test_scope_is_restored_after_an_exception():
    fastconv.set_num_threads(2)
    with pytest.raises(KeyError):
        with fastconv.config(backend="numpy", num_threads=1):
            raise KeyError
    assert (fastconv.get_backend(), fastconv.get_num_threads()) == ("c", 2)


@pytest.mark.parametrize("bad", ["", 0, "gpu", b"c", True])
def test_backend_setters_refuse(bad):
    with pytest.raises(ValueError, match="backend"):
        fastconv.set_backend(bad)
    with pytest.raises(ValueError, match="backend"):
        with fastconv.config(backend=bad):
            pass
    assert fastconv.get_backend() == "c"


@pytest.mark.parametrize("bad, error", [
    (0, ValueError), (-1, ValueError), (2**31, ValueError), (10**30, ValueError),
    (True, TypeError), (np.bool_(True), TypeError), (2.0, TypeError), ("2", TypeError),
    (None, TypeError)])
def test_thread_setters_refuse(bad, error):
    before = fastconv.get_num_threads()
    with pytest.raises(error, match="num_threads"):
        fastconv.set_num_threads(bad)
    if bad is not None:  # config(num_threads=None) means "unchanged"
        with pytest.raises(error, match="num_threads"):
            with fastconv.config(num_threads=bad):
                pass
    with pytest.raises(error, match="n must"):
        with fastconv.threads(bad):
            pass
    assert fastconv.get_num_threads() == before


@pytest.mark.parametrize("value", [np.int64(2), np.int8(2), np.uint16(2), 2])
def test_numpy_integers_are_thread_counts(value):
    fastconv.set_num_threads(value)
    assert fastconv.get_num_threads() == 2 and type(fastconv.get_num_threads()) is int
    with fastconv.threads(value), fastconv.config(num_threads=value):
        assert fastconv.get_num_threads() == 2


def test_config_validates_both_before_setting_either():
    with pytest.raises(ValueError, match="num_threads"):
        with fastconv.config(backend="numpy", num_threads=0):
            pass
    assert fastconv.get_backend() == "c"


def test_default_reads_omp_num_threads():
    out = run_python("""
        import os
        os.environ["OMP_NUM_THREADS"] = "3"
        import fastconv
        print(fastconv.get_num_threads())
    """)
    assert out.split() == ["3"]


def test_c_core_uses_each_calls_thread_count():
    """The C core reads the count per call: a 1-thread call starts no OpenMP
    worker, a 3-thread call leaves 2 in the pool (counted in /proc)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("counts threads in /proc")
    out = run_python("""
        import os, numpy as np, fastconv
        a = np.ones((256, 256), np.float32)
        tasks = lambda: len(os.listdir("/proc/self/task"))
        fastconv.set_num_threads(3)
        base = tasks()
        with fastconv.threads(1):
            fastconv.matmul(a, a, backend="c")
        one = tasks()
        fastconv.matmul(a, a, backend="c")
        print(one - base, tasks() - base)
    """)
    assert out.split() == ["0", "2"]


def test_threads_compute_right_with_different_counts_at_once():
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (300, 200)).astype(np.float32)
    b = rng.integers(-3, 4, (200, 150)).astype(np.float32)
    want = a.astype(np.float64) @ b
    errors = []

    def worker(n, backend):
        with fastconv.threads(n):
            for _ in range(20):
                if not np.array_equal(fastconv.matmul(a, b, backend=backend), want):
                    errors.append((n, backend))

    threads = [threading.Thread(target=worker, args=(n, be))
               for n in (1, 2, 3) for be in ("c", "numba")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


def test_threadpoolctl_lists_and_limits_fastconv():
    pytest.importorskip("threadpoolctl")
    out = run_python("""
        import sys, fastconv
        assert "threadpoolctl" not in sys.modules and "dask" not in sys.modules  # not imported
        from threadpoolctl import threadpool_info, threadpool_limits
        fastconv.set_num_threads(2)
        [info] = [i for i in threadpool_info() if i["user_api"] == "fastconv"]
        assert info["num_threads"] == 2 and info["version"] == fastconv.__version__, info
        with threadpool_limits(1):
            assert fastconv.get_num_threads() == 1
            with fastconv.threads(2):  # a limit is a cap on scoped counts too
                assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == 2
        with threadpool_limits(1, user_api="fastconv"):
            fastconv.set_num_threads(3)  # process-wide change under a limit
            assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == 3
        # A limit on another API "restores" fastconv at exit too: that is no cap.
        fastconv.set_num_threads(1)
        with threadpool_limits(1, user_api="blas"):
            pass
        fastconv.set_num_threads(2)
        assert fastconv.get_num_threads() == 2
        print("ok")
    """)
    assert out.split() == ["ok"]


def test_threadpoolctl_imported_first():
    pytest.importorskip("threadpoolctl")
    out = run_python("""
        import threadpoolctl, fastconv
        fastconv.set_num_threads(3)
        print([i["num_threads"] for i in threadpoolctl.threadpool_info()
               if i["user_api"] == "fastconv"])
    """)
    assert out.split() == ["[3]"]
