"""fastconv.models: the trained LeNet's held-out accuracy, seeded and stored
weights, VGG-16's parameter split, P-Net as a fully convolutional network,
and the demo's canvas / sliding-window pieces."""
import time

import numpy as np
import pytest

import fastconv
from fastconv import demo, models, nn
from fastconv.models import digits

BACKENDS = ["c", "numba"]


def trained_accuracy_record():
    with np.load(models.lenet.TRAINED) as f:
        return int(f["heldout_correct"]), int(f["heldout_total"])


# -- LeNet-5 ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS + ["numpy"])
def test_trained_lenet_reproduces_its_heldout_accuracy(backend):
    x, y = digits.heldout()
    correct, total = trained_accuracy_record()
    assert len(y) == total
    model = models.lenet5()
    with fastconv.config(backend=backend):
        probs = model(x)
    assert probs.shape == (total, 10)
    assert int((probs.argmax(1) == y).sum()) == correct
    assert correct / total >= 0.97


def test_lenet_docstring_states_the_recorded_accuracy():
    correct, total = trained_accuracy_record()
    doc = " ".join(models.lenet5.__doc__.split())
    assert f"{100 * correct / total:.2f}% accuracy on the {total} held-out digits" in doc
    assert f"({correct} of {total};" in doc


def test_shipped_heldout_digits_are_the_regenerated_split():
    pytest.importorskip("sklearn")
    images, labels = digits.load_raw("test")
    with np.load(digits.HELDOUT_FILE) as f:
        assert np.array_equal(f["images"], images)
        assert np.array_equal(f["labels"], labels)
    train, test = digits.split_indices(1797)
    assert len(test) == len(labels) and len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.union1d(train, test), np.arange(1797))


