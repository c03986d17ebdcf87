"""What every Numba kernel shares: compile options, how arrays are handed to
kernels, and how parallel kernels are launched.

Arrays reach the kernels as 1-D contiguous views of the memory an operand
spans, plus an element offset and element strides.  Every operand then has
one Numba type per dtype whatever its strides (C, Fortran, transposed,
negative), so each kernel compiles once per dtype instead of once per
layout combination.

Indexing: a Numba array indexed by an arbitrary signed integer gets a
negative-index wraparound select, which stops LLVM from vectorising the
loop; inner loops therefore index a row view (a slice) by their own loop
counter, which LLVM knows is non-negative.

Caching: every kernel is compiled with cache=True.  Numba writes the cache
next to this file (__pycache__) when that directory is writable and
otherwise, e.g. in a read-only site-packages, falls back on its own to the
user-wide cache directory (~/.cache/numba; $NUMBA_CACHE_DIR if set), so no
locator of our own is needed and the user's Numba settings stay untouched.
Numba validates a cached function against its own source file only, so
code compiled into a kernel lives in that kernel's file (see gemm.py).

Start-up, measured 2026-11-23 on the 2-core Zen 4 host while it was shared
(load ~4): in a new process, `import fastconv` then a first fp32 conv via
im2col, a first direct conv and a first fp64 GEMM take, with a cold cache,
19 s + 4 s + 14 s of compilation (37 s wall, 19 s CPU: each dtype's GEMM
compiles once, conv reuses it); with a warm cache, 1.5 s wall (0.8 s CPU)
for the whole sequence, the same from the user-wide cache directory.

Threads: Numba's workqueue threading layer aborts the process when two
Python threads run parallel regions at once; the OpenMP and TBB layers do
not.  Numba picks TBB, then OpenMP, then workqueue (the user may force one),
so the layer is checked after the first launch: under workqueue every
parallel kernel call is serialised by a lock, otherwise (OpenMP, the layer
Numba picks when TBB is not installed) calls run concurrently, each with
its own team.  No layer is forced, so the user's own Numba code keeps
Numba's choice.  Called from nopython code (fastconv.jit), the kernels run
on Numba's own thread count for the calling thread (num_threads()).  The
C core's worker placement (see use_threads) is used when the C core is
there; without it the Numba backend runs unplaced.
"""
import threading

import numba
import numba.extending
import numpy as np
from numba.np.ufunc.parallel import _iget_num_threads, _launch_threads

#: fastmath without 'nnan'/'ninf' (NaN and Inf must propagate through the
#: kernels): contraction to FMA, no signed-zero or reciprocal exactness.
FASTMATH = {"contract", "nsz", "arcp"}
JIT = dict(cache=True, nogil=True, boundscheck=False, fastmath=FASTMATH)
PARALLEL_JIT = dict(JIT, parallel=True)

_serial = threading.Lock()
_concurrent_ok = False
_omp_layer = False  # Numba's threading layer is OpenMP: the C core's own runtime


def use_threads() -> int:
    """Make this Python thread's parallel regions use fastconv's thread count
    (Numba's setting is per calling thread); return that count.

    On the omp layer Numba's workers are the C core's OpenMP workers, and
    they too are kept off the caller's CPU, which spares them the 8 ms stalls
    csrc/threads.c describes (2-thread GEMM 784 x 128 x 1152: 6-8 of 64 calls
    stalled without)."""
    n = max(1, min(_fastconv_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    if _omp_layer and n > 1:
        _place_workers(n)
    return n


def _fastconv_threads() -> int:
    from ...config import get_num_threads
    try:
        return get_num_threads()
    except ImportError:  # a config that keeps the count in the C core, which is absent
        return numba.config.NUMBA_NUM_THREADS


_placement = None  # the C core's fc_place_workers, False without the C core


def _place_workers(n: int) -> None:
    """The C core's worker placement, when the C core is there (it is an
    optimisation only: without it the workers simply go unplaced)."""
    global _placement
    if _placement is None:
        try:
            from .. import c
            _placement = c.place_workers
        except ImportError:
            _placement = False
    if _placement:
        _placement(n)


def start_threading_layer() -> None:
    """Load Numba's threading layer now.  Code compiled in another process
    and loaded from a cache calls the layer's symbols by name, and Numba
    loads the layer on such a load only for the functions that contain a
    prange themselves, not for callers that link them in."""
    _launch_threads()


@numba.extending.register_jitable
def num_threads():
    """Numba's thread count for the calling thread, inside nopython code.
    numba.get_num_threads() there calls through a ctypes pointer, which
    stops Numba from caching the caller; this intrinsic (the one prange
    itself uses) calls the threading layer's symbol by name."""
    return _iget_num_threads()


def launch(kernel, *args):
    """Call a parallel kernel, serialised when the threading layer cannot
    take concurrent parallel regions."""
    global _concurrent_ok, _omp_layer
    if _concurrent_ok:
        return kernel(*args)
    with _serial:
        result = kernel(*args)
        layer = numba.threading_layer()
        _concurrent_ok = layer != "workqueue"
        _omp_layer = layer == "omp" and _gnu_openmp()
    return result


def _gnu_openmp() -> bool:
    """Numba's omp layer runs on GNU libgomp, the C core's runtime (not Intel's)."""
    try:
        from numba.np.ufunc import omppool
        return omppool.openmp_vendor == "GNU"
    except (ImportError, AttributeError):
        return False


def kernel_operand(arr: np.ndarray) -> np.ndarray:
    """arr itself, or a C-contiguous copy when Numba would type it apart
    (read-only, unaligned, or strides that are not whole elements)."""
    if arr.flags.writeable and arr.flags.aligned and \
            all(s % arr.itemsize == 0 for s in arr.strides):
        return arr
    return np.array(arr, order="C")


def flat(arr: np.ndarray):
    """(span, offset, strides): a 1-D contiguous view of the memory arr spans,
    the element offset of arr's first element in it, and arr's strides in
    elements (any sign), so span[offset + sum(i_d * strides[d])] is arr[i]."""
    arr = kernel_operand(arr)
    item = arr.itemsize
    strides = tuple(s // item for s in arr.strides)
    if arr.size == 0:
        return np.empty(0, arr.dtype), 0, strides
    # The lowest-addressed element: last index along negative strides.
    lowest = tuple(slice(n - 1, n) if s < 0 else slice(0, 1) for n, s in zip(arr.shape, strides))
    offset = sum((n - 1) * -s for n, s in zip(arr.shape, strides) if s < 0)
    span = offset + sum((n - 1) * s for n, s in zip(arr.shape, strides) if s > 0) + 1
    view = np.lib.stride_tricks.as_strided(arr[lowest], shape=(span,), strides=(item,))
    return view, offset, strides


def vector(arr, dtype) -> np.ndarray:
    """A 1-D operand such as a bias as a contiguous kernel array (empty if None)."""
    if arr is None:
        return np.empty(0, dtype)
    return kernel_operand(np.ascontiguousarray(arr))
