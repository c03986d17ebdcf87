"""Test inputs: integer-valued data whose every partial sum is exact, and the
memory layouts a caller can hand fastconv.

A kernel that reads outside its view, or adds in a different order, shows up
as an exact mismatch: gaps around strided views hold NaN, and integer data
makes the result independent of summation order.
"""
import numpy as np

#: Layouts every backend must accept.  "broadcast" repeats one slice along an
#: axis (stride 0), so it changes the values: always feed the oracle the array
#: that `laid_out` returns.
KINDS = ("contiguous", "permuted", "reversed", "strided", "broadcast",
         "readonly", "unaligned", "byteswapped")
#: Kinds that can receive results (out=).
OUT_KINDS = ("contiguous", "permuted", "reversed", "strided")

SENTINEL = 1e30  # fills the memory around an out= view; no result reaches it


def ints(rng, shape, dtype, bound=3):
    """Small integers stored as floats: products and sums stay exact."""
    return rng.integers(-bound, bound + 1, size=shape).astype(dtype)


def reals(rng, shape, dtype):
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def data(rng, shape, dtype, exact):
    return ints(rng, shape, dtype) if exact else reals(rng, shape, dtype)


def laid_out(a, kind, rng):
    """An array with a's shape and dtype, laid out in memory as `kind` says."""
    a = np.asarray(a)
    if kind == "contiguous":
        return np.ascontiguousarray(a)
    if kind == "permuted":  # axes in a random memory order (Fortran, NHWC-as-NCHW, ...)
        perm = rng.permutation(a.ndim)
        return np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))
    if kind == "reversed":  # negative stride on every axis
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if kind == "strided":   # gaps between elements on every axis, filled with NaN
        base = np.full(tuple(2 * s + 1 for s in a.shape), np.nan, a.dtype)
        view = base[tuple(slice(1, 1 + 2 * s, 2) for s in a.shape)]
        view[...] = a
        return view
    if kind == "broadcast":  # stride 0 along one axis
        axis = int(rng.integers(a.ndim))
        return np.broadcast_to(np.take(a, [0] if a.shape[axis] else [], axis=axis), a.shape)
    if kind == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    if kind == "unaligned":  # element boundaries off the dtype's alignment
        raw = np.empty(a.nbytes + 1, np.uint8)
        view = raw[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view
    if kind == "byteswapped":
        return a.astype(a.dtype.newbyteorder(">" if np.little_endian else "<"))
    raise ValueError(kind)


def out_buffer(shape, dtype, kind, rng):
    """(out, base): an out= view of `kind` whose memory `base` is pre-filled:
    NaN inside the view (a kernel that reads it before writing propagates
    NaN), SENTINEL around it (a kernel that writes outside the view is caught
    by `untouched_outside`)."""
    if kind == "strided":
        base = np.full(tuple(2 * s + 1 for s in shape), SENTINEL, dtype)
        out = base[tuple(slice(1, 1 + 2 * s, 2) for s in shape)]
    else:
        out = laid_out(np.zeros(shape, dtype), kind, rng)
        base = out
    out[...] = np.nan
    return out, base


def untouched_outside(out, base) -> bool:
    return np.count_nonzero(base == SENTINEL) == base.size - out.size


def close(got, want, exact: bool) -> bool:
    """Exact equality for integer data; otherwise within 1e-5 (float32) or
    1e-12 (float64) of the output's magnitude."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if exact:
        return np.array_equal(got, want)
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    tol = 1e-5 if got.dtype == np.float32 else 1e-12
    scale = float(np.max(np.abs(want), initial=0.0))
    return bool(np.all(np.abs(got.astype(np.float64) - want) <= tol * scale))


def mismatch(got, want) -> str:
    """A short description of where two arrays differ, for assertion messages."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype}{got.shape}, want {want.dtype}{want.shape}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    diff[np.isnan(diff) & ~(np.isnan(got) & np.isnan(want))] = np.inf
    idx = np.unravel_index(np.nanargmax(diff), diff.shape) if diff.size else ()
    return (f"max |diff| {np.nanmax(diff) if diff.size else 0} at {idx}: got {got[idx]}, "
            f"want {want[idx]}; {np.count_nonzero(diff > 0)} of {diff.size} differ")
