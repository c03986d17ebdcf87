"""Shared test helpers: parameter lists and the oracle comparison."""
import numpy as np

BACKENDS = ["c", "numba"]
ALGORITHMS = ["auto", "direct", "im2col"]
DTYPES = [np.float32, np.float64]


def tol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def assert_close(got, want, dtype=None):
    """float32 within 1e-5 of the output's magnitude, float64 within 1e-12."""
    dtype = dtype or got.dtype
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.dtype(dtype), (got.dtype, dtype)
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert err <= tol(dtype) * scale, f"max error {err:.3g} > {tol(dtype)} * {scale:.3g}"
