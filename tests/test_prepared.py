"""Prepared layer calls (fastconv.api.PreparedCall): nn.Conv2d and nn.Linear
fill their C arguments once per call key and later only set addresses.  Every
repeated call must give what the general path gives, bit for bit, on new data
each time, and the oracle's answer; inputs the replay cannot take (copies,
overlaps, other strides or settings) must still be right."""
import threading

import numpy as np
import pytest

import fastconv
from fastconv import api, nn
from checks import CONV_CASES, DTYPES_F64_SLOW, assert_close
from isas import c_isas, using_isa
import reference

EPILOGUES = {"none": {}, "relu": {"relu": True}, "prelu": {"negative_slope": 0.25},
             "relu6": {"relu": True, "clip_max": 0.5}}


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _prepared(layer):
    """The layer's prepared calls (None entries: keys the replay cannot take)."""
    return [c for c in (layer._calls[-1] if layer._calls else {}).values() if c is not None]


def _oracle(x, w, b, stride, padding, dilation, groups, relu=False, negative_slope=None,
            clip_max=None, residual=None):
    y = reference.conv2d(x, w, b, stride, padding, dilation, groups)
    if residual is not None:
        y = y + residual
    if negative_slope is not None:
        y = np.where(y < 0, negative_slope * y, y)
    if relu:
        y = np.maximum(y, 0)
    if clip_max is not None:
        y = np.minimum(y, clip_max)
    return y


def _close_to_oracle(y, x, w, b, stride, padding, dilation, groups, kw):
    """Within tolerance of the oracle, scaled by the output before its clamp
    (ReLU6 clamps a large sum, not its rounding)."""
    want = _oracle(x, w, b, stride, padding, dilation, groups, **kw)
    scale = np.abs(reference.conv2d(x, w, b, stride, padding, dilation, groups)).max(initial=1.0)
    err = np.abs(y.astype(np.float64) - want).max(initial=0.0)
    assert err <= (1e-5 if y.dtype == np.float32 else 1e-12) * scale, (err, scale)


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("epilogue", list(EPILOGUES))
@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c[:2]) for c in CONV_CASES])
def test_repeated_conv_calls_match_the_general_path(case, algorithm, epilogue, dtype):
    xs, ws, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    w, b = _rand(rng, ws, dtype), _rand(rng, ws[:1], dtype)
    layer = nn.Conv2d(w, b, stride, padding, dilation, groups, algorithm=algorithm)
    kw = EPILOGUES[epilogue]
    for _ in range(3):   # the first call prepares, the others replay: new data each time
        x = _rand(rng, xs, dtype)
        y = layer(x) if not kw else layer.forward(x, **kw)
        want = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                               algorithm=algorithm, **kw)
        np.testing.assert_array_equal(y, want)
        _close_to_oracle(y, x, w, b, stride, padding, dilation, groups, kw)
    if xs[0] > 0:
        assert len(_prepared(layer)) == 1


def test_winograd_layer_calls_are_prepared():
    rng = np.random.default_rng(2)
    w, b = _rand(rng, (24, 16, 3, 3), np.float32), _rand(rng, (24,), np.float32)
    layer = nn.Conv2d(w, b, padding=1, algorithm="winograd")
    for shape in [(1, 16, 20, 20), (2, 16, 9, 13), (1, 16, 20, 20)]:
        x = _rand(rng, shape, np.float32)
        y = layer.forward(x, relu=True)
        np.testing.assert_array_equal(
            y, fastconv.conv2d(x, w, b, padding=1, algorithm="winograd", relu=True))
        assert_close(y, _oracle(x, w, b, 1, 1, 1, 1, relu=True), np.float32)
    assert len(_prepared(layer)) == 2


