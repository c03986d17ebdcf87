"""Where a whole network's time goes: fastconv's time per node of a loaded
ONNX graph, summed by layer type, beside ONNX Runtime's own per-operator
profile of the same file.

    python scripts/profile_graph.py squeezenet1_1 --batch 1 --threads 1 --rounds 20
    python scripts/profile_graph.py path/to/model.onnx --size 224 --top 15

A torchvision name is built and exported as the networks benchmark does
(needs torch and torchvision); a path is loaded as is.  Timing a node
synchronises around it, so the fastconv total is a little above a plain
forward; ONNX Runtime fuses nodes (Conv + Relu is one FusedConv), so compare
the groups, not node counts.  Per node: the median over the rounds (a
shared machine's spikes stay out of it).  Each side runs in its own process: thread pools
of the two stay out of each other's way.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _fastconv_profile(path, batch, size, threads, rounds):
    import fastconv
    from fastconv import onnx as fonnx
    fastconv.set_num_threads(threads)
    g = fonnx.load(path)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    spent = collections.defaultdict(list)
    for node in g.nodes:
        layer = node.layer

        def timed(*args, _forward=layer.forward, _node=node, **kwargs):
            t0 = time.perf_counter()
            y = _forward(*args, **kwargs)
            spent[_node.name].append(time.perf_counter() - t0)
            return y
        layer.forward = timed
    g(x)
    spent.clear()
    t0 = time.perf_counter()
    for _ in range(rounds):
        g(x)
    total = (time.perf_counter() - t0) / rounds
    rows = []
    for node in g.nodes:
        kind = type(node.layer).__name__ + ("+residual" if node.residual else "")
        rows.append((node.name, kind, node.describe(), float(np.median(spent[node.name])) if spent[node.name] else 0.0,
                     node.outputs[0]))
    return {"total": total, "nodes": rows}


def _ort_profile(path, batch, size, threads, rounds):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    sess.run(None, {name: x})
    t0 = time.perf_counter()
    for _ in range(rounds):
        sess.run(None, {name: x})
    total = (time.perf_counter() - t0) / rounds
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    spent = collections.defaultdict(list)
    kinds = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            node = e["name"][:-len("_kernel_time")]
            spent[node].append(e["dur"] * 1e-6)
            kinds[node] = e["args"].get("op_name", "?")
    rows = [(n, kinds[n], "", float(np.median(s)), n) for n, s in spent.items()]
    return {"total": total, "nodes": rows}


def _child(args):
    fn = _fastconv_profile if args.child == "fastconv" else _ort_profile
    out = fn(args.model, args.batch, args.size, args.threads, args.rounds)
    print(json.dumps(out))


def _in_process(which, path, args):
    cmd = [sys.executable, __file__, path, "--child", which, "--batch", str(args.batch),
           "--size", str(args.size), "--threads", str(args.threads), "--rounds",
           str(args.rounds)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _by_kind(rows):
    groups = collections.defaultdict(lambda: [0.0, 0])
    for _, kind, _, s, _ in rows:
        groups[kind][0] += s
        groups[kind][1] += 1
    return sorted(groups.items(), key=lambda kv: -kv[1][0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a torchvision network name or an .onnx path")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--top", type=int, default=12, help="slowest fastconv nodes to list")
    p.add_argument("--child", choices=("fastconv", "onnxruntime"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    path = args.model
    with tempfile.TemporaryDirectory() as tmp:
        if not os.path.exists(path):
            from fastconv.bench import netbench
            path = os.path.join(tmp, f"{args.model}.onnx")
            netbench.export(netbench.build(args.model), args.size, path)
        fc = _in_process("fastconv", path, args)
        ort = _in_process("onnxruntime", path, args)
    nodes_ms = {k: sum(r[3] for r in v["nodes"]) * 1e3 for k, v in (("fc", fc), ("ort", ort))}
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, {args.threads} "
          f"thread(s), {args.rounds} rounds: fastconv {fc['total'] * 1e3:.2f} ms "
          f"(nodes {nodes_ms['fc']:.2f}), onnxruntime {ort['total'] * 1e3:.2f} ms "
          f"(nodes {nodes_ms['ort']:.2f})")
    for title, rows in (("fastconv", fc["nodes"]), ("onnxruntime", ort["nodes"])):
        print(f"\n{title}: ms by layer type (count)")
        for kind, (s, n) in _by_kind(rows):
            print(f"  {kind:<28} {s * 1e3:8.3f}  ({n})")
    # ONNX Runtime names a node it fused, or moved to its NCHWc layout, after
    # the fused output (plus "_nchwc"), or keeps the node's name.
    ort_ms = {name: s for name, _, _, s, _ in ort["nodes"]}

    def theirs(name, output):
        for key in (name, output, output + "_nchwc"):
            if key in ort_ms:
                return f"{ort_ms[key] * 1e3:8.3f}"
        return "       -"

    print(f"\nfastconv's {args.top} slowest nodes: fastconv ms, onnxruntime ms")
    for name, _, desc, s, output in sorted(fc["nodes"], key=lambda r: -r[3])[:args.top]:
        print(f"  {s * 1e3:8.3f} {theirs(name, output)}  {name}: {desc}")


if __name__ == "__main__":
    main()
