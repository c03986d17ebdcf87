"""FC = conv = GEMM: lowering plans, bit-identical FC/conv execution, weight
conversion and the sparse-FC matrix of a convolution."""
import numpy as np
import pytest

import fastconv
from fastconv import lower
from fastconv.backends import c as c_backend
from fastconv.backends import numba as numba_backend
from fastconv.convert import conv_matrix, conv_to_fc, fc_to_conv

from checks import BACKENDS, DTYPES, assert_close


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# -- 1. plans -------------------------------------------------------------------------

def test_vgg_fc6_conv_and_linear_plans_are_equal():
    as_conv = lower.conv2d((1, 512, 7, 7), (4096, 512, 7, 7))
    as_fc = lower.linear((1, 25088), (4096, 25088))
    assert as_conv == as_fc
    assert (as_conv.m, as_conv.n, as_conv.k, as_conv.groups) == (1, 4096, 512 * 7 * 7, 1)
    assert as_conv.workspace_bytes == 0
    assert str(as_conv) == "GEMM 1\u00d74096\u00d725088 (no copy)"


@pytest.mark.parametrize("n,c,h,w,k", [(1, 1, 1, 1, 1), (3, 16, 4, 4, 10), (8, 3, 5, 2, 7),
                                       (0, 4, 3, 3, 2), (2, 256, 6, 6, 4096)])
def test_full_size_conv_plan_is_the_fc_plan(n, c, h, w, k):
    plan = lower.conv2d((n, c, h, w), (k, c, h, w))
    assert plan == lower.linear((n, c * h * w), (k, c * h * w))
    assert (plan.m, plan.n, plan.k, plan.workspace_bytes) == (n, k, c * h * w, 0)
    assert str(plan) == f"GEMM {n}\u00d7{k}\u00d7{c * h * w} (no copy)"


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("n,c,h,w,k", [(1, 4096, 1, 1, 4096), (2, 64, 14, 9, 32),
                                       (1, 3, 1, 7, 5)])
def test_pointwise_conv_plan(n, c, h, w, k, layout):
    x_shape = (n, c, h, w) if layout == "NCHW" else (n, h, w, c)
    plan = lower.conv2d(x_shape, (k, c, 1, 1), layout=layout)
    assert (plan.m, plan.n, plan.k, plan.workspace_bytes) == (n * h * w, k, c, 0)
    assert str(plan) == f"GEMM {n * h * w}\u00d7{k}\u00d7{c} (no copy)"


def test_linear_on_a_vector_is_a_1x1_conv_plan():
    # fc7 of VGG-16: 4096 -> 4096 on a vector is a 1x1 conv on a 4096x1x1 map.
    assert lower.linear((1, 4096), (4096, 4096)) == lower.conv2d((1, 4096, 1, 1),
                                                                 (4096, 4096, 1, 1))


def test_convs_that_are_not_gemms_as_they_lie_need_a_copy_or_direct():
    plan = lower.conv2d((1, 3, 10, 10), (1, 3, 3, 3))
    assert (plan.algorithm, plan.workspace_bytes) == ("direct", 0)
    assert lower.conv2d((1, 3, 10, 10), (1, 3, 3, 3), algorithm="im2col").workspace_bytes > 0
    assert lower.conv2d((1, 8, 10, 10), (4, 8, 1, 1), stride=2).workspace_bytes > 0
    # Full-size but padded: the kernel no longer covers exactly the input.
    padded = lower.conv2d((1, 3, 5, 5), (2, 3, 5, 5), padding=1, algorithm="im2col")
    assert padded.algorithm == "im2col" and padded.workspace_bytes > 0


# The "auto" rule, written out here: every backend (and the oracle's reported
# plan) runs im2col only for ungrouped one-tap kernels.
AUTO_DIRECT = {"c": lambda kh, kw, groups, c: kh * kw > 1 or groups > 1,
               "numpy": lambda kh, kw, groups, c: kh * kw > 1 or groups > 1,
               "numba": lambda kh, kw, groups, c: kh * kw > 1 or groups > 1}


