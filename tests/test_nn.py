"""fastconv.nn: layers against the oracle, ReLU fusion, backend selection,
fully convolutional conversion and the parameter report."""
import itertools

import numpy as np
import pytest

import fastconv
from fastconv import api, nn
from fastconv.backends import c as c_backend

from checks import BACKENDS, assert_close


def assert_rel(got, want, rel):
    """Equal to `rel` of the largest magnitude in `want` (for results that took
    different summation orders, e.g. a window of a fully convolutional pass)."""
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= rel * float(np.abs(want).max()), f"relative error {err:.3g} > {rel}"


def rand(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def small_classifier(rng, dtype=np.float32):
    """conv-pool-conv-pool-FC-FC on 2x12x10 inputs (no padding: exactly convertible)."""
    return nn.Sequential(
        nn.Conv2d(rand(rng, (4, 2, 3, 3), dtype), rand(rng, (4,), dtype)), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(rand(rng, (5, 4, 2, 3), dtype), rand(rng, (5,), dtype)), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(rand(rng, (7, 5 * 2 * 1), dtype), rand(rng, (7,), dtype)), nn.ReLU(),
        nn.Linear(rand(rng, (3, 7), dtype), None),
        nn.Softmax())


# -- pooling against an independent loop oracle (PyTorch's definitions) ----------------

def pool_oracle(x, k, s, p, ceil_mode, reduce):
    n, c, h, w = x.shape

    def size(length, k, s, p):
        out = (length + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
        return out - 1 if ceil_mode and (out - 1) * s >= length + p else out
    oh, ow = size(h, k[0], s[0], p[0]), size(w, k[1], s[1], p[1])
    y = np.empty((n, c, oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        vals = []
        for a, b in itertools.product(range(k[0]), range(k[1])):
            yy, xx = i * s[0] - p[0] + a, j * s[1] - p[1] + b
            inside = 0 <= yy < h and 0 <= xx < w
            if reduce == "max" and inside:
                vals.append(x[:, :, yy, xx])
            elif reduce == "avg" and yy < h + p[0] and xx < w + p[1]:
                vals.append(x[:, :, yy, xx] if inside else np.zeros((n, c)))
        y[:, :, i, j] = np.max(vals, axis=0) if reduce == "max" else \
            np.sum(vals, axis=0) / (k[0] * k[1])
    return y


POOL_CASES = [  # kernel, stride, padding, ceil_mode
    (2, None, 0, False), (3, 2, 1, False), ((2, 3), (1, 2), (1, 0), False),
    (2, 2, 0, True), (3, 2, 1, True), (3, 3, 0, True), (1, 1, 0, False), (4, 1, 2, False)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 4, 4), (1, 2, 5, 6)])
@pytest.mark.parametrize("k,s,p,ceil_mode", POOL_CASES)
def test_maxpool_matches_oracle(dtype, shape, k, s, p, ceil_mode):
    x = rand(np.random.default_rng(0), shape, dtype)
    layer = nn.MaxPool2d(k, s, p, ceil_mode)
    y = layer(x)
    want = pool_oracle(x, layer.kernel_size, layer.stride, layer.padding, ceil_mode, "max")
    assert y.dtype == dtype and y.shape == want.shape
    assert y.shape[1:] == layer.output_shape(shape[1:])
    assert np.array_equal(y, want.astype(dtype))


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 2, 5, 6)])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
def test_avgpool_matches_oracle(shape, k, s, p):
    x = rand(np.random.default_rng(1), shape, np.float64)
    layer = nn.AvgPool2d(k, s, p)
    want = pool_oracle(x, layer.kernel_size, layer.stride, layer.padding, False, "avg")
    assert_close(layer(x), want)


def test_pooling_matches_torch():
    torch = pytest.importorskip("torch")
    x = rand(np.random.default_rng(2), (2, 3, 11, 8))
    for k, s, p, ceil_mode in POOL_CASES:
        want = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p,
                                              ceil_mode=ceil_mode).numpy()
        assert np.array_equal(nn.MaxPool2d(k, s, p, ceil_mode)(x), want)
        if not ceil_mode:
            want = torch.nn.functional.avg_pool2d(torch.from_numpy(x), k, s, p).numpy()
            assert_close(nn.AvgPool2d(k, s, p)(x), want)


