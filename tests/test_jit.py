"""fastconv.jit inside users' own @numba.njit functions (and from Python),
against references that share no code with fastconv: the float64 conv of
tests/reference.py on the conv cases the Numba backend's tests use
(checks.CONV_CASES), NumPy float64 for linear/matmul, and PyTorch where
installed.

Data are small integers stored as floats, so every sum is exact and the
results must equal the float64 references exactly."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
import fastconv.jit as fj
import reference as ref
from arrays import ints
from checks import CONV_CASES

numba = pytest.importorskip("numba")

DTYPES = [np.float32, np.float64]

# The user's module: compiled with cache=True into its own directory, so
# that a second process can load it from there.
USER_MODULE = '''
import numba
import numpy as np
import fastconv.jit as fj


@numba.njit(cache=True)
def net(x, w, b, stride, padding, dilation, groups, fc_w, fc_b):
    y = fj.conv2d(x, w, b, stride, padding, dilation, groups)
    flat = y.reshape(y.shape[0], y.shape[1] * y.shape[2] * y.shape[3])
    z = fj.linear(flat, fc_w, fc_b)
    return y, z, fj.matmul(flat, fc_w.T)


@numba.njit(cache=True)
def trivial(x):
    return x.sum()
'''

# A fresh process: the trivial cached function first (Numba's own
# start-up floor), then `net` from its cache.
SECOND_PROCESS = '''
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import user_net
t1 = time.perf_counter()
user_net.trivial(np.ones(3))
t2 = time.perf_counter()
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    x = rng.integers(-3, 4, (2, 4, 9, 9)).astype(dtype)
    w = rng.integers(-3, 4, (6, 2, 3, 3)).astype(dtype)
    b = rng.integers(-3, 4, 6).astype(dtype)
    fc_w = rng.integers(-3, 4, (5, 6 * 4 * 7)).astype(dtype)
    out = user_net.net(x, w, b, (2, 1), ((1, 1), (1, 1)), (2, 2), 2, fc_w, b[:5])
    if dtype is np.float32:
        t3 = time.perf_counter()
        y, z, m = out
stats = user_net.net.stats
print(json.dumps(dict(import_s=t1 - t0, trivial_first_call_s=t2 - t1,
                      net_first_call_s=t3 - t2, total_s=t3 - t0, y=y.tolist(), z=z.tolist(),
                      hits=sum(stats.cache_hits.values()),
                      misses=sum(stats.cache_misses.values()))))
'''


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("user_jit")
    (d / "user_net.py").write_text(USER_MODULE)
    return d


@pytest.fixture(scope="module")
def user_net(user_dir):
    sys.path.insert(0, str(user_dir))
    try:
        import user_net
        yield user_net
    finally:
        sys.path.remove(str(user_dir))
        sys.modules.pop("user_net", None)


def explicit(kernel, stride, padding, dilation):
    """A case's arguments in one form each (pairs; padding ((top, bottom),
    (left, right))), so that the user's function compiles once per dtype."""
    stride, dilation = ref._two(stride), ref._two(dilation)
    t, b, l, r = ref.conv_padding(padding, kernel, dilation)
    return stride, ((t, b), (l, r)), dilation


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
def test_user_cached_function_matches_references(user_net, dtype):
    rng = np.random.default_rng(17)
    for xs, ws, *args, groups in CONV_CASES:
        stride, pad, dil = explicit(ws[2:], *args)
        x, w, b = ints(rng, xs, dtype), ints(rng, ws, dtype), ints(rng, ws[0], dtype)
        want = ref.conv2d(x, w, b, *args, groups)
        feats = int(np.prod(want.shape[1:]))
        fc_w, fc_b = ints(rng, (5, feats), dtype), ints(rng, 5, dtype)
        y, z, m = user_net.net(x, w, b, stride, pad, dil, groups, fc_w, fc_b)
        case = f"{xs} {ws} stride {stride} pad {pad} dilation {dil} groups {groups}"
        assert y.dtype == z.dtype == m.dtype == dtype, case
        np.testing.assert_array_equal(y, want, err_msg=case)
        flat = want.reshape(want.shape[0], feats)
        np.testing.assert_array_equal(z, flat @ fc_w.T.astype(np.float64) + fc_b, err_msg=case)
        np.testing.assert_array_equal(m, flat @ fc_w.T.astype(np.float64), err_msg=case)


