"""WatershedSegmenter: classical nuclei (threshold + distance watershed) and seeded cells.

It runs in milliseconds, so every default test segments its own small synthetic
images; one slow test checks nucleus counts on real HPA images.
"""

import pickle
import shutil
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from protloc._cache import DiskCache
from protloc.datasets import make_synthetic_hpa
from protloc.io import DEFAULT_CHANNELS, load_hpa
from protloc.regions import RegionCropper
from protloc.segmentation import NoNucleiWarning, SegmentedImages, WatershedSegmenter
from protloc.segmentation._classical import estimate_diameter, segment_nuclei

SIZE = 128  # make_synthetic_hpa nuclei are about SIZE / 8 = 16 px across
DIAMETER = SIZE / 8


def _best_ious(true, pred):
    """Best IoU of every true object against the predicted labels."""
    n_true, n_pred = int(true.max()), int(pred.max())
    inter = np.bincount(
        true.ravel().astype(np.int64) * (n_pred + 1) + pred.ravel(),
        minlength=(n_true + 1) * (n_pred + 1),
    ).reshape(n_true + 1, n_pred + 1)
    union = inter.sum(1)[1:, None] + inter.sum(0)[None, 1:] - inter[1:, 1:]
    iou = inter[1:, 1:] / np.maximum(union, 1)
    return iou.max(axis=1) if n_pred else np.zeros(n_true)


def _one_nucleus_per_cell(nuclei, cells):
    labels = np.unique(nuclei[nuclei > 0])
    if not np.array_equal(labels, np.arange(1, len(labels) + 1)):
        return False
    if not np.array_equal(labels, np.unique(cells[cells > 0])):
        return False
    return all(
        np.all(cells[nuclei == k] == k) and set(np.unique(nuclei[cells == k])) - {0} == {k}
        for k in labels
    )


