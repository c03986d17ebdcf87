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

def _sum_dtype(images: np.ndarray):
    """int32 holds every sum of a uint8 image below 8.4 Mpx exactly (and moves half
    float64's bytes); int64 for larger ones; float64 for other pixel types."""
    if images.dtype == np.uint8:
        return np.int32 if images.shape[1] * images.shape[2] * 255 < 2**31 else np.int64
    return np.float64


def _column_sums(images: np.ndarray) -> np.ndarray:
    """(N, H+1, W, 3) running sums down each column (row 0 is zero): the sum
    of rows [a, b) is one subtraction, exact for uint8 images."""
    n, h, w, c = images.shape
    sums = np.zeros((n, h + 1, w, c), _sum_dtype(images))
    np.cumsum(images, axis=1, dtype=sums.dtype, out=sums[:, 1:])
    return sums


def _summed_area(column_sums: np.ndarray) -> np.ndarray:
    """(N, H+1, W+1, 3) sums of all pixels above and left of each corner, so
    any rectangle's sum is four lookups."""
    n, h1, w, c = column_sums.shape
    sat = np.zeros((n, h1, w + 1, c), column_sums.dtype)
    np.cumsum(column_sums, axis=2, out=sat[:, :, 1:])
    return sat


def _area_windows(start, stop, size: int):
    """Per crop, the [lo, hi) source rows of each of `size` outputs: PyTorch's
    area interpolation (adaptive average pooling) over [start, stop)."""
    length = (stop - start)[:, None]
    i = np.arange(size)
    return start[:, None] + (i * length) // size, start[:, None] - (-(i + 1) * length) // size


def _normalised(mean: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) float64 means -> (n, 3, H, W) float32 as MTCNN's networks
    take them (rounded to float32 first, as PyTorch's float32 resampling is)."""
    mean = mean.astype(np.float32)
    return np.ascontiguousarray(((mean - 127.5) * 0.0078125).transpose(0, 3, 1, 2))


def _resample(sat, image_index, y0, y1, x0, x1, out_h: int, out_w: int) -> np.ndarray:
    """Crops [y0, y1) x [x0, x1) of images `image_index` of summed-area table
    `sat`, each area-averaged to out_h x out_w: (n, 3, out_h, out_w)."""
    _, h1, w1, c = sat.shape
    ly, hy = _area_windows(y0, y1, out_h)
    lx, hx = _area_windows(x0, x1, out_w)
    row0, row1 = ((image_index[:, None] * h1 + r) * w1 for r in (ly, hy))
    channel = np.arange(c)

    def corner(rows, cols):   # flat indices: one np.take, much faster than 3-D fancy indexing
        return np.take(sat, ((rows[:, :, None] + cols[:, None, :]) * c)[..., None] + channel)

    total = corner(row1, hx) - corner(row0, hx) - corner(row1, lx) + corner(row0, lx)
    return _normalised(total / ((hy - ly)[:, :, None] * (hx - lx)[:, None, :])[..., None])


def _resize(column_sums, out_h: int, out_w: int) -> np.ndarray:
    """Whole images area-averaged to out_h x out_w, rows then columns (each a
    gather of whole rows or pixels, cheaper than _resample's four lookups)."""
    n, h1, w, c = column_sums.shape
    zero = np.zeros(1, np.int64)
    (ly,), (hy,) = _area_windows(zero, zero + h1 - 1, out_h)
    (lx,), (hx,) = _area_windows(zero, zero + w, out_w)
    rows = np.zeros((n, out_h, w + 1, c), column_sums.dtype)
    np.cumsum(np.take(column_sums, hy, 1) - np.take(column_sums, ly, 1), axis=2,
              out=rows[:, :, 1:])
    total = np.take(rows, hx, 2) - np.take(rows, lx, 2)   # np.take: several times faster here
    return _normalised(total / ((hy - ly)[:, None] * (hx - lx)[None, :])[..., None])


def _nms(boxes, scores, threshold: float, mode: str = "iou") -> np.ndarray:
    """Greedy NMS: keep the best box, drop those overlapping it by more than
    `threshold`, repeat; returns indices, best first.  "iou": torchvision's
    nms (IoU, widths x2 - x1).  "min": intersection over the smaller box with
    widths x2 - x1 + 1, the original MTCNN's last-stage NMS."""
    one = np.float32(1 if mode == "min" else 0)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one, 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one, 0)
        inter = w * h
        if mode == "min":
            order = rest[inter / np.minimum(area[i], area[rest]) <= threshold]
        else:
            order = rest[~(inter / (area[i] + area[rest] - inter) > threshold)]
    return np.array(keep, np.intp)


