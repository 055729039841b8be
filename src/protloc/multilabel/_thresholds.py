"""Per-label decision thresholds tuned on out-of-fold scores for the best F1."""

import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ._platt import take_rows
from ._validation import check_label_matrix, check_meta_X, check_n_samples, multilabel_meta_tags


class UndecidableThresholdWarning(UserWarning):
    """Warns that some labels' thresholds could not be tuned and got the default cut.

    A label is *undecidable* when the samples its threshold is tuned on hold fewer
    than 2 positives or no negative: one positive sample fixes no cut worth keeping
    (below it, the best F1 may well be "predict every sample"), and with no negative
    nothing is left to tell apart.
    """


def _undecidable_labels(Y):
    """Boolean mask of the labels of ``Y`` with fewer than 2 positives or no negative."""
    n_pos = Y.sum(axis=0)
    return (n_pos < 2) | (n_pos == Y.shape[0])


def _warn_undecidable(
    Y,
    fallback,
    label_names=None,
    *,
    where="the scores",
    fix="Give these labels more samples, or drop them.",
):
    """One :class:`UndecidableThresholdWarning` naming every undecidable label of ``Y``."""
    undecidable = np.flatnonzero(_undecidable_labels(Y))
    if undecidable.size == 0:
        return
    n_pos = Y.sum(axis=0)
    reasons = []
    for j in undecidable:
        name = repr(label_names[j]) if label_names is not None else str(j)
        count = int(n_pos[j])
        if count >= 2:
            why = "no negative sample"
        else:
            why = "1 positive sample" if count == 1 else "no positive sample"
        reasons.append(f"{name} ({why})")
    plural = "s" if len(reasons) > 1 else ""
    warnings.warn(
        f"Label{plural} {', '.join(reasons)}: no threshold can be tuned on {where}, which "
        f"needs at least 2 positive samples and 1 negative per label, so the default "
        f"threshold {fallback:g} is kept. {fix}",
        UndecidableThresholdWarning,
        stacklevel=3,
    )


def _best_f1_threshold(y, s):
    n_pos = int(y.sum())
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # the last index of each run of equal scores: a cut keeps whole runs together
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(y)[ends]
    predicted = ends + 1
    f1 = 2.0 * tp / (predicted + n_pos)
    best = int(np.argmax(f1))
    if best == len(ends) - 1:
        # keeping every sample: the lowest score, so that lower unseen scores stay out
        return s[-1]
    # halfway to the next lower score, so unseen scores near the cut fall either side fairly
    return 0.5 * (s[ends[best]] + s[ends[best] + 1])


def _tune(Y, scores, fallback):
    """Thresholds of :func:`tune_thresholds`, without validation or warning."""
    undecidable = _undecidable_labels(Y)
    return np.array(
        [
            fallback if undecidable[j] else _best_f1_threshold(Y[:, j], scores[:, j])
            for j in range(Y.shape[1])
        ],
        dtype=np.float64,
    )


