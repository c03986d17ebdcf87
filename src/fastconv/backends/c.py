"""The C backend: cffi glue around fastconv._native.

Arrays go to C as a pointer to their first element plus element strides, so
transposed, negative-stride and Fortran-ordered views need no copy.  Only
arrays whose byte strides are not a multiple of the item size, or that are
misaligned, are copied first.  cffi releases the GIL around every call.
The thread count is fastconv.config's, handed to C before each call
(thread-local on both sides, so threads calling at once keep their own).
"""
import threading

import numpy as np

try:
    from .._native import ffi, lib
except ImportError as e:
    raise ImportError(
        f"fastconv's C core (fastconv._native) is not built or cannot be loaded ({e}); "
        "build it with `python setup.py build_ext --inplace`, or use backend='numba' "
        "or backend='numpy'") from e
from ..config import get_num_threads

_GEMM = {np.dtype(np.float32): lib.fc_sgemm, np.dtype(np.float64): lib.fc_dgemm}
_CONV = {
    ("direct", np.dtype(np.float32)): lib.fc_sconv_direct,
    ("direct", np.dtype(np.float64)): lib.fc_dconv_direct,
    ("im2col", np.dtype(np.float32)): lib.fc_sconv_im2col,
    ("im2col", np.dtype(np.float64)): lib.fc_dconv_im2col,
    ("winograd", np.dtype(np.float32)): lib.fc_sconv_winograd,
    ("winograd", np.dtype(np.float64)): lib.fc_dconv_winograd,
    ("winograd2", np.dtype(np.float32)): lib.fc_sconv_winograd2,
    ("winograd2", np.dtype(np.float64)): lib.fc_dconv_winograd2,
}
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_CONV_PACK = {("direct", _F32): lib.fc_sconv_pack, ("direct", _F64): lib.fc_dconv_pack,
              ("im2col", _F32): lib.fc_sconv_pack_im2col,
              ("im2col", _F64): lib.fc_dconv_pack_im2col,
              ("winograd", _F32): lib.fc_sconv_pack_winograd,
              ("winograd", _F64): lib.fc_dconv_pack_winograd,
              ("winograd2", _F32): lib.fc_sconv_pack_winograd2,
              ("winograd2", _F64): lib.fc_dconv_pack_winograd2}
_CONV_PACKED = {("direct", _F32): lib.fc_sconv_direct_packed,
                ("direct", _F64): lib.fc_dconv_direct_packed,
                ("im2col", _F32): lib.fc_sconv_im2col_packed,
                ("im2col", _F64): lib.fc_dconv_im2col_packed,
                ("winograd", _F32): lib.fc_sconv_winograd_packed,
                ("winograd", _F64): lib.fc_dconv_winograd_packed,
                ("winograd2", _F32): lib.fc_sconv_winograd2_packed,
                ("winograd2", _F64): lib.fc_dconv_winograd2_packed}
_GEMM_PACK = {_F32: lib.fc_sgemm_pack, _F64: lib.fc_dgemm_pack}
_GEMM_PACKED = {_F32: lib.fc_sgemm_packed, _F64: lib.fc_dgemm_packed}
_POOL = {_F32: lib.fc_spool2d, _F64: lib.fc_dpool2d}
_POOL_MODE = {"max": lib.FC_POOL_MAX, "avg": lib.FC_POOL_AVG,
              "avg_exclude_pad": lib.FC_POOL_AVG_EXCLUDE_PAD}


def _walkable(arr: np.ndarray) -> bool:
    """C can walk arr with element strides (aligned, strides a multiple of the item size)."""
    flags = arr.flags
    return flags.aligned and (flags.c_contiguous or all(s % arr.itemsize == 0 for s in arr.strides))


def _usable(arr: np.ndarray) -> np.ndarray:
    # copy(), not ascontiguousarray(): that returns a misaligned contiguous array as is.
    return arr if _walkable(arr) else arr.copy()


def _contiguous(arr: np.ndarray) -> np.ndarray:
    return arr if arr.flags.c_contiguous and arr.flags.aligned else arr.copy()


