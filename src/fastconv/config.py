"""Process-wide settings: the default backend and the thread count."""
from __future__ import annotations

import contextlib
import contextvars

from . import _args

_backend = contextvars.ContextVar("fastconv_backend", default="c")


def set_backend(name: str) -> None:
    """Make `name` ("c", "numba" or "numpy") the backend used when a call names none."""
    _backend.set(_args.choice("backend", name, _args.BACKENDS))


def get_backend() -> str:
    return _backend.get()


@contextlib.contextmanager
def config(*, backend: str | None = None, num_threads: int | None = None):
    """Temporarily set the default backend and/or thread count:

        with fastconv.config(backend="numba", num_threads=1):
            y = model(x)
    """
    token = _backend.set(_args.choice("backend", backend, _args.BACKENDS)) if backend else None
    old_threads = get_num_threads()
    if num_threads is not None:
        set_num_threads(num_threads)
    try:
        yield
    finally:
        if token is not None:
            _backend.reset(token)
        if num_threads is not None:
            set_num_threads(old_threads)


def set_num_threads(n: int) -> None:
    """Threads used by the C and Numba backends (default: OMP_NUM_THREADS, else all cores)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"num_threads must be a positive int; got {n!r}")
    from .backends import c
    c.set_num_threads(n)


def get_num_threads() -> int:
    from .backends import c
    return c.get_num_threads()


def resolve_backend(backend: str | None) -> str:
    return get_backend() if backend is None else _args.choice("backend", backend, _args.BACKENDS)
