"""Heat-map throughput of fastconv.dask on a LocalCluster, and per-worker peak memory.

    python benchmarks/dask_heatmap.py --size 32768 --chunk 2048 --workers 1 2

The image (1, 1, size, size) float32 is generated lazily, chunk by chunk, on
the workers; the model is LeNet-5's fully convolutional form; each run
reduces the heat map to its per-class maximum, so no worker or client ever
holds the whole image or map.  Per worker it reports the peak resident memory
during the run (Linux: VmHWM after resetting it), and how far above the
worker's resident size at the start (imports) that is, next to
4 x (chunk + overlap) bytes of input.  Needs dask and distributed.
"""
from __future__ import annotations

import argparse
import time

import dask.array as da
import numpy as np

import fastconv.dask as fdask
from fastconv import models, nn


def make_block(seed, block_info=None):
    (n0, n1), (c0, c1), (h0, h1), (w0, w1) = block_info[None]["array-location"]
    rows = np.arange(h0, h1, dtype=np.float32)[:, None]
    cols = np.arange(w0, w1, dtype=np.float32)[None, :]
    block = np.sin(rows * np.float32(0.37) + cols * np.float32(0.11) + np.float32(seed))
    return np.broadcast_to(block, (n1 - n0, c1 - c0, h1 - h0, w1 - w0)).astype(np.float32)


def lazy_image(size: int, chunk: int):
    chunks = da.core.normalize_chunks((1, 1, chunk, chunk), (1, 1, size, size))
    return da.map_blocks(make_block, 0, chunks=chunks, dtype=np.float32,
                         meta=np.empty((0, 0, 0, 0), np.float32))


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def reset_peak() -> int:
    """Reset VmHWM (peak resident memory) to the current resident size; return that."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def peak_bytes() -> int:
    return _status("VmHWM")


def run(workers: int, threads: int, size: int, chunk: int, rows_per_pass=None) -> None:
    from distributed import Client, LocalCluster

    model = nn.to_fully_convolutional(models.lenet5(), (1, 28, 28))
    heat = fdask.heatmap(model, lazy_image(size, chunk), rows_per_pass=rows_per_pass)
    depth = fdask.overlap(model)[0]
    bound = 4 * (chunk + 2 * depth) ** 2 * 4  # 4 x one float32 chunk with its overlap
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        client.run(fdask.task_threads)  # workers up and fastconv imported
        before = client.run(reset_peak)
        t = time.perf_counter()
        result = client.compute(heat.max(axis=(2, 3))).result()
        seconds = time.perf_counter() - t
        peaks = client.run(peak_bytes)
    assert result.shape == (1, 10) and np.isfinite(result).all()
    print(f"workers={workers} threads/worker={threads} image={size}x{size} chunk={chunk} "
          f"tasks={heat.npartitions} rows/pass={rows_per_pass or 'default'}: {seconds:.2f} s, {size * size / seconds / 1e6:.2f} MP/s")
    for addr, peak in sorted(peaks.items()):
        print(f"  {addr}: peak RSS {peak / 2**20:.0f} MiB, {(peak - before[addr]) / 2**20:.0f} "
              f"MiB above its RSS at the start (4 x (chunk + overlap) = {bound / 2**20:.0f} MiB)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32768, help="image side, pixels")
    ap.add_argument("--chunk", type=int, default=2048, help="chunk side, pixels")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--rows-per-pass", type=int, default=None,
                    help="output rows per model call in a task (default: fastconv.dask's)")
    args = ap.parse_args(argv)
    for w in args.workers:
        run(w, args.threads_per_worker, args.size, args.chunk, args.rows_per_pass)


if __name__ == "__main__":
    main()