@pytest.mark.slow
def test_argument_forms_in_nopython_code():
    """ints, nested paddings, 'same'/'valid' (literal and as a string
    variable), defaults, bias None, 1-D linear input, non-contiguous views."""
    @numba.njit
    def forms(x, w, b, mode, a, w2):
        same = fj.conv2d(x, w, padding="same", dilation=2)
        var = fj.conv2d(x, w, b, padding=mode)
        ints_ = fj.conv2d(x, w, b, 2, 1, 1, 1)
        nested = fj.conv2d(x[:, :, ::2], w, None, (1, 2), ((0, 2), (1, 0)))
        vec = fj.linear(a[0], a[::2])
        even = fj.conv2d(x, w2, padding="same")
        return same, var, ints_, nested, vec, fj.matmul(a.T, a[::-1]), even

    rng = np.random.default_rng(3)
    x, w, b = ints(rng, (2, 3, 9, 8), np.float32), ints(rng, (4, 3, 3, 3), np.float32), \
        ints(rng, 4, np.float32)
    a = ints(rng, (6, 10), np.float32)
    w2 = ints(rng, (2, 3, 2, 4), np.float32)
    same, var, ints_, nested, vec, mm, even = forms(x, w, b, "valid", a, w2)
    np.testing.assert_array_equal(same, ref.conv2d(x, w, None, 1, 2, 2))
    np.testing.assert_array_equal(var, ref.conv2d(x, w, b))
    np.testing.assert_array_equal(ints_, ref.conv2d(x, w, b, 2, 1))
    np.testing.assert_array_equal(
        nested, ref.conv2d(x[:, :, ::2], w, None, (1, 2), ((0, 2), (1, 0))))
    np.testing.assert_array_equal(vec, a[0].astype(np.float64) @ a[::2].T.astype(np.float64))
    np.testing.assert_array_equal(mm, a.T.astype(np.float64) @ a[::-1])
    # "same" pads asymmetrically for even kernels, as PyTorch does
    np.testing.assert_array_equal(even, ref.conv2d(x, w2, None, 1, ((0, 1), (1, 2))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_python_matches_python_api(dtype):
    rng = np.random.default_rng(5)
    x, w, b = ints(rng, (2, 6, 9, 10), dtype), ints(rng, (4, 3, 3, 2), dtype), ints(rng, 4, dtype)
    xv = np.asfortranarray(x)[:, :, ::-1]  # any layout; read-only too
    xv.flags.writeable = False
    for kw in (dict(stride=2, padding="same"), dict(padding=((1, 0), (2, 1)), groups=2),
               dict(stride=(1, 3), dilation=(2, 1), groups=2)):
        if kw.get("padding") == "same":
            kw["stride"] = 1
        kw.setdefault("groups", 2)
        got = fj.conv2d(xv, w, b, **kw)
        np.testing.assert_array_equal(got, fastconv.conv2d(xv, w, b, backend="numpy", **kw))
    fc = ints(rng, (7, 10), dtype)
    np.testing.assert_array_equal(fj.linear(fc[:3], fc, b[:1].repeat(7)),
                                  fc[:3].astype(np.float64) @ fc.T + b[0])
    np.testing.assert_array_equal(fj.linear(fc[0], fc), fc[0].astype(np.float64) @ fc.T)
    np.testing.assert_array_equal(fj.matmul(fc.T, fc), fc.T.astype(np.float64) @ fc)
    np.testing.assert_array_equal(fj.matmul(np.ones((3, 0), dtype), np.ones((0, 2), dtype)),
                                  np.zeros((3, 2)))
    np.testing.assert_array_equal(fj.linear(np.ones((2, 0), dtype), np.ones((3, 0), dtype),
                                            b[:3]), np.tile(b[:3], (2, 1)))


@pytest.mark.slow
def test_against_torch(user_net):
    """The user's function (compiled once per dtype for the whole module: each
    compile of a function that calls fastconv.jit builds the kernels into it)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 13, 11))
    w = rng.standard_normal((8, 3, 3, 3))
    b = rng.standard_normal(8)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                    stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    fc_w, fc_b = rng.standard_normal((5, want[0].numel())), rng.standard_normal(5)
    want_fc = F.linear(want.flatten(1), torch.from_numpy(fc_w), torch.from_numpy(fc_b)).numpy()
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-4)):
        y, z, _ = user_net.net(*(v.astype(dtype) for v in (x, w, b)), (2, 1), ((1, 1), (2, 2)),
                               (1, 2), 2, fc_w.astype(dtype), fc_b.astype(dtype))
        np.testing.assert_allclose(y, want.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(z, want_fc, rtol=tol, atol=tol * 100)


@pytest.mark.slow
def test_parallel_user_code():
    """A user's parallel=True function calling fastconv.jit inside its prange."""
    @numba.njit(parallel=True)
    def per_item(xs, w, images, filters):
        out = np.empty((xs.shape[0], xs.shape[1], w.shape[0]), xs.dtype)
        conv = np.empty((images.shape[0], filters.shape[0]) + images.shape[2:], xs.dtype)
        for i in numba.prange(xs.shape[0]):
            out[i] = fj.linear(xs[i], w)
            conv[i] = fj.conv2d(images[i:i + 1], filters, padding=1)[0]
        return out, conv

    rng = np.random.default_rng(2)
    xs, w = ints(rng, (6, 20, 40), np.float64), ints(rng, (30, 40), np.float64)
    images, filters = ints(rng, (6, 3, 7, 8), np.float64), ints(rng, (5, 3, 3, 3), np.float64)
    out, conv = per_item(xs, w, images, filters)
    np.testing.assert_array_equal(out, xs @ w.T)
    np.testing.assert_array_equal(conv, ref.conv2d(images, filters, None, 1, 1))


# Bad arguments: the nopython call must raise what the Python API raises,
# naming the same argument.  (args after x, weight: bias, stride, padding,
# dilation, groups)
def _bad_cases(rng):
    x, w = ints(rng, (1, 4, 6, 6), np.float32), ints(rng, (6, 2, 3, 3), np.float32)
    b = ints(rng, 6, np.float32)
    ok = (b, (1, 1), (0, 0), (1, 1), 2)
    return x, w, [
        ("stride", ok[:1] + ((0, 1),) + ok[2:]),
        ("stride", ok[:1] + ((1, -2),) + ok[2:]),
        ("padding", ok[:2] + ((-1, 0),) + ok[3:]),
        ("dilation", ok[:3] + ((1, 0),) + ok[4:]),
        ("groups", ok[:4] + (0,)),
        ("groups", ok[:4] + (3,)),              # does not divide C = 4
        ("weight", ok[:4] + (1,)),              # weight has 2 channels per group, not 4
        ("bias", (b[:5],) + ok[1:]),
        ("kernel", ok[:1] + ((1, 1), (0, 0), (3, 3), 2)),  # 7x7 after dilation > 6x6
    ]


@pytest.mark.slow
def test_errors_in_nopython_code_name_the_argument():
    run = numba.njit(lambda x, w, b, s, p, d, g: fj.conv2d(x, w, b, s, p, d, g))
    x, w, cases = _bad_cases(np.random.default_rng(0))
    for name, args in cases:
        with pytest.raises(ValueError) as api:
            fastconv.conv2d(x, w, *args, backend="numpy")
        with pytest.raises(ValueError) as jitted:
            run(x, w, *args)
        msg = str(jitted.value)
        assert msg.startswith(name), (name, msg)
        assert str(api.value).startswith(name), (name, str(api.value))


@pytest.mark.slow
def test_type_and_literal_errors_in_nopython_code():
    x32, w32 = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    checks = [
        (TypeError, "weight", lambda x, w: fj.conv2d(x, w.astype(np.float64))),
        (TypeError, "x", lambda x, w: fj.conv2d(x.astype(np.int64), w)),
        (ValueError, "x", lambda x, w: fj.conv2d(x[0], w)),
        (ValueError, "padding", lambda x, w: fj.conv2d(x, w, padding="full")),
        (ValueError, "padding='same'", lambda x, w: fj.conv2d(x, w, stride=2, padding="same")),
        (ValueError, "stride", lambda x, w: fj.conv2d(x, w, stride=(1, 2, 3))),
        (TypeError, "b", lambda x, w: fj.matmul(x[0, 0], w[0, 0].astype(np.float64))),
    ]
    for exc, name, fn in checks:
        with pytest.raises(exc) as info:
            numba.njit(fn)(x32, w32)
        assert str(info.value).startswith(name), (name, str(info.value))

    # Shape errors are found at run time: one compiled function for all of
    # them (each compile of a function that runs the kernels builds them in).
    @numba.njit
    def shape_errors(x, w, which):
        if which == 0:
            return fj.matmul(x[0, 0], w[0, 0, :2])
        if which == 1:
            return fj.linear(x[0, 0], w[0, 0, :2])
        return fj.linear(w[0, 0], w[0, 0], x[0, 0, 0])

    for which, name in enumerate(("matmul", "x has", "bias")):
        with pytest.raises(ValueError) as info:
            shape_errors(x32, w32, which)
        assert str(info.value).startswith(name), (name, str(info.value))


@pytest.mark.slow
def test_second_process_starts_from_the_cache(user_net, user_dir):
    """The user's cached function in a new process: loaded, not compiled, and
    quick.  The time bound is over Numba's own floor (a trivial cached
    function's first call in the same process), which a loaded machine
    inflates; run with -s to see the absolute times."""
    rng = np.random.default_rng(0)
    for dtype in DTYPES:  # make sure the cache holds both dtypes
        x, w, b = ints(rng, (2, 4, 9, 9), dtype), ints(rng, (6, 2, 3, 3), dtype), \
            ints(rng, 6, dtype)
        user_net.net(x, w, b, (2, 1), ((1, 1), (1, 1)), (2, 2), 2, ints(rng, (5, 168), dtype),
                     b[:5])
        user_net.trivial(x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(user_dir)] + sys.path))
    proc = subprocess.run([sys.executable, "-c", SECOND_PROCESS], capture_output=True,
                          text=True, env=env, cwd=user_dir, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(textwrap.dedent(f"""
        new process, warm cache: import {r['import_s']:.2f} s, trivial cached njit first call
        {r['trivial_first_call_s']:.2f} s, fastconv.jit user function first call
        {r['net_first_call_s']:.2f} s, first result {r['total_s']:.2f} s after start"""))
    assert r["hits"] == 2 and r["misses"] == 0, r
    rng = np.random.default_rng(0)  # the subprocess's float32 data, drawn again
    x, w, b, fc_w = (ints(rng, s, np.float32) for s in ((2, 4, 9, 9), (6, 2, 3, 3), (6,),
                                                          (5, 168)))
    want = ref.conv2d(x, w, b, (2, 1), 1, (2, 2), 2)
    np.testing.assert_array_equal(r["y"], want)
    np.testing.assert_array_equal(r["z"], want.reshape(2, -1) @ fc_w.T.astype(np.float64) + b[:5])
    assert r["net_first_call_s"] - r["trivial_first_call_s"] <= 1.0, r


def test_the_gemm_compiles_once_per_dtype():
    """fastconv.jit's cores call the GEMM with the argument types fastconv's
    Python path gives it (no literals, which Numba would compile it for again)."""
    import importlib
    gemm = importlib.import_module("fastconv.backends.numba.gemm")
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        x, w = ints(rng, (1, 2, 5, 5), dtype), ints(rng, (3, 2, 3, 3), dtype)
        np.testing.assert_array_equal(fj.conv2d(x, w, padding=1), ref.conv2d(x, w, None, 1, 1))
        a = ints(rng, (4, 6), dtype)
        np.testing.assert_array_equal(fj.linear(a, a), a.astype(np.float64) @ a.T)
        np.testing.assert_array_equal(fastconv.matmul(a.T, a, backend="numba"),
                                      a.T.astype(np.float64) @ a)
    dtypes = sorted(str(sig[0].dtype) for sig in gemm.run_kernel.signatures)
    assert dtypes == ["float32", "float64"], gemm.run_kernel.signatures
