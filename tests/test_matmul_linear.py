"""matmul and linear on every backend against the oracle."""
import numpy as np
import pytest

import fastconv
from checks import BACKENDS, DTYPES, assert_close

SHAPES = [(1, 1, 1), (1, 7, 5), (7, 1, 5), (5, 7, 1), (13, 17, 19), (31, 29, 37),
          (64, 48, 80), (100, 3, 250), (2, 300, 65)]


def views(a):
    """The same values under several memory layouts."""
    yield "C", a
    yield "F", np.asfortranarray(a)
    yield "T", np.ascontiguousarray(a.T).T
    yield "neg", np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), a.dtype)
    big[::2, ::3] = a
    yield "strided", big[::2, ::3]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mnk", SHAPES, ids=str)
def test_matmul(backend, dtype, mnk):
    m, n, k = mnk
    rng = np.random.default_rng(m * n * k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    want = fastconv.matmul(a, b, backend="numpy")
    for (_, av), (_, bv) in zip(views(a), views(b)):
        assert_close(fastconv.matmul(av, bv, backend=backend), want, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(backend, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 33)).astype(dtype)
    w = rng.standard_normal((21, 33)).astype(dtype)
    b = rng.standard_normal(21).astype(dtype)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    assert_close(fastconv.linear(x, w, b, backend="numpy"), want, dtype)
    assert_close(fastconv.linear(x, w, b, backend=backend), want, dtype)
    assert_close(fastconv.linear(x[3], w, b, backend=backend), want[3], dtype)
    assert_close(fastconv.linear(x, w, backend=backend), want - b, dtype)
    assert_close(fastconv.linear(x, w, b, backend=backend, relu=True), np.maximum(want, 0), dtype)
    assert_close(fastconv.linear(np.asfortranarray(x), w[::-1][::-1], b, backend=backend), want, dtype)


@pytest.mark.parametrize("backend", BACKENDS + ["numpy"])
def test_out_argument(backend):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    want = a.astype(np.float64) @ b
    out = np.empty((6, 5), np.float32)
    assert fastconv.matmul(a, b, backend=backend, out=out) is out
    assert_close(out, want)
    fout = np.empty((5, 6), np.float32).T      # non-contiguous out
    assert fastconv.matmul(a, b, backend=backend, out=fout) is fout
    assert_close(fout, want)
    sq = rng.standard_normal((4, 4)).astype(np.float32)
    want_sq = sq.astype(np.float64) @ sq
    assert fastconv.matmul(sq, sq, backend=backend, out=sq) is sq   # out aliases the inputs
    assert_close(sq, want_sq)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_and_inf_propagate(backend):
    a = np.array([[np.nan, 1.0], [np.inf, 1.0], [1.0, 1.0]], np.float32)
    b = np.ones((2, 2), np.float32)
    y = fastconv.matmul(a, b, backend=backend)
    assert np.isnan(y[0]).all() and np.isposinf(y[1]).all() and (y[2] == 2).all()
    y = fastconv.linear(a, -b, backend=backend, relu=True)
    assert np.isnan(y[0]).all() and (y[1:] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_k0(backend):
    assert fastconv.matmul(np.zeros((0, 3)), np.zeros((3, 4)), backend=backend).shape == (0, 4)
    y = fastconv.matmul(np.zeros((2, 0)), np.zeros((0, 3)), backend=backend)
    assert y.shape == (2, 3) and (y == 0).all()
    y = fastconv.linear(np.zeros((2, 0)), np.zeros((3, 0)), np.arange(3.0), backend=backend)
    assert (y == np.arange(3.0)).all()