def test_pool_validates():
    with pytest.raises(ValueError, match="^padding .*at most half"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="^padding .*at most half"):  # per axis
        nn.AvgPool2d((2, 4), padding=(1, 3))
    assert nn.AvgPool2d((2, 4), padding=(1, 2)).output_shape((1, 4, 4)) == (1, 3, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.MaxPool2d(5)(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="N, C, H, W"):
        nn.MaxPool2d(2)(np.zeros((3, 3), np.float32))


def test_small_layers():
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 3, 4, 5), np.float64)
    assert_close(nn.GlobalAvgPool2d()(x), x.mean(axis=(2, 3)).reshape(2, 3, 1, 1))
    assert np.array_equal(nn.Flatten()(x), x.reshape(2, 60))
    assert np.array_equal(nn.ReLU()(x), np.where(x > 0, x, 0))
    slope = np.array([0.1, 0.2, 0.3])
    assert_close(nn.PReLU(slope)(x), np.where(x > 0, x, slope[None, :, None, None] * x))
    p = nn.Softmax()(x)
    assert_close(p.sum(axis=1), np.ones((2, 4, 5)))
    assert_close(p, np.exp(x) / np.exp(x).sum(axis=1, keepdims=True))
    big = nn.Softmax()(np.array([[1000.0, 0.0]], np.float32))    # no overflow
    assert np.array_equal(big, np.array([[1.0, 0.0]], np.float32))


# -- weighted layers, fusion and backends -----------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_and_linear_layers_match_oracle(backend, dtype):
    rng = np.random.default_rng(4)
    x = rand(rng, (2, 4, 9, 8), dtype)
    w, b = rand(rng, (6, 2, 3, 3), dtype), rand(rng, (6,), dtype)
    conv = nn.Conv2d(w, b, stride=2, padding=1, groups=2)
    with fastconv.config(backend=backend):
        y = conv(x)
    assert_close(y, fastconv.conv2d(x, w, b, 2, 1, 1, 2, backend="numpy"))
    assert y.shape[1:] == conv.output_shape(x.shape[1:])
    lw, lb = rand(rng, (5, 11), dtype), rand(rng, (5,), dtype)
    xl = rand(rng, (3, 11), dtype)
    with fastconv.config(backend=backend):
        assert_close(nn.Linear(lw, lb)(xl), fastconv.linear(xl, lw, lb, backend="numpy"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_fuses_relu_into_conv_and_linear(backend, monkeypatch):
    rng = np.random.default_rng(5)
    model = small_classifier(rng)
    calls = []
    for name, entry in (("conv2d", "run_conv2d"), ("linear", "linear")):  # a layer's doors
        real = getattr(api, entry)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, kwargs.get("relu", False)))
            return _real(*args, **kwargs)
        monkeypatch.setattr(api, entry, spy)
    relu_calls = []
    monkeypatch.setattr(nn.ReLU, "forward",
                        lambda self, x: relu_calls.append(1) or np.maximum(x, 0))
    x = rand(rng, (3, 2, 12, 10))
    with fastconv.config(backend=backend):
        y = model(x)
    assert calls == [("conv2d", True), ("conv2d", True), ("linear", True), ("linear", False)]
    assert relu_calls == []
    # The same layers one by one (ReLU unfused) on the oracle.
    want = x
    with fastconv.config(backend="numpy"):
        for layer in model:
            want = layer(want)
    assert len(relu_calls) == 3
    assert_close(y, want)


def test_layers_follow_the_configured_backend(monkeypatch):
    calls = []
    real = c_backend.gemm
    monkeypatch.setattr(c_backend, "gemm", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(6)
    layer = nn.Linear(rand(rng, (4, 3)))
    x = rand(rng, (2, 3))
    with fastconv.config(backend="numpy"):
        layer(x)
    assert calls == []
    with fastconv.config(backend="c"):
        layer(x)
    assert calls == [1]


def test_layer_validation():
    with pytest.raises(ValueError, match="4-D"):
        nn.Conv2d(np.zeros((3, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="bias must have shape"):
        nn.Linear(np.zeros((3, 4), np.float32), np.zeros(4, np.float32))
    w = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="stride"):
        nn.Conv2d(w, stride=0)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(w, groups=3)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2d(w, padding=-1)
    with pytest.raises(ValueError, match="same"):
        nn.Conv2d(w, stride=2, padding="same")
    with pytest.raises(ValueError, match="algorithm"):
        nn.Conv2d(w, algorithm="fft")
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), np.maximum)
    with pytest.raises(ValueError, match="Flatten"):
        nn.Linear(np.zeros((3, 4), np.float32)).output_shape((1, 2, 2))


