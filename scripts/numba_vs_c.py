"""Numba against the C backend (conv) and against NumPy (GEMM), from the JSON
files of `python -m fastconv bench` runs, one implementation per process:

    python -m fastconv bench --suite resnet50,vgg16 --threads 2 --batch 1 \
        --backends c --compare none --json /tmp/conv_c.json
    python -m fastconv bench --suite resnet50,vgg16 --threads 2 --batch 1 \
        --backends numba --compare none --json /tmp/conv_numba.json
    python -m fastconv bench --suite gemm --threads 1,2 --backends numba \
        --compare none --json /tmp/gemm_numba.json
    python -m fastconv bench --suite gemm --threads 1,2 --backends c \
        --compare numpy --json /tmp/gemm_numpy.json
    python scripts/numba_vs_c.py /tmp/conv_c.json /tmp/conv_numba.json \
        /tmp/gemm_numba.json /tmp/gemm_numpy.json

Prints time(C) / time(Numba) per layer (algorithm "auto") and its geometric
mean over the layers below, and time(NumPy) / time(Numba) per GEMM shape
and thread count with its geometric mean.  Ratios above 1: Numba is faster.
"""
import json
import math
import sys

CONV_LAYERS = ("resnet50/l1.3x3", "resnet50/l2.3x3", "resnet50/l3.3x3", "resnet50/l4.3x3",
               "resnet50/l1.1x1b", "vgg16/conv4_2")


def geomean(values):
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main(paths):
    ms = {}  # (entry, threads, batch, implementation) -> ms
    for path in paths:
        for r in json.load(open(path))["rows"]:
            impl = r["backend"] if r["algorithm"] is None else f"{r['backend']}/{r['algorithm']}"
            ms[(f"{r['suite']}/{r['layer']}", r["threads"], r["batch"], impl)] = r["ms"]
    conv = [(entry, t, b, ms[(entry, t, b, "c/auto")] / ms[(entry, t, b, "numba/auto")])
            for (entry, t, b, impl) in sorted(ms) if impl == "numba/auto"
            and entry in CONV_LAYERS and (entry, t, b, "c/auto") in ms]
    for entry, t, b, ratio in conv:
        print(f"conv {entry:18s} {t} thread(s) batch {b}: C / Numba {ratio:.2f}")
    for t, b in sorted({(t, b) for _, t, b, _ in conv}):
        print(f"conv geomean ({t} thread(s), batch {b}): "
              f"{geomean(r for _, t2, b2, r in conv if (t2, b2) == (t, b)):.2f}")
    gemm = [(entry, t, ms[(entry, t, b, "numpy")] / ms[(entry, t, b, "numba/gemm")])
            for (entry, t, b, impl) in sorted(ms) if impl == "numba/gemm"
            and entry.startswith("gemm/") and (entry, t, b, "numpy") in ms]
    for entry, t, ratio in gemm:
        print(f"gemm {entry:22s} {t} thread(s): NumPy / Numba {ratio:.2f}")
    for t in sorted({t for _, t, _ in gemm}):
        print(f"gemm geomean ({t} thread(s)): {geomean(r for _, t2, r in gemm if t2 == t):.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
