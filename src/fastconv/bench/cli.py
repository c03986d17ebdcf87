"""`python -m fastconv info` and `python -m fastconv bench`."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
from importlib import metadata

from .. import __version__, _args
from ..config import get_num_threads, set_num_threads
from ..backends import c as _c
from . import machine, networks, peers as _peers, plot as _plot, report, runner, suites
from . import netbench as _netbench

ISAS = ("generic", "avx2", "avx512")


def _ints(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def _names(allowed):
    def parse(text: str) -> tuple:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        if values == ("none",):
            return ()
        bad = [v for v in values if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad)}; choose from {', '.join(allowed)} (or none)")
        return values
    return parse


def _suites(text: str) -> str:
    for name in text.split(","):
        if name.strip() not in suites.SUITES:
            raise argparse.ArgumentTypeError(
                f"unknown suite {name!r}; choose from {', '.join(suites.SUITES)}")
    return text


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---- info ----------------------------------------------------------------

def info(argv) -> int:
    """`python -m fastconv info ARGV...`"""
    p = argparse.ArgumentParser(prog="python -m fastconv info",
                                description="CPU, kernels, threads and measured machine limits.")
    p.add_argument("--threads", type=_args.positive_int_arg, default=None,
                   help="probe 1..N threads (default: fastconv's thread count)")
    args = p.parse_args(argv)
    threads = args.threads or get_num_threads()
    m = machine.describe(threads, measure=False)
    supported = [isa for isa in ISAS if _isa_supported(isa)]
    counts = range(1, threads + 1)
    print(f"fastconv      {__version__}")
    print(f"CPU           {m['cpu']} ({m['cores']} cores available)")
    print(f"features      {' '.join(m['features']) or 'none of avx2/fma/avx512f'}")
    print(f"kernels       {m['isa']} (chosen from CPUID; this CPU supports {', '.join(supported)})")
    print(f"threads       {get_num_threads()} (fastconv.set_num_threads or OMP_NUM_THREADS)")
    print("FMA peak      fp32 GFLOP/s measured per ISA and thread count (fp64: half)")
    for isa in supported:
        cells = "  ".join(f"{t} thread(s) {machine.fma_peak(t, isa):7.1f}" for t in counts)
        mark = "  <- kernels" if isa == m["isa"] else ""
        print(f"  {isa:<11} {cells}{mark}")
    cells = "  ".join(f"{t} thread(s) {machine.read_bandwidth(t):7.1f}" for t in counts)
    print(f"read bandwidth GB/s, {machine.READ_PROBE_BYTES >> 20} MiB buffer")
    print(f"  {'memory':<11} {cells}")
    print(f"ridge point   {machine.peak(threads) / machine.read_bandwidth(threads):.1f} "
          f"flop/byte at {threads} thread(s): below it a kernel is memory-bound")
    peers = [f"{d} {_version(d)}" for d in ("numpy", "torch", "onnxruntime", "onnx")
             if _version(d)]
    print(f"peers         {', '.join(peers)}")
    warning = _peers.blas_core_warning(os.environ, m["isa"], _peers.openblas_architecture())
    if warning:
        print(warning)
    return 0


def _isa_supported(isa: str) -> bool:
    try:
        machine.fma_peak(1, isa)
    except ValueError:
        return False
    return True


# ---- bench ---------------------------------------------------------------

class Progress:
    """tqdm's bar when installed, else one plain line per step on stderr."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, file=sys.stderr, unit="layer", leave=False)

    def start(self, what: str) -> None:
        if self.bar is not None:
            self.bar.set_description(what)
        else:
            print(f"[{self.done + 1}/{self.total}] {what}", file=sys.stderr, flush=True)

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastconv bench",
        description="Time fastconv's kernels next to NumPy, PyTorch and ONNX Runtime "
                    "and next to the machine's measured FMA peak and bandwidth.")
    p.add_argument("--suite", type=_suites, default=suites.DEFAULT_SUITE,
                   help=f"comma-separated, from: {', '.join(suites.SUITES)} "
                        f"(default {suites.DEFAULT_SUITE}: a few layers and GEMMs, about a minute)")
    p.add_argument("--backends", type=_names(("c", "numba")), default=("c",),
                   help="fastconv backends: c,numba (default c)")
    p.add_argument("--algorithms", type=_names(("auto", "direct", "im2col", "winograd")),
                   default=("auto",),
                   help="conv algorithms: auto,direct,im2col,winograd (default auto; winograd "
                        "runs on the 3x3 stride-1 layers of the C backend only; with --suite "
                        "networks, winograd adds fastconv with set_winograd(True))")
    p.add_argument("--compare", type=_names(_peers.PEERS), default=_peers.PEERS,
                   help="peers: numpy,torch,onnxruntime or none (default all; missing ones "
                        "are skipped)")
    p.add_argument("--batch", type=_ints, default=(1,), help="conv batch size(s), e.g. 1,8")
    p.add_argument("--threads", type=_ints, default=None,
                   help="thread count(s), e.g. 1,2 (default fastconv's thread count)")
    p.add_argument("--json", metavar="FILE", type=_args.output_file_arg,
                   help="write one row per layer x implementation")
    p.add_argument("--plot", metavar="FILE", type=_args.output_file_arg,
                   help="write a PNG chart (needs matplotlib)")
    p.add_argument("--markdown", metavar="FILE", type=_args.output_file_arg,
                   help="write the report as Markdown (BENCHMARKS.md)")
    p.add_argument("--seconds", type=_args.seconds_arg,
                   default=runner.Settings.entry_seconds,
                   help="timing budget per layer once 3 rounds are done; an implementation "
                        "whose one call exceeds it is timed once (default %(default)s)")
    p.add_argument("--rounds", type=_args.positive_int_arg, default=runner.Settings.max_rounds,
                   help="at most this many rounds per layer (default %(default)s)")
    p.add_argument("--networks", type=_names(_netbench.NETWORKS), default=_netbench.NETWORKS,
                   help="with --suite networks: which ones (default all six)")
    p.add_argument("--size", type=int, default=224,
                   help="with --suite networks: image size (default 224)")
    p.add_argument("--clock", choices=tuple(_netbench.CLOCKS), default="wall",
                   help="with --suite networks: wall time (default), or each worker's CPU "
                        "time (process), less skewed when other work shares the cores")
    return p


