"""Heat-map throughput of fastconv.dask on a LocalCluster, and per-worker peak memory.

    python benchmarks/dask_heatmap.py --size 32768 --chunk 2048 --workers 1 2

The image (1, 1, size, size) float32 is generated lazily, chunk by chunk, on
the workers; the model is LeNet-5's fully convolutional form; each run
reduces the heat map to its per-class maximum, so no worker or client ever
holds the whole image or map.

Runs, each on a fresh cluster of worker processes:
- `--workers 1 2`: that many single-threaded workers (one task at a time, one
  fastconv thread per task), and the throughput ratio of the largest to the
  smallest count.
- `--threads T` (default 2; 0 skips): one worker running T tasks at once with
  one fastconv thread each, against one worker running one task at a time
  with T fastconv threads: the same thread total, concurrent tasks against
  tasks one after the other, on a `--threads-size` image (default 8192).

Per worker it reports the peak resident memory during the run (Linux: VmHWM,
reset just before), how far above the worker's resident size at the start
that is, 4 x (chunk + overlap) bytes of float32 input next to it, and the
most image chunks alive in it at once.  Before the reset each worker has run
a small heat map, so one-time costs (imports, the C core's thread pool,
packed weights) are in the start, not in the peak; the RSS after the run shows what the worker kept without holding
any data (its own bookkeeping, allocator caches).  The scheduler hands each
worker one root task per thread (worker-saturation 1.0; Dask's default 1.1
rounds up to two for a one-thread worker, so it generates a second chunk
while the first is still in use) and does not steal tasks (a stolen task's
chunk stays on its first worker until the thief has run it); both options
can be set back to Dask's defaults.  Needs dask and distributed.
"""
from __future__ import annotations

import argparse
import time
import weakref

import dask
import dask.array as da
import numpy as np

import fastconv.dask as fdask
from fastconv import models, nn


def _chunks_alive(worker=None) -> list:
    """[chunks alive now, most alive at once] in this worker process."""
    from distributed import get_worker
    return (worker or get_worker()).__dict__.setdefault("fastconv_bench_chunks", [0, 0])


def _freed(alive):
    alive[0] -= 1


def make_block(seed, block_info=None):
    """One float32 chunk, built in place (no chunk-sized temporaries), and
    counted while alive."""
    (n0, n1), (c0, c1), (h0, h1), (w0, w1) = block_info[None]["array-location"]
    block = np.empty((n1 - n0, c1 - c0, h1 - h0, w1 - w0), np.float32)
    rows = np.arange(h0, h1, dtype=np.float32)[:, None] * np.float32(0.37)
    cols = np.arange(w0, w1, dtype=np.float32)[None, :] * np.float32(0.11) + np.float32(seed)
    np.add(rows, cols, out=block[0, 0])
    np.sin(block[0, 0], out=block[0, 0])
    block[...] = block[0, 0]
    alive = _chunks_alive()
    alive[0] += 1
    alive[1] = max(alive[1], alive[0])
    weakref.finalize(block, _freed, alive)
    return block


def lazy_image(size: int, chunk: int, seed: int = 0):
    chunks = da.core.normalize_chunks((1, 1, chunk, chunk), (1, 1, size, size))
    return da.map_blocks(make_block, seed, chunks=chunks, dtype=np.float32,
                         meta=np.empty((0, 0, 0, 0), np.float32))


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def reset_peak(dask_worker) -> int:
    """Reset VmHWM (peak resident memory) and the most chunks alive to now;
    return the resident size."""
    alive = _chunks_alive(dask_worker)
    alive[1] = alive[0]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def peaks(dask_worker) -> tuple[int, int, int]:
    """Peak resident bytes, resident bytes now, most image chunks alive at once."""
    return _status("VmHWM"), _status("VmRSS"), _chunks_alive(dask_worker)[1]


def warm_up(model) -> None:
    """A task: a small heat map in this worker, so its one-time costs are paid."""
    fdask.heatmap(model, lazy_image(256, 128, seed=1)).max().compute(scheduler="sync")


