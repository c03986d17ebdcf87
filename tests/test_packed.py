"""Weights packed once (fastconv.PackedWeight, csrc/conv/packed.inc,
csrc/gemm/packed.inc): the packed path must give the unpacked path's
results bit for bit, on every ISA, and both must match the float64 oracle."""
import threading

import numpy as np
import pytest

import fastconv
from checks import DTYPES, DTYPES_F64_SLOW, assert_close, slow_except
from fastconv import nn
from fastconv.backends import c as cbackend
from fastconv.backends import reference

# (N, C, H, W, K, kh, kw, stride, padding, dilation, groups): direct tiles
# (wide, narrow, 2-row), depthwise (planar and channels-last, multiplier),
# groups, 1x1 (GEMM with W as A in NCHW, as B in NHWC), strided 1x1
# (im2col), full-size (FC), and K over several blocks.
CASES = [
    (2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1),
    (1, 16, 7, 7, 40, 3, 3, 1, 1, 1, 1),
    (2, 8, 12, 10, 70, 3, 3, 2, 1, 1, 1),
    (1, 5, 6, 17, 3, 2, 4, 1, (0, 2), (2, 1), 1),
    (2, 12, 8, 8, 24, 3, 3, 1, 1, 1, 4),
    (1, 6, 10, 9, 6, 3, 3, 1, 1, 1, 6),
    (2, 6, 10, 9, 12, 3, 3, 2, 1, 1, 6),
    (1, 4, 7, 7, 8, 5, 5, 1, 2, 2, 4),
    (1, 1, 6, 6, 7, 3, 3, 1, 0, 1, 1),
    (2, 40, 5, 6, 33, 1, 1, 1, 0, 1, 1),
    (3, 24, 4, 4, 20, 1, 1, 1, 0, 1, 2),
    (2, 16, 9, 9, 24, 1, 1, 2, 0, 1, 1),
    (3, 7, 5, 4, 19, 5, 4, 1, 0, 1, 1),
    (1, 600, 3, 3, 50, 3, 3, 1, 1, 1, 1),
    (20, 700, 1, 1, 45, 1, 1, 1, 0, 1, 1),
    (2, 1030, 3, 4, 20, 1, 1, 1, 0, 1, 1),   # K over several KC blocks, W as A and as B
    (1, 64, 30, 30, 96, 1, 1, 1, 0, 1, 1),   # big enough for both threads
]


def _arrays(case, dtype, layout, rng):
    n, c, h, w, k, kh, kw, s, pad, dil, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    wt = rng.standard_normal((k, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, wt, b, dict(stride=s, padding=pad, dilation=dil, groups=groups, layout=layout)


def _oracle(x, wt, b, kw, relu=False):
    p = fastconv._args.conv2d_args(x, wt, b, kw["stride"], kw["padding"], kw["dilation"],
                                   kw["groups"], kw["layout"])[3]
    y = np.empty(p.out_shape)
    reference.conv2d(x, wt, b, p, None, y, 0, relu)
    return y


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
# Quick tier: a wide direct tile, groups, strided depthwise with a multiplier,
# strided 1x1, full-size (FC) and K over several blocks.
@pytest.mark.parametrize("case", slow_except(CASES, (0, 4, 6, 11, 12, 15)),
                         ids=lambda c: "x".join(map(str, c[:7])))
@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col"])
def test_conv2d_packed_is_bit_identical(isa, case, dtype, layout, algorithm):
    rng = np.random.default_rng(len(str(case)))
    x, wt, b, kw = _arrays(case, dtype, layout, rng)
    pw = fastconv.PackedWeight(wt, b)
    for relu in (False, True):
        want = fastconv.conv2d(x, wt, b, algorithm=algorithm, backend="c", relu=relu, **kw)
        for _ in range(2):  # first call packs, the second reuses the pack
            got = fastconv.conv2d(x, pw, algorithm=algorithm, backend="c", relu=relu, **kw)
            np.testing.assert_array_equal(got, want)
        assert_close(got, _oracle(x, wt, b, kw, relu))
    plan = fastconv.lower.conv2d(x.shape, wt.shape, kw["stride"], kw["padding"],
                                 kw["dilation"], kw["groups"], layout, algorithm, dtype)
    made = {key[0] for key in pw._packs}
    assert made == {plan.algorithm}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 37, 13), (5, 37, 13), (64, 300, 70), (3, 1100, 600),
                                   (30, 5, 2), (16, 512, 1)])
