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

Start-up: a cold cache costs tens of seconds of compilation on first use
(each dtype's GEMM compiles once, conv reuses it); a warm cache about a
second for the same sequence (docs/TUNING.md).

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
import os
import threading
import types

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
_forked_after_omp = False  # forked after that layer started: its regions would kill us


_twins = {}


def _jitted_callees(kernel):
    """(global name, dispatcher) for each jitted function kernel calls by name."""
    scope = kernel.py_func.__globals__
    for name in kernel.py_func.__code__.co_names:
        callee = scope.get(name)
        if isinstance(callee, numba.core.dispatcher.Dispatcher) and callee is not kernel:
            yield name, callee


def _reaches_prange(kernel) -> bool:
    if kernel.targetoptions.get("parallel"):
        return True
    return any(_reaches_prange(callee) for _, callee in _jitted_callees(kernel))


def _serial_twin(kernel):
    """kernel compiled without parallel=True (prange runs as range), for a
    child forked after the omp layer started, and so is every function on its
    way to a parallel one (serial callees keep their cached code); compiled
    once per process, not cached to disk (Numba's cache keys do not tell
    parallel from serial)."""
    twin = _twins.get(kernel)
    if twin is None:
        fn = kernel.py_func
        scope = dict(fn.__globals__)
        for name, callee in _jitted_callees(kernel):
            if _reaches_prange(callee):
                scope[name] = _serial_twin(callee)
        fn = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                                fn.__closure__)
        twin = _twins[kernel] = numba.njit(**dict(JIT, cache=False))(fn)
    return twin


def _after_fork_in_child():
    """Numba's omp layer on GNU OpenMP terminates a forked child at its first
    parallel region (at any thread count), so such a child runs the kernels'
    serial twins instead (as the C backend runs single-threaded there)."""
    global _concurrent_ok, _forked_after_omp
    if _omp_layer:
        _forked_after_omp, _concurrent_ok = True, False


os.register_at_fork(after_in_child=_after_fork_in_child)


def use_threads() -> int:
    """Make this Python thread's parallel regions use fastconv's thread count
    (Numba's setting is per calling thread); return that count.

    On the omp layer Numba's workers are the C core's OpenMP workers, and
    they too are kept off the caller's CPU, which spares them the stalls
    csrc/threads.c describes."""
    from ...config import get_num_threads
    n = max(1, min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    if _omp_layer and n > 1:
        _place_workers(n)
    return n


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
        if _forked_after_omp:
            return _serial_twin(kernel)(*args)
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