def _write_network_rows(rows, impls, argv, json_path, markdown_path):
    """The networks suite's rows as JSON and as a Markdown table, with the command."""
    command = " ".join(["python -m fastconv bench"] + [shlex.quote(a) for a in argv])
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"command": command, "rows": rows}, f, indent=1)
    if markdown_path:
        wino = "fastconv-winograd" in impls
        lines = [f"`{command}`", "",
                 "| network | batch | " + " | ".join(f"{i} ms" for i in impls)
                 + " | ort / fastconv | max err |"
                 + (" ort / winograd | winograd err |" if wino else ""),
                 "|---|---:|" + "---:|" * (len(impls) + 2 + 2 * wino)]
        for r in rows:
            ratio, err = r["ort_over_fastconv"], r["fastconv_error"]
            cells = [ratio, err] + ([r.get("ort_over_winograd"), r.get("winograd_error")]
                                    if wino else [])
            lines.append(f"| {r['network']} | {r['batch']} | "
                         + " | ".join(f"{r['ms'][i]:.2f}" for i in impls) + " | "
                         + " | ".join("" if v is None else (f"{v:.2f}" if k % 2 == 0
                                                            else f"{v:.1e}")
                                      for k, v in enumerate(cells)) + " |")
        with open(markdown_path, "w") as f:
            f.write("\n".join(lines) + "\n")