def test_linear_packed_is_bit_identical(isa, dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(m + k + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    pw = fastconv.PackedWeight(w, b)
    want = fastconv.linear(x, w, b, backend="c", relu=True)
    for _ in range(2):
        np.testing.assert_array_equal(fastconv.linear(x, pw, backend="c", relu=True), want)
    assert bool(pw._packs) == (m > 1 and n > 1)  # a GEMV streams the weight unpacked
    np.testing.assert_array_equal(fastconv.linear(x[0], pw, backend="c"),
                                  fastconv.linear(x[0], w, b, backend="c"))
    assert_close(fastconv.linear(x, pw, backend="c"),
                 x.astype(np.float64) @ w.T.astype(np.float64) + b)


def test_packs_follow_the_isa():
    """A pack is made per ISA; switching ISA packs again (and still agrees)."""
    import isas
    rng = np.random.default_rng(0)
    x, wt, b, kw = _arrays(CASES[1], np.float32, "NCHW", rng)
    pw = fastconv.PackedWeight(wt, b)
    seen = set()
    for name in isas.c_isas():
        with isas.using_isa(name):
            got = fastconv.conv2d(x, pw, backend="c", **kw)
            np.testing.assert_array_equal(got, fastconv.conv2d(x, wt, b, backend="c", **kw))
        seen |= {key[-1] for key in pw._packs}
    assert seen == set(isas.c_isas())
    assert pw.nbytes >= wt.nbytes * len(seen)


def test_non_contiguous_weight():
    rng = np.random.default_rng(5)
    x, wt, b, kw = _arrays(CASES[1], np.float64, "NCHW", rng)
    wf = np.asfortranarray(wt)
    layer = nn.Conv2d(wf, b, padding=1)
    for _ in range(2):
        np.testing.assert_array_equal(layer(x), fastconv.conv2d(x, wt, b, padding=1))
    assert layer.packed() is layer.packed()
    lin = np.asfortranarray(rng.standard_normal((9, 13)))
    xl = rng.standard_normal((7, 13))
    np.testing.assert_array_equal(nn.Linear(lin)(xl), fastconv.linear(xl, lin))


def test_other_backends_read_the_weight(dtype=np.float64):
    rng = np.random.default_rng(1)
    x, wt, b, kw = _arrays(CASES[4], dtype, "NCHW", rng)
    pw = fastconv.PackedWeight(wt, b)
    for be in ("numpy", "numba"):
        np.testing.assert_array_equal(fastconv.conv2d(x, pw, backend=be, **kw),
                                      fastconv.conv2d(x, wt, b, backend=be, **kw))
    assert pw._packs == {}


def test_fc_equals_conv_bit_for_bit_when_packed():
    """nn.Linear and the same weights as a full-size nn.Conv2d, both packed."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 8, 5, 5)).astype(np.float32)
    w = rng.standard_normal((30, 8, 5, 5)).astype(np.float32)
    b = rng.standard_normal(30).astype(np.float32)
    fc, conv = nn.Linear(w.reshape(30, -1), b), nn.Conv2d(w, b)
    for _ in range(2):
        y_fc = fc(x.reshape(6, -1))
        y_conv = conv(x)
    np.testing.assert_array_equal(y_conv.reshape(6, 30), y_fc)
    np.testing.assert_array_equal(y_fc, fastconv.linear(x.reshape(6, -1), w.reshape(30, -1), b))


def test_layers_pack_once_and_repack_on_new_weights(monkeypatch):
    rng = np.random.default_rng(3)
    x, wt, b, kw = _arrays(CASES[0], np.float32, "NCHW", rng)
    layer = nn.Conv2d(wt, b, stride=kw["stride"], padding=kw["padding"])
    made = []
    real = cbackend.pack_conv
    monkeypatch.setattr(cbackend, "pack_conv", lambda *a: made.append(1) or real(*a))
    y1 = layer(x)
    y2 = layer(x)
    assert len(made) == 1
    np.testing.assert_array_equal(y1, y2)
    layer._weight = -wt   # a new weight array: packed again
    np.testing.assert_array_equal(layer(x), fastconv.conv2d(x, -wt, b, stride=1, padding=1))
    assert len(made) == 2
    with fastconv.config(backend="numpy"):
        assert_close(layer(x), _oracle(x, -wt, b, dict(kw, layout="NCHW")))


def test_concurrent_calls_share_one_pack():
    rng = np.random.default_rng(4)
    x, wt, b, kw = _arrays(CASES[2], np.float32, "NCHW", rng)
    want = fastconv.conv2d(x, wt, b, backend="c", **kw)
    pw = fastconv.PackedWeight(wt, b)
    errors = []

    def run():
        try:
            for _ in range(5):
                np.testing.assert_array_equal(fastconv.conv2d(x, pw, backend="c", **kw), want)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(pw._packs) == 1


def test_packed_weight_bad_input():
    w = np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="bias"):
        fastconv.PackedWeight(w, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="4-D .* or 2-D"):
        fastconv.PackedWeight(np.ones((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.PackedWeight(np.ones((2, 3), np.int64))
    pw = fastconv.PackedWeight(w, np.ones(4, np.float32))
    x = np.ones((1, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match="bias must be None"):
        fastconv.conv2d(x, pw, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="2-D weight"):
        fastconv.linear(np.ones((1, 27), np.float32), pw)
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv2d(x.astype(np.float64), pw)
    with pytest.raises(ValueError, match="groups"):
        fastconv.conv2d(x, pw, groups=2)


def test_c_rejects_a_pack_of_other_shapes():
    """The C entry points check the pack against the call (FC_EINVAL, not a wild read)."""
    w = np.ones((4, 3, 3, 3), np.float32)
    pk = cbackend.pack_conv(w, None, 1)
    pi = cbackend.pack_conv(w, None, 1, "im2col", "NHWC")
    x = np.ones((1, 3, 5, 5), np.float32)
    p = fastconv._args.conv2d_args(x, np.ones((5, 3, 3, 3), np.float32), None, 1, 0, 1, 1,
                                   "NCHW")[3]
    with pytest.raises(RuntimeError, match="internal error 2"):
        cbackend.conv2d(x, np.ones((5, 3, 3, 3), np.float32), None, p, "direct",
                        np.empty(p.out_shape, np.float32), 0, packed=pk)
    p4 = fastconv._args.conv2d_args(x, w, None, 1, 0, 1, 1, "NCHW")[3]
    with pytest.raises(RuntimeError, match="internal error 2"):  # packed for NHWC
        cbackend.conv2d(x, w, None, p4, "im2col", np.empty(p4.out_shape, np.float32), 1 << 20,
                        packed=pi)
    with pytest.raises(RuntimeError, match="internal error 2"):  # a direct pack
        cbackend.conv2d(x, w, None, p4, "im2col", np.empty(p4.out_shape, np.float32), 1 << 20,
                        packed=pk)
    a = np.ones((20, 30), np.float32)
    pb = cbackend.pack_gemm(a.T, "b")
    with pytest.raises(RuntimeError, match="internal error 2"):
        cbackend.gemm(np.ones((5, 20), np.float32), a, np.empty((5, 30), np.float32),
                      packed=pb)
    pd = cbackend.pack_gemm(a.T.astype(np.float64), "b")
    with pytest.raises(RuntimeError, match="internal error 2"):
        cbackend.gemm(np.ones((5, 30), np.float32), a.T, np.empty((5, 20), np.float32),
                      packed=pd)


def test_pickles_without_its_packs():
    # Layers ship to Dask workers: the packs and the lock stay behind, the copy packs again.
    import pickle
    rng = np.random.default_rng(7)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
    layer = fastconv.nn.Conv2d(w, np.ones(16, np.float32), padding=1)
    y = layer(x)                                  # makes the packs
    blob = pickle.dumps(layer)
    assert len(blob) < w.nbytes + 2048            # the weight once, no packs
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(copy(x), y)
