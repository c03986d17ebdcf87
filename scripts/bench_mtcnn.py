"""Time fastconv's MTCNN detect() next to facenet-pytorch's, at the same thread count.

    pip install --no-deps facenet-pytorch==2.6.0 && pip install scikit-image pillow
    PYTHONPATH=src python scripts/bench_mtcnn.py --threads 1,2 --rounds 15

Scenes: scikit-image's astronaut and camera photographs (512x512) and a
1280x720 composite (their faces pasted at four scales onto another
photograph).  Per scene and thread count, both detectors run once to warm up
(and their faces are checked to agree), then in alternating rounds (A B, B A,
...) so drift in the machine's load hits both alike; the table gives medians.
facenet-pytorch runs on CPU PyTorch with torch.set_num_threads; when
torchvision's compiled NMS does not load, it uses the plain-torch stand-in of
fastconv.bench.mtcnn_peer, whose time is reported in its own column (the
compiled NMS would cost less); the last column leaves it out of facenet-pytorch's
time (per round, then the median).  Only meaningful on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import fastconv
import fastconv.backends.c
from fastconv.bench import mtcnn_peer
from fastconv.models import mtcnn


def scenes() -> dict:
    photos = mtcnn_peer.photos()
    return {"astronaut 512x512": photos["astronaut"], "camera 512x512": photos["camera"],
            "composite 1280x720": mtcnn_peer.composite(1280, 720)}


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def agree(mine, theirs) -> bool:
    """The same number of faces, each of theirs matched at IoU >= 0.9."""
    return len(mine[0]) == len(theirs[0]) and all(
        max((_iou(m, t) for m in mine[0]), default=0) >= 0.9 for t in theirs[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per detector")
    args = parser.parse_args(argv)
    import torch
    threads = [int(t) for t in args.threads.split(",")]
    if args.rounds < 1 or any(t < 1 for t in threads):
        parser.error("--rounds and --threads must be positive")
    mine, theirs = mtcnn(), mtcnn_peer.facenet_mtcnn()
    stand_in = mtcnn_peer.detect_face_nms_is_stand_in()
    print(f"fastconv {fastconv.__version__} ({fastconv.backends.c.isa()}), torch "
          f"{torch.__version__}, facenet-pytorch MTCNN(keep_all=True); NMS in facenet-pytorch: "
          f"{'plain-torch stand-in' if stand_in else 'torchvision'}; {args.rounds} rounds\n")
    print("| scene | threads | faces | fastconv ms | facenet-pytorch ms | of which stand-in "
          "NMS ms | facenet / fastconv | facenet without NMS / fastconv |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in threads:
        fastconv.set_num_threads(n)
        torch.set_num_threads(n)
        for name, image in scenes().items():
            a = mine.detect(image)
            b = mtcnn_peer.facenet_detect(theirs, image)
            if not agree(a, b):
                print(f"| {name} | {n} | results differ: fastconv {len(a[0])} faces, "
                      f"facenet-pytorch {len(b[0])} | | | | | |")
                continue
            times = {"fastconv": [], "facenet": [], "nms": []}
            for r in range(args.rounds):
                for who in (("fastconv", "facenet") if r % 2 == 0 else ("facenet", "fastconv")):
                    nms_before = mtcnn_peer.nms_seconds
                    start = time.perf_counter()
                    if who == "fastconv":
                        mine.detect(image)
                    else:
                        mtcnn_peer.facenet_detect(theirs, image)
                    times[who].append(time.perf_counter() - start)
                    if who == "facenet":
                        times["nms"].append(mtcnn_peer.nms_seconds - nms_before)
            times["without"] = [f - s for f, s in zip(times["facenet"], times["nms"])]
            ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            print(f"| {name} | {n} | {len(a[0])} | {ms['fastconv']:.1f} | {ms['facenet']:.1f} "
                  f"| {ms['nms']:.1f} | {ms['facenet'] / ms['fastconv']:.2f}x "
                  f"| {ms['without'] / ms['fastconv']:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
