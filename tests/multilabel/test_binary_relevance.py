import numpy as np
import pytest
from joblib import parallel_config
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.svm import SVC

from protloc.multilabel import BinaryRelevance


@pytest.fixture(scope="module")
def data():
    return make_multilabel_classification(
        n_samples=100, n_features=6, n_classes=4, n_labels=2, random_state=0
    )


def test_matches_multioutput_classifier(data):
    X, Y = data
    ours = BinaryRelevance(LogisticRegression(max_iter=1000)).fit(X, Y)
    theirs = MultiOutputClassifier(LogisticRegression(max_iter=1000)).fit(X, Y)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    proba = ours.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == Y.shape
    np.testing.assert_allclose(proba, np.column_stack([p[:, 1] for p in theirs.predict_proba(X)]))
    assert ours.decision_function(X).shape == Y.shape


def test_constant_label_column_predicts_the_constant(data):
    X, Y = data
    Y = np.column_stack([Y, np.zeros(len(Y), int), np.ones(len(Y), int)])
    br = BinaryRelevance(LogisticRegression(max_iter=1000)).fit(X, Y)
    pred = br.predict(X)
    assert pred[:, -2].max() == 0 and pred[:, -1].min() == 1
    proba = br.predict_proba(X)
    assert np.all(proba[:, -2] == 0.0) and np.all(proba[:, -1] == 1.0)
    scores = br.decision_function(X)
    assert np.all(scores[:, -2] < 0) and np.all(scores[:, -1] > 0)
    # MultiOutputClassifier cannot do this
    with pytest.raises(ValueError, match="class"):
        MultiOutputClassifier(LogisticRegression()).fit(X, Y)


def test_thresholds_apply_to_probabilities(data):
    X, Y = data
    thresholds = np.array([0.2, 0.5, 0.8, 0.95])
    br = BinaryRelevance(LogisticRegression(max_iter=1000), thresholds=thresholds).fit(X, Y)
    proba = br.predict_proba(X)
    np.testing.assert_array_equal(br.predict(X), (proba >= thresholds).astype(int))
    assert br.predict(X)[:, 0].sum() > br.predict(X)[:, 3].sum() or Y[:, 3].sum() > Y[:, 0].sum()


def test_scalar_threshold_applies_to_decision_function(data):
    X, Y = data
    br = BinaryRelevance(SVC(), thresholds=-0.5).fit(X, Y)
    np.testing.assert_array_equal(br.predict(X), (br.decision_function(X) >= -0.5).astype(int))
    assert not hasattr(br, "predict_proba")
    assert br.predict(X).sum() > BinaryRelevance(SVC()).fit(X, Y).predict(X).sum()


def test_parallel_fit_gives_the_same_model(data):
    X, Y = data
    serial = BinaryRelevance(LogisticRegression(max_iter=1000)).fit(X, Y)
    # threads: starting loky worker processes costs seconds on a busy machine
    with parallel_config(backend="threading"):
        parallel = BinaryRelevance(LogisticRegression(max_iter=1000), n_jobs=2).fit(X, Y)
    np.testing.assert_allclose(serial.predict_proba(X), parallel.predict_proba(X))


def test_bad_input(data):
    X, Y = data
    br = BinaryRelevance(LogisticRegression())
    with pytest.raises(ValueError, match="2-D label indicator matrix"):
        br.fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="0/1"):
        br.fit(X, Y * 2)
    with pytest.raises(ValueError, match="one threshold per label"):
        BinaryRelevance(LogisticRegression(), thresholds=[0.5, 0.5]).fit(X, Y)
    fitted = BinaryRelevance(LogisticRegression(max_iter=1000)).fit(X, Y)
    with pytest.raises(ValueError, match="expecting 6 features"):
        fitted.predict(X[:, :3])
