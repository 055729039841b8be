"""CellposeSegmenter with the real Cellpose package and the real (scellseg-derived) model.

Cellpose on a shared 2-core CPU takes seconds per image, so the default tests share
one segmentation of three small synthetic fields (module fixture) and reach further
through its on-disk cache; heavier runs are marked ``slow``.
"""

import http.server
import pickle
import shutil
import threading
import warnings
from functools import partial

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from protloc._cache import DiskCache, hash_array
from protloc._sharding import model_builds
from protloc.datasets import make_synthetic_hpa
from protloc.exceptions import ModelUnavailableError
from protloc.io import DEFAULT_CHANNELS, load_hpa
from protloc.regions import RegionCropper
from protloc.segmentation import (
    CellposeSegmenter,
    NoNucleiWarning,
    SegmentedImages,
    cellpose_version,
)

MAJOR = cellpose_version()[1]
needs_cellpose3 = pytest.mark.skipif(MAJOR != 3, reason="cellpose 3.x behaviour")
# Synthetic 128-px fields: nuclei are ~16 px across. With diameter=18 Cellpose
# rescales them to ~213 px, one network tile, which keeps CPU time low.
SIZE, DIAMETER = 128, 18


def _match_iou(true, pred):
    """Best IoU of every true object against the predicted labels."""
    ious = []
    for k in range(1, int(true.max()) + 1):
        obj = true == k
        candidates = np.unique(pred[obj])
        candidates = candidates[candidates > 0]
        best = 0.0
        for c in candidates:
            other = pred == c
            best = max(best, (obj & other).sum() / (obj | other).sum())
        ious.append(best)
    return np.array(ious)


def _one_nucleus_per_cell(nuclei, cells):
    labels = np.unique(nuclei[nuclei > 0])
    if not np.array_equal(labels, np.unique(cells[cells > 0])):
        return False
    if not np.array_equal(labels, np.arange(1, len(labels) + 1)):
        return False
    for k in labels:
        if not np.all(cells[nuclei == k] == k):
            return False
        if set(np.unique(nuclei[cells == k]).tolist()) - {0} != {k}:
            return False
    return True


@pytest.fixture(scope="module")
def synthetic():
    X, _, truth = make_synthetic_hpa(3, image_size=SIZE, return_masks=True, random_state=0)
    return X, truth


@pytest.fixture(scope="module")
def segmented(synthetic, cellpose_model_path, tmp_path_factory):
    """One real segmentation of the synthetic fields, cached for the other tests."""
    X, _ = synthetic
    cache = tmp_path_factory.mktemp("segcache")
    seg = CellposeSegmenter(cellpose_model_path, diameter=DIAMETER, cache=cache, progress=False)
    return seg, seg.fit_transform(X), cache


# --------------------------------------------------------------------------- real model
def test_finds_the_true_nuclei_on_synthetic_fields(synthetic, segmented):
    """Mean nucleus IoU >= 0.6, and every true nucleus found with IoU >= 0.5.

    The synthetic nuclei are blurred disks ~16 px across; a one-pixel disagreement
    about where a blurred edge lies costs about 1 - (14/16)^2 = 0.23 IoU, so a good
    segmentation scores 0.7-0.8 here (0.79 measured). 0.6 leaves room for that
    boundary ambiguity, while a missed nucleus (IoU 0), two nuclei merged into one
    (IoU <= 0.5 each) or a wrong scale (IoU ~0.45 at diameter=None) fail.
    """
    _, truth = synthetic
    _, out, _ = segmented
    ious = np.concatenate([_match_iou(t, p) for t, p in zip(truth.nuclei, out.nuclei)])
    assert ious.mean() >= 0.6, ious
    assert ious.min() >= 0.5, ious
    assert out.n_objects.tolist() == [int(t.max()) for t in truth.nuclei]
    # cells come from the watershed on red + yellow; the synthetic cells are known too
    cell_ious = np.concatenate([_match_iou(t, p) for t, p in zip(truth.cells, out.cells)])
    assert cell_ious.mean() >= 0.6, cell_ious


