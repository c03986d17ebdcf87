"""Bad input raises TypeError/ValueError naming the argument, on every backend,
before any kernel runs."""
import numpy as np
import pytest

import fastconv

ALL = ["c", "numba", "numpy"]
f32 = lambda *s: np.zeros(s, np.float32)  # noqa: E731

X, W = f32(1, 4, 8, 8), f32(6, 4, 3, 3)

CONV_BAD = [
    # (kwargs overriding conv2d(X, W), exception, words the message must contain)
    (dict(x=np.zeros((1, 4, 8, 8), np.int32)), TypeError, ["x", "int32"]),
    (dict(x=np.zeros((1, 4, 8, 8), np.complex64)), TypeError, ["x", "complex64"]),
    (dict(x=np.zeros((1, 4, 8, 8), object)), TypeError, ["x", "object"]),
    (dict(x=np.zeros((1, 4, 8, 8), np.float16)), TypeError, ["x", "float16"]),
    (dict(weight=np.zeros((6, 4, 3, 3), np.float64)), TypeError, ["weight", "float64", "float32"]),
    (dict(bias=np.zeros(6, np.float64)), TypeError, ["bias", "float64"]),
    (dict(x=f32(4, 8, 8)), ValueError, ["x", "4-D", "(4, 8, 8)"]),
    (dict(weight=f32(6, 4, 3)), ValueError, ["weight", "4-D"]),
    (dict(weight=f32(6, 3, 3, 3)), ValueError, ["weight", "channels", "(1, 4, 8, 8)"]),
    (dict(groups=3), ValueError, ["groups=3", "C=4"]),
    (dict(weight=f32(5, 2, 3, 3), groups=2), ValueError, ["groups=2", "K=5"]),
    (dict(groups=0), ValueError, ["groups"]),
    (dict(padding=-1), ValueError, ["padding", ">= 0"]),
    (dict(padding=((1, -1), (0, 0))), ValueError, ["padding"]),
    (dict(padding=(1, 2, 3)), ValueError, ["padding"]),
    (dict(padding="full"), ValueError, ["padding", "'full'"]),
    (dict(padding="same", stride=2), ValueError, ["same", "stride"]),
    (dict(stride=0), ValueError, ["stride", ">= 1"]),
    (dict(stride=(1, 0)), ValueError, ["stride"]),
    (dict(stride=1.5), ValueError, ["stride"]),
    (dict(dilation=0), ValueError, ["dilation", ">= 1"]),
    (dict(weight=f32(6, 4, 9, 3)), ValueError, ["kernel", "larger", "padded input"]),
    (dict(dilation=5), ValueError, ["kernel", "larger"]),
    (dict(bias=f32(5)), ValueError, ["bias", "(6,)", "(5,)"]),
    (dict(bias=f32(6, 1)), ValueError, ["bias", "(6,)"]),
    (dict(layout="NWHC"), ValueError, ["layout", "NWHC"]),
    (dict(algorithm="fft"), ValueError, ["algorithm", "fft"]),
    (dict(out=f32(1, 6, 6, 5)), ValueError, ["out", "(1, 6, 6, 6)"]),
    (dict(out=np.zeros((1, 6, 6, 6))), TypeError, ["out", "float64"]),
    (dict(out=[0.0]), TypeError, ["out"]),
]


def conv_call(backend, **over):
    kw = dict(x=X, weight=W, bias=None, stride=1, padding=0, dilation=1, groups=1)
    kw.update(over)
    return fastconv.conv2d(kw.pop("x"), kw.pop("weight"), backend=backend, **kw)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("bad", CONV_BAD, ids=lambda b: ",".join(f"{k}" for k in b[0]))
def test_conv2d_rejects(backend, bad):
    over, exc, words = bad
    with pytest.raises(exc) as info:
        conv_call(backend, **over)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("backend", ALL)
def test_unknown_backend_and_readonly_out(backend):
    with pytest.raises(ValueError, match="backend.*'cuda'"):
        fastconv.conv2d(X, W, backend="cuda")
    out = f32(1, 6, 6, 6)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        conv_call(backend, out=out)


MM_BAD = [
    (lambda be: fastconv.matmul(f32(3, 4), f32(5, 2), backend=be), ValueError, ["(3, 4)", "(5, 2)"]),
    (lambda be: fastconv.matmul(f32(3), f32(3, 2), backend=be), ValueError, ["2-D"]),
    (lambda be: fastconv.matmul(f32(2, 3, 4), f32(4, 2), backend=be), ValueError, ["2-D"]),
    (lambda be: fastconv.matmul(f32(3, 4), np.zeros((4, 2)), backend=be), TypeError, ["b", "float64"]),
    (lambda be: fastconv.matmul(np.zeros((3, 4), int), f32(4, 2), backend=be), TypeError, ["a", "int"]),
    (lambda be: fastconv.matmul(f32(3, 4), f32(4, 2), backend=be, out=f32(2, 3)), ValueError, ["out", "(3, 2)"]),
    (lambda be: fastconv.linear(f32(3, 4), f32(2, 5), backend=be), ValueError, ["4 features", "5"]),
    (lambda be: fastconv.linear(f32(3, 4), f32(4), backend=be), ValueError, ["weight", "2-D"]),
    (lambda be: fastconv.linear(f32(2, 3, 4), f32(2, 4), backend=be), ValueError, ["x", "(2, 3, 4)"]),
    (lambda be: fastconv.linear(f32(3, 4), f32(2, 4), f32(3), backend=be), ValueError, ["bias", "(2,)"]),
    (lambda be: fastconv.linear(f32(3, 4), f32(2, 4), np.zeros(2), backend=be), TypeError, ["bias"]),
    (lambda be: fastconv.linear(np.zeros((3, 4), np.complex128), f32(2, 4), backend=be), TypeError, ["x"]),
]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("i", range(len(MM_BAD)))
def test_matmul_linear_reject(backend, i):
    call, exc, words = MM_BAD[i]
    with pytest.raises(exc) as info:
        call(backend)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_lists_and_readonly_inputs_are_accepted():
    a = [[1.0, 2.0], [3.0, 4.0]]
    np.testing.assert_array_equal(fastconv.matmul(a, a), np.array(a) @ np.array(a))
    ro = np.ones((2, 2), np.float32)
    ro.flags.writeable = False
    assert fastconv.matmul(ro, ro).dtype == np.float32
    big_endian = np.ones((2, 2), ">f4")
    np.testing.assert_array_equal(fastconv.matmul(big_endian, big_endian), np.full((2, 2), 2))
