"""Data and the correctness check shared by the benchmark modules."""
from __future__ import annotations

import functools

import numpy as np

import fastconv
from fastconv.bench import runner


def arrays(entry, batch):
    return runner.make_arrays(entry, batch)


@functools.lru_cache(maxsize=4)
def _oracle(entry, batch):
    if entry.kind == "gemm":
        a, b = arrays(entry, batch)
        return fastconv.matmul(a, b, backend="numpy")
    x, w, bias = arrays(entry, batch)
    return fastconv.conv2d(x, w, bias, entry.stride, entry.pad, 1, entry.groups,
                           backend="numpy")


def check(result, entry, batch=1):
    """result must match the float64 NumPy oracle on the same data (float32 rounding)."""
    ref = _oracle(entry, batch)
    result = np.asarray(result)
    assert result.shape == ref.shape, (entry.id, result.shape, ref.shape)
    fan_in = entry.k if entry.kind == "gemm" else entry.c // entry.groups * entry.kh * entry.kw
    # float32 accumulation over fan_in terms of unit-scale values
    tol = 1e-6 * fan_in ** 0.5 * max(float(np.abs(ref).max()), 1.0) * 10
    np.testing.assert_allclose(result, ref, rtol=1e-4, atol=tol, err_msg=entry.id)
