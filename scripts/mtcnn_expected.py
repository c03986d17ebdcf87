"""Write tests/data/mtcnn_expected.json: facenet-pytorch's MTCNN on scikit-image's photographs.

    pip install --no-deps facenet-pytorch==2.6.0 && pip install scikit-image
    PYTHONPATH=src python scripts/mtcnn_expected.py

The reference result tests/test_mtcnn.py checks fastconv.models.mtcnn against
where torch and facenet-pytorch are not installed (it still needs
scikit-image for the photographs).  Runs facenet-pytorch only: nothing of
fastconv's detector is involved.
"""
from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

from fastconv.bench import mtcnn_peer

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "mtcnn_expected.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    model = mtcnn_peer.facenet_mtcnn()
    result = {"made_by": "scripts/mtcnn_expected.py: facenet-pytorch "
                         f"{version('facenet-pytorch')} MTCNN(keep_all=True)"
                         ".detect(image, landmarks=True), torch " + version("torch") +
                         ", scikit-image " + version("scikit-image")}
    for name, image in mtcnn_peer.photos().items():
        boxes, probs, points = mtcnn_peer.facenet_detect(model, image)
        result[name] = {"boxes": boxes.tolist(), "probs": probs.tolist(),
                        "landmarks": points.tolist()}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
