"""Shared test helpers: parameter lists and the oracle comparison."""
import numpy as np
import pytest

BACKENDS = ["c", "numba"]
ALGORITHMS = ["auto", "direct", "im2col"]
DTYPES = [np.float32, np.float64]
#: For grids whose float64 kernels other quick-tier tests run too: float64
#: only in the full suite (the `slow` marker; README, Tests).
DTYPES_F64_SLOW = [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)]


def slow_except(values, keep, unpack=False):
    """A parametrize list with every entry but those at the indices in `keep`
    marked slow: the quick tier runs the kept representatives, the full suite
    every entry, under the same test IDs.  unpack: the entries are tuples of
    several argnames' values."""
    out = []
    for i, v in enumerate(values):
        if i in keep:
            out.append(v)
        elif isinstance(v, type(pytest.param(None))):
            out.append(pytest.param(*v.values, marks=[*v.marks, pytest.mark.slow], id=v.id))
        else:
            out.append(pytest.param(*(v if unpack else (v,)), marks=pytest.mark.slow))
    return out


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


#: Conv edge cases shared by the Numba backend's and fastconv.jit's tests:
#: (x shape NCHW, weight shape, stride, padding, dilation, groups).
CONV_CASES = [
    ((2, 3, 9, 11), (4, 3, 3, 3), 1, 1, 1, 1),
    ((3, 4, 1, 1), (5, 4, 1, 1), 1, 0, 1, 1),            # 1x1 image, pointwise, batch 3
    ((2, 2, 1, 1), (3, 2, 3, 3), 1, 1, 1, 1),            # 1x1 image, padded 3x3
    ((2, 3, 5, 6), (7, 3, 5, 6), 1, 0, 1, 1),            # kernel = input
    ((1, 2, 10, 9), (3, 2, 2, 2), 3, 0, 1, 1),           # stride > kernel
    ((1, 3, 8, 7), (4, 3, 3, 2), (2, 1), ((0, 2), (1, 0)), 1, 1),  # asymmetric padding
    ((2, 3, 8, 7), (4, 3, 3, 2), (2, 1), (2, 0), 1, 1),  # padding on one axis only
    ((1, 2, 11, 12), (3, 2, 3, 3), 1, 2, (2, 3), 1),     # dilation
    ((2, 6, 7, 8), (4, 3, 3, 3), (1, 2), 1, 1, 2),       # groups
    ((2, 8, 9, 9), (8, 1, 3, 3), 1, 1, 1, 8),            # depthwise
    ((1, 4, 9, 9), (8, 1, 5, 5), 2, 2, 1, 4),            # depthwise, multiplier 2
    ((0, 3, 5, 5), (2, 3, 3, 3), 1, 1, 1, 1),            # N = 0
    ((1, 13, 7, 5), (17, 13, 2, 3), (2, 1), (1, 0), 1, 1),  # prime sizes
    ((1, 70, 12, 12), (40, 70, 3, 3), 1, 1, 1, 1),       # K*C*9 above one KC block
    ((1, 5, 6, 7), (3, 5, 1, 1), 2, 0, 1, 1),            # strided 1x1
]
