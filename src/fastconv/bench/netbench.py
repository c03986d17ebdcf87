"""Whole networks: `python -m fastconv bench --suite networks`.

The six torchvision architectures with random weights, run by fastconv (the
ONNX export loaded with fastconv.onnx), ONNX Runtime (all graph optimisations
on, the same file) and PyTorch eager (the same weights).  Each implementation
lives in a worker process of its own, so no one's thread pool, allocator or
caches share a process with another's; the parent asks the workers in turn
for one timed block of calls (a round), reversing the order every other
round, and reports the median block time per call.

Needs torch and torchvision (model definitions), onnx and onnxruntime.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

NETWORKS = ("alexnet", "vgg16", "resnet50", "googlenet", "squeezenet1_1", "mobilenet_v2")
#: "fastconv-winograd": fastconv with fastconv.set_winograd(True) (auto may pick Winograd).
IMPLS = ("fastconv", "fastconv-winograd", "onnxruntime", "torch")


def torchvision_models():
    """torchvision.models, imported although its compiled ops do not load.

    On a CPU-only torch, `import torchvision` fails while registering fake
    (meta) kernels for its compiled ops (nms, roi_align, ...).  The model
    definitions need none of them, so those registrations are skipped while
    torchvision imports, and torch.library is restored afterwards."""
    import torch
    if "torchvision.models" in sys.modules:
        return sys.modules["torchvision.models"]
    real = torch.library.register_fake

    def tolerant(op, func=None, /, **kwargs):
        def register(f):
            try:
                return real(op, f, **kwargs)
            except RuntimeError:  # "operator torchvision::nms does not exist"
                return f
        return register if func is None else register(func)

    torch.library.register_fake = tolerant
    try:
        import torchvision.models as models
    finally:
        torch.library.register_fake = real
    return models


def build(name, seed=0):
    """The torchvision model `name`, randomly initialised from `seed`, in eval mode,
    with random batch norm statistics (so folding them is not a no-op)."""
    import torch
    models = torchvision_models()
    torch.manual_seed(seed)
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(models, name)(weights=None, **kwargs).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model


def export(model, size, f):
    """torch.onnx.export at opset 17 (the TorchScript exporter), batch axis free."""
    import warnings

    import torch
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose: the dynamo one needs onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), f, opset_version=17,
                          dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


# ---- worker: one implementation in its own process ---------------------------------

def _runner(impl, name, path, threads):
    if impl in ("fastconv", "fastconv-winograd"):
        import fastconv
        from fastconv import onnx as fonnx
        fastconv.set_num_threads(threads)
        fastconv.set_winograd(impl == "fastconv-winograd")
        g = fonnx.load(path)
        return lambda x: g(x)
    if impl == "onnxruntime":
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return lambda x: s.run(None, {"x": x})[0]
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
        model = build(name)

        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
        return run
    raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")


#: "wall": elapsed time; "process": the worker's CPU time (all its threads), which
#: on a machine other work shares counts less of the waiting for a core.
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def worker(impl, name, path, threads, batch, size, clock="wall"):
    """Answer "calls N" with one timed block of N calls (JSON on stdout)."""
    now = CLOCKS[clock]
    run = _runner(impl, name, path, threads)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    y = run(x)
    np.save(path + f".{impl}.npy", y)
    t0 = now()
    run(x)
    print(json.dumps({"ready": now() - t0}), flush=True)
    for line in sys.stdin:
        n = int(line.split()[1])
        t0 = now()
        for _ in range(n):
            run(x)
        print(json.dumps({"seconds": (now() - t0) / n}), flush=True)


# ---- parent: export once, start the workers, alternate rounds -----------------------

def _ask(proc, n):
    proc.stdin.write(f"calls {n}\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"worker exited: {proc.stderr.read()[-2000:]}")
    return json.loads(line)["seconds"]


def bench_network(name, batch, threads, size=224, rounds=5, block_seconds=0.5,
                  impls=IMPLS, note=print, clock="wall"):
    """{impl: [seconds per call, one per round]} and {impl: max error vs ONNX Runtime}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.onnx")
        export(build(name), size, path)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        procs, reps = {}, {}
        try:
            for impl in impls:
                procs[impl] = subprocess.Popen(
                    [sys.executable, "-m", "fastconv.bench.netbench", "worker", impl, name, path,
                     str(threads), str(batch), str(size), clock],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env=env)
                # Start them one at a time: loading must not overlap another's timing.
                line = procs[impl].stdout.readline()
                if not line:
                    raise RuntimeError(f"{impl} worker failed: "
                                       f"{procs[impl].stderr.read()[-2000:]}")
                once = json.loads(line)["ready"]
                reps[impl] = max(1, round(block_seconds / max(once, 1e-6)))
            times = {impl: [] for impl in impls}
            for r in range(rounds):
                for impl in (impls if r % 2 == 0 else impls[::-1]):
                    time.sleep(0.1)   # let the last worker's spinning threads settle
                    times[impl].append(_ask(procs[impl], reps[impl]))
        finally:
            for p in procs.values():
                p.stdin.close()
                p.wait(timeout=60)
        ref = np.load(path + ".onnxruntime.npy") if "onnxruntime" in impls else None
        errors = {}
        for impl in impls:
            y = np.load(path + f".{impl}.npy")
            errors[impl] = None if ref is None else \
                float(np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30))
    return times, errors


