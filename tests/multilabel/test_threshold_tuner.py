import numpy as np
import pytest
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from protloc.model_selection import MultilabelStratifiedKFold
from protloc.multilabel import (
    BinaryRelevance,
    LabelPowersetSVM,
    ThresholdTuner,
    UndecidableThresholdWarning,
    tune_thresholds,
)


@pytest.fixture(scope="module")
def data():
    X, Y = make_multilabel_classification(
        n_samples=150, n_features=8, n_classes=4, n_labels=2, random_state=3
    )
    return StandardScaler().fit_transform(X), Y


def test_tune_thresholds_example():
    Y = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 0]])
    scores = np.array([[0.9, 0.2], [0.6, 0.3], [0.4, 0.1], [0.1, 0.35], [0.5, 0.9]])
    # label 0: keeping 0.9 and 0.6 catches both positives and nothing else
    # label 1: 0.9 is a negative; cutting below 0.3 gives 2 TP and 1 FP (F1 0.8)
    np.testing.assert_allclose(tune_thresholds(Y, scores), [0.55, 0.25])


def test_tune_thresholds_degenerate_labels_keep_the_fallback():
    Y = np.array([[0, 1], [0, 1], [0, 1]])
    with pytest.warns(UndecidableThresholdWarning, match=r"0 \(no positive.*1 \(no negative"):
        thresholds = tune_thresholds(Y, np.array([[0.1, 0.2], [0.5, 0.1], [0.3, 0.9]]))
    np.testing.assert_array_equal(thresholds, [0.5, 0.5])


def test_keeping_every_sample_gives_the_lowest_score_not_minus_inf():
    # the positives score lowest: the F1-best cut keeps every sample
    Y = np.array([[0], [0], [1], [1]])
    thresholds = tune_thresholds(Y, np.array([[0.9], [0.8], [0.2], [0.1]]))
    assert thresholds[0] == 0.1


def test_tuned_threshold_beats_every_other_cut():
    rng = np.random.default_rng(0)
    Y = (rng.random((80, 3)) < [0.1, 0.4, 0.7]).astype(int)
    scores = Y + rng.normal(scale=0.8, size=Y.shape)
    thresholds = tune_thresholds(Y, scores)
    for j in range(3):
        best = f1_score(Y[:, j], scores[:, j] >= thresholds[j])
        for cut in np.unique(scores[:, j]):
            assert best >= f1_score(Y[:, j], scores[:, j] >= cut) - 1e-12


def test_tune_thresholds_shape_mismatch():
    with pytest.raises(ValueError, match="shape of Y"):
        tune_thresholds(np.eye(4, 2, dtype=int), np.zeros((4, 3)))


def test_tuner_on_binary_relevance_probabilities(data):
    X, Y = data
    tuner = ThresholdTuner(BinaryRelevance(LogisticRegression(max_iter=1000)), cv=3).fit(X, Y)
    assert tuner.response_method_ == "predict_proba"
    assert tuner.oof_scores_.shape == Y.shape
    np.testing.assert_array_equal(
        tuner.predict(X), (tuner.predict_proba(X) >= tuner.thresholds_).astype(int)
    )
    # on the scores they were tuned on, the thresholds beat 0.5 for every label
    for j in range(Y.shape[1]):
        oof = tuner.oof_scores_[:, j]
        assert f1_score(Y[:, j], oof >= tuner.thresholds_[j]) >= f1_score(Y[:, j], oof >= 0.5)


def test_tuner_on_label_powerset_margins(data):
    X, Y = data
    tuner = ThresholdTuner(LabelPowersetSVM(), cv=3).fit(X, Y)
    assert tuner.response_method_ == "decision_function"
    np.testing.assert_array_equal(
        tuner.predict(X), (tuner.decision_function(X) >= tuner.thresholds_).astype(int)
    )
    oof = tuner.oof_scores_
    tuned = f1_score(Y, oof >= tuner.thresholds_, average="macro")
    assert tuned >= f1_score(Y, oof > 0, average="macro")


def test_tuner_on_label_powerset_marginals(data):
    X, Y = data
    lp = LabelPowersetSVM(probability=True, random_state=0)
    tuner = ThresholdTuner(lp, cv=3).fit(X, Y)
    assert tuner.response_method_ == "predict_proba"
    assert np.all((tuner.thresholds_ > 0) & (tuner.thresholds_ < 1))
    np.testing.assert_array_equal(
        tuner.predict(X), (tuner.predict_proba(X) >= tuner.thresholds_).astype(int)
    )


def test_tuner_slices_a_precomputed_kernel(data):
    X, Y = data
    cv = KFold(3, shuffle=True, random_state=0)
    linear = ThresholdTuner(LabelPowersetSVM(kernel="linear"), cv=cv).fit(X, Y)
    pre = ThresholdTuner(LabelPowersetSVM(kernel="precomputed"), cv=cv).fit(X @ X.T, Y)
    np.testing.assert_allclose(pre.oof_scores_, linear.oof_scores_, atol=1e-6)
    np.testing.assert_array_equal(pre.predict(X[:10] @ X.T), linear.predict(X[:10]))


def test_integer_cv_means_multilabel_stratified_kfold(data):
    X, Y = data
    estimator = BinaryRelevance(LogisticRegression(max_iter=1000))
    by_int = ThresholdTuner(estimator, cv=4).fit(X, Y)
    explicit = ThresholdTuner(estimator, cv=MultilabelStratifiedKFold(4)).fit(X, Y)
    np.testing.assert_array_equal(by_int.thresholds_, explicit.thresholds_)


def test_tuner_bad_input(data):
    X, Y = data
    with pytest.raises(ValueError, match="one score per label"):
        # KNeighborsClassifier's multi-label predict_proba is a list of (n, 2) arrays
        ThresholdTuner(KNeighborsClassifier(), cv=3).fit(X, Y)
    with pytest.raises(ValueError, match="2-D label indicator matrix"):
        ThresholdTuner(BinaryRelevance(LogisticRegression()), cv=3).fit(X, Y[:, 0])
