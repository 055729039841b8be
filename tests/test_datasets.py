"""Tests of the synthetic HPA generator: shapes, ground truth, determinism, statistics."""

import csv
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from protloc.datasets import (
    HPA2018_CLASS_COUNTS,
    HPA2018_LABELS_PER_IMAGE,
    SYNTHETIC_CLASSES,
    make_synthetic_hpa,
    synthetic_class_names,
)
from protloc.io import DEFAULT_CHANNELS, HPA_CLASSES

NUCLEAR = (0, 2, 4, 5)  # patterns that lie inside the nucleus
CYTOPLASMIC = (6, 7, 14, 23, 25)  # patterns that lie outside it (centrosome may touch it)


@pytest.fixture(scope="module")
def with_masks():
    return make_synthetic_hpa(12, image_size=96, return_masks=True, random_state=7)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_shapes_dtypes_and_labels(dtype):
    X, Y = make_synthetic_hpa(5, image_size=64, max_labels=2, dtype=dtype, random_state=0)
    assert X.shape == (5, 64, 64, len(DEFAULT_CHANNELS))
    assert X.dtype == np.dtype(dtype)
    assert Y.shape == (5, len(SYNTHETIC_CLASSES))
    assert Y.dtype == np.uint8
    assert set(np.unique(Y)) <= {0, 1}
    assert Y.sum(axis=1).min() >= 1 and Y.sum(axis=1).max() <= 2
    # Intensities use the dtype's range: the bright nuclei come close to the top.
    assert X.max() > 0.5 * np.iinfo(dtype).max
    for channel in range(4):
        assert X[..., channel].std() > 0


def test_classes_select_columns_in_given_order():
    _, Y, masks = make_synthetic_hpa(
        6, classes=[25, 0], image_size=48, max_labels=1, return_masks=True, random_state=1
    )
    assert Y.shape == (6, 2) and (Y.sum(axis=1) == 1).all()
    assert masks.classes == (25, 0)
    assert masks.class_names == ("Cytosol", "Nucleoplasm")
    assert masks.channels == DEFAULT_CHANNELS
    nuclei = masks.nuclei > 0
    for y, pattern, nucleus in zip(Y, masks.patterns, nuclei, strict=True):
        if y[1]:  # nucleoplasm column
            assert np.array_equal(pattern[1], nucleus)
        else:
            assert not (pattern[0] & nucleus).any()


def test_class_names():
    assert synthetic_class_names() == tuple(HPA_CLASSES[c] for c in SYNTHETIC_CLASSES)
    assert synthetic_class_names((21, 23)) == ("Plasma membrane", "Mitochondria")
    required = {0, 1, 2, 4, 7, 21, 23, 25}
    assert required <= set(SYNTHETIC_CLASSES)


def test_masks_are_consistent(with_masks):
    _, Y, masks = with_masks
    n, rows, cols = masks.nuclei.shape
    assert masks.cells.shape == (n, rows, cols)
    assert masks.nuclei.dtype == masks.cells.dtype == np.int32
    assert masks.patterns.shape == (n, len(SYNTHETIC_CLASSES), rows, cols)
    assert masks.patterns.dtype == bool
    ring_of = SYNTHETIC_CLASSES.index(1)
    for i in range(n):
        nuc, cell = masks.nuclei[i], masks.cells[i]
        labels = np.unique(cell[cell > 0])
        # Consecutive labels, each cell holding exactly its own, non-empty nucleus.
        assert np.array_equal(labels, np.arange(1, len(labels) + 1))
        assert len(labels) >= 2
        assert np.array_equal(np.unique(nuc[nuc > 0]), labels)
        assert np.array_equal(cell[nuc > 0], nuc[nuc > 0])
        # The nucleus is a proper part of its cell: cytoplasm surrounds it.
        assert all((cell == k).sum() > 1.5 * (nuc == k).sum() for k in labels)
        for j, c in enumerate(SYNTHETIC_CLASSES):
            pattern = masks.patterns[i, j]
            if not Y[i, j]:
                assert not pattern.any(), f"inactive class {c} has a pattern"
                continue
            assert pattern.any(), f"active class {c} has an empty pattern"
            assert not (pattern & (cell == 0)).any(), f"class {c} leaks out of the cells"
            if c in NUCLEAR:
                assert not (pattern & (nuc == 0)).any(), f"class {c} leaks out of nuclei"
            if c in CYTOPLASMIC:
                # Only the blur-free support is checked, so no tolerance is needed.
                inside = (pattern & (nuc > 0)).sum() / pattern.sum()
                assert inside < 0.05 + 0.3 * (c == 14), f"class {c} sits in nuclei"
        if Y[i, ring_of]:
            near = ndimage.binary_dilation(nuc > 0, iterations=3)
            assert not (masks.patterns[i, ring_of] & ~near).any()


