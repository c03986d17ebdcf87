"""Heat maps and batch inference on Dask arrays (optional extra `fastconv[dask]`).

    heatmap(model, image)   a fully convolutional model over an (N, C, H, W)
                            image chunked over H and W: equals one pass over
                            the whole image, as a dask array on the model's
                            output grid
    predict(model, images)  a model over a stack chunked along N

Geometry of a heat map: a chain of convs and pools has a total stride S, a
receptive field R and a left offset P (the paddings, in input pixels), so
output j sees input pixels [j*S - P, j*S - P + R).  Chunk borders are put on
multiples of S and each chunk owns the outputs j with j*S inside it; it is
extended by D = ceil(max(P, R - S - P) / S) * S pixels on each side
(map_overlap), which covers every pixel those outputs see, and keeps the
chunk's own output grid on the global one.  An output whose pixels all lie
inside the extended chunk never touches the chunk's own zero padding, so
owning only those makes the chunked result equal the single pass; at the
image's edges the chunk's padding is the image's.

Memory: within a task the model runs on row passes of the chunk, so its
intermediate maps stay a fraction of the chunk; but Dask's overlap slivers
are NumPy views that keep their whole neighbour chunk alive until used, so a
worker can hold up to about a row of input chunks at once.

The model travels as one dask.delayed value: its weights go to each worker
once, not with every task.  Inside a task fastconv uses, by default, the
usable cores divided by the tasks the worker runs at once (never more than
fastconv.get_num_threads()), so concurrent tasks do not oversubscribe.
"""
from __future__ import annotations

import math
import os

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed

from . import _args, nn
from .config import get_num_threads, threads

_POINTWISE = (nn.ReLU, nn.PReLU, nn.Softmax)


def receptive_field(model) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(stride, receptive field, left offset P), each (rows, columns), of a
    fully convolutional chain of Conv2d, pooling and pointwise layers."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"model must be a Sequential-like model with .layers; "
                        f"got {type(model).__name__}")
    stride, field, offset = [1, 1], [1, 1], [0, 0]
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            # Resolve padding (ints, pairs, 4-tuples, "same") on a large dummy input.
            p = layer._params((layer.weight_shape[1] * layer.groups, 1 << 20, 1 << 20))
            kernel = (p.dilation[0] * (p.kh - 1) + 1, p.dilation[1] * (p.kw - 1) + 1)
            s, pad = p.stride, (p.padding[0], p.padding[2])
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            kernel, s, pad = layer.kernel_size, layer.stride, layer.padding
        elif isinstance(layer, _POINTWISE):
            continue
        else:
            raise ValueError(f"heatmap: {layer!r} is not a conv, pool or pointwise layer; "
                             "convert the model with fastconv.nn.to_fully_convolutional")
        for a in (0, 1):
            field[a] += (kernel[a] - 1) * stride[a]
            offset[a] += pad[a] * stride[a]
            stride[a] *= s[a]
    return tuple(stride), tuple(field), tuple(offset)


def overlap(model) -> tuple[int, int]:
    """Pixels each chunk borrows from each neighbour (rows, columns): enough
    for every output it owns, a multiple of the total stride."""
    stride, field, offset = receptive_field(model)
    return tuple(math.ceil(max(offset[a], field[a] - stride[a] - offset[a], 0) / stride[a])
                 * stride[a] for a in (0, 1))