def run(model, size: int, chunk: int, workers: int, tasks_at_once: int, task_threads: int,
        rows_per_pass=None, saturation=1.0, stealing=False) -> float:
    """One timed heat map on a fresh LocalCluster; prints its line, returns MP/s."""
    from distributed import Client, LocalCluster

    heat = fdask.heatmap(model, lazy_image(size, chunk), rows_per_pass=rows_per_pass)
    back = fdask.overlap(model)[0]
    bound = 4 * (chunk + back) ** 2 * 4  # 4 x a float32 chunk extended by the overlap
    # Dask's nanny sets OMP_NUM_THREADS=1 in workers; fastconv reads it as its
    # thread count, which fastconv.dask's tasks then divide among concurrent tasks.
    with dask.config.set({"distributed.scheduler.worker-saturation": saturation,
                          "distributed.scheduler.work-stealing": stealing}), \
            LocalCluster(n_workers=workers, threads_per_worker=tasks_at_once, processes=True,
                         dashboard_address=None, silence_logs=40,
                         env={"OMP_NUM_THREADS": str(task_threads)}) as cluster, \
            Client(cluster) as client:
        client.gather([client.submit(warm_up, model, workers=[addr], pure=False)
                       for addr in client.scheduler_info()["workers"]])
        threads_in_task = client.submit(fdask.task_threads, pure=False).result()
        before = client.run(reset_peak)
        t = time.perf_counter()
        result = client.compute(heat.max(axis=(2, 3))).result()
        seconds = time.perf_counter() - t
        most = client.run(peaks)
    assert result.shape == (1, 10) and np.isfinite(result).all()
    mps = size * size / seconds / 1e6
    print(f"workers={workers} tasks at once/worker={tasks_at_once} fastconv threads/task="
          f"{threads_in_task} image={size}x{size} chunk={chunk} "
          f"rows/pass={rows_per_pass or 'default'} worker-saturation={saturation} "
          f"work-stealing={stealing}: {seconds:.2f} s, {mps:.2f} MP/s")
    mib = 2 ** -20
    for addr, (peak, after, chunks) in sorted(most.items()):
        print(f"  {addr}: peak RSS {peak * mib:.0f} MiB, {(peak - before[addr]) * mib:.0f} MiB "
              f"above its RSS at the start (4 x (chunk + overlap) = {bound * mib:.0f} MiB); "
              f"at most {chunks} image chunks alive at once; RSS after the run, with no "
              f"task or chunk left, {(after - before[addr]) * mib:.0f} MiB above the start")
    return mps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32768, help="image side, pixels")
    ap.add_argument("--chunk", type=int, default=2048, help="chunk side, pixels")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2],
                    help="single-threaded worker counts to run")
    ap.add_argument("--threads", type=int, default=2,
                    help="tasks at once in one worker for the thread comparison (0: skip)")
    ap.add_argument("--threads-size", type=int, default=8192,
                    help="image side for the thread comparison")
    ap.add_argument("--rows-per-pass", type=int, default=None,
                    help="output rows per model call in a task (default: fastconv.dask's)")
    ap.add_argument("--worker-saturation", type=float, default=1.0,
                    help="Dask's root tasks per worker thread (Dask's default: 1.1)")
    ap.add_argument("--work-stealing", action="store_true",
                    help="let the scheduler move tasks between workers (Dask's default)")
    args = ap.parse_args(argv)
    model = nn.to_fully_convolutional(models.lenet5(), (1, 28, 28))
    cluster = dict(rows_per_pass=args.rows_per_pass, saturation=args.worker_saturation,
                   stealing=args.work_stealing)
    rate = {w: run(model, args.size, args.chunk, w, 1, 1, **cluster) for w in args.workers}
    if len(rate) > 1:
        lo, hi = min(rate), max(rate)
        print(f"{hi} single-threaded workers / {lo}: {rate[hi] / rate[lo]:.2f}x the throughput")
    if args.threads > 1:
        size, t = args.threads_size, args.threads
        at_once = run(model, size, args.chunk, 1, t, 1, **cluster)
        in_turn = run(model, size, args.chunk, 1, 1, t, **cluster)
        print(f"1 worker, {t} fastconv threads in all: {t} tasks at once {at_once:.2f} MP/s, "
              f"one after the other {in_turn:.2f} MP/s: {at_once / in_turn:.2f}x")


if __name__ == "__main__":
    main()