def test_lazy_weights_are_made_once_on_first_use():
    made = []
    lazy = nn.Lazy((3, 2), np.float32, lambda: made.append(1) or np.ones((3, 2)))
    layer = nn.Linear(lazy)
    assert layer.params() == 6 and made == []
    assert layer.weight.dtype == np.float32 and made == [1]
    layer(np.ones((1, 2), np.float32))
    assert made == [1]
    with pytest.raises(ValueError, match="expected"):
        nn.Linear(nn.Lazy((3, 2), np.float32, lambda: np.ones((2, 3)))).weight


# -- fully convolutional conversion -------------------------------------------------------

def windows(x, size, stride):
    """All (size) windows of x at `stride`: (OH, OW, N, C, kh, kw)."""
    v = np.lib.stride_tricks.sliding_window_view(x, size, axis=(2, 3))[:, :, ::stride[0],
                                                                         ::stride[1]]
    return v.transpose(2, 3, 0, 1, 4, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fully_convolutional_equals_the_classifier_at_every_window(backend):
    rng = np.random.default_rng(7)
    model = small_classifier(rng)
    fcn = nn.to_fully_convolutional(model, (2, 12, 10))
    assert not any(isinstance(layer, (nn.Linear, nn.Flatten)) for layer in fcn)
    x = rand(rng, (2, 2, 12, 10))
    with fastconv.config(backend=backend):
        # At the classifier's own input size: the same numbers, as (N, classes, 1, 1).
        assert_rel(fcn(x), model(x).reshape(2, 3, 1, 1), 1e-5)
        big = rand(rng, (2, 2, 28, 25))
        heat = fcn(big)
        # Total downsampling 4 (two 2x2 pools): output (i, j) <-> window at (4i, 4j).
        win = windows(big, (12, 10), (4, 4))
        oh, ow = win.shape[:2]
        assert heat.shape == (2, 3, oh, ow) == (2, 3, 5, 4)
        per_window = model(win.reshape(-1, 2, 12, 10)).reshape(oh, ow, 2, 3)
    assert_rel(heat, per_window.transpose(2, 3, 0, 1), 1e-4)
    assert_close(heat.sum(axis=1), np.ones((2, oh, ow)))


def test_fully_convolutional_conversion_layers():
    rng = np.random.default_rng(8)
    model = small_classifier(rng)
    fcn = nn.to_fully_convolutional(model, (2, 12, 10))
    fc1, fc2 = [layer for layer in fcn if isinstance(layer, nn.Conv2d)][2:]
    assert fc1.weight_shape == (7, 5, 2, 1) and fc2.weight_shape == (3, 7, 1, 1)
    assert np.array_equal(fc1.weight.reshape(7, -1), model[7].weight)
    assert fc2.bias is None
    assert nn.summary(fcn, (2, 12, 10)).params == nn.summary(model, (2, 12, 10)).params


def test_fully_convolutional_after_global_pooling_uses_1x1_convs():
    rng = np.random.default_rng(9)
    model = nn.Sequential(nn.Conv2d(rand(rng, (4, 1, 3, 3))), nn.GlobalAvgPool2d(),
                          nn.Flatten(), nn.Linear(rand(rng, (2, 4)), rand(rng, (2,))))
    fcn = nn.to_fully_convolutional(model, (1, 8, 8))
    assert fcn[2].weight_shape == (2, 4, 1, 1)
    x = rand(rng, (3, 1, 8, 8))
    assert_close(fcn(x), model(x).reshape(3, 2, 1, 1))


def test_fully_convolutional_rejects_what_it_cannot_convert():
    w = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="no Flatten"):
        nn.to_fully_convolutional(nn.Sequential(nn.ReLU()), (1, 2, 2))
    with pytest.raises(ValueError, match="does not follow a Flatten"):
        nn.to_fully_convolutional(nn.Sequential(nn.Linear(w)), (4,))
    with pytest.raises(ValueError, match="cannot convert"):
        nn.to_fully_convolutional(nn.Sequential(nn.Flatten(), nn.Linear(w), nn.MaxPool2d(1)),
                                  (1, 2, 2))
    with pytest.raises(ValueError, match="two Flatten"):
        nn.to_fully_convolutional(nn.Sequential(nn.Flatten(), nn.Linear(w), nn.Flatten()),
                                  (1, 2, 2))
    with pytest.raises(TypeError, match="Sequential"):
        nn.to_fully_convolutional(nn.ReLU(), (1, 2, 2))