def test_output_container(synthetic, segmented):
    X, _ = synthetic
    _, out, _ = segmented
    assert isinstance(out, SegmentedImages)
    assert out.images is X  # not copied
    assert out.nuclei.dtype == np.int32 and out.nuclei.shape == (3, SIZE, SIZE)
    assert out.cells.shape == out.nuclei.shape
    assert out.channels == DEFAULT_CHANNELS
    for nuclei, cells in zip(out.nuclei, out.cells):
        assert _one_nucleus_per_cell(nuclei, cells)


def test_cache_round_trip(synthetic, segmented, tmp_path):
    """A second run is served from the cache: entries edited on disk come back."""
    from protloc._cache import DiskCache

    X, _ = synthetic
    seg, out, cache_dir = segmented
    shutil.copytree(cache_dir, tmp_path / "cache")
    cache = DiskCache(tmp_path / "cache", "segmentation")
    assert len(cache) == len(X)
    for path in sorted(cache.directory.glob("*/*.npz")):
        entry = cache.get(path.stem)
        assert entry["nuclei"].dtype == np.uint16  # compact on disk
        cache.set(path.stem, {"nuclei": entry["nuclei"], "cells": entry["nuclei"]})
    again = clone(seg).set_params(cache=tmp_path / "cache").fit_transform(X)
    assert again.nuclei.dtype == np.int32
    np.testing.assert_array_equal(again.nuclei, out.nuclei)
    # the edited entries were used: cells equal to nuclei, which the watershed never gives
    np.testing.assert_array_equal(again.cells, out.nuclei)
    assert not np.array_equal(out.cells, out.nuclei)
    assert len(cache) == len(X)


def test_cache_keys_the_model_file_by_content(synthetic, segmented, cellpose_model_path, tmp_path):
    from protloc._cache import DiskCache

    X, _ = synthetic
    _, out, cache_dir = segmented
    copy = tmp_path / "renamed-model.pth"
    shutil.copyfile(cellpose_model_path, copy)
    seg = CellposeSegmenter(copy, diameter=DIAMETER, cache=cache_dir, progress=False)
    builds = model_builds()
    again = seg.fit_transform(X)
    np.testing.assert_array_equal(again.cells, out.cells)
    assert len(DiskCache(cache_dir, "segmentation")) == len(X)  # hits, no new entries
    assert model_builds() == builds  # Cellpose was never needed


def test_cache_key_depends_on_pixels_and_parameters(cellpose_model_path, tmp_path):
    """Blank images skip Cellpose but are cached, so keys can be counted cheaply."""
    from protloc._cache import DiskCache

    blank = np.zeros((2, 24, 24, 4), np.uint8)
    blank[1] = 5  # other pixels, still no nucleus
    count = lambda: len(DiskCache(tmp_path, "segmentation"))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoNucleiWarning)
        seg = CellposeSegmenter(cellpose_model_path, diameter=20, cache=tmp_path, progress=False)
        seg.fit_transform(blank)
        assert count() == 2
        seg.fit_transform(blank)
        assert count() == 2
        seg.set_params(diameter=21).fit_transform(blank)
        assert count() == 4
        seg.set_params(remove_border_cells=True).fit_transform(blank)
        assert count() == 6
        # the green channel does not take part in segmentation, so it is not hashed
        other_green = blank.copy()
        other_green[..., 1] = 99
        seg.fit_transform(other_green)
        assert count() == 6


def test_lazy_sequence_gives_the_same_masks(synthetic, segmented, tmp_path):
    X, _ = synthetic
    seg, out, _ = segmented
    for i, image in enumerate(X):
        for c, name in enumerate(DEFAULT_CHANNELS):
            Image.fromarray(image[..., c]).save(tmp_path / f"img{i}_{name}.png")
    lazy = load_hpa(tmp_path, lazy=True).images
    # PNG keeps uint8 pixels exactly, so the content hashes match the cached arrays
    again = clone(seg).fit_transform(lazy)
    assert again.images is lazy
    assert again.ids.tolist() == ["img0", "img1", "img2"]
    np.testing.assert_array_equal(again.nuclei, out.nuclei)
    np.testing.assert_array_equal(again.cells, out.cells)


