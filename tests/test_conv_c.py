"""The C convolutions (direct, im2col + GEMM, GEMM lowering) on every ISA's
kernels against the oracle, both layouts and both dtypes.

Small-integer data makes every summation order exact, so most checks demand
equality; random reals are compared with a tolerance.  Channel counts and
output widths sit around the tile edges of each kernel table row (float:
32/16/8 channels x 14/6/4 pixels for avx512/avx2/generic; double: half the
channels).
"""
import threading

import numpy as np
import pytest

import fastconv
from fastconv import lower
from arrays import ints
from checks import slow_except
from isas import c_isas
from fastconv.backends.c import lib

ISAS = c_isas()
DTYPES = [np.float32, np.float64]
LAYOUTS = ["NCHW", "NHWC"]
ALGORITHMS = ["direct", "im2col", "auto"]

# name, C, H, W, K, kh, kw, stride, pad, groups -- the layer table.
LAYERS = [
    ("resnet50.conv1", 3, 224, 224, 64, 7, 7, 2, 3, 1),
    ("resnet50.l1.1x1a", 64, 56, 56, 64, 1, 1, 1, 0, 1),
    ("resnet50.l1.3x3", 64, 56, 56, 64, 3, 3, 1, 1, 1),
    ("resnet50.l1.1x1b", 64, 56, 56, 256, 1, 1, 1, 0, 1),
    ("resnet50.l1.1x1c", 256, 56, 56, 64, 1, 1, 1, 0, 1),
    ("resnet50.l2.1x1a", 256, 56, 56, 128, 1, 1, 1, 0, 1),
    ("resnet50.l2.3x3s2", 128, 56, 56, 128, 3, 3, 2, 1, 1),
    ("resnet50.l2.3x3", 128, 28, 28, 128, 3, 3, 1, 1, 1),
    ("resnet50.l2.1x1b", 128, 28, 28, 512, 1, 1, 1, 0, 1),
    ("resnet50.l2.ds", 256, 56, 56, 512, 1, 1, 2, 0, 1),
    ("resnet50.l3.3x3", 256, 14, 14, 256, 3, 3, 1, 1, 1),
    ("resnet50.l3.1x1b", 256, 14, 14, 1024, 1, 1, 1, 0, 1),
    ("resnet50.l3.1x1c", 1024, 14, 14, 256, 1, 1, 1, 0, 1),
    ("resnet50.l4.3x3", 512, 7, 7, 512, 3, 3, 1, 1, 1),
    ("resnet50.l4.1x1b", 512, 7, 7, 2048, 1, 1, 1, 0, 1),
    ("vgg16.conv1_2", 64, 224, 224, 64, 3, 3, 1, 1, 1),
    ("vgg16.conv2_2", 128, 112, 112, 128, 3, 3, 1, 1, 1),
    ("vgg16.conv3_2", 256, 56, 56, 256, 3, 3, 1, 1, 1),
    ("vgg16.conv4_2", 512, 28, 28, 512, 3, 3, 1, 1, 1),
    ("vgg16.conv5_2", 512, 14, 14, 512, 3, 3, 1, 1, 1),
    ("vgg16.fc6", 512, 7, 7, 4096, 7, 7, 1, 0, 1),
    ("alexnet.conv1", 3, 224, 224, 64, 11, 11, 4, 2, 1),
    ("lenet.conv1", 1, 28, 28, 6, 5, 5, 1, 2, 1),
    ("lenet.conv2", 6, 14, 14, 16, 5, 5, 1, 0, 1),
    ("mobilenetv2.dw", 144, 56, 56, 144, 3, 3, 1, 1, 144),
    ("mtcnn.pnet.conv1", 3, 480, 640, 10, 3, 3, 1, 0, 1),
]
# The quick tier leaves out the deep 3x3 layers (each much like the others).
QUICK_LAYERS = [i for i, layer in enumerate(LAYERS) if layer[0] not in (
    "resnet50.l3.3x3", "resnet50.l4.3x3", "resnet50.l4.1x1b", "vgg16.conv3_2", "vgg16.conv4_2",
    "vgg16.conv5_2")]

