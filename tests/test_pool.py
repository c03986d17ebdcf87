"""Pooling kernels (fastconv.max_pool2d / avg_pool2d / global_*): every backend
against a first-principles loop written here, and against torch."""
import itertools
import math

import numpy as np
import pytest

import fastconv
from fastconv import nn
from checks import DTYPES, assert_close, slow_except

BACKENDS = ["c", "numba", "numpy"]


def loop_pool(x, k, s, pad, dil, ceil_mode, mode, count_include_pad=True):
    """Pooling by the definition, one output at a time in float64 (symmetric padding)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = k, s, pad, dil

    def extent(size, k_, s_, p_, d_):
        num = size + 2 * p_ - d_ * (k_ - 1) - 1
        out = (math.ceil(num / s_) if ceil_mode else num // s_) + 1
        if ceil_mode and (out - 1) * s_ >= size + p_:
            out -= 1
        return out

    oh, ow = extent(h, kh, sh, ph, dh), extent(w, kw, sw, pw, dw)
    y = np.zeros((n, c, oh, ow))
    for b, ch, oy, ox in itertools.product(range(n), range(c), range(oh), range(ow)):
        vals = [float(x[b, ch, oy * sh - ph + i * dh, ox * sw - pw + j * dw])
                for i in range(kh) for j in range(kw)
                if 0 <= oy * sh - ph + i * dh < h and 0 <= ox * sw - pw + j * dw < w]
        if mode == "max":
            y[b, ch, oy, ox] = -np.inf if not vals else \
                (np.nan if any(v != v for v in vals) else max(vals))
        else:
            if count_include_pad:
                rows = min(oy * sh - ph + kh, h + ph) - (oy * sh - ph)
                cols = min(ox * sw - pw + kw, w + pw) - (ox * sw - pw)
                count = rows * cols
            else:
                count = len(vals)
            y[b, ch, oy, ox] = sum(vals) / count
    return y


# (shape, kernel, stride, padding, dilation, ceil_mode)
CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((1, 4, 9, 11), 3, 2, 1, 1, False),
    ((1, 4, 9, 11), 3, 2, 1, 1, True),
    ((2, 2, 7, 7), 3, 2, 0, 1, True),      # ceil_mode adds a partial window
    ((1, 2, 6, 6), 2, 2, 1, 1, True),      # ... that would start in the padding: dropped
    ((1, 3, 5, 5), 2, 3, 0, 1, True),
    ((1, 2, 10, 13), (3, 2), (1, 3), (1, 1), 1, False),
    ((2, 3, 1, 1), 1, 1, 0, 1, False),     # 1x1 map
    ((1, 2, 1, 1), 3, 1, 1, 1, False),     # 1x1 map, padding k/2
    ((1, 3, 12, 12), 5, 1, 2, 1, False),   # padding = k/2
    ((1, 2, 11, 9), 2, 4, 0, 1, False),    # stride > kernel
    ((1, 2, 11, 9), 2, 4, 1, 1, True),
    ((3, 5, 40, 70), 3, 1, 1, 1, False),   # long rows: full vectors
    ((2, 3, 56, 57), 3, 2, 1, 1, True),
]
DIL_CASES = [((1, 2, 12, 12), 3, 1, 1, 2, False), ((1, 3, 10, 14), (2, 3), 2, 1, (3, 2), True)]
# The quick tier's cases (checks.slow_except): ceil_mode, a window dropped in
# the padding, a rectangular window, a 1x1 map, stride > kernel, dilation.
QUICK_MAX = (2, 4, 6, 8, 10, 15)
QUICK_AVG = (2, 4, 8, 10)


def _pairs(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _data(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", slow_except(CASES + DIL_CASES, QUICK_MAX), ids=str)
def test_max_pool_matches_loop(case, dtype, backend):
    shape, k, s, pad, dil, ceil = case
    x = _data(shape, dtype, len(str(case)))
    y = fastconv.max_pool2d(x, k, s, pad, dil, ceil, backend=backend)
    want = loop_pool(x, _pairs(k), _pairs(s if s is not None else k), _pairs(pad), _pairs(dil),
                     ceil, "max")
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, want.astype(dtype))  # a max is exact


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("case", slow_except(CASES, QUICK_AVG), ids=str)
def test_avg_pool_matches_loop(case, dtype, include_pad, backend):
    shape, k, s, pad, _, ceil = case
    x = _data(shape, dtype, len(str(case)))
    y = fastconv.avg_pool2d(x, k, s, pad, ceil, include_pad, backend=backend)
    want = loop_pool(x, _pairs(k), _pairs(s if s is not None else k), _pairs(pad), (1, 1),
                     ceil, "avg", include_pad)
    assert_close(y, want, dtype)


STRIDE1 = [c for c in CASES + DIL_CASES if c[2] == 1]   # short rows: the flat path


def test_every_isa(isa):
    for case in CASES[:6] + CASES[-2:] + STRIDE1:
        shape, k, s, pad, dil, ceil = case
        x = _data(shape, np.float32, 7)
        ref = fastconv.max_pool2d(x, k, s, pad, dil, ceil, backend="numpy")
        np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, pad, dil, ceil), ref)
        ref = fastconv.avg_pool2d(x, k, s, pad, ceil, False, backend="numpy")
        assert_close(fastconv.avg_pool2d(x, k, s, pad, ceil, False), ref)
        assert_close(fastconv.global_avg_pool2d(x), x.astype(np.float64).mean((2, 3), keepdims=True))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", slow_except([(2, 3, 7, 7), (1, 2, 1, 1), (1, 4, 33, 65),
                                               (2, 1, 3, 100), (1, 3, 4, 17), (1, 2, 1, 31),
                                               (1, 2, 8, 8)], (1, 3)))
def test_global_pools(shape, backend, isa):
    x = _data(shape, np.float32, 3)
    assert_close(fastconv.global_avg_pool2d(x, backend=backend),
                 x.astype(np.float64).mean((2, 3), keepdims=True))
    np.testing.assert_array_equal(fastconv.global_max_pool2d(x, backend=backend),
                                  x.max((2, 3), keepdims=True))
    xt = np.swapaxes(x, 2, 3)  # rows not contiguous: the per-row path
    np.testing.assert_array_equal(fastconv.global_max_pool2d(xt, backend=backend),
                                  xt.max((2, 3), keepdims=True))
    assert_close(fastconv.global_avg_pool2d(xt, backend=backend),
                 xt.astype(np.float64).mean((2, 3), keepdims=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_and_nan(backend):
    base = _data((3, 8, 20, 30), np.float64, 5)
    x = base[::-1, ::2, 1::2, ::-3]          # negative and non-unit strides
    want = loop_pool(x, (3, 3), (2, 2), (1, 1), (1, 1), True, "max")
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                      backend=backend), want)
    assert_close(fastconv.avg_pool2d(x, 3, 2, 1, backend=backend),
                 loop_pool(x, (3, 3), (2, 2), (1, 1), (1, 1), False, "avg"))
    y = np.array(x)
    y[0, 0, 2, 2] = np.nan
    y[0, 1, :, :] = -np.inf
    got = fastconv.max_pool2d(y, 2, backend=backend)
    assert np.isnan(got[0, 0, 1, 1]) and np.isnan(fastconv.global_max_pool2d(y, backend=backend)[0, 0, 0, 0])
    assert np.all(got[0, 1] == -np.inf)
    np.testing.assert_array_equal(got, loop_pool(y, (2, 2), (2, 2), (0, 0), (1, 1), False, "max"))
    # Stride 1 (a padded copy of each plane), through the same strides and NaN.
    want = loop_pool(y, (3, 2), (1, 1), (1, 1), (2, 1), True, "max")
    got = fastconv.max_pool2d(y, (3, 2), 1, 1, (2, 1), ceil_mode=True, backend=backend)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0, 0, 1, 2]) and np.isnan(got[0, 0, 3, 3])
    assert_close(fastconv.avg_pool2d(x, 3, 1, 1, backend=backend),
                 loop_pool(x, (3, 3), (1, 1), (1, 1), (1, 1), False, "avg"))


def test_pool_bad_input():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="at most half"):
        fastconv.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        fastconv.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fastconv.avg_pool2d(x[0], 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.max_pool2d(x.astype(np.int32), 2)
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="stride"):
        fastconv.avg_pool2d(x, 2, stride=(1, 0))
    with pytest.raises(ValueError, match="dilation"):
        fastconv.max_pool2d(x, 2, dilation=0)
    with pytest.raises(ValueError, match="ceil_mode"):
        fastconv.max_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(ValueError, match="count_include_pad"):
        fastconv.avg_pool2d(x, 2, count_include_pad="yes")
    with pytest.raises(ValueError, match="padding"):
        fastconv.max_pool2d(x, 2, padding="same")
    with pytest.raises(ValueError, match="backend"):
        fastconv.max_pool2d(x, 2, backend="cuda")
    with pytest.raises(ValueError, match="H, W >= 1"):
        fastconv.global_avg_pool2d(np.zeros((1, 2, 0, 3), np.float32))
    assert fastconv.max_pool2d(np.zeros((0, 2, 5, 5), np.float32), 2).shape == (0, 2, 2, 2)


TORCH_CASES = CASES + DIL_CASES + [((2, 64, 112, 112), 3, 2, 1, 1, False),
                                   ((1, 3, 13, 13), 3, 2, 0, 1, True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", slow_except(TORCH_CASES, (2, 8, 14, 17)), ids=str)
def test_against_torch(case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    shape, k, s, pad, dil, ceil = case
    x = _data(shape, dtype, 11)
    t = torch.from_numpy(x)
    stride = s if s is not None else k
    want = F.max_pool2d(t, k, stride, pad, dil, ceil_mode=ceil).numpy()
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, pad, dil, ceil), want)
    if dil == 1:
        for inc in (True, False):
            want = F.avg_pool2d(t, k, stride, pad, ceil_mode=ceil, count_include_pad=inc).numpy()
            assert_close(fastconv.avg_pool2d(x, k, s, pad, ceil, inc), want.astype(np.float64),
                         dtype)
    want = F.adaptive_avg_pool2d(t, 1).numpy()
    assert_close(fastconv.global_avg_pool2d(x), want.astype(np.float64), dtype)


# Max pools with column stride 1 or 2 and kw <= 8 run rows-then-columns (the
# column maxima of the window's rows, then de-interleaved pairs of vectors at
# stride 2): shapes around the vector widths (4..16 lanes), the block of 128
# outputs, every edge (padding, ceil_mode), wide ONNX pads and the fallbacks
# just outside the path (kw 9, kh 17, column dilation).
ROWS_CASES = [
    ((1, 3, 7, 7), 3, 2, 1, 1, False),
    ((1, 3, 7, 8), 2, 2, 0, 1, True),
    ((2, 3, 3, 3), 2, 2, 0, 1, True),          # one output column, ceil
    ((1, 2, 1, 5), (1, 3), 2, 0, 1, False),    # a single row
    ((1, 2, 2, 1), (2, 1), (1, 2), 0, 1, False),  # a single column
    ((1, 4, 9, 31), 3, 2, 1, 1, True),
    ((1, 4, 9, 32), 3, 2, 1, 1, False),
    ((1, 4, 9, 33), 3, 2, 1, 1, True),
    ((1, 2, 5, 64), 2, 2, 0, 1, False),
    ((1, 2, 5, 65), 3, 2, 0, 1, True),
    ((1, 2, 4, 255), 3, 2, 1, 1, True),        # 128 outputs: one full block
    ((1, 2, 4, 259), 3, 2, 1, 1, False),       # 129: a block and one more
    ((1, 2, 3, 637), 2, 2, 0, 1, True),        # 319 outputs, three blocks (P-Net)
    ((2, 3, 28, 28), 3, 2, 0, 1, True),        # GoogLeNet's pools
    ((1, 3, 111, 111), 3, 2, 0, 1, True),      # SqueezeNet's
    ((1, 3, 15, 15), 3, 1, 1, 1, False),       # stride 1 (GoogLeNet's inception pools)
    ((1, 3, 7, 7), 3, 1, 1, 1, False),
    ((1, 5, 14, 14), 2, 2, 0, 1, False),       # VGG's pool5: planes narrower than a vector
    ((1, 2, 73, 14), 3, 2, 1, 1, True),        # 1022 values: the largest copied plane
    ((1, 2, 74, 14), 3, 2, 1, 1, True),        # 1036: too large to copy
    ((1, 2, 11, 9), 2, 1, 0, 1, True),
    ((1, 2, 6, 17), (2, 8), (1, 1), (1, 4), 1, False),
    ((1, 2, 6, 40), (2, 8), (2, 2), (1, 4), 1, True),
    ((1, 2, 20, 20), (16, 2), (3, 2), (8, 1), 1, True),
    ((1, 2, 40, 20), 3, (5, 2), 1, (6, 1), True),   # row dilation, row stride 5
    ((1, 2, 9, 40), (2, 9), 2, (1, 4), 1, False),   # kw 9: the row kernel
    ((1, 2, 40, 20), (17, 2), 2, (8, 1), 1, False),  # kh 17: the row kernel
    ((1, 2, 12, 30), 3, 2, 1, (1, 2), False),        # column dilation: the row kernel
]
# One output column, a single row or column, a part vector, a block and one
# more, stride 1, wide pads, and both fallbacks to the row kernel.
QUICK_ROWS = (2, 3, 4, 7, 11, 15, 21, 25, 27)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", slow_except(ROWS_CASES, QUICK_ROWS), ids=str)
def test_rows_max_pool_every_isa(case, dtype, isa):
    shape, k, s, pad, dil, ceil = case
    x = _data(shape, dtype, len(str(case)))
    x.flat[::7] = -np.inf
    if x.size > 10:
        x.flat[10] = np.nan
    want = loop_pool(x, _pairs(k), _pairs(s), _pairs(pad), _pairs(dil), ceil, "max")
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, pad, dil, ceil), want)
    # Through walked strides: every other column of a wider array, rows reversed.
    wide = np.zeros(shape[:3] + (2 * shape[3],), dtype)
    wide[..., ::2] = x
    np.testing.assert_array_equal(fastconv.max_pool2d(wide[..., ::2], k, s, pad, dil, ceil),
                                  want)
    flipped = np.ascontiguousarray(x[:, :, ::-1])[:, :, ::-1]
    np.testing.assert_array_equal(fastconv.max_pool2d(flipped, k, s, pad, dil, ceil), want)


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_max_pool_many_planes(threads):
    """Planes split over threads: a row's vector stores past its end stay in its plane."""
    x = _data((3, 37, 9, 13), np.float32, 4)
    with fastconv.threads(threads):
        for k, s, pad, ceil in ((3, 2, 1, True), (2, 2, 0, False), (3, 1, 1, False)):
            want = loop_pool(x, (k, k), (s, s), (pad, pad), (1, 1), ceil, "max")
            np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, pad, 1, ceil), want)