def test_model_is_not_pickled_and_is_rebuilt(synthetic, segmented):
    X, _ = synthetic
    seg, out, _ = segmented
    blob = pickle.dumps(seg)
    assert len(blob) < 20_000  # the network alone is ~26 MB
    restored = pickle.loads(blob)
    again = restored.set_params(cache=None).transform(X[:1])
    # same pixels, same model: Cellpose on CPU is deterministic
    np.testing.assert_array_equal(again.nuclei[0], out.nuclei[0])


def test_empty_images_give_empty_results(cellpose_model_path):
    seg = CellposeSegmenter(cellpose_model_path, diameter=DIAMETER, progress=False)
    with pytest.warns(NoNucleiWarning, match="2 of 2 images have no nucleus"):
        out = seg.fit_transform(np.zeros((2, 32, 32, 4), np.uint8))
    assert out.nuclei.shape == (2, 32, 32) and out.nuclei.max() == 0 and out.cells.max() == 0
    assert out.n_objects.tolist() == [0, 0]
    crops = RegionCropper(crop_size=16).fit_transform(out)
    assert crops.n_cells == 0 and crops.n_images == 2
    assert crops.crops["nucleus"].shape == (0, 16, 16, 4)


def test_blank_image_beside_real_ones(synthetic, segmented):
    X, _ = synthetic
    seg, out, _ = segmented
    mixed = np.stack([X[0], np.zeros_like(X[0])])
    with pytest.warns(NoNucleiWarning, match="1 of 2 images have no nucleus \\(1\\)"):
        again = clone(seg).fit_transform(mixed)
    np.testing.assert_array_equal(again.nuclei[0], out.nuclei[0])
    assert again.nuclei[1].max() == 0


