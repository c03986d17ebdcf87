"""Property tests: every backend x algorithm (x ISA, for C) against the oracle
over the whole conv2d / matmul / linear parameter space.

Integer-valued data must match the oracle exactly; random real data within
1e-5 (float32) or 1e-12 (float64) of the output's magnitude.  Each example
draws one problem and runs it through every variant, so the oracle runs once
per example.  Sizes stay small: Numba compiles once per argument type, so the
strategies vary shapes, strides and parameters, while the set of dtypes and
memory layouts (hence of compiled signatures) stays fixed.

Budget and reproduction: see tests/conftest.py.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from arrays import KINDS, OUT_KINDS, close, data, laid_out, mismatch, out_buffer, \
    untouched_outside
from isas import c_isas, using_isa

BACKENDS = ["c", "numba"]
ALGORITHMS = ("auto", "direct", "im2col")


def isas(backend):
    return c_isas() if backend == "c" else [None]


# Numba compiles one specialisation per argument type (layout C/F/A, read-only,
# aligned), ~2 s each, so the hypothesis tests give Numba only the kinds that
# map to a few types; test_numba_other_layouts covers the rest once each.
NUMBA_KINDS = ("contiguous", "reversed", "strided", "byteswapped")


def kinds(backend, operand="x"):
    if backend == "c":
        return KINDS
    return ("contiguous", "byteswapped") if operand == "weight" else NUMBA_KINDS


# ---- strategies -------------------------------------------------------------

dtypes = st.sampled_from([np.float32, np.float64])
small = st.integers(0, 3)


def int_like(value, draw):
    """value as a Python int or a NumPy integer: both are accepted."""
    return draw(st.sampled_from([int, np.int64, np.int32]))(value)


def pair_arg(draw, a, b):
    """(a, b) written as an int when equal (sometimes), else as a tuple or list."""
    if a == b and draw(st.booleans()):
        return int_like(a, draw)
    return draw(st.sampled_from([tuple, list]))((int_like(a, draw), int_like(b, draw)))


@st.composite
def conv_problems(draw, backend):
    grouping = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if grouping == "dense":
        groups, cg, kg = 1, draw(st.integers(1, 5)), draw(st.integers(0, 5))
    elif grouping == "grouped":
        groups, cg, kg = draw(st.integers(2, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    else:  # one input channel per group, channel multiplier kg
        groups, cg, kg = draw(st.integers(1, 6)), 1, draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    form = draw(st.sampled_from(["int", "pair", "pairs", "same", "valid"]))
    if form == "same":
        sh = sw = 1
        top, left = (eh - 1) // 2, (ew - 1) // 2
        pads = (top, eh - 1 - top, left, ew - 1 - left)
        padding = "same"
    elif form == "valid":
        sh, sw = draw(small.map(lambda v: v + 1)), draw(small.map(lambda v: v + 1))
        pads, padding = (0, 0, 0, 0), "valid"
    else:
        sh, sw = draw(small.map(lambda v: v + 1)), draw(small.map(lambda v: v + 1))
        if form == "int":
            p = draw(small)
            pads, padding = (p, p, p, p), int_like(p, draw)
        elif form == "pair":
            ph, pw = draw(small), draw(small)
            pads, padding = (ph, ph, pw, pw), pair_arg(draw, ph, pw)
        else:
            pads = tuple(draw(small) for _ in range(4))
            padding = (pair_arg(draw, *pads[:2]), pair_arg(draw, *pads[2:]))
    # Smallest input the kernel fits in after padding, up to a few pixels more.
    h = max(0, eh - pads[0] - pads[1]) + draw(st.integers(0, 5))
    w = max(0, ew - pads[2] - pads[3]) + draw(st.integers(0, 5))
    if form == "same":
        h, w = max(h, 1), max(w, 1)
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    return dict(
        n=draw(st.integers(0, 3)), c=groups * cg, h=h, w=w, k=groups * kg, kh=kh, kw=kw,
        stride=pair_arg(draw, sh, sw), padding=padding, dilation=pair_arg(draw, dh, dw),
        groups=int_like(groups, draw), layout=layout, dtype=draw(dtypes),
        bias=draw(st.booleans()), relu=draw(st.booleans()),
        x_kind=draw(st.sampled_from(kinds(backend))),
        w_kind=draw(st.sampled_from(kinds(backend, "weight"))),
        out_kind=draw(st.sampled_from((None,) + OUT_KINDS)),
        exact=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def gemm_dim():
    # Mostly tiny; sometimes large enough to cross packing and blocking edges.
    return st.one_of(st.integers(0, 17), st.integers(18, 70))


@st.composite
def gemm_problems(draw, backend, linear=False):
    m, n = draw(gemm_dim()), draw(gemm_dim())
    k = draw(st.one_of(st.integers(0, 17), st.integers(18, 70), st.integers(250, 600)))
    prob = dict(m=m, n=n, k=k, dtype=draw(dtypes),
                a_kind=draw(st.sampled_from(kinds(backend))),
                b_kind=draw(st.sampled_from(kinds(backend))),
                out_kind=draw(st.sampled_from((None, "alias") + OUT_KINDS)),
                exact=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))
    if linear:
        prob.update(vector=draw(st.booleans()), bias=draw(st.booleans()),
                    relu=draw(st.booleans()))
    return prob


# ---- checks -----------------------------------------------------------------

def snapshot(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, arrays):
    for b, a in zip(before, arrays):
        if a is not None:
            assert np.array_equal(b, a, equal_nan=True), "an input was modified"


def run_variant(call, want, exact, out_kind, shape, dtype, rng, label, alias_source=None):
    """Call `call(out)` with a fresh out= of `out_kind` and check it."""
    if out_kind == "alias":
        out = alias_source()
        got = call(out)
        assert got is out, f"{label}: out= not returned"
    elif out_kind is not None:
        out, base = out_buffer(shape, dtype, out_kind, rng)
        got = call(out)
        assert got is out, f"{label}: out= not returned"
        assert untouched_outside(out, base), f"{label}: wrote outside out="
    else:
        got = call(None)
    assert close(got, want, exact), f"{label}: {mismatch(got, want)}"


@pytest.mark.parametrize("backend", BACKENDS)
@given(st.data())
def test_conv2d(backend, draw):
    prob = draw.draw(conv_problems(backend), label="problem")
    rng = np.random.default_rng(prob["seed"])
    dt, exact = prob["dtype"], prob["exact"]
    nchw = (prob["n"], prob["c"], prob["h"], prob["w"])
    xshape = nchw if prob["layout"] == "NCHW" else (nchw[0], nchw[2], nchw[3], nchw[1])
    x = laid_out(data(rng, xshape, dt, exact), prob["x_kind"], rng)
    wshape = (prob["k"], prob["c"] // prob["groups"], prob["kh"], prob["kw"])
    weight = laid_out(data(rng, wshape, dt, exact), prob["w_kind"], rng)
    bias = data(rng, (prob["k"],), dt, exact) if prob["bias"] else None
    kw = dict(stride=prob["stride"], padding=prob["padding"], dilation=prob["dilation"],
              groups=prob["groups"], layout=prob["layout"], relu=prob["relu"])
    before = snapshot(x, weight, bias)
    want = fastconv.conv2d(x, weight, bias, backend="numpy", **kw)
    for name in isas(backend):
        for algo in ALGORITHMS:
            with using_isa(name):
                run_variant(
                    lambda out: fastconv.conv2d(x, weight, bias, algorithm=algo,
                                                backend=backend, out=out, **kw),
                    want, exact, prob["out_kind"], want.shape, want.dtype, rng,
                    f"conv2d {backend}/{name}/{algo}")
    assert_unchanged(before, (x, weight, bias))


@pytest.mark.parametrize("backend", BACKENDS)
@given(st.data())
def test_matmul(backend, draw):
    prob = draw.draw(gemm_problems(backend), label="problem")
    rng = np.random.default_rng(prob["seed"])
    dt, exact, (m, n, k) = prob["dtype"], prob["exact"], (prob["m"], prob["n"], prob["k"])
    a = laid_out(data(rng, (m, k), dt, exact), prob["a_kind"], rng)
    b = laid_out(data(rng, (k, n), dt, exact), prob["b_kind"], rng)
    before = snapshot(a, b)
    want = fastconv.matmul(a, b, backend="numpy")
    out_kind = prob["out_kind"]
    if out_kind == "alias" and k != n:
        out_kind = None
    # out= is (a native-order copy of) a itself: the overlap must not matter.
    # A byte-swapped out= is refused by design, so the copy takes want's dtype.
    alias = out_kind == "alias"
    for name in isas(backend):
        with using_isa(name):
            run_variant(
                lambda out: fastconv.matmul(out if alias else a, b, backend=backend, out=out),
                want, exact, out_kind, (m, n), want.dtype, rng,
                f"matmul {backend}/{name}",
                alias_source=lambda: np.array(a, dtype=want.dtype))
    assert_unchanged(before, (a, b))


@pytest.mark.parametrize("backend", BACKENDS)
@given(st.data())
def test_linear(backend, draw):
    prob = draw.draw(gemm_problems(backend, linear=True), label="problem")
    rng = np.random.default_rng(prob["seed"])
    dt, exact, (m, n, k) = prob["dtype"], prob["exact"], (prob["m"], prob["n"], prob["k"])
    xshape = (k,) if prob["vector"] else (m, k)
    x = laid_out(data(rng, xshape, dt, exact), prob["a_kind"], rng)
    weight = laid_out(data(rng, (n, k), dt, exact), prob["b_kind"], rng)
    bias = data(rng, (n,), dt, exact) if prob["bias"] else None
    before = snapshot(x, weight, bias)
    want = fastconv.linear(x, weight, bias, backend="numpy", relu=prob["relu"])
    out_kind = None if prob["out_kind"] == "alias" else prob["out_kind"]
    for name in isas(backend):
        with using_isa(name):
            run_variant(
                lambda out: fastconv.linear(x, weight, bias, backend=backend, out=out,
                                            relu=prob["relu"]),
                want, exact, out_kind, want.shape, want.dtype, rng,
                f"linear {backend}/{name}")
    assert_unchanged(before, (x, weight, bias))


@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(NUMBA_KINDS)))
def test_numba_other_layouts(kind):
    """The layouts the Numba property tests leave out, once each."""
    rng = np.random.default_rng(7)
    x = laid_out(data(rng, (2, 3, 6, 5), np.float32, True), kind, rng)
    weight = laid_out(data(rng, (4, 3, 3, 2), np.float32, True), kind, rng)
    want = fastconv.conv2d(x, weight, padding=1, backend="numpy")
    for algo in ALGORITHMS:
        got = fastconv.conv2d(x, weight, padding=1, algorithm=algo, backend="numba")
        assert close(got, want, True), f"conv2d numba/{algo}: {mismatch(got, want)}"
    a = laid_out(data(rng, (7, 9), np.float32, True), kind, rng)
    b = laid_out(data(rng, (9, 5), np.float32, True), kind, rng)
    got, want = (fastconv.matmul(a, b, backend=be) for be in ("numba", "numpy"))
    assert close(got, want, True), f"matmul numba: {mismatch(got, want)}"
    got, want = (fastconv.linear(a, b.T, backend=be) for be in ("numba", "numpy"))
    assert close(got, want, True), f"linear numba: {mismatch(got, want)}"