# (x shape NCHW, weight shape, conv2d keyword arguments): the edge cases.
CASES = [
    ((1, 3, 1, 1), (5, 3, 1, 1), {}),                                  # 1x1 image
    ((1, 2, 1, 1), (4, 2, 3, 3), dict(padding=1)),                     # 1x1 image, 3x3 kernel
    ((2, 3, 5, 6), (7, 3, 5, 6), {}),                                  # kernel = input (FC)
    ((1, 4, 5, 6), (9, 4, 5, 6), dict(padding=1)),                     # kernel = input, padded
    ((1, 3, 11, 13), (6, 3, 2, 2), dict(stride=3)),                    # stride > kernel
    ((1, 3, 10, 9), (5, 3, 1, 1), dict(stride=(2, 3))),                # strided 1x1
    ((1, 5, 9, 11), (33, 5, 3, 3), dict(padding=((2, 0), (1, 3)))),    # asymmetric padding
    ((1, 4, 8, 7), (9, 4, 4, 3), dict(padding="same")),                # even kernel, "same"
    ((1, 3, 12, 12), (8, 3, 3, 3), dict(dilation=(2, 3), padding=2)),  # dilation
    ((2, 6, 9, 9), (18, 2, 3, 3), dict(groups=3, padding=1)),          # groups
    ((1, 8, 7, 7), (40, 4, 3, 3), dict(groups=2, stride=2)),           # groups, K % kb != 0
    ((2, 16, 9, 10), (16, 1, 3, 3), dict(groups=16, padding=1)),       # depthwise
    ((1, 40, 9, 8), (40, 1, 5, 3), dict(groups=40, padding=(2, 1), dilation=(1, 2))),
    ((1, 12, 10, 11), (12, 1, 3, 3), dict(groups=12, stride=2, padding=1)),
    ((1, 6, 8, 9), (18, 1, 3, 3), dict(groups=6, padding=1)),          # channel multiplier 3
    ((1, 5, 9, 9), (10, 1, 3, 2), dict(groups=5, stride=(1, 2))),      # multiplier 2, strided
    ((0, 3, 6, 6), (4, 3, 3, 3), {}),                                  # N = 0
    ((3, 5, 6, 31), (17, 5, 3, 3), dict(padding=1)),                   # N > 1, wide rows
    ((1, 7, 15, 29), (65, 7, 3, 3), dict(stride=(2, 1))),              # widths past the tile
    ((1, 1, 30, 2), (3, 1, 3, 1), dict(padding=(1, 0))),               # tall and narrow
]



