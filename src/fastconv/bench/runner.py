"""Run a suite: every implementation of every layer, timed side by side.

Timing method (the same for fastconv and its peers): each implementation is
called twice untimed (first-call costs: JIT, plan, pages; once if a call
takes over 0.25 s), then timed in rounds.  In a round every implementation
runs one block of back-to-back calls, its own block, the order reversed every
other round so no one always runs first or last after another's cache
footprint.  A row's time is the median over rounds of the block's time per
call.  An implementation whose single call exceeds the per-layer budget is
timed in one round only (its row says rounds = 1).  The first warm-up's
output of every implementation, peers included, is checked against the NumPy
oracle (`oracle`), never against an implementation being timed.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import api, lower, nn
from ..config import config, get_backend
from . import machine, networks, peers as _peers


@dataclass
class Impl:
    backend: str             # "c", "numba", or a peer: "numpy", "torch", "onnxruntime"
    algorithm: str | None    # fastconv's requested algorithm, "gemm" for matmul and
                             # "linear" for a full-size conv run as its FC layer; None
                             # for a peer's own conv or GEMM
    runs: str | None         # what fastconv actually runs for it (lower.GemmPlan.algorithm)
    fn: Callable[[], np.ndarray]
    flops: int | None = None  # when it differs from the entry's (a whole-network form)

    @property
    def is_peer(self) -> bool:
        return self.backend in _peers.PEERS

    @property
    def label(self) -> str:
        return self.backend if self.algorithm is None else f"{self.backend}/{self.algorithm}"


@dataclass
class Settings:
    backends: tuple = ("c",)
    algorithms: tuple = ("auto",)
    peers: tuple = ("numpy", "torch", "onnxruntime")
    min_rounds: int = 3
    max_rounds: int = 15
    block_seconds: float = 0.05   # one block: back-to-back calls of one implementation
    # Idle time before each block: the thread pools of the implementation timed
    # before (OpenBLAS, OpenMP, ONNX Runtime) spin for a while after their last
    # call and would otherwise steal the core from the block that follows.
    # NumPy's OpenBLAS spins for up to ~0.5 s (docs/TUNING.md).
    idle_seconds: float = 0.7
    entry_seconds: float = 1.5    # stop adding rounds past this, once min_rounds are done


def make_arrays(entry, batch: int, seed: int = 0):
    if entry.kind == "network":
        return (networks.image(entry, seed),)
    rng = np.random.default_rng(seed)
    normal = lambda shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)
    if entry.kind == "gemm":
        return normal((entry.m, entry.k)), normal((entry.k, entry.n), 1 / math.sqrt(entry.k))
    fan_in = entry.c // entry.groups * entry.kh * entry.kw
    x = normal((batch, entry.c, entry.h, entry.w))
    w = normal((entry.k, entry.c // entry.groups, entry.kh, entry.kw), 1 / math.sqrt(fan_in))
    return x, w, normal((entry.k,))


def fastconv_impls(entry, arrays, settings: Settings):
    out = []
    for be in settings.backends:
        if entry.kind == "network":
            for form, (fn, flops) in entry.implementations(be, *arrays).items():
                out.append(Impl(be, form, None, fn, flops))
            continue
        if entry.kind == "gemm":
            a, b = arrays
            out.append(Impl(be, "gemm", "gemm", lambda be=be: api.matmul(a, b, backend=be)))
            continue
        x, w, bias = arrays
        # Each row runs the layer as a network does: an nn.Conv2d, whose
        # weights are packed once (Winograd's filter transform too) and whose
        # calls are prepared once per input (fastconv.api.PreparedCall).
        for algo in settings.algorithms:
            try:
                plan = lower.conv2d(x.shape, w.shape, entry.stride, entry.pad, 1, entry.groups,
                                    algorithm=algo, backend=be)
            except ValueError:
                if algo == "winograd":  # a layer (or backend) Winograd does not run
                    continue
                raise
            layer = nn.Conv2d(w, bias, entry.stride, entry.pad, 1, entry.groups, algorithm=algo)
            out.append(Impl(be, algo, plan.algorithm, _on_backend(be, layer, x)))
        if entry.is_full_size:   # the same layer as the FC layer it is
            x2, w2 = fc_view(x, w)
            out.append(Impl(be, "linear", "gemm",
                            lambda be=be: api.linear(x2, w2, bias, backend=be)))
    return out


def _on_backend(be, layer, x):
    """A call of layer(x) on backend `be` (the process's own needs no switch per call)."""
    if be == get_backend():
        return lambda: layer(x)

    def call():
        with config(backend=be):
            return layer(x)
    return call


def fc_view(x, w):
    """A full-size conv's input and weights as an FC layer's (batch, C*H*W) and (K, C*H*W)."""
    return x.reshape(x.shape[0], -1), w.reshape(w.shape[0], -1)


def peer_impls(entry, arrays, settings: Settings, threads: int, note: Callable[[str], None]):
    out = []
    for peer in settings.peers:
        if entry.kind not in ("conv", "gemm") or not _peers.supports(peer, entry.kind):
            continue
        try:
            fn = (_peers.gemm(peer, *arrays, threads) if entry.kind == "gemm"
                  else _peers.conv(peer, entry, *arrays, threads))
        except _peers.PeerUnavailable as exc:
            note(f"skipping {peer}: {exc}")
            continue
        except Exception as exc:   # e.g. a peer rejecting this layer: its problem, not ours
            note(f"skipping {peer} on {entry.id}: {type(exc).__name__}: {exc}")
            continue
        out.append(Impl(peer, None, None, fn))
        if peer == "torch" and entry.kind == "conv" and entry.is_full_size:
            out.append(Impl(peer, "linear", None, _peers.linear(peer, *fc_view(*arrays[:2]),
                                                                arrays[2], threads)))
    return out


def oracle(entry, arrays) -> np.ndarray:
    """The entry's result by fastconv's float64 NumPy oracle: the reference for `agrees`.
    A network's reference is its model run window by window."""
    if entry.kind == "network":
        fn, _ = entry.implementations("numpy", *arrays)["sliding-window"]
        return fn()
    if entry.kind == "gemm":
        return api.matmul(*arrays, backend="numpy")
    x, w, bias = arrays
    return api.conv2d(x, w, bias, entry.stride, entry.pad, 1, entry.groups, backend="numpy")


def agree(result: np.ndarray, reference: np.ndarray) -> bool:
    """Loose agreement of float32 results from different summation orders; a
    wrong kernel misses by far more."""
    if result.size != reference.size:
        return False
    result = result.reshape(reference.shape)   # an FC layer's (N, K) is a conv's (N, K, 1, 1)
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    return bool(np.allclose(result, reference, rtol=1e-3, atol=1e-3 * max(scale, 1e-30)))


def time_impls(impls, settings: Settings, clock=time.perf_counter, note=print, reference=None):
    """{label: [seconds per call, one per round]}, {label: output agrees with
    `reference`, None without one} and {label: calls per block}.  A peer that
    fails is dropped with a note; a failing fastconv implementation raises."""
    agrees, reps = {}, {}
    for impl in list(impls):
        t0 = clock()
        try:
            out = impl.fn()
        except Exception as exc:
            if not impl.is_peer:
                raise
            note(f"skipping {impl.label}: it failed ({type(exc).__name__}: {exc})")
            impls.remove(impl)
            continue
        once = clock() - t0
        agrees[impl.label] = None if reference is None else agree(out, reference)
        del out   # outputs of batch-8 layers are large
        reps[impl.label] = calls_per_block(impl.fn, once, settings, clock)
    times = time_rounds({impl.label: impl.fn for impl in impls}, reps, settings, clock)
    return times, agrees, reps


def calls_per_block(fn, once: float, settings: Settings, clock=time.perf_counter) -> int:
    """How many back-to-back calls of `fn` make one block, given its first
    (warm-up) call took `once` seconds."""
    if once < 0.25:  # a second warm-up gives a call time free of first-call costs
        t0 = clock()
        fn()
        once = clock() - t0
    return max(1, min(10_000, round(settings.block_seconds / max(once, 1e-7))))


def time_rounds(fns: dict, reps: dict, settings: Settings, clock=time.perf_counter) -> dict:
    """{name: [seconds per call, one per round]} of functions already warmed up,
    each run `reps[name]` calls per block (see the module's docstring)."""
    names = list(fns)
    times = {name: [] for name in names}
    busy = 0.0   # the budget counts timed calls, not the idle time between blocks
    for rnd in range(settings.max_rounds):
        if rnd >= settings.min_rounds and busy > settings.entry_seconds:
            break
        for name in (names if rnd % 2 == 0 else names[::-1]):
            if rnd > 0 and times[name][0] > settings.entry_seconds:
                continue   # one call takes the whole budget: one timed round is all it gets
            n = reps[name]
            time.sleep(settings.idle_seconds)
            t0 = clock()
            for _ in range(n):
                fns[name]()
            spent = clock() - t0
            busy += spent
            times[name].append(spent / n)
    return times


def run_entry(entry, batch: int, threads: int, settings: Settings,
              note: Callable[[str], None] = print) -> list[dict]:
    """Time every implementation of one layer or GEMM; one row each."""
    arrays = make_arrays(entry, batch)
    impls = fastconv_impls(entry, arrays, settings) + \
        peer_impls(entry, arrays, settings, threads, note)
    times, agrees, reps = time_impls(impls, settings, note=note,
                                     reference=oracle(entry, arrays))
    nbytes = entry.min_bytes(batch)
    rows = []
    for impl in impls:
        flops = impl.flops or entry.flops(batch)
        roof = roofline(flops / nbytes, threads)
        seconds = statistics.median(times[impl.label])
        gflops = flops / seconds * 1e-9
        rows.append({
            "suite": entry.suite, "layer": entry.name, "kind": entry.kind,
            "shape": entry.describe(), "batch": batch if entry.kind == "conv" else None,
            "threads": threads, "dtype": "float32",
            "backend": impl.backend, "algorithm": impl.algorithm, "runs": impl.runs,
            "ms": seconds * 1e3, "ms_min": min(times[impl.label]) * 1e3,
            "rounds": len(times[impl.label]), "calls_per_round": reps[impl.label],
            "flops": flops, "min_bytes": nbytes, "gflops": gflops,
            "gbps": nbytes / seconds * 1e-9,
            "bound": "memory" if roof < machine.peak(threads) else "compute",
            "peak_fraction": gflops / roof,
            "agrees": agrees[impl.label],
        })
    peer_ms = [r["ms"] for r in rows if r["backend"] in _peers.PEERS]
    best = min(peer_ms) if peer_ms else None
    for r in rows:
        r["vs_best_peer"] = best / r["ms"] if best else None
    return rows


def roofline(intensity: float, threads: int) -> float:
    """Attainable GFLOP/s at `intensity` flop/byte: the FMA peak, or the read
    bandwidth times the intensity where that is lower."""
    return min(machine.peak(threads), machine.read_bandwidth(threads) * intensity)