def test_upsampling_keeps_a_blank_margin_and_the_value_range():
    images8 = np.random.default_rng(0).integers(0, 17, (5, 8, 8))
    big = digits.upsample(images8)
    assert big.shape == (5, 1, 28, 28) and big.dtype == np.float32
    assert big.min() >= 0 and big.max() <= 1
    assert not big[:, :, :4].any() and not big[:, :, -4:].any()
    assert not big[..., :4].any() and not big[..., -4:].any()
    flat = digits.upsample(np.full((1, 8, 8), 16))
    assert np.allclose(flat[0, 0, 4:24, 4:24], 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lenet_fully_convolutional_equals_sliding_window(backend):
    model = models.lenet5()
    fcn = nn.to_fully_convolutional(model, model.input_shape)
    canvas, _ = demo.make_canvas(seed=3)
    part = np.ascontiguousarray(canvas[:, :, 30:30 + 56, 50:50 + 70])
    with fastconv.config(backend=backend):
        heat = fcn(part)[0]
        slide = demo.sliding_window(model, part)
    assert heat.shape == (10, 8, 11) and slide.shape == (8, 11, 10)
    err = np.abs(heat.transpose(1, 2, 0) - slide).max() / np.abs(slide).max()
    assert err <= 1e-4


@pytest.mark.slow
def test_lenet_fully_convolutional_on_the_whole_canvas_at_all_4096_windows():
    # The demo's full case, on the oracle backend (the kernels are checked above
    # on part of the canvas, and against the oracle everywhere else).
    model = models.lenet5()
    fcn = nn.to_fully_convolutional(model, model.input_shape)
    canvas, _ = demo.make_canvas()
    with fastconv.config(backend="numpy"):
        heat = fcn(canvas)[0]
        slide = demo.sliding_window(model, canvas)
    assert heat.shape == (10, 64, 64) and slide.shape == (64, 64, 10)
    assert np.abs(heat.transpose(1, 2, 0) - slide).max() / np.abs(slide).max() <= 1e-4


def test_seeded_weights_are_deterministic_and_loadable(tmp_path):
    a, b, c = models.lenet5(weights=None), models.lenet5(weights=None), \
        models.lenet5(weights=None, seed=1)
    assert np.array_equal(a[0].weight, b[0].weight) and np.array_equal(a[7].bias, b[7].bias)
    assert not np.array_equal(a[0].weight, c[0].weight)
    path = tmp_path / "lenet.npz"
    models.save_weights(c.layers, path)
    d = models.lenet5(weights=path)
    x = digits.heldout()[0][:4]
    assert np.array_equal(d(x), c(x))
    state = dict(np.load(path))
    del state["9.bias"]
    with pytest.raises(ValueError, match="9.bias"):
        models.lenet5(weights=state)
    state["9.bias"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="shape"):
        models.lenet5(weights=state)


# -- VGG-16 --------------------------------------------------------------------------------

def test_vgg16_parameters_and_fc_share():
    model = models.vgg16()
    report = nn.summary(model, model.input_shape)
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    conv = sum(9 * a * b + b for a, b in zip(channels, channels[1:]))
    fc = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert report.params == conv + fc == 138_357_544
    assert report.fc_params == fc
    assert 0.89 < report.fc_share < 0.90
    assert report.rows[30].output_shape == (512, 7, 7)
    assert model.output_shape(model.input_shape) == (1000,)
    # Reporting made no weights: fc6 alone would be 411 MB.
    assert all(isinstance(layer._weight, nn.Lazy) for layer in model
               if isinstance(layer, (nn.Conv2d, nn.Linear)))


def test_vgg16_fc_layers_lower_as_the_design_notes_say():
    model = models.vgg16()
    fcn = nn.to_fully_convolutional(model, model.input_shape)
    fc6, fc7, fc8 = fcn[31], fcn[33], fcn[35]
    assert (fc6.weight_shape, fc7.weight_shape, fc8.weight_shape) == \
        ((4096, 512, 7, 7), (4096, 4096, 1, 1), (1000, 4096, 1, 1))
    assert fcn.output_shape((3, 224, 224)) == (1000, 1, 1)
    assert fcn.output_shape((3, 384, 320)) == (1000, 6, 4)
    assert isinstance(fc6._weight, nn.Lazy)       # converting made no weights either


def test_vgg16_seeded_weights_are_deterministic_per_layer():
    a, b = models.vgg16(), models.vgg16()
    assert np.array_equal(a[2].weight, b[2].weight)
    assert a[2].weight.dtype == np.float32
    assert not np.array_equal(a[2].weight[:, :1], a[0].weight[:64, :1])
    assert abs(float(a[2].weight.std()) - np.sqrt(2 / (64 * 9))) < 0.01


# -- P-Net ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_pnet_is_fully_convolutional(backend):
    model = models.pnet()
    assert model.input_shape == (3, 12, 12)
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 40, 50), dtype=np.float32)
    with fastconv.config(backend=backend):
        probs, boxes = model(image)
        assert (probs.shape[1:], boxes.shape[1:]) == model.output_shape((3, 40, 50)) \
            == ((2, 15, 20), (4, 15, 20))
        assert np.allclose(probs.sum(axis=1), 1)
        # Output (i, j) is P-Net on the 12x12 window at (2i, 2j).
        crops = np.lib.stride_tricks.sliding_window_view(image[0], (12, 12), axis=(1, 2))
        crops = crops[:, ::2, ::2].transpose(1, 2, 0, 3, 4).reshape(-1, 3, 12, 12)
        p1, b1 = model(np.ascontiguousarray(crops))
    assert p1.shape == (300, 2, 1, 1)
    np.testing.assert_allclose(probs[0].transpose(1, 2, 0).reshape(-1, 2), p1[:, :, 0, 0],
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(boxes[0].transpose(1, 2, 0).reshape(-1, 4), b1[:, :, 0, 0],
                               rtol=1e-4, atol=1e-5)
    with fastconv.config(backend="numpy"):
        want = model(image)
    np.testing.assert_allclose(probs, want[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(boxes, want[1], rtol=1e-4, atol=1e-5)
    report = nn.summary(model, model.input_shape)
    assert report.params == model.params() == 280 + 10 + 1456 + 16 + 4640 + 32 + 198


def test_pnet_weights_round_trip_through_npz(tmp_path):
    a = models.pnet(seed=4)
    path = tmp_path / "pnet.npz"
    models.save_weights(a.layers, path)
    assert "1.weight" in np.load(path).files            # the PReLU slope
    b = models.pnet(weights=path)
    image = np.random.default_rng(1).random((2, 3, 16, 14), dtype=np.float32)
    for got, want in zip(b(image), a(image)):
        assert np.array_equal(got, want)
    assert not np.array_equal(models.pnet(seed=5)(image)[1], a(image)[1])


# -- demo pieces ---------------------------------------------------------------------------

def test_canvas_places_heldout_digits_in_their_cells():
    canvas, labels = demo.make_canvas(seed=0)
    images, all_labels = digits.heldout()
    assert canvas.shape == (1, 1, 280, 280) and labels.shape == (10, 10)
    for r, c in [(0, 0), (4, 7), (9, 9), (3, 2)]:
        cell = canvas[0, 0, 28 * r:28 * r + 28, 28 * c:28 * c + 28]
        if labels[r, c] < 0:
            assert not cell.any()
        else:
            match = np.flatnonzero((images[:, 0] == cell).all(axis=(1, 2)))
            assert len(match) >= 1 and labels[r, c] in all_labels[match]
    assert 0 < (labels >= 0).sum() < 100


@pytest.mark.slow
def test_heatmap_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    canvas, labels = demo.make_canvas(seed=0)
    heat = np.full((10, 64, 64), 0.1, np.float32)
    path = tmp_path / "heat.png"
    demo.write_heatmap(str(path), canvas, heat, labels)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_timed_returns_results_and_medians():
    t, out, rounds = demo.timed({"a": lambda: 1, "b": lambda: 2}, repeats=3, budget=10)
    assert out == {"a": 1, "b": 2} and set(t) == {"a", "b"} and min(t.values()) >= 0
    assert rounds == 3
    t, out, rounds = demo.timed({"slow": lambda: time.sleep(0.02) or 5}, repeats=3, budget=0.01)
    assert out == {"slow": 5} and rounds == 0 and t["slow"] >= 0.02