def tune_thresholds(Y, scores, *, fallback=0.5, label_names=None):
    """Per-label thresholds maximising each label's F1 score.

    Predicting ``scores[:, j] >= thresholds[j]`` gives the best F1 on these data for
    label ``j``. The threshold lies halfway between the lowest score kept and the next
    lower one (at the lowest score when every sample is kept), so every threshold is
    finite. A label with fewer than 2 positive samples or no negative one cannot be
    tuned: it gets ``fallback``, and one :class:`UndecidableThresholdWarning` names
    all such labels.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_labels)
        True 0/1 labels.
    scores : array-like of shape (n_samples, n_labels)
        Scores, higher meaning more likely; use out-of-fold scores, as
        :class:`ThresholdTuner` does, or the thresholds overfit.
    fallback : float, default=0.5
        Threshold of the labels that cannot be tuned: the scores' own decision
        threshold, 0.5 for probabilities, 0 for decision functions.
    label_names : sequence of str, optional
        Names of the labels, for the warning; column indices when omitted.

    Returns
    -------
    thresholds : ndarray of shape (n_labels,)
        One finite threshold per label.

    Warns
    -----
    UndecidableThresholdWarning
        Some label has fewer than 2 positive samples or no negative one.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    >>> scores = np.array([[0.9, 0.2], [0.6, 0.3], [0.4, 0.1], [0.1, 0.35]])
    >>> tune_thresholds(Y, scores)
    array([0.5 , 0.25])
    """
    Y = check_label_matrix(Y, estimator_name="tune_thresholds")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != Y.shape:
        raise ValueError(
            f"scores must have the shape of Y, {Y.shape}; got {scores.shape}. Pass per-label "
            "scores, e.g. predict_proba of BinaryRelevance or LabelPowerset."
        )
    if not np.isfinite(scores).all():
        raise ValueError(
            "scores hold NaN or infinity; thresholds need finite scores. Check the "
            "estimator that produced them."
        )
    if not np.isfinite(fallback):
        raise ValueError(f"fallback must be a finite threshold, got {fallback}.")
    if label_names is not None and len(label_names) != Y.shape[1]:
        raise ValueError(f"label_names has {len(label_names)} names but Y has {Y.shape[1]} labels.")
    _warn_undecidable(Y, fallback, label_names)
    return _tune(Y, scores, fallback)


def _fold_scores(estimator, X, Y, train, test, method, pairwise):
    estimator.fit(take_rows(X, train, train, pairwise), Y[train])
    scores = np.asarray(getattr(estimator, method)(take_rows(X, test, train, pairwise)))
    if scores.shape != (len(test), Y.shape[1]):
        raise ValueError(
            f"{type(estimator).__name__}.{method} returned shape {scores.shape}; "
            f"ThresholdTuner needs one score per label, shape {(len(test), Y.shape[1])}. "
            "Wrap the classifier in BinaryRelevance or LabelPowerset."
        )
    return scores


