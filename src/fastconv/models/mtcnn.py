"""MTCNN face detection (Zhang et al., 2016) with trained weights, on fastconv.

Three networks in a cascade:

- P-Net, fully convolutional, runs once per level of an image pyramid and
  proposes a box wherever a 12x12 window (at stride 2) looks like a face;
- R-Net rescores and refines each proposal on a 24x24 crop;
- O-Net does the same on a 48x48 crop and adds five landmarks (eyes, nose,
  mouth corners).

R-Net and O-Net end in FC layers; they run as the FC networks they are,
batched over all crops (`nn.to_fully_convolutional` turns them into convs that
give the same numbers).  Everything between the networks (pyramid, NMS, box
regression, squaring, crops) follows facenet-pytorch's `detect_face`, so
`MTCNN().detect(image)` returns what facenet-pytorch's
`MTCNN(keep_all=True).detect(image, landmarks=True)` does, with empty arrays
instead of None when there is no face.  Weights: mtcnn.npz (MTCNN_WEIGHTS.md
says where they come from and their licence).
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from .. import nn
from . import _weights
from .pnet import PNet, conv, pnet, prelu

__all__ = ["MTCNN", "mtcnn", "rnet", "onet", "PNet", "pnet"]


def _is_number(v) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v)))


def _linear(k: int, c: int, seed: int, index: int) -> nn.Linear:
    return nn.Linear(_weights.seeded((k, c), c, seed, index), _weights.seeded_bias(k, seed, index))


def _cascade_net(layers, name, weights, input_shape) -> nn.Sequential:
    if isinstance(weights, str) and weights == "trained":
        weights = _weights.trained(name)
    if weights is not None:
        _weights.load(layers, weights)
    return nn.Sequential(*layers, input_shape=input_shape)


def rnet(weights="trained", seed: int = 0) -> nn.Sequential:
    """R-Net on a 3x24x24 crop -> (N, 6): face / not-face logits, then 4 box offsets.

        conv 3x3 3->28, PReLU, max-pool 3 stride 2 (ceil) -> 28x11x11
        conv 3x3 28->48, PReLU, max-pool 3 stride 2 (ceil) -> 48x4x4
        conv 2x2 48->64, PReLU, Flatten                  -> 576
        FC 576->128, PReLU, FC 128->6

    weights: "trained" (mtcnn.npz), None (seeded) or an .npz path / mapping.
    """
    layers = [conv(28, 3, 3, seed, 0), prelu(28), nn.MaxPool2d(3, 2, ceil_mode=True),
              conv(48, 28, 3, seed, 3), prelu(48), nn.MaxPool2d(3, 2, ceil_mode=True),
              conv(64, 48, 2, seed, 6), prelu(64), nn.Flatten(),
              _linear(128, 576, seed, 9), prelu(128), _linear(6, 128, seed, 11)]
    return _cascade_net(layers, "rnet", weights, (3, 24, 24))


def onet(weights="trained", seed: int = 0) -> nn.Sequential:
    """O-Net on a 3x48x48 crop -> (N, 16): face / not-face logits, 4 box offsets,
    then the 5 landmarks' x and 5 landmarks' y (fractions of the crop).

        conv 3x3 3->32, PReLU, max-pool 3 stride 2 (ceil) -> 32x23x23
        conv 3x3 32->64, PReLU, max-pool 3 stride 2 (ceil) -> 64x10x10
        conv 3x3 64->64, PReLU, max-pool 2 (ceil)          -> 64x4x4
        conv 2x2 64->128, PReLU, Flatten                   -> 1152
        FC 1152->256, PReLU, FC 256->16
    """
    layers = [conv(32, 3, 3, seed, 0), prelu(32), nn.MaxPool2d(3, 2, ceil_mode=True),
              conv(64, 32, 3, seed, 3), prelu(64), nn.MaxPool2d(3, 2, ceil_mode=True),
              conv(64, 64, 3, seed, 6), prelu(64), nn.MaxPool2d(2, 2, ceil_mode=True),
              conv(128, 64, 2, seed, 9), prelu(128), nn.Flatten(),
              _linear(256, 1152, seed, 12), prelu(256), _linear(16, 256, seed, 14)]
    return _cascade_net(layers, "onet", weights, (3, 48, 48))


# -- image input -----------------------------------------------------------------------------

def read_image(path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array (Pillow, imported here only)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading an image file needs Pillow: pip install 'fastconv[image]'") \
            from None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {exc}") from None


def as_rgb(image, name: str = "image") -> np.ndarray:
    """(H, W, 3) RGB pixel values in [0, 255] from a path, a PIL image or an array.

    uint8 arrays are taken as they are; other integer and float arrays must
    hold values in [0, 255] (a float image whose values all lie in [0, 1] is
    refused: scale it by 255).  Grayscale (H, W) and (H, W, 1) arrays are
    repeated into three channels; RGBA arrays are refused (the alpha channel
    has no single right meaning here: drop it with image[..., :3] or composite
    it first).  Image files are converted to RGB by Pillow.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if type(image).__module__.startswith("PIL.") and hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be an (H, W, 3) array, a path or a PIL image; "
                        f"got {type(image).__name__}")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer)
                                   or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"{name} must hold integer or float pixel values; got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(f"{name} has 4 channels (RGBA?); MTCNN takes RGB: drop the alpha "
                         f"channel ({name}[..., :3]) or composite it onto a background first")
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be (H, W, 3) RGB or (H, W) grayscale; "
                         f"got shape {image.shape}")
    if image.dtype != np.uint8 and image.size:
        lo, hi = float(image.min()), float(image.max())
        if not (0 <= lo and hi <= 255):   # also catches NaN
            raise ValueError(f"{name} ({image.dtype}) must hold pixel values in [0, 255]; "
                             f"got values in [{lo}, {hi}]")
        if np.issubdtype(image.dtype, np.floating) and hi <= 1:
            raise ValueError(f"{name} ({image.dtype}) holds values in [0, 1]; MTCNN takes "
                             f"pixel values in [0, 255] (multiply by 255)")
    return image