def test_inputs_the_replay_cannot_take_still_get_the_right_answer():
    rng = np.random.default_rng(3)
    w, b = _rand(rng, (6, 4, 3, 3), np.float32), _rand(rng, (6,), np.float32)
    layer = nn.Conv2d(w, b, padding=1)
    base = _rand(rng, (2, 8, 9, 18), np.float32)
    misaligned = np.zeros(2 * 4 * 9 * 9 * 4 + 1, np.uint8)[1:].view(np.float32)
    misaligned = misaligned.reshape(2, 4, 9, 9)
    misaligned[...] = base[:, :4, :, :9]
    views = [base[:, ::2, :, ::2], base[:, 4:, ::-1, 9:], misaligned, base[:, :4, :, :9]]
    for _ in range(2):
        for x in views:
            want = reference.conv2d(x, w, b, 1, 1)
            assert_close(layer(x), want)
            assert_close(layer.forward(x, relu=True), np.maximum(want, 0))
    # Walkable views replay; the misaligned one (copied for C) never does.
    assert len(_prepared(layer)) == 2 * (len(views) - 1)


@pytest.mark.parametrize("shape", [(1, 12, 5, 7), (3, 12, 5, 7), (1, 12, 1, 1)])
def test_residual_and_out_on_a_repeated_pointwise_conv(shape):
    rng = np.random.default_rng(4)
    w, b = _rand(rng, (12, 12, 1, 1), np.float32), _rand(rng, (12,), np.float32)
    layer = nn.Conv2d(w, b)
    for _ in range(3):
        x = _rand(rng, shape, np.float32)
        skip = _rand(rng, shape, np.float32)
        kept = skip.copy()
        want = _oracle(x, w, b, 1, 0, 1, 1, relu=True, residual=skip)
        y = layer.forward(x, relu=True, residual=skip)
        assert_close(y, want)
        np.testing.assert_array_equal(skip, kept)            # the skip is only read
        out = np.full(shape, np.nan, np.float32)
        assert layer.forward(x, relu=True, residual=skip, out=out) is out
        np.testing.assert_array_equal(out, y)
        assert layer.forward(x, relu=True, residual=skip, out=skip) is skip  # in place
        np.testing.assert_array_equal(skip, y)
        bias_like = _rand(rng, (1, 12, 1, 1), np.float32)  # broadcast residual
        assert_close(layer.forward(x, residual=bias_like),
                     _oracle(x, w, b, 1, 0, 1, 1, residual=bias_like))
        want = _oracle(x, w, b, 1, 0, 1, 1)
        assert_close(layer.forward(x, out=x), want)   # out is the input
        assert_close(layer(x), _oracle(x, w, b, 1, 0, 1, 1))
    # ReLU with the skip, the broadcast skip, no skip (out = x left that key
    # open, and the call with a fresh output prepared it).
    assert len(_prepared(layer)) == 3