def bench(argv) -> int:
    """`python -m fastconv bench ARGV...`"""
    args = bench_parser().parse_args(argv)
    if args.suite == "networks":
        impls = ("fastconv",) + (("fastconv-winograd",) if "winograd" in args.algorithms
                                 else ()) + tuple(p for p in args.compare
                                                  if p in _netbench.IMPLS)
        rows = _netbench.run(args.networks, args.batch,
                             (args.threads or (get_num_threads(),))[0], args.size,
                             max(args.rounds, 1), impls=impls, clock=args.clock)
        _write_network_rows(rows, impls, argv, args.json, args.markdown)
        return 0
    command = " ".join(["python -m fastconv bench"] + [shlex.quote(a) for a in argv])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    entries = suites.suite(args.suite)
    if any(e.kind == "network" for e in entries) and not networks.available():
        print("note: skipping the whole-network entries: this build has no fastconv.models")
        entries = tuple(e for e in entries if e.kind != "network")
    thread_counts = args.threads or (get_num_threads(),)

    wanted = [p for p in args.compare if any(_peers.supports(p, e.kind) for e in entries)]
    peers = []
    for peer in wanted:
        try:
            _peers.check_available(peer)
        except _peers.PeerUnavailable as exc:
            print(f"note: skipping peer {peer}: {exc}")
            continue
        peers.append(peer)
    if len(peers) < len(wanted):
        print("note: pip install 'fastconv[compare]' installs the peers")
    if "numpy" in peers and not _peers.blas_threads_controlled():
        print("note: threadpoolctl is not installed: NumPy's BLAS keeps its own thread count")
    if "numpy" in peers:
        warning = _peers.blas_core_warning(os.environ, _c.isa(), _peers.openblas_architecture())
        if warning:
            print(warning)
    plot_path = args.plot
    if plot_path and not _plot.available():
        print(f"note: {_plot.NEEDS}; skipping the plot")
        plot_path = None

    settings = runner.Settings(backends=args.backends, algorithms=args.algorithms,
                               peers=tuple(peers), max_rounds=max(args.rounds, 1),
                               min_rounds=min(3, max(args.rounds, 1)),
                               entry_seconds=args.seconds)
    info = machine.describe(max(thread_counts))
    info["blas_threads_controlled"] = _peers.blas_threads_controlled()
    load = info.get("load_average", 0)
    if load > 0.5 * info["cores"]:
        print(f"note: the machine is busy (load average {load} on {info['cores']} cores): "
              "timings and measured limits will be noisy")
    print(f"{info['cpu']}, kernels {info['isa']}; FMA peak "
          + ", ".join(f"{v} GFLOP/s at {t} thread(s)" for t, v in info["fma_peak_gflops"].items())
          + "; read bandwidth "
          + ", ".join(f"{v} GB/s at {t}" for t, v in info["read_bandwidth_gbps"].items()))

    jobs = [(t, b, e) for t in thread_counts for b in args.batch for e in entries
            if e.kind == "conv" or b == args.batch[0]]
    progress = Progress(len(jobs))
    rows, old_threads = [], get_num_threads()
    try:
        for threads, batch, entry in jobs:
            progress.start(f"{entry.id} ({threads}t)")
            set_num_threads(threads)
            with _peers.thread_limits(threads, peers):
                got = runner.run_entry(entry, batch, threads, settings, note=progress.write)
            rows += got
            progress.write(report.text_table(got) + "\n")
            progress.step()
    finally:
        progress.close()
        set_num_threads(old_threads)
    for line in report.summary(rows):
        print(line)
    if any(not r["agrees"] for r in rows):
        print("warning: some results disagree with the reference (marked MISMATCH)")

    if args.json:
        report.write_json(args.json, rows, info, command, date)
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report.markdown(rows, info, command, date))
        print(f"wrote {args.markdown}")
    if plot_path:
        _plot.save(plot_path, rows, info)
        print(f"wrote {plot_path}")
    return 0