def _ptr(arr):
    """Address of arr's first element.  from_buffer is ~5x cheaper than reading
    __array_interface__ (which builds a dict) but takes C-contiguous arrays only."""
    if arr is None:
        return ffi.NULL
    if arr.flags.c_contiguous:
        return ffi.from_buffer(arr)
    return ffi.cast("void *", arr.__array_interface__["data"][0])


def _estrides(arr):
    return [s // arr.itemsize for s in arr.strides]


def use_threads() -> None:
    """Hand this thread's fastconv thread count to C; every call into a
    parallel C entry point does this first."""
    lib.fc_set_local_num_threads(get_num_threads())


def _check(rc):
    if rc == lib.FC_ENOMEM:
        raise MemoryError("fastconv C core: out of memory")
    if rc != lib.FC_OK:
        raise RuntimeError(f"fastconv C core: internal error {rc}")


_recording = threading.local()   # .calls: the list prepare() records into


def _call(fn, args, *extra, keep=()):
    """fn(args, *extra), a conv or GEMM entry point on its argument struct;
    keep: the arrays of constants (bias, slopes) that args points into."""
    calls = getattr(_recording, "calls", None)
    if calls is not None:
        calls.append((fn, args, extra, keep))
    _check(fn(args, *extra))


def _slope(relu):
    """(relu flag, PReLU slopes or None) of an epilogue (fastconv._args.activation)."""
    if isinstance(relu, np.ndarray):
        return 0, _contiguous(relu)
    return int(relu), None


def gemm_args(a, b, c, bias, bias_mode, relu, accumulate=False, slope=None,
              slope_mode=None, clip_max=None) -> dict:
    """fc_gemm_args (csrc/fastconv.h) by field name, for C = A B with A, B, C
    walkable; slope (PReLU) per row or column by slope_mode (FC_BIAS_*)."""
    (rsa, csa), (rsb, csb), (rsc, csc) = _estrides(a), _estrides(b), _estrides(c)
    return {"m": a.shape[0], "n": b.shape[1], "k": a.shape[1],
            "a": _ptr(a), "rsa": rsa, "csa": csa, "b": _ptr(b), "rsb": rsb, "csb": csb,
            "c": _ptr(c), "rsc": rsc, "csc": csc, "bias": _ptr(bias), "bias_mode": bias_mode,
            "relu": int(relu), "accumulate": int(accumulate), "slope": _ptr(slope),
            "slope_mode": lib.FC_BIAS_NONE if slope is None else slope_mode,
            "clip": int(clip_max is not None), "clip_max": 0.0 if clip_max is None else clip_max}


def gemm(a, b, out, bias=None, bias_axis=1, relu=False, packed=None, clip_max=None,
         accumulate=False):
    """packed: a or b packed once by pack_gemm (the call then reads that operand there).
    relu: a flag, or PReLU slopes along bias_axis; clip_max (with relu): min(y, clip_max);
    accumulate: out += a @ b (before bias and activation) instead of out = a @ b."""
    a, b = _usable(a), _usable(b)
    target = out if _walkable(out) else (out.copy() if accumulate
                                         else np.empty(out.shape, out.dtype))
    relu, slope = _slope(relu)
    axis_mode = lib.FC_BIAS_PER_ROW if bias_axis == 0 else lib.FC_BIAS_PER_COL
    if bias is None:
        bias_mode = lib.FC_BIAS_NONE
    else:
        bias = _contiguous(bias)
        bias_mode = axis_mode
    use_threads()
    g = ffi.new("fc_gemm_args *", gemm_args(a, b, target, bias, bias_mode, relu, accumulate,
                                            slope=slope, slope_mode=axis_mode,
                                            clip_max=clip_max))
    if packed is None:
        _call(_GEMM[a.dtype], g, keep=(bias, slope))
    else:
        _call(_GEMM_PACKED[a.dtype], g, packed, keep=(bias, slope))
    if target is not out:
        out[...] = target


def conv_args(x, weight, bias, p, out, ws, relu, slope=None, clip_max=None) -> dict:
    """fc_conv_args (csrc/fastconv.h) by field name: x walkable; weight, bias
    (or None), out, ws and slope (or None) contiguous."""
    sn, s1, s2, s3 = _estrides(x)
    nchw = p.layout == "NCHW"
    xs_c, xs_h, xs_w = (s1, s2, s3) if nchw else (s3, s1, s2)
    return {"n": p.n, "c": p.c, "h": p.h, "w": p.w, "k": p.k, "kh": p.kh, "kw": p.kw,
            "oh": p.oh, "ow": p.ow, "stride_h": p.stride[0], "stride_w": p.stride[1],
            "pad_top": p.padding[0], "pad_left": p.padding[2],
            "dil_h": p.dilation[0], "dil_w": p.dilation[1], "groups": p.groups,
            "layout": lib.FC_NCHW if nchw else lib.FC_NHWC,
            "x": _ptr(x), "xs_n": sn, "xs_c": xs_c, "xs_h": xs_h, "xs_w": xs_w,
            "weight": _ptr(weight), "bias": _ptr(bias), "y": _ptr(out), "relu": int(relu),
            "ws": _ptr(ws), "ws_bytes": 0 if ws is None else ws.nbytes, "slope": _ptr(slope),
            "clip": int(clip_max is not None), "clip_max": 0.0 if clip_max is None else clip_max}


_scratch = threading.local()
#: Workspaces up to this size are kept per thread for its next call: a fresh
#: one costs a page fault and a zeroed page per 4 KiB, for a few-tile Winograd
#: layer a third of its time.
SCRATCH_KEEP = 16 << 20


def _workspace(nbytes: int) -> np.ndarray:
    """nbytes of scratch (contents undefined), reused by the calling thread."""
    if nbytes > SCRATCH_KEEP:
        return np.empty(nbytes, np.uint8)
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _scratch.buf = np.empty(nbytes, np.uint8)
    return buf[:nbytes]


def conv2d(x, weight, bias, p, algorithm, out, workspace_bytes, relu=False, packed=None,
           clip_max=None):
    """packed: the weights packed once by pack_conv for `algorithm` (direct: with
    the bias; im2col: the weight must still be passed; winograd: the bias must)."""
    x = _usable(x)
    weight = _contiguous(weight)
    bias = None if bias is None else _contiguous(bias)
    ws = _workspace(workspace_bytes) if algorithm in ("im2col", "winograd", "winograd2") else None
    relu, slope = _slope(relu)
    a = ffi.new("fc_conv_args *", conv_args(x, weight, bias, p, out, ws, relu, slope, clip_max))
    use_threads()
    if packed is None:
        _call(_CONV[algorithm, x.dtype], a, keep=(weight, bias, slope))
    else:
        _call(_CONV_PACKED[algorithm, x.dtype], a, packed, keep=(weight, bias, slope))


# ---- prepared calls ---------------------------------------------------------

#: The pointer fields of each argument struct.
_POINTERS = {"fc_conv_args": ("x", "weight", "bias", "y", "ws", "slope"),
             "fc_gemm_args": ("a", "b", "c", "bias", "slope")}


def _data(arr) -> int:
    return arr.__array_interface__["data"][0]


def _within(addr: int, arrays) -> bool:
    """addr lies in the bytes of one of the arrays (None entries skipped)."""
    for arr in arrays:
        if arr is None or arr.size == 0:
            continue
        lo = hi = _data(arr)
        for n, s in zip(arr.shape, arr.strides):
            lo, hi = (lo + s * (n - 1), hi) if s < 0 else (lo, hi + s * (n - 1))
        if lo <= addr < hi + arr.itemsize:
            return True
    return False


def _base(arr):
    """arr's first element as a char pointer (offsets are in bytes)."""
    if arr.flags.c_contiguous:
        return ffi.from_buffer("char[]", arr)
    return ffi.cast("char *", _data(arr))


class Prepared:
    """The C calls of one run of a call path, made again on other arrays x
    and y of the same shapes, dtypes and strides: the argument structs are
    filled once and each call only points them at x, y and this thread's
    workspace.  Safe to share between threads (each call copies the structs)."""
    __slots__ = ("_calls",)

    def __init__(self, calls):
        self._calls = calls   # (fn, struct type, template, binds, extra, owners, ws bytes)

    def __call__(self, x, y):
        xb, yb = _base(x), _base(y)
        use_threads()
        for fn, ctype, template, binds, extra, _kept, ws in self._calls:
            a = ffi.new(ctype, template)
            for field, from_x, offset in binds:
                setattr(a, field, (xb if from_x else yb) + offset)
            if ws:
                scratch = _workspace(ws)   # held for the call (a large one is fresh)
                a.ws = _ptr(scratch)
            _check(fn(a, *extra))


def prepare(run, x, y, constants):
    """Run run() once (a call path reading x and writing y through the C
    entry points) and return its result with a Prepared of its calls, or
    None as the second item where a call pointed at anything other than x,
    y, the arrays in `constants`, the constants it keeps, and workspace: a
    copy of x, a temporary output."""
    _recording.calls = calls = []
    try:
        result = run()
    finally:
        _recording.calls = None
    x0, y0 = _data(x), _data(y)
    prepared = []
    for fn, args, extra, keep in calls:
        ctype = ffi.typeof(args).item.cname
        binds = []
        for field in _POINTERS[ctype]:
            addr = int(ffi.cast("uintptr_t", getattr(args, field)))
            if addr == 0 or field == "ws":
                continue
            if _within(addr, (x,)):
                binds.append((field, True, addr - x0))
            elif _within(addr, (y,)):
                binds.append((field, False, addr - y0))
            elif not _within(addr, tuple(constants) + tuple(keep)):
                return result, None
        ws = int(args.ws_bytes) if ctype == "fc_conv_args" and args.ws != ffi.NULL else 0
        prepared.append((fn, ctype + " *", args[0], tuple(binds), extra, (args, keep), ws))
    return result, (Prepared(prepared) if prepared else None)


def _owned(ptr):
    """A fresh fc_packed, freed with the cdata that holds it."""
    if ptr == ffi.NULL:
        raise MemoryError("fastconv C core: out of memory")
    return ffi.gc(ptr, lib.fc_packed_free, size=lib.fc_packed_bytes(ptr))


def pack_conv(weight, bias, groups, algorithm="direct", layout="NCHW"):
    """The weight layout of `algorithm` ("direct": with the bias; "im2col": each
    group's GEMM operand for `layout`; "winograd": the transformed filters as
    GEMM operands) on the active ISA (csrc/conv/packed.inc, winograd.inc)."""
    weight = _contiguous(weight)
    bias = None if bias is None else _contiguous(bias)
    a = ffi.new("fc_conv_args *")
    a.k, cg, a.kh, a.kw = weight.shape
    a.c, a.groups = cg * groups, groups
    a.weight, a.bias = _ptr(weight), _ptr(bias)
    a.layout = lib.FC_NCHW if layout == "NCHW" else lib.FC_NHWC
    return _owned(_CONV_PACK[algorithm, weight.dtype](a))


def winograd_plan(tile, c, k, tiles, workspace_bytes, dtype):
    """(tiles per block, threads, few) of a Winograd F(tile x tile, 3x3) call as
    the C core will block it with this thread's thread count; few: the tile
    GEMMs stream the transformed filters once (the few-tile kernel) instead of
    the packed GEMM."""
    block, threads = ffi.new("int64_t *"), ffi.new("int *")
    plan = lib.fc_sconv_winograd_plan if np.dtype(dtype) == _F32 else lib.fc_dconv_winograd_plan
    use_threads()
    few = plan(tile, c, k, tiles, workspace_bytes, block, threads)
    if few < 0:  # nothing to compute (no tiles, or no channels at all)
        return 0, 1, False
    return int(block[0]), int(threads[0]), bool(few)


def pack_gemm(mat, side):
    """GEMM operand mat (side "a": the m x k A, "b": the k x n B) in the active
    ISA's micro-panels (csrc/gemm/packed.inc)."""
    mat = _usable(mat)
    g = ffi.new("fc_gemm_args *")
    if side == "a":
        g.m, g.k = mat.shape
        g.a, (g.rsa, g.csa) = _ptr(mat), _estrides(mat)
    else:
        g.k, g.n = mat.shape
        g.b, (g.rsb, g.csb) = _ptr(mat), _estrides(mat)
    return _owned(_GEMM_PACK[mat.dtype](g, lib.FC_PACK_A if side == "a" else lib.FC_PACK_B))


def pool_args(x, p, out) -> dict:
    """fc_pool_args (csrc/fastconv.h) by field name: x walkable NCHW, out contiguous."""
    xs_n, xs_c, xs_h, xs_w = _estrides(x)
    top, bottom, left, right = p.padding
    return {"n": p.n, "c": p.c, "h": p.h, "w": p.w, "kh": p.kh, "kw": p.kw,
            "oh": p.oh, "ow": p.ow, "stride_h": p.stride[0], "stride_w": p.stride[1],
            "pad_top": top, "pad_bottom": bottom, "pad_left": left, "pad_right": right,
            "dil_h": p.dilation[0], "dil_w": p.dilation[1], "mode": _POOL_MODE[p.mode],
            "x": _ptr(x), "xs_n": xs_n, "xs_c": xs_c, "xs_h": xs_h, "xs_w": xs_w,
            "y": _ptr(out)}


def pool2d(x, p, out):
    """Max or average pooling (fastconv._args.PoolParams) of NCHW x into contiguous out."""
    x = _usable(x)
    a = ffi.new("fc_pool_args *", pool_args(x, p, out))
    use_threads()
    _check(_POOL[x.dtype](a))


def place_workers(n: int) -> None:
    """Keep the calling thread's n - 1 OpenMP workers off its CPU (see csrc/threads.c)."""
    lib.fc_place_workers(n)


_isa_name = []   # the active ISA's name once read; set_isa changes it


def isa() -> str:
    if not _isa_name:
        _isa_name.append(ffi.string(lib.fc_isa_name()).decode())
    return _isa_name[0]


def set_isa(name: str) -> None:
    """Force the kernel ISA ("generic", "avx2", "avx512"); for tests and benchmarks."""
    _isa_name.clear()
    rc = lib.fc_set_isa(name.encode())
    _isa_name.clear()
    if rc != 0:
        raise ValueError(f"ISA {name!r} is unknown or not supported by this CPU")


def cpu_features() -> list:
    f = lib.fc_cpu_features()
    return [name for bit, name in ((lib.FC_CPU_AVX2, "avx2"), (lib.FC_CPU_FMA, "fma"),
                                   (lib.FC_CPU_AVX512F, "avx512f")) if f & bit]


def _typed(arr, ctype: str):
    """_ptr(arr) as a typed pointer (the arrays' owners keep them alive during the call)."""
    return ffi.cast(ctype, _ptr(arr))


_PIXEL = {np.dtype(np.uint8): lib.FC_PIXEL_U8, np.dtype(np.float64): lib.FC_PIXEL_F64}


def area_args(images, index, y0, y1, x0, x1, oh, ow, offset, scale, out) -> dict:
    """fc_area_args (csrc/fastconv.h) by field name: images contiguous
    (N, H, W, C) uint8 or float64, the crop arrays contiguous int64, out
    contiguous float32 (crops, C, oh, ow)."""
    i64 = lambda arr: _typed(arr, "int64_t *")
    return {"n": images.shape[0], "h": images.shape[1], "w": images.shape[2],
            "c": images.shape[3], "pixel": _PIXEL[images.dtype], "images": _ptr(images),
            "crops": len(index), "index": i64(index), "y0": i64(y0), "y1": i64(y1),
            "x0": i64(x0), "x1": i64(x1), "oh": oh, "ow": ow, "offset": offset,
            "scale": scale, "y": _typed(out, "float *")}


def area_resample(*args):
    """Area resampling of crops (fc_area_resample) on area_args' arguments."""
    a = ffi.new("fc_area_args *", area_args(*args))
    use_threads()
    _check(lib.fc_area_resample(a))


def nms(boxes, scores, image, threshold, by_min):
    """fc_nms (csrc/fastconv.h) on validated arguments: boxes contiguous float32
    (n, 4), scores float32 (n,), image int64 (n,) or None; the kept indices."""
    keep = np.empty(len(boxes), np.int64)
    kept = ffi.new("int64_t *")
    _check(lib.fc_nms(len(boxes), _typed(boxes, "float *"), _typed(scores, "float *"),
                      _typed(image, "int64_t *"), threshold,
                      lib.FC_NMS_MIN if by_min else lib.FC_NMS_IOU, _typed(keep, "int64_t *"),
                      kept))
    return keep[:kept[0]]
