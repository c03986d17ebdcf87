"""Heat maps and batch inference on Dask arrays (optional extra `fastconv[dask]`).

    heatmap(model, image)   a fully convolutional model over an (N, C, H, W)
                            image chunked over H and W: equals one pass over
                            the whole image, as a dask array on the model's
                            output grid
    predict(model, images)  a model over a stack chunked along N

Geometry of a heat map: a chain of convs and pools has a total stride S, a
receptive field R and a left offset P (the paddings, in input pixels), so
output j sees input pixels [j*S - P, j*S - P + R).  Chunk borders are put on
multiples of S.  Along each axis the outputs fall into blocks: per chunk the
outputs that see only its pixels, and per border the few (about R/S) that
see both sides of it.  Each block's task runs the model on the pixels its
outputs see (the chunk, or the edges of two to four chunks around a border),
starting on a multiple of S so that its output grid is the global one.  An
output whose pixels all lie inside its block never touches the block's zero
padding, so the blocks equal the single pass; at the image's sides the
block's padding is the image's.  The heat map's chunks are those blocks.

Memory: a chunk is read by one task, which computes the outputs that see
only that chunk and cuts copies of its edges (at most about R pixels deep)
for the border outputs; dask runs it right after the chunk, so the chunk is
freed once it has run and only the small edges wait for the chunks across a
border.  Within a task the model runs on passes of a few output rows, so its
intermediate maps stay a fraction of the chunk.  A worker thus holds about
one chunk, its outputs and one pass per task it runs at once, plus the root
tasks Dask hands it ahead (worker-saturation; a stolen task's chunk also
stays on its first worker until the thief has run it) and a row of edges --
in data, proportional to the chunk, not to the image.  Dask's own per-task
bookkeeping in the worker comes on top and grows with the number of tasks
(benchmarks/dask_heatmap.py reports both).

The model travels as one dask.delayed value: its weights go to each worker
once, not with every task.  Inside a task fastconv uses, by default, the
usable cores divided by the tasks the worker runs at once (never more than
fastconv.get_num_threads()), so concurrent tasks do not oversubscribe.
"""
from __future__ import annotations

import math
import operator
import os
from functools import partial

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

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


