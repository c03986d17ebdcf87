"""Sizes past 2**31: element counts, strides and offsets that overflow 32-bit
index arithmetic, built so they cost little memory or time.

- Broadcast (stride-0) operands give a reduction of 2**31 + 17 terms.
- Strided views into a lazily mapped region (MAP_NORESERVE: untouched pages
  cost nothing) put elements billions of elements apart, so every offset a
  kernel computes is beyond 2**31 and any truncation reads the wrong element.
- Workspaces above fastconv.lower.WORKSPACE_LIMIT are refused before anything
  is allocated, and geometric parameters that could overflow 64-bit index
  arithmetic are refused by validation.
"""
import mmap
import os

import numpy as np
import pytest

import fastconv
from fastconv import lower

BACKENDS = ["c", "numba"]
BIG = 2**31 + 17
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Linux value; Python < 3.13 lacks it


def far_apart(values, strides):
    """An array equal to `values` whose neighbours lie `strides` elements apart
    (any sign, billions allowed) in a lazily mapped, mostly untouched region."""
    values = np.asarray(values)
    lo = sum(min(0, (n - 1) * s) for n, s in zip(values.shape, strides))
    hi = sum(max(0, (n - 1) * s) for n, s in zip(values.shape, strides))
    region = mmap.mmap(-1, (hi - lo + 1) * values.itemsize,
                       flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
    flat = np.frombuffer(region, values.dtype)
    view = np.lib.stride_tricks.as_strided(
        flat[-lo:], values.shape, [s * values.itemsize for s in strides])
    view[...] = values
    assert np.array_equal(view, values), "strides make elements overlap"
    return view


def ints(shape, dtype, seed):
    return np.random.default_rng(seed).integers(-3, 4, size=shape).astype(dtype)


@pytest.mark.parametrize("backend", [
    pytest.param("c", marks=pytest.mark.slow), pytest.param("numba", marks=pytest.mark.skipif(
        not os.environ.get("FASTCONV_SLOW_TESTS"),
        reason="~2 min: Numba's GEMM runs m = n = 1 as whole micro-tiles; "
               "FASTCONV_SLOW_TESTS=1 runs it"))])
def test_reduction_longer_than_2_31(backend):
    """(1, K) @ (K, 1) with K = 2**31 + 17, both operands one element seen
    through stride 0: exactly K in float64; a 32-bit K gives 0 or 17.
    (as_strided rather than broadcast_to: a backend may copy a read-only
    operand, which here would take 16 GiB.)"""
    one = np.ones(1)
    a = np.lib.stride_tricks.as_strided(one, (1, BIG), (0, 0))
    b = np.lib.stride_tricks.as_strided(one, (BIG, 1), (0, 0))
    assert fastconv.matmul(a, b, backend=backend)[0, 0] == BIG


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_operands_billions_of_elements_apart(backend, dtype):
    a0, b0, bias = ints((3, 5), dtype, 0), ints((5, 4), dtype, 1), ints((4,), dtype, 2)
    want = fastconv.matmul(a0, b0, backend="numpy")
    a = far_apart(a0, (2**31 + 5, -(2**31 - 3)))
    b = far_apart(b0, (-(2**30 + 7), 2**32 + 1))
    assert np.array_equal(fastconv.matmul(a, b, backend=backend), want)
    out = far_apart(np.zeros((3, 4), dtype), (-(2**31 + 11), 2**31 + 13))
    assert fastconv.matmul(a, b, backend=backend, out=out) is out
    assert np.array_equal(out, want)
    want = fastconv.linear(a0, b0.T, bias, backend="numpy")
    assert np.array_equal(fastconv.linear(a, b.T, bias, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_input_billions_of_elements_apart(backend, layout):
    x0, w = ints((2, 3, 4, 5), np.float32, 3), ints((4, 3, 3, 3), np.float32, 4)
    strides = (2**37 + 3, -(2**35 + 1), 2**33 + 7, -(2**30 + 9))  # n, c, h, w
    if layout == "NHWC":
        x0, strides = x0.transpose(0, 2, 3, 1), (strides[0], strides[2], strides[3], strides[1])
    x = far_apart(x0, strides)
    want = fastconv.conv2d(x0, w, padding=1, layout=layout, backend="numpy")
    for algo in ("auto", "direct", "im2col"):
        got = fastconv.conv2d(x, w, padding=1, layout=layout, algorithm=algo, backend=backend)
        assert np.array_equal(got, want), f"{algo}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv_input_with_more_than_2_31_pixels(backend, layout):
    """A (2**16 + 1) x (2**15 + 1) image, stored densely but almost all
    unmapped, sampled by a dilated, strided 2x2 kernel: the pixels read sit
    past element 2**31."""
    h, w = 2**16 + 1, 2**15 + 1
    sh, sw = 2**15, 2**14
    region = mmap.mmap(-1, h * w * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
    image = np.frombuffer(region, np.float32).reshape(h, w)
    rows, cols = np.arange(0, h, sh), np.arange(0, w, sw)
    image[np.ix_(rows, cols)] = np.arange(1, rows.size * cols.size + 1).reshape(rows.size, -1)
    x = image[None, None] if layout == "NCHW" else image[None, :, :, None]
    weight = np.array([[[[1, 10], [100, 1000]]]], np.float32)
    got = fastconv.conv2d(x, weight, np.array([0.5], np.float32), stride=(sh, sw),
                          dilation=(sh, sw), layout=layout, backend=backend)
    sample = image[np.ix_(rows, cols)]
    want = 0.5 + sample[:-1, :-1] + 10 * sample[:-1, 1:] + 100 * sample[1:, :-1] \
        + 1000 * sample[1:, 1:]
    got = got[0, 0] if layout == "NCHW" else got[0, :, :, 0]
    assert np.array_equal(got, want)


def test_padded_input_beyond_2_48_elements_is_refused():
    """A kernel may materialise the zero-padded input; validation keeps its
    size far from int64 overflow (the product of two 2**32 extents is 2**64)."""
    x, weight = np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv2d(x, weight, stride=2**31, padding=2**31 - 1)
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv2d(x, weight, stride=2**30, padding=((2**30, 2**30), (2**17, 2**17)))


def test_im2col_above_workspace_limit_is_refused():
    """One output row of patches would exceed the limit: explicit im2col is a
    ValueError before any allocation; "auto" falls back to direct convolution."""
    c, w_ = 2**14, 2**12
    row_bytes = c * 9 * w_ * 4
    assert row_bytes > lower.WORKSPACE_LIMIT
    x = np.broadcast_to(np.float32(1), (1, c, 3, w_))
    weight = np.broadcast_to(np.float32(1), (1, c, 3, 3))
    with pytest.raises(ValueError, match="workspace"):
        fastconv.conv2d(x, weight, padding=(0, 1), algorithm="im2col")
    with pytest.raises(ValueError, match="workspace"):
        lower.conv2d(x.shape, weight.shape, padding=(0, 1), algorithm="im2col")
    assert lower.conv2d(x.shape, weight.shape, padding=(0, 1)).algorithm == "direct"


def test_full_size_nhwc_copy_above_workspace_limit_is_refused():
    """An FC layer written as an NHWC conv needs its input reordered; above
    the limit that copy is refused, and so is every other algorithm's copy
    (direct pads the input, im2col lowers it), while NCHW needs no copy."""
    h = w = 2**9
    c = 2**11  # c*h*w*4 bytes = 2 GiB > 1 GiB
    x = np.broadcast_to(np.float32(1), (1, h, w, c))
    weight = np.broadcast_to(np.float32(1), (1, c, h, w))
    for algorithm in ("auto", "direct"):
        with pytest.raises(ValueError, match="workspace"):
            lower.conv2d(x.shape, weight.shape, layout="NHWC", algorithm=algorithm)
    plan = lower.conv2d((1, c, h, w), weight.shape)
    assert plan.algorithm == "gemm" and plan.workspace_bytes == 0
    with pytest.raises(ValueError, match="workspace"):
        lower.conv2d(x.shape, weight.shape, layout="NHWC", algorithm="im2col")


@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
def test_parameters_beyond_64_bit_index_range_are_refused(name):
    x, weight = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float32)
    for huge in (2**62, 2**63, 2**64 + 1, np.uint64(2**63)):
        with pytest.raises(ValueError, match=name):
            fastconv.conv2d(x, weight, **{name: huge})