def run(networks=NETWORKS, batches=(1, 8), threads=2, size=224, rounds=5, block_seconds=0.5,
        impls=IMPLS, out=print, clock="wall"):
    """Time every network at every batch; print one row per network and return the rows."""
    rows = []
    out(f"{'network':<15} {'batch':>5} " + " ".join(f"{i + ' ms':>15}" for i in impls)
        + f" {'ort/fastconv':>13} {'max err':>9}")
    for batch in batches:
        for name in networks:
            times, errors = bench_network(name, batch, threads, size, rounds, block_seconds,
                                          impls, clock=clock)
            ms = {i: 1e3 * statistics.median(t) for i, t in times.items()}
            ratio = ms["onnxruntime"] / ms["fastconv"] if {"onnxruntime", "fastconv"} <= \
                set(ms) else None
            err = errors.get("fastconv")
            row = {"network": name, "batch": batch, "threads": threads, "size": size,
                   "clock": clock, "ms": ms, "rounds": rounds, "ort_over_fastconv": ratio,
                   "fastconv_error": err}
            if "fastconv-winograd" in ms and "onnxruntime" in ms:
                row["ort_over_winograd"] = ms["onnxruntime"] / ms["fastconv-winograd"]
                row["winograd_error"] = errors["fastconv-winograd"]
            rows.append(row)
            out(f"{name:<15} {batch:>5} " + " ".join(f"{ms[i]:>15.2f}" for i in impls)
                + f" {ratio if ratio else float('nan'):>13.3f}"
                + f" {err if err is not None else float('nan'):>9.1e}")
    for batch in batches:
        ratios = [r["ort_over_fastconv"] for r in rows if r["batch"] == batch and
                  r["ort_over_fastconv"]]
        if ratios:
            out(f"batch {batch}: geometric mean of ort/fastconv "
                f"{float(np.exp(np.mean(np.log(ratios)))):.3f} over {len(ratios)} networks")
        wino = [r["ort_over_winograd"] for r in rows if r["batch"] == batch and
                "ort_over_winograd" in r]
        if wino:
            out(f"batch {batch}: geometric mean of ort/fastconv-winograd "
                f"{float(np.exp(np.mean(np.log(wino)))):.3f} over {len(wino)} networks")
    return rows


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    _, _, impl_, name_, path_, threads_, batch_, size_, *clock_ = sys.argv
    worker(impl_, name_, path_, int(threads_), int(batch_), int(size_), *clock_)
