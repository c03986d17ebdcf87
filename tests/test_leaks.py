"""10,000 calls of each public function, cycling through varied small shapes:
resident memory stays flat.

Bound: after a warm-up pass over every shape, 10,000 more calls may grow the
resident set by less than LEAK_BOUND (4 MiB), i.e. under 420 bytes per call.
A leaked output array (>= 400 bytes here), workspace or pack buffer per call
exceeds it.  One thread, so timing stays predictable on a loaded machine.
"""
import gc
import os

import numpy as np
import pytest

import fastconv
from arrays import ints

CALLS = 10_000
LEAK_BOUND = 4 << 20


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def shapes(rng):
    """Per function: a cycle of calls with varied small shapes (and outputs of
    at least 400 bytes, so that leaking one per call breaks the bound)."""
    conv, lin, mm = [], [], []
    for i in range(12):
        dt = (np.float32, np.float64)[i % 2]
        x = ints(rng, (1 + i % 2, 2 + i % 3, 6 + i % 4, 7 + i % 3), dt)
        w = ints(rng, (4 + i % 3, x.shape[1], 1 + i % 3, 2 + i % 2), dt)
        algo = ("auto", "direct", "im2col")[i % 3]
        conv.append(lambda be, x=x, w=w, algo=algo, i=i: fastconv.conv2d(
            x, w, padding=i % 2, stride=1 + i % 2, algorithm=algo, backend=be))
        a = ints(rng, (10 + i, 9 + 2 * i), dt)
        weight = ints(rng, (12 + i % 5, a.shape[1]), dt)
        bias = ints(rng, (weight.shape[0],), dt)
        lin.append(lambda be, a=a, weight=weight, bias=bias: fastconv.linear(
            a, weight, bias, backend=be))
        b = ints(rng, (a.shape[1], 11 + i % 4), dt)
        mm.append(lambda be, a=a, b=b: fastconv.matmul(a.T.T, b, backend=be))
    return {"conv2d": conv, "linear": lin, "matmul": mm}


@pytest.mark.parametrize("backend", ["c", pytest.param("numba", marks=pytest.mark.slow)])
@pytest.mark.parametrize("function", ["conv2d"] + [pytest.param(f, marks=pytest.mark.slow)
                                                   for f in ("linear", "matmul")])
def test_resident_memory_stays_flat(function, backend):
    cycle = shapes(np.random.default_rng(5))[function]
    with fastconv.config(num_threads=1):
        for call in cycle * 10:  # warm-up: JIT, allocator pools, first-touch pages
            call(backend)
        gc.collect()
        start = resident_bytes()
        for i in range(CALLS):
            cycle[i % len(cycle)](backend)
        gc.collect()
        grown = resident_bytes() - start
    assert grown < LEAK_BOUND, \
        f"{function}/{backend}: resident memory grew {grown / 2**20:.1f} MiB over {CALLS} calls"
