"""Property tests: conv2d on every backend, algorithm and C ISA against
torch.nn.functional.conv2d (float64), over the whole parameter space, at sizes
that reach the kernels' real tiles; linear and matmul against NumPy float64.

The strategies draw output channels past two full vectors of every ISA (>= 64:
2 x 32 fp32 lanes on AVX-512), widths past one register tile (14 pixels),
batch > 1, K = 1, huge strides, kernels that cover the whole input with groups
(a full-size grouped or depthwise conv), and now and then an input one pixel
too small, which torch and fastconv must both refuse.

Budget: 500 examples under the "ci" hypothesis profile (tests/conftest.py),
100 by default, whose seed is random each run and printed in
pytest's header; rerun a failure with --hypothesis-seed=N.  REGRESSIONS is the
fixed set of explicit cases that always runs.
"""
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastconv
import reference as ref
from arrays import close, ints, laid_out, mismatch
from isas import c_isas, using_isa

torch = pytest.importorskip("torch")

ALGORITHMS = ("auto", "direct", "im2col")
EXAMPLES = {"ci": 500, "explore": 3000, "sanitize": 20}.get(
    settings.get_current_profile_name(), 100)
# Numba compiles one specialisation per array type: keep the x layouts to two.
X_KINDS = {"c": ("contiguous", "strided", "permuted", "reversed", "unaligned"),
           "numba": ("contiguous", "strided"), "numpy": ("contiguous", "strided")}


def variants():
    """(backend, isa, algorithm) for every implementation."""
    out = [("c", isa, algo) for isa in c_isas() for algo in ALGORITHMS]
    out += [("numba", None, algo) for algo in ALGORITHMS]
    return out + [("numpy", None, "auto")]


def int_like(draw, v):
    return draw(st.sampled_from([int, np.int64]))(v)


def pair_arg(draw, a, b):
    if a == b and draw(st.booleans()):
        return int_like(draw, a)
    return draw(st.sampled_from([tuple, list]))((int_like(draw, a), int_like(draw, b)))


def channels():
    """Mostly few; sometimes past two full fp32 AVX-512 vectors."""
    return st.one_of(st.integers(1, 5), st.integers(1, 5), st.integers(60, 72))


