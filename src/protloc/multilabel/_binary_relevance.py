"""Binary relevance: one binary classifier per label."""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.dummy import DummyClassifier
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ._validation import check_label_matrix, check_meta_X, check_n_samples, multilabel_meta_tags


def positive_scores(estimator, X, method):
    """Scores of the positive class (label value 1) of a fitted binary classifier.

    An estimator that never saw the label (fitted on a constant column) scores 0 or 1
    with ``predict_proba``, and -1 or +1 with ``decision_function``.
    """
    classes = np.asarray(estimator.classes_)
    if len(classes) == 1:
        present = bool(classes[0])
        if method == "predict_proba":
            return np.full(X.shape[0], float(present))
        return np.full(X.shape[0], 1.0 if present else -1.0)
    if method == "predict_proba":
        return estimator.predict_proba(X)[:, 1]
    return np.asarray(estimator.decision_function(X), dtype=np.float64)


def _fit_label(estimator, X, y):
    if np.all(y == y[0]):
        # most classifiers refuse a single class; the label's answer is known anyway
        estimator = DummyClassifier(strategy="constant", constant=y[0])
    return estimator.fit(X, y)


def _estimator_has(attr):
    def check(self):
        if hasattr(self, "estimators_"):
            return all(
                hasattr(e, attr) for e in self.estimators_ if not isinstance(e, DummyClassifier)
            )
        return hasattr(self.estimator, attr)

    return check


class BinaryRelevance(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Binary relevance: one clone of a binary classifier per label.

    Parameters
    ----------
    estimator : classifier
        Binary classifier, cloned once per label; its parameters are reachable as
        ``estimator__<name>``.
    thresholds : float, array-like of shape (n_labels,) or None, default=None
        Per-label decision thresholds: :meth:`predict` then returns
        ``score >= threshold``, where the score is :meth:`predict_proba` if the
        estimator has it, else :meth:`decision_function`. None uses each estimator's
        own ``predict``. :class:`ThresholdTuner` learns thresholds from data.
    n_jobs : int or None, default=None
        Labels fitted in parallel (joblib).

    Attributes
    ----------
    estimators_ : list of classifiers
        One fitted estimator per label. A label constant in training gets a
        :class:`~sklearn.dummy.DummyClassifier` that always predicts that constant.
    thresholds_ : ndarray of shape (n_labels,) or None
        The validated ``thresholds``.
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels`` (scikit-learn's multi-label convention).
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen in :meth:`fit`, when ``X`` has string column names.

    See Also
    --------
    sklearn.multioutput.MultiOutputClassifier : The same idea; it fails on a constant
        label column and returns ``predict_proba`` as a list of arrays.
    LabelPowerset : One class per label combination instead of one model per label.
    skmultilearn.problem_transform.BinaryRelevance : The scikit-multilearn original,
        with sparse predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from protloc.multilabel import BinaryRelevance
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [2.1]])
    >>> Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [1, 1]])
    >>> br = BinaryRelevance(LogisticRegression()).fit(X, Y)
    >>> br.predict_proba([[0.0], [2.1]]).shape
    (2, 2)
    >>> BinaryRelevance(LogisticRegression(), thresholds=[0.5, 0.9]).fit(X, Y).predict([[2.1]])
    array([[1, 0]])
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods(["fit", "predict"])],
        "thresholds": ["array-like", Interval(Real, None, None, closed="neither"), None],
        "n_jobs": [Integral, None],
    }

    def __init__(self, estimator, *, thresholds=None, n_jobs=None):
        self.estimator = estimator
        self.thresholds = thresholds
        self.n_jobs = n_jobs

    def _check_X(self, X, reset=False):
        return check_meta_X(self, X, reset=reset)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y):
        """Fit one estimator per label.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples.
        Y : array-like or sparse matrix of shape (n_samples, n_labels)
            0/1 label matrix.

        Returns
        -------
        self : BinaryRelevance
            The fitted estimator.
        """
        X = self._check_X(X, reset=True)
        Y = check_label_matrix(Y, estimator_name=type(self).__name__)
        check_n_samples(X, Y)
        self.thresholds_ = self._check_thresholds(Y.shape[1])
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_label)(clone(self.estimator), X, Y[:, j]) for j in range(Y.shape[1])
        )
        self.classes_ = [np.array([0, 1]) for _ in range(Y.shape[1])]
        return self

    def _check_thresholds(self, n_labels):
        if self.thresholds is None:
            return None
        thresholds = np.asarray(self.thresholds, dtype=np.float64)
        if thresholds.ndim == 0:
            return np.full(n_labels, float(thresholds))
        if thresholds.shape != (n_labels,):
            raise ValueError(
                f"thresholds must be a number or hold one threshold per label ({n_labels}); "
                f"got shape {thresholds.shape}."
            )
        return thresholds

    def _scores(self, X, method):
        return np.column_stack([positive_scores(e, X, method) for e in self.estimators_])

    def _score_method(self):
        return "predict_proba" if _estimator_has("predict_proba")(self) else "decision_function"

    def predict(self, X):
        """Predict the 0/1 label matrix.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        Y : ndarray of shape (n_samples, n_labels)
            Dense 0/1 label matrix.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        if self.thresholds_ is None:
            return np.column_stack([e.predict(X) for e in self.estimators_]).astype(np.int64)
        return (self._scores(X, self._score_method()) >= self.thresholds_).astype(np.int64)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Probability of each label, from its own estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels)
            Positive-class probability of each label (not a list of arrays).
        """
        check_is_fitted(self)
        return self._scores(self._check_X(X), "predict_proba")

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision score of each label, from its own estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_labels)
            Positive-class score of each label.
        """
        check_is_fitted(self)
        return self._scores(self._check_X(X), "decision_function")

    def __sklearn_tags__(self):
        tags = multilabel_meta_tags(super().__sklearn_tags__(), self.estimator)
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_class = False
        return tags
