"""PReLU in the kernels' store (negative_slope=): conv2d and linear against
PyTorch's prelu(conv2d(...)) / prelu(linear(...)), every backend, algorithm
and C ISA; the fused store against the same conv followed by a separate pass
(bit for bit); nn.Sequential's fusion of Conv2d/Linear + PReLU; bad slopes."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from isas import c_isas, using_isa

BACKENDS = ("c", "numba", "numpy")
# (n, c, h, w, k, kernel, stride, padding, groups): direct tiles (full and
# narrow channel blocks, two-row tiles), depthwise (planar and channels-last),
# grouped, 1x1 and full-size (both run as GEMMs), K past one channel block.
SHAPES = [
    (1, 3, 20, 23, 10, 3, 1, 1, 1),
    (2, 8, 9, 9, 40, 3, 2, 1, 1),
    (1, 4, 5, 5, 70, 3, 1, 1, 1),
    (1, 8, 7, 7, 8, 3, 1, 1, 8),
    (1, 16, 6, 6, 16, 3, 2, 1, 16),
    (2, 6, 5, 5, 12, 3, 1, 0, 2),
    (1, 16, 5, 5, 33, 1, 1, 0, 1),
    (3, 5, 4, 4, 19, 4, 1, 0, 1),
    (1, 1, 1, 1, 3, 1, 1, 0, 1),
]


def torch_ref(x, w, b, slope, stride, padding, groups):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = [torch.from_numpy(a.astype(np.float64)) for a in (x, w, b, slope)]
    y = F.conv2d(t[0], t[1], t[2], stride=stride, padding=padding, groups=groups)
    return F.prelu(y, t[3]).numpy()


def close(got, want, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-12
    return np.allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def isas(backend):
    return c_isas() if backend == "c" else [None]


def algorithms(backend, kk, stride, groups):
    winograd = backend == "c" and kk == 3 and stride == 1 and groups == 1
    return ("direct", "im2col", "auto") + (("winograd",) if winograd else ())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv2d_matches_torch(backend, dtype, layout):
    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for n, c, h, w, k, kk, stride, padding, groups in SHAPES:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        weight = rng.standard_normal((k, c // groups, kk, kk)).astype(dtype)
        bias = rng.standard_normal(k).astype(dtype)
        slope = rng.uniform(-1.5, 2.5, k).astype(dtype)   # negative and steep slopes too
        want = torch_ref(x, weight, bias, slope, stride, padding, groups)
        xin = x if layout == "NCHW" else x.transpose(0, 2, 3, 1)  # a strided view
        for isa in isas(backend):
            for algo in algorithms(backend, kk, stride, groups):
                with using_isa(isa):
                    y = fastconv.conv2d(xin, weight, bias, stride, padding, 1, groups,
                                        algorithm=algo, backend=backend, layout=layout,
                                        negative_slope=slope)
                got = y if layout == "NCHW" else y.transpose(0, 3, 1, 2)
                assert close(got, want, dtype), (backend, isa, algo, layout, n, c, h, w, k, kk)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_matches_torch(backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    for m, kdim, nout in [(1, 100, 30), (5, 64, 17), (40, 33, 50), (7, 1, 3), (3, 0, 5),
                          (1, 25, 1), (2, 300, 1)]:
        x = rng.standard_normal((m, kdim)).astype(np.float32)
        w = rng.standard_normal((nout, kdim)).astype(np.float32)
        b = rng.standard_normal(nout).astype(np.float32)
        for slope in (rng.uniform(-1, 2, nout).astype(np.float32), 0.25, [0.1]):
            s = np.broadcast_to(np.asarray(slope, np.float32).reshape(-1), (nout,))
            lin = F.linear(*(torch.from_numpy(np.ascontiguousarray(a, np.float64))
                             for a in (x, w, b)))
            want = F.prelu(lin, torch.from_numpy(s.astype(np.float64))).numpy()
            for isa in isas(backend):
                with using_isa(isa):
                    got = fastconv.linear(x, w, b, backend=backend, negative_slope=slope)
                assert close(got, want, np.float32), (backend, isa, m, kdim, nout)
            got = fastconv.linear(x[0], w, b, backend=backend, negative_slope=slope)  # 1-D x
            assert close(got, want[0], np.float32)


@pytest.mark.parametrize("algo", ["direct", "im2col", "auto", "winograd"])
def test_fused_store_is_bit_identical_to_a_separate_pass(algo):
    """The store computes x < 0 ? slope * x : x once, in the output's type:
    exactly what conv2d followed by nn.PReLU computes."""
    rng = np.random.default_rng(11)
    for n, c, h, w, k, kk, stride, padding, groups in SHAPES:
        if algo not in algorithms("c", kk, stride, groups):
            continue
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        weight = rng.standard_normal((k, c // groups, kk, kk)).astype(np.float32)
        bias = rng.standard_normal(k).astype(np.float32)
        slope = rng.uniform(-1.5, 2.5, k).astype(np.float32)
        for isa in c_isas():
            with using_isa(isa):
                plain = fastconv.conv2d(x, weight, bias, stride, padding, 1, groups,
                                        algorithm=algo, backend="c")
                fused = fastconv.conv2d(x, weight, bias, stride, padding, 1, groups,
                                        algorithm=algo, backend="c", negative_slope=slope)
            assert np.array_equal(fused, nn.PReLU(slope)(plain)), (isa, algo, c, k, kk)


def test_nan_passes_and_zero_slope_is_relu():
    x = np.array([[[[np.nan, -1.0, 2.0, -0.0]]]], np.float32)
    w = np.ones((2, 1, 1, 1), np.float32)
    for backend in BACKENDS:
        y = fastconv.conv2d(x, w, backend=backend, negative_slope=[0.5, 0.0])
        assert np.isnan(y[0, :, 0, 0]).all()
        assert y[0, 0, 0, 1:].tolist() == [-0.5, 2.0, 0.0]
        assert np.array_equal(y[0, 1, 0, 1:], fastconv.conv2d(x, w[:1], relu=True,
                                                               backend=backend)[0, 0, 0, 1:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_fuses_prelu(backend):
    """Conv2d/Linear + PReLU in a Sequential: the fused call equals the layers one by one."""
    rng = np.random.default_rng(5)
    model = nn.Sequential(
        nn.Conv2d(rng.standard_normal((6, 3, 3, 3)).astype(np.float32),
                  rng.standard_normal(6).astype(np.float32)),
        nn.PReLU(rng.uniform(0, 0.5, 6).astype(np.float32)),
        nn.Conv2d(rng.standard_normal((4, 6, 3, 3)).astype(np.float32)),
        nn.PReLU(np.float32([0.2])),                           # one slope for every channel
        nn.Flatten(),
        nn.Linear(rng.standard_normal((5, 4 * 4 * 4)).astype(np.float32)),
        nn.PReLU(rng.uniform(1, 3, 5).astype(np.float32)),     # steep slopes
    )
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with fastconv.config(backend=backend):
        want = x
        for layer in model.layers:
            want = layer(want)
        assert np.array_equal(model(x), want)
    bad = nn.Sequential(nn.Conv2d(np.ones((3, 1, 1, 1), np.float32)),
                        nn.PReLU(np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="PReLU has 2 slopes"):
        bad(np.ones((1, 1, 2, 2), np.float32))


def test_bad_slopes_are_refused():
    x = np.ones((1, 2, 3, 3), np.float32)
    w = np.ones((4, 2, 1, 1), np.float32)
    with pytest.raises(ValueError, match="exclusive"):
        fastconv.conv2d(x, w, relu=True, negative_slope=0.1)
    with pytest.raises(ValueError, match="one entry per output channel"):
        fastconv.conv2d(x, w, negative_slope=[0.1, 0.2])
    with pytest.raises(ValueError, match="negative_slope"):
        fastconv.conv2d(x, w, negative_slope=np.ones((4, 1)))
    with pytest.raises(TypeError, match="negative_slope"):
        fastconv.conv2d(x, w, negative_slope=True)
    with pytest.raises(TypeError, match="negative_slope"):
        fastconv.conv2d(x, w, negative_slope="0.1")
    with pytest.raises(TypeError, match="negative_slope"):
        fastconv.linear(np.ones((1, 2), np.float32), np.ones((3, 2), np.float32),
                        negative_slope=np.ones(3, complex))
