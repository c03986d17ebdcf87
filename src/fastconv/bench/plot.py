"""PNG charts of a run (needs matplotlib): per-layer GFLOP/s bars with the
FMA peak as a line, and for GEMMs a roofline with every measured point."""
from __future__ import annotations

import numpy as np

from . import peers as _peers

NEEDS = "--plot needs matplotlib (pip install 'fastconv[bench]')"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _label(r):
    return r["backend"] if r["algorithm"] is None else f"{r['backend']}/{r['algorithm']}"


def _bars(ax, rows, peak):
    key = lambda r: (r["suite"], r["layer"], r["batch"])
    entries = list(dict.fromkeys(key(r) for r in rows))
    colors = {impl: f"C{i % 10}" for i, impl in enumerate(dict.fromkeys(map(_label, rows)))}
    labelled = set()
    for x, entry in enumerate(entries):
        present = [r for r in rows if key(r) == entry]
        width = 0.8 / len(present)
        for j, r in enumerate(present):
            impl = _label(r)
            ax.bar(x + (j - (len(present) - 1) / 2) * width, r["gflops"], width,
                   color=colors[impl], hatch="//" if impl in _peers.PEERS else None,
                   label=None if impl in labelled else impl)
            labelled.add(impl)
    x = np.arange(len(entries))
    ax.axhline(peak, color="k", linestyle="--", linewidth=1, label=f"FMA peak {peak:.0f}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{s}/{l}" + (f" b{b}" if b not in (None, 1) else "")
                        for s, l, b in entries], rotation=60, ha="right", fontsize=7)
    positive = [r["gflops"] for r in rows if r["gflops"] > 0]
    if positive and max(positive + [peak]) > 30 * min(positive):   # GEMVs next to 3x3 convs
        ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s (float32)")
    ax.legend(fontsize=7, ncol=2)


def _roofline(ax, rows, peak, bandwidth):
    intensity = [r["flops"] / r["min_bytes"] for r in rows]
    lo, hi = min(intensity + [0.1]) / 2, max(intensity + [1000]) * 2
    xs = np.geomspace(lo, hi, 200)
    ax.loglog(xs, np.minimum(peak, bandwidth * xs), "k-", linewidth=1,
              label=f"roofline: {bandwidth:.0f} GB/s, {peak:.0f} GFLOP/s")
    for impl in dict.fromkeys(_label(r) for r in rows):
        pts = [(i, r["gflops"]) for i, r in zip(intensity, rows) if _label(r) == impl]
        ax.loglog(*zip(*pts), "o" if impl in _peers.PEERS else "s", label=impl, alpha=0.8)
    for i, r in zip(intensity, rows):
        if r["backend"] not in _peers.PEERS:
            ax.annotate(r["layer"], (i, r["gflops"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("arithmetic intensity (flop / byte of operands)")
    ax.set_ylabel("GFLOP/s (float32)")
    ax.legend(fontsize=7)


def save(path, rows, machine: dict) -> None:
    """One figure per thread count, stacked: bars of every layer, then the GEMM roofline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in rows})
    gemm = any(r["kind"] == "gemm" for r in rows)
    ncols = 2 if gemm else 1
    fig, axes = plt.subplots(len(threads), ncols, figsize=(7 * ncols, 4.8 * len(threads)),
                             squeeze=False)
    for row_axes, t in zip(axes, threads):
        mine = [r for r in rows if r["threads"] == t]
        peak = machine["fma_peak_gflops"][t]
        _bars(row_axes[0], mine, peak)
        row_axes[0].set_title(f"{t} thread(s): GFLOP/s per layer", fontsize=9)
        if gemm:
            _roofline(row_axes[1], [r for r in mine if r["kind"] == "gemm"], peak,
                      machine["read_bandwidth_gbps"][t])
            row_axes[1].set_title(f"{t} thread(s): GEMM roofline", fontsize=9)
    fig.suptitle(f"fastconv on {machine['cpu']} ({machine['isa']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
