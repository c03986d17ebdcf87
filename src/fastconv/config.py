"""Settings: the default backend, the thread count and whether "auto" may pick Winograd.

Two kinds, each with one meaning:

- process-wide: `set_backend(name)` and `set_num_threads(n)` change the
  default for every thread of the process, including threads started later;
- scoped: `with config(backend=..., num_threads=...)` and `with threads(n)`
  change it for the calling thread (more exactly: its context, so asyncio
  tasks too) until the block ends, and are restored exactly when it ends,
  whatever other threads do meanwhile.  A scoped value layers over the
  process-wide one; it does not save and restore a global.

The thread count lives here, on the Python side, so it means the same for the
C and the Numba backend and works without the C core.  The C core reads it per
call (the glue in backends/c.py hands it over before each call).

Winograd: `algorithm="auto"` runs exact algorithms only (direct, im2col,
GEMM), so integer-valued data give exact results and an FC layer written as
a conv agrees bit for bit with `linear`.  `set_winograd(True)` (process-wide)
or `with config(winograd=True)` (scoped) lets it choose Winograd F(4x4, 3x3)
for the eligible 3x3 stride-1 layers where fastconv.lower's rule expects it
to be faster; its error is a few float roundings of the output's magnitude
(docs/WINOGRAD.md).  `algorithm="winograd"` asks for it whatever this says.

`threadpoolctl.threadpool_limits(n)` caps the count of the calling thread
(fastconv registers a threadpoolctl controller; see _threadpoolctl.py).

Fork: GNU OpenMP's worker pool does not survive fork(), so a child forked
after fastconv has run (or been asked for) more than one thread runs
single-threaded: its get_num_threads() is 1 whatever was set.  Use the
"spawn" or "forkserver" start method for parallel children.
"""
from __future__ import annotations

import contextlib
import contextvars
import os

from . import _args
from .backends import DEFAULT

#: Upper bound of a thread count: far above any core count, far below int32.
MAX_THREADS = 4096

_backend = DEFAULT
_threads = None  # process-wide count; None: the default (OMP_NUM_THREADS, else usable cores)
_default = None  # the default, computed once
_scoped_backend = contextvars.ContextVar("fastconv_backend", default=None)
_scoped_threads = contextvars.ContextVar("fastconv_num_threads", default=None)
_winograd = False
_scoped_winograd = contextvars.ContextVar("fastconv_winograd", default=None)
_cap = contextvars.ContextVar("fastconv_thread_cap", default=None)  # threadpoolctl's limit
_asked_parallel = False  # a count > 1 was handed out: OpenMP may have a worker pool
_forked_serial = False  # this process was forked after that: one thread only


def _backend_arg(name: str, value) -> str:
    return _args.choice(name, value, _args.BACKENDS)


def thread_count(name: str, value) -> int:
    """A thread count: an int (Python or NumPy, not bool) in [1, MAX_THREADS]."""
    if not _args._is_int(value):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    n = int(value)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{name} must be between 1 and {MAX_THREADS}; got {n}")
    return n


def set_backend(name: str) -> None:
    """Make `name` ("c", "numba" or "numpy") the default backend of every thread
    (process-wide; `with config(backend=...)` overrides it in a scope)."""
    global _backend
    _backend = _backend_arg("backend", name)


def get_backend() -> str:
    """The backend a call that names none uses in this thread."""
    return _scoped_backend.get() or _backend


def set_num_threads(n: int) -> None:
    """Threads the C and Numba backends use, for every thread of the process
    (process-wide; default: OMP_NUM_THREADS, else the usable cores).
    `with threads(n)` overrides it in a scope."""
    global _threads
    _threads = thread_count("num_threads", n)


def default_num_threads() -> int:
    """OMP_NUM_THREADS if it is a positive int, else the cores this process may use."""
    global _default
    if _default is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        if env.isdigit() and int(env) > 0:
            _default = min(int(env), MAX_THREADS)
        else:
            try:
                _default = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                _default = os.cpu_count() or 1
    return _default


def get_num_threads() -> int:
    """Threads the next C or Numba call from this thread uses: the scoped count
    if any, else the process-wide one, capped by threadpoolctl's limit; 1 in a
    child forked after a parallel call."""
    global _asked_parallel
    n = _scoped_threads.get() or _threads or _default or default_num_threads()
    cap = _cap.get()
    if cap is not None and cap < n:
        n = cap
    if n > 1:
        if _forked_serial:
            return 1
        _asked_parallel = True
    return n


def set_winograd(on: bool) -> None:
    """Let algorithm="auto" choose Winograd for eligible layers, in every thread
    (process-wide; `with config(winograd=...)` overrides it in a scope)."""
    global _winograd
    _winograd = _args.flag("winograd", on)


def get_winograd() -> bool:
    """Whether algorithm="auto" may choose Winograd in this thread."""
    scoped = _scoped_winograd.get()
    return _winograd if scoped is None else scoped


@contextlib.contextmanager
def threads(n: int):
    """Use n threads in this thread until the block ends (thread-local: other
    threads keep their own count):

        with fastconv.threads(1):
            y = model(x)
    """
    token = _scoped_threads.set(thread_count("n", n))
    try:
        yield
    finally:
        _scoped_threads.reset(token)


@contextlib.contextmanager
def config(*, backend: str | None = None, num_threads: int | None = None,
           winograd: bool | None = None):
    """Set the default backend, thread count and/or Winograd switch (see
    set_winograd) for this thread until the block ends (scoped; other threads
    are not affected):

        with fastconv.config(backend="numba", num_threads=1):
            y = model(x)
    """
    settings = []  # validate all before setting any
    if backend is not None:
        settings.append((_scoped_backend, _backend_arg("backend", backend)))
    if num_threads is not None:
        settings.append((_scoped_threads, thread_count("num_threads", num_threads)))
    if winograd is not None:
        settings.append((_scoped_winograd, _args.flag("winograd", winograd)))
    tokens = [(var, var.set(value)) for var, value in settings]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def resolve_backend(backend: str | None) -> str:
    return get_backend() if backend is None else _backend_arg("backend", backend)


# threadpoolctl's view: a cap on this thread's count.  threadpool_limits(n)
# reads the count, sets n, and at exit sets the count it read; so a set that
# brings back the count read before the last cap removes that cap (exact
# restore, even if set_num_threads ran meanwhile); a set to the count there
# already is no cap (threadpool_limits(user_api="blas") sets nothing here at
# entry but still "restores" every library at exit); any other set is a new cap.
_caps = contextvars.ContextVar("fastconv_thread_caps", default=())  # (previous cap, count before)


def _limit(n: int) -> None:
    n = thread_count("num_threads", n)
    caps = _caps.get()
    if caps and caps[-1][1] == n:
        _cap.set(caps[-1][0])
        _caps.set(caps[:-1])
    elif not caps and n == get_num_threads():
        return
    else:
        _caps.set(caps + ((_cap.get(), get_num_threads()),))
        _cap.set(n)


def _after_fork_in_child() -> None:
    global _forked_serial
    if _asked_parallel:
        _forked_serial = True


os.register_at_fork(after_in_child=_after_fork_in_child)
