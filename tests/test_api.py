"""Public surface: backend selection, threads, out=, and GEMM lowering."""
import numpy as np
import pytest

import fastconv
from checks import BACKENDS, assert_close


def test_default_backend_and_config_block():
    assert fastconv.get_backend() == "c"
    with fastconv.config(backend="numpy"):
        assert fastconv.get_backend() == "numpy"
        with fastconv.config(backend="numba"):
            assert fastconv.get_backend() == "numba"
        assert fastconv.get_backend() == "numpy"
    assert fastconv.get_backend() == "c"
    with pytest.raises(ValueError, match="backend"):
        fastconv.set_backend("gpu")


def test_threads_roundtrip_and_results_do_not_depend_on_them():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70, 50)).astype(np.float32)
    b = rng.standard_normal((50, 40)).astype(np.float32)
    before = fastconv.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            assert fastconv.get_num_threads() == n
            results += [fastconv.matmul(a, b, backend=be) for be in ("c", "numba")]
        for r in results:
            assert_close(r, a.astype(np.float64) @ b)
        with fastconv.config(num_threads=1):
            assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == 3
        with pytest.raises(ValueError, match="num_threads"):
            fastconv.set_num_threads(0)
    finally:
        fastconv.set_num_threads(before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_conv_out_argument(backend, algorithm):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    want = fastconv.conv2d(x, w, padding=1, backend="numpy")
    out = np.full((2, 4, 6, 6), np.nan, np.float32)
    assert fastconv.conv2d(x, w, padding=1, backend=backend, algorithm=algorithm, out=out) is out
    assert_close(out, want)
    out_t = np.full((6, 6, 4, 2), np.nan, np.float32).transpose(3, 2, 0, 1)
    fastconv.conv2d(x, w, padding=1, backend=backend, algorithm=algorithm, out=out_t)
    assert_close(out_t, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_full_size_conv_is_the_fc_layer(backend, layout):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 8, 5, 5)).astype(np.float32)
    w = rng.standard_normal((16, 8, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    fc = fastconv.linear(x.reshape(3, -1), w.reshape(16, -1), b, backend=backend)
    xin = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = fastconv.conv2d(xin, w, b, layout=layout, backend=backend)
    assert np.array_equal(y.reshape(3, 16), fc)


def test_plans():
    fc6 = fastconv.lower.conv2d((1, 512, 7, 7), (4096, 512, 7, 7))
    assert fc6 == fastconv.lower.linear((1, 25088), (4096, 25088))
    assert str(fc6) == "GEMM 1\u00d74096\u00d725088 (no copy)"
    pw = fastconv.lower.conv2d((2, 64, 56, 56), (256, 64, 1, 1))
    assert (pw.m, pw.n, pw.k, pw.workspace_bytes, pw.algorithm) == (2 * 56 * 56, 256, 64, 0, "gemm")
    c3 = fastconv.lower.conv2d((1, 64, 224, 224), (64, 64, 3, 3), padding=1, algorithm="im2col")
    assert c3.algorithm == "im2col" and 0 < c3.workspace_bytes <= 8 << 20
    assert (c3.m, c3.n, c3.k) == (224 * 224, 64, 576)
    assert fastconv.lower.conv2d((1, 8, 9, 9), (8, 1, 3, 3), groups=8).algorithm == "direct"
    # "auto" follows the measured costs, which rank alike on both backends.
    l13 = ((1, 64, 56, 56), (64, 64, 3, 3))
    assert fastconv.lower.conv2d(*l13, padding=1).algorithm == "direct"
    assert fastconv.lower.conv2d(*l13, padding=1, backend="numba").algorithm == "direct"
    assert fastconv.lower.conv2d((1, 8, 9, 9), (8, 1, 3, 3), groups=8,
                                 backend="numba").algorithm == "direct"
