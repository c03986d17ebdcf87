"""The C backend: cffi glue around fastconv._native.

Arrays go to C as a pointer to their first element plus element strides, so
transposed, negative-stride and Fortran-ordered views need no copy.  Only
arrays whose byte strides are not a multiple of the item size, or that are
misaligned, are copied first.  cffi releases the GIL around every call.
"""
import numpy as np

try:
    from .._native import ffi, lib
except ImportError as e:
    raise ImportError(
        f"fastconv's C core (fastconv._native) is not built or cannot be loaded ({e}); "
        "build it with `python setup.py build_ext --inplace`, or use backend='numba' "
        "or backend='numpy'") from e

_GEMM = {np.dtype(np.float32): lib.fc_sgemm, np.dtype(np.float64): lib.fc_dgemm}
_CONV = {
    ("direct", np.dtype(np.float32)): lib.fc_sconv_direct,
    ("direct", np.dtype(np.float64)): lib.fc_dconv_direct,
    ("im2col", np.dtype(np.float32)): lib.fc_sconv_im2col,
    ("im2col", np.dtype(np.float64)): lib.fc_dconv_im2col,
}


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


def _check(rc):
    if rc == lib.FC_ENOMEM:
        raise MemoryError("fastconv C core: out of memory")
    if rc != lib.FC_OK:
        raise RuntimeError(f"fastconv C core: internal error {rc}")


def gemm(a, b, out, bias=None, bias_axis=1, relu=False):
    a, b = _usable(a), _usable(b)
    target = out if _walkable(out) else np.empty(out.shape, out.dtype)
    if bias is None:
        bias_mode = lib.FC_BIAS_NONE
    else:
        bias = _contiguous(bias)
        bias_mode = lib.FC_BIAS_PER_ROW if bias_axis == 0 else lib.FC_BIAS_PER_COL
    # fc_gemm_args' fields in order (csrc/fastconv.h); accumulate = 0.
    g = ffi.new("fc_gemm_args *", (
        a.shape[0], b.shape[1], a.shape[1],
        _ptr(a), *_estrides(a), _ptr(b), *_estrides(b), _ptr(target), *_estrides(target),
        _ptr(bias), bias_mode, int(relu), 0))
    _check(_GEMM[a.dtype](g))
    if target is not out:
        out[...] = target


def conv2d(x, weight, bias, p, algorithm, out, workspace_bytes, relu=False):
    x = _usable(x)
    weight = _contiguous(weight)
    bias = None if bias is None else _contiguous(bias)
    ws = np.empty(workspace_bytes, np.uint8) if algorithm == "im2col" else None
    sn, s1, s2, s3 = _estrides(x)
    nchw = p.layout == "NCHW"
    # One initialiser list, in fc_conv_args' field order (csrc/fastconv.h):
    # cffi fills it in C, a third faster than setting 28 fields one by one.
    a = ffi.new("fc_conv_args *", (
        p.n, p.c, p.h, p.w, p.k, p.kh, p.kw, p.oh, p.ow,
        p.stride[0], p.stride[1], p.padding[0], p.padding[2], p.dilation[0], p.dilation[1],
        p.groups, lib.FC_NCHW if nchw else lib.FC_NHWC,
        _ptr(x), sn, *((s1, s2, s3) if nchw else (s3, s1, s2)),
        _ptr(weight), _ptr(bias), _ptr(out), int(relu),
        _ptr(ws), 0 if ws is None else ws.nbytes))
    _check(_CONV[algorithm, x.dtype](a))


def set_num_threads(n: int) -> None:
    lib.fc_set_num_threads(n)


def get_num_threads() -> int:
    return lib.fc_get_num_threads()


def place_workers(n: int) -> None:
    """Keep the calling thread's n - 1 OpenMP workers off its CPU (see csrc/threads.c)."""
    lib.fc_place_workers(n)


def isa() -> str:
    return ffi.string(lib.fc_isa_name()).decode()


def set_isa(name: str) -> None:
    """Force the kernel ISA ("generic", "avx2", "avx512"); for tests and benchmarks."""
    if lib.fc_set_isa(name.encode()) != 0:
        raise ValueError(f"ISA {name!r} is unknown or not supported by this CPU")


def cpu_features() -> list:
    f = lib.fc_cpu_features()
    return [name for bit, name in ((lib.FC_CPU_AVX2, "avx2"), (lib.FC_CPU_FMA, "fma"),
                                   (lib.FC_CPU_AVX512F, "avx512f")) if f & bit]
