"""conv2d, linear, matmul and pooling against references that share no code
with fastconv: tests/reference.py (float64, written from PyTorch's documented
rules), NumPy float64 matmul, plain loops, and torch itself where installed.

fastconv's own NumPy backend is just another implementation under test here.
Integer-valued float32 data must match the float64 reference exactly (every
partial sum is exact); random float64 data within 1e-12 of the output's scale.
"""
import numpy as np
import pytest

import fastconv
import reference as ref
from arrays import close, ints, laid_out, mismatch
from checks import slow_except
from isas import c_isas, using_isa

BACKENDS = ("c", "numba", "numpy")
ALGORITHMS = ("auto", "direct", "im2col")

# name: (n, c, h, w, k, groups, kh, kw, stride, padding, dilation).  Height and
# width differ everywhere they can, so a swap of the two is a wrong value.
CASES = {
    "int padding": (2, 3, 7, 9, 4, 1, 3, 2, 1, 1, 1),
    "pair padding": (1, 2, 6, 8, 3, 1, 3, 3, 1, (2, 0), 1),
    "pair padding list": (1, 2, 6, 8, 3, 1, 2, 3, (1, 2), [0, 3], 1),
    "nested padding": (1, 2, 5, 7, 3, 1, 3, 2, 1, ((0, 2), (3, 1)), 1),
    "nested padding int parts": (2, 2, 5, 6, 2, 1, 2, 3, (2, 1), (1, (0, 2)), 1),
    "same odd kernel": (1, 3, 6, 7, 2, 1, 3, 5, 1, "same", 1),
    "same even kernel": (2, 2, 6, 7, 3, 1, 2, 4, 1, "same", 1),
    "same even kernel dilated": (1, 2, 9, 8, 3, 1, 2, 2, 1, "same", (2, 3)),
    "same mixed": (1, 2, 5, 9, 2, 1, 4, 3, 1, "same", (1, 2)),
    "same 1x1 image": (1, 2, 1, 1, 3, 1, 3, 2, 1, "same", 1),
    "valid": (1, 3, 6, 9, 2, 1, 2, 3, (2, 1), "valid", 1),
    "dilation": (1, 2, 9, 11, 3, 1, 3, 2, 1, (1, 2), (2, 3)),
    "stride > kernel": (2, 2, 11, 13, 3, 1, 2, 1, (4, 5), 1, 1),
    "huge stride": (1, 2, 9, 10, 2, 1, 3, 3, 100, 0, 1),
    "huge stride padded": (1, 2, 4, 5, 3, 1, 2, 2, (7, 1000), (1, 2), 1),
    "kernel fits padded input exactly": (1, 2, 3, 4, 2, 1, 5, 4, 1, (1, 0), 1),
    "kernel as tall as input": (1, 2, 5, 7, 3, 1, 5, 3, 1, 0, 1),
    "kernel as wide as input": (1, 2, 6, 4, 3, 1, 2, 4, 1, 0, 1),
    "full-size": (3, 3, 5, 4, 7, 1, 5, 4, 1, 0, 1),
    "full-size grouped": (2, 6, 5, 4, 4, 2, 5, 4, 1, 0, 1),
    "full-size depthwise (GDConv)": (2, 6, 7, 7, 6, 6, 7, 7, 1, 0, 1),
    "full-size depthwise x2": (1, 3, 3, 5, 6, 3, 3, 5, 1, 0, 1),
    "full-size padded": (1, 2, 3, 4, 3, 1, 3, 4, 1, (0, 1), 1),
    "full-size dilated": (1, 2, 3, 5, 3, 1, 2, 3, 1, 0, 2),
    # The kernel covers the input but the padding moves it: a 1x1 output that
    # is not the FC layer.
    "kernel covers input, padded, huge stride": (2, 2, 3, 4, 3, 1, 3, 4, 100, (1, 2), 1),
    "kernel covers input, grouped, nested padding, huge stride":
        (1, 4, 2, 3, 4, 2, 2, 3, (50, 60), ((0, 1), (2, 0)), 1),
    "grouped": (2, 6, 7, 8, 9, 3, 3, 2, 1, 1, 1),
    "depthwise": (2, 5, 8, 9, 5, 5, 3, 3, 1, 1, 1),
    "depthwise x2 strided": (1, 4, 7, 6, 8, 4, 3, 3, 2, (1, 0), 1),
    "1x1 image": (2, 3, 1, 1, 4, 1, 1, 1, 1, 0, 1),
    "1x1 image padded": (1, 3, 1, 1, 4, 1, 3, 3, 1, 1, 1),
    "1x1 image depthwise padded": (2, 3, 1, 1, 3, 3, 2, 3, 1, (1, 1), 1),
    "pointwise": (2, 5, 4, 6, 7, 1, 1, 1, 1, 0, 1),
    "pointwise grouped": (2, 6, 4, 5, 4, 2, 1, 1, 1, 0, 1),
    "pointwise strided": (1, 3, 7, 8, 4, 1, 1, 1, (2, 3), 0, 1),
    "pointwise padded": (1, 3, 3, 4, 2, 1, 1, 1, 1, (1, 2), 1),
    "K = 1": (2, 3, 6, 7, 1, 1, 3, 3, 1, 1, 1),
    "C = 1": (3, 1, 8, 6, 5, 1, 5, 3, 1, (2, 1), 1),
    # Past the widest register tiles: 2 x 16 fp32 lanes by 14 pixels (AVX-512).
    "tile channels and width": (2, 3, 5, 33, 70, 1, 3, 3, 1, 1, 1),
    "tile depthwise": (1, 40, 4, 19, 40, 40, 3, 3, 1, 1, 1),
    "tile grouped": (1, 8, 5, 31, 66, 2, 3, 1, 1, (0, 1), 1),
}