@st.composite
def problems(draw):
    grouping = draw(st.sampled_from(["dense", "dense", "grouped", "depthwise", "full-size"]))
    if grouping == "dense":
        groups, cg, kg = 1, draw(st.integers(1, 4)), draw(channels())
    elif grouping == "grouped":
        groups, cg = draw(st.integers(2, 3)), draw(st.integers(1, 3))
        kg = draw(st.one_of(st.integers(1, 3), st.integers(32, 36)))
    elif grouping == "depthwise":
        groups, cg, kg = draw(st.one_of(st.integers(1, 6), st.integers(30, 40))), 1, \
            draw(st.integers(1, 2))
    else:  # the kernel covers the input: an FC layer when groups == 1, else not
        groups, cg = draw(st.integers(1, 6)), draw(st.integers(1, 2))
        kg = draw(st.one_of(st.integers(1, 3), st.integers(64, 66)))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    big = grouping != "full-size" and draw(st.integers(0, 4)) == 0
    dh, dw = (1, 1) if grouping == "full-size" else \
        (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    stride_values = st.one_of(st.integers(1, 3), st.integers(1, 3),
                              st.sampled_from([7, 100, 2**20, 2**40]))
    form = draw(st.sampled_from(["int", "pair", "nested", "same", "valid"]))
    sh, sw = (1, 1) if form == "same" else (draw(stride_values), draw(stride_values))
    if grouping == "full-size" or form in ("same", "valid"):
        pads, padding = (0, 0, 0, 0), "valid" if form != "int" else int_like(draw, 0)
        if form == "same":
            padding = "same" if grouping != "full-size" else 0
    elif form == "int":
        p = draw(st.integers(0, 3))
        pads, padding = (p,) * 4, int_like(draw, p)
    elif form == "pair":
        ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        pads, padding = (ph, ph, pw, pw), pair_arg(draw, ph, pw)
    else:
        pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
        padding = (pair_arg(draw, *pads[:2]), pair_arg(draw, *pads[2:]))
    if grouping == "full-size":
        h, w = kh, kw
    else:
        h = max(1, eh - pads[0] - pads[1]) + draw(st.integers(0, 4))
        w = max(1, ew - pads[2] - pads[3]) + \
            draw(st.one_of(st.integers(0, 4), st.integers(14, 30) if not big else st.just(0)))
        if not isinstance(padding, str) and draw(st.integers(0, 19)) == 0:  # one pixel too small: must be refused
            if draw(st.booleans()):
                h = eh - pads[0] - pads[1] - 1
            else:
                w = ew - pads[2] - pads[3] - 1
    if min(h, w) < 1:
        h, w = max(h, 1), max(w, 1)
    if big:  # many output channels: keep the rest small
        kg = max(kg, 64 // groups + 1)
    return dict(n=draw(st.integers(1, 3)), c=groups * cg, h=h, w=w, k=groups * kg,
                kh=kh, kw=kw, stride=pair_arg(draw, sh, sw), padding=padding,
                dilation=pair_arg(draw, dh, dw), groups=int_like(draw, groups),
                layout=draw(st.sampled_from(["NCHW", "NHWC"])),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                bias=draw(st.booleans()), kind=draw(st.integers(0, 99)),
                seed=draw(st.integers(0, 2**32 - 1)))


def check(prob):
    rng = np.random.default_rng(prob["seed"])
    dt = prob["dtype"]
    exact = dt == np.float32  # integer data: float32 must match exactly
    n, c, h, w, k = (prob[s] for s in "nchwk")
    make = (lambda s: ints(rng, s, dt)) if exact else (lambda s: rng.uniform(-1, 1, s).astype(dt))
    x_nchw = make((n, c, h, w))
    weight = make((k, c // int(prob["groups"]), prob["kh"], prob["kw"]))
    bias = make((k,)) if prob["bias"] else None
    args = dict(stride=prob["stride"], padding=prob["padding"], dilation=prob["dilation"],
                groups=prob["groups"])
    layout = prob["layout"]
    x = x_nchw if layout == "NCHW" else np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    try:
        want = ref.torch_conv(torch, x_nchw, weight, bias, **args)
    except RuntimeError:  # torch refuses the problem: so must fastconv, with a ValueError
        for backend, isa, algo in variants():
            with using_isa(isa), pytest.raises(ValueError):
                fastconv.conv2d(x, weight, bias, algorithm=algo, backend=backend,
                                layout=layout, **args)
        return
    if layout == "NHWC":
        want = want.transpose(0, 2, 3, 1)
    want = want.astype(dt)
    for backend, isa, algo in variants():
        kinds = X_KINDS[backend]
        xv = laid_out(x, kinds[prob["kind"] % len(kinds)], rng)
        with using_isa(isa):
            got = fastconv.conv2d(xv, weight, bias, algorithm=algo, backend=backend,
                                  layout=layout, **args)
        assert close(got, want, exact), \
            f"{backend}/{isa}/{algo}: {mismatch(got, want)}"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=EXAMPLES)
@given(problems())
def test_conv2d_against_torch(prob):
    # What the draws reach (pytest --hypothesis-show-statistics).
    event(f"K >= 64: {prob['k'] >= 64}")
    event(f"W >= 15: {prob['w'] >= 15}")
    event(f"kernel covers input, groups > 1: "
          f"{(prob['kh'], prob['kw']) == (prob['h'], prob['w']) and int(prob['groups']) > 1}")
    check(prob)


def case(n, c, h, w, k, kh, kw, stride=1, padding=0, dilation=1, groups=1,
         layout="NCHW", dtype=np.float32, bias=True, kind=1, seed=0):
    return dict(n=n, c=c, h=h, w=w, k=k, kh=kh, kw=kw, stride=stride, padding=padding,
                dilation=dilation, groups=groups, layout=layout, dtype=dtype, bias=bias,
                kind=kind, seed=seed)


# Explicit cases that always run, whatever hypothesis draws.
REGRESSIONS = {
    "GDConv 7x7 depthwise full-size": case(2, 64, 7, 7, 64, 7, 7, groups=64),
    "grouped full-size": case(2, 8, 3, 5, 8, 3, 5, groups=2, layout="NHWC"),
    "full-size FC": case(3, 3, 4, 6, 70, 4, 6, bias=False),
    "same even kernel": case(2, 3, 5, 17, 66, 2, 4, padding="same"),
    "same even kernel dilated NHWC": case(1, 2, 6, 9, 65, 4, 2, padding="same",
                                          dilation=(3, 2), layout="NHWC"),
    "pair padding": case(2, 2, 5, 19, 64, 3, 2, padding=(2, 0)),
    "nested padding": case(1, 3, 4, 20, 64, 3, 3, padding=((0, 2), (3, 1)), layout="NHWC"),
    "stride > kernel": case(2, 3, 9, 31, 64, 2, 2, stride=(3, 5), padding=1),
    "kernel covers input, padded, huge stride": case(2, 3, 4, 5, 66, 4, 5, stride=10**6,
                                                     padding=(1, 2)),
    "huge stride": case(2, 2, 6, 7, 33, 3, 3, stride=2**40, padding=(1, 2)),
    "K = 1": case(3, 4, 5, 29, 1, 3, 3, padding=1),
    "1x1 image": case(2, 5, 1, 1, 64, 3, 3, padding=1),
    "1x1 image pointwise": case(2, 5, 1, 1, 70, 1, 1, layout="NHWC"),
    "depthwise wide": case(2, 40, 4, 33, 40, 3, 3, padding=1, groups=40),
    "float64 tiles": case(2, 3, 4, 31, 40, 3, 3, padding=1, dtype=np.float64),
    "kernel wider than input": case(1, 2, 9, 4, 3, 3, 5),
    "kernel taller than padded input": case(1, 2, 3, 9, 3, 6, 2, padding=(1, 0)),
}


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_conv2d_regressions(name):
    check(REGRESSIONS[name])


# ---- linear and matmul against NumPy float64 --------------------------------

def gemm_dim():
    """Mostly small; sometimes past the register tiles (14 x 32 fp32 on AVX-512)."""
    return st.one_of(st.integers(1, 9), st.integers(10, 80))


@settings(max_examples=max(EXAMPLES // 5, 10))
@given(m=gemm_dim(), k=st.one_of(gemm_dim(), st.integers(250, 600)), n=gemm_dim(),
       dtype=st.sampled_from([np.float32, np.float64]), bias=st.booleans(),
       relu=st.booleans(), vector=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_matmul_against_numpy(m, k, n, dtype, bias, relu, vector, seed):
    rng = np.random.default_rng(seed)
    exact = dtype == np.float32
    make = (lambda s: ints(rng, s, dtype)) if exact else \
        (lambda s: rng.uniform(-1, 1, s).astype(dtype))
    a, b = make((m, k)), make((k, n))
    bvec = make((n,)) if bias else None
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want_mm = (a64 @ b64).astype(dtype)
    x = a[0] if vector else a
    want_lin = x.astype(np.float64) @ b64 + (0.0 if bvec is None else bvec.astype(np.float64))
    want_lin = (np.maximum(want_lin, 0.0) if relu else want_lin).astype(dtype)
    weight = np.ascontiguousarray(b.T)
    for backend, isa in [("c", i) for i in c_isas()] + [("numba", None), ("numpy", None)]:
        with using_isa(isa):
            got = fastconv.matmul(a, b, backend=backend)
            assert close(got, want_mm, exact), f"matmul {backend}/{isa}: {mismatch(got, want_mm)}"
            got = fastconv.linear(x, weight, bvec, backend=backend, relu=relu)
            assert close(got, want_lin, exact), f"linear {backend}/{isa}: {mismatch(got, want_lin)}"
