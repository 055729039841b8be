"""Platt scaling of one-vs-rest class scores on out-of-fold predictions.

``SVC(probability=True)`` is deprecated since scikit-learn 1.9, and
``CalibratedClassifierCV`` fills the scores of classes missing from a training fold
with the smallest float, which wrecks a sigmoid fit. A label powerset has many
combinations seen once or twice, so missing classes are the rule here: this module
ranks a missing class just below the worst present class instead.
"""

import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils import _safe_indexing


@contextmanager
def many_classes_allowed():
    """Silence scikit-learn's "more unique classes than 50% of samples" warning.

    It guards against a regression target passed to a classifier; label combination
    codes are classes by construction, and a label powerset on few samples often has
    more combinations than half the samples.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="The number of unique classes is greater than 50%",
            category=UserWarning,
        )
        yield


def ovr_scores(estimator, X, n_classes):
    """Decision scores of shape (n_samples, n_classes), columns in class-code order.

    Columns of classes the estimator never saw rank below every seen class.
    """
    raw = np.asarray(estimator.decision_function(X), dtype=np.float64)
    if raw.ndim == 1:
        raw = np.column_stack([-raw, raw])
    seen = np.asarray(estimator.classes_)
    if len(seen) == n_classes:
        return raw
    scores = np.repeat(raw.min(axis=1, keepdims=True) - 1.0, n_classes, axis=1)
    scores[:, seen] = raw
    return scores


def take_rows(X, rows, cols, pairwise):
    """Rows of ``X``; of a precomputed kernel, only its columns ``cols`` too."""
    if pairwise:
        # a precomputed kernel is sliced on both axes: test rows against training columns
        return X[np.ix_(rows, cols)]
    return _safe_indexing(X, rows)


def out_of_fold_scores(make_estimator, X, codes, n_classes, *, pairwise, random_state, n_splits=5):
    """One-vs-rest scores of every sample from a model that never saw it."""
    counts = np.bincount(codes, minlength=n_classes)
    n_splits = min(n_splits, len(codes))
    if counts.min() >= n_splits:
        cv = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    else:
        # stratifying needs n_splits samples per class, which rare combinations lack
        cv = KFold(n_splits, shuffle=True, random_state=random_state)
    oof = np.empty((len(codes), n_classes))
    for train, test in cv.split(np.zeros(len(codes)), codes):
        X_test = take_rows(X, test, train, pairwise)
        present = np.unique(codes[train])
        if len(present) == 1:
            oof[test] = -1.0
            oof[test, present[0]] = 1.0
            continue
        with many_classes_allowed():
            model = make_estimator().fit(take_rows(X, train, train, pairwise), codes[train])
        oof[test] = ovr_scores(model, X_test, n_classes)
    return oof


def fit_platt(scores, codes, n_classes, max_iter=100):
    """Sigmoid parameters ``(a, b)`` per class, ``p = 1 / (1 + exp(a * s + b))``.

    Targets are Platt's (1999) smoothed ones, which keep a class seen once from
    getting a probability of exactly 0 or 1. The two-parameter problems of all classes
    are solved together by Newton's method with backtracking, as in Lin, Lin and
    Weng (2007), "A note on Platt's probabilistic outputs for support vector machines".
    """
    Y = codes[:, None] == np.arange(n_classes)[None, :]
    n_pos = Y.sum(axis=0)
    n_neg = len(codes) - n_pos
    target = np.where(Y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    a = np.zeros(n_classes)
    b = np.log((n_neg + 1.0) / (n_pos + 1.0))

    def loss(a, b):
        z = scores * a + b
        # -log-likelihood of p = sigmoid(-z): log(1 + exp(z)) - (1 - t) z
        return np.sum(np.logaddexp(0.0, z) - (1.0 - target) * z, axis=0)

    value = loss(a, b)
    for _ in range(max_iter):
        q = 1.0 / (1.0 + np.exp(-np.clip(scores * a + b, -500, 500)))
        residual = q - (1.0 - target)
        g_a, g_b = (residual * scores).sum(axis=0), residual.sum(axis=0)
        if np.all(np.abs(g_a) + np.abs(g_b) < 1e-5):
            break
        w = q * (1.0 - q)
        h_aa = (w * scores**2).sum(axis=0) + 1e-12
        h_ab = (w * scores).sum(axis=0)
        h_bb = w.sum(axis=0) + 1e-12
        det = h_aa * h_bb - h_ab**2
        step_a = -(h_bb * g_a - h_ab * g_b) / det
        step_b = -(h_aa * g_b - h_ab * g_a) / det
        slope = g_a * step_a + g_b * step_b
        t = np.ones(n_classes)
        todo = np.ones(n_classes, dtype=bool)
        new_a, new_b, new_value = a.copy(), b.copy(), value.copy()
        while todo.any() and t.max() >= 1e-10:
            cand_a, cand_b = a + t * step_a, b + t * step_b
            cand_value = loss(cand_a, cand_b)
            accept = todo & (cand_value <= value + 1e-4 * t * slope)
            new_a[accept], new_b[accept], new_value[accept] = (
                cand_a[accept],
                cand_b[accept],
                cand_value[accept],
            )
            todo &= ~accept
            t[todo] /= 2.0
        if np.allclose(new_value, value, rtol=0, atol=1e-12):
            break
        a, b, value = new_a, new_b, new_value
    return a, b


def platt_proba(scores, a, b):
    """Class probabilities from scores; rows sum to 1 (two classes: only the second)."""
    if scores.shape[1] == 2:
        p1 = 1.0 / (1.0 + np.exp(np.clip(scores[:, 1] * a[1] + b[1], -500, 500)))
        return np.column_stack([1.0 - p1, p1])
    proba = 1.0 / (1.0 + np.exp(np.clip(scores * a + b, -500, 500)))
    total = proba.sum(axis=1, keepdims=True)
    return np.divide(proba, total, out=np.full_like(proba, 1.0 / proba.shape[1]), where=total > 0)