class ThresholdTuner(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Multi-label classifier with per-label thresholds tuned for the best F1.

    Out-of-fold per-label scores (``predict_proba`` or ``decision_function`` of
    ``estimator``) are computed by cross-validation; each label's threshold is the one
    with the best F1 on them (:func:`tune_thresholds`); a label too rare to tune
    keeps the default cut, with a warning. ``estimator`` is then refitted
    on all data, and :meth:`predict` thresholds its scores. The Kaggle HPA 2018
    winners tuned thresholds this way; it helps rare labels most.

    Parameters
    ----------
    estimator : classifier
        Multi-label classifier giving per-label scores of shape (n_samples, n_labels):
        :class:`BinaryRelevance`, :class:`LabelPowerset`, :class:`LabelPowersetSVM`
        (per-label margins, or marginals with ``probability=True``), or any
        scikit-learn classifier whose multi-label scores come in that shape.
    cv : int, cross-validation generator or iterable, default=5
        Folds for the out-of-fold scores. An int means
        :class:`protloc.model_selection.MultilabelStratifiedKFold` with that many
        folds.
    response_method : {"auto", "predict_proba", "decision_function"}, default="auto"
        Scores to threshold; "auto" takes ``predict_proba`` if the estimator has it,
        else ``decision_function``.
    n_jobs : int or None, default=None
        Folds fitted in parallel.

    Attributes
    ----------
    estimator_ : classifier
        ``estimator`` refitted on all data.
    thresholds_ : ndarray of shape (n_labels,)
        Tuned threshold of each label, always finite. A label with fewer than 2
        positive samples or no negative one keeps the estimator's own cut (0.5 on
        probabilities, 0 on decision functions), with an
        :class:`UndecidableThresholdWarning`.
    oof_scores_ : ndarray of shape (n_samples, n_labels)
        The out-of-fold scores the thresholds were tuned on.
    response_method_ : str
        The method whose scores are thresholded.
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels``.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen in :meth:`fit`, when ``X`` has string column names.

    See Also
    --------
    tune_thresholds : The threshold search on given scores.
    sklearn.model_selection.TunedThresholdClassifierCV : The binary-only equivalent.

    Examples
    --------
    >>> from sklearn.datasets import make_multilabel_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from protloc.multilabel import BinaryRelevance, ThresholdTuner
    >>> X, Y = make_multilabel_classification(n_samples=60, n_classes=3, random_state=0)
    >>> tuner = ThresholdTuner(BinaryRelevance(LogisticRegression(max_iter=1000)), cv=3)
    >>> tuner.fit(X, Y).thresholds_.shape
    (3,)
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods(["fit"])],
        "cv": ["cv_object"],
        "response_method": [StrOptions({"auto", "predict_proba", "decision_function"})],
        "n_jobs": [Integral, None],
    }

    def __init__(self, estimator, *, cv=5, response_method="auto", n_jobs=None):
        self.estimator = estimator
        self.cv = cv
        self.response_method = response_method
        self.n_jobs = n_jobs

    def _check_X(self, X, reset=False):
        return check_meta_X(self, X, reset=reset)

    def _resolve_method(self):
        if self.response_method != "auto":
            return self.response_method
        for method in ("predict_proba", "decision_function"):
            if hasattr(self.estimator, method):
                return method
        raise ValueError(
            f"{type(self.estimator).__name__} has neither predict_proba nor "
            "decision_function, so there are no scores to threshold."
        )

    def _splitter(self):
        if isinstance(self.cv, Integral):
            from protloc.model_selection import MultilabelStratifiedKFold

            return MultilabelStratifiedKFold(n_splits=self.cv)
        return self.cv

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, Y):
        """Tune per-label thresholds on out-of-fold scores, then refit on all data.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples.
        Y : array-like or sparse matrix of shape (n_samples, n_labels)
            0/1 label matrix.

        Returns
        -------
        self : ThresholdTuner
            The fitted estimator.
        """
        X = self._check_X(X, reset=True)
        Y = check_label_matrix(Y, estimator_name=type(self).__name__)
        check_n_samples(X, Y)
        method = self._resolve_method()
        pairwise = get_tags(self.estimator).input_tags.pairwise
        splits = list(self._splitter().split(X, Y))
        if sum(len(test) for _, test in splits) != len(Y) or len(
            np.unique(np.concatenate([test for _, test in splits]))
        ) != len(Y):
            raise ValueError("cv must put every sample in exactly one test fold.")
        fold_scores = Parallel(n_jobs=self.n_jobs)(
            delayed(_fold_scores)(clone(self.estimator), X, Y, train, test, method, pairwise)
            for train, test in splits
        )
        oof = np.empty(Y.shape)
        for (_, test), scores in zip(splits, fold_scores):
            oof[test] = scores
        self.response_method_ = method
        self.oof_scores_ = oof
        # an undecidable label keeps the estimator's own cut on these scores
        fallback = 0.5 if method == "predict_proba" else 0.0
        self.thresholds_ = tune_thresholds(Y, oof, fallback=fallback)
        self.estimator_ = clone(self.estimator).fit(X, Y)
        self.classes_ = [np.array([0, 1]) for _ in range(Y.shape[1])]
        return self

    def predict(self, X):
        """Predict labels whose score reaches their tuned threshold.

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
        scores = getattr(self.estimator_, self.response_method_)(self._check_X(X))
        return (np.asarray(scores) >= self.thresholds_).astype(np.int64)

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X):
        """Per-label probabilities of the refitted estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels)
            The estimator's per-label probabilities.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._check_X(X))

    @available_if(lambda self: hasattr(self.estimator, "decision_function"))
    def decision_function(self, X):
        """Per-label decision scores of the refitted estimator (thresholds not applied).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_labels)
            The estimator's per-label scores.
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(self._check_X(X))

    def __sklearn_tags__(self):
        tags = multilabel_meta_tags(super().__sklearn_tags__(), self.estimator)
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_class = False
        return tags
