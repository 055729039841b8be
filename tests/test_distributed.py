"""Segmentation and CNN features in shards on a Dask LocalCluster (2 worker processes).

The default tests use random-weight ``resnet10t`` features on tiny synthetic PNGs;
those with the real Cellpose model are ``slow`` (seconds per image on a shared CPU).
"""

import os
import signal
import threading
import time

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from protloc._cache import DiskCache
from protloc._sharding import clear_models, extract, model_builds, parse_shard, shard_range
from protloc.datasets import make_synthetic_hpa
from protloc.features import CNNFeatureExtractor
from protloc.io import DEFAULT_CHANNELS, load_hpa
from protloc.pipeline import make_t25_pipeline
from protloc.segmentation import CellposeSegmenter

distributed = pytest.importorskip("distributed")

N_IMAGES, SIZE = 8, 64


@pytest.fixture(scope="module")
def hpa(tmp_path_factory):
    """Synthetic fields written as PNGs in the Kaggle layout, read back lazily."""
    folder = tmp_path_factory.mktemp("hpa")
    X, y = make_synthetic_hpa(N_IMAGES, image_size=SIZE, random_state=0)[:2]
    for i, image in enumerate(X):
        for c, name in enumerate(DEFAULT_CHANNELS):
            Image.fromarray(image[..., c]).save(folder / f"s{i}_{name}.png")
    return load_hpa(folder, lazy=True).images, y


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def _extractor(**params):
    return CNNFeatureExtractor(
        "resnet10t",
        weights=None,
        image_size=32,
        device="cpu",
        random_state=0,
        progress=False,
        **params,
    )


def _builds(client):
    return client.run(model_builds)


def test_features_on_the_cluster_equal_the_serial_run(hpa, client):
    images, _ = hpa
    serial = _extractor().fit_transform(images)
    before = _builds(client)
    with joblib.parallel_config(backend="dask"):
        sharded = _extractor(shard_size=2).fit_transform(images)  # 4 shards, 2 workers
    np.testing.assert_array_equal(sharded, serial)
    after = _builds(client)
    # Each worker built the network at most once for its shards.
    assert all(after[w] - before.get(w, 0) <= 1 for w in after)
    assert sum(after[w] - before.get(w, 0) for w in after) >= 1


@pytest.mark.slow  # two fresh processes import torch: a minute on a loaded machine
def test_local_worker_processes(hpa):
    images, _ = hpa
    serial = _extractor().fit_transform(images)
    ext = _extractor(n_jobs=2, shard_size=3).fit(images)
    np.testing.assert_array_equal(ext.transform(images), serial)


def test_zarr_out_is_written_shard_by_shard(hpa, tmp_path):
    zarr = pytest.importorskip("zarr")
    images, _ = hpa
    serial = _extractor().fit_transform(images)
    ext = _extractor().fit(images)
    out = zarr.open_array(
        tmp_path / "f.zarr", mode="w", shape=serial.shape, chunks=(3, 256), dtype="float32"
    )
    assert ext.transform(images, out=out) is out
    np.testing.assert_array_equal(out[:], serial)
    with pytest.raises(ValueError, match="float32 Zarr array of shape"):
        ext.transform(images, out=zarr.zeros((2, 2), dtype="float32"))


def test_killed_worker_run_completes_and_no_entry_is_torn(hpa, client, tmp_path):
    images, _ = hpa
    serial = _extractor().fit_transform(images)
    ext = _extractor(cache=tmp_path, shard_size=1).fit(images)
    pids = client.run(os.getpid)
    cache = DiskCache(tmp_path, "cnn-features")
    result, errors = {}, []

    def run():
        try:
            with joblib.parallel_config(backend="dask"):
                result["features"] = ext.transform(images)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while len(cache) == 0 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    stopped_mid_run = thread.is_alive() and len(cache) < N_IMAGES
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors
    assert stopped_mid_run, "the run ended before a worker could be killed"
    np.testing.assert_array_equal(result["features"], serial)
    entries = list(cache._entries())
    assert len(entries) == len(cache) == N_IMAGES
    for path in entries:
        with np.load(path) as data:
            assert data["features"].shape == (1, 1, 4, 512)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_shards_then_fit_builds_no_model(hpa, tmp_path):
    images, y = hpa
    params = dict(
        level="image",
        backbones=("resnet10t",),
        weights=None,
        image_size=32,
        device="cpu",
        selector=False,
        classifier="br-logistic",
        thresholds=False,  # too few images per label to tune thresholds on
        random_state=0,
    )
    pipe = make_t25_pipeline(cache=tmp_path, **params)
    done = [extract(pipe, images, shard=f"{i}/3") for i in (1, 2, 3)]
    assert sum(done) == N_IMAGES
    assert len(DiskCache(tmp_path, "cnn-features")) == N_IMAGES

    clear_models()  # as on a fresh machine
    builds = model_builds()
    fitted = clone(pipe).fit(images, y)
    features = fitted.named_steps["features"].transform(images)
    assert model_builds() == builds
    reference = make_t25_pipeline(**params).named_steps["features"].fit_transform(images)
    np.testing.assert_array_equal(np.asarray(features), np.asarray(reference))


def test_shard_numbering():
    assert parse_shard("3/3") == (3, 3)
    assert [len(shard_range(10, (i, 3))) for i in (1, 2, 3)] == [3, 3, 4]
    for bad in ("4/3", "1-3", "0/0", "a/b"):
        with pytest.raises(ValueError, match="must be I/N"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="cache=None"):
        extract(make_t25_pipeline(level="image"), None, shard="1/1")


# --------------------------------------------------------------------------- Cellpose
@pytest.mark.slow
@pytest.mark.real_data
def test_masks_on_the_cluster_equal_the_serial_run(hpa, client, cellpose_model_path, tmp_path):
    images, _ = hpa
    seg = CellposeSegmenter(cellpose_model_path, diameter=9, device="cpu", progress=False)
    serial = clone(seg).fit_transform(images)
    before = _builds(client)
    with joblib.parallel_config(backend="dask"):
        sharded = clone(seg).set_params(shard_size=2, cache=tmp_path).fit_transform(images)
    np.testing.assert_array_equal(sharded.nuclei, serial.nuclei)
    np.testing.assert_array_equal(sharded.cells, serial.cells)
    after = _builds(client)
    assert all(after[w] - before.get(w, 0) <= 1 for w in after)
    assert len(DiskCache(tmp_path, "segmentation")) == N_IMAGES


@pytest.mark.slow
@pytest.mark.real_data
def test_cell_level_shards_then_fit_builds_no_model(hpa, cellpose_model_path, tmp_path):
    images, y = hpa
    params = dict(
        level="both",
        backbones=("resnet10t",),
        weights=None,
        image_size=32,
        crop_size=32,
        segmenter="cellpose",
        cellpose_model=cellpose_model_path,
        diameter=9,
        device="cpu",
        selector=False,
        classifier="br-logistic",
        thresholds=False,  # too few images per label to tune thresholds on
        random_state=0,
    )
    pipe = make_t25_pipeline(cache=tmp_path, **params)
    for i in (1, 2, 3):
        extract(pipe, images, shard=(i, 3))
    clear_models()
    builds = model_builds()
    fitted = clone(pipe).fit(images, y)
    features = fitted.named_steps["features"].transform(images)
    assert model_builds() == builds
    reference = make_t25_pipeline(**params).named_steps["features"].fit_transform(images)
    np.testing.assert_array_equal(np.asarray(features), np.asarray(reference))
