"""The nn layers, models and shape helpers take input as conv2d does: array-likes
from any library NumPy can view, checked dtype, rank and channels, empty
batches, strict weight loading, and errors that name the argument at fault."""
import itertools

import numpy as np
import pytest

import fastconv
from fastconv import lower, models, nn
from fastconv.models import digits

rng = np.random.default_rng(20)


def rand(shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def huge(shape, dtype=np.float32):
    """A zero-byte array of any shape (stride 0)."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape,
                                           strides=(0,) * len(shape))


def max_pool_loop(x, k, s, p):
    """Max over each window's in-image pixels (torch's definition), no ceil_mode."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.empty((n, c, oh, ow), x.dtype)
    for i, j in itertools.product(range(oh), range(ow)):
        ys = range(max(i * s - p, 0), min(i * s - p + k, h))
        xs = range(max(j * s - p, 0), min(j * s - p + k, w))
        y[:, :, i, j] = x[:, :, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1].max(axis=(2, 3))
    return y


# -- wrong results -------------------------------------------------------------------

def test_prelu_slopes_must_match_the_channels():
    three = nn.PReLU(np.full(3, 0.25, np.float32))
    with pytest.raises(ValueError, match="3 slopes .* 1 channels"):
        three(rand((2, 1, 4, 4)))           # used to broadcast to 3 channels
    with pytest.raises(ValueError, match="3 slopes .* 4 channels"):
        three(rand((2, 4, 4, 4)))           # used to be NumPy's broadcast error
    with pytest.raises(ValueError, match="3 slopes .* 4 channels"):
        nn.Sequential(three).output_shape((4, 5, 5))
    with pytest.raises(ValueError, match="at least one"):
        nn.PReLU(np.zeros(0, np.float32))
    # One slope serves every channel (torch's nn.PReLU() default).
    x = rand((2, 5, 3, 3))
    assert np.array_equal(nn.PReLU([0.25])(x), np.where(x >= 0, x, np.float32(0.25) * x))
    x2 = rand((4, 3))                        # (N, C): channels are axis 1
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    assert np.array_equal(nn.PReLU(slope)(x2), np.where(x2 >= 0, x2, slope * x2))


@pytest.mark.parametrize("layer", [nn.AvgPool2d(2), nn.GlobalAvgPool2d()],
                         ids=["AvgPool2d", "GlobalAvgPool2d"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_average_pooling_refuses_integers(layer, dtype):
    # AvgPool2d used to return zeros and GlobalAvgPool2d to truncate 1.75 to 1.
    x = np.array([[[[1, 2], [2, 2]]]], dtype)
    with pytest.raises(TypeError, match=f"{type(layer).__name__}: x .*{np.dtype(dtype)}.*astype"):
        layer(x)
    assert layer(x.astype(np.float32)).ravel()[0] == np.float32(1.75)


def test_torch_refuses_or_truncates_integer_average_pooling():
    # Why fastconv refuses every integer dtype rather than follow torch.
    torch = pytest.importorskip("torch")
    x = torch.tensor([[[[1, 2], [2, 2]]]], dtype=torch.int32)
    for pool in (torch.nn.AvgPool2d(2), torch.nn.AdaptiveAvgPool2d(1)):
        with pytest.raises((RuntimeError, NotImplementedError)):
            pool(x)
    with pytest.raises(RuntimeError):
        torch.nn.AdaptiveAvgPool2d(1)(x.long())
    assert torch.nn.AvgPool2d(2)(x.long()).item() == 1      # 1.75, truncated


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_max_pooling_is_exact_on_integers(dtype):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, (2, 3, 6, 7), dtype=dtype, endpoint=True)
    for k, s, p in [(3, 1, 1), (2, 2, 0), (3, 2, 1), (4, 1, 2)]:
        y = nn.MaxPool2d(k, s, p)(x)        # (3, 1, 1) used to be an OverflowError
        assert y.dtype == x.dtype
        assert np.array_equal(y, max_pool_loop(x, k, s, p))
    assert np.array_equal(nn.ReLU()(x), np.where(x > 0, x, 0).astype(dtype))
    assert nn.ReLU()(x).dtype == x.dtype
    assert np.array_equal(nn.Flatten()(x), x.reshape(2, -1))


def test_integer_layers_follow_torch():
    torch = pytest.importorskip("torch")
    x = rng.integers(-100, 100, (2, 3, 6, 7), dtype=np.int32)
    tx = torch.from_numpy(x)
    assert np.array_equal(nn.MaxPool2d(3, 1, 1)(x), torch.nn.MaxPool2d(3, 1, 1)(tx).numpy())
    assert np.array_equal(nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x),
                          torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)(tx).numpy())
    assert np.array_equal(nn.ReLU()(x), torch.nn.ReLU()(tx).numpy())
    assert np.array_equal(nn.Flatten()(x), torch.nn.Flatten()(tx).numpy())


