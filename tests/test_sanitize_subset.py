"""Edge shapes for the C core, on every ISA: packing remainders (sizes just
below, at and above register-tile and cache-block multiples) and padding
borders (padding wider than the kernel, asymmetric, stride > kernel,
dilation, 1x1 images).  Compact enough to run under AddressSanitizer and
UndefinedBehaviorSanitizer (.ci/sanitize); integer data, exact comparison.
"""
import itertools

import numpy as np
import pytest

import fastconv
from arrays import close, ints, laid_out, mismatch
from checks import DTYPES_F64_SLOW, slow_except
from isas import c_isas, using_isa

# Below, at and above multiples of common register tiles (4, 6, 8, 14, 16, 24, 32, 48).
EDGE = [1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 23, 24, 25, 31, 33, 47, 49, 65]
DEPTH = [1, 2, 7, 8, 9, 63, 64, 65, 255, 256, 257, 385, 513]
# The two slowest sweeps run in the quick tier on the widest ISA only.
BEST_ISA_QUICK = slow_except(c_isas(), (len(c_isas()) - 1,))
GEMM_LAYOUTS = ["contiguous", "permuted", "reversed", "strided", "broadcast", "unaligned"]


def gemm_cases():
    for i, (m, n) in enumerate(itertools.product(EDGE, EDGE)):
        k = DEPTH[i % len(DEPTH)]
        yield m, n, k, GEMM_LAYOUTS[i % len(GEMM_LAYOUTS)], GEMM_LAYOUTS[(i // 3) % len(GEMM_LAYOUTS)]
    # Across cache blocks in every dimension (mc ~ 100s, kc ~ 256-512, nc ~ 1000s).
    yield 300, 37, 700, "contiguous", "contiguous"
    yield 9, 2100, 300, "permuted", "contiguous"
    yield 130, 130, 1030, "reversed", "strided"


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("isa", BEST_ISA_QUICK)
def test_gemm_edges(isa, dtype):
    rng = np.random.default_rng(1)
    with using_isa(isa):
        for m, n, k, a_kind, b_kind in gemm_cases():
            a = laid_out(ints(rng, (m, k), dtype), a_kind, rng)
            b = laid_out(ints(rng, (k, n), dtype), b_kind, rng)
            want = fastconv.matmul(a, b, backend="numpy")
            got = fastconv.matmul(a, b, backend="c")
            assert close(got, want, True), f"matmul {m}x{n}x{k} {a_kind}/{b_kind}: " \
                + mismatch(got, want)
            bias = ints(rng, (n,), dtype)
            want = fastconv.linear(a, b.T, bias, backend="numpy", relu=True)
            got = fastconv.linear(a, b.T, bias, backend="c", relu=True)
            assert close(got, want, True), f"linear {m}x{n}x{k}: " + mismatch(got, want)


def conv_cases():
    """(n, c, h, w, k, kh, kw, stride, padding, dilation, groups)."""
    yield 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1                  # 1x1 image, 1x1 kernel
    yield 2, 3, 1, 1, 5, 3, 3, 1, 1, 1, 1                  # 1x1 image, all border
    yield 1, 4, 5, 7, 3, 5, 7, 1, 0, 1, 1                  # kernel = input (an FC layer)
    yield 1, 3, 4, 4, 2, 3, 3, 1, 5, 1, 1                  # padding wider than the kernel
    yield 1, 2, 6, 9, 3, 2, 3, 4, 1, 1, 1                  # stride > kernel
    yield 2, 3, 7, 8, 4, 3, 3, 2, ((0, 3), (2, 1)), 2, 1   # asymmetric padding, dilation
    yield 1, 8, 9, 9, 8, 3, 3, 1, "same", 1, 8             # depthwise
    yield 1, 6, 7, 10, 9, 3, 2, (1, 2), (2, 1), (2, 1), 3  # groups
    yield 1, 16, 6, 6, 16, 1, 1, 1, 0, 1, 1                # pointwise
    yield 1, 3, 5, 5, 4, 1, 1, 2, 1, 1, 1                  # 1x1 kernel, strided, padded
    # Output widths and channel counts around vector widths, with 3x3 borders.
    for i, (w, ch) in enumerate(itertools.product([7, 8, 9, 15, 16, 17, 33], [1, 3, 8, 16, 17])):
        yield 1 + i % 2, ch, 4 + i % 3, w, 1 + (i * 7) % 17, 3, 3, 1 + i % 2, i % 3, 1, 1


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("isa", c_isas())
def test_conv_edges(isa, dtype):
    rng = np.random.default_rng(2)
    with using_isa(isa):
        for i, (n, c, h, w, k, kh, kw, stride, padding, dilation, groups) in \
                enumerate(conv_cases()):
            for layout in ("NCHW", "NHWC"):
                shape = (n, c, h, w) if layout == "NCHW" else (n, h, w, c)
                x = laid_out(ints(rng, shape, dtype), ("contiguous", "reversed", "strided")[i % 3],
                             rng)
                weight = ints(rng, (k, c // groups, kh, kw), dtype)
                bias = ints(rng, (k,), dtype)
                kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                           layout=layout)
                want = fastconv.conv2d(x, weight, bias, backend="numpy", **kw_)
                for algo in ("auto", "direct", "im2col"):
                    got = fastconv.conv2d(x, weight, bias, algorithm=algo, backend="c", **kw_)
                    assert close(got, want, True), \
                        f"conv2d {algo} {layout} x{shape} w{weight.shape} {kw_}: " \
                        + mismatch(got, want)


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("isa", BEST_ISA_QUICK)
def test_packed_weight_edges(isa, dtype):
    """Weights packed once (fastconv.PackedWeight) across tile and cache-block
    edges: every conv edge case and GEMM operand side, against the oracle."""
    rng = np.random.default_rng(4)
    with using_isa(isa):
        for m, n, k in [(2, 1, 1), (5, 33, 7), (17, 9, 513), (31, 65, 257), (300, 37, 700)]:
            x, w, b = ints(rng, (m, k), dtype), ints(rng, (n, k), dtype), ints(rng, (n,), dtype)
            got = fastconv.linear(x, fastconv.PackedWeight(w, b))
            want = fastconv.linear(x, w, b, backend="numpy")
            assert close(got, want, True), f"linear {m}x{k} @ {n}: " + mismatch(got, want)
        for n, c, h, w, k, kh, kw, stride, padding, dilation, groups in conv_cases():
            for layout in ("NCHW", "NHWC"):
                shape = (n, c, h, w) if layout == "NCHW" else (n, h, w, c)
                x = ints(rng, shape, dtype)
                weight, bias = ints(rng, (k, c // groups, kh, kw), dtype), ints(rng, (k,), dtype)
                kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                           layout=layout)
                pw = fastconv.PackedWeight(weight, bias)
                want = fastconv.conv2d(x, weight, bias, backend="numpy", **kw_)
                for algo in ("auto", "direct", "im2col"):
                    got = fastconv.conv2d(x, pw, algorithm=algo, backend="c", **kw_)
                    assert close(got, want, True), \
                        f"packed conv2d {algo} {layout} x{shape} w{weight.shape} {kw_}: " \
                        + mismatch(got, want)


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("isa", c_isas())
def test_pool_edges(isa, dtype):
    """Pooling windows at every border: padding, ceil_mode, dilation, stride >
    kernel, 1x1 maps, widths around vector lengths, strided input."""
    rng = np.random.default_rng(5)
    cases = [((1, 2, 1, 1), 1, 1, 0, 1, False), ((1, 2, 1, 1), 3, 1, 1, 1, False),
             ((2, 3, 7, 7), 3, 2, 1, 1, True), ((1, 2, 6, 6), 2, 2, 1, 1, True),
             ((1, 2, 11, 9), 2, 4, 1, 1, True), ((1, 2, 12, 12), 3, 1, 1, 2, True),
             ((1, 2, 5, 6), 5, 1, 2, 1, False), ((1, 1, 4, 5), (4, 5), 1, 0, 1, False)]
    cases += [((1, 2, 5, w), 3, s, 1, 1, True) for w in (7, 8, 9, 15, 16, 17, 33, 65)
              for s in (1, 2, 3)]
    with using_isa(isa):
        for i, (shape, k, s, pad, dil, ceil) in enumerate(cases):
            x = laid_out(ints(rng, shape, dtype), ("contiguous", "reversed", "strided")[i % 3],
                         rng)
            want = fastconv.max_pool2d(x, k, s, pad, dil, ceil, backend="numpy")
            got = fastconv.max_pool2d(x, k, s, pad, dil, ceil, backend="c")
            assert close(got, want, True), f"max_pool2d {shape} {k} {s} {pad} {dil}: " + \
                mismatch(got, want)
            if dil == 1:
                for inc in (True, False):
                    want = fastconv.avg_pool2d(x, k, s, pad, ceil, inc, backend="numpy")
                    got = fastconv.avg_pool2d(x, k, s, pad, ceil, inc, backend="c")
                    assert close(got, want, False), f"avg_pool2d {shape} {k} {s} {pad}: " + \
                        mismatch(got, want)
