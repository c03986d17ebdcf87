"""fastconv.dask on a LocalCluster of 2 worker processes started here.

References share no code with fastconv.dask: the single pass of the whole
image (or stack) through the model on fastconv's float64 NumPy oracle
backend, in this process."""
import os
import signal
import time
import weakref

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
cloudpickle = pytest.importorskip("cloudpickle")

import fastconv  # noqa: E402
import fastconv.dask as fdask  # noqa: E402
from fastconv import models, nn  # noqa: E402
from checks import slow_except  # noqa: E402

TIMEOUT = 120  # seconds for any one computation on the cluster


def make_block(seed, delay, block_info=None):
    """One chunk of a lazily generated image: its values depend on where the
    chunk lies, not on the chunking (so the whole image can be made too)."""
    (n0, n1), (c0, c1), (h0, h1), (w0, w1) = block_info[None]["array-location"]
    if delay:
        time.sleep(delay)
    n, c, h, w = np.ogrid[n0:n1, c0:c1, h0:h1, w0:w1]
    return (np.sin(0.37 * h + 0.11 * w * (c + 1) + seed + n) * np.cos(0.05 * (h - w)) ** 2
            ).astype(np.float32)


def lazy_image(shape, chunks, seed=0, delay=0.0):
    return da.map_blocks(make_block, seed, delay, chunks=da.core.normalize_chunks(chunks, shape),
                         dtype=np.float32, meta=np.empty((0, 0, 0, 0), np.float32))


@pytest.fixture(scope="module")
def lenet_fcn():
    return nn.to_fully_convolutional(models.lenet5(), (1, 28, 28))


