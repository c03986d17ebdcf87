"""The MTCNN detector's image kernels in the C core: area resampling of crops
(fastconv.models.mtcnn._area_resample, csrc/image/resample.c) and greedy NMS
(_nms, csrc/image/nms.c).

References share no code with them: the mean over each output's window
written as a float64 loop from PyTorch's area rule, torch's
interpolate(mode="area") itself (skipped without torch), and NMS as a loop
over pairs of boxes in float32, per image, in the order the definition gives.
"""
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
from fastconv.models.mtcnn import _area_resample, _nms


# -- references ------------------------------------------------------------------------------

def area_reference(images, index, y0, y1, x0, x1, oh, ow):
    """Each output the float64 mean of the crop's pixels in its window
    (rows floor(i L / oh) to ceil((i + 1) L / oh), columns alike), rounded to
    float32, then (mean - 127.5) / 128 in float32."""
    out = np.empty((len(index), images.shape[3], oh, ow), np.float32)
    for k in range(len(index)):
        crop = images[index[k], y0[k]:y1[k], x0[k]:x1[k]].astype(np.float64)
        rows, cols = crop.shape[:2]
        for i in range(oh):
            r0, r1 = (i * rows) // oh, -(-((i + 1) * rows) // oh)
            for j in range(ow):
                c0, c1 = (j * cols) // ow, -(-((j + 1) * cols) // ow)
                window = crop[r0:r1, c0:c1].reshape(-1, crop.shape[2])
                mean = window.sum(axis=0) / ((r1 - r0) * (c1 - c0))
                out[k, :, i, j] = (mean.astype(np.float32) - np.float32(127.5)) \
                    * np.float32(0.0078125)
    return out


def greedy_nms(boxes, scores, threshold, mode="iou", image=None):
    """NMS from its definition: per image, visit the boxes by descending score
    (equal scores: by position), keep one unless a kept box overlaps it by more
    than threshold; then all kept boxes by descending score (equal: by image,
    then position).  float32 arithmetic, one pair at a time."""
    f = np.float32
    one = f(1) if mode == "min" else f(0)
    threshold = f(threshold)
    image = np.zeros(len(boxes), int) if image is None else np.asarray(image)

    def area(b):
        return (f(b[2]) - f(b[0]) + one) * (f(b[3]) - f(b[1]) + one)

    def suppresses(a, b):
        w = max(f(min(f(a[2]), f(b[2])) - max(f(a[0]), f(b[0])) + one), f(0))
        h = max(f(min(f(a[3]), f(b[3])) - max(f(a[1]), f(b[1])) + one), f(0))
        inter = f(w * h)
        with np.errstate(invalid="ignore", divide="ignore"):
            if mode == "min":
                return not f(inter / min(area(a), area(b))) <= threshold
            return f(inter / f(f(area(a) + area(b)) - inter)) > threshold

    kept = []
    for i in sorted(set(image.tolist())):
        mine = [k for k in range(len(boxes)) if image[k] == i]
        keep = []
        for k in sorted(mine, key=lambda k: -scores[k]):
            if not any(suppresses(boxes[q], boxes[k]) for q in keep):
                keep.append(k)
        kept += keep
    return sorted(kept, key=lambda k: -scores[k])


def _images(rng, n, h, w, c=3):
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _crops(rng, n_images, h, w, count):
    """Random non-empty crops of n_images h x w images, with 1-pixel and whole-image ones."""
    y0, x0 = rng.integers(0, h, count), rng.integers(0, w, count)
    y1, x1 = y0 + 1 + rng.integers(0, h - y0), x0 + 1 + rng.integers(0, w - x0)
    y0[:2], y1[:2], x0[:2], x1[:2] = (0, h - 1), (h, h), (0, w - 1), (w, w)   # whole, 1 pixel
    return rng.integers(0, n_images, count), y0, y1, x0, x1


# -- area resampling -------------------------------------------------------------------------

@pytest.mark.parametrize("oh, ow", [(24, 24), pytest.param(48, 48, marks=pytest.mark.slow),
                                    (1, 1), (5, 9), (13, 2),
                                    pytest.param(60, 70, marks=pytest.mark.slow)])
def test_area_resample_is_the_mean_over_each_window(oh, ow):
    """Exact: uint8 sums are integers, so the mean is one correctly rounded division."""
    rng = np.random.default_rng(oh * 100 + ow)
    images = _images(rng, 3, 37, 53)
    crops = _crops(rng, 3, 37, 53, 40)
    got = _area_resample(images, *crops, oh, ow)
    assert got.shape == (40, 3, oh, ow) and got.dtype == np.float32
    np.testing.assert_array_equal(got, area_reference(images, *crops, oh, ow))