# -- layers validated like conv2d ------------------------------------------------------

LISTS = [  # (layer, per-sample shape)
    (nn.Conv2d(rand((4, 3, 3, 3)), rand((4,))), (3, 5, 5)),
    (nn.Linear(rand((4, 6)), None), (6,)),
    (nn.ReLU(), (3, 4, 4)), (nn.PReLU(rand((3,))), (3, 4, 4)),
    (nn.MaxPool2d(2), (3, 4, 4)), (nn.AvgPool2d(2), (3, 4, 4)),
    (nn.GlobalAvgPool2d(), (3, 4, 4)), (nn.Flatten(), (3, 4, 4)), (nn.Softmax(), (10,)),
    (nn.Sequential(nn.Flatten(), nn.Softmax(), input_shape=(2, 3)), (2, 3)),
]


@pytest.mark.parametrize("layer,shape", LISTS, ids=[type(layer).__name__ for layer, _ in LISTS])
def test_layers_take_lists_and_empty_batches(layer, shape):
    x = rand((2,) + shape)
    want = layer(x)
    got = layer(x.tolist())     # lists take a weighted layer's dtype, else float64
    assert got.dtype == (want.dtype if isinstance(layer, (nn.Conv2d, nn.Linear)) else np.float64)
    assert np.array_equal(got, layer(x.astype(got.dtype)))
    empty = layer(np.zeros((0,) + shape, np.float32))
    assert empty.shape == (0,) + want.shape[1:] and empty.dtype == np.float32


def test_a_model_takes_a_list_in_its_weights_dtype():
    lenet, x = models.lenet5(), digits.heldout()[0][:2]
    got = lenet(x.tolist())
    assert got.dtype == np.float32 and np.array_equal(got, lenet(x))


def test_models_run_on_an_empty_batch():
    assert models.lenet5()(np.zeros((0, 1, 28, 28), np.float32)).shape == (0, 10)
    prob, box = models.pnet()(np.zeros((0, 3, 12, 12), np.float32))
    assert prob.shape == (0, 2, 1, 1) and box.shape == (0, 4, 1, 1)
    fcn = nn.to_fully_convolutional(models.lenet5(), (1, 28, 28))
    assert fcn(np.zeros((0, 1, 40, 40), np.float32)).shape == (0, 10, 4, 4)


