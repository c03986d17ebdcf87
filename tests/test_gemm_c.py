"""The C GEMM (fc_sgemm / fc_dgemm) on every ISA's kernels against the oracle.

Small-integer data makes every summation order exact, so most checks demand
equality; random reals are compared with a tolerance.  Shapes sit around the
tile (MR, NR) and blocking (MC, KC, NC) edges of each kernel table row.
"""
import threading

import numpy as np
import pytest

import fastconv
from arrays import ints
from checks import DTYPES_F64_SLOW
from isas import c_isas, using_isa
from fastconv.backends import reference
from fastconv.backends.c import ffi, lib

ISAS = c_isas()
DTYPES = [np.float32, np.float64]
VECTOR_BYTES = {"generic": 16, "avx2": 32, "avx512": 64}


def blocking(isa, dtype):
    """The tile, short-kernel rows and cache blocking that the C core runs for
    isa and dtype, as its kernel table holds them (csrc/gemm/ukernels.h)."""
    out = ffi.new("fc_gemm_blocking *")
    with using_isa(isa):
        assert lib.fc_gemm_get_blocking(np.dtype(dtype).itemsize, out) == lib.FC_OK
    return out


def tiles(isa, dtype):
    """(MR, NR, MC, KC, NC)."""
    b = blocking(isa, dtype)
    return b.mr, b.nr, b.mc, b.kc, b.nc


NETWORK_SHAPES = [(1000, 1000, 1000), (1024, 1024, 1024), (2048, 2048, 2048), (3136, 64, 576),
                  (784, 128, 1152), (196, 256, 2304), (49, 512, 4608), (12544, 64, 147),
                  (3136, 256, 64), (64, 4096, 4096), (1, 4096, 25088)]



def oracle(a, b, c0=None, bias=None, bias_axis=1, relu=False):
    """float64 result of the fused GEMM, from the NumPy backend plus accumulate."""
    want = np.empty((a.shape[0], b.shape[1]))
    if c0 is None:
        reference.gemm(a, b, want, bias, bias_axis, relu)
        return want
    reference.gemm(a, b, want)
    want += c0
    if bias is not None:
        want += bias[:, None] if bias_axis == 0 else bias
    return np.where(want < 0, 0.0, want) if relu else want