def test_bad_out_is_still_refused_after_the_call_is_prepared():
    rng = np.random.default_rng(5)
    layer = nn.Conv2d(_rand(rng, (4, 3, 3, 3), np.float32))
    x = _rand(rng, (1, 3, 8, 8), np.float32)
    layer(x), layer(x)
    with pytest.raises(ValueError, match="out has shape"):
        layer.forward(x, out=np.empty((1, 4, 5, 5), np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        layer.forward(x, out=np.empty((1, 4, 6, 6), np.float64))
    frozen = np.empty((1, 4, 6, 6), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        layer.forward(x, out=frozen)
    strided = np.zeros((1, 4, 6, 12), np.float32)[..., ::2]
    assert layer.forward(x, out=strided) is strided
    assert_close(strided, reference.conv2d(x, layer.weight, None))


def test_thread_count_and_isa_changes_prepare_again():
    rng = np.random.default_rng(6)
    w = _rand(rng, (40, 24, 3, 3), np.float32)
    layer = nn.Conv2d(w, padding=1)
    x = _rand(rng, (2, 24, 17, 15), np.float32)
    want = reference.conv2d(x, w, None, 1, 1)
    for isa in c_isas():
        with using_isa(isa):
            for threads in (1, 2, 3):
                with fastconv.config(num_threads=threads):
                    for _ in range(2):
                        assert_close(layer(x), want)
    assert len(_prepared(layer)) == 3 * len(c_isas())


def test_threads_share_a_prepared_layer():
    rng = np.random.default_rng(7)
    w, b = _rand(rng, (16, 8, 3, 3), np.float32), _rand(rng, (16,), np.float32)
    layer = nn.Conv2d(w, b, padding=1)
    lin = nn.Linear(_rand(rng, (10, 16 * 12 * 12), np.float32), _rand(rng, (10,), np.float32))
    xs = [_rand(rng, (1, 8, 12, 12), np.float32) for _ in range(6)]
    wants = [reference.conv2d(x, w, b, 1, 1) for x in xs]
    layer(xs[0])
    errors = []

    def work(i):
        try:
            for _ in range(20):
                y = layer(xs[i])
                assert_close(y, wants[i])
                lin(y.reshape(1, -1))
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
@pytest.mark.parametrize("epilogue", list(EPILOGUES))
@pytest.mark.parametrize("shape", [(7,), (1, 7), (5, 7), (40, 7)])
def test_repeated_linear_calls_match_the_general_path(shape, epilogue, dtype):
    rng = np.random.default_rng(8)
    w, b = _rand(rng, (9, 7), dtype), _rand(rng, (9,), dtype)
    layer = nn.Linear(w, b)
    kw = EPILOGUES[epilogue]
    for _ in range(3):
        x = _rand(rng, shape, dtype)
        y = layer.forward(x, **kw)
        np.testing.assert_array_equal(y, fastconv.linear(x, w, b, **kw))
        want = x.astype(np.float64) @ w.T.astype(np.float64) + b
        if "negative_slope" in kw:
            want = np.where(want < 0, kw["negative_slope"] * want, want)
        if kw.get("relu"):
            want = np.maximum(want, 0)
        if "clip_max" in kw:
            want = np.minimum(want, kw["clip_max"])
        assert_close(y, want)
    assert len(_prepared(layer)) == 1


def test_prepared_calls_stay_out_of_pickles_and_numba():
    import pickle
    rng = np.random.default_rng(9)
    w = _rand(rng, (4, 3, 3, 3), np.float32)
    layer = nn.Conv2d(w, padding=1)
    x = _rand(rng, (1, 3, 6, 6), np.float32)
    layer(x), layer(x)
    copy = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(copy(x), layer(x))
    with fastconv.config(backend="numba"):
        assert_close(layer(x), reference.conv2d(x, w, None, 1, 1))
    assert all(isinstance(c, api.PreparedCall) for c in _prepared(layer))
    assert len(_prepared(layer)) == 1   # the Numba call made none


def test_a_replayed_call_holds_its_workspace_until_the_kernel_returns(monkeypatch):
    """A workspace above c.SCRATCH_KEEP is a fresh array per call; the replay
    must hold it while C writes there (a dropped one is freed memory)."""
    import weakref
    from fastconv.backends import c
    made, alive_at_return = [], []
    real_workspace, real_check = c._workspace, c._check

    def workspace(nbytes):
        buf = real_workspace(nbytes).copy()   # a fresh array, as above SCRATCH_KEEP
        made.append(weakref.ref(buf))
        return buf

    def check(rc):
        if made:
            alive_at_return.append(made[-1]() is not None)
        return real_check(rc)
    rng = np.random.default_rng(10)
    w = _rand(rng, (16, 8, 3, 3), np.float32)
    for algorithm in ("im2col", "winograd"):
        layer = nn.Conv2d(w, padding=1, algorithm=algorithm)
        x = _rand(rng, (2, 8, 12, 12), np.float32)
        layer(x)                                   # prepares
        monkeypatch.setattr(c, "_workspace", workspace)
        monkeypatch.setattr(c, "_check", check)
        for _ in range(2):
            assert_close(layer(x), reference.conv2d(x, w, None, 1, 1), np.float32)
        monkeypatch.undo()
        assert alive_at_return and all(alive_at_return), (algorithm, alive_at_return)
        made.clear(), alive_at_return.clear()
