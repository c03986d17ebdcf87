"""fastconv.models.mtcnn: the networks, the detector's contract, bad input, and
facenet-pytorch's MTCNN as the independent reference.

Tests with the reference need torch and facenet-pytorch
(`pip install --no-deps facenet-pytorch==2.6.0`); tests on photographs need
scikit-image (and Pillow for composites and files).  Each skips without them.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import models, nn
from fastconv.models import _weights
from test_mtcnn_kernels import greedy_nms

EXPECTED = Path(__file__).with_name("data") / "mtcnn_expected.json"


@pytest.fixture(scope="module")
def detector():
    return models.mtcnn()


def _photos():
    pytest.importorskip("skimage")
    from fastconv.bench import mtcnn_peer
    return mtcnn_peer.photos()


def _iou(a, b):
    """IoU of two x1, y1, x2, y2 boxes, from the definition."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def assert_same_faces(got, want, iou=0.9, prob=1e-3, landmark=1.5):
    """Every wanted face matched by exactly one found face (IoU >= iou), with
    probabilities within `prob` and landmarks within `landmark` pixels."""
    (boxes, probs, marks), (want_boxes, want_probs, want_marks) = got, want
    assert len(boxes) == len(want_boxes), (boxes, want_boxes)
    unused = set(range(len(boxes)))
    for wb, wp, wm in zip(want_boxes, want_probs, want_marks):
        best = max(unused, key=lambda i: _iou(boxes[i], wb))
        assert _iou(boxes[best], wb) >= iou, (boxes[best], wb)
        assert abs(probs[best] - wp) <= prob
        assert np.abs(marks[best] - np.asarray(wm)).max() <= landmark
        unused.remove(best)


def _empty(result):
    boxes, probs, marks = result
    assert boxes.shape == (0, 4) and probs.shape == (0,) and marks.shape == (0, 5, 2)
    assert boxes.dtype == probs.dtype == marks.dtype == np.float32


# -- the networks --------------------------------------------------------------------------

def test_networks_take_their_crops_and_pnet_any_size():
    rng = np.random.default_rng(0)
    p, r, o = models.pnet("trained"), models.rnet(), models.onet()
    probs, boxes = p(rng.standard_normal((2, 3, 31, 45), dtype=np.float32))
    assert probs.shape == (2, 2, 11, 18) and boxes.shape == (2, 4, 11, 18)
    assert r(rng.standard_normal((5, 3, 24, 24), dtype=np.float32)).shape == (5, 6)
    assert o(rng.standard_normal((3, 3, 48, 48), dtype=np.float32)).shape == (3, 16)
    assert r.params() == 100_178 and o.params() == 389_040   # facenet-pytorch's counts
    assert nn.summary(o, o.input_shape).fc_params == 1152 * 256 + 256 + 256 * 16 + 16


@pytest.mark.parametrize("make", [models.rnet, models.onet])
def test_rnet_onet_fully_convolutional_equal_the_fc_networks(make):
    net = make()
    fc_free = nn.to_fully_convolutional(net, net.input_shape)
    assert not any(isinstance(layer, (nn.Linear, nn.Flatten)) for layer in fc_free)
    x = np.random.default_rng(1).standard_normal((7,) + net.input_shape, dtype=np.float32)
    want = net(x)
    got = fc_free(x)
    assert got.shape == want.shape + (1, 1)
    np.testing.assert_allclose(got[:, :, 0, 0], want, rtol=1e-5, atol=1e-5)
    # On a larger input it gives a map of outputs, as P-Net does.
    c, h, w = net.input_shape
    assert fc_free(np.zeros((1, c, 2 * h, 2 * w), np.float32)).shape[2:] != (1, 1)


def test_trained_weights_load_and_are_checked():
    x = np.random.default_rng(2).standard_normal((2, 3, 24, 24), dtype=np.float32)
    assert not np.allclose(models.rnet()(x), models.rnet(weights=None)(x))
    state = _weights.trained("rnet")
    assert set(state) == set(models.state_dict(models.rnet().layers))
    del state["9.weight"]
    with pytest.raises(ValueError, match="9.weight"):
        models.rnet(weights=state)
    seeded = models.mtcnn(weights=None)          # runs, finds nothing on a blank image
    _empty(seeded.detect(np.zeros((40, 40, 3), np.uint8)))
    with np.load(_weights.MTCNN) as f:
        partial = {k: f[k] for k in f.files if not k.startswith("onet.")}
    with pytest.raises(ValueError, match="missing: 0.bias"):
        models.mtcnn(weights=partial)


