"""Run by test_fork.py as a script: one parallel conv here, then the same conv
in child processes.  argv: start method, "pool" or "executor", backend,
thread count.  Prints one line per child result."""
import concurrent.futures
import multiprocessing
import sys
import time

import numpy as np

import fastconv

#: A forked child's conv must return within this many seconds (Numba's
#: included: it compiles serial kernels there); a spawned child first imports
#: fastconv (and loads Numba's kernels).
TIMEOUT = {"fork": 10, "spawn": 120, "forkserver": 120}


def problem():
    rng = np.random.default_rng(0)  # small integers: every backend is exact
    x = rng.integers(-2, 3, (4, 8, 40, 40)).astype(np.float32)
    w = rng.integers(-2, 3, (32, 8, 3, 3)).astype(np.float32)
    return x, w


def conv(job):
    backend, algorithm = job
    x, w = problem()
    y = fastconv.conv2d(x, w, padding=1, backend=backend, algorithm=algorithm)
    want = fastconv.conv2d(x, w, padding=1, backend="numpy")
    return f"{'exact' if np.array_equal(y, want) else 'WRONG'} threads={fastconv.get_num_threads()}"


def main(method, pool, backend, threads):
    fastconv.set_num_threads(int(threads))
    print("parent", conv((backend, "direct")), flush=True)  # starts OpenMP's worker pool
    jobs = [(backend, "direct"), (backend, "im2col")]
    ctx = multiprocessing.get_context(method)
    t = time.perf_counter()
    if pool == "pool":
        with ctx.Pool(2) as p:
            results = p.map_async(conv, jobs).get(timeout=TIMEOUT[method])
    else:
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
            results = list(ex.map(conv, jobs, timeout=TIMEOUT[method]))
    for r in results:
        print("child", r)
    print(f"seconds {time.perf_counter() - t:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