def _border(x, stride, field, offset, total):
    """Where the outputs near a chunk border at pixel x (a multiple of the
    stride) come from: the first output whose field ends past x, the first
    whose field starts at or past x (the outputs between see both sides), and
    the pixels they see before and after x, from a multiple of the stride."""
    end = min(total, (x + offset - field) // stride + 1)
    start = min(total, -(-(x + offset) // stride))
    before = x - (end - -(-offset // stride)) * stride
    after = (start - 1) * stride - offset + field - x
    return end, start, max(before, 0), max(after, 0)


def overlap(model) -> tuple[int, int]:
    """Pixels (rows, columns) of a neighbouring chunk that the outputs near a
    chunk border see, on either side of it (less than the receptive field
    plus the stride)."""
    stride, field, offset = receptive_field(model)
    # Any border far from the image's sides: all borders lie on multiples of the stride.
    return tuple(max(_border(stride[a] << 20, stride[a], field[a], offset[a], 1 << 40)[2:])
                 for a in (0, 1))


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


def _edges(chunk, cuts):
    """The parts of a chunk that tasks of the outputs near its borders see:
    {(rows, columns): copy} for the named (rows, columns) slices.  Copies,
    not views, so that the border tasks do not keep the chunk alive."""
    return {part: np.array(chunk[(slice(None), slice(None)) + rc]) for part, rc in cuts.items()}


def _rows(pieces, lo, hi):
    """Rows [lo, hi) of the block that `pieces` (rows of side-by-side
    arrays) tile."""
    parts, top = [], 0
    for row in pieces:
        bottom = top + row[0].shape[2]
        a, b = max(lo, top), min(hi, bottom)
        if a < b:
            cut = [p[:, :, a - top:b - top] for p in row]
            parts.append(cut[0] if len(cut) == 1 else np.concatenate(cut, axis=3))
        top = bottom
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def _run_block(pieces, model, *, start, owned, stride, field, offset, channels,
               rows_per_pass):
    """One task: the outputs [ja, jb) x [ka, kb) from the block that the
    pieces tile (rows of side-by-side arrays: a chunk, or parts of up to four
    chunks' edges), whose first pixel is the image's pixel `start`.  The model runs on `rows_per_pass` output rows at
    a time, each pass cut from the block by the same rule as the blocks from
    the image, so its intermediate maps stay a fraction of the chunk's size."""
    (ja, jb), (ka, kb) = owned
    height = sum(row[0].shape[2] for row in pieces)
    col = ka - start[1] // stride[1]
    out = None
    with threads(task_threads()):
        for a in range(ja, jb, rows_per_pass):
            b = min(jb, a + rows_per_pass)
            # The pixels outputs [a, b) see, from a multiple of the stride.
            top = max(start[0], (a - -(-offset[0] // stride[0])) * stride[0])
            bottom = min(start[0] + height, (b - 1) * stride[0] - offset[0] + field[0])
            y = model(_rows(pieces, top - start[0], bottom - start[0]))
            if isinstance(y, tuple):  # several heads: one array, split again by heatmap
                y = np.concatenate(y, axis=1)
            row = a - top // stride[0]
            if y.shape[2] < row + b - a or y.shape[3] < col + kb - ka:
                raise RuntimeError(f"heatmap: a pass gave {y.shape[2:]} outputs, fewer than "
                                   "its geometry needs; the model's layers are not all "
                                   "recognised")
            if out is None:
                out = np.empty((y.shape[0], channels, jb - ja, kb - ka), y.dtype)
            out[:, :, a - ja:b - ja] = y[:, :, row:row + b - a, col:col + kb - ka]
    return out


def _block_and_edges(pieces, model, *, cuts, **plan):
    """The outputs that see one chunk only, and that chunk's edges."""
    return _run_block(pieces, model, **plan), _edges(pieces[0][0], cuts)


def _segments(sizes, stride, field, offset, total):
    """The output blocks along one axis, in order: per chunk the outputs
    that see only its pixels, and per border between two chunks the outputs
    that see both.  Each: (its block's first pixel, outputs [ja, jb), its
    pieces as [(chunk index, part)]), a part being "all", "head" (the first
    rows the border before the chunk needs) or "tail" (the last rows the
    border after it needs); and per chunk its (head, tail) lengths.  Outputs
    whose fields lie inside their block never see a block's zero padding
    unless the block's side is the image's, so the blocks tile the single
    pass exactly."""
    borders = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    near = [_border(x, stride, field, offset, total) for x in borders[1:-1]]
    starts = [0] + [start for _, start, _, _ in near]
    ends = [end for end, _, _, _ in near] + [total]
    cuts = [[0, 0] for _ in sizes]
    segments = []
    for i, x0 in enumerate(borders[:-1]):
        if i:
            end, start, before, after = near[i - 1]
            cuts[i - 1][1], cuts[i][0] = before, after
            if end < start:
                segments.append((borders[i] - before, (end, start),
                                 [(i - 1, "tail"), (i, "head")]))
        if starts[i] < ends[i]:
            segments.append((x0, (starts[i], ends[i]), [(i, "all")]))
    return segments, cuts


def heatmap(model, image, *, rechunk: bool = True, rows_per_pass: int | None = None):
    """The fully convolutional `model` over `image` (dask array (N, C, H, W)),
    chunk by chunk; equals model(whole image) up to float rounding (a tuple
    of dask arrays for a model with several heads, such as P-Net).

    Spatial chunk borders must lie on multiples of the model's total stride
    and chunks must be at least one receptive field (and overlap) long, with
    all channels in one chunk: with rechunk=True (default) the image is
    rechunked to that, with rechunk=False such an image is a ValueError.

    Each task runs the model on `rows_per_pass` output rows at a time
    (default: a sixteenth of a chunk's, but at least four receptive fields'
    worth of input), trading a little recomputed overlap for intermediate
    maps a fraction of the chunk's size.  The result's chunks follow the
    image's: per chunk the outputs that see only it, and between chunks thin
    blocks of the outputs that see both sides of a border."""
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
    near = overlap(model)
    minimum = [max(near[a], field[a], stride[a]) for a in (0, 1)]
    want = (image.chunks[0], (c,)) + tuple(
        _aligned(image.chunks[2 + a], stride[a], minimum[a]) for a in (0, 1))
    if want != image.chunks:
        if not rechunk:
            raise ValueError(
                f"image chunks {image.chunks[1:]} do not fit the model: channels must be one "
                f"chunk, spatial borders on multiples of the stride {stride}, and chunks at "
                f"least {minimum} long; pass rechunk=True or rechunk to {want[1:]}")
        image = image.rechunk(want)

    (rows, row_cuts), (cols, col_cuts) = (
        _segments(image.chunks[2 + a], stride[a], field[a], offset[a], out_shape[1 + a])
        for a in (0, 1))
    out_chunks = (image.chunks[0], (out_shape[0],), tuple(jb - ja for _, (ja, jb), _ in rows),
                  tuple(jb - ja for _, (ja, jb), _ in cols))
    if rows_per_pass is None:
        rows_per_pass = max(math.ceil(max(out_chunks[2]) / 16),
                            math.ceil(4 * field[0] / stride[0]))
    elif not _args._is_int(rows_per_pass) or rows_per_pass < 1:
        raise ValueError(f"rows_per_pass must be a positive int; got {rows_per_pass!r}")
    rows_per_pass = int(rows_per_pass)

    # The graph: per output block one task, from its pieces.  The outputs that
    # see one chunk only are computed from the chunk itself, by one task that
    # also cuts copies of the chunk's edges for the outputs near its borders
    # (the chunk's only reader, so the chunk is freed once it has run; dask's
    # order runs it right after the chunk); the outputs near a border read
    # those copies, so only small edges wait for the chunks across a border.
    model_value = _model_value(model)
    token = tokenize(image.name, model_value.key, rows_per_pass)
    name, steps, edges = ("heatmap-" + token, "heatmap-step-" + token,
                          "heatmap-edges-" + token)
    spans = [[{"all": slice(None), "head": slice(0, head), "tail": slice(size - tail, size)}
              for size, (head, tail) in zip(image.chunks[2 + a], cuts)]
             for a, cuts in enumerate((row_cuts, col_cuts))]
    blocks, wanted = [], {}
    for n in range(len(image.chunks[0])):
        for a, (sh, oh, row_pieces) in enumerate(rows):
            for b, (sw, ow, col_pieces) in enumerate(cols):
                pieces = []
                for i, rp in row_pieces:
                    pieces.append([])
                    for j, cp in col_pieces:
                        if rp == cp == "all":
                            pieces[-1].append((image.name, n, 0, i, j))
                        else:
                            part = f"{rp}/{cp}"
                            wanted.setdefault((n, i, j), {})[part] = (spans[0][i][rp],
                                                                      spans[1][j][cp])
                            pieces[-1].append((edges, n, i, j, part))
                plan = dict(start=(sh, sw), owned=(oh, ow), stride=stride, field=field,
                            offset=offset, channels=out_shape[0], rows_per_pass=rows_per_pass)
                blocks.append(((name, n, 0, a, b), pieces, plan))
    layer = {}
    for key, pieces, plan in blocks:
        chunk = pieces[0][0]
        cuts = wanted.get(chunk[1:2] + chunk[3:]) if chunk[0] == image.name else None
        if cuts is None:
            layer[key] = (partial(_run_block, **plan), pieces, model_value.key)
        else:
            step = (steps,) + chunk[1:2] + chunk[3:]
            layer[step] = (partial(_block_and_edges, cuts=cuts, **plan), pieces,
                           model_value.key)
            layer[key] = (operator.getitem, step, 0)
            layer[(edges,) + step[1:]] = (operator.getitem, step, 1)
    for (n, i, j), cuts in wanted.items():
        if (edges, n, i, j) not in layer:  # a chunk without outputs of its own
            layer[(edges, n, i, j)] = (partial(_edges, cuts=cuts), (image.name, n, 0, i, j))
        # One key per part, so that each is freed as soon as its readers ran.
        for part in cuts:
            layer[(edges, n, i, j, part)] = (operator.getitem, (edges, n, i, j), part)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[image, model_value])
    maps = da.Array(graph, name, out_chunks, meta=np.empty((0, 0, 0, 0), image.dtype))
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