def single_pass(model, x):
    with fastconv.config(backend="numpy"):
        return model(x)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # No work stealing: a stolen task leaves its chunk on the first worker
    # until the thief has run it, which test_workers_hold_few_chunks_at_once
    # would count against the graph.
    with dask.config.set({"distributed.scheduler.work-stealing": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster, timeout=60)
    yield c
    c.close(timeout=30)
    cluster.close(timeout=30)


@pytest.mark.slow
def test_heatmap_on_cluster_equals_single_pass(client, lenet_fcn):
    image = lazy_image((1, 1, 300, 520), (1, 1, 96, 120))  # 4 x 5 chunks
    hm = fdask.heatmap(lenet_fcn, image)
    want = single_pass(lenet_fcn, image.compute(scheduler="sync"))
    assert hm.shape == want.shape == (1, 10, 69, 124)
    got = client.compute(hm).result(timeout=TIMEOUT)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert len(hm.chunks[2]) > 1 and len(hm.chunks[3]) > 1


@pytest.mark.slow
def test_predict_on_cluster_equals_whole_stack(client):
    lenet = models.lenet5()
    images, _ = models.digits.heldout()
    images = images[:50].astype(np.float32)
    stack = da.from_array(images, chunks=(7, 1, 28, 28))
    got = fdask.predict(lenet, stack)
    assert got.chunks == ((7,) * 7 + (1,), (10,))
    np.testing.assert_allclose(client.compute(got).result(timeout=TIMEOUT),
                               single_pass(lenet, images), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_killed_worker_does_not_corrupt_the_result(client, lenet_fcn):
    image = lazy_image((1, 1, 256, 512), (1, 1, 64, 64), seed=3, delay=0.15)  # 32 slow chunks
    want = single_pass(lenet_fcn, image.compute(scheduler="sync"))
    future = client.compute(fdask.heatmap(lenet_fcn, image))
    pids = sorted(client.run(os.getpid).values())
    deadline = time.monotonic() + 30
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # some chunks done, others running
    assert not future.done()
    os.kill(pids[0], signal.SIGKILL)  # a worker process of the cluster this module started
    np.testing.assert_allclose(future.result(timeout=TIMEOUT), want, rtol=1e-4, atol=1e-6)
    client.wait_for_workers(2, timeout=60)


def counted_block(seed, tag, block_info=None):
    """make_block, counting on its worker how many of these chunks are alive
    at once (a chunk stays alive while any view of it does)."""
    from distributed import get_worker
    try:
        where = get_worker().__dict__
    except ValueError:  # not on a worker: the reference, computed here
        where = {}
    live = where.setdefault(tag, [0, 0])  # [alive now, most alive]
    block = make_block(seed, 0.0, block_info=block_info)
    live[0] += 1
    live[1] = max(live[1], live[0])
    weakref.finalize(block, _freed, live)
    return block


def _freed(live):
    live[0] -= 1


@pytest.mark.slow
def test_workers_hold_few_chunks_at_once(client, lenet_fcn):
    # 3 x 12 chunks: an overlap step that kept neighbour chunks alive until
    # their neighbours' outputs ran would hold about a row of them (12).
    tag = f"fc_live_{time.monotonic_ns()}"
    image = da.map_blocks(counted_block, 5, tag, dtype=np.float32,
                          chunks=da.core.normalize_chunks((1, 1, 128, 128), (1, 1, 384, 1536)),
                          meta=np.empty((0, 0, 0, 0), np.float32))
    got = client.compute(fdask.heatmap(lenet_fcn, image).max(axis=(2, 3)))
    assert np.isfinite(got.result(timeout=TIMEOUT)).all()  # exactness: the tests above
    most = client.run(lambda dask_worker: dask_worker.__dict__.get(tag, [0, 0])[1])
    assert sum(most.values()) > 0 and max(most.values()) <= 5, most


def test_edge_tasks_copy(lenet_fcn):
    # 2 x 2 chunks: each cuts the edges that its three neighbours' borders see.
    image = lazy_image((1, 1, 256, 256), (1, 1, 128, 128))
    graph = dict(fdask.heatmap(lenet_fcn, image).__dask_graph__())
    parts = [k for k in graph if isinstance(k, tuple) and len(k) == 5
             and k[0].startswith("heatmap-edges-")]
    assert len(parts) == 4 * 3
    for key in parts:
        part = dask.get(graph, key)
        chunk = dask.get(graph, (image.name, key[1], 0) + key[2:4])
        assert part.flags.owndata and part.base is None and part.size < chunk.size / 2, key


@pytest.mark.slow
def test_worker_tasks_divide_the_cores(client):
    def in_task():
        return fdask.task_threads(), len(os.sched_getaffinity(0)), fastconv.get_num_threads()

    threads, cores, default = client.submit(in_task, pure=False).result(timeout=TIMEOUT)
    assert threads == max(1, min(default, cores // 1))  # 1 thread per worker here


def test_task_threads_on_local_schedulers():
    cores = len(os.sched_getaffinity(0))
    with fastconv.threads(64):
        with dask.config.set(scheduler="threads", num_workers=2):
            assert fdask.task_threads() == max(1, cores // 2)
        with dask.config.set(scheduler="sync"):
            assert fdask.task_threads() == cores
    with fastconv.threads(1), dask.config.set(scheduler="sync"):
        assert fdask.task_threads() == 1


def test_graph_holds_the_model_once(lenet_fcn):
    image = lazy_image((1, 1, 400, 400), (1, 1, 64, 64))  # 7 x 7 chunks
    graph = dict(fdask.heatmap(lenet_fcn, image).__dask_graph__())
    weights = sum(layer.weight.nbytes for layer in lenet_fcn if isinstance(layer, nn.Conv2d))
    size = len(cloudpickle.dumps(graph))
    assert weights < size < 2 * weights + 200_000, (size, weights)


@pytest.mark.parametrize("chunks", slow_except([
    (1, 1, 30, 30),         # smaller than the receptive field plus overlap
    (1, 1, 57, 93),         # borders off the model's stride
    ((1, 1), 1, 100, 41),   # N split too
], (2,)))
def test_bad_spatial_chunking_is_rechunked_or_refused(lenet_fcn, chunks):
    image = lazy_image((2, 1, 200, 180), chunks)
    want = single_pass(lenet_fcn, image.compute(scheduler="sync"))
    got = fdask.heatmap(lenet_fcn, image).compute(scheduler="sync")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="chunks"):
        fdask.heatmap(lenet_fcn, image, rechunk=False)


@pytest.mark.parametrize("chunks", [
    (1, 1, 28, 100),   # chunks one receptive field long: their edges overlap
    (1, 1, 112, 100),  # one chunk: no borders
    (1, 1, 32, 36),    # a short last chunk merged into the one before
])
def test_chunk_lengths_near_the_minimum(lenet_fcn, chunks):
    image = lazy_image((1, 1, 112, 100), chunks)
    hm = fdask.heatmap(lenet_fcn, image)
    np.testing.assert_allclose(hm.compute(scheduler="sync"),
                               single_pass(lenet_fcn, image.compute(scheduler="sync")),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rows_per_pass", [1, 3, 1000])
def test_passes_within_a_task(rows_per_pass, rng=np.random.default_rng(2)):
    # Padding, dilation, asymmetric padding, strided and padded pools.
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    model = nn.Sequential(
        nn.Conv2d(r(4, 3, 3, 3), r(4), stride=2, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(r(5, 4, 3, 3), r(5), padding=2, dilation=2), nn.AvgPool2d(2),
        nn.Conv2d(r(6, 5, 1, 1), padding=((1, 0), (0, 2))))
    x = r(2, 3, 197, 131)
    got = fdask.heatmap(model, da.from_array(x, chunks=(1, 3, 64, 48)),
                        rows_per_pass=rows_per_pass)
    want = single_pass(model, x)  # float32 kernels against float64: scale the tolerance
    np.testing.assert_allclose(got.compute(scheduler="sync"), want,
                               rtol=1e-4, atol=1e-5 * np.abs(want).max())
    with pytest.raises(ValueError, match="rows_per_pass"):
        fdask.heatmap(model, da.from_array(x, chunks=(1, 3, 64, 48)), rows_per_pass=0)


def test_pnet_heads(rng=np.random.default_rng(1)):
    # Padding-free but with a ceil-mode pool, and two heads: a tuple of maps.
    pnet = models.pnet()
    x = rng.random((1, 3, 150, 111)).astype(np.float32)
    got = fdask.heatmap(pnet, da.from_array(x, chunks=(1, 3, 40, 40)))
    want = single_pass(pnet, x)
    assert len(got) == 2 and len(got[0].chunks[2]) > 1
    for g, w in zip(dask.compute(*got, scheduler="sync"), want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_channels_split_across_chunks(rng=np.random.default_rng(0)):
    model = nn.Sequential(nn.Conv2d(rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                                    padding=1, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    x = rng.standard_normal((1, 3, 90, 70)).astype(np.float32)
    image = da.from_array(x, chunks=(1, 1, 32, 32))
    with pytest.raises(ValueError, match="channels"):
        fdask.heatmap(model, image, rechunk=False)
    np.testing.assert_allclose(fdask.heatmap(model, image).compute(scheduler="sync"),
                               single_pass(model, x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="N only"):
        fdask.predict(model, image, rechunk=False)
    maps = fdask.predict(model, image)  # a 4-D output per sample
    assert maps.chunks[0] == (1,)
    np.testing.assert_allclose(maps.compute(scheduler="sync"), single_pass(model, x),
                               rtol=1e-4, atol=1e-5)


def test_refused_inputs(lenet_fcn):
    image = lazy_image((1, 1, 100, 100), 50)
    with pytest.raises(TypeError, match="image"):
        fdask.heatmap(lenet_fcn, np.zeros((1, 1, 100, 100), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        fdask.heatmap(lenet_fcn, image[0])
    with pytest.raises(ValueError):  # smaller than one receptive field
        fdask.heatmap(lenet_fcn, lazy_image((1, 1, 20, 100), 50))
    with pytest.raises(ValueError, match="to_fully_convolutional"):
        fdask.heatmap(models.lenet5(), image)
    with pytest.raises(ValueError):  # 3 channels into a 1-channel model
        fdask.heatmap(lenet_fcn, lazy_image((1, 3, 100, 100), 50))
    with pytest.raises(TypeError, match="images"):
        fdask.predict(lenet_fcn, np.zeros((1, 1, 28, 28), np.float32))