# --------------------------------------------------------------------------- models
@needs_cellpose3
def test_cpsam_needs_cellpose4(cellpose_model_path):
    X = np.zeros((1, 8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match=r"'cpsam' needs cellpose>=4.*pip install 'cellpose>=4'"):
        CellposeSegmenter("cpsam").fit(X)
    with pytest.raises(ValueError, match="cell_model='cpsam' needs cellpose>=4"):
        CellposeSegmenter(cellpose_model_path, cell_method="cellpose", cell_model="cpsam").fit(X)


@pytest.mark.skipif(MAJOR < 4, reason="cellpose 4.x behaviour")
def test_cellpose3_names_fail_on_cellpose4():  # pragma: no cover - runs where cellpose 4 is
    with pytest.raises(ValueError, match="is a cellpose 3 model"):
        CellposeSegmenter("nuclei").fit(np.zeros((1, 8, 8, 4), np.uint8))


def test_unknown_model_and_missing_file(tmp_path):
    X = np.zeros((1, 8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match="Unknown Cellpose model model='nucleus'"):
        CellposeSegmenter("nucleus").fit(X)
    with pytest.raises(FileNotFoundError, match="no Cellpose model file"):
        CellposeSegmenter(tmp_path / "absent.pth").fit(X)
    with pytest.raises(FileNotFoundError, match="no Cellpose model file"):
        CellposeSegmenter("models/absent.pth").fit(X)
    # the cell model is checked only when it is used
    CellposeSegmenter("nuclei", cell_model="nonsense").fit(X)


def test_a_file_that_is_not_a_cellpose_model(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a network")
    seg = CellposeSegmenter(bad, progress=False).fit(np.zeros((1, 32, 32, 4), np.uint8))
    X = np.zeros((1, 32, 32, 4), np.uint8)
    X[0, 10:20, 10:20, 2] = 200
    with pytest.raises(ValueError, match="Cannot load the Cellpose model file"):
        seg.transform(X)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def model_server(tmp_path, monkeypatch):
    """A loopback HTTP server standing in for www.cellpose.org, and an empty model dir."""
    import cellpose.models

    served = tmp_path / "served"
    served.mkdir()
    handler = partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(cellpose.models, "MODEL_DIR", tmp_path / "models")
    monkeypatch.setattr(cellpose.models, "_MODEL_URL", f"http://127.0.0.1:{server.server_port}")
    yield served
    server.shutdown()
    server.server_close()
    thread.join()


@needs_cellpose3
def test_failed_download_is_explained(model_server, synthetic):
    X, _ = synthetic
    seg = CellposeSegmenter("nuclei", diameter=DIAMETER, progress=False).fit(X)
    with pytest.raises(
        ModelUnavailableError, match=r"could not download its 'nuclei' model \(HTTPError"
    ) as info:
        seg.transform(X[:1])
    assert "CELLPOSE_LOCAL_MODELS_PATH" in str(info.value)
    assert "protloc fetch-models" in str(info.value)
    assert not list((model_server.parent / "models").glob("nuclei*"))  # no partial file


@needs_cellpose3
@pytest.mark.slow
def test_named_model_is_downloaded_then_used(model_server, synthetic, cellpose_model_path):
    X, truth = synthetic
    # cellpose 3 stores the 'nuclei' network as nucleitorch_0
    shutil.copyfile(cellpose_model_path, model_server / "nucleitorch_0")
    seg = CellposeSegmenter("nuclei", diameter=DIAMETER, progress=False)
    out = seg.fit_transform(X[:1])
    assert (model_server.parent / "models" / "nucleitorch_0").is_file()
    assert out.n_objects[0] == truth.nuclei[0].max()


# --------------------------------------------------------------------------- options
@pytest.mark.slow
def test_cellpose_cell_method_pairs_cells_with_nuclei(synthetic, cellpose_model_path):
    X, truth = synthetic
    seg = CellposeSegmenter(
        cellpose_model_path,
        cell_model=cellpose_model_path,
        diameter=DIAMETER,
        cell_diameter=2.5 * DIAMETER,
        cell_method="cellpose",
        progress=False,
    )
    out = seg.fit_transform(X[:2])
    assert out.n_objects.tolist() == [int(t.max()) for t in truth.nuclei[:2]]
    for nuclei, cells in zip(out.nuclei, out.cells):
        assert _one_nucleus_per_cell(nuclei, cells)
        assert (cells > 0).sum() > 1.5 * (nuclei > 0).sum()  # cells reach past the nuclei


@pytest.mark.slow
def test_remove_border_cells(synthetic, segmented):
    X, _ = synthetic
    seg, out, _ = segmented
    inner = clone(seg).set_params(remove_border_cells=True, cache=None).fit_transform(X)
    for full, cells, nuclei in zip(out.cells, inner.cells, inner.nuclei):
        edge = np.concatenate([cells[[0, -1]].ravel(), cells[:, [0, -1]].ravel()])
        assert edge.max() == 0
        assert _one_nucleus_per_cell(nuclei, cells)
        touching = np.unique(np.concatenate([full[[0, -1]].ravel(), full[:, [0, -1]].ravel()]))
        assert cells.max() == full.max() - np.count_nonzero(touching)
    assert inner.n_objects.sum() < out.n_objects.sum()  # some synthetic cells touch the border


# --------------------------------------------------------------------------- validation
def test_channel_checks(cellpose_model_path):
    X = np.zeros((1, 8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match="Channel 'dapi' is not present"):
        CellposeSegmenter(cellpose_model_path, nucleus_channel="dapi").fit(X)
    with pytest.raises(ValueError, match="both the nucleus channel and a cytoplasm channel"):
        CellposeSegmenter(cellpose_model_path, cyto_channels=("red", "blue")).fit(X)
    with pytest.raises(ValueError, match="cyto_channels is empty"):
        CellposeSegmenter(cellpose_model_path, cyto_channels=()).fit(X)
    seg = CellposeSegmenter(cellpose_model_path, nucleus_channel=0, cyto_channels=1).fit(
        np.zeros((1, 8, 8, 3), np.uint8)
    )
    assert seg.channels_ == ("ch0", "ch1", "ch2")
    assert (seg.nucleus_channel_, seg.cyto_channels_) == (0, (1,))
    with pytest.raises(ValueError, match="was fitted on"):
        seg.transform(X)


def test_parameter_and_input_validation(cellpose_model_path):
    X = np.zeros((1, 8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match="'diameter' parameter"):
        CellposeSegmenter(cellpose_model_path, diameter=-5).fit(X)
    with pytest.raises(ValueError, match="'cell_method' parameter"):
        CellposeSegmenter(cellpose_model_path, cell_method="voronoi").fit(X)
    with pytest.raises(ValueError, match="Unknown device 'abacus'"):
        CellposeSegmenter(cellpose_model_path, device="abacus").fit(X)
    with pytest.raises(ValueError, match=r"shape \(n, rows, cols, channels\)"):
        CellposeSegmenter(cellpose_model_path).fit(X[0])
    with pytest.raises(TypeError, match="sparse"):
        import scipy.sparse

        CellposeSegmenter(cellpose_model_path).fit(scipy.sparse.csr_matrix(np.eye(3)))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CellposeSegmenter(cellpose_model_path).transform(X)


# --------------------------------------------------------------------------- real images
@pytest.mark.slow
@pytest.mark.real_data
def test_real_hpa_images(hpa_sample_dir, cellpose_model_path):
    data = load_hpa(hpa_sample_dir / "images", hpa_sample_dir / "labels.csv", lazy=True)
    images = data.images[:5]
    seg = CellposeSegmenter(cellpose_model_path, diameter=60, progress=False)
    out = seg.fit_transform(images)
    counts = out.n_objects
    assert np.all((counts >= 3) & (counts <= 60)), counts
    for nuclei, cells in zip(out.nuclei, out.cells):
        assert _one_nucleus_per_cell(nuclei, cells)
        # cells are grown from the red and yellow channels: larger than their nuclei
        assert (cells > 0).sum() > 1.5 * (nuclei > 0).sum()


def test_cache_entry_of_the_wrong_shape_is_recomputed(synthetic, segmented, tmp_path):
    """An entry must fit its image: masks of another shape are recomputed, not returned."""
    X, _ = synthetic
    seg, out, cache_dir = segmented
    shutil.copytree(cache_dir, tmp_path / "c")
    cache = DiskCache(tmp_path / "c", "segmentation")
    planes = np.ascontiguousarray(X[0][..., [seg.nucleus_channel_, *seg.cyto_channels_]])
    key = cache.key(hash_array(planes), seg._cache_params())
    assert key in cache
    wrong = np.ones((5, 7), np.uint16)
    cache.set(key, {"nuclei": wrong, "cells": wrong})
    again = clone(seg).set_params(cache=tmp_path / "c").fit_transform(X[:1])
    np.testing.assert_array_equal(again.nuclei[0], out.nuclei[0])
    assert cache.get(key)["nuclei"].shape == X.shape[1:3]  # the entry was rewritten


def test_each_image_is_cached_as_soon_as_it_is_done(synthetic, segmented, tmp_path):
    """A run stopped inside its first batch keeps the images already segmented."""
    X, _ = synthetic
    seg, out, _ = segmented
    seg = clone(seg).set_params(cache=tmp_path, batch_size=8).fit(X)
    cache = DiskCache(tmp_path, "segmentation")
    params = seg._cache_params()
    planes = [
        np.ascontiguousarray(im[..., [seg.nucleus_channel_, *seg.cyto_channels_]]) for im in X
    ]
    masks = seg._cached_segment(planes, cache, params)
    first = next(masks)
    masks.close()  # the run stops here, within a batch of 3
    np.testing.assert_array_equal(first[0], out.nuclei[0])
    assert len(cache) == 1
