"""`python -m fastconv demo`: the FC = conv = GEMM claims, run and timed.

1. VGG-16's fc6 as an FC layer and as a 7x7x512 -> 4096 convolution: the
   same GEMM plan, bit-identical outputs, and their times.
2. A convolution as a sparse FC layer: the nonzeros of conv_matrix.
3. LeNet-5 on a 280x280 canvas of 10x10 held-out digits, once fully
   convolutionally (one pass) and once as a batched sliding window over the
   same 64x64 window positions: agreement, speedup, FLOP ratio, and a heat map
   PNG if --png names one.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from . import _args, api, lower, nn
from .config import config, get_backend, get_num_threads
from .bench import runner
from .convert import conv_matrix, fc_to_conv
from .models import digits, lenet5, vgg16

GRID = 10                 # digits per canvas row and column
CELL = 28                 # LeNet's input size
STRIDE = 4                # LeNet's total downsampling: FCN output pixel i <-> window at 4*i


def timed(fns: dict, repeats: int, budget: float):
    """Run each function once (a warm-up; its result is returned), then time
    them as `python -m fastconv bench` does (bench/runner.py: rounds of
    back-to-back calls, the order alternating per round), at most `repeats`
    rounds, adding rounds while less than `budget` seconds have been spent.
    Returns ({name: median seconds per call}, {name: first result}, rounds
    timed); if the warm-up alone used the budget, its times stand in for the
    medians and rounds is 0."""
    settings = runner.Settings(min_rounds=1, max_rounds=repeats, entry_seconds=budget)
    start = time.perf_counter()
    results, warmup = {}, {}
    for name, fn in fns.items():
        t = time.perf_counter()
        results[name] = fn()
        warmup[name] = time.perf_counter() - t
    if time.perf_counter() - start > budget:
        return warmup, results, 0
    reps = {name: runner.calls_per_block(fn, warmup[name], settings) for name, fn in fns.items()}
    times = runner.time_rounds(fns, reps, settings)
    return ({name: statistics.median(ts) for name, ts in times.items()}, results,
            min(len(ts) for ts in times.values()))


def _how_timed(rounds: int) -> str:
    return f"median of {rounds} rounds" if rounds else "one run: too slow to repeat within --budget"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def fc6_section(repeats: int, budget: float) -> None:
    print("== VGG-16 fc6: an FC layer is a convolution whose kernel is the whole map")
    model = vgg16()
    report = nn.summary(model, model.input_shape)
    print(f"   VGG-16: {report.params:,} parameters, {report.fc_share:.1%} of them in its "
          "three FC layers")
    fc6 = model[32]
    weight, bias = fc6.weight, fc6.bias                     # (4096, 25088), made here
    conv_weight = fc_to_conv(weight, (512, 7, 7))           # (4096, 512, 7, 7), same memory
    x = np.maximum(np.random.default_rng(1).standard_normal((1, 512, 7, 7), np.float32), 0)
    as_fc = lower.linear((1, 25088), weight.shape)
    as_conv = lower.conv2d(x.shape, conv_weight.shape)
    print(f"   as FC   linear (1, 25088) x (4096, 25088):          {as_fc}")
    print(f"   as conv conv2d (1, 512, 7, 7) x (4096, 512, 7, 7):  {as_conv}")
    print(f"   same plan: {as_fc == as_conv}")
    print(f"   fc7 (4096 -> 4096 on a vector) as a 1x1 conv:         "
          f"{lower.conv2d((1, 4096, 1, 1), (4096, 4096, 1, 1))}")
    fns = {"linear": lambda: api.linear(x.reshape(1, -1), weight, bias),
           "conv2d": lambda: api.conv2d(x, conv_weight, bias)}
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
        print("   (PyTorch not installed: its conv path is not timed)")
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a) for a in (x, conv_weight, bias))

        def torch_conv():
            with torch.no_grad():
                return F.conv2d(tx, tw, tb).numpy()

        def torch_linear():   # PyTorch's other path for the same numbers
            with torch.no_grad():
                return F.linear(tx.reshape(1, -1), tw.reshape(4096, -1), tb).numpy()
        fns["torch conv2d"] = torch_conv
        fns["torch linear"] = torch_linear
    t, out, rounds = timed(fns, repeats, budget)
    y_fc = out["linear"]
    same = np.array_equal(y_fc, out["conv2d"].reshape(1, -1))
    print(f"   outputs bit-identical (np.array_equal): {same}")
    if "torch conv2d" in out:
        err = np.abs(out["torch conv2d"].reshape(1, -1) - y_fc).max() / np.abs(y_fc).max()
        print(f"   PyTorch's conv2d agrees to relative error {err:.1e}")
    gflop = as_fc.m * as_fc.n * as_fc.k * 2 / 1e9
    print(f"   times ({_how_timed(rounds)}):")
    for name, sec in t.items():
        print(f"   {name:<13} {_ms(sec)}  ({gflop / sec:5.1f} GFLOP/s, "
              f"{weight.nbytes / sec / 1e9:5.1f} GB/s of weights)")


def sparse_section() -> None:
    print("== A convolution is an FC layer with mostly zero weights")
    w = np.random.default_rng(2).uniform(0.5, 1.5, (1, 3, 3, 3)).astype(np.float32)
    m = conv_matrix(w, (3, 10, 10), padding="same")
    per_row = np.count_nonzero(m, axis=1).reshape(10, 10)
    print(f"   3x3x3 kernel on a 10x10x3 input, 'same' padding: a {m.shape[0]}x{m.shape[1]} "
          f"matrix; each of the {per_row[1:-1, 1:-1].size} interior outputs uses "
          f"{per_row[5, 5]} of the 300 inputs ({per_row[5, 5] / 300:.0%}); "
          f"edges {per_row[0, 5]}, corners {per_row[0, 0]}")


def make_canvas(seed: int = 0, fill: float = 0.75):
    """A (1, 1, 280, 280) canvas with held-out digits in about `fill` of the
    cells of a 10x10 grid, and the (10, 10) labels (-1 for an empty cell)."""
    images, labels = digits.heldout()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(labels), GRID * GRID, replace=False)
    placed = rng.random(GRID * GRID) < fill
    canvas = np.zeros((1, 1, GRID * CELL, GRID * CELL), np.float32)
    for n in np.flatnonzero(placed):
        r, c = divmod(n, GRID)
        canvas[0, 0, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL] = images[pick[n], 0]
    return canvas, np.where(placed, labels[pick], -1).reshape(GRID, GRID)


def sliding_window(model, canvas, stride=STRIDE):
    """Run `model` on every 28x28 window at `stride`, as one batch: (OH, OW, classes)."""
    win = np.lib.stride_tricks.sliding_window_view(canvas[0, 0], (CELL, CELL))[::stride, ::stride]
    oh, ow = win.shape[:2]
    return model(win.reshape(oh * ow, 1, CELL, CELL)).reshape(oh, ow, -1)


def lenet_section(out_png: str | None, repeats: int, budget: float) -> None:
    print("== LeNet-5 on a 280x280 canvas: one fully convolutional pass vs a sliding window")
    model = lenet5()
    fcn = nn.to_fully_convolutional(model, model.input_shape)
    canvas, labels = make_canvas()
    t, out, rounds = timed({"fully convolutional": lambda: fcn(canvas),
                    "sliding window": lambda: sliding_window(model, canvas)}, repeats, budget)
    heat = out["fully convolutional"][0]                    # (10, 64, 64)
    windows = out["sliding window"]                         # (64, 64, 10)
    oh, ow = heat.shape[1:]
    err = np.abs(heat.transpose(1, 2, 0) - windows).max() / np.abs(windows).max()
    print(f"   fully convolutional output {heat.shape[0]}x{oh}x{ow}: one class distribution per "
          f"28x28 window at stride {STRIDE} ({oh * ow} windows)")
    print(f"   agrees with the sliding window at every window: max relative error {err:.1e}")
    at_cells = heat[:, ::CELL // STRIDE, ::CELL // STRIDE]
    placed = labels >= 0
    print(f"   digits recognised at their cells: {(at_cells.argmax(0) == labels).sum()} of "
          f"{placed.sum()}; empty cells with no class above 0.5: "
          f"{(at_cells.max(0)[~placed] <= 0.5).sum()} of {(~placed).sum()}")
    fcn_flops = fcn.flops(canvas.shape[1:])
    sw_flops = oh * ow * model.flops(model.input_shape)
    print(f"   times ({_how_timed(rounds)}):")
    for name, sec in t.items():
        print(f"   {name:<20} {_ms(sec)}")
    print(f"   speedup {t['sliding window'] / t['fully convolutional']:.1f}x; FLOP ratio "
          f"{sw_flops / 1e6:.0f} / {fcn_flops / 1e6:.0f} MFLOP = {sw_flops / fcn_flops:.2f}x "
          "(the FC layers run at every window either way; only the convolutions are shared)")
    if out_png:
        write_heatmap(out_png, canvas, heat, labels)
    else:
        print("   (--png FILE writes the heat map)")


def write_heatmap(path: str, canvas, heat, labels) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("   matplotlib not installed (pip install 'fastconv[plot]'): heat map not written")
        return
    size = canvas.shape[-1]
    oh, ow = heat.shape[1:]
    # Window (i, j) covers canvas pixels [4i, 4i + 28); draw its value at the window centre.
    half = STRIDE / 2
    extent = (CELL / 2 - half, CELL / 2 + STRIDE * (ow - 1) + half,
              CELL / 2 + STRIDE * (oh - 1) + half, CELL / 2 - half)
    fig, axes = plt.subplots(3, 4, figsize=(14, 10.5))
    axes = axes.ravel()
    axes[0].imshow(canvas[0, 0], cmap="gray", extent=(0, size, size, 0))
    axes[0].set_title("input canvas (280x280)")
    axes[1].imshow(canvas[0, 0], cmap="gray", alpha=0.3, extent=(0, size, size, 0))
    step = CELL // STRIDE
    for r in range(labels.shape[0]):
        for c in range(labels.shape[1]):
            k = heat[:, r * step, c * step].argmax()
            if labels[r, c] >= 0:
                axes[1].text(c * CELL + CELL / 2, r * CELL + CELL / 2, str(k), ha="center",
                             va="center", fontsize=10, weight="bold",
                             color="tab:blue" if k == labels[r, c] else "tab:red")
    axes[1].set_title("answer at each digit's cell (red: wrong)")
    ys, xs = np.mgrid[0:oh, 0:ow] * STRIDE + CELL / 2
    for k in range(10):
        ax = axes[k + 2]
        ax.imshow(canvas[0, 0], cmap="gray", alpha=0.3, extent=(0, size, size, 0))
        # 0.1 is the uniform answer LeNet was trained to give off-centre windows.
        ax.imshow(np.ma.masked_less(heat[k], 0.15), cmap="autumn_r", vmin=0.1, vmax=1,
                  extent=extent, interpolation="nearest")
        hot = heat[k] > 0.5
        ax.scatter(xs[hot], ys[hot], s=90, facecolors="none", edgecolors="red", linewidths=1)
        ax.set_title(f"P(digit {k}) per window")
    fig.suptitle("LeNet-5 as a fully convolutional network: one pass, a class map per digit")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"   heat map written to {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastconv demo", description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=_args.BACKENDS, default=None,
                    help="kernel backend (default: the configured one)")
    ap.add_argument("--threads", type=_args.positive_int_arg, default=None,
                    help="threads for the C and Numba kernels (default: the configured count)")
    ap.add_argument("--png", type=_args.output_file_arg, default=None,
                    help="write LeNet's heat map to this PNG file (needs matplotlib)")
    ap.add_argument("--repeats", type=_args.positive_int_arg, default=5,
                    help="timed rounds (at most)")
    ap.add_argument("--budget", type=_args.seconds_arg, default=4.0,
                    help="seconds of timing per comparison before rounds stop early")
    args = ap.parse_args(argv)
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            ap.error("--png needs matplotlib (pip install 'fastconv[plot]')")
    with config(backend=args.backend or get_backend(), num_threads=args.threads):
        threads = get_num_threads()
        print(f"fastconv demo: backend {get_backend()!r}, {threads} thread{'s' * (threads > 1)}")
        fc6_section(args.repeats, args.budget)
        sparse_section()
        lenet_section(args.png, args.repeats, args.budget)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
