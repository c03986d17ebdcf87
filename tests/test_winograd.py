"""Winograd F(4x4, 3x3) (algorithm="winograd", C backend) against two float64
references that share none of its code: the NumPy oracle backend and
tests/reference.py (and torch where installed).  Winograd is not exact: its
error bound is max|err| <= 1e-4 * max|output| in fp32 (docs/WINOGRAD.md)."""
import numpy as np
import pytest

import fastconv
from fastconv import lower, nn
from arrays import laid_out
from checks import DTYPES_F64_SLOW, slow_except
from isas import c_isas, using_isa
import reference

ISAS = c_isas()
BOUND = {np.float32: 1e-4, np.float64: 1e-12}


@pytest.fixture(params=[4, 2], ids=["F4", "F2"])
def tile(request, monkeypatch):
    """Runs the test with Winograd F(4x4, 3x3) and again with F(2x2, 3x3),
    whatever lower.winograd_tile would pick for the shape."""
    monkeypatch.setattr(lower, "winograd_tile", lambda p: request.param)
    return request.param


def test_matrices_from_the_points():
    # docs/WINOGRAD.md's rules: G rows f_i [1, p, p^2], A^T columns [1, p, p^2, p^3],
    # B^T rows the coefficients of prod_{j != i} (x - p_j); the point at infinity last.
    pts = [0, 1, -1, 2, -2]
    G = np.array([[1 / np.prod([p - q for q in pts if q != p]) * p ** e for e in range(3)]
                  for p in pts] + [[0, 0, 1]])
    AT = np.array([[p ** e for p in pts] + [e == 3] for e in range(4)], float)
    BT = np.array([np.polynomial.polynomial.polyfromroots([q for q in pts if q != p])
                   .tolist() + [0] for p in pts] +
                  [np.polynomial.polynomial.polyfromroots(pts).tolist()])
    np.testing.assert_array_equal(BT, [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0],
                                       [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                                       [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
        y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
        want = [[(d[i:i + 3, j:j + 3] * g).sum() for j in range(4)] for i in range(4)]
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def problem(rng, n, c, h, w, k, dtype=np.float32, bias=True):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if bias else None
    return x, wt, b


def check(got, want, dtype):
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape and got.dtype == dtype
    scale = max(np.abs(want).max(), 1e-30) if want.size else 1.0
    err = np.abs(got.astype(np.float64) - want).max() if want.size else 0.0
    assert err <= BOUND[dtype] * scale, f"max |err| {err:.3g} > {BOUND[dtype]:g} x {scale:.3g}"


def run_both(x, w, b, padding, dtype, layout="NCHW", relu=False):
    """Winograd on x (any strides) vs both references."""
    got = fastconv.conv2d(x, w, b, padding=padding, algorithm="winograd", layout=layout,
                          relu=relu)
    x = np.array(x)
    oracle = fastconv.conv2d(x.astype(np.float64), w.astype(np.float64),
                             None if b is None else b.astype(np.float64), padding=padding,
                             layout=layout, relu=relu, backend="numpy")
    ref = reference.conv2d(x, w, b, padding=padding, layout=layout, relu=relu)
    check(got, oracle, dtype)
    check(got, ref, dtype)
    return got


# (n, c, h, w, k, padding): tiny images, odd sizes, sizes not a multiple of 4,
# every padding form, channel counts off the vector widths, batches.
SHAPES = [
    (1, 1, 3, 3, 1, 0),            # one output pixel
    (1, 1, 1, 1, 1, 1),            # a 1x1 image, padded
    (1, 2, 2, 2, 3, 1),
    (1, 3, 5, 7, 4, 0),
    (1, 5, 13, 11, 7, 1),
    (2, 17, 9, 10, 33, 2),
    (3, 4, 6, 6, 5, "same"),
    (1, 8, 12, 12, 16, ((0, 2), (1, 0))),   # asymmetric
    (1, 3, 10, 3, 2, ((2, 0), (0, 2))),
    (2, 33, 15, 17, 9, (1, 2)),
    (1, 16, 8, 8, 31, "valid"),
    (4, 3, 4, 5, 6, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_the_references(shape, dtype, tile):
    n, c, h, w, k, padding = shape
    rng = np.random.default_rng(abs(hash(str(shape))) % 2**32)
    x, wt, b = problem(rng, n, c, h, w, k, dtype)
    run_both(x, wt, b, padding, dtype)
    run_both(x, wt, None, padding, dtype, relu=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_isa(isa, dtype, tile):
    rng = np.random.default_rng(7)
    with using_isa(isa):
        for n, c, h, w, k, padding in [(1, 5, 13, 11, 7, 1), (2, 19, 10, 9, 35, "same"),
                                       (1, 70, 20, 20, 66, 1)]:
            x, wt, b = problem(rng, n, c, h, w, k, dtype)
            run_both(x, wt, b, padding, dtype, relu=True)
            run_both(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), wt, b, padding, dtype,
                     layout="NHWC")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["permuted", "reversed", "strided", "broadcast"])
def test_layouts_and_strided_inputs(dtype, kind, tile):
    rng = np.random.default_rng(3)
    x, wt, b = problem(rng, 2, 6, 11, 9, 10, dtype)
    run_both(laid_out(x, kind, rng), wt, b, 1, dtype)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    run_both(laid_out(xh, kind, rng), wt, b, 1, dtype, layout="NHWC", relu=True)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", slow_except([
    (1, 64, 8, 8, 64),       # 4 tiles: all threads share one block
    (1, 16, 64, 64, 32),     # 256 tiles: one block per thread
    (1, 64, 96, 96, 64),     # 576 tiles: several blocks per thread, the last one partial
    (3, 64, 30, 26, 48),     # blocks across images
], (0, 1, 3)), ids=str)
def test_blocks_and_threads(threads, shape, tile):
    n, c, h, w, k = shape
    rng = np.random.default_rng(11)
    x, wt, b = problem(rng, n, c, h, w, k)
    with fastconv.threads(threads):
        plan = lower.conv2d(x.shape, wt.shape, padding=1, algorithm="winograd")
        assert plan.tile_block <= plan.m
        run_both(x, wt, b, 1, np.float32, relu=True)


def test_workspace_is_bounded_not_proportional_to_the_image():
    with fastconv.threads(2):
        small = lower.conv2d((1, 64, 224, 224), (64, 64, 3, 3), padding=1, algorithm="winograd")
        large = lower.conv2d((4, 64, 448, 448), (64, 64, 3, 3), padding=1, algorithm="winograd")
    assert small.algorithm == large.algorithm == "winograd"
    assert small.workspace_bytes == large.workspace_bytes
    assert small.workspace_bytes <= 2 * 2 * lower.WINOGRAD_BLOCK_BYTES
    assert small.m == 56 * 56 and large.m == 4 * 112 * 112
    text = str(small)
    assert "Winograd" in text and "36 GEMMs" in text and "MiB workspace" in text


def test_packed_weight_and_layer_match_the_call(tile):
    rng = np.random.default_rng(5)
    x, wt, b = problem(rng, 2, 12, 14, 10, 20)
    want = fastconv.conv2d(x, wt, b, padding=1, algorithm="winograd", relu=True)
    pw = fastconv.PackedWeight(wt, b)
    for _ in range(2):  # the second call reads the pack made by the first
        got = fastconv.conv2d(x, pw, padding=1, algorithm="winograd", relu=True)
        np.testing.assert_array_equal(got, want)
    assert pw.nbytes >= (tile + 2) ** 2 * 20 * 12 * 4  # the transformed filters, packed
    layer = nn.Conv2d(wt, b, padding=1, algorithm="winograd")
    np.testing.assert_array_equal(layer.forward(x, relu=True), want)
    check(want, reference.conv2d(x, wt, b, padding=1, relu=True), np.float32)


def test_special_values_pass_through_relu_like_the_other_kernels(tile):
    x = np.zeros((1, 1, 4, 4), np.float32)
    wt = np.zeros((2, 1, 3, 3), np.float32)
    b = np.array([np.nan, -1.0], np.float32)
    got = fastconv.conv2d(x, wt, b, padding=1, algorithm="winograd", relu=True)
    assert np.isnan(got[0, 0]).all() and (got[0, 1] == 0).all()


@pytest.mark.parametrize("over, match", [
    (dict(stride=2), "stride"),
    (dict(weight=(4, 3, 5, 5)), "3x3"),
    (dict(weight=(4, 3, 1, 3)), "3x3"),
    (dict(groups=3, weight=(3, 1, 3, 3)), "groups"),
    (dict(dilation=2), "dilation"),
    (dict(backend="numba"), "backend"),
])
def test_invalid_use_raises_value_error_naming_the_argument(over, match):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal(over.pop("weight", (4, 3, 3, 3))).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        fastconv.conv2d(x, w, padding=1, algorithm="winograd", **over)
    if "backend" not in over:
        with pytest.raises(ValueError, match=match):
            lower.conv2d(x.shape, w.shape, padding=1, algorithm="winograd", **over)


def test_auto_keeps_exact_algorithms_unless_switched_on():
    shape, wshape = (1, 64, 56, 56), (64, 64, 3, 3)
    assert not fastconv.get_winograd()
    assert lower.conv2d(shape, wshape, padding=1).algorithm == "direct"
    with fastconv.config(winograd=True):
        assert fastconv.get_winograd()
        assert lower.conv2d(shape, wshape, padding=1).algorithm == "winograd"
        assert lower.conv2d(shape, wshape, padding=1, stride=2).algorithm == "direct"
        assert lower.conv2d(shape, (64, 64, 1, 1)).algorithm == "gemm"
        assert lower.conv2d((1, 64, 7, 7), (64, 64, 3, 3), padding=1).algorithm == "direct"
        assert lower.conv2d(shape, wshape, padding=1, backend="numba").algorithm == "direct"
        assert lower.conv2d(shape, wshape, padding=1, algorithm="direct").algorithm == "direct"
        rng = np.random.default_rng(9)
        x, wt, b = problem(rng, 1, 16, 40, 40, 16)
        check(fastconv.conv2d(x, wt, b, padding=1), reference.conv2d(x, wt, b, padding=1),
              np.float32)
    assert not fastconv.get_winograd()
    # Integer-valued data stay exact by default.
    xi = np.random.default_rng(1).integers(-3, 4, (1, 16, 40, 40)).astype(np.float32)
    wi = np.random.default_rng(2).integers(-3, 4, (16, 16, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(fastconv.conv2d(xi, wi, padding=1),
                                  reference.conv2d(xi, wi, padding=1))


def test_set_winograd_is_process_wide_and_validated():
    try:
        fastconv.set_winograd(True)
        assert fastconv.get_winograd()
        with fastconv.config(winograd=False):
            assert not fastconv.get_winograd()
        assert lower.conv2d((1, 32, 32, 32), (32, 32, 3, 3), padding=1).algorithm == "winograd"
    finally:
        fastconv.set_winograd(False)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="winograd"):
            fastconv.set_winograd(bad)
    with pytest.raises(ValueError, match="winograd"):
        with fastconv.config(winograd="on"):
            pass


@pytest.mark.slow
def test_suite_layers_within_the_bound():
    # The bench suite's 3x3 stride-1 layers at their channel counts (the error
    # grows with C, not with the image), on a smaller image to keep it quick.
    from fastconv.bench import suites
    layers = [e for e in suites.RESNET50 + suites.VGG16
              if (e.kh, e.kw, e.stride, e.groups) == (3, 3, 1, 1)]
    assert len(layers) == 9
    rng = np.random.default_rng(2)
    for e in layers:
        side = min(e.h, 12)
        x = rng.standard_normal((1, e.c, side, side)).astype(np.float32)
        # He-initialised weights, as a trained layer's scale
        wt = (rng.standard_normal((e.k, e.c, 3, 3)) * np.sqrt(2 / (9 * e.c))).astype(np.float32)
        got = fastconv.conv2d(x, wt, padding=e.pad, algorithm="winograd")
        check(got, reference.conv2d(x, wt, padding=e.pad), np.float32)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    for n, c, h, w, k, pad in [(2, 7, 17, 13, 9, 1), (1, 32, 28, 28, 64, 0)]:
        x, wt, b = problem(rng, n, c, h, w, k, np.float64)
        want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                                          torch.from_numpy(b), padding=pad).numpy()
        got = fastconv.conv2d(x.astype(np.float32), wt.astype(np.float32),
                              b.astype(np.float32), padding=pad, algorithm="winograd")
        check(got, want, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_entry_runs_any_workspace_of_at_least_one_tile(dtype):
    # fc_?conv_winograd's contract (fastconv.h): blocks of the tiles the caller's
    # workspace holds, down to one; threads alone or sharing a block.
    from fastconv import _args
    from fastconv.backends import c
    rng = np.random.default_rng(12)
    x, wt, b = problem(rng, 1, 40, 13, 15, 24, dtype)  # 16 tiles
    p = _args.conv2d_args(x, wt, b, 1, 1, 1, 1, "NCHW")[3]
    want = reference.conv2d(x, wt, b, padding=1, relu=True)
    run = c.lib.fc_sconv_winograd if dtype == np.float32 else c.lib.fc_dconv_winograd
    per_tile = 36 * (40 + 24) * np.dtype(dtype).itemsize
    try:
        for tiles in (1, 3, 16, 40):
            for threads in (1, 2):
                out = np.full(p.out_shape, np.nan, dtype)
                ws = np.empty(tiles * per_tile + 7, np.uint8)
                a = c.ffi.new("fc_conv_args *", c.conv_args(x, wt, b, p, out, ws, True))
                c.lib.fc_set_local_num_threads(threads)
                assert run(a) == c.lib.FC_OK
                check(out, want, dtype)
        a = c.ffi.new("fc_conv_args *", c.conv_args(x, wt, b, p, out, np.empty(per_tile - 1,
                                                                              np.uint8), True))
        assert run(a) == c.lib.FC_EINVAL
    finally:
        c.use_threads()


def test_plan_names_the_tile_gemm_path():
    # A block narrower than the packed GEMM's panels streams the transformed
    # filters once (the few-tile kernel); a wide block runs the packed GEMM.
    with fastconv.threads(2):
        few = lower.conv2d((1, 512, 14, 14), (512, 512, 3, 3), padding=1, algorithm="winograd")
        wide = lower.conv2d((1, 64, 224, 224), (64, 64, 3, 3), padding=1, algorithm="winograd")
    assert few.tile_gemm == "few-tile kernel" and few.tile_block == 16
    assert wide.tile_gemm == "packed GEMM" and wide.tile_block >= 64
    assert "16 at a time on the few-tile kernel" in str(few)
    assert "on the packed GEMM" in str(wide)
    empty = lower.conv2d((0, 8, 7, 7), (8, 8, 3, 3), padding=1, algorithm="winograd")
    assert empty.m == 0 and empty.tile_block == 0


# Tile counts from 1 to past two of the widest micro-kernel's panels (NR = 32):
# every register-blocked group width of the few-tile kernel, its even split into
# groups, and both sides of the switch to the packed GEMM.
FEW_TILES = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 20, 24, 25, 31, 33, 40, 49, 63, 70]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
def test_few_tile_kernel_every_width(isa, dtype, tile):
    # K = 37 is no multiple of any ISA's MR (4, 6, 14): the last panel is partial.
    rng = np.random.default_rng(21)
    paths = set()
    with using_isa(isa):
        for tiles in FEW_TILES:
            # images of one tile (tile x tile), or of 7 (tile x 7 tile)
            n, w = (tiles // 7, 7 * tile) if tiles % 7 == 0 else (tiles, tile)
            x, wt, b = problem(rng, n, 19, tile, w, 37, dtype)
            paths.add(lower.conv2d(x.shape, wt.shape, padding=1, algorithm="winograd",
                                   dtype=dtype).tile_gemm)
            run_both(x, wt, b, 1, dtype, relu=tiles % 2 == 1)
    assert paths == {"few-tile kernel", "packed GEMM"}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES_F64_SLOW)
def test_few_tile_kernel_long_reduction_and_layouts(isa, dtype, tile):
    # C = 600 is more than one KC block of every ISA's packing (256 or 512
    # columns), so the kernel accumulates across the pack's blocks; NHWC and
    # non-contiguous inputs, 1x1, 2x2, 7x7 and odd maps, batch > 1.
    rng = np.random.default_rng(22)
    paths = set()
    with using_isa(isa):
        for n, c, h, w, k, pad in [(1, 600, 7, 7, 30, 1), (2, 600, 2, 2, 15, 1),
                                   (1, 70, 1, 1, 29, 1), (3, 33, 5, 9, 16, "same"),
                                   (1, 24, 7, 7, 520, 0)]:
            x, wt, b = problem(rng, n, c, h, w, k, dtype)
            paths.add(lower.conv2d(x.shape, wt.shape, padding=pad, algorithm="winograd",
                                   dtype=dtype).tile_gemm)
            run_both(x, wt, b, pad, dtype, relu=True)
            xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            run_both(laid_out(xh, "strided", rng), wt, b, pad, dtype, layout="NHWC")
            run_both(laid_out(x, "reversed", rng), wt, None, pad, dtype)
    assert "few-tile kernel" in paths


@pytest.mark.parametrize("threads", [1, 2])
def test_few_tile_kernel_with_the_packed_layer_and_prelu(threads, tile):
    rng = np.random.default_rng(23)
    x, wt, b = problem(rng, 1, 64, 7, 7, 48)
    slope = rng.uniform(0.05, 0.5, 48).astype(np.float32)
    want = reference.conv2d(x, wt, b, padding=1)
    want = np.where(want < 0, want * slope[:, None, None], want)
    with fastconv.threads(threads):
        assert lower.conv2d(x.shape, wt.shape, padding=1,
                            algorithm="winograd").tile_gemm == "few-tile kernel"
        pw = fastconv.PackedWeight(wt, b)
        for _ in range(2):
            got = fastconv.conv2d(x, pw, padding=1, algorithm="winograd", negative_slope=slope)
            check(got, want, np.float32)


def test_f2_for_few_tiles_f4_otherwise():
    # lower.winograd_tile's rule: F(2x2, 3x3) when F(4x4) would have under 16 tiles.
    with fastconv.threads(2):
        l4 = lower.conv2d((1, 512, 7, 7), (512, 512, 3, 3), padding=1, algorithm="winograd")
        l4b8 = lower.conv2d((8, 512, 7, 7), (512, 512, 3, 3), padding=1, algorithm="winograd")
        l3 = lower.conv2d((1, 256, 14, 14), (256, 256, 3, 3), padding=1, algorithm="winograd")
    assert l4.winograd_tile == 2 and l4.kernel == "winograd2" and l4.m == 16
    assert str(l4).startswith("Winograd F(2\u00d72, 3\u00d73): 16 GEMMs 16\u00d7512\u00d7512")
    assert l4.workspace_bytes == 16 * 16 * (512 + 512) * 4
    assert l4b8.winograd_tile == 4 and l4b8.m == 32 and l4b8.kernel == "winograd"
    assert l3.winograd_tile == 4 and l3.tile_gemm == "few-tile kernel"
    # what lower says is what runs: within the bound on the suite's 7x7 layer
    rng = np.random.default_rng(24)
    x = rng.standard_normal((1, 512, 7, 7)).astype(np.float32)
    wt = (rng.standard_normal((512, 512, 3, 3)) * np.sqrt(2 / (9 * 512))).astype(np.float32)
    b = rng.standard_normal(512).astype(np.float32)
    layer = nn.Conv2d(wt, b, padding=1, algorithm="winograd")
    want = reference.conv2d(x, wt, b, padding=1, relu=True)
    check(layer.forward(x, relu=True), want, np.float32)
    check(fastconv.conv2d(x, wt, b, padding=1, algorithm="winograd", relu=True), want,
          np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_f2_entry_runs_any_workspace_and_checks_its_pack(dtype):
    from fastconv import _args
    from fastconv.backends import c
    rng = np.random.default_rng(25)
    x, wt, b = problem(rng, 2, 40, 7, 9, 24, dtype)  # 2 x 4 x 5 tiles of 2x2
    p = _args.conv2d_args(x, wt, b, 1, 1, 1, 1, "NCHW")[3]
    want = reference.conv2d(x, wt, b, padding=1, relu=True)
    f = "s" if dtype == np.float32 else "d"
    run, packed_run = getattr(c.lib, f"fc_{f}conv_winograd2"), getattr(c.lib, f"fc_{f}conv_winograd2_packed")
    f4_packed_run = getattr(c.lib, f"fc_{f}conv_winograd_packed")
    per_tile = 16 * (40 + 24) * np.dtype(dtype).itemsize
    pk2, pk4 = c.pack_conv(wt, b, 1, "winograd2"), c.pack_conv(wt, b, 1, "winograd")
    try:
        for tiles in (1, 3, 16, 40):
            for threads in (1, 2):
                ws = np.empty(tiles * per_tile + 7, np.uint8)
                c.lib.fc_set_local_num_threads(threads)
                for go in (run, lambda a: packed_run(a, pk2)):
                    out = np.full(p.out_shape, np.nan, dtype)
                    a = c.ffi.new("fc_conv_args *", c.conv_args(x, wt, b, p, out, ws, True))
                    assert go(a) == c.lib.FC_OK
                    check(out, want, dtype)
        a = c.ffi.new("fc_conv_args *", c.conv_args(x, wt, b, p, out, np.empty(per_tile - 1,
                                                                              np.uint8), True))
        assert run(a) == c.lib.FC_EINVAL
        # each F's run refuses the other's pack
        a = c.ffi.new("fc_conv_args *", c.conv_args(x, wt, b, p, out, ws, True))
        assert packed_run(a, pk4) == c.lib.FC_EINVAL
        ws4 = np.empty(40 * 36 * 64 * np.dtype(dtype).itemsize, np.uint8)
        a = c.ffi.new("fc_conv_args *", c.conv_args(x, wt, b, p, out, ws4, True))
        assert f4_packed_run(a, pk2) == c.lib.FC_EINVAL
    finally:
        c.use_threads()


def test_f2_matrices_compute_the_correlation():
    # The F(2x2, 3x3) matrices of csrc/conv/winograd.inc (docs/WINOGRAD.md),
    # from the points 0, 1, -1 and infinity.
    G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    rng = np.random.default_rng(26)
    for _ in range(5):
        d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
        y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
        want = [[(d[i:i + 3, j:j + 3] * g).sum() for j in range(2)] for i in range(2)]
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
