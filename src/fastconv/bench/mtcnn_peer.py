"""facenet-pytorch's MTCNN, the peer of fastconv.models.mtcnn, and photographs to run both on.

facenet_mtcnn() returns facenet-pytorch's `MTCNN(keep_all=True)` (CPU PyTorch;
install it with `pip install --no-deps facenet-pytorch==2.6.0`).  Its
detect_face imports torchvision, whose compiled ops (batched_nms) do not load
on every CPU torch build; then the modules are imported against a small
stand-in package whose `batched_nms` is written here in plain torch with
torchvision's semantics, and detect_face's own `batched_nms` name is pointed
at it.  `nms_seconds` totals the time spent in the stand-in, so a benchmark
can report it apart.

photos() and composite() need scikit-image (its wheel ships the
photographs) and Pillow (to scale the pasted faces).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import types

import numpy as np

nms_seconds = 0.0


def _nms(boxes, scores, threshold):
    """torchvision.ops.nms in plain torch: indices of kept boxes, best first;
    a box is dropped when its IoU with a kept better one exceeds threshold."""
    import torch
    order = torch.argsort(scores, descending=True, stable=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.numel():
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        order = rest[~(inter / (areas[i] + areas[rest] - inter) > threshold)]
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes, scores, idxs, iou_threshold):
    """torchvision.ops.batched_nms in plain torch: _nms within each idxs value,
    all kept indices sorted by decreasing score."""
    global nms_seconds
    import torch
    start = time.perf_counter()
    keep = [torch.nonzero(idxs == c).flatten() for c in torch.unique(idxs)]
    keep = [k[_nms(boxes[k], scores[k], iou_threshold)] for k in keep]
    keep = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.int64)
    keep = keep[torch.argsort(scores[keep], descending=True, stable=True)]
    nms_seconds += time.perf_counter() - start
    return keep


def _torchvision_nms_loads() -> bool:
    before = set(sys.modules)
    try:
        import torch
        from torchvision.ops.boxes import batched_nms as real
        real(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1, dtype=torch.int64), 0.5)
        return True
    except Exception:   # RuntimeError: operator torchvision::nms does not exist, ...
        for name in set(sys.modules) - before:
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]
        return False


def _import_detect_face():
    """facenet_pytorch.models.mtcnn and .utils.detect_face, without running the
    package's __init__ (it imports requests and the face-recognition models)."""
    name = "facenet_pytorch.models.mtcnn"
    if name in sys.modules:
        return sys.modules[name], sys.modules["facenet_pytorch.models.utils.detect_face"]
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None:
        raise ImportError("facenet-pytorch is not installed "
                          "(pip install --no-deps facenet-pytorch==2.6.0)")
    stand_in = not _torchvision_nms_loads()
    stubs = {}
    if "facenet_pytorch" not in sys.modules:
        package = types.ModuleType("facenet_pytorch")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["facenet_pytorch"] = package
    if stand_in:
        for stub in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                     "torchvision.ops", "torchvision.ops.boxes"):
            stubs[stub] = types.ModuleType(stub)
        stubs["torchvision.ops.boxes"].batched_nms = batched_nms
        saved = {k: sys.modules.pop(k) for k in stubs if k in sys.modules}
        sys.modules.update(stubs)
    try:
        mtcnn = importlib.import_module(name)
        detect_face = importlib.import_module("facenet_pytorch.models.utils.detect_face")
    finally:
        for stub in stubs:
            sys.modules.pop(stub, None)
        if stand_in:
            sys.modules.update(saved)
    if stand_in:
        detect_face.batched_nms = batched_nms   # the name detect_face looks up
    return mtcnn, detect_face


def facenet_mtcnn():
    """facenet-pytorch's MTCNN(keep_all=True) with its default settings, on CPU."""
    mtcnn, _ = _import_detect_face()
    return mtcnn.MTCNN(keep_all=True, device="cpu")


def detect_face_nms_is_stand_in() -> bool:
    """Whether facenet-pytorch's detect_face runs this module's batched_nms."""
    return _import_detect_face()[1].batched_nms is batched_nms


def facenet_detect(model, image: np.ndarray):
    """model.detect(image, landmarks=True) as fastconv's contract: float32 arrays,
    empty (0, 4) / (0,) / (0, 5, 2) when there is no face."""
    import torch
    with torch.no_grad():
        boxes, probs, points = model.detect(image, landmarks=True)
    if boxes is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2),
                                                                               np.float32)
    return (np.asarray(boxes, np.float32), np.asarray(probs, np.float32),
            np.asarray(points, np.float32))


# -- photographs -----------------------------------------------------------------------------

#: A region around the one face in each photograph (x0, y0, x1, y1).
FACES = {"astronaut": (150, 30, 300, 205), "camera": (170, 95, 285, 220)}


def photos() -> dict:
    """scikit-image's photographs with a face, as (512, 512, 3) uint8 RGB."""
    from skimage import data
    return {"astronaut": data.astronaut(), "camera": np.repeat(data.camera()[:, :, None], 3, 2)}


def composite(width: int = 1280, height: int = 720, scales=(0.4, 0.7, 1.0, 1.6),
              background: str = "coffee", gap: int = 10) -> np.ndarray:
    """The photographs' faces pasted at each of `scales` onto another
    scikit-image photograph (stretched to width x height), left to right,
    `gap` pixels apart (a negative gap overlaps them)."""
    from PIL import Image
    from skimage import data
    canvas = Image.fromarray(getattr(data, background)()).convert("RGB")
    canvas = canvas.resize((width, height), Image.BILINEAR)
    faces = [Image.fromarray(img[y0:y1, x0:x1]) for name, img in photos().items()
             for x0, y0, x1, y1 in [FACES[name]]]
    x = max(gap, 0)
    for i, scale in enumerate(scales):
        face = faces[i % len(faces)]
        face = face.resize((max(1, round(face.width * scale)), max(1, round(face.height * scale))),
                           Image.BILINEAR)
        if x + face.width > width or face.height > height:
            raise ValueError(f"composite: faces at scales {scales} do not fit in "
                             f"{width}x{height}")
        canvas.paste(face, (x, (height - face.height) // 2 + (-1) ** i * height // 8))
        x += face.width + gap
    return np.asarray(canvas)
