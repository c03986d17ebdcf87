"""Depthwise convolution in the C backend (groups == C) against the float64
reference (tests/reference.py), on every ISA's kernels.

NCHW runs the planar plane kernels: a 3x3 path that loads each padded input
row once for several output rows (stride_h 1 or 2), a path for any other
kernel, strided columns split into phases (stride_w 2 through the ISA's
gather, other strides element by element), and whole-vector stores that run
into the next row before it is written.  The properties draw widths and
heights around every vector and row-block edge, strides above the kernel,
dilations, asymmetric padding, channel multipliers, strided and permuted
inputs, several threads, and each epilogue (bias, ReLU, ReLU6, PReLU).
Integer data makes every result exact.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
import reference
from arrays import SENTINEL, ints, laid_out, mismatch, reals
from isas import c_isas, using_isa

ISAS = c_isas()


def want(x, w, b, stride, pads, dilation, groups, epilogue, slope=None, hi=None):
    top, bottom, left, right = pads
    y = reference.conv2d(x, w, b, stride, ((top, bottom), (left, right)), dilation, groups)
    if epilogue == "prelu":
        s = np.asarray(slope, np.float64)[None, :, None, None]
        return np.where(y < 0, y * s, y)
    if epilogue in ("relu", "relu6"):
        y = np.maximum(y, 0.0)
    if epilogue == "relu6":
        y = np.minimum(y, hi)
    return y


def run(x, w, b, stride, pads, dilation, groups, epilogue, slope=None, hi=None, out=None,
        layout="NCHW"):
    top, bottom, left, right = pads
    kw = {}
    if epilogue == "prelu":
        kw["negative_slope"] = slope
    elif epilogue in ("relu", "relu6"):
        kw["relu"] = True
        if epilogue == "relu6":
            kw["clip_max"] = hi
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    y = fastconv.conv2d(x, w, b, stride, ((top, bottom), (left, right)), dilation, groups,
                        algorithm="direct", backend="c", layout=layout, out=out, **kw)
    return y.transpose(0, 3, 1, 2) if layout == "NHWC" else y


@st.composite
def problems(draw):
    c = draw(st.integers(1, 5))
    mult = draw(st.sampled_from([1, 1, 1, 2, 3]))
    square3 = draw(st.booleans())  # the 3x3 path, else any kernel
    kh, kw = (3, 3) if square3 else (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dh = 1 if square3 and draw(st.booleans()) else draw(st.integers(1, 3))
    dw = draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 4)), draw(st.sampled_from([1, 2, 2, 3, 5]))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    # Output sizes around the vector widths (4 to 16 lanes) and the row blocks (4).
    oh = draw(st.integers(1, 11))
    ow = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 47, 64, 65]))
    h = max(sh * (oh - 1) + eh - pads[0] - pads[1], 1) + draw(st.integers(0, sh - 1))
    w = max(sw * (ow - 1) + ew - pads[2] - pads[3], 1) + draw(st.integers(0, sw - 1))
    n = draw(st.integers(1, 2))
    return dict(n=n, c=c, mult=mult, kh=kh, kw=kw, stride=(sh, sw), dilation=(dh, dw),
                pads=pads, h=h, w=w,
                epilogue=draw(st.sampled_from(["none", "bias", "relu", "relu6", "prelu"])),
                kind=draw(st.sampled_from(["contiguous", "contiguous", "strided", "permuted",
                                           "reversed"])),
                threads=draw(st.sampled_from([1, 1, 2])),
                seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("isa_name", ISAS)
@given(p=problems())
def test_depthwise_matches_reference_exactly(p, isa_name, dtype):
    rng = np.random.default_rng(p["seed"])
    c, k = p["c"], p["c"] * p["mult"]
    top, bottom, left, right = p["pads"]
    if reference.conv_out_size(p["h"], top, bottom, p["kh"], p["dilation"][0],
                               p["stride"][0]) is None or \
            reference.conv_out_size(p["w"], left, right, p["kw"], p["dilation"][1],
                                    p["stride"][1]) is None:
        return  # the kernel does not fit (a ValueError, tested elsewhere)
    x0 = ints(rng, (p["n"], c, p["h"], p["w"]), dtype)
    x = laid_out(x0, p["kind"], rng)
    w = ints(rng, (k, 1, p["kh"], p["kw"]), dtype)
    b = None if p["epilogue"] == "none" else ints(rng, k, dtype)
    slope = (ints(rng, k, dtype) / 2).astype(dtype)  # halves keep products exact
    ref = want(x0, w, b, p["stride"], p["pads"], p["dilation"], c, p["epilogue"], slope, 2.0)
    with using_isa(isa_name), fastconv.threads(p["threads"]):
        for layout in ("NCHW", "NHWC"):
            got = run(x, w, b, p["stride"], p["pads"], p["dilation"], c, p["epilogue"],
                      slope, 2.0, layout=layout)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, ref.astype(dtype),
                                          err_msg=f"{layout} {p}: {mismatch(got, ref.astype(dtype))}")


@pytest.mark.parametrize("isa_name", ISAS)
def test_whole_vector_stores_stay_in_the_output(isa_name):
    """The stores that run past a row end stop at the plane's end: an out=
    view inside a larger buffer keeps its surroundings."""
    rng = np.random.default_rng(3)
    for c, h, w, stride in [(3, 5, 7, 1), (2, 9, 17, 2), (4, 3, 3, 1), (1, 1, 1, 1),
                            (5, 6, 33, 2), (2, 12, 5, 1)]:
        x = ints(rng, (1, c, h, w), np.float32)
        wt = ints(rng, (c, 1, 3, 3), np.float32)
        ref = reference.conv2d(x, wt, None, stride, 1, 1, c)
        buf = np.full(ref.size + 64, SENTINEL, np.float32)
        out = buf[32:32 + ref.size].reshape(ref.shape)
        with using_isa(isa_name):
            fastconv.conv2d(x, wt, None, stride, 1, groups=c, backend="c", out=out)
        np.testing.assert_array_equal(out, ref)
        assert (buf[:32] == SENTINEL).all() and (buf[32 + ref.size:] == SENTINEL).all()


# MobileNet-V2's depthwise layers (C, H, stride), cut to a few channels.
MOBILENET = [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 2),
             (384, 14, 1), (576, 14, 2), (960, 7, 1)]


@pytest.mark.parametrize("c,h,stride", MOBILENET)
def test_mobilenet_layers_real_data(c, h, stride):
    """Real-valued data at MobileNet-V2's sizes (channels cut to keep it quick),
    bias and ReLU6 fused, on every ISA: within 1e-5 of the output's magnitude."""
    rng = np.random.default_rng(c + h)
    c = min(c, 24)
    x = reals(rng, (1, c, h, h), np.float32)
    w = reals(rng, (c, 1, 3, 3), np.float32)
    b = reals(rng, c, np.float32)
    ref = np.minimum(np.maximum(reference.conv2d(x, w, b, stride, 1, 1, c), 0), 0.5)
    for isa_name in ISAS:
        with using_isa(isa_name):
            got = fastconv.conv2d(x, w, b, stride, 1, groups=c, backend="c", relu=True,
                                  clip_max=0.5)
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max(), isa_name