def test_channels_follow_the_compartments(with_masks):
    X, _, masks = with_masks
    nuclei, cells = masks.nuclei > 0, masks.cells > 0
    blue, red = X[..., 2].astype(float), X[..., 0].astype(float)
    # DAPI marks nuclei; microtubules fill the cytoplasm; the background is dark.
    assert blue[nuclei].mean() > 4 * blue[~nuclei].mean()
    cytoplasm = cells & ~nuclei
    assert red[cytoplasm].mean() > 3 * red[~cells].mean()


def test_green_follows_the_patterns(with_masks):
    X, Y, masks = with_masks
    green = X[..., 1].astype(float)
    contrasts = []
    for i, j in zip(*np.nonzero(Y), strict=True):
        on = masks.patterns[i, j]
        off = (masks.cells[i] > 0) & ~masks.patterns[i].any(axis=0)
        if off.sum() > 50:
            contrasts.append(green[i][on].mean() / (green[i][off].mean() + 1))
    assert np.median(contrasts) > 2


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 2))
def test_deterministic_from_random_state(seed):
    kw = {"image_size": 32, "n_cells": (1, 3), "return_masks": True}
    X1, Y1, m1 = make_synthetic_hpa(2, random_state=seed, **kw)
    X2, Y2, m2 = make_synthetic_hpa(2, random_state=seed, **kw)
    assert np.array_equal(X1, X2) and np.array_equal(Y1, Y2)
    assert np.array_equal(m1.cells, m2.cells) and np.array_equal(m1.patterns, m2.patterns)
    X3, _ = make_synthetic_hpa(2, random_state=seed + 1, image_size=32, n_cells=(1, 3))
    assert not np.array_equal(X1, X3)


def test_samples_do_not_depend_on_n_samples():
    X5, Y5 = make_synthetic_hpa(5, image_size=32, random_state=np.random.RandomState(3))
    X2, Y2 = make_synthetic_hpa(2, image_size=32, random_state=np.random.RandomState(3))
    assert np.array_equal(X5[:2], X2) and np.array_equal(Y5[:2], Y2)


def test_global_numpy_state_is_untouched():
    # The legacy global state is what global seeding would touch.
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    make_synthetic_hpa(2, image_size=32, random_state=0)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_hpa2018_imbalance_reproduces_frequency_order():
    _, Y = make_synthetic_hpa(
        400, image_size=32, n_cells=1, imbalance="hpa2018", max_labels=5, random_state=0
    )
    freq = Y.mean(axis=0)
    real = np.array([HPA2018_CLASS_COUNTS[c] for c in SYNTHETIC_CLASSES])
    assert np.argmax(freq) == SYNTHETIC_CLASSES.index(0)  # nucleoplasm
    assert np.argsort(freq)[-2] == SYNTHETIC_CLASSES.index(25)  # then cytosol
    assert spearmanr(freq, real).statistic > 0.8
    # About half of real images have one label, 40 % two.
    per_image = np.bincount(Y.sum(axis=1).astype(int), minlength=6)[1:] / len(Y)
    real_share = np.array(HPA2018_LABELS_PER_IMAGE) / sum(HPA2018_LABELS_PER_IMAGE)
    assert np.abs(per_image[:3] - real_share[:3]).max() < 0.08


def test_uniform_default_and_weights():
    _, Y = make_synthetic_hpa(200, image_size=32, n_cells=1, max_labels=1, random_state=0)
    freq = Y.mean(axis=0)
    assert freq.min() > 0.3 / len(SYNTHETIC_CLASSES)
    _, Y = make_synthetic_hpa(
        60, classes=[0, 1, 2], imbalance=[1, 0, 3], image_size=32, random_state=0
    )
    assert Y[:, 1].sum() == 0  # a zero weight never appears
    assert Y[:, 2].sum() > Y[:, 0].sum() / 2
    assert Y.sum(axis=1).max() <= 2  # only two classes can be drawn