# The quick tier's cases (checks.slow_except): 1x1 images, kernels that cover
# the input, stride > kernel, groups and depthwise, past the register tiles,
# and x contiguous, strided, reversed and permuted.
QUICK = [list(CASES).index(name) for name in (
    "nested padding int parts", "same even kernel dilated", "stride > kernel",
    "huge stride padded", "kernel fits padded input exactly", "full-size grouped",
    "full-size depthwise (GDConv)", "kernel covers input, grouped, nested padding, huge stride",
    "grouped", "depthwise x2 strided", "1x1 image", "1x1 image depthwise padded",
    "pointwise strided", "tile channels and width")]

# x as handed to conv2d: case i uses kind i mod len (these keep Numba's
# compiled signatures few; test_properties covers every kind).
X_KINDS = ("contiguous", "strided", "reversed", "contiguous", "permuted")


def conv_case(name, dtype, layout, rng, exact):
    n, c, h, w, k, groups, kh, kw, stride, padding, dilation = CASES[name]
    make = (lambda s: ints(rng, s, dtype)) if exact else \
        (lambda s: rng.uniform(-1, 1, s).astype(dtype))
    x = make((n, c, h, w) if layout == "NCHW" else (n, h, w, c))
    weight, bias = make((k, c // groups, kh, kw)), make((k,))
    kind = X_KINDS[list(CASES).index(name) % len(X_KINDS)]
    x = laid_out(x, kind, rng)
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation,
                                 groups=groups, layout=layout)


def variants(backend):
    if backend != "c":
        return [None]
    return c_isas()


@pytest.mark.parametrize("name", slow_except(list(CASES), QUICK))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d(name, backend, algorithm):
    rng = np.random.default_rng(list(CASES).index(name))
    for layout in ("NCHW", "NHWC"):
        for dtype, exact in ((np.float32, True), (np.float64, False)):
            x, weight, bias, kw = conv_case(name, dtype, layout, rng, exact)
            relu = exact  # ReLU in the store on one of the two runs
            want = ref.conv2d(x, weight, bias, relu=relu, **kw).astype(dtype)
            for isa in variants(backend):
                with using_isa(isa):
                    got = fastconv.conv2d(x, weight, bias, algorithm=algorithm,
                                          backend=backend, relu=relu, **kw)
                assert close(got, want, exact), \
                    f"{backend}/{isa}/{algorithm} {layout} {np.dtype(dtype)}: {mismatch(got, want)}"


# Problems torch refuses: fastconv must refuse them too (a ValueError), never
# return an empty or wrongly sized result.
REFUSED = {
    "kernel taller than padded input": (1, 2, 4, 9, 3, 1, 5, 3, 1, 0, 1),
    "kernel wider than padded input": (1, 2, 9, 4, 3, 1, 3, 5, 1, 0, 1),
    "kernel wider, strided": (1, 2, 9, 4, 3, 1, 3, 6, 3, 0, 1),
    "dilated kernel wider": (1, 2, 9, 5, 3, 1, 2, 3, 1, (0, 0), 3),
    "kernel wider than pair-padded input": (1, 2, 9, 3, 2, 1, 2, 6, 1, (0, 1), 1),
    "kernel taller than nested-padded input": (1, 2, 3, 9, 2, 1, 6, 2, 1, ((1, 1), (0, 0)), 1),
    "same with stride": (1, 2, 6, 6, 2, 1, 3, 3, 2, "same", 1),
}


@pytest.mark.parametrize("name", list(REFUSED))
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_refuses_what_torch_refuses(name, backend):
    n, c, h, w, k, groups, kh, kw, stride, padding, dilation = REFUSED[name]
    x, weight = np.ones((n, c, h, w), np.float32), np.ones((k, c // groups, kh, kw), np.float32)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    with pytest.raises(ValueError):
        ref.conv2d(x, weight, **args)
    with pytest.raises(ValueError):
        fastconv.conv2d(x, weight, backend=backend, **args)
    with pytest.raises(ValueError):
        fastconv.lower.conv2d(x.shape, weight.shape, stride, padding, dilation, groups)


# ---- the reference itself ---------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", slow_except(list(CASES), QUICK))
def test_reference_matches_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, weight, bias, kw = conv_case(name, np.float64, "NCHW", rng, exact=False)
    x = np.ascontiguousarray(x)
    kw.pop("layout")
    want = ref.torch_conv(torch, x, weight, bias, **kw)
    got = ref.conv2d(x, weight, bias, **kw)
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12), name


@pytest.mark.parametrize("name", list(REFUSED))
def test_reference_refuses_what_torch_refuses(name):
    torch = pytest.importorskip("torch")
    n, c, h, w, k, groups, kh, kw, stride, padding, dilation = REFUSED[name]
    x, weight = np.ones((n, c, h, w)), np.ones((k, c // groups, kh, kw))
    with pytest.raises(RuntimeError):
        ref.torch_conv(torch, x, weight, None, stride, padding, dilation, groups)


def test_reference_same_pads_bottom_right():
    """torch's rule for an even "same" kernel: the odd pixel of padding is at the
    bottom/right.  Independent of torch: a 2x2 all-ones kernel over a one-hot
    input shows where the padding went."""
    x = np.zeros((1, 1, 3, 4))
    x[0, 0, 0, 0] = 1.0
    y = ref.conv2d(x, np.ones((1, 1, 2, 2)), padding="same")
    # Padding only at the bottom/right: output (i, j) sums x[i:i+2, j:j+2].
    assert y.shape == (1, 1, 3, 4) and y[0, 0, 0, 0] == 1 and y.sum() == 1
    assert ref.conv_padding("same", (4, 2), (1, 3)) == (1, 2, 1, 2)


@pytest.mark.parametrize("name", ["nested padding", "same even kernel dilated", "grouped",
                                  "stride > kernel", "depthwise x2 strided", "full-size grouped"])
def test_reference_matches_loops(name):
    """Einsum over padded input against seven loops over unpadded input."""
    rng = np.random.default_rng(2)
    n, c, h, w, k, groups, kh, kw, stride, padding, dilation = CASES[name]
    x, weight, bias = rng.uniform(-1, 1, (n, c, h, w)), \
        rng.uniform(-1, 1, (k, c // groups, kh, kw)), rng.uniform(-1, 1, k)
    s, d = ref._two(stride), ref._two(dilation)
    pads = ref.conv_padding(padding, (kh, kw), d)
    want = ref.conv2d_loops(x, weight, bias, s, pads, d, groups)
    got = ref.conv2d(x, weight, bias, stride, padding, dilation, groups)
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12)


# ---- linear and matmul against NumPy float64 --------------------------------

# (m, k, n): 1 and tile edges (14 x 32 fp32, 14 x 16 fp64 register tiles on AVX-512).
GEMMS = [(1, 1, 1), (1, 7, 33), (5, 1, 9), (14, 20, 32), (15, 33, 65), (29, 3, 1),
         (3, 300, 70), (33, 17, 2)]


@pytest.mark.parametrize("mkn", GEMMS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_linear(mkn, backend):
    m, k, n = mkn
    rng = np.random.default_rng(m * 1000 + k + n)
    for dtype, exact in ((np.float32, True), (np.float64, False)):
        make = (lambda s: ints(rng, s, dtype)) if exact else \
            (lambda s: rng.uniform(-1, 1, s).astype(dtype))
        a, b, bias = make((m, k)), make((k, n)), make((n,))
        a_t = laid_out(a, "strided", rng)  # a non-contiguous operand
        want = (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype)
        want_lin = (a.astype(np.float64) @ b.astype(np.float64) + bias).astype(dtype)
        for isa in variants(backend):
            with using_isa(isa):
                got = fastconv.matmul(a_t, b, backend=backend)
                assert close(got, want, exact), f"matmul {isa}: {mismatch(got, want)}"
                got = fastconv.linear(a, np.ascontiguousarray(b.T), bias, backend=backend)
                assert close(got, want_lin, exact), f"linear {isa}: {mismatch(got, want_lin)}"
                got = fastconv.linear(a[0], b.T, bias, backend=backend, relu=True)
                want_vec = np.maximum(want_lin[0], 0)
                assert close(got, want_vec, exact), f"linear 1-D {isa}: {mismatch(got, want_vec)}"


# ---- pooling ----------------------------------------------------------------

# (h, w, kernel, stride, padding, ceil_mode)
POOLS = [
    (6, 7, 2, None, 0, False),
    (7, 9, 3, 2, 1, False),
    (7, 9, 3, 2, 1, True),
    (8, 5, (3, 2), (2, 1), (1, 0), True),
    (5, 8, (2, 3), (1, 2), (0, 1), False),
    (9, 6, 3, 3, 0, True),       # ceil: a partial last window
    (6, 6, 3, 2, 1, True),       # ceil: the last window would start in the right padding
    (10, 7, 4, 3, 2, True),
    (4, 11, (1, 3), (1, 4), 0, True),
    (3, 3, 3, 1, 1, False),
    (1, 1, 1, None, 0, False),
    (2, 3, 2, 5, 1, True),       # stride > kernel
    (7, 6, (2, 3), 2, (1, 0), True),  # ceil: extra right padding, none at the bottom
]


def pool_x(rng, h, w):
    return laid_out(ints(rng, (2, 3, h, w), np.float32, bound=9), "contiguous", rng)


@pytest.mark.parametrize("case", POOLS, ids=str)
def test_max_pool(case):
    h, w, k, s, p, ceil = case
    x = pool_x(np.random.default_rng(h * w), h, w)
    layer = fastconv.nn.MaxPool2d(k, s, p, ceil_mode=ceil)
    want = ref.pool2d(x, k, s, p, ceil, "max").astype(np.float32)
    got = layer(x)
    assert close(got, want, True), mismatch(got, want)
    assert layer.output_shape(x.shape[1:]) == want.shape[1:]


@pytest.mark.parametrize("case", [c for c in POOLS if not c[5]], ids=str)
def test_avg_pool(case):
    h, w, k, s, p, _ = case
    x = np.random.default_rng(h + w).uniform(-1, 1, (2, 3, h, w))
    layer = fastconv.nn.AvgPool2d(k, s, p)
    want = ref.pool2d(x, k, s, p, False, "avg")
    got = layer(x)
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12)
    assert layer.output_shape(x.shape[1:]) == want.shape[1:]


@pytest.mark.parametrize("case", POOLS, ids=str)
def test_pool_reference_matches_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, w, k, s, p, ceil = case
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, h, w))
    xt = torch.from_numpy(x)
    want = F.max_pool2d(xt, k, s, p, ceil_mode=ceil).numpy()
    assert np.array_equal(ref.pool2d(x, k, s, p, ceil, "max"), want)
    want = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=True).numpy()
    got = ref.pool2d(x, k, s, p, ceil, "avg")
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 4, 1, 1), (3, 2, 1, 9)])
def test_global_avg_pool(shape):
    x = np.random.default_rng(4).uniform(-1, 1, shape)
    want = ref.pool2d(x, shape[2:], 1, 0, False, "avg")
    got = fastconv.nn.GlobalAvgPool2d()(x)
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (3, 2, 1, 9)])
def test_global_avg_pool_reference_matches_torch(shape):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).uniform(-1, 1, shape)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    got = ref.pool2d(x, shape[2:], 1, 0, False, "avg")
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12)