def _batched_nms(boxes, scores, image_index, threshold: float, mode: str = "iou"):
    """_nms within each image; indices best first."""
    keep = [np.flatnonzero(image_index == i) for i in np.unique(image_index)]
    keep = [k[_nms(boxes[k], scores[k], threshold, mode)] for k in keep]
    keep = np.concatenate(keep) if keep else np.zeros(0, np.intp)
    return keep[np.argsort(-scores[keep], kind="stable")]


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
        if scales:
            column_sums = _column_sums(images)
            boxes, image_index = self._propose(column_sums, scales, n, h, w)
            sat = _summed_area(column_sums) if len(boxes) else None
        if len(boxes):
            boxes, image_index = self._refine(sat, boxes, image_index, h, w)
        if len(boxes):
            boxes, image_index, points = self._output(sat, boxes, image_index, h, w)
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

    def _propose(self, column_sums, scales, n, h, w):
        """Stage 1: P-Net on every pyramid level; squared candidate boxes + scores."""
        found, found_index = [], []
        for scale in scales:
            level = _resize(column_sums, int(h * scale + 1), int(w * scale + 1))
            probs, offsets = self.pnet(level)
            face = probs[:, 1]
            b, y, x = np.nonzero(face >= self.thresholds[0])
            corner = np.stack([x, y], axis=1).astype(np.float32) * 2
            s = np.float32(scale)
            cand = np.concatenate([np.floor((corner + 1) / s), np.floor((corner + 12) / s),
                                   face[b, y, x][:, None], offsets[b, :, y, x]], axis=1)
            keep = _batched_nms(cand[:, :4], cand[:, 4], b, self.NMS[0])
            found.append(cand[keep])
            found_index.append(b[keep])
        boxes, image_index = np.concatenate(found), np.concatenate(found_index)
        keep = _batched_nms(boxes[:, :4], boxes[:, 4], image_index, self.NMS[1])
        boxes, image_index = boxes[keep], image_index[keep]
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sizes = np.stack([bw, bh, bw, bh], axis=1)
        out = np.concatenate([boxes[:, :4] + boxes[:, 5:9] * sizes, boxes[:, 4:5]], axis=1)
        return _square(out), image_index

    def _crops(self, sat, boxes, image_index, h, w, size):
        """Area-resampled size x size crops of the boxes (clipped to the image);
        boxes wholly outside the image are dropped."""
        y0, y1, x0, x1 = _crop_bounds(boxes, h, w)
        inside = (y1 > y0) & (x1 > x0)
        crops = _resample(sat, image_index[inside], y0[inside], y1[inside], x0[inside],
                          x1[inside], size, size)
        return crops, inside

    def _run(self, net, crops):
        """Face probabilities and the other outputs of `net` on crops, in batches."""
        out = [net(crops[i:i + self.BATCH]) for i in range(0, len(crops), self.BATCH)]
        out = np.concatenate(out) if out else np.zeros((0,) + net.output_shape(net.input_shape),
                                                       np.float32)
        face = nn.Softmax()(out[:, :2])[:, 1]
        return face, out[:, 2:]

    def _refine(self, sat, boxes, image_index, h, w):
        """Stage 2: R-Net rescores and regresses each candidate on a 24x24 crop."""
        crops, inside = self._crops(sat, boxes, image_index, h, w, 24)
        boxes, image_index = boxes[inside], image_index[inside]
        face, offsets = self._run(self.rnet, crops)
        passed = face > self.thresholds[1]
        boxes = np.concatenate([boxes[passed, :4], face[passed, None]], axis=1)
        image_index, offsets = image_index[passed], offsets[passed]
        keep = _batched_nms(boxes[:, :4], boxes[:, 4], image_index, self.NMS[2])
        boxes = _square(_regress(boxes[keep], offsets[keep]))
        return boxes, image_index[keep]

    def _output(self, sat, boxes, image_index, h, w):
        """Stage 3: O-Net rescores, regresses and places landmarks on a 48x48 crop."""
        crops, inside = self._crops(sat, boxes, image_index, h, w, 48)
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
        keep = _batched_nms(boxes[:, :4], boxes[:, 4], image_index, self.NMS[3], mode="min")
        return boxes[keep], image_index[keep], points[keep]


def mtcnn(min_face_size: float = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709,
          weights="trained") -> MTCNN:
    """The MTCNN face detector with its trained weights (see MTCNN)."""
    return MTCNN(min_face_size, thresholds, factor, weights)
