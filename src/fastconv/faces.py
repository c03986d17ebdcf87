"""python -m fastconv detect PHOTO: find faces with MTCNN, print them, draw them.

    python -m fastconv detect photo.jpg --out annotated.png --json faces.json

Reading and drawing images needs Pillow (pip install 'fastconv[image]').
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def faces_json(path, image, boxes, probs, landmarks) -> dict:
    """The detections as plain JSON data."""
    return {"image": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]),
            "faces": [{"box": [round(float(v), 2) for v in box], "prob": round(float(p), 6),
                       "landmarks": {name: [round(float(v), 2) for v in xy]
                                     for name, xy in zip(LANDMARKS, marks)}}
                      for box, p, marks in zip(boxes, probs, landmarks)]}


def draw(image: np.ndarray, boxes, landmarks):
    """A PIL image of `image` with each box and its five landmarks drawn."""
    from PIL import Image, ImageDraw
    out = Image.fromarray(image)
    pen = ImageDraw.Draw(out)
    width = max(1, round(min(image.shape[:2]) / 250))
    for box, marks in zip(boxes, landmarks):
        pen.rectangle([float(v) for v in box], outline=(255, 40, 40), width=width)
        r = max(1.5, (box[2] - box[0]) / 40)
        for x, y in marks:
            pen.ellipse([x - r, y - r, x + r, y + r], fill=(40, 255, 40))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastconv detect",
                                     description="Find faces in a photograph with MTCNN "
                                                 "(trained weights) on fastconv's kernels.")
    parser.add_argument("photo", help="image file (anything Pillow reads)")
    parser.add_argument("--out", metavar="PNG", help="write the photo with boxes and landmarks")
    parser.add_argument("--json", metavar="FILE", help="write the faces as JSON")
    parser.add_argument("--min-face-size", type=float, default=20, metavar="PX",
                        help="smallest face searched for, in pixels (default 20)")
    args = parser.parse_args(argv)
    from .models.mtcnn import MTCNN, read_image
    try:
        detector = MTCNN(min_face_size=args.min_face_size)
        image = read_image(args.photo)
    except (ValueError, ImportError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    boxes, probs, landmarks = detector.detect(image)
    seconds = time.perf_counter() - start
    print(f"{args.photo}: {image.shape[1]}x{image.shape[0]}, {len(boxes)} "
          f"face{'' if len(boxes) == 1 else 's'} ({seconds:.2f} s)")
    for i, (box, p, marks) in enumerate(zip(boxes, probs, landmarks), 1):
        x1, y1, x2, y2 = box
        points = " ".join(f"{name} ({x:.0f}, {y:.0f})" for name, (x, y) in zip(LANDMARKS, marks))
        print(f"  {i}: p={p:.4f} box ({x1:.1f}, {y1:.1f})-({x2:.1f}, {y2:.1f}) "
              f"{x2 - x1:.0f}x{y2 - y1:.0f}; {points}")
    try:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(faces_json(args.photo, image, boxes, probs, landmarks), f, indent=1)
        if args.out:
            draw(image, boxes, landmarks).save(args.out)
    except (OSError, ValueError) as exc:   # unwritable path, unknown image extension
        print(f"{parser.prog}: cannot write output: {exc}", file=sys.stderr)
        return 1
    return 0