def _discs(centres, radius, shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    plane = np.zeros(shape, bool)
    for r, c in centres:
        plane |= (yy - r) ** 2 + (xx - c) ** 2 < radius**2
    return plane


def _field(centres, radius=10, shape=(48, 64)):
    """A 4-channel image: discs in blue over an even cytoplasm in red and yellow."""
    image = np.zeros((*shape, 4), np.uint8)
    image[..., 2] = 200 * _discs(centres, radius, shape)
    image[4:-4, 4:-4, 0] = image[4:-4, 4:-4, 3] = 120
    return image


@pytest.fixture(scope="module")
def synthetic():
    X, _, truth = make_synthetic_hpa(3, image_size=SIZE, return_masks=True, random_state=0)
    return X, truth


# --------------------------------------------------------------------------- nuclei
@pytest.mark.parametrize("diameter", [20, None])
def test_touching_discs_are_split(diameter):
    # centres 17 px apart, radius 10: the discs overlap by 3 px
    image = _field([(24, 22), (24, 39)])
    out = WatershedSegmenter(diameter=diameter, progress=False).fit_transform(image[None])
    nuclei = out.nuclei[0]
    assert out.n_objects.tolist() == [2]
    # each half belongs to one nucleus, and the split runs through the waist
    assert nuclei[24, 22] != nuclei[24, 39]
    assert {int(nuclei[24, 29]), int(nuclei[24, 32])} == {1, 2}
    truth = np.zeros(nuclei.shape, np.int32)
    truth[_discs([(24, 22)], 10, nuclei.shape)] = 1
    truth[_discs([(24, 39)], 10, nuclei.shape) & (truth == 0)] = 2
    assert _best_ious(truth, nuclei).min() > 0.8


def test_separate_discs_are_not_split():
    plane = _discs([(24, 20), (24, 46)], 10, (48, 64)).astype(float)
    assert int(segment_nuclei(plane, 20).max()) == 2
    # a single larger disc stays whole with the right diameter
    big = _discs([(32, 32)], 18, (64, 64)).astype(float)
    assert int(segment_nuclei(big, 36).max()) == 1


def test_specks_are_dropped():
    plane = _discs([(24, 20)], 10, (48, 64)).astype(float)
    plane[5:7, 50:52] = 1.0  # 4 px, far below a tenth of a 20-px disc
    assert int(segment_nuclei(plane, 20).max()) == 1


def test_estimated_diameter():
    plane = _discs([(20, 20), (60, 60), (20, 70)], 12, (90, 90)).astype(float)
    assert estimate_diameter(plane) == pytest.approx(24, abs=1.5)
    assert estimate_diameter(np.zeros((9, 9))) is None


@pytest.mark.parametrize("diameter", [DIAMETER, None])
def test_finds_the_true_nuclei_and_cells_on_synthetic_fields(synthetic, diameter):
    """Every true nucleus is found (IoU >= 0.5), and cells pair one-to-one with nuclei.

    The synthetic nuclei are textured, blurred discs ~16 px across, touching
    neighbours in places. Measured: nucleus IoU 0.93 on average (lowest 0.86), cells
    0.77 (lowest 0.66); a merged or missed nucleus scores at most 0.5.
    """
    X, truth = synthetic
    out = WatershedSegmenter(diameter=diameter, progress=False).fit_transform(X)
    assert out.n_objects.tolist() == [int(t.max()) for t in truth.nuclei]
    ious = np.concatenate([_best_ious(t, p) for t, p in zip(truth.nuclei, out.nuclei)])
    assert ious.min() >= 0.8 and ious.mean() >= 0.9, ious
    cell_ious = np.concatenate([_best_ious(t, p) for t, p in zip(truth.cells, out.cells)])
    assert cell_ious.mean() >= 0.65, cell_ious
    for nuclei, cells in zip(out.nuclei, out.cells):
        assert _one_nucleus_per_cell(nuclei, cells)
        assert (cells > 0).sum() > 2 * (nuclei > 0).sum()  # cells reach past the nuclei


def test_output_container_and_fitted_attributes(synthetic):
    X, _ = synthetic
    seg = WatershedSegmenter(diameter=DIAMETER, progress=False)
    out = seg.fit_transform(X)
    assert isinstance(out, SegmentedImages)
    assert out.images is X  # not copied
    assert out.nuclei.dtype == np.int32 and out.nuclei.shape == (3, SIZE, SIZE)
    assert out.channels == DEFAULT_CHANNELS
    assert seg.channels_ == DEFAULT_CHANNELS
    assert seg.nucleus_channel_ == 2 and seg.cyto_channels_ == (0, 3)
    # same input, same masks; and a pickled segmenter gives them too
    again = pickle.loads(pickle.dumps(seg)).transform(X)
    np.testing.assert_array_equal(again.nuclei, out.nuclei)
    np.testing.assert_array_equal(again.cells, out.cells)


@pytest.mark.parametrize("method", ["otsu", "li", "triangle"])
def test_threshold_methods(method):
    image = _field([(24, 22), (24, 39)])
    out = WatershedSegmenter(diameter=20, threshold_method=method, progress=False)
    assert out.fit_transform(image[None]).n_objects.tolist() == [2]


def test_threshold_correction_drops_dim_nuclei():
    image = _field([(24, 14), (24, 48)])
    image[..., 2] = np.where(_discs([(24, 48)], 10, (48, 64)), 90, image[..., 2])
    seg = WatershedSegmenter(diameter=20, threshold_method="otsu", progress=False)
    assert seg.fit_transform(image[None]).n_objects.tolist() == [2]
    # Otsu splits background from both nuclei (~40); 3x that keeps only the bright one
    out = seg.set_params(threshold_correction=3.0).fit_transform(image[None])
    assert out.n_objects.tolist() == [1]


def test_remove_border_cells(synthetic):
    X, _ = synthetic
    seg = WatershedSegmenter(diameter=DIAMETER, progress=False)
    out = seg.fit_transform(X)
    inner = seg.set_params(remove_border_cells=True).fit_transform(X)
    assert (inner.n_objects < out.n_objects).all()
    for cells, nuclei in zip(inner.cells, inner.nuclei):
        edge = np.concatenate([cells[[0, -1], :].ravel(), cells[:, [0, -1]].ravel()])
        assert edge.max() == 0
        assert _one_nucleus_per_cell(nuclei, cells)


# --------------------------------------------------------------------------- empty
def test_empty_images_give_empty_results():
    seg = WatershedSegmenter(progress=False)
    with pytest.warns(NoNucleiWarning, match="2 of 2 images have no nucleus"):
        out = seg.fit_transform(np.zeros((2, 32, 32, 4), np.uint8))
    assert out.nuclei.shape == (2, 32, 32) and out.nuclei.max() == 0 and out.cells.max() == 0
    crops = RegionCropper(crop_size=16).fit_transform(out)
    assert crops.n_cells == 0 and crops.n_images == 2
    # flat but not zero, with a fixed diameter: still no nucleus
    flat = np.full((1, 32, 32, 4), 77, np.uint8)
    with pytest.warns(NoNucleiWarning, match="1 of 1 images"):
        assert seg.set_params(diameter=10).fit_transform(flat).n_objects.tolist() == [0]


def test_blank_image_beside_real_ones(synthetic):
    X, _ = synthetic
    seg = WatershedSegmenter(diameter=DIAMETER, progress=False)
    out = seg.fit_transform(X[:1])
    with pytest.warns(NoNucleiWarning, match="1 of 2 images have no nucleus \\(1\\)"):
        mixed = seg.fit_transform(np.stack([X[0], np.zeros_like(X[0])]))
    np.testing.assert_array_equal(mixed.nuclei[0], out.nuclei[0])
    assert mixed.nuclei[1].max() == 0


# --------------------------------------------------------------------------- channels
def test_channel_checks(synthetic):
    X, _ = synthetic
    with pytest.raises(ValueError, match="both the nucleus channel and a cytoplasm channel"):
        WatershedSegmenter(cyto_channels=("blue", "red")).fit(X)
    with pytest.raises(ValueError, match="cyto_channels is empty"):
        WatershedSegmenter(cyto_channels=()).fit(X)
    with pytest.raises(ValueError, match="Channel 'dapi' is not present"):
        WatershedSegmenter(nucleus_channel="dapi").fit(X)
    seg = WatershedSegmenter(progress=False).fit(X)
    with pytest.raises(ValueError, match=r"X has channels .* fitted on"):
        seg.transform(X[..., :3])
    with pytest.raises(ValueError, match=r"shape \(n, rows, cols, channels\)"):
        seg.transform(X[0])


def test_other_channel_layout():
    # nucleus first, one cytoplasm channel, by position
    image = _field([(24, 22), (24, 39)])[..., [2, 0]]
    seg = WatershedSegmenter(nucleus_channel=0, cyto_channels=1, diameter=20, progress=False)
    out = seg.fit_transform(image[None])
    assert out.n_objects.tolist() == [2] and seg.channels_ == ("ch0", "ch1")


# --------------------------------------------------------------------------- cache
def test_cache_round_trip(synthetic, tmp_path):
    """A second run is served from the cache: entries edited on disk come back."""
    X, _ = synthetic
    seg = WatershedSegmenter(diameter=DIAMETER, cache=tmp_path / "c", progress=False)
    out = seg.fit_transform(X)
    cache = DiskCache(tmp_path / "c", "segmentation")
    assert len(cache) == len(X)
    shutil.copytree(tmp_path / "c", tmp_path / "edited")
    edited = DiskCache(tmp_path / "edited", "segmentation")
    for path in sorted(edited.directory.glob("*/*.npz")):
        entry = edited.get(path.stem)
        assert entry["nuclei"].dtype == np.uint16  # compact on disk
        edited.set(path.stem, {"nuclei": entry["nuclei"], "cells": entry["nuclei"]})
    again = clone(seg).set_params(cache=tmp_path / "edited").fit_transform(X)
    assert again.nuclei.dtype == np.int32
    np.testing.assert_array_equal(again.nuclei, out.nuclei)
    # the edited entries were used: cells equal to nuclei, which the watershed never gives
    np.testing.assert_array_equal(again.cells, out.nuclei)
    assert not np.array_equal(out.cells, out.nuclei)


def test_cache_key_depends_on_pixels_and_parameters(synthetic, tmp_path):
    X, _ = synthetic
    count = lambda: len(DiskCache(tmp_path, "segmentation"))  # noqa: E731
    seg = WatershedSegmenter(diameter=DIAMETER, cache=tmp_path, progress=False)
    seg.fit_transform(X[:2])
    assert count() == 2
    seg.fit_transform(X[:2])
    assert count() == 2
    for name, value in [
        ("diameter", DIAMETER + 1),
        ("threshold_method", "otsu"),
        ("threshold_correction", 1.1),
        ("remove_border_cells", True),
    ]:
        clone(seg).set_params(**{name: value}).fit_transform(X[:1])
    assert count() == 6
    # the green channel does not take part in segmentation, so it is not hashed
    other_green = X[:2].copy()
    other_green[..., 1] = 99
    seg.fit_transform(other_green)
    assert count() == 6
    # the same numbers written as int or float are one entry
    assert float(DIAMETER).is_integer()
    clone(seg).set_params(diameter=int(DIAMETER), threshold_correction=1).fit_transform(X[:2])
    assert count() == 6


# --------------------------------------------------------------------------- pipeline
def test_in_a_pipeline_before_region_cropper(synthetic):
    X, truth = synthetic
    pipe = make_pipeline(
        WatershedSegmenter(diameter=DIAMETER, progress=False), RegionCropper(crop_size=24)
    )
    crops = pipe.fit_transform(X)
    assert crops.n_images == len(X)
    assert crops.n_cells == sum(int(t.max()) for t in truth.nuclei)
    assert crops.crops["nucleus"].shape == (crops.n_cells, 24, 24, 4)


# --------------------------------------------------------------------------- real data
@pytest.mark.real_data
@pytest.mark.slow
def test_sane_nucleus_counts_on_real_hpa_images(hpa_sample_dir):
    """On 512-px HPA fields with ~60-px nuclei: a few to a few dozen nuclei per image.

    Cellpose finds 4 to 71 nuclei per image on the 100-image sample (mean ~24);
    counts outside 2..100, or nuclei far from ~60 px across, mean a broken step.
    """
    images = load_hpa(hpa_sample_dir / "images", lazy=True).images[:6]
    for diameter in (60, None):
        with warnings.catch_warnings():
            warnings.simplefilter("error", NoNucleiWarning)
            out = WatershedSegmenter(diameter=diameter, progress=False).fit_transform(images)
        counts = out.n_objects
        assert ((counts >= 2) & (counts <= 100)).all(), counts
        areas = np.concatenate([np.bincount(m.ravel())[1:] for m in out.nuclei])
        median_diameter = 2 * np.sqrt(np.median(areas) / np.pi)
        assert 30 <= median_diameter <= 90, median_diameter
        for nuclei, cells in zip(out.nuclei, out.cells):
            assert _one_nucleus_per_cell(nuclei, cells)