@pytest.mark.parametrize("backend", sorted(AUTO_DIRECT))
@pytest.mark.parametrize("c,k,kh,kw,groups", [(8, 16, 3, 3, 1), (8, 16, 1, 1, 1),
                                              (8, 8, 3, 3, 8), (8, 16, 1, 1, 8),
                                              (8, 16, 3, 1, 2), (8, 4, 1, 1, 4),
                                              (1, 4, 5, 5, 1)])
def test_auto_follows_each_backends_declared_preference(backend, c, k, kh, kw, groups):
    from fastconv.backends import CAPABILITIES
    assert set(CAPABILITIES) == set(AUTO_DIRECT) == set(fastconv.backends._MODULES)
    # stride 2, so that no 1x1 kernel is a GEMM on the input as it lies
    plan = lower.conv2d((1, c, 12, 12), (k, c // groups, kh, kw), stride=2, groups=groups,
                        backend=backend)
    want = "direct" if AUTO_DIRECT[backend](kh, kw, groups, c) else "im2col"
    assert plan.algorithm == want
    for forced in ("direct", "im2col"):
        assert lower.conv2d((1, c, 12, 12), (k, c // groups, kh, kw), stride=2, groups=groups,
                            algorithm=forced, backend=backend).algorithm == forced


def test_only_the_c_backend_takes_packs(monkeypatch):
    """api hands PackedWeight's packs to a backend that declares packed=True, and
    runs the oracle's conv2d without a plan: what each backend receives."""
    from fastconv import backends
    seen = []
    x = np.ones((1, 2, 5, 5), np.float32)
    pw = fastconv.PackedWeight(np.ones((3, 2, 3, 3), np.float32))
    for name in ("c", "numba", "numpy"):
        mod = backends.get(name)
        real = mod.conv2d
        monkeypatch.setattr(mod, "conv2d", lambda *a, _r=real, _n=name, **kw:
                            (seen.append((_n, a[4], "packed" in kw)), _r(*a, **kw))[1])
        fastconv.conv2d(x, pw, backend=name)
    assert seen == [("c", "direct", True), ("numba", "direct", False), ("numpy", None, False)]


def test_linear_plan_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        lower.linear((1, 10), (4, 11))


# -- 2. execution through the plan ------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,h,w,k", [(1, 512, 7, 7, 64), (3, 16, 4, 5, 10), (1, 1, 1, 1, 1),
                                       (5, 3, 2, 9, 33)])
