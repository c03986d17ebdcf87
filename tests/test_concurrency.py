"""8 Python threads calling conv2d, linear and matmul at once.

Both compiled backends release the GIL, so the calls really overlap (and
each may start its own parallel region).  Every thread has its own shapes and
checks each result against an oracle result computed beforehand; integer
data makes the comparison exact.  One run also changes the thread count
while the others compute.
"""
import threading

import numpy as np
import pytest

import fastconv
from arrays import ints

THREADS = 8
ROUNDS = 12


def calls(seed, backend):
    """(label, call, expected) for one thread: its own shapes and data."""
    rng = np.random.default_rng(seed)
    dt = (np.float32, np.float64)[seed % 2]
    x = ints(rng, (2, 3 + seed % 3, 9 + seed, 8 + seed % 4), dt)
    w = ints(rng, (5 + seed, x.shape[1], 3, 2), dt)
    b = ints(rng, (w.shape[0],), dt)
    xd = ints(rng, (1, 6, 7 + seed, 7), dt)          # depthwise
    wd = ints(rng, (12, 1, 3, 3), dt)
    xl = ints(rng, (5 + seed, 33 + seed), dt)        # linear, with a transposed weight
    wl = np.asfortranarray(ints(rng, (17 + seed, 33 + seed), dt))
    bl = ints(rng, (17 + seed,), dt)
    a = ints(rng, (40 + seed, 70), dt)[::-1]          # matmul, negative stride
    bm = ints(rng, (70, 13 + 2 * seed), dt)
    problems = []
    for algo in ("auto", "direct", "im2col"):
        problems.append((f"conv2d {algo}", lambda be, algo=algo: fastconv.conv2d(
            x, w, b, stride=(1, 2), padding=((1, 0), (2, 1)), algorithm=algo, backend=be)))
        problems.append((f"conv2d depthwise NHWC {algo}", lambda be, algo=algo: fastconv.conv2d(
            xd.transpose(0, 2, 3, 1), wd, padding="same", groups=6, layout="NHWC",
            algorithm=algo, backend=be)))
    problems.append(("linear", lambda be: fastconv.linear(xl, wl, bl, backend=be)))
    problems.append(("matmul", lambda be: fastconv.matmul(a, bm, backend=be)))
    return [(label, lambda f=f: f(backend), f("numpy")) for label, f in problems]


def run_threads(backends, change_thread_count=False):
    """Start THREADS workers together; return the list of failures."""
    work = [calls(t, backends[t % len(backends)]) for t in range(THREADS)]
    start = threading.Barrier(THREADS + 1)
    failures = []

    def worker(tid):
        start.wait()
        try:
            for r in range(ROUNDS):
                for label, call, want in work[tid]:
                    got = call()
                    if not np.array_equal(got, want):
                        failures.append(f"thread {tid} ({backends[tid % len(backends)]}) "
                                        f"round {r}: {label} wrong")
        except Exception as e:  # noqa: BLE001 -- reported below, with the thread
            failures.append(f"thread {tid}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    before = fastconv.get_num_threads()
    start.wait()
    try:
        while change_thread_count and any(t.is_alive() for t in threads):
            for n in (1, 2, 3):
                fastconv.set_num_threads(n)
    finally:
        for t in threads:
            t.join()
        fastconv.set_num_threads(before)
    return failures


@pytest.mark.parametrize("backend", ["c", "numba"])
def test_threads_share_a_backend(backend):
    failures = run_threads([backend])
    assert not failures, "\n".join(failures[:10])


@pytest.mark.slow
def test_threads_mix_c_and_numba_while_thread_count_changes():
    failures = run_threads(["c", "numba"], change_thread_count=True)
    assert not failures, "\n".join(failures[:10])


def test_threads_on_c_while_thread_count_changes():
    """The same with the C backend only: the form the sanitizer job (no Numba) runs."""
    failures = run_threads(["c"], change_thread_count=True)
    assert not failures, "\n".join(failures[:10])
