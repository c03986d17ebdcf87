"""What the machine is and what it can do: CPU, ISA, threads, and the two
measured limits every benchmark is quoted against (FMA peak, read bandwidth).

The limits come from short probes in the C core and are cached per process.
"""
from __future__ import annotations

import functools
import os
import platform
import time

from .._native import ffi, lib
from ..backends import c as _c

#: Buffer the bandwidth probe streams: far larger than any last-level cache.
READ_PROBE_BYTES = 256 << 20


def _check(rc, what):
    if rc == lib.FC_ENOMEM:
        raise MemoryError(f"{what}: out of memory")
    if rc != lib.FC_OK:
        raise ValueError(f"{what}: not supported on this CPU")


@functools.lru_cache(maxsize=None)
def fma_peak(threads: int, isa: str | None = None) -> float:
    """Measured fp32 GFLOP/s of multiply-adds on `threads` threads with the
    vector unit of `isa` (default: the ISA the kernels run on)."""
    out = ffi.new("double *")
    best = 0.0
    # A peak is a maximum.  Another pool's spinning thread (OpenBLAS keeps its
    # workers busy-waiting for a while after each call) can hold a core through
    # one whole probe, which then reports one core's rate for two: probe three
    # times, 0.2 s apart, and keep the best.
    for attempt in range(3):
        if attempt:
            time.sleep(0.2)
        _check(lib.fc_probe_fma(ffi.NULL if isa is None else isa.encode(), threads, out),
               f"FMA probe ({isa or _c.isa()})")
        best = max(best, out[0])
    return best


@functools.lru_cache(maxsize=None)
def read_bandwidth(threads: int) -> float:
    """Measured GB/s of streaming reads from memory on `threads` threads."""
    out = ffi.new("double *")
    _check(lib.fc_probe_read(READ_PROBE_BYTES, threads, out), "bandwidth probe")
    return out[0]


def peak(threads: int, dtype_size: int = 4) -> float:
    """The FMA ceiling for a dtype: float64 vectors hold half as many lanes."""
    return fma_peak(threads) * 4 / dtype_size


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe(threads: int | None = None, measure: bool = True) -> dict:
    """Machine facts for reports; with measure=True, the probed limits at
    1..`threads` threads (default: fastconv's thread count)."""
    from ..config import get_num_threads
    threads = threads or get_num_threads()
    info = {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "features": _c.cpu_features(),
        "isa": _c.isa(),
        "threads": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if hasattr(os, "getloadavg"):   # other work on the cores shows up in every timing
        info["load_average"] = round(os.getloadavg()[0], 2)
    if measure:
        counts = range(1, threads + 1)
        info["fma_peak_gflops"] = {t: round(fma_peak(t), 1) for t in counts}
        info["read_bandwidth_gbps"] = {t: round(read_bandwidth(t), 1) for t in counts}
    return info
