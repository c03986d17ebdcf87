"""Error of Winograd (F(4x4, 3x3), or F(2x2, 3x3) where fastconv.lower picks
it) against the float64 oracle on the benchmark suite's 3x3 stride-1 layers (batch 1, x ~ N(0, 1), He-scaled weights), next to
direct convolution's in the same precision: max |err| / max |output|, and
which F and how the tile GEMMs ran (the packed GEMM, or the few-tile kernel;
fastconv.lower).

    PYTHONPATH=src python scripts/winograd_error.py [--dtype float32|float64]
"""
import argparse

import numpy as np

import fastconv
from fastconv import lower
from fastconv.bench import suites


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    dtype = np.dtype(ap.parse_args().dtype)
    rng = np.random.default_rng(0)
    print("| layer | C -> K, HxW | F | tile GEMMs | winograd | direct |")
    print("| --- | --- | --- | --- | --- | --- |")
    for e in suites.RESNET50 + suites.VGG16:
        if (e.kh, e.kw, e.stride, e.groups) != (3, 3, 1, 1):
            continue
        x = rng.standard_normal((1, e.c, e.h, e.w))
        w = rng.standard_normal((e.k, e.c, 3, 3)) * np.sqrt(2 / (9 * e.c))
        want = fastconv.conv2d(x, w, padding=e.pad, backend="numpy")
        scale = np.abs(want).max()
        errs = []
        for algo in ("winograd", "direct"):
            got = fastconv.conv2d(x.astype(dtype), w.astype(dtype), padding=e.pad, algorithm=algo)
            errs.append(np.abs(got - want).max() / scale)
        plan = lower.conv2d(x.shape, w.shape, padding=e.pad, algorithm="winograd", dtype=dtype)
        t = plan.winograd_tile
        print(f"| {e.id} | {e.c} -> {e.k}, {e.h}x{e.w} | {t}x{t} | {plan.tile_gemm} | "
              f"{errs[0]:.1e} | {errs[1]:.1e} |", flush=True)


if __name__ == "__main__":
    main()