def test_unreadable_weight_files_raise_value_error_naming_them(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    for path in (tmp_path / "missing.npz", junk, tmp_path / "plain.npy", tmp_path):
        with pytest.raises(ValueError, match="cannot read MTCNN weights") as info:
            models.mtcnn(weights=path)
        assert str(path) in str(info.value)


# -- pieces against first principles ------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (7, 4)])
def test_prelu_with_the_slopes_trained_nets_have(shape):
    """Trained MTCNN slopes include negative ones and ones above 1."""
    x = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    slope = np.array([-1.28, 0.3, 1.3, 1.0], np.float32)
    a = slope.reshape((-1,) + (1,) * (len(shape) - 2))
    assert np.array_equal(nn.PReLU(slope)(x), np.where(x >= 0, x, a * x))


# -- the detector's contract ---------------------------------------------------------------

def test_no_face_gives_empty_arrays(detector):
    _empty(detector.detect(np.zeros((64, 80, 3), np.uint8)))
    _empty(detector.detect(np.full((50, 50, 3), 200, np.uint8)))


def test_candidates_wholly_outside_the_image_are_dropped(detector):
    """(facenet-pytorch skips their crops but not their boxes, then fails on the mismatch.)"""
    image = np.zeros((1, 50, 50, 3), np.uint8)
    outside = np.array([[100, 100, 140, 140, 0.9], [-50, -50, -10, -10, 0.8]], np.float32)
    boxes, index = detector._refine(image, outside, np.array([0, 0]))
    assert boxes.shape == (0, 5) and index.shape == (0,)
    boxes, index, points = detector._output(image, outside, np.array([0, 0]))
    assert boxes.shape == (0, 5) and points.shape == (0, 5, 2)


@pytest.mark.parametrize("shape", [(11, 11, 3), (5, 300, 3), (300, 11, 3), (0, 0, 3), (19, 19)])
def test_images_below_the_smallest_window_give_no_faces(detector, shape):
    image = np.random.default_rng(6).integers(0, 256, shape, dtype=np.uint8)
    _empty(detector.detect(image))
    assert detector.scales(*shape[:2]) == []


def test_pyramid_scales_follow_min_face_size_and_factor(detector):
    scales = detector.scales(512, 512)
    assert scales[0] == 12 / 20 and np.allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 512 * scales[-1] >= 12 > 512 * scales[-1] * 0.709
    assert models.mtcnn(min_face_size=40).scales(512, 512)[0] == 12 / 40


def test_detects_the_astronaut_as_the_stored_reference_result(detector):
    """The stored result is facenet-pytorch's (scripts/mtcnn_expected.py)."""
    photos = _photos()
    expected = json.loads(EXPECTED.read_text())
    for name in ("astronaut", "camera"):
        want = expected[name]
        assert len(want["boxes"]) == 1
        got = detector.detect(photos[name])
        assert_same_faces(got, (want["boxes"], want["probs"], want["landmarks"]))
        assert got[1][0] > 0.99


@pytest.mark.slow
def test_grayscale_float_path_and_batch_inputs_agree(detector, tmp_path):
    photos = _photos()
    camera = photos["camera"]
    want = detector.detect(camera)
    for image in (camera[:, :, 0], camera[:, :, :1], camera.astype(np.float32),
                  camera.astype(np.int64)):
        got = detector.detect(image)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-3)
    both = detector.detect_batch(np.stack([photos["astronaut"], camera]))
    for got, image in zip(both, (photos["astronaut"], camera)):
        for g, w in zip(got, detector.detect(image)):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "camera.png"
    Image.fromarray(camera[:, :, 0]).save(path)           # a grayscale file
    for source in (path, str(path), Image.open(path)):
        for g, w in zip(detector.detect(source), want):
            np.testing.assert_array_equal(g, w)


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("image, error, words", [
    (np.zeros((30, 30, 4), np.uint8), ValueError, "alpha"),
    (np.zeros((30, 30, 2), np.uint8), ValueError, "(H, W, 3)"),
    (np.zeros((2, 30, 30, 3), np.uint8), ValueError, "(H, W, 3)"),
    (np.zeros(30, np.uint8), ValueError, "(H, W, 3)"),
    (np.full((30, 30, 3), 0.5, np.float32), ValueError, "[0, 1]"),
    (np.full((30, 30, 3), 300.0), ValueError, "[0, 255]"),
    (np.full((30, 30, 3), -1, np.int16), ValueError, "[0, 255]"),
    (np.full((30, 30, 3), np.nan, np.float32), ValueError, "[0, 255]"),
    (np.zeros((30, 30, 3), bool), TypeError, "dtype bool"),
    (np.zeros((30, 30, 3), complex), TypeError, "dtype complex"),
    ([[0, 1], [2, 3]], TypeError, "list"),
    (None, TypeError, "NoneType"),
])
def test_bad_images_are_refused_with_a_clear_message(detector, image, error, words):
    with pytest.raises(error, match="image") as info:
        detector.detect(image)
    assert words in str(info.value)


