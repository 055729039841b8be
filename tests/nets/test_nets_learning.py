"""Both networks learn synthetic multi-label HPA fields, and the FCN's maps localize.

Tiny networks (width 8, depth 4) on 64 px images train in seconds on one CPU thread.
The classes are compartments a 64 px field shows clearly and apart: nucleoplasm,
Golgi apparatus and plasma membrane, up to two per image.
"""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from protloc.datasets import make_synthetic_hpa
from protloc.nets import CNNClassifier, FCNClassifier

CLASSES = [0, 7, 21]
N_TRAIN = 256
COMMON = dict(
    image_size=64,
    width=8,
    depth=4,
    batch_size=8,
    early_stopping=False,
    progress=False,
    device="cpu",
    random_state=0,
)


@pytest.fixture(scope="module")
def synthetic():
    X, Y, masks = make_synthetic_hpa(
        N_TRAIN + 64,
        classes=CLASSES,
        image_size=64,
        n_cells=(2, 4),
        max_labels=2,
        return_masks=True,
        random_state=0,
    )
    return X[:N_TRAIN], Y[:N_TRAIN], X[N_TRAIN:], Y[N_TRAIN:], masks.patterns[N_TRAIN:]


@pytest.fixture(scope="module")
def fitted_fcn(synthetic):
    X, Y = synthetic[:2]
    return FCNClassifier(**COMMON, epochs=15, lr=5e-3).fit(X, Y)


@pytest.fixture(scope="module")
def fitted_cnn(synthetic):
    X, Y = synthetic[:2]
    return CNNClassifier(**COMMON, epochs=8, lr=1e-2).fit(X, Y)


@pytest.mark.parametrize("name", ["fitted_cnn", "fitted_fcn"])
def test_networks_learn_multilabel_patterns(name, synthetic, request):
    clf = request.getfixturevalue(name)
    _, Y_train, X_test, Y_test, _ = synthetic
    pred = clf.predict(X_test)
    score = f1_score(Y_test, pred, average="macro")
    # Baselines that only know the label prior: predicting every class, and
    # guessing each class with its training frequency (expected F1 = prevalence).
    all_positive = f1_score(Y_test, np.ones_like(Y_test), average="macro")
    prior = Y_train.mean(axis=0).mean()
    assert score >= 0.8, f"macro-F1 {score:.3f}"
    assert score >= all_positive + 0.15 and score >= prior + 0.25
    assert clf.loss_curve_[-1] < 0.6 * clf.loss_curve_[0]


def _inside_outside(maps, Y_true, pred, patterns):
    """Mean map value inside and outside the true pattern, over predicted true classes."""
    inside, outside = [], []
    for i, k in zip(*np.nonzero(Y_true & pred)):
        mask = patterns[i, k]
        if mask.any():
            inside.append(maps[i, k][mask])
            outside.append(maps[i, k][~mask])
    return np.concatenate(inside).mean(), np.concatenate(outside).mean(), len(inside)


def test_fcn_maps_put_their_mass_on_the_true_compartment(fitted_fcn, synthetic):
    _, _, X_test, Y_test, patterns = synthetic
    maps = fitted_fcn.localization_maps(X_test, upsample=True)
    assert maps.shape == (len(X_test), len(CLASSES), 64, 64)
    pred = fitted_fcn.predict(X_test)
    inside, outside, n_pairs = _inside_outside(maps, Y_test, pred, patterns)
    assert n_pairs >= 0.7 * Y_test.sum()
    assert inside / outside > 2, f"inside {inside:.3f} / outside {outside:.3f}"
    # Control: the same statistic against another image's patterns is near 1,
    # so the ratio above measures localization, not just overall brightness.
    shifted = np.roll(patterns, 1, axis=0)
    inside_c, outside_c, _ = _inside_outside(maps, Y_test, pred, shifted)
    assert inside_c / outside_c < 0.5 * inside / outside
