"""The Numba backend against the NumPy oracle.

Data are small integers stored as floats, so every product and partial sum
is exact in float32 and float64 and results must be bit-identical to the
oracle whatever the summation order."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from checks import CONV_CASES
from fastconv.backends.numba import gemm as numba_gemm
from fastconv.backends.numba.gemm import blocking, tile

DTYPES = [np.float32, np.float64]


def ints(rng, shape, dtype, lo=-3, hi=4):
    return rng.integers(lo, hi, shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def gemm_shapes(dtype):
    mr, nr = tile(np.dtype(dtype).itemsize)
    kc = blocking(np.dtype(dtype).itemsize)[0]
    return [(1, 1, 1), (mr, nr, 1), (mr - 1, nr + 1, 3), (mr + 1, nr - 1, kc),
            (2 * mr + 5, 3 * nr - 7, kc + 1), (13, 37, 101), (3, 517, 2 * kc + 3),
            (97, 1, 5), (1, 300, 64), (16 * nr + 3, 5, 7)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_shapes_exact(rng, dtype):
    for m, n, k in gemm_shapes(dtype):
        a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
        got = fastconv.matmul(a, b, backend="numba")
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, fastconv.matmul(a, b, backend="numpy"),
                                      err_msg=str((m, n, k)))


def strided_views(x):
    """x itself and equal-valued views of it with other memory layouts."""
    f = np.asfortranarray(x)
    t = np.ascontiguousarray(x.T).T
    neg = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    wide = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    wide[::2, ::3] = x
    ro = x.copy()
    ro.flags.writeable = False
    return {"C": x, "F": f, "T": t, "neg": neg, "step": wide[::2, ::3], "readonly": ro}


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_any_strides(rng, dtype):
    a, b = ints(rng, (29, 45), dtype), ints(rng, (45, 70), dtype)
    want = fastconv.matmul(a, b, backend="numpy")
    for na, av in strided_views(a).items():
        for nb, bv in strided_views(b).items():
            np.testing.assert_array_equal(fastconv.matmul(av, bv, backend="numba"), want,
                                          err_msg=f"a {na}, b {nb}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_bias_relu_and_strided_out(rng, dtype):
    m, n, k = 31, 67, 40
    a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
    for axis, length in ((0, m), (1, n)):
        bias = ints(rng, length * 2, dtype)[::2]  # non-contiguous bias
        for relu in (False, True):
            want = np.empty((m, n), dtype)
            fastconv.backends.get("numpy").gemm(a, b, want, bias, axis, relu)
            for layout in ("C", "F", "step", "neg"):
                out = strided_views(np.full((m, n), 99, dtype))[layout]
                numba_gemm(a, b, out, bias, axis, relu)
                np.testing.assert_array_equal(out, want, err_msg=f"axis {axis} relu {relu} {layout}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_empty(rng, dtype):
    x, w, bias = ints(rng, (5, 33), dtype), ints(rng, (19, 33), dtype), ints(rng, 19, dtype)
    for relu in (False, True):
        np.testing.assert_array_equal(
            fastconv.linear(x, w, bias, backend="numba", relu=relu),
            fastconv.linear(x, w, bias, backend="numpy", relu=relu))
    np.testing.assert_array_equal(fastconv.linear(x[0], w, bias, backend="numba"),
                                  fastconv.linear(x[0], w, bias, backend="numpy"))
    for m, n, k in ((0, 4, 3), (4, 0, 3), (4, 3, 0)):
        got = fastconv.matmul(np.ones((m, k), dtype), np.ones((k, n), dtype), backend="numba")
        np.testing.assert_array_equal(got, np.zeros((m, n), dtype))
    for axis in (0, 1):  # k = 0: out is just the bias (then ReLU)
        got = np.full((3, 3), 7, dtype)
        numba_gemm(np.ones((3, 0), dtype), np.ones((0, 3), dtype), got, -bias[:3], axis, True)
        want = np.maximum(-bias[:3][:, None] if axis == 0 else -bias[:3], 0) + np.zeros((3, 3))
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_nan_inf_propagate(rng, dtype):
    m, n, k = 20, 40, 300
    a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
    a[3, 7] = np.nan
    b[250, 5] = np.inf
    a[11, 250] = -1
    bias = ints(rng, n, dtype)
    for relu in (False, True):
        got = fastconv.linear(a, b.T, bias, backend="numba", relu=relu)
        want = fastconv.linear(a, b.T, bias, backend="numpy", relu=relu)
        np.testing.assert_array_equal(got, want)  # NaN positions must match too
        assert np.isnan(got[3]).all()
    inf_rows = (a[:, 250] > 0) & (np.arange(m) != 3)
    assert inf_rows.any() and np.isinf(got[inf_rows, 5]).all()


def nchw_to(x, layout):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_parameters_exact(rng, dtype, layout):
    for xs, ws, stride, padding, dilation, groups in CONV_CASES:
        x = nchw_to(ints(rng, xs, dtype), layout)
        w, bias = ints(rng, ws, dtype, -2, 3), ints(rng, ws[0], dtype)
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  layout=layout)
        for relu in (False, True):
            want = fastconv.conv2d(x, w, bias, backend="numpy", relu=relu, **kw)
            for algorithm in ("auto", "im2col", "direct"):
                got = fastconv.conv2d(x, w, bias, backend="numba", algorithm=algorithm,
                                      relu=relu, **kw)
                assert got.dtype == dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want, err_msg=f"{xs} {ws} {algorithm} {kw}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_strided_inputs_and_no_bias(rng, dtype):
    x = ints(rng, (2, 5, 8, 9), dtype)
    w = ints(rng, (6, 5, 3, 3), dtype, -2, 3)
    want = fastconv.conv2d(x, w, None, padding=1, backend="numpy")
    views = {"F": np.asfortranarray(x), "neg": np.ascontiguousarray(x[:, ::-1, ::-1])[:, ::-1, ::-1],
             "NHWC-view": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)}
    for name, xv in views.items():
        for algorithm in ("im2col", "direct"):
            got = fastconv.conv2d(xv, w, None, padding=1, backend="numba", algorithm=algorithm)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {algorithm}")
    xh = x.transpose(0, 2, 3, 1)  # non-contiguous NHWC
    for algorithm in ("im2col", "direct"):
        got = fastconv.conv2d(xh, w, None, padding=1, backend="numba", layout="NHWC",
                              algorithm=algorithm)
        np.testing.assert_array_equal(got, want.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_im2col_row_tiles(rng, dtype, monkeypatch):
    """A workspace budget smaller than the patches: several row tiles."""
    monkeypatch.setattr(fastconv.lower, "IM2COL_BUDGET", 3 * 4 * 27 * 7 * np.dtype(dtype).itemsize)
    x = ints(rng, (2, 6, 13, 7), dtype)
    w, bias = ints(rng, (4, 3, 3, 3), dtype, -2, 3), ints(rng, 4, dtype)
    for layout in ("NCHW", "NHWC"):
        xl = nchw_to(x, layout)
        kw = dict(padding=1, groups=2, layout=layout, relu=True)
        np.testing.assert_array_equal(
            fastconv.conv2d(xl, w, bias, backend="numba", algorithm="im2col", **kw),
            fastconv.conv2d(xl, w, bias, backend="numpy", **kw))


def test_conv_nan_propagates(rng):
    x = ints(rng, (1, 3, 6, 6), np.float32)
    x[0, 1, 2, 3] = np.nan
    w = ints(rng, (4, 3, 3, 3), np.float32, 1, 3)
    for algorithm in ("im2col", "direct"):
        got = fastconv.conv2d(x, w, padding=1, backend="numba", algorithm=algorithm, relu=True)
        want = fastconv.conv2d(x, w, padding=1, backend="numpy", relu=True)
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[:, :, 1:4, 2:5]).all()


def test_set_num_threads_reaches_numba(rng):
    import numba
    a, b = ints(rng, (50, 60), np.float64), ints(rng, (60, 70), np.float64)
    want = a @ b
    for n in (1, 2):
        with fastconv.config(num_threads=n):
            np.testing.assert_array_equal(fastconv.matmul(a, b, backend="numba"), want)
            assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)


def test_concurrent_python_threads(rng):
    """8 Python threads calling parallel kernels at once: no abort, and each
    gets its own correct result."""
    jobs = []
    for t in range(8):
        dtype = DTYPES[t % 2]
        if t % 4 < 2:
            a, b = ints(rng, (40 + t, 70), dtype), ints(rng, (70, 90 - t), dtype)
            jobs.append((lambda a=a, b=b: fastconv.matmul(a, b, backend="numba"), a @ b))
        else:
            x, w = ints(rng, (1, 6, 12, 12 + t), dtype), ints(rng, (5, 6, 3, 3), dtype, -2, 3)
            algorithm = "direct" if t % 2 else "im2col"
            want = fastconv.conv2d(x, w, padding=1, backend="numpy")
            jobs.append((lambda x=x, w=w, a=algorithm: fastconv.conv2d(
                x, w, padding=1, backend="numba", algorithm=a), want))
    for f, _ in jobs:  # compile outside the race
        f()
    errors = []
    start = threading.Barrier(len(jobs))

    def worker(f, want):
        try:
            start.wait()
            for _ in range(20):
                np.testing.assert_array_equal(f(), want)
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


CONCURRENT_UNDER_WORKQUEUE = """
import threading, numpy as np, numba, fastconv
a = np.arange(60 * 50, dtype=np.float32).reshape(60, 50) % 7
b = np.arange(50 * 80, dtype=np.float32).reshape(50, 80) % 5
want = a @ b
ok = []
def run():
    ok.append(all(np.array_equal(fastconv.matmul(a, b, backend="numba"), want)
                  for _ in range(30)))
threads = [threading.Thread(target=run) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
assert numba.threading_layer() == "workqueue" and len(ok) == 8 and all(ok), ok
"""


@pytest.mark.slow
def test_concurrent_calls_under_workqueue_layer():
    """Numba's workqueue layer aborts on concurrent parallel regions; the
    backend must serialise them there."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run([sys.executable, "-c", CONCURRENT_UNDER_WORKQUEUE], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
