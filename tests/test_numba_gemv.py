"""The Numba backend's GEMV paths (M = 1 or N = 1) against NumPy float64:
row-dot (matrix rows contiguous), axpy (columns contiguous) and the GEMM
fallback (neither), with bias along either axis, ReLU, NaN, and fastconv.jit."""
import numpy as np
import pytest

import fastconv
import fastconv.jit as fj
from fastconv.backends.numba import gemm as numba_gemm

DTYPES = [np.float32, np.float64]


def ints(rng, shape, dtype):
    return rng.integers(-3, 4, shape).astype(dtype)


def layouts(x):
    """x as C, Fortran and doubly strided (neither stride 1) arrays."""
    wide = np.zeros((x.shape[0] * 2, x.shape[1] * 2), x.dtype)
    wide[::2, ::2] = x
    return {"C": x, "F": np.asfortranarray(x), "step": wide[::2, ::2]}


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemv_layouts_bias_relu_exact(dtype):
    rng = np.random.default_rng(8)
    for m, n, k in ((1, 300, 2001), (1, 3, 7), (257, 1, 999), (5, 1, 1), (1, 1, 40),
                    (1, 2049, 33)):
        a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
        want = a.astype(np.float64) @ b
        for la, av in layouts(a).items():
            for lb, bv in layouts(b).items():
                np.testing.assert_array_equal(fastconv.matmul(av, bv, backend="numba"), want,
                                              err_msg=f"{m}x{n}x{k} a {la} b {lb}")
        for axis, length in ((0, m), (1, n)):
            bias = ints(rng, length, dtype)
            for relu in (False, True):
                got = np.full((m, n), 99, dtype)
                numba_gemm(a, layouts(b)["F"], got, bias, axis, relu)
                ref = want + (bias[:, None] if axis == 0 else bias)
                np.testing.assert_array_equal(got, np.maximum(ref, 0) if relu else ref,
                                              err_msg=f"{m}x{n}x{k} bias axis {axis} relu {relu}")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemv_rounding_and_nan(dtype):
    """Random data over a long reduction: within float tolerance of float64
    (the dot's sums are reassociated), and NaN / Inf propagate."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 25088)).astype(dtype)
    w = rng.standard_normal((64, 25088)).astype(dtype)
    want = x.astype(np.float64) @ w.T.astype(np.float64)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(fastconv.linear(x, w, backend="numba"), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(fj.linear(x[0], w), want[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(fastconv.matmul(x, np.ascontiguousarray(w.T), backend="numba"),
                               want, rtol=tol, atol=tol)
    x[0, 100] = np.nan
    w[5, 7] = np.inf
    x[0, 7] = 1
    for relu in (False, True):
        got = fastconv.linear(x, w, backend="numba", relu=relu)
        assert np.isnan(got).all()
    x[0, 100] = 0
    got = fastconv.linear(x, w, backend="numba")
    assert np.isinf(got[0, 5]) and np.isfinite(np.delete(got[0], 5)).all()