@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_area_resample_matches_the_loop_on_any_shapes(h, w, oh, ow, n, seed):
    rng = np.random.default_rng(seed)
    images = _images(rng, n, h, w)
    crops = _crops(rng, n, h, w, 2 + seed % 7)
    np.testing.assert_array_equal(_area_resample(images, *crops, oh, ow),
                                  area_reference(images, *crops, oh, ow))


def test_area_resample_matches_torch_area_interpolation():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    images = _images(rng, 2, 40, 57)

    def area(x, size):
        x = torch.as_tensor(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
        return ((torch.nn.functional.interpolate(x, size=size, mode="area") - 127.5)
                * 0.0078125).numpy()

    index, y0, y1, x0, x1 = _crops(rng, 2, 40, 57, 30)
    for size in ((24, 24), (48, 48), (7, 31), (1, 1), (90, 3)):
        got = _area_resample(images, index, y0, y1, x0, x1, *size)
        for k in range(len(index)):   # torch rounds the mean once in float32: 1 ulp apart
            want = area(images[index[k]:index[k] + 1, y0[k]:y1[k], x0[k]:x1[k]], size)
            np.testing.assert_allclose(got[k:k + 1], want, rtol=0, atol=2e-7)
    whole = np.arange(2), np.zeros(2, int), np.full(2, 40), np.zeros(2, int), np.full(2, 57)
    for size in ((25, 35), (12, 12), (40, 57), (61, 80), (3, 100)):
        np.testing.assert_allclose(_area_resample(images, *whole, *size), area(images, size),
                                   rtol=0, atol=2e-7)


@pytest.mark.parametrize("rows", [257, 258, 700])
def test_windows_of_many_rows_and_other_channel_counts(rows):
    """Up to 257 rows a window's uint8 sums fit uint16; beyond, int32."""
    rng = np.random.default_rng(rows)
    images = np.full((1, rows, 9, 3), 255, np.uint8)
    images[0, rng.integers(0, rows, 20), rng.integers(0, 9, 20)] = rng.integers(0, 256, (20, 3))
    whole = [0], [0], [rows], [0], [9]
    np.testing.assert_array_equal(_area_resample(images, *whole, 1, 2),
                                  area_reference(images, *whole, 1, 2))
    for c in (1, 4):
        images = _images(rng, 2, rows // 50, 11, c)
        crops = _crops(rng, 2, rows // 50, 11, 9)
        want = area_reference(images, *crops, 6, 5)
        np.testing.assert_array_equal(_area_resample(images, *crops, 6, 5), want)
        np.testing.assert_allclose(_area_resample(images.astype(np.float64), *crops, 6, 5), want,
                                   rtol=0, atol=1e-6)


def test_float64_pixels_and_non_contiguous_images():
    rng = np.random.default_rng(5)
    images = _images(rng, 2, 31, 29)
    crops = _crops(rng, 2, 31, 29, 25)
    want = _area_resample(images, *crops, 24, 24)
    # float64 pixels are summed in float64: the same means to within float32 rounding
    np.testing.assert_allclose(_area_resample(images.astype(np.float64), *crops, 24, 24), want,
                               rtol=0, atol=1e-6)
    fractional = images + rng.uniform(0, 0.9, images.shape)
    np.testing.assert_allclose(_area_resample(fractional, *crops, 24, 24),
                               area_reference(fractional, *crops, 24, 24), rtol=0, atol=1e-6)
    wide = np.zeros((2, 31, 58, 3), np.uint8)
    wide[:, :, ::2] = images   # a strided view is copied, not misread
    np.testing.assert_array_equal(_area_resample(wide[:, :, ::2], *crops, 24, 24), want)


def test_area_resample_agrees_across_thread_counts_and_empty_batches():
    rng = np.random.default_rng(6)
    images = _images(rng, 3, 120, 90)
    crops = _crops(rng, 3, 120, 90, 300)
    with fastconv.threads(1):
        one = _area_resample(images, *crops, 48, 48)
        level_one = _area_resample(images, np.arange(3), [0] * 3, [120] * 3, [0] * 3, [90] * 3,
                                   70, 51)
    with fastconv.threads(2):
        np.testing.assert_array_equal(_area_resample(images, *crops, 48, 48), one)
        np.testing.assert_array_equal(
            _area_resample(images, np.arange(3), [0] * 3, [120] * 3, [0] * 3, [90] * 3, 70, 51),
            level_one)
    none = np.zeros(0, int)
    assert _area_resample(images, none, none, none, none, none, 24, 24).shape == (0, 3, 24, 24)


def test_calls_from_several_threads_at_once_agree_with_one_at_a_time():
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(9)
    images = _images(rng, 2, 80, 90)
    jobs = [(_crops(rng, 2, 80, 90, 60), int(rng.integers(1, 50))) for _ in range(8)]
    boxes = [(_boxes(rng, 200, k % 2 == 0), rng.random(200).astype(np.float32)) for k in range(8)]

    def run(k):
        (crops, size), (b, s) = jobs[k], boxes[k]
        return _area_resample(images, *crops, size, size + 1), _nms(b, s, 0.5, "iou", (b[:, 0] > 20).astype(int))

    want = [run(k) for k in range(8)]
    with fastconv.threads(2), ThreadPoolExecutor(4) as pool:
        got = list(pool.map(run, range(8)))
    for (r, k), (wr, wk) in zip(got, want):
        np.testing.assert_array_equal(r, wr)
        np.testing.assert_array_equal(k, wk)


_GOOD = dict(image_index=[0], y0=[0], y1=[4], x0=[0], x1=[5])


@pytest.mark.parametrize("change, error, words", [
    (dict(images=np.zeros((1, 6, 6, 3), np.float32)), TypeError, "uint8 or float64"),
    (dict(images=np.zeros((1, 6, 6, 3), np.uint16)), TypeError, "uint8 or float64"),
    (dict(images=[[[[0, 0, 0]]]]), TypeError, "uint8 or float64"),
    (dict(images=np.zeros((6, 6, 3), np.uint8)), ValueError, "(N, H, W, C)"),
    (dict(images=np.zeros((1, 6, 6, 0), np.uint8)), ValueError, "(N, H, W, C)"),
    (dict(y1=[7]), ValueError, "[y0, y1)"),
    (dict(y0=[-1]), ValueError, "[y0, y1)"),
    (dict(y0=[4]), ValueError, "non-empty"),
    (dict(x0=[3], x1=[2]), ValueError, "[x0, x1)"),
    (dict(x1=[7]), ValueError, "[x0, x1)"),
    (dict(image_index=[1]), ValueError, "image_index"),
    (dict(image_index=[-1]), ValueError, "image_index"),
    (dict(y0=[0, 0]), ValueError, "one length"),
    (dict(x0=[0.0]), TypeError, "x0"),
    (dict(image_index=[True]), TypeError, "image_index"),
    (dict(y1=[[4]]), TypeError, "1-D"),
    (dict(out_h=0), ValueError, "out_h"),
    (dict(out_w=2.0), ValueError, "out_w"),
    (dict(out_w=True), ValueError, "out_w"),
])
def test_area_resample_refuses_bad_arguments(change, error, words):
    args = dict(images=np.zeros((1, 6, 6, 3), np.uint8), **_GOOD, out_h=3, out_w=3)
    args.update(change)
    with pytest.raises(error, match=re.escape(words)):
        _area_resample(**args)


# -- NMS -------------------------------------------------------------------------------------

def _boxes(rng, n, integer):
    """Random boxes with repeats, zero-width ones and (with integer) exact ties in overlap."""
    corner = rng.integers(0, 40, (n, 2)) if integer else rng.uniform(0, 60, (n, 2))
    size = rng.integers(0, 25, (n, 2)) if integer else rng.uniform(0, 30, (n, 2))
    boxes = np.concatenate([corner, corner + size], 1).astype(np.float32)
    boxes[n // 2:n // 2 + n // 8] = boxes[:n // 8]   # duplicates
    return boxes


@pytest.mark.parametrize("mode", ["iou", "min"])
@pytest.mark.parametrize("integer", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_nms_keeps_what_greedy_nms_keeps_with_ties(mode, integer):
    rng = np.random.default_rng(7 + integer)
    for trial in range(6):
        n = int(rng.integers(1, 120))
        boxes = _boxes(rng, n, integer)
        scores = rng.integers(0, 6, n).astype(np.float32) / 6   # many equal scores
        image = rng.integers(0, 3, n)
        for threshold in (0.0, 0.3, 0.5, 0.7, 1.0):
            got = _nms(boxes, scores, threshold, mode)
            assert got.dtype == np.intp
            assert got.tolist() == greedy_nms(boxes, scores, threshold, mode)
            got = _nms(boxes, scores, threshold, mode, image_index=image)
            assert got.tolist() == greedy_nms(boxes, scores, threshold, mode, image)


@given(st.integers(0, 60), st.sampled_from(["iou", "min"]), st.floats(0, 1),
       st.integers(0, 2**32 - 1))
def test_nms_matches_greedy_nms_on_any_boxes(n, mode, threshold, seed):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, n, seed % 2 == 0)
    scores = rng.integers(0, 4, n).astype(np.float32)
    image = rng.integers(5, 8, n)
    assert _nms(boxes, scores, threshold, mode, image).tolist() == \
        greedy_nms(boxes, scores, threshold, mode, image)


def test_nms_edge_cases():
    box = np.array([[0, 0, 10, 10]], np.float32)
    assert _nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)
    assert _nms(box, np.ones(1, np.float32), 0.5).tolist() == [0]
    same = np.repeat(box, 4, 0)
    assert _nms(same, np.ones(4, np.float32), 0.5).tolist() == [0]          # ties: first wins
    assert _nms(same, np.ones(4, np.float32), 0.5, image_index=[3, 1, 3, 1]).tolist() == [1, 0]
    point = np.zeros((3, 4), np.float32)   # zero area: IoU 0/0 suppresses nothing
    assert _nms(point, np.array([1, 3, 2], np.float32), 0.5).tolist() == [1, 2, 0]
    assert _nms(point, np.array([1, 3, 2], np.float32), 0.5, "min").tolist() == [1]
    float64 = _nms(same.astype(np.float64), np.arange(4.0), 0.5)
    assert float64.tolist() == [3]


@pytest.mark.parametrize("args, error, words", [
    ((np.zeros((2, 3), np.float32), np.zeros(2, np.float32), 0.5), ValueError, "boxes"),
    ((np.zeros((2, 4), np.float32), np.zeros(3, np.float32), 0.5), ValueError, "scores"),
    ((np.zeros((2, 4), np.int64), np.zeros(2, np.float32), 0.5), TypeError, "boxes"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.int64), 0.5), TypeError, "scores"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.float32), float("nan")), ValueError,
     "threshold"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.float32), "0.5"), ValueError, "threshold"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.float32), 0.5, "max"), ValueError, "mode"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.float32), 0.5, "iou", [0.0, 1.0]),
     TypeError, "image_index"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.float32), 0.5, "iou", [0, 1, 2]),
     ValueError, "image_index"),
])
def test_nms_refuses_bad_arguments(args, error, words):
    with pytest.raises(error, match=words):
        _nms(*args)