def c_gemm(a, b, c, bias=None, bias_axis=1, relu=False, accumulate=False):
    """Call the C entry point directly on arbitrary strided views (c included),
    with the epilogue options the public API does not expose (accumulate)."""
    es = lambda x: [s // x.itemsize for s in x.strides]
    ptr = lambda x: ffi.cast("void *", x.__array_interface__["data"][0])
    g = ffi.new("fc_gemm_args *")
    g.m, g.k = a.shape
    g.n = b.shape[1]
    g.a, (g.rsa, g.csa) = ptr(a), es(a)
    g.b, (g.rsb, g.csb) = ptr(b), es(b)
    g.c, (g.rsc, g.csc) = ptr(c), es(c)
    if bias is not None:
        g.bias = ptr(bias)
        g.bias_mode = lib.FC_BIAS_PER_ROW if bias_axis == 0 else lib.FC_BIAS_PER_COL
    g.relu, g.accumulate = int(relu), int(accumulate)
    fn = lib.fc_sgemm if a.dtype == np.float32 else lib.fc_dgemm
    return fn(g)


def views(x):
    """The same values as C-ordered, Fortran-ordered, transposed-storage,
    negative-stride and non-unit-stride views, each its own copy."""
    yield x.copy()
    yield np.array(x, order="F")
    yield np.array(x[::-1, ::-1])[::-1, ::-1]
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    yield big[::2, ::3]


def edge_shapes(isa, dtype):
    mr, nr, mc, kc, nc = tiles(isa, dtype)
    short = blocking(isa, dtype).mr_short
    return [(1, 1, 1), (2, 3, 5), (7, 11, 13), (17, 19, 23), (1, 37, 41), (43, 1, 47),
            (5, 7, 1), (1, 1, 29), (mr - 1, nr - 1, 3), (mr, nr, 4), (mr + 1, nr + 1, 5),
            (2 * mr + 1, 3 * nr - 1, 9), (short, nr, 3), (mr + short, nr, 6),
            (mr + short + 1, nr, 6),
            (mc - 1, nr + 3, kc + 1), (mc + 1, 2 * nr + 1, kc - 1),
            (mr + 2, nr + 5, 2 * kc + 1), (mr - 1, nc + 1, 7), (3, 2 * nc - 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_table_rules(isa, dtype):
    """The rules packing relies on, on the numbers the kernel table holds:
    whole MR panels per MC block, whole NR panels per NC block, whole vectors
    per tile row, a short kernel no taller than the tile."""
    b = blocking(isa, dtype)
    assert b.mc % b.mr == 0 and b.nc % b.nr == 0 and b.nc_small % b.nr == 0
    assert b.nr * np.dtype(dtype).itemsize % VECTOR_BYTES[isa] == 0
    assert 1 <= b.mr_short <= b.mr


def test_kernel_table_rejects_other_sizes():
    out = ffi.new("fc_gemm_blocking *")
    assert lib.fc_gemm_get_blocking(2, out) == lib.FC_EINVAL


@pytest.mark.parametrize("dtype", DTYPES)
def test_edges_exact(isa, dtype):
    rng = np.random.default_rng(1)
    for m, n, k in edge_shapes(isa, dtype):
        a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
        got = fastconv.matmul(a, b, backend="c")
        np.testing.assert_array_equal(got, oracle(a, b), err_msg=f"{isa} {m}x{n}x{k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_views_exact(isa, dtype):
    rng = np.random.default_rng(2)
    mr, nr = tiles(isa, dtype)[:2]
    for m, n, k in [(1, 1, 1), (1, 2 * nr + 3, 31), (2 * mr + 3, 1, 31), (mr + 3, nr + 5, 33),
                    (3 * mr, 2 * nr, 64)]:
        a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
        want = oracle(a, b)
        for av in views(a):
            for bv in views(b):
                for c in views(np.full((m, n), np.nan, dtype)):
                    assert c_gemm(av, bv, c) == lib.FC_OK
                    np.testing.assert_array_equal(c, want, err_msg=f"{isa} {m}x{n}x{k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_row_count_exact(isa, dtype):
    """Every M up to two tiles and one row (tails run on row-exact kernels, or
    on the short kernel twice), with bias and PReLU slopes per row, a clamp,
    accumulate, and B both packed (wide) and read in place (few rows)."""
    rng = np.random.default_rng(9)
    mr, nr = tiles(isa, dtype)[:2]
    for m in range(1, 2 * mr + 2):
        for n, k in [(nr + 5, 9), (3 * nr, 4)]:
            a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
            c0, bias = ints(rng, (m, n), dtype), ints(rng, (m,), dtype)
            slope = (rng.integers(1, 4, m) / 4).astype(dtype)
            want = oracle(a, b, c0, bias, 0)
            want = np.minimum(np.where(want < 0, want * slope[:, None], want), 5)
            g = ffi.new("fc_gemm_args *")
            c = c0.copy()
            ptr = lambda x: ffi.cast("void *", x.__array_interface__["data"][0])
            g.m, g.n, g.k = m, n, k
            g.a, g.rsa, g.csa = ptr(a), k, 1
            g.b, g.rsb, g.csb = ptr(b), n, 1
            g.c, g.rsc, g.csc = ptr(c), n, 1
            g.bias, g.bias_mode = ptr(bias), lib.FC_BIAS_PER_ROW
            g.slope, g.slope_mode = ptr(slope), lib.FC_BIAS_PER_ROW
            g.accumulate, g.clip, g.clip_max = 1, 0, 0.0
            with using_isa(isa):
                fn = lib.fc_sgemm if dtype == np.float32 else lib.fc_dgemm
                assert fn(g) == lib.FC_OK
            np.testing.assert_array_equal(np.minimum(c, 5), want, err_msg=f"{isa} m={m} n={n}")
            g.c, g.relu, g.slope_mode, g.clip, g.clip_max = ptr(c), 1, lib.FC_BIAS_NONE, 1, 5.0
            c[...] = c0
            with using_isa(isa):
                assert fn(g) == lib.FC_OK
            relu6 = np.minimum(np.maximum(oracle(a, b, c0, bias, 0), 0), 5)
            np.testing.assert_array_equal(c, relu6, err_msg=f"{isa} m={m} n={n} relu6")


@pytest.mark.parametrize("dtype", DTYPES)
def test_epilogue_exact(isa, dtype):
    """bias per row / per column, ReLU and accumulate, alone and together, on
    row-major, column-major and strided C."""
    rng = np.random.default_rng(3)
    mr, nr, _, kc, _ = tiles(isa, dtype)
    for m, n, k in [(1, 1, 1), (1, nr + 3, 17), (mr + 2, 1, 17), (mr + 2, nr + 3, 7),
                    (2 * mr + 1, 2 * nr - 1, kc + 5), (3, 4, 0)]:
        a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
        c0 = ints(rng, (m, n), dtype)
        for bias_axis in (None, 0, 1):
            bias = None if bias_axis is None else ints(rng, (m if bias_axis == 0 else n,), dtype)
            axis = 1 if bias_axis is None else bias_axis
            for relu in (False, True):
                for accumulate in (False, True):
                    want = oracle(a, b, c0 if accumulate else None, bias, axis, relu)
                    for c in views(c0):
                        assert c_gemm(a, b, c, bias, axis, relu, accumulate) == 0
                        np.testing.assert_array_equal(
                            c, want, err_msg=f"{isa} {m}x{n}x{k} bias {bias_axis} relu {relu} "
                                             f"acc {accumulate}")


def line_offset_view(shape, dtype, offset, sentinel):
    """A C-ordered view whose first element lies `offset` elements past a
    64-byte boundary, its rows 64-byte multiples apart, inside a buffer filled
    with `sentinel` (so that stray writes around it show)."""
    m, n = shape
    per_line = 64 // np.dtype(dtype).itemsize
    row = -(-(n + offset) // per_line) * per_line + per_line
    buf = np.full(m * row + 2 * per_line, sentinel, dtype)
    start = (-buf.ctypes.data % 64) // buf.itemsize + offset
    block = buf[start:start + m * row].reshape(m, row)
    return buf, block[:, :n]


@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
def test_c_at_every_line_offset(isa, dtype):
    """C starting anywhere in a cache line: the tile grid then starts from the
    line boundary (col_skew in gemm_impl.inc), with a narrow first tile, also
    when two threads split the columns, and across KC steps (accumulate)."""
    rng = np.random.default_rng(9)
    mr, nr, _, kc, _ = tiles(isa, dtype)
    per_line = 64 // np.dtype(dtype).itemsize
    old = fastconv.get_num_threads()
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            for m, n, k in [(mr + 1, nr - 1, 5), (2 * mr + 1, nr + 3, 9),
                            (mr - 1, 32 * nr + 5, 256), (2 * mr, 3 * nr, kc + 3)]:
                a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
                c0, bias = ints(rng, (m, n), dtype), ints(rng, (n,), dtype)
                for offset in range(per_line):
                    for relu, accumulate in ((False, False), (True, True)):
                        want = oracle(a, b, c0 if accumulate else None, bias, 1, relu)
                        buf, c = line_offset_view((m, n), dtype, offset, -7777)
                        c[...] = c0
                        assert c_gemm(a, b, c, bias, 1, relu, accumulate) == 0
                        msg = f"{isa} {m}x{n}x{k} offset {offset} threads {threads}"
                        np.testing.assert_array_equal(c, want, err_msg=msg)
                        c[...] = -7777
                        assert (buf == -7777).all(), msg + ": wrote outside C"
    finally:
        fastconv.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates_through_relu(isa, dtype):
    rng = np.random.default_rng(4)
    mr, nr = tiles(isa, dtype)[:2]
    for m, n, k in [(1, 1, 3), (1, 2 * nr + 1, 9), (2 * mr + 1, 1, 9), (2 * mr + 1, 2 * nr + 1, 9)]:
        a, b = ints(rng, (m, k), dtype), ints(rng, (k, n), dtype)
        a[m // 2, k // 2] = np.nan
        bias = -np.abs(ints(rng, (n,), dtype)) - 1
        got = np.empty((m, n), dtype)
        assert c_gemm(a, b, got, bias, 1, relu=True) == 0
        want = oracle(a, b, None, bias, 1, relu=True)
        assert np.isnan(got[m // 2]).all()
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_reals(isa, dtype):
    """Real-valued data, with linear's x @ W.T operand and network shapes scaled down."""
    rng = np.random.default_rng(5)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    shapes = [(max(1, m // 16), max(1, n // 16), max(1, k // 16)) for m, n, k in NETWORK_SHAPES]
    shapes += [(1, 300, 1568), (4, 256, 1000), (1, 1, 5000)]
    for m, n, k in shapes:
        x = rng.standard_normal((m, k)).astype(dtype)
        w = rng.standard_normal((n, k)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        got = fastconv.linear(x, w, bias, backend="c")
        want = oracle(x, w.T, None, bias, 1)
        scale = np.sqrt(k) * 4
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale, err_msg=f"{m}x{n}x{k}")


@pytest.mark.slow
def test_batch1_fc_layer_exact():
    """The batch-1 FC layer (B = W.T; (1, 4096, 25088) at a quarter of its
    weights) and its N = 1 twin, exact on integers."""
    rng = np.random.default_rng(6)
    x = ints(rng, (1, 25088), np.float32)
    w = ints(rng, (1024, 25088), np.float32)
    np.testing.assert_array_equal(fastconv.linear(x, w, backend="c"), oracle(x, w.T))
    np.testing.assert_array_equal(fastconv.matmul(w, x.T, backend="c"), oracle(w, x.T))


def test_threads_agree_and_concurrent_calls():
    """Results do not depend on the thread count, and several Python threads
    may call the C GEMM at once."""
    rng = np.random.default_rng(7)
    a, b = ints(rng, (301, 203), np.float32), ints(rng, (203, 257), np.float32)
    want = oracle(a, b)
    old = fastconv.get_num_threads()
    try:
        for t in (1, 2, 3):
            fastconv.set_num_threads(t)
            np.testing.assert_array_equal(fastconv.matmul(a, b, backend="c"), want)
        fastconv.set_num_threads(2)
        results = [None] * 4
        def work(i):
            results[i] = all(np.array_equal(fastconv.matmul(a, b, backend="c"), want)
                             for _ in range(5))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(results)
    finally:
        fastconv.set_num_threads(old)


@pytest.mark.parametrize("shape", [(40, 50, 60), (1, 300, 200), (300, 1, 200)], ids=str)
def test_allocation_failure_is_memory_error(shape):
    """Pack buffers are kept per thread between calls, so the failing call runs
    in a fresh thread (alone: one C thread) that has none yet."""
    rng = np.random.default_rng(8)
    m, n, k = shape
    a = rng.standard_normal((m, 2 * k)).astype(np.float32)[:, ::2]
    b = np.asfortranarray(rng.standard_normal((k, n)).astype(np.float32))[:, ::-1]
    if n == 1:  # the GEMV copies a strided vector: make it strided
        a, b = np.ascontiguousarray(a), rng.standard_normal((2 * k, 1)).astype(np.float32)[::2]
    raised = []

    def failing_call():
        lib.fc_debug_fail_allocs_after(0)
        try:
            fastconv.matmul(a, b, backend="c")
        except MemoryError:
            raised.append(True)
        finally:
            lib.fc_debug_fail_allocs_after(-1)

    old = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    try:
        worker = threading.Thread(target=failing_call)
        worker.start()
        worker.join()
    finally:
        fastconv.set_num_threads(old)
    assert raised == [True]
    np.testing.assert_allclose(fastconv.matmul(a, b, backend="c"), oracle(a, b), atol=1e-3)