def test_unreadable_paths_raise_value_error_naming_the_path(detector, tmp_path):
    pytest.importorskip("PIL")
    junk = tmp_path / "not_an_image.png"
    junk.write_bytes(b"this is not a PNG")
    for path in (tmp_path / "missing.jpg", junk, tmp_path):
        with pytest.raises(ValueError, match="cannot read image") as info:
            detector.detect(path)
        assert str(path) in str(info.value)


def test_detect_batch_refuses_mixed_sizes_and_single_images(detector):
    with pytest.raises(ValueError, match="one size"):
        detector.detect_batch([np.zeros((30, 30, 3), np.uint8), np.zeros((31, 30, 3), np.uint8)])
    with pytest.raises(TypeError, match="detect\\(\\)"):
        detector.detect_batch(np.zeros((30, 30, 3), np.uint8))
    assert detector.detect_batch([]) == []


@pytest.mark.parametrize("kwargs", [dict(min_face_size=0), dict(min_face_size="20"),
                                    dict(thresholds=(0.6, 0.7)), dict(thresholds=(0.6, 0.7, 1.5)),
                                    dict(factor=1.0), dict(factor=float("nan"))])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        models.mtcnn(**kwargs)


# -- against facenet-pytorch ---------------------------------------------------------------

@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("torch")
    if importlib.util.find_spec("facenet_pytorch") is None:   # importing it needs requests
        pytest.skip("facenet-pytorch is not installed")
    from fastconv.bench import mtcnn_peer
    return mtcnn_peer


@pytest.mark.slow
def test_networks_match_facenet_pytorch(reference):
    import torch
    model = reference.facenet_mtcnn()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 3, 40, 53), dtype=np.float32)
    with torch.no_grad():
        reg, prob = model.pnet(torch.as_tensor(x))
    got_prob, got_reg = models.pnet("trained")(x)
    np.testing.assert_allclose(got_prob, prob.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_reg, reg.numpy(), rtol=1e-4, atol=1e-4)
    for net, ref, size in ((models.rnet(), model.rnet, 24), (models.onet(), model.onet, 48)):
        x = rng.standard_normal((9, 3, size, size), dtype=np.float32)
        with torch.no_grad():
            outs = ref(torch.as_tensor(x))
        got = net(x)
        prob, heads = outs[-1].numpy(), [o.numpy() for o in outs[:-1]]
        np.testing.assert_allclose(nn.Softmax()(got[:, :2]), prob, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[:, 2:], np.concatenate(heads, 1), rtol=1e-4, atol=1e-4)


def _scenes():
    photos = _photos()
    pytest.importorskip("PIL")
    from fastconv.bench.mtcnn_peer import composite
    return {**photos,
            "coffee 1280x720": composite(1280, 720, (0.4, 0.7, 1.0, 1.6), "coffee"),
            "rocket 640x360": composite(640, 360, (0.25, 0.35, 0.5, 0.8), "rocket"),
            "chelsea 900x500": composite(900, 500, (1.2, 0.3, 0.9, 0.6), "chelsea"),
            "hubble 1000x872": composite(1000, 872, (2.0, 0.5, 0.2), "hubble_deep_field"),
            "crowd 640x360": composite(640, 360, (0.8, 0.7, 0.8, 0.7, 0.8), "rocket", gap=-40)}


@pytest.mark.slow
def test_detect_finds_the_faces_facenet_pytorch_finds(reference, detector):
    model = reference.facenet_mtcnn()
    found = 0
    for name, image in _scenes().items():
        want = reference.facenet_detect(model, image)
        got = detector.detect(image)
        assert_same_faces(got, want)
        found += len(want[0])
    assert found >= 2 + 4 + 3 + 3 + 2 + 5   # the reference finds faces in these scenes