# -- parameter report ------------------------------------------------------------------

def test_summary_counts_parameters_flops_and_fc_share():
    rng = np.random.default_rng(10)
    model = small_classifier(rng)
    report = nn.summary(model, (2, 12, 10))
    conv_params = 4 * 2 * 9 + 4 + 5 * 4 * 6 + 5
    fc_params = 7 * 10 + 7 + 3 * 7
    assert report.params == conv_params + fc_params == model.params()
    assert report.fc_params == fc_params
    assert report.fc_share == pytest.approx(fc_params / (conv_params + fc_params))
    assert [r.output_shape for r in report.rows] == [
        (4, 10, 8), (4, 10, 8), (4, 5, 4), (5, 4, 2), (5, 4, 2), (5, 2, 1), (10,), (7,), (7,),
        (3,), (3,)]
    conv_flops = 2 * (4 * 10 * 8 * 18 + 5 * 4 * 2 * 24)
    assert report.flops == conv_flops + 2 * (7 * 10 + 3 * 7) == model.flops((2, 12, 10))
    text = str(report)
    assert "Linear(10\u21927)" in text and f"{report.params:,}" in text


def test_conv_layer_keeps_its_checks_per_input_shape_and_dtype():
    """nn.Conv2d keeps conv2d's validated parameters per input key and reuses
    them; a new shape, dtype, memory layout or setting is checked afresh."""
    from reference import conv2d as ref_conv
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    layer = nn.Conv2d(w, b, stride=2, padding=1)

    def check(x, **kw):
        want = ref_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                        stride=layer.stride, padding=layer.padding)
        assert_close(layer.forward(x, **kw), np.maximum(want, 0) if kw.get("relu") else want,
                     np.float32)

    x = rng.standard_normal((2, 4, 9, 11)).astype(np.float32)
    for _ in range(2):
        check(x)
    check(x[:1])                                          # another batch
    check(rng.standard_normal((1, 4, 16, 5)).astype(np.float32))   # another map
    check(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2))  # strides
    check(x, relu=True)
    for _ in range(2):                                    # failures are never kept
        with pytest.raises(ValueError, match="channels"):
            layer(x[:, :3])
        with pytest.raises(TypeError, match="float32"):
            layer(x.astype(np.float64))
    assert layer(x).shape == (2, 6, 5, 6)
    layer.stride, layer.padding = 1, 0                    # settings are part of the key
    assert layer(x).shape == (2, 6, 7, 9)
    check(x)
    layer.padding = [1, 1]                                # unhashable: checked every call
    check(x)
    layer.stride, layer.padding = 2, "same"               # torch refuses it; so do we
    with pytest.raises(ValueError, match="same"):
        layer(x)
    layer.padding = 1
    w2 = rng.standard_normal((6, 4, 1, 1)).astype(np.float32)
    layer._weight, w = w2, w2                             # new weights: a new PackedWeight
    check(x)


def test_conv_layer_validates_once_per_input_key(monkeypatch):
    from fastconv import _args
    calls = []
    real = _args.conv2d_args
    monkeypatch.setattr(_args, "conv2d_args", lambda *a: calls.append(a[0].shape) or real(*a))
    rng = np.random.default_rng(4)
    layer = nn.Conv2d(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), padding=1)
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    layer(x), layer(x), layer(x[..., ::-1])         # same shape and dtype: checked once
    assert calls == [(1, 2, 8, 8)]
    layer(x[:, :, :5])
    layer(np.zeros((2, 2, 8, 8), np.float32))
    assert calls == [(1, 2, 8, 8), (1, 2, 5, 8), (2, 2, 8, 8)]
    with pytest.raises(TypeError):
        layer(x.astype(np.float64))
    assert len(calls) == 4