@pytest.mark.parametrize("with_bias,relu", [(False, False), (True, False), (True, True)])
def test_full_size_conv_is_bit_identical_to_linear(backend, dtype, n, c, h, w, k, with_bias,
                                                    relu):
    rng = np.random.default_rng(n * 1000 + c + h + w + k)
    x, weight = rand(rng, (n, c, h, w), dtype), rand(rng, (k, c, h, w), dtype)
    bias = rand(rng, (k,), dtype) if with_bias else None
    y_conv = fastconv.conv2d(x, weight, bias, backend=backend, relu=relu)
    y_fc = fastconv.linear(x.reshape(n, -1), conv_to_fc(weight), bias, backend=backend,
                           relu=relu)
    assert y_conv.shape == (n, k, 1, 1)
    assert np.array_equal(y_conv.reshape(n, k), y_fc)
    want = fastconv.conv2d(x, weight, bias, backend="numpy", relu=relu)
    assert_close(y_conv, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_size_conv_on_strided_input_is_bit_identical_to_linear(backend):
    rng = np.random.default_rng(7)
    x = rand(rng, (4, 6, 8, 5), np.float32)[::2, ::-1]       # negative-stride view
    weight, bias = rand(rng, (12, 6, 8, 5), np.float32), rand(rng, (12,), np.float32)
    y_conv = fastconv.conv2d(x, weight, bias, backend=backend)
    y_fc = fastconv.linear(x.reshape(2, -1), fc_to_conv(conv_to_fc(weight), (6, 8, 5))
                           .reshape(12, -1), bias, backend=backend)
    assert np.array_equal(y_conv.reshape(2, 12), y_fc)
    assert_close(y_conv, fastconv.conv2d(x, weight, bias, backend="numpy"))


@pytest.mark.parametrize("module", [c_backend, numba_backend], ids=BACKENDS)
def test_full_size_conv_makes_exactly_linears_gemm_call(module, monkeypatch):
    calls = []

    def recording_gemm(a, b, out, bias=None, bias_axis=1, relu=False):
        calls.append((a.copy(), a.shape, a.strides, b.copy(), b.shape, b.strides, out.shape,
                      out.strides, None if bias is None else bias.copy(), bias_axis, relu))
    monkeypatch.setattr(module, "gemm", recording_gemm)
    backend = "c" if module is c_backend else "numba"
    rng = np.random.default_rng(3)
    x, weight = rand(rng, (3, 4, 5, 6), np.float32), rand(rng, (7, 4, 5, 6), np.float32)
    bias = rand(rng, (7,), np.float32)
    fastconv.conv2d(x, weight, bias, backend=backend, relu=True)
    fastconv.linear(x.reshape(3, -1), weight.reshape(7, -1), bias, backend=backend, relu=True)
    assert len(calls) == 2
    conv_call, fc_call = calls
    for got, want in zip(conv_call, fc_call):
        if isinstance(got, np.ndarray):
            assert np.array_equal(got, want)
        else:
            assert got == want


# -- 3. weight conversion ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,c,h,w", [(64, 512, 7, 7), (1, 1, 1, 1), (10, 3, 2, 5)])
def test_fc_to_conv_round_trip_is_exact(dtype, k, c, h, w):
    fc = rand(np.random.default_rng(k + c), (k, c * h * w), dtype)
    conv = fc_to_conv(fc, (c, h, w))
    assert conv.shape == (k, c, h, w) and conv.dtype == dtype
    assert np.array_equal(conv_to_fc(conv), fc)
    assert np.array_equal(conv[:, 1 % c, h - 1, w - 1], fc[:, (1 % c) * h * w + h * w - 1])


def test_conversion_of_non_contiguous_weights():
    fc = rand(np.random.default_rng(0), (6, 24), np.float64)[::-1]
    assert np.array_equal(conv_to_fc(fc_to_conv(fc, (2, 3, 4))), fc)
    conv = rand(np.random.default_rng(1), (5, 2, 3, 3), np.float32).transpose(0, 1, 3, 2)
    assert np.array_equal(fc_to_conv(conv_to_fc(conv), (2, 3, 3)), conv)


def test_fc_to_conv_validates():
    w = np.zeros((4, 12), np.float32)
    with pytest.raises(ValueError, match="C\\*H\\*W = 24"):
        fc_to_conv(w, (2, 3, 4))
    with pytest.raises(ValueError, match="input_shape"):
        fc_to_conv(w, (12,))
    with pytest.raises(ValueError, match="input_shape"):
        fc_to_conv(w, (3, 0, 4))
    with pytest.raises(ValueError, match="2-D"):
        fc_to_conv(np.zeros((4, 3, 2, 2), np.float32), (3, 2, 2))
    with pytest.raises(TypeError, match="floating"):
        fc_to_conv(np.zeros((4, 12), np.int32), (3, 2, 2))
    with pytest.raises(TypeError, match="ndarray"):
        fc_to_conv([[1.0] * 12] * 4, (3, 2, 2))


def test_conv_to_fc_validates():
    with pytest.raises(ValueError, match="4-D"):
        conv_to_fc(np.zeros((4, 12), np.float32))
    with pytest.raises(TypeError, match="floating"):
        conv_to_fc(np.zeros((4, 3, 2, 2), np.int64))


# -- 4. a convolution as a sparse FC layer ---------------------------------------------

CONV_CASES = [  # (C, H, W), (K, kh, kw), stride, padding, dilation, groups
    ((3, 10, 10), (1, 3, 3), 1, "same", 1, 1),
    ((3, 10, 10), (4, 3, 3), 1, 0, 1, 1),
    ((2, 7, 9), (3, 2, 4), (2, 3), ((1, 0), (2, 1)), 1, 1),
    ((4, 9, 8), (6, 3, 2), 1, 1, (2, 3), 2),
    ((4, 6, 6), (4, 3, 3), 2, 1, 1, 4),           # depthwise
    ((2, 5, 5), (3, 5, 5), 1, 0, 1, 1),           # full size: a dense FC matrix
    ((5, 4, 3), (2, 1, 1), 1, 0, 1, 1),           # 1x1
    ((1, 1, 1), (1, 1, 1), 1, 0, 1, 1),
    ((1, 3, 3), (2, 2, 2), 4, 2, 1, 1),           # stride > kernel
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chw,kkk,stride,padding,dilation,groups", CONV_CASES)
def test_conv_matrix_times_input_is_the_convolution(dtype, chw, kkk, stride, padding,
                                                    dilation, groups):
    rng = np.random.default_rng(sum(chw) + sum(kkk))
    (c, h, w), (k, kh, kw) = chw, kkk
    weight, x = rand(rng, (k, c // groups, kh, kw), dtype), rand(rng, (c, h, w), dtype)
    m = conv_matrix(weight, chw, stride, padding, dilation, groups)
    y = fastconv.conv2d(x[None], weight, None, stride, padding, dilation, groups,
                        backend="numpy")
    assert m.dtype == dtype and m.shape == (y.size, x.size)
    assert_close((m.astype(np.float64) @ x.ravel().astype(np.float64)).astype(dtype), y.ravel())
    fast = fastconv.conv2d(x[None], weight, None, stride, padding, dilation, groups,
                           backend="c")
    assert_close(fast.ravel(), m.astype(np.float64) @ x.ravel().astype(np.float64))


def test_conv_matrix_row_densities_match_the_3x3x3_on_10x10x3_count():
    # Strictly nonzero weights, so every connection shows as a nonzero entry.
    w = np.random.default_rng(0).uniform(0.5, 1.5, (1, 3, 3, 3))
    # 'same' padding (10x10 output): the 64 interior outputs each see 27 of the 300
    # inputs; outputs on an edge see 18 (one kernel column or row falls on padding),
    # corners 12.
    same = np.count_nonzero(conv_matrix(w, (3, 10, 10), padding="same"), axis=1)
    same = same.reshape(10, 10)
    assert conv_matrix(w, (3, 10, 10), padding="same").shape == (100, 300)
    assert (same[1:-1, 1:-1] == 27).all()
    assert (same[0, 1:-1] == 18).all() and (same[1:-1, -1] == 18).all()
    assert same[0, 0] == same[0, -1] == same[-1, 0] == same[-1, -1] == 12
    # 'valid' (8x8 output): every output is interior, 27 of 300 each.
    valid = conv_matrix(w, (3, 10, 10))
    assert valid.shape == (64, 300)
    assert (np.count_nonzero(valid, axis=1) == 27).all()
    # The 27 are exactly the 3x3x3 window under the output: output (4, 6) of 'valid'.
    cols = np.flatnonzero(valid[4 * 8 + 6]).reshape(3, 3, 3)
    want = np.array([[[c * 100 + (4 + i) * 10 + (6 + j) for j in range(3)] for i in range(3)]
                     for c in range(3)])
    assert np.array_equal(cols, want)


def test_conv_matrix_of_a_full_size_kernel_is_the_fc_matrix():
    w = rand(np.random.default_rng(4), (6, 3, 4, 5), np.float64)
    assert np.array_equal(conv_matrix(w, (3, 4, 5)), conv_to_fc(w))


def test_conv_matrix_validates():
    w = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="input channels"):
        conv_matrix(w, (4, 10, 10))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_matrix(w, (3, 2, 2))
    with pytest.raises(ValueError, match="input_shape"):
        conv_matrix(w, (3, 10))
    with pytest.raises(ValueError, match="4-D"):
        conv_matrix(np.ones((2, 27), np.float32), (3, 3, 3))