@pytest.mark.slow
def test_detect_matches_facenet_pytorch_with_other_settings(reference):
    photos = _photos()
    settings = dict(min_face_size=40, thresholds=(0.5, 0.6, 0.6), factor=0.6)
    mine = models.mtcnn(**settings)
    theirs = reference._import_detect_face()[0].MTCNN(keep_all=True, device="cpu", **{
        "min_face_size": 40, "thresholds": [0.5, 0.6, 0.6], "factor": 0.6})
    for image in photos.values():
        assert_same_faces(mine.detect(image), reference.facenet_detect(theirs, image))


# -- python -m fastconv detect -------------------------------------------------------------

def test_cli_detect_prints_draws_and_writes_json(detector, tmp_path, capsys):
    from fastconv import __main__ as cli
    Image = pytest.importorskip("PIL.Image")
    astronaut = _photos()["astronaut"]
    photo, out, js = tmp_path / "astronaut.jpg", tmp_path / "annotated.png", tmp_path / "f.json"
    Image.fromarray(astronaut).save(photo, quality=95)
    assert cli.main(["detect", str(photo), "--out", str(out), "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "512x512, 1 face " in printed and "left_eye" in printed
    boxes, probs, marks = detector.detect(photo)
    doc = json.loads(js.read_text())
    assert (doc["width"], doc["height"], len(doc["faces"])) == (512, 512, 1)
    face = doc["faces"][0]
    np.testing.assert_allclose(face["box"], boxes[0], atol=0.01)
    np.testing.assert_allclose(list(face["landmarks"].values()), marks[0], atol=0.01)
    assert face["prob"] == pytest.approx(probs[0], abs=1e-6)
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == astronaut.shape
    x1, y1 = (int(round(v)) for v in boxes[0, :2])
    assert tuple(drawn[y1 + 20, x1]) == (255, 40, 40)          # on the box's left edge
    assert not np.array_equal(drawn, np.asarray(Image.open(photo)))


def test_cli_detect_reports_unreadable_photo_and_bad_options(tmp_path, capsys):
    from fastconv import __main__ as cli
    pytest.importorskip("PIL")
    missing = tmp_path / "missing.png"
    assert cli.main(["detect", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "cannot read image" in err and str(missing) in err
    with pytest.raises(SystemExit) as info:
        cli.main(["detect"])
    assert info.value.code == 2
    blank = tmp_path / "blank.png"
    from PIL import Image
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(blank)
    assert cli.main(["detect", str(blank), "--min-face-size", "0"]) == 1
    assert "min_face_size" in capsys.readouterr().err
    assert cli.main(["detect", str(blank), "--json", str(tmp_path / "no" / "f.json")]) == 1
    assert cli.main(["detect", str(blank)]) == 0
    assert "40x40, 0 faces" in capsys.readouterr().out


@pytest.mark.slow
def test_detect_batch_matches_facenet_pytorch_batches(reference, detector):
    import torch
    photos = _photos()
    batch = np.stack([photos["camera"], np.zeros_like(photos["camera"]), photos["astronaut"]])
    with torch.no_grad():
        boxes, probs, points = reference.facenet_mtcnn().detect(batch, landmarks=True)
    got = detector.detect_batch(batch)
    assert len(got) == 3
    _empty(got[1])
    assert boxes[1] is None
    for i in (0, 2):
        assert_same_faces(got[i], (boxes[i], probs[i], points[i]))


def test_shipped_weights_are_what_convert_mtcnn_makes_of_facenet_pytorchs(reference):
    import torch
    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_mtcnn.py"
    spec = importlib.util.spec_from_file_location("convert_mtcnn", script)
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    data = Path(importlib.util.find_spec("facenet_pytorch").submodule_search_locations[0]) / "data"
    with np.load(_weights.MTCNN) as shipped:
        shipped = {k: shipped[k] for k in shipped.files if k != "source"}
    made = {}
    for net, layout in (("pnet", convert.PNET), ("rnet", convert.RNET), ("onet", convert.ONET)):
        made.update(convert.convert(net, torch.load(data / f"{net}.pt"), layout))
    assert made.keys() == shipped.keys()
    for key in made:
        assert np.array_equal(made[key], shipped[key]), key


def test_stand_in_batched_nms_is_greedy_iou_nms_per_image(reference):
    import torch
    rng = np.random.default_rng(9)
    corner = rng.uniform(0, 60, (90, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 30, (90, 2))], 1).astype(np.float32)
    scores = rng.permutation(90).astype(np.float32) / 90
    image = rng.integers(0, 3, 90)
    keep = reference.batched_nms(torch.as_tensor(boxes), torch.as_tensor(scores),
                                 torch.as_tensor(image), 0.5).tolist()
    assert keep == greedy_nms(boxes, scores, 0.5, "iou", image)