BAD = [  # (layer, input, exception, words in the message)
    (nn.MaxPool2d(2), np.zeros((3, 4, 4), np.float32), ValueError, ["MaxPool2d", "(N, C, H, W)"]),
    (nn.MaxPool2d(2), np.zeros((1, 0, 4, 4), np.float32), ValueError, ["MaxPool2d", "channel"]),
    (nn.MaxPool2d(2), np.zeros((1, 1, 4, 4), np.float16), TypeError, ["MaxPool2d", "float16"]),
    (nn.MaxPool2d(2), np.zeros((1, 1, 4, 4), bool), TypeError, ["MaxPool2d", "bool"]),
    (nn.AvgPool2d(2), np.zeros((1, 1, 4), np.float32), ValueError, ["AvgPool2d", "(N, C, H, W)"]),
    (nn.GlobalAvgPool2d(), np.zeros((1, 4), np.float32), ValueError, ["GlobalAvgPool2d"]),
    (nn.ReLU(), np.zeros(3, np.complex64), TypeError, ["ReLU", "complex64"]),
    (nn.ReLU(), [["a"]], TypeError, ["ReLU", "x"]),
    (nn.PReLU([0.1]), np.zeros(3, np.float32), ValueError, ["PReLU", "(N, C, ...)"]),
    (nn.PReLU([0.1]), np.zeros((1, 3), np.int32), TypeError, ["PReLU", "int32"]),
    (nn.Softmax(), np.zeros(3, np.float32), ValueError, ["Softmax", "(N, C, ...)"]),
    (nn.Softmax(), np.zeros((1, 3), np.int64), TypeError, ["Softmax", "int64", "astype"]),
    (nn.Flatten(), np.zeros(3, np.float32), ValueError, ["Flatten", "(N, ...)"]),
    (nn.Conv2d(np.zeros((2, 3, 1, 1), np.float32)), np.zeros((1, 4, 2, 2), np.float32),
     ValueError, ["weight", "C=4"]),
    (nn.Conv2d(np.zeros((2, 3, 1, 1), np.float32)), np.zeros((1, 3, 2), np.float32),
     ValueError, ["x", "4-D"]),
    (nn.Linear(np.zeros((2, 3), np.float32)), np.zeros((1, 4), np.float32),
     ValueError, ["4 features", "3"]),
    (nn.Linear(np.zeros((2, 3), np.float32)), np.zeros((1, 3), np.int32),
     TypeError, ["x", "int32"]),
    (nn.Sequential(nn.Conv2d(np.zeros((2, 1, 3, 3), np.float32)), input_shape=(1, 8, 8)),
     np.zeros((1, 1, 9, 9), np.float32), ValueError, ["(1, 8, 8)", "(1, 1, 9, 9)"]),
    (nn.Sequential(nn.ReLU(), input_shape=(3,)), np.zeros(3, np.float32),
     ValueError, ["(3,)"]),
]


@pytest.mark.parametrize("layer,x,exc,words", BAD,
                         ids=[f"{type(b[0]).__name__}-{i}" for i, b in enumerate(BAD)])
def test_layers_refuse_bad_input_naming_it(layer, x, exc, words):
    with pytest.raises(exc) as info:
        layer(x)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_layer_parameters_are_checked_at_construction():
    with pytest.raises(ValueError, match="ceil_mode"):
        nn.MaxPool2d(2, ceil_mode="yes")
    with pytest.raises(TypeError, match="slope .*int64"):
        nn.PReLU(np.ones(3, np.int64))
    with pytest.raises(ValueError, match="input_shape .*negative"):
        nn.Sequential(nn.ReLU(), input_shape=(1, -2, 2))