# -- resampling, boxes, NMS ------------------------------------------------------------------

def _index_array(values, name: str) -> np.ndarray:
    """values as a contiguous 1-D int64 array; TypeError unless integers."""
    a = np.asarray(values)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
        raise TypeError(f"{name} must be a 1-D integer array; got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a, np.int64)


def _area_resample(images, image_index, y0, y1, x0, x1, out_h: int, out_w: int) -> np.ndarray:
    """Crops [y0, y1) x [x0, x1) of images[image_index], each area-averaged to
    out_h x out_w as PyTorch's interpolate(mode="area") (adaptive average
    pooling), then normalised as MTCNN's networks take them: (mean rounded to
    float32 - 127.5) / 128, shape (n, C, out_h, out_w) float32.

    images: (N, H, W, C) uint8 (exact integer sums) or float64 pixels.  One
    call resamples a whole batch of crops (the C core, threads over output rows).
    """
    from ..backends import c as native
    if not isinstance(images, np.ndarray) or images.dtype not in (np.uint8, np.float64):
        raise TypeError("images must be a uint8 or float64 array; got "
                        f"{getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim != 4 or images.shape[3] < 1:
        raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}")
    n, h, w, c = images.shape
    if images.dtype == np.uint8 and h * 255 >= 2**31:
        raise ValueError(f"images of {h} rows are too tall for exact uint8 sums")
    for v, name in ((out_h, "out_h"), (out_w, "out_w")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    crops = [_index_array(v, name) for v, name in ((image_index, "image_index"), (y0, "y0"),
                                                   (y1, "y1"), (x0, "x0"), (x1, "x1"))]
    if len({len(v) for v in crops}) != 1:
        raise ValueError("image_index, y0, y1, x0, x1 must have one length; got "
                         f"{[len(v) for v in crops]}")
    index, y0, y1, x0, x1 = crops
    if len(index) and not ((index >= 0).all() and (index < n).all()):
        raise ValueError(f"image_index must lie in [0, {n}); got [{index.min()}, {index.max()}]")
    for lo, hi, size, axis in ((y0, y1, h, "y"), (x0, x1, w, "x")):
        bad = (lo < 0) | (hi <= lo) | (hi > size)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"crop {k}: [{axis}0, {axis}1) = [{lo[k]}, {hi[k]}) must be a "
                             f"non-empty range inside [0, {size})")
    out = np.empty((len(index), c, int(out_h), int(out_w)), np.float32)
    native.area_resample(np.ascontiguousarray(images), index, y0, y1, x0, x1, int(out_h),
                         int(out_w), 127.5, 0.0078125, out)
    return out


def _nms(boxes, scores, threshold: float, mode: str = "iou", image_index=None) -> np.ndarray:
    """Greedy NMS within each image: keep the best box, drop those of its image
    overlapping it by more than `threshold`, repeat; returns indices, best first
    (equal scores: lower image index first, then lower index).  "iou":
    torchvision's nms (IoU, widths x2 - x1).  "min": intersection over the
    smaller box with widths x2 - x1 + 1, the original MTCNN's last-stage NMS.
    Arithmetic in float32 (the C core).  image_index: each box's image (None: one)."""
    from ..backends import c as native
    if mode not in ("iou", "min"):
        raise ValueError(f"mode must be 'iou' or 'min'; got {mode!r}")
    if not _is_number(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    for a, name in ((boxes, "boxes"), (scores, "scores")):
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name} must hold floats; got {a.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"boxes must be (n, 4) and scores (n,); got {boxes.shape} and "
                         f"{scores.shape}")
    if image_index is not None:
        image_index = _index_array(image_index, "image_index")
        if image_index.shape != scores.shape:
            raise ValueError(f"image_index must be ({len(scores)},); got {image_index.shape}")
    keep = native.nms(np.ascontiguousarray(boxes, np.float32),
                      np.ascontiguousarray(scores, np.float32), image_index, threshold,
                      mode == "min")
    return keep.astype(np.intp, copy=False)


def _square(boxes):
    """Grow each box to a square about its centre (in place; float32 as facenet-pytorch)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def _regress(boxes, offsets):
    """Move each box's edges by offsets x its size (widths x2 - x1 + 1), in place."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = boxes[:, :4] + offsets[:, :4] * np.stack([w, h, w, h], axis=1)
    return boxes


def _crop_bounds(boxes, h: int, w: int):
    """0-based [y0, y1) x [x0, x1) of each box clipped to the image (box corners
    truncated to pixels, as facenet-pytorch's pad(); no zero padding)."""
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x0, y0 = np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1
    x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    return y0, y1, x0, x1


def _read_npz(path) -> dict:
    """The arrays of an .npz file; ValueError naming the file if it is not one."""
    try:
        f = np.load(path)
        if not hasattr(f, "files"):
            raise ValueError("not an .npz archive")
        with f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read MTCNN weights {os.fspath(path)!r}: {exc}") from None


# -- the detector ----------------------------------------------------------------------------

class MTCNN:
    """MTCNN face detector: `detect(image) -> (boxes, probs, landmarks)`.

    min_face_size: smallest face searched for, in pixels (the pyramid starts at
    12 / min_face_size); thresholds: face probability each stage needs (P-Net
    >=, R-Net and O-Net >); factor: scale step of the image pyramid.  The
    defaults are facenet-pytorch's.  weights: "trained" (mtcnn.npz), None
    (seeded, for tests) or an .npz path / mapping with mtcnn.npz's keys.
    Networks run on the configured fastconv backend.
    """

    #: IoU above which P-Net proposals are merged within a pyramid level, across
    #: levels, and R-Net's boxes; then O-Net's (intersection over the smaller box).
    NMS = (0.5, 0.7, 0.7, 0.7)
    #: At most this many crops go through R-Net / O-Net in one batch (bounds memory).
    BATCH = 1024

    def __init__(self, min_face_size: float = 20, thresholds=(0.6, 0.7, 0.7),
                 factor: float = 0.709, weights="trained"):
        if not (_is_number(min_face_size) and min_face_size >= 1):
            raise ValueError(f"min_face_size must be a number >= 1; got {min_face_size!r}")
        thresholds = tuple(thresholds)
        if len(thresholds) != 3 or not all(_is_number(t) and 0 <= t < 1
                                           for t in thresholds):
            raise ValueError(f"thresholds must be 3 probabilities in [0, 1); got {thresholds!r}")
        if not (_is_number(factor) and 0 < factor < 1):
            raise ValueError(f"factor must be a number in (0, 1); got {factor!r}")
        self.min_face_size, self.thresholds, self.factor = min_face_size, thresholds, factor
        source = _weights.MTCNN if isinstance(weights, str) and weights == "trained" else weights
        if isinstance(source, (str, os.PathLike)):
            source = _read_npz(source)
        parts = {net: None if source is None else
                 {k[len(net) + 1:]: v for k, v in source.items() if k.startswith(net + ".")}
                 for net in ("pnet", "rnet", "onet")}
        self.pnet = pnet(parts["pnet"])
        self.rnet = rnet(parts["rnet"])
        self.onet = onet(parts["onet"])

    def __repr__(self):
        return (f"MTCNN(min_face_size={self.min_face_size}, thresholds={self.thresholds}, "
                f"factor={self.factor})")

    def scales(self, h: int, w: int) -> list:
        """The image pyramid's scales for an h x w image (none below 12 px)."""
        scale = 12.0 / self.min_face_size
        side = min(h, w) * scale
        out = []
        while side >= 12:
            out.append(scale)
            scale *= self.factor
            side *= self.factor
        return out

    def detect(self, image):
        """Faces in one image: (boxes (n, 4) x1, y1, x2, y2 in pixels, probs (n,),
        landmarks (n, 5, 2) x, y of left eye, right eye, nose, left and right
        mouth corner), float32, largest box first.

        image: (H, W, 3) RGB array (uint8, or values in [0, 255]; see as_rgb),
        (H, W) grayscale, a PIL image or a path to an image file (Pillow).
        """
        return self.detect_batch(as_rgb(image)[None])[0]

    def detect_batch(self, images):
        """detect() for each of several images of one size: a list of images or an
        (N, H, W, 3) array; returns a list of (boxes, probs, landmarks)."""
        if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray)
                                                      and images.ndim != 4):
            raise TypeError("detect_batch takes a list of images or an (N, H, W, 3) array; "
                            "use detect() for one image")
        images = [as_rgb(im, f"images[{i}]") for i, im in enumerate(images)]
        if not images:
            return []
        if any(im.shape != images[0].shape for im in images):
            raise ValueError("detect_batch takes images of one size; got "
                             f"{sorted({im.shape for im in images})}")
        return self._detect(np.stack(images))

    # The stages below mirror facenet-pytorch's detect_face, in float32 like it.
    def _detect(self, images):
        n, h, w, _ = images.shape
        scales = self.scales(h, w)
        boxes, image_index, points = np.zeros((0, 5), np.float32), np.zeros(0, np.intp), None
        if images.dtype != np.uint8:   # the resampling sums uint8 or float64 pixels
            images = images.astype(np.float64)
        if scales:
            boxes, image_index = self._propose(images, scales)
        if len(boxes):
            boxes, image_index = self._refine(images, boxes, image_index)
        if len(boxes):
            boxes, image_index, points = self._output(images, boxes, image_index)
        results = []
        for i in range(n):
            mine = np.flatnonzero(image_index == i)
            b = boxes[mine]
            order = np.argsort((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable")[::-1]
            mine = mine[order]
            results.append((np.ascontiguousarray(boxes[mine, :4]),
                            np.ascontiguousarray(boxes[mine, 4]),
                            np.zeros((0, 5, 2), np.float32) if points is None
                            else np.ascontiguousarray(points[mine])))
        return results

    def _propose(self, images, scales):
        """Stage 1: P-Net on every pyramid level; squared candidate boxes + scores."""
        n, h, w, _ = images.shape
        every, zero = np.arange(n), np.zeros(n, np.int64)
        found, found_index = [], []
        for scale in scales:
            size = int(h * scale + 1), int(w * scale + 1)
            level = _area_resample(images, every, zero, zero + h, zero, zero + w, *size)
            probs, offsets = self.pnet(level)
            face = probs[:, 1]
            b, y, x = np.nonzero(face >= self.thresholds[0])
            corner = np.stack([x, y], axis=1).astype(np.float32) * 2
            s = np.float32(scale)
            cand = np.concatenate([np.floor((corner + 1) / s), np.floor((corner + 12) / s),
                                   face[b, y, x][:, None], offsets[b, :, y, x]], axis=1)
            keep = _nms(cand[:, :4], cand[:, 4], self.NMS[0], image_index=b)
            found.append(cand[keep])
            found_index.append(b[keep])
        boxes, image_index = np.concatenate(found), np.concatenate(found_index)
        keep = _nms(boxes[:, :4], boxes[:, 4], self.NMS[1], image_index=image_index)
        boxes, image_index = boxes[keep], image_index[keep]
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sizes = np.stack([bw, bh, bw, bh], axis=1)
        out = np.concatenate([boxes[:, :4] + boxes[:, 5:9] * sizes, boxes[:, 4:5]], axis=1)
        return _square(out), image_index

    def _crops(self, images, boxes, image_index, size):
        """Area-resampled size x size crops of the boxes (clipped to the image);
        boxes wholly outside the image are dropped."""
        y0, y1, x0, x1 = _crop_bounds(boxes, *images.shape[1:3])
        inside = (y1 > y0) & (x1 > x0)
        crops = _area_resample(images, image_index[inside], y0[inside], y1[inside], x0[inside],
                               x1[inside], size, size)
        return crops, inside

    def _run(self, net, crops):
        """Face probabilities and the other outputs of `net` on crops, in batches."""
        out = [net(crops[i:i + self.BATCH]) for i in range(0, len(crops), self.BATCH)]
        out = np.concatenate(out) if out else np.zeros((0,) + net.output_shape(net.input_shape),
                                                       np.float32)
        face = nn.Softmax()(out[:, :2])[:, 1]
        return face, out[:, 2:]

    def _refine(self, images, boxes, image_index):
        """Stage 2: R-Net rescores and regresses each candidate on a 24x24 crop."""
        crops, inside = self._crops(images, boxes, image_index, 24)
        boxes, image_index = boxes[inside], image_index[inside]
        face, offsets = self._run(self.rnet, crops)
        passed = face > self.thresholds[1]
        boxes = np.concatenate([boxes[passed, :4], face[passed, None]], axis=1)
        image_index, offsets = image_index[passed], offsets[passed]
        keep = _nms(boxes[:, :4], boxes[:, 4], self.NMS[2], image_index=image_index)
        boxes = _square(_regress(boxes[keep], offsets[keep]))
        return boxes, image_index[keep]

    def _output(self, images, boxes, image_index):
        """Stage 3: O-Net rescores, regresses and places landmarks on a 48x48 crop."""
        crops, inside = self._crops(images, boxes, image_index, 48)
        boxes, image_index = boxes[inside], image_index[inside]
        face, out = self._run(self.onet, crops)
        passed = face > self.thresholds[2]
        boxes = np.concatenate([boxes[passed, :4], face[passed, None]], axis=1)
        image_index, offsets, marks = image_index[passed], out[passed, :4], out[passed, 4:]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = np.stack([bw * marks[:, :5] + boxes[:, 0:1] - 1,
                           bh * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, offsets)
        keep = _nms(boxes[:, :4], boxes[:, 4], self.NMS[3], "min", image_index)
        return boxes[keep], image_index[keep], points[keep]


def mtcnn(min_face_size: float = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709,
          weights="trained") -> MTCNN:
    """The MTCNN face detector with its trained weights (see MTCNN)."""
    return MTCNN(min_face_size, thresholds, factor, weights)
