"""A failing allocation inside the C core becomes MemoryError in Python: never
a crash, never a wrong answer, no leak, and the library works normally after.

fc_debug_fail_allocs_after(n) lets the next n fc_alloc calls succeed and
fails every later one, so running a call for n = 0, 1, 2, ... until it
succeeds makes each of its allocation points fail in turn.  A kernel that
allocates nothing succeeds at n = 0, which is correct too.
"""
import contextlib
import gc

import numpy as np
import pytest

import fastconv
from arrays import close, ints, mismatch
from checks import slow_except
from isas import c_isas, using_isa

MAX_ALLOCS = 10_000  # far more allocation points than any call has


@contextlib.contextmanager
def allocs_fail_after(n):
    from fastconv._native import lib
    lib.fc_debug_fail_allocs_after(n)
    try:
        yield
    finally:
        lib.fc_debug_fail_allocs_after(-1)


def cases():
    """(label, call): shapes big enough to need packing and im2col tiles; each
    call takes the backend as keyword `be` (default "c")."""
    rng = np.random.default_rng(3)
    for dt in (np.float32, np.float64):
        a, b = ints(rng, (150, 300), dt), ints(rng, (300, 260), dt)
        yield f"matmul {dt.__name__}", lambda a=a, b=b, be="c": fastconv.matmul(a, b, backend=be)
        yield f"matmul strided {dt.__name__}", \
            lambda a=a, b=b, be="c": fastconv.matmul(a[::-1, ::2], b[::2], backend=be)
        bias = ints(rng, (260,), dt)
        yield f"linear {dt.__name__}", \
            lambda x=a, w=b.T, bias=bias, be="c": fastconv.linear(x, w, bias, backend=be)
        x, w = ints(rng, (2, 8, 20, 21), dt), ints(rng, (16, 8, 3, 3), dt)
        for algo in ("direct", "im2col"):
            for layout in ("NCHW", "NHWC"):
                xl = x if layout == "NCHW" else x.transpose(0, 2, 3, 1)
                yield f"conv2d {algo} {layout} {dt.__name__}", \
                    lambda x=xl, w=w, algo=algo, layout=layout, be="c": fastconv.conv2d(
                        x, w, padding=1, algorithm=algo, layout=layout, backend=be)
        # Winograd: the filter transform's pack (fresh each call) and the run
        yield f"conv2d winograd {dt.__name__}", \
            lambda x=x, w=w, be="c": fastconv.conv2d(
                x, fastconv.PackedWeight(w), padding=1, algorithm="winograd", backend=be)
        xd, wd = ints(rng, (1, 12, 17, 19), dt), ints(rng, (12, 1, 3, 3), dt)
        yield f"conv2d depthwise {dt.__name__}", \
            lambda x=xd, w=wd, be="c": fastconv.conv2d(x, w, padding=1, groups=12, backend=be)


CASES = list(cases())
# Quick tier: each kind of call once (GEMM, strided GEMM, linear, direct,
# im2col, Winograd, depthwise), in either dtype.
QUICK = [i for i, (label, _) in enumerate(CASES) if label in (
    "matmul float32", "matmul strided float64", "linear float32", "conv2d direct NCHW float32",
    "conv2d im2col NHWC float64", "conv2d winograd float32", "conv2d depthwise float64")]


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def failure_points(call):
    """Run call with the n-th allocation failing for n = 0, 1, ...; return
    (the n at which it first succeeded, its result).  Every failure must be
    a MemoryError."""
    for n in range(MAX_ALLOCS):
        with allocs_fail_after(n):
            try:
                return n, call()
            except MemoryError:
                continue
    raise AssertionError(f"still failing after {MAX_ALLOCS} allocations")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", c_isas())
@pytest.mark.parametrize("label,call", slow_except(CASES, QUICK, unpack=True),
                         ids=[c[0] for c in CASES])
def test_each_allocation_failure_is_memory_error(label, call, isa, threads):
    with fastconv.config(num_threads=threads), using_isa(isa):
        want = call(be="numpy")  # the same call on the oracle
        exact = "winograd" not in label  # Winograd rounds even integer data
        allocations, got = failure_points(call)
        assert close(got, want, exact), f"{label} after {allocations} allocations: " \
            + mismatch(got, want)
        got = call()  # the hook is off again: a normal call works
        assert close(got, want, exact), f"{label}: {mismatch(got, want)}"


def test_failed_calls_free_what_they_allocated():
    """Each failure point, repeated, must not grow resident memory (bound: 16 MiB
    over all repetitions; a leaked pack buffer per call would exceed it)."""
    label, call = next(c for c in CASES if c[0] == "matmul float32")
    allocations, _ = failure_points(call)
    gc.collect()
    start = resident_bytes()
    for n in range(allocations):
        for _ in range(200):
            with allocs_fail_after(n), pytest.raises(MemoryError):
                call()
    gc.collect()
    grown = resident_bytes() - start
    assert grown < 16 << 20, f"{label}: resident memory grew {grown >> 20} MiB " \
        f"over {200 * allocations} failed calls"