def test_average_pooling_ceil_mode_matches_torch():
    torch = pytest.importorskip("torch")
    x = rand((2, 3, 7, 6))
    for k, s, p in [(2, 2, 0), (3, 2, 1), ((3, 2), (2, 3), (1, 1)), (3, 3, 0)]:
        want = torch.nn.AvgPool2d(k, s, p, ceil_mode=True)(torch.from_numpy(x)).numpy()
        got = nn.AvgPool2d(k, s, p, ceil_mode=True)(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# -- inputs from other libraries -------------------------------------------------------

class DLPackOnly:
    """An array exposed only through the DLPack protocol."""

    def __init__(self, arr):
        self._arr = arr

    def __dlpack__(self, **kwargs):
        return self._arr.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._arr.__dlpack_device__()


class ArrayOnly:
    def __init__(self, arr):
        self._arr = arr

    def __array__(self, dtype=None, copy=None):
        return self._arr


def test_dlpack_and_array_protocol_inputs_are_viewed():
    x, w = rand((1, 3, 6, 6)), rand((4, 3, 3, 3))
    want = fastconv.conv2d(x, w)
    for wrap in (DLPackOnly, ArrayOnly, memoryview):
        assert np.array_equal(fastconv.conv2d(wrap(x), wrap(w)), want)
        assert np.array_equal(nn.MaxPool2d(2)(wrap(x)), nn.MaxPool2d(2)(x))
    assert np.array_equal(fastconv.matmul(DLPackOnly(w[:, :, 0, 0]), w[:, :, 0, 0].T),
                          fastconv.matmul(w[:, :, 0, 0], w[:, :, 0, 0].T))


def test_torch_tensors_are_viewed_and_grad_tensors_refused():
    torch = pytest.importorskip("torch")
    x, w = torch.randn(1, 3, 6, 6), torch.randn(4, 3, 3, 3)
    want = torch.nn.functional.conv2d(x, w).numpy()
    np.testing.assert_allclose(fastconv.conv2d(x, w), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match=r"x is a tensor that requires grad.*x\.detach\(\)"):
        fastconv.conv2d(x.requires_grad_(), w)
    param = torch.nn.Parameter(w)
    with pytest.raises(TypeError, match=r"weight .*requires grad.*weight\.detach\(\)"):
        nn.Conv2d(param)
    with pytest.raises(TypeError, match=r"weight .*requires grad.*detach"):
        fastconv.linear(np.zeros((1, 3), np.float32), torch.nn.Parameter(torch.ones(2, 3)))
    with pytest.raises(TypeError, match="x .*requires grad"):
        nn.ReLU()(torch.ones(1, 2, requires_grad=True))
    assert np.array_equal(nn.Conv2d(param.detach())(x.detach()), fastconv.conv2d(x.detach(), w))


def test_masked_arrays_are_refused():
    x = np.ma.masked_less(rand((1, 2, 4, 4)), 0)
    with pytest.raises(TypeError, match=r"x is a masked array.*x\.filled"):
        fastconv.conv2d(x, rand((1, 2, 1, 1)))
    with pytest.raises(TypeError, match="masked array"):
        nn.MaxPool2d(2)(x)
    with pytest.raises(TypeError, match=r"b is a masked array"):
        fastconv.matmul(np.ones((2, 2)), np.ma.masked_array(np.ones((2, 2))))
    assert nn.MaxPool2d(2)(x.filled(0)).shape == (1, 2, 2, 2)


# -- errors that name the right argument -----------------------------------------------

def test_shape_helpers_blame_the_argument_at_fault():
    with pytest.raises(TypeError) as info:
        lower.conv2d((1, 3, 8, 8), (4, 3, 3, 3), dtype=np.int32)
    assert str(info.value).startswith("dtype must be float32 or float64; got int32")
    with pytest.raises(TypeError) as info:
        fastconv.conv_matrix(np.ones((1, 1, 3, 3), np.float16), (1, 5, 5))
    assert str(info.value).startswith("weight") and "float16" in str(info.value)
    with pytest.raises(ValueError, match="x_shape has a negative dimension"):
        lower.conv2d((1, 3, -8, 8), (4, 3, 3, 3))
    with pytest.raises(ValueError, match="x_shape has a negative dimension"):
        lower.linear((-1, 3), (4, 3))


def test_summary_says_which_input_shape_it_expects():
    lenet = models.lenet5()
    with pytest.raises(ValueError, match=r"input_shape \(1, 28, 28\).*got input_shape \(28, 28\)"):
        nn.summary(lenet, (28, 28))
    bare = nn.Sequential(*lenet.layers)      # no declared input_shape: the layer says it
    with pytest.raises(ValueError, match=r"Conv2d takes a per-sample shape \(C, H, W\)"):
        nn.summary(bare, (28, 28))
    with pytest.raises(ValueError, match=r"MaxPool2d takes a per-sample shape \(C, H, W\)"):
        nn.MaxPool2d(2).output_shape((1, 28, 28, 1))
    with pytest.raises(ValueError, match="input_shape has a negative dimension"):
        nn.summary(bare, (1, -28, 28))
    assert nn.summary(lenet, (1, 28, 28)).params == 44426
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*got input_shape \(1, 32, 32\)"):
        nn.to_fully_convolutional(lenet, (1, 32, 32))


def test_outputs_beyond_2_63_bytes_get_a_clear_message():
    with pytest.raises(ValueError, match=r"matmul output .*2\*\*63"):
        fastconv.matmul(huge((2**40, 1)), huge((1, 2**40)))
    with pytest.raises(ValueError, match=r"linear output .*2\*\*63"):
        fastconv.linear(huge((2**40, 1)), huge((2**40, 1)))
    with pytest.raises(ValueError, match=r"conv2d output .*2\*\*63"):
        fastconv.conv2d(huge((1, 1, 2**12, 2**12)), huge((2**40, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"conv2d output .*2\*\*63"):
        lower.conv2d((1, 1, 2**12, 2**12), (2**40, 1, 1, 1))


# -- strict weight loading ---------------------------------------------------------------

def test_weight_loading_is_strict_and_lists_every_problem(tmp_path):
    state = models.state_dict(models.lenet5(weights=None, seed=1).layers)
    bad = dict(state)
    del bad["9.bias"]
    bad["13.weight"] = np.zeros(3, np.float32)         # no layer 13
    bad["2.bias"] = np.zeros(6, np.float32)            # layer 2 (a pool) has no bias
    with pytest.raises(ValueError) as info:
        models.lenet5(weights=bad)
    msg = str(info.value)
    assert "missing: 9.bias" in msg and "unexpected: 13.weight, 2.bias" in msg
    assert "strict=False" in msg
    bad["7.weight"] = np.zeros((120, 255), np.float32)
    with pytest.raises(ValueError, match=r"7\.weight has shape \(120, 255\), expected \(120, 2"):
        models.lenet5(weights=bad)
    # A layer without a bias given one: unexpected, not silently dropped.
    fc = nn.Linear(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"unexpected: 0\.bias"):
        models.load_weights([fc], {"0.weight": np.ones((2, 3)), "0.bias": np.ones(2)})
    assert np.array_equal(fc.weight, np.zeros((2, 3)))    # nothing replaced


def test_non_strict_loading_loads_what_matches():
    model = models.lenet5(weights=None)
    state = models.state_dict(models.lenet5(weights=None, seed=1).layers)
    del state["11.bias"]
    state["20.weight"] = np.ones(2, np.float32)
    state["7.running_mean"] = np.zeros(120, np.int64)   # skipped unread, whatever its dtype
    missing, unexpected = models.load_weights(model.layers, state, strict=False)
    assert missing == ["11.bias"] and unexpected == ["20.weight", "7.running_mean"]
    assert np.array_equal(model[7].weight, state["7.weight"])
    assert not np.array_equal(model[11].bias, models.lenet5(weights=None, seed=1)[11].bias)
    state["0.weight"] = np.zeros((6, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="0.weight has shape"):   # shapes: strict either way
        models.load_weights(model.layers, state, strict=False)
    with pytest.raises(ValueError, match="strict"):
        models.load_weights(model.layers, state, strict="no")


def test_loaded_files_are_checked(tmp_path):
    layers = models.lenet5(weights=None).layers
    not_npz = tmp_path / "w.npz"
    not_npz.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="cannot read"):
        models.load_weights(layers, not_npz)
    one = tmp_path / "one.npy"
    np.save(one, np.zeros(3))
    with pytest.raises(ValueError, match="one array"):
        models.load_weights(layers, one)
    with pytest.raises(ValueError, match="cannot read"):
        models.load_weights(layers, tmp_path / "absent.npz")
    with pytest.raises(TypeError, match="mapping"):
        models.load_weights(layers, 42)
    state = models.state_dict(layers)
    state["0.weight"] = np.zeros((6, 1, 5, 5), np.int32)
    with pytest.raises(TypeError, match="0.weight must be float32"):
        models.load_weights(layers, state)
    with pytest.raises(ValueError, match="metadata"):
        models.save_weights(layers, tmp_path / "m.npz", **{"a.b": 1})


def test_a_torch_state_dict_loads_into_lenet():
    torch = pytest.importorskip("torch")
    t = torch.nn
    torch.manual_seed(0)
    net = t.Sequential(t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2), t.Conv2d(6, 16, 5), t.ReLU(),
                       t.MaxPool2d(2), t.Flatten(), t.Linear(256, 120), t.ReLU(),
                       t.Linear(120, 84), t.ReLU(), t.Linear(84, 10), t.Softmax(dim=1)).eval()
    model = models.lenet5(weights=None)
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    assert models.load_weights(model.layers, state) == ([], [])
    x = digits.heldout()[0][:8]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match="requires grad"):   # parameters, not detached
        models.load_weights(model.layers, net.state_dict(keep_vars=True))