# -- the C side ------------------------------------------------------------------------------

def test_a_failed_allocation_is_memory_error_then_calls_work():
    from fastconv.backends.c import lib
    rng = np.random.default_rng(8)
    images = _images(rng, 2, 30, 40)
    crops = _crops(rng, 2, 30, 40, 20)
    boxes = _boxes(rng, 50, True)
    scores = rng.random(50).astype(np.float32)
    for call in (lambda: _area_resample(images, *crops, 24, 24),
                 lambda: _nms(boxes, scores, 0.5)):
        want = call()
        for n in range(4):   # the kernels allocate at most three buffers
            lib.fc_debug_fail_allocs_after(n)
            try:
                call()
                assert n > 0, "a call must need memory"
                break
            except MemoryError:
                pass
            finally:
                lib.fc_debug_fail_allocs_after(-1)
        else:
            raise AssertionError("still failing with three allocations allowed")
        np.testing.assert_array_equal(call(), want)


def test_area_args_fill_every_field_of_the_header_struct():
    from fastconv.backends.c import area_args, ffi, lib
    images, out = np.zeros((2, 5, 7, 3), np.uint8), np.empty((1, 3, 3, 2), np.float32)
    crop = [np.array([v], np.int64) for v in (1, 1, 4, 2, 7)]
    args = area_args(images, *crop, 3, 2, 127.5, 0.0078125, out)
    assert sorted(args) == sorted(name for name, _ in ffi.typeof("fc_area_args").fields)
    a = ffi.new("fc_area_args *", args)
    assert (a.n, a.h, a.w, a.c, a.crops, a.oh, a.ow) == (2, 5, 7, 3, 1, 3, 2)
    assert (a.index[0], a.y0[0], a.y1[0], a.x0[0], a.x1[0]) == (1, 1, 4, 2, 7)
    assert (a.offset, a.scale, a.pixel) == (127.5, 0.0078125, lib.FC_PIXEL_U8)
    assert int(ffi.cast("uintptr_t", a.images)) == images.ctypes.data
    assert int(ffi.cast("uintptr_t", a.y)) == out.ctypes.data
