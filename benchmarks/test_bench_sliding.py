"""Fully convolutional vs sliding window: LeNet-5 over a 280x280 image.

The sliding window runs the 28x28 network once per window position (4 px
apart, LeNet's total stride), all windows as one batch; the fully
convolutional form (its FC head as convolutions) runs once over the whole
image and shares the convolutions of overlapping windows.  Both must give the
same class scores at every position."""
import numpy as np
import pytest

import fastconv

models = pytest.importorskip("fastconv.models", reason="fastconv.models is not in this build")
nn = pytest.importorskip("fastconv.nn")

STRIDE = 4          # LeNet's downsampling: output pixel i <-> the window at 4*i
CELL = 28


def windows(image):
    """(positions, 1, 28, 28): every 28x28 window of a (1, 1, H, W) image at STRIDE."""
    win = np.lib.stride_tricks.sliding_window_view(image[0, 0], (CELL, CELL))[::STRIDE, ::STRIDE]
    return win.reshape(-1, 1, CELL, CELL), win.shape[:2]


@pytest.fixture(scope="module")
def lenet(reduced):
    model = models.lenet5()
    size = 56 if reduced else 280
    image = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    fcn = nn.to_fully_convolutional(model, model.input_shape)
    with fastconv.config(backend="numpy"):       # the oracle: float64 NumPy kernels
        reference = fcn(image)[0].transpose(1, 2, 0)
    return model, fcn, image, reference


@pytest.mark.parametrize("backend", ["c", "numba"])
@pytest.mark.parametrize("form", ["fully-convolutional", "sliding-window"])
def test_lenet_fully_convolutional_vs_sliding_window(form, backend, lenet, measure):
    model, fcn, image, reference = lenet
    batch, (oh, ow) = windows(image)
    if form == "fully-convolutional":
        run = lambda: fcn(image)[0].transpose(1, 2, 0)
        flops = fcn.flops(image.shape[1:])
    else:
        batch = np.ascontiguousarray(batch)
        run = lambda: model(batch).reshape(oh, ow, -1)
        flops = oh * ow * model.flops(model.input_shape)

    def fn():
        with fastconv.config(backend=backend):
            return run()
    out = measure(None, fn, group=f"lenet5 on {image.shape[-1]}x{image.shape[-1]}",
                  flops=flops)
    assert out.shape == reference.shape == (oh, ow, 10)
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)