@pytest.mark.parametrize("pads", [((2, 0), (2, 0)), ((0, 2), (1, 2)), ((2, 2), (2, 2))])
def test_rows_max_pool_wide_pads(pads):
    """ONNX pads up to the window minus one (more than torch allows) on the same kernel."""
    x = _data((1, 3, 8, 11), np.float32, 6)
    (t, b), (l, r) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (l, r)),
                constant_values=-np.inf)
    want = loop_pool(xp, (3, 3), (2, 2), (0, 0), (1, 1), False, "max")
    got = fastconv.pool.window_pool2d(x, 3, 2, pads)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", slow_except(ROWS_CASES, (2, 11, 21, 25)), ids=str)
def test_rows_max_pool_against_torch(case, dtype):
    torch = pytest.importorskip("torch")
    shape, k, s, pad, dil, ceil = case
    x = _data(shape, dtype, 13)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, pad, dil,
                                          ceil_mode=ceil).numpy()
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, pad, dil, ceil), want)


def loop_avg_in_order(x, k, s, pad, ceil_mode, count_include_pad):
    """Average pooling in x's own dtype, each window's taps inside the input added
    one by one, rows then columns, from 0 -- the order the C kernels document --
    then divided by torch's count: the exact bits the kernels must give."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = k, s, pad
    want = loop_pool(x, k, s, pad, (1, 1), ceil_mode, "avg", count_include_pad)
    t = x.dtype.type
    y = np.zeros(want.shape, x.dtype)
    for b, ch, oy, ox in itertools.product(*map(range, want.shape)):
        acc, count = t(0), 0
        for i in range(kh):
            for j in range(kw):
                iy, ix = oy * sh - ph + i, ox * sw - pw + j
                if 0 <= iy < h and 0 <= ix < w:
                    acc = t(acc + x[b, ch, iy, ix])
                    count += 1
        if count_include_pad:
            count = (min(oy * sh - ph + kh, h + ph) - (oy * sh - ph)) * \
                (min(ox * sw - pw + kw, w + pw) - (ox * sw - pw))
        y[b, ch, oy, ox] = t(acc / t(count))
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", slow_except(
    [c for c in ROWS_CASES if c[4] == 1 and c[0][3] < 300], (2, 3, 4, 7, 11)), ids=str)
def test_rows_avg_pool_every_isa(case, dtype, isa):
    shape, k, s, pad, _, ceil = case
    x = _data(shape, dtype, len(str(case)) + 1)
    for include_pad in (True, False):
        want = loop_avg_in_order(x, _pairs(k), _pairs(s), _pairs(pad), ceil, include_pad)
        np.testing.assert_array_equal(fastconv.avg_pool2d(x, k, s, pad, ceil, include_pad),
                                      want)
        strided = np.zeros(shape[:3] + (2 * shape[3],), dtype)
        strided[..., ::2] = x
        np.testing.assert_array_equal(
            fastconv.avg_pool2d(strided[..., ::2], k, s, pad, ceil, include_pad), want)


# Contiguous planes narrower than 64 columns are pooled L planes at a time
# (vectorised across them): plane counts below, at and above the lanes (4, 8,
# 16), NaN in one plane of a group only, the scratch limit, every mode.
ACROSS_CASES = [
    ((2, 19, 13, 13), 3, 2, 0, 1, True),       # 38 planes: two full groups of 16 and a part
    ((1, 16, 14, 14), 2, 2, 0, 1, False),      # VGG's pool5 shape, one whole group
    ((1, 33, 28, 28), 3, 1, 1, 1, False),      # GoogLeNet's inception pool
    ((1, 9, 27, 27), 3, 2, 0, 1, True),        # SqueezeNet's
    ((1, 17, 14, 14), 5, 3, 0, 1, False),      # GoogLeNet's average
    ((1, 5, 9, 63), 3, 2, 1, 1, True),         # widest taken
    ((1, 5, 9, 64), 3, 2, 1, 1, True),         # the row kernels
    ((1, 3, 62, 62), 3, 1, 1, 1, False),       # 64 x 64 padded: the scratch limit
    ((1, 3, 63, 63), 3, 1, 1, 1, False),       # just past it
    ((1, 20, 4, 4), 3, 1, 1, 1, True),         # 16 values a plane: one vector
    ((1, 20, 3, 5), 2, 1, 0, 1, False),        # 15: too few for a vector at 16 lanes
    ((1, 18, 11, 12), 3, (2, 1), (1, 0), (2, 1), False),  # row dilation, unequal strides
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", slow_except(ACROSS_CASES, (0, 5, 9, 10, 11)), ids=str)
def test_across_planes_every_isa(case, dtype, isa):
    shape, k, s, pad, dil, ceil = case
    x = _data(shape, dtype, len(str(case)))
    x[0, min(3, shape[1] - 1)].flat[5] = np.nan   # must not leak into the group's others
    x[0, 1].flat[::4] = -np.inf
    want = loop_pool(x, _pairs(k), _pairs(s), _pairs(pad), _pairs(dil), ceil, "max")
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, pad, dil, ceil), want)
    if dil == 1:
        x = _data(shape, dtype, len(str(case)))
        for inc in (True, False):
            want = loop_pool(x, _pairs(k), _pairs(s), _pairs(pad), _pairs(dil), ceil, "avg",
                             count_include_pad=inc)
            assert_close(fastconv.avg_pool2d(x, k, s, pad, ceil, inc), want, dtype)


def test_pool_layers_keep_params_per_input_shape():
    """Pooling layers keep the validated params per input shape and dtype: a
    layer fed alternating shapes and dtypes pools each by its own."""
    from fastconv import layers
    rng = np.random.default_rng(5)
    shapes = [(1, 3, 9, 9), (2, 5, 14, 11), (1, 3, 9, 9), (1, 3, 10, 9)]
    pools = [(nn.MaxPool2d(3, 2, 1, ceil_mode=True), "max", True),
             (nn.AvgPool2d(3, 2, 1), "avg", True),
             (layers.MaxPool(3, 2, ((1, 2), (0, 1)), dilation=(2, 1)), "max", False),
             (layers.AveragePool(2, 1, 0, count_include_pad=False), "avg", False)]
    for layer, mode, torch_pads in pools:
        for i, shape in enumerate(shapes * 2):
            dtype = DTYPES[i % 2]
            x = rng.standard_normal(shape).astype(dtype)
            if torch_pads:
                want = loop_pool(x, _pairs(layer.kernel_size), _pairs(layer.stride),
                                 _pairs(layer.padding), (1, 1), layer.ceil_mode, mode)
            else:
                t, b, l, r = layer.padding
                want = fastconv.pool.window_pool2d(x, layer.kernel_size, layer.stride,
                                                   ((t, b), (l, r)), layer.dilation,
                                                   layer.ceil_mode,
                                                   layer.mode, backend="numpy")
            got = layer(x)
            assert got.dtype == dtype
            assert_close(got, want, dtype)