def task_threads() -> int:
    """fastconv's thread count for one task: the usable cores over the tasks
    that run at once (a distributed worker's thread count, or the local
    threaded scheduler's), at most fastconv.get_num_threads()."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    concurrent = cores  # dask's local threaded scheduler: one task per core
    try:
        from distributed import get_worker
        concurrent = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded"):
            concurrent = 1
        else:
            concurrent = dask.config.get("num_workers", None) or concurrent
    return max(1, min(get_num_threads(), cores // max(1, concurrent)))


def _aligned(chunks, stride: int, minimum: int) -> tuple:
    """Chunk sizes along one axis with every border on a multiple of `stride`
    and every chunk at least `minimum` long (borders snapped down, small
    chunks merged into their neighbour)."""
    total, borders, at = sum(chunks), [0], 0
    for size in chunks[:-1]:
        at += size
        b = at // stride * stride
        if b - borders[-1] >= minimum and total - b >= minimum:
            borders.append(b)
    borders.append(total)
    return tuple(b - a for a, b in zip(borders, borders[1:]))


def _check_image(name, x, ndim=4):
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array; got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D (N, C, H, W); got shape {x.shape}")
    if np.dtype(x.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name} must be float32 or float64; got dtype {x.dtype}")


def _model_value(model):
    """The model as one graph value, shipped to each worker once."""
    return model if isinstance(model, Delayed) else dask.delayed(model, pure=True)


def _run_chunk(block, model, start, owned, stride, depth, channels, rows_per_pass):
    """One task: the outputs [ja, jb) x [ka, kb) this chunk owns, from its
    extended block, whose first pixel is the image's pixel `start`.  The model
    runs on `rows_per_pass` output rows at a time, so its intermediate maps
    stay a fraction of the chunk's size; each pass is cut from the block by
    the same rule as the chunks from the image."""
    (ja, jb), (ka, kb) = owned
    col = ka - start[1] // stride[1]
    parts = [np.empty((block.shape[0], channels, 0, kb - ka), block.dtype)]
    with threads(task_threads()):
        for a in range(ja, jb, rows_per_pass):
            b = min(jb, a + rows_per_pass)
            top = max(start[0], a * stride[0] - depth[0])
            bottom = min(start[0] + block.shape[2], b * stride[0] + depth[0])
            y = model(block[:, :, top - start[0]:bottom - start[0]])
            if isinstance(y, tuple):  # several heads: one array, split again by heatmap
                y = np.concatenate(y, axis=1)
            row = a - top // stride[0]
            if y.shape[2] < row + b - a or y.shape[3] < col + kb - ka:
                raise RuntimeError(f"heatmap: a pass gave {y.shape[2:]} outputs, fewer than "
                                   "its geometry needs; the model's layers are not all "
                                   "recognised")
            parts.append(y[:, :, row:row + b - a, col:col + kb - ka])
    return np.concatenate(parts, axis=2)


def heatmap(model, image, *, rechunk: bool = True, rows_per_pass: int | None = None):
    """The fully convolutional `model` over `image` (dask array (N, C, H, W)),
    chunk by chunk; equals model(whole image) up to float rounding (a tuple
    of dask arrays for a model with several heads, such as P-Net).

    Spatial chunk borders must lie on multiples of the model's total stride
    and chunks must be at least one receptive field (and overlap) long, with
    all channels in one chunk: with rechunk=True (default) the image is
    rechunked to that, with rechunk=False such an image is a ValueError.

    Each task runs the model on `rows_per_pass` output rows at a time
    (default: a quarter of a chunk's, but at least four overlaps' worth of
    input), trading a little recomputed overlap for intermediate maps a
    fraction of the chunk's size."""
    _check_image("image", image)
    _, c, h, w = image.shape
    stride, field, offset = receptive_field(model)
    # output_shape also checks C and that the image holds one receptive field.
    # A model with several heads (P-Net) returns a tuple of maps on one grid.
    shapes = model.output_shape((c, h, w))
    heads = shapes if shapes and isinstance(shapes[0], tuple) else (shapes,)
    if not all(len(s) == 3 and s[1:] == heads[0][1:] for s in heads):
        raise ValueError(f"heatmap: model must return (N, K, OH, OW) maps on one grid; its "
                         f"output shape is {shapes}")
    out_shape = (sum(s[0] for s in heads),) + heads[0][1:]
    depth = overlap(model)
    minimum = [max(depth[a], field[a], stride[a]) for a in (0, 1)]
    want = (image.chunks[0], (c,)) + tuple(
        _aligned(image.chunks[2 + a], stride[a], minimum[a]) for a in (0, 1))
    if want != image.chunks:
        if not rechunk:
            raise ValueError(
                f"image chunks {image.chunks[1:]} do not fit the model: channels must be one "
                f"chunk, spatial borders on multiples of the stride {stride}, and chunks at "
                f"least {minimum} long; pass rechunk=True or rechunk to {want[1:]}")
        image = image.rechunk(want)

    # Per axis and chunk: the extended chunk's first pixel, the outputs [ja, jb) it owns.
    plans = []
    for a in (0, 1):
        borders = np.concatenate([[0], np.cumsum(image.chunks[2 + a])]).tolist()
        total, axis = out_shape[1 + a], []
        for i, (x0, x1) in enumerate(zip(borders, borders[1:])):
            jb = total if i == len(borders) - 2 else min(total, x1 // stride[a])
            axis.append((0 if i == 0 else x0 - depth[a], (min(x0 // stride[a], jb), jb)))
        plans.append(axis)
    out_chunks = (image.chunks[0], (out_shape[0],),
                  tuple(jb - ja for _, (ja, jb) in plans[0]),
                  tuple(jb - ja for _, (ja, jb) in plans[1]))

    if rows_per_pass is None:
        rows_per_pass = max(math.ceil(max(out_chunks[2]) / 4),
                            math.ceil(4 * (field[0] + 2 * depth[0]) / stride[0]))
    elif not _args._is_int(rows_per_pass) or rows_per_pass < 1:
        raise ValueError(f"rows_per_pass must be a positive int; got {rows_per_pass!r}")
    rows_per_pass = int(rows_per_pass)

    def run(block, model, block_info=None):
        _, _, bh, bw = block_info[0]["chunk-location"]
        (sh, oh), (sw, ow) = plans[0][bh], plans[1][bw]
        return _run_chunk(block, model, (sh, sw), (oh, ow), stride, depth, out_shape[0],
                          rows_per_pass)

    maps = da.map_overlap(run, image, model=_model_value(model),
                          depth={0: 0, 1: 0, 2: depth[0], 3: depth[1]}, boundary="none",
                          trim=False, align_arrays=False, chunks=out_chunks,
                          dtype=image.dtype, meta=np.empty((0, 0, 0, 0), image.dtype))
    if len(heads) == 1:
        return maps
    ends = np.cumsum([0] + [s[0] for s in heads]).tolist()
    return tuple(maps[:, a:b] for a, b in zip(ends, ends[1:]))


def predict(model, images, *, rechunk: bool = True):
    """`model` on every sample of `images` (dask array, chunked along N only:
    other axes are rechunked into one chunk, or a ValueError with
    rechunk=False); output chunks follow the input's along N."""
    if not isinstance(images, da.Array):
        raise TypeError(f"images must be a dask.array.Array; got {type(images).__name__}")
    if images.ndim < 2:
        raise ValueError(f"images must be a batch (N, ...); got shape {images.shape}")
    whole = (images.chunks[0],) + tuple((s,) for s in images.shape[1:])
    if images.chunks != whole:
        if not rechunk:
            raise ValueError(f"images must be chunked along N only; got chunks {images.chunks}")
        images = images.rechunk(whole)
    out_shape = tuple(model.output_shape(images.shape[1:]))

    def run(block, model):
        with threads(task_threads()):
            return model(block)

    return da.map_blocks(run, images, model=_model_value(model), dtype=images.dtype,
                         chunks=(images.chunks[0],) + tuple((s,) for s in out_shape),
                         drop_axis=list(range(1, images.ndim)),
                         new_axis=list(range(1, 1 + len(out_shape))),
                         meta=np.empty((0,) * (1 + len(out_shape)), images.dtype))