def to_layout(x, layout):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def oracle(x, w, b=None, layout="NCHW", relu=False, **kw):
    return fastconv.conv2d(x, w, b, layout=layout, relu=relu, backend="numpy", **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
# Quick tier: 1x1 images, kernel = input, stride > kernel, strided 1x1, groups,
# depthwise with and without a multiplier, N = 0.
@pytest.mark.parametrize("case", slow_except(range(len(CASES)), (0, 1, 2, 3, 4, 5, 9, 11, 14, 16)))
def test_edge_cases_exact(isa, case, layout, dtype):
    xs, ws, kw = CASES[case]
    rng = np.random.default_rng(case)
    x = to_layout(ints(rng, xs, dtype), layout)
    w = ints(rng, ws, dtype)
    b = ints(rng, ws[0], dtype)
    for relu in (False, True):
        want = oracle(x, w, b, layout, relu, **kw)
        for algorithm in ALGORITHMS:
            got = fastconv.conv2d(x, w, b, layout=layout, relu=relu, algorithm=algorithm,
                                  backend="c", **kw)
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"{algorithm} relu={relu}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_tile_edges_exact(isa, layout, dtype):
    """Output channels and widths on both sides of every kernel's tile, 1 and 2 row tiles."""
    rng = np.random.default_rng(1)
    for k, ow, c in [(1, 1, 1), (7, 3, 2), (8, 4, 3), (9, 5, 4), (16, 6, 3), (17, 7, 2),
                     (32, 13, 3), (33, 14, 2), (48, 15, 3), (65, 29, 2),
                     # weight packing: whole L x L squares and their remainders
                     (64, 14, 16), (40, 5, 7), (96, 3, 33)]:
        x = to_layout(ints(rng, (1, c, 5, ow + 2), dtype), layout)
        w = ints(rng, (k, c, 3, 3), dtype)
        want = oracle(x, w, layout=layout)
        for algorithm in ("direct", "im2col"):
            got = fastconv.conv2d(x, w, layout=layout, algorithm=algorithm, backend="c")
            np.testing.assert_array_equal(got, want, err_msg=f"{algorithm} k={k} ow={ow}")


@pytest.mark.parametrize("threads", slow_except([1, 2, 3], (0, 1)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_planar_store_widths_exact(isa, dtype, threads):
    """NCHW tiles are stored a channel's pixels per vector, whole vectors where
    the row goes on past the tile: every width around the tile and vector sizes,
    rows split over threads, the output (out=) at the start of a larger buffer
    whose elements after it must stay as they were."""
    rng = np.random.default_rng(11)
    for ow in list(range(1, 36)) + [47, 48, 49, 63, 64, 65]:
        for k, c, stride in ((5, 3, 1), (37, 2, 2), (64, 3, 2)):
            x = ints(rng, (1, c, 9, (ow - 1) * stride + 3), dtype)
            w = ints(rng, (k, c, 3, 3), dtype)
            want = oracle(x, w, stride=stride)
            buf = np.full(want.size + 64, 7.0, dtype)
            out = buf[:want.size].reshape(want.shape)
            with fastconv.config(num_threads=threads):
                fastconv.conv2d(x, w, stride=stride, algorithm="direct", backend="c", out=out)
            np.testing.assert_array_equal(out, want, err_msg=f"ow={ow} k={k}")
            assert (buf[want.size:] == 7).all(), f"ow={ow} k={k}: written past the output"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_depthwise_widths_exact(isa, layout, dtype):
    """Row kernels take 1-4 vectors of pixels per step: widths on both sides of each."""
    rng = np.random.default_rng(7)
    for ow in (1, 2, 3, 5, 7, 8, 9, 14, 15, 17, 31, 33, 47, 56, 63, 64, 65, 70):
        for c, mult in ((3, 1), (2, 3), (1, 5)):
            x = to_layout(ints(rng, (1, c, 4, ow + 2), dtype), layout)
            w = ints(rng, (c * mult, 1, 3, 3), dtype)
            b = ints(rng, c * mult, dtype)
            want = oracle(x, w, b, layout, groups=c)
            got = fastconv.conv2d(x, w, b, groups=c, layout=layout, algorithm="direct",
                                  backend="c")
            np.testing.assert_array_equal(got, want, err_msg=f"ow={ow} c={c} mult={mult}")


def _reduced(layer, spatial):
    """The layer with its spatial size cut down (but at least the kernel's reach)."""
    _, c, h, w, k, kh, kw, s, p, g = layer
    if (kh, kw) == (h, w):
        return c, h, w, k, kh, kw, s, p, g  # FC-as-conv: the kernel is the input
    h, w = max(min(h, spatial), kh), max(min(w, spatial), kw)
    return c, h, w, k, kh, kw, s, p, g


@pytest.mark.parametrize("layout", ["NCHW", pytest.param("NHWC", marks=pytest.mark.slow)])
@pytest.mark.parametrize("layer", slow_except(LAYERS, QUICK_LAYERS),
                         ids=[layer[0] for layer in LAYERS])
def test_layer_table_reduced_exact(layer, layout):
    c, h, w, k, kh, kw, s, p, g = _reduced(layer, 12)
    if layer[0] == "vgg16.fc6":
        c, k = 64, 256  # same geometry, a test-sized weight
    rng = np.random.default_rng(2)
    x = to_layout(ints(rng, (1, c, h, w), np.float32), layout)
    wt = ints(rng, (k, c // g, kh, kw), np.float32)
    b = ints(rng, k, np.float32)
    want = oracle(x, wt, b, layout, True, stride=s, padding=p, groups=g)
    for algorithm in ALGORITHMS:
        got = fastconv.conv2d(x, wt, b, s, p, 1, g, layout=layout, relu=True,
                              algorithm=algorithm, backend="c")
        np.testing.assert_array_equal(got, want, err_msg=algorithm)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_random_reals(isa, layout, dtype):
    rng = np.random.default_rng(3)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    for xs, ws, kw in [((2, 24, 13, 17), (40, 24, 3, 3), dict(padding=1)),
                       ((1, 48, 9, 9), (48, 1, 3, 3), dict(groups=48, padding=1)),
                       ((1, 16, 12, 12), (20, 8, 5, 5), dict(groups=2, stride=2, dilation=1))]:
        x = to_layout(rng.standard_normal(xs).astype(dtype), layout)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        want = oracle(x, w, b, layout, **kw)
        scale = np.abs(want).max()
        for algorithm in ALGORITHMS:
            got = fastconv.conv2d(x, w, b, layout=layout, algorithm=algorithm, backend="c", **kw)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=algorithm)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_strided_views(isa, layout):
    """Non-contiguous, negative-stride and transposed inputs are read as they lie."""
    rng = np.random.default_rng(4)
    base = ints(rng, (2, 12, 14, 16), np.float64)
    views = [base[:, ::2, 1::2, ::-1], base[::-1, :, ::-1, 2:], base.transpose(0, 1, 3, 2)]
    for view in views:
        x = view if layout == "NCHW" else view.transpose(0, 2, 3, 1)  # NHWC view of the same data
        c = x.shape[1] if layout == "NCHW" else x.shape[3]
        for ws, kw in [((5, c, 3, 3), dict(padding=1)), ((c, 1, 3, 3), dict(groups=c)),
                       ((7, c, 1, 1), {})]:
            w = ints(rng, ws, np.float64)
            want = oracle(np.ascontiguousarray(x), w, layout=layout, **kw)
            for algorithm in ALGORITHMS:
                got = fastconv.conv2d(x, w, layout=layout, algorithm=algorithm, backend="c", **kw)
                np.testing.assert_array_equal(got, want, err_msg=algorithm)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_keeps_nan_and_signed_zero(isa, dtype):
    """ReLU is x < 0 ? 0 : x in every store: NaN propagates."""
    x = np.zeros((1, 4, 5, 5), dtype)
    x[0, 1, 2, 2] = np.nan
    w = np.ones((3, 4, 3, 3), dtype)
    dw = np.ones((4, 1, 3, 3), dtype)
    b = np.array([-1, 0, 1], dtype)
    for algorithm in ALGORITHMS:
        y = fastconv.conv2d(x, w, b, padding=1, relu=True, algorithm=algorithm, backend="c")
        nan = np.zeros((5, 5), bool)
        nan[1:4, 1:4] = True
        for k in range(3):
            assert np.array_equal(np.isnan(y[0, k]), nan), algorithm
            assert np.all(y[0, k][~nan] == max(b[k], 0)), algorithm
        yd = fastconv.conv2d(x, dw, padding=1, groups=4, relu=True, algorithm=algorithm,
                             backend="c")
        assert np.isnan(yd[0, 1, 2, 2]) and np.isnan(yd).sum() == 9, algorithm


def test_fc6_as_conv_matches_linear_bit_for_bit():
    """A conv whose kernel covers the input is an FC layer: same call, same bits."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 64, 7, 7)).astype(np.float32)
    w = rng.standard_normal((300, 64, 7, 7)).astype(np.float32)
    b = rng.standard_normal(300).astype(np.float32)
    for algorithm in ("auto", "im2col"):
        y = fastconv.conv2d(x, w, b, algorithm=algorithm)
        fc = fastconv.linear(x.reshape(2, -1), w.reshape(300, -1), b)
        assert np.array_equal(y.reshape(2, 300), fc)
    assert lower.conv2d(x.shape, w.shape).algorithm == "gemm"


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_workspace_bounded_on_layer_table(layout, itemsize):
    for name, c, h, w, k, kh, kw, s, p, g in LAYERS:
        xs = (1, c, h, w) if layout == "NCHW" else (1, h, w, c)
        for algorithm in ALGORITHMS:
            plan = lower.conv2d(xs, (k, c // g, kh, kw), s, p, 1, g, layout, algorithm,
                                np.float32 if itemsize == 4 else np.float64)
            assert plan.workspace_bytes <= lower.IM2COL_BUDGET, (name, algorithm, plan)
            if plan.algorithm == "direct":
                assert plan.workspace_bytes == 0, (name, plan)


def test_auto_choices_follow_the_cost_model():
    pick = lambda xs, ws, **kw: lower.conv2d(xs, ws, **kw).algorithm
    assert pick((1, 64, 56, 56), (64, 64, 3, 3), padding=1) == "direct"
    assert pick((1, 64, 56, 56), (256, 64, 1, 1)) == "gemm"
    assert pick((1, 256, 56, 56), (512, 256, 1, 1), stride=2) == "im2col"
    assert pick((1, 144, 56, 56), (144, 1, 3, 3), padding=1, groups=144) == "direct"
    assert pick((1, 512, 7, 7), (4096, 512, 7, 7)) == "gemm"


@pytest.mark.parametrize("ws, groups, stride", [((16, 8, 3, 3), 1, 1), ((8, 1, 3, 3), 8, 1),
                                                ((8, 1, 3, 3), 8, 2)])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("threads", [1, 2])
def test_out_of_memory_raises(ws, groups, stride, layout, threads):
    """Every allocation of the direct path can fail, and each failure is a MemoryError."""
    x = to_layout(np.ones((1, 8, 9, 9), np.float32), layout)
    w = np.ones(ws, np.float32)
    want = oracle(x, w, layout=layout, padding=1, groups=groups, stride=stride)
    with fastconv.config(num_threads=threads):
        for fail_after in range(8):
            lib.fc_debug_fail_allocs_after(fail_after)
            try:
                got = fastconv.conv2d(x, w, None, stride, 1, 1, groups, layout=layout,
                                      algorithm="direct", backend="c")
                break
            except MemoryError:
                continue
            finally:
                lib.fc_debug_fail_allocs_after(-1)
    assert fail_after >= 1
    np.testing.assert_array_equal(got, want)


def test_threads_and_concurrent_callers():
    rng = np.random.default_rng(6)
    shapes = [((1, 16, 20, 20), (24, 16, 3, 3), 1), ((2, 32, 9, 9), (32, 1, 3, 3), 32),
              ((1, 8, 30, 12), (40, 8, 5, 5), 1), ((1, 64, 7, 7), (64, 64, 3, 3), 1)]
    data = [(ints(rng, xs, np.float32), ints(rng, ws, np.float32), g) for xs, ws, g in shapes]
    want = [oracle(x, w, padding=1, groups=g) for x, w, g in data]
    errors = []

    def work(i):
        try:
            for rep in range(10):
                x, w, g = data[(i + rep) % len(data)]
                got = fastconv.conv2d(x, w, padding=1, groups=g,
                                      algorithm=ALGORITHMS[rep % 3], backend="c")
                if not np.array_equal(got, want[(i + rep) % len(data)]):
                    errors.append((i, rep))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for threads in (1, 2, 3):
        with fastconv.config(num_threads=threads):
            pool = [threading.Thread(target=work, args=(i,)) for i in range(4)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
    assert not errors


@pytest.mark.parametrize("layout", LAYOUTS)
def test_single_output_row_or_column_with_a_huge_stride(isa, layout):
    """A stride only steps between outputs: with one output row or column it
    may be as large as the index limit, on every path (depthwise and one input
    channel with K filters included), without allocating per stride."""
    rng = np.random.default_rng(13)
    cases = [((1, 1, 1, 1), (65, 1, 1, 1), 1, (1, 2 ** 40), (1, 2)),
             ((1, 1, 1, 5), (7, 1, 1, 1), 1, (2 ** 40, 1), 1),
             ((1, 4, 5, 3), (4, 1, 3, 3), 4, (2, 2 ** 40), 1),
             ((2, 3, 4, 4), (5, 3, 3, 3), 1, (2 ** 40, 2 ** 40), 1)]
    for xs, ws, groups, stride, dilation in cases:
        x = to_layout(ints(rng, xs, np.float32), layout)
        w = ints(rng, ws, np.float32)
        want = oracle(x, w, stride=stride, dilation=dilation, groups=groups, layout=layout)
        for algorithm in ("direct", "im2col", "auto"):
            got = fastconv.conv2d(x, w, stride=stride, dilation=dilation, groups=groups,
                                  layout=layout, algorithm=algorithm, backend="c")
            np.testing.assert_array_equal(got, want, err_msg=f"{xs} {stride} {algorithm}")