def test_many_cells_in_a_small_image_still_works():
    _, _, masks = make_synthetic_hpa(
        3, image_size=32, n_cells=30, return_masks=True, random_state=0
    )
    n_cells = [masks.cells[i].max() for i in range(3)]
    assert all(1 <= k < 30 for k in n_cells)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"image_size": 16}, "image_size"),
        ({"classes": [3]}, "no synthetic pattern"),
        ({"classes": [28]}, "outside"),
        ({"classes": [0, 0]}, "twice"),
        ({"classes": []}, "empty"),
        ({"classes": ["Nucleoplasm"]}, "integer"),
        ({"max_labels": 0}, "max_labels"),
        ({"n_cells": (5, 2)}, "low <= high"),
        ({"n_cells": (0, 2)}, "low <= high"),
        ({"n_cells": (1, 2, 3)}, "pair"),
        ({"imbalance": "hpa2021"}, "imbalance"),
        ({"imbalance": [1.0, 2.0]}, "one weight per class"),
        ({"classes": [0, 1], "imbalance": [0, 0]}, "not all zero"),
        ({"noise": -0.1}, "noise"),
        ({"dtype": "float32"}, "dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"n_samples": 1, "image_size": 32, **kwargs}
    n_samples = kwargs.pop("n_samples")
    with pytest.raises(ValueError, match=match):
        make_synthetic_hpa(n_samples, **kwargs)


def _region_features(x, nuclei, cells):
    """Green statistics per compartment, from the true masks, plus channel correlations."""
    green = x[..., 1].astype(float)
    green /= np.percentile(green, 99.5) + 1
    nucleus, cell = nuclei > 0, cells > 0
    cytoplasm = cell & ~nucleus
    ring = ndimage.binary_dilation(nucleus, iterations=2) & ~ndimage.binary_erosion(
        nucleus, iterations=2
    )
    edge = cell & ~ndimage.binary_erosion(cell, iterations=2)
    out = []
    for region in (nucleus, cytoplasm, ring, edge, ~cell):
        values = green[region]
        out += [values.mean(), values.std(), np.percentile(values, 95)]
    for reference in (0, 3):  # microtubules, ER
        out.append(np.corrcoef(green[cytoplasm], x[..., reference][cytoplasm])[0, 1])
    return out


def test_nuclear_and_cytoplasmic_classes_are_separable():
    X, Y, masks = make_synthetic_hpa(
        80, classes=[0, 2, 4, 7, 23, 25], image_size=64, max_labels=1,
        return_masks=True, random_state=0,
    )  # fmt: skip
    green = X[..., 1].astype(float)
    nucleus = masks.nuclei > 0
    cytoplasm = (masks.cells > 0) & ~nucleus
    in_nucleus = (green * nucleus).sum((1, 2)) / nucleus.sum((1, 2))
    in_cytoplasm = (green * cytoplasm).sum((1, 2)) / cytoplasm.sum((1, 2))
    assert roc_auc_score(Y[:, :3].any(axis=1), in_nucleus / in_cytoplasm) > 0.95


def test_patterns_are_learnable_but_not_trivial():
    X, Y, masks = make_synthetic_hpa(120, image_size=64, return_masks=True, random_state=1)
    F = np.array([_region_features(*a) for a in zip(X, masks.nuclei, masks.cells, strict=True)])
    # A linear model on compartment statistics, scored out of fold without thresholds.
    scores = cross_val_predict(
        make_pipeline(StandardScaler(), Ridge(alpha=1.0)), F, Y.astype(float), cv=4
    )
    auc = roc_auc_score(Y, scores, average=None)
    assert auc.mean() > 0.75
    for c in (0, 21, 25):  # nucleoplasm, plasma membrane, cytosol: clearly learnable
        assert auc[SYNTHETIC_CLASSES.index(c)] > 0.75
    # Small nuclear dots (speckles, bodies, centrosome) defeat these global statistics.
    assert auc.mean() < 0.95
    assert auc.min() < 0.8


@pytest.mark.real_data
def test_hpa2018_constants_match_the_label_table(hpa_full_labels):
    classes, per_image = Counter(), Counter()
    with open(hpa_full_labels, newline="") as fh:
        for row in csv.DictReader(fh):
            labels = {int(t) for t in row["Target"].split()}
            classes.update(labels)
            per_image[len(labels)] += 1
    assert tuple(classes[c] for c in range(28)) == HPA2018_CLASS_COUNTS
    assert tuple(per_image[k] for k in range(1, 6)) == HPA2018_LABELS_PER_IMAGE
    assert sum(per_image.values()) == 31072
