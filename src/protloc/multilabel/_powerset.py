"""Label powerset: each distinct row of a 0/1 label matrix becomes one class."""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import SVC
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from protloc._memory import check_memory, memory_limit

from ._platt import fit_platt, many_classes_allowed, out_of_fold_scores, ovr_scores, platt_proba
from ._validation import check_meta_X, check_n_samples, check_target, multilabel_meta_tags

# Kernel rows are computed in chunks of about this size, so that computing a kernel
# never holds more than one (n, n) matrix plus one chunk.
_KERNEL_CHUNK_BYTES = 2**27


def encode_combinations(Y, min_combination_count=1):
    """Map each row of a 0/1 matrix ``Y`` to the index of its label combination.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
        0/1 label matrix.
    min_combination_count : int, default=1
        Combinations seen in fewer samples are merged into the nearest frequent one.

    Returns
    -------
    codes : ndarray of shape (n_samples,)
        Index into ``combinations`` of each sample's (possibly merged) combination.
    combinations : ndarray of shape (n_combinations, n_labels), dtype uint8
        The kept combinations, in order of first appearance in ``Y``.
    counts : ndarray of shape (n_combinations,)
        Training samples per kept combination, merged ones included.

    Notes
    -----
    Combinations are numbered in order of first appearance, as scikit-multilearn does;
    one-vs-one SVM breaks vote ties in favour of the lower class index, so the same
    numbering is what makes predictions identical to scikit-multilearn's.

    A rare combination goes to the frequent combination at the smallest Hamming
    distance; ties go to the more frequent one, then to the one seen first.

    Examples
    --------
    >>> import numpy as np
    >>> codes, combos, counts = encode_combinations(np.array([[1, 0], [0, 1], [1, 0]]))
    >>> codes.tolist(), combos.tolist(), counts.tolist()
    ([0, 1, 0], [[1, 0], [0, 1]], [2, 1])
    """
    Y = np.ascontiguousarray(Y, dtype=np.uint8)
    uniq, first, inverse, counts = np.unique(
        Y, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.argsort(first, kind="stable")
    uniq, counts = uniq[order], counts[order]
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[inverse.ravel()]
    if min_combination_count <= 1:
        return codes, uniq, counts

    frequent = counts >= min_combination_count
    if not frequent.any():
        raise ValueError(
            f"No label combination occurs at least min_combination_count="
            f"{min_combination_count} times (the most frequent occurs {counts.max()} "
            "times); lower min_combination_count."
        )
    kept = np.flatnonzero(frequent)
    target = np.arange(len(uniq))
    rare = np.flatnonzero(~frequent)
    if len(rare):
        distance = (uniq[rare, None, :] != uniq[None, kept, :]).sum(axis=2)
        # one key orders by distance, then by count descending; argmin then takes the first seen
        key = distance * (len(Y) + 1) - counts[kept][None, :]
        target[rare] = kept[np.argmin(key, axis=1)]
    new_index = np.full(len(uniq), -1)
    new_index[kept] = np.arange(len(kept))
    codes = new_index[target[codes]]
    return codes, uniq[kept], np.bincount(codes, minlength=len(kept))


def label_scores(scores, combinations):
    """Per-label margins from per-combination scores.

    For label ``j``: best score among combinations holding ``j`` minus best score among
    combinations lacking it. It is positive exactly when the top-scoring combination
    holds ``j``. A label held by every (no) combination scores +1 (-1).
    """
    holds = combinations.astype(bool)
    out = np.empty((scores.shape[0], holds.shape[1]))
    for j in range(holds.shape[1]):
        if holds[:, j].all():
            out[:, j] = 1.0
        elif not holds[:, j].any():
            out[:, j] = -1.0
        else:
            out[:, j] = scores[:, holds[:, j]].max(axis=1) - scores[:, ~holds[:, j]].max(axis=1)
    return out


def _kernel_bytes(n_samples):
    """Peak bytes of a precomputed training kernel: the matrix plus one row chunk."""
    return 8 * n_samples**2 + _KERNEL_CHUNK_BYTES


def _check_kernel_memory(n_samples, max_memory=None):
    """Refuse a precomputed training kernel that would not fit, before computing it."""
    check_memory(
        _kernel_bytes(n_samples),
        f"precompute_kernel=True on {n_samples} training samples (a float64 "
        f"{n_samples} x {n_samples} matrix)",
        "use precompute_kernel='auto' or False (libsvm then computes kernel rows itself, "
        "within cache_size MB), or fit on fewer samples",
        max_memory,
    )


class _BasePowerset(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the label powerset; subclasses build the classifier."""

    def _fit_target(self, X, y, multilabel):
        check_n_samples(X, y)
        if not multilabel and self.min_combination_count > 1:
            raise ValueError(
                "min_combination_count merges label combinations of a 2-D label matrix "
                "Y; with a 1-D multi-class y leave it at 1."
            )
        if multilabel:
            codes, self.combinations_, self.combination_counts_ = encode_combinations(
                y, self.min_combination_count
            )
            self.classes_ = [np.array([0, 1]) for _ in range(y.shape[1])]
            target = codes
        else:
            self.combinations_ = None
            self.combination_counts_ = None
            target = y
        self._check_n_classes(target, multilabel)
        estimator = self._make_estimator(multilabel)
        if multilabel:
            with many_classes_allowed():
                self.estimator_ = estimator.fit(X, target)
        else:
            self.estimator_ = estimator.fit(X, target)
            self.classes_ = self.estimator_.classes_
        return target

    def _check_n_classes(self, target, multilabel):
        """Hook for estimators that cannot fit a single class."""

    def _model_input(self, X):
        """What the fitted estimator takes in place of validated ``X``."""
        return X

    def _predict_codes(self, X):
        return self.estimator_.predict(X)

    def predict(self, X):
        """Predict the label combination (or class, for a 1-D ``y``) of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples; with ``kernel="precomputed"``, the kernel between test and
            training samples, of shape (n_samples, n_training_samples).

        Returns
        -------
        Y : ndarray of shape (n_samples, n_labels) or (n_samples,)
            Dense 0/1 label matrix; class labels when fitted on a 1-D ``y``.
        """
        check_is_fitted(self)
        X = self._model_input(self._check_X(X))
        predicted = self._predict_codes(X)
        if self.combinations_ is None:
            return predicted
        return self.combinations_[predicted].astype(np.int64)

    def _combination_scores(self, X):
        return ovr_scores(self.estimator_, X, len(self.combinations_))

    def _decision_function(self, X):
        check_is_fitted(self)
        X = self._model_input(self._check_X(X))
        if self.combinations_ is None:
            return self.estimator_.decision_function(X)
        return label_scores(self._combination_scores(X), self.combinations_)

    def _marginals(self, proba):
        if self.combinations_ is None:
            return proba
        # a sum of probabilities can overshoot 1 by rounding
        return np.clip(proba @ self.combinations_.astype(np.float64), 0.0, 1.0)


def _estimator_has(attr):
    def check(self):
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, attr)
        return hasattr(self.estimator, attr)

    return check


class LabelPowerset(MetaEstimatorMixin, _BasePowerset):
    """Label powerset over any scikit-learn classifier.

    Each distinct row of the 0/1 label matrix ``Y`` (a *label combination*) becomes
    one class of a multi-class problem solved by ``estimator``. A prediction is always
    one of the combinations seen in training: **a combination never seen in training
    can never be predicted.**

    Parameters
    ----------
    estimator : classifier
        Multi-class classifier, cloned before fitting; its parameters are reachable as
        ``estimator__<name>`` (for instance in ``GridSearchCV``).
    min_combination_count : int, default=1
        Combinations with fewer training samples are merged into their nearest
        frequent combination by Hamming distance (ties: the more frequent, then the
        first seen). 1 keeps all. One-vs-one SVM cost grows with the square of the
        number of combinations, and real HPA labels hold hundreds of them.

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone of ``estimator``; its classes are combination indices.
    combinations_ : ndarray of shape (n_combinations, n_labels), dtype uint8
        The label combinations kept after merging, in order of first appearance.
        An all-zero row (no label) is a combination like any other.
    combination_counts_ : ndarray of shape (n_combinations,)
        Training samples per combination, merged samples included.
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels``, the per-label classes as scikit-learn's
        multi-label estimators (``MultiOutputClassifier``) report them.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen in :meth:`fit`, when ``X`` has string column names.

    See Also
    --------
    LabelPowersetSVM : The same over ``sklearn.svm.SVC``, also for a 1-D ``y``.
    BinaryRelevance : One binary classifier per label.
    skmultilearn.problem_transform.LabelPowerset : The scikit-multilearn original.

    Notes
    -----
    This is a scikit-learn native re-implementation of scikit-multilearn's
    ``LabelPowerset``: combinations are numbered in the same order (first
    appearance), so with the same base classifier the predictions are identical
    (protloc's test suite checks this for ``SVC``). Differences: predictions are dense
    ``ndarray`` instead of ``scipy.sparse.lil_matrix``; ``classes_``, tags and
    parameter validation make it work in ``GridSearchCV``, ``cross_validate`` and
    ``Pipeline`` (scikit-learn issue 28565); rare combinations can be merged; an
    all-zero label row is kept as the "no label" combination (scikit-multilearn does
    the same).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from protloc.multilabel import LabelPowerset
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [2.1]])
    >>> Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [1, 1]])
    >>> lp = LabelPowerset(LogisticRegression(C=100)).fit(X, Y)
    >>> lp.predict([[0.05], [2.05]])
    array([[1, 0],
           [1, 1]])
    >>> lp.combinations_.tolist()
    [[1, 0], [0, 1], [1, 1]]
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [HasMethods(["fit", "predict"])],
        "min_combination_count": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, estimator, *, min_combination_count=1):
        self.estimator = estimator
        self.min_combination_count = min_combination_count

    def _make_estimator(self, multilabel):
        return clone(self.estimator)

    def _check_X(self, X, reset=False):
        return check_meta_X(self, X, reset=reset)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the base estimator on label combinations (2-D ``Y``) or classes (1-D ``y``).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples.
        y : array-like or sparse matrix of shape (n_samples, n_labels) or (n_samples,)
            0/1 label matrix, or multi-class labels (then the base estimator is fitted
            on them as they are).

        Returns
        -------
        self : LabelPowerset
            The fitted estimator.
        """
        X = self._check_X(X, reset=True)
        y, multilabel = check_target(y, estimator_name=type(self).__name__)
        self._fit_target(X, y, multilabel)
        return self

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Per-label marginal probabilities.

        The probability of label ``j`` is the summed probability of the combinations
        that hold ``j``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels)
            Probability that each label is present.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        if self.combinations_ is None:
            return self.estimator_.predict_proba(X)
        proba = np.zeros((X.shape[0], len(self.combinations_)))
        proba[:, self.estimator_.classes_] = self.estimator_.predict_proba(X)
        return self._marginals(proba)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Per-label margins: positive exactly for the labels of the top combination.

        The margin of label ``j`` is the best base-estimator score among combinations
        holding ``j`` minus the best among those lacking it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_labels)
            Per-label margins.
        """
        return self._decision_function(X)

    def __sklearn_tags__(self):
        return multilabel_meta_tags(super().__sklearn_tags__(), self.estimator)


class LabelPowersetSVM(_BasePowerset):
    """Label powerset over a support vector machine (Taormina et al. 2025).

    With a 2-D 0/1 label matrix ``Y``, each distinct label row (a *combination*) is
    one class of a multi-class SVM; with a 1-D ``y`` it is a plain multi-class SVM,
    T25's single-label phase. **A combination never seen in training can never be
    predicted.**

    Parameters
    ----------
    C : float, default=1.0
        SVM regularisation, as in :class:`sklearn.svm.SVC`.
    kernel : {"linear", "poly", "rbf", "sigmoid", "precomputed"} or callable, default="rbf"
        SVM kernel. With ``"precomputed"``, ``fit`` takes the square training kernel
        ``K(X_train, X_train)`` and the other methods ``K(X_test, X_train)``.
    degree : int, default=3
        Degree of the ``"poly"`` kernel.
    gamma : {"scale", "auto"} or float, default="scale"
        Kernel coefficient of ``"rbf"``, ``"poly"`` and ``"sigmoid"``.
    coef0 : float, default=0.0
        Independent term of ``"poly"`` and ``"sigmoid"``.
    decision : {"ovo", "ovr"}, default="ovo"
        Multi-class scheme: one-vs-one (T25's OAO, libsvm's own) or one-vs-rest
        (T25's OAA: one binary SVM per class, :class:`~sklearn.multiclass.OneVsRestClassifier`).
    class_weight : dict, "balanced" or None, default=None
        Class weights of the multi-class problem. ``"balanced"`` weighs each label
        combination (or class) inversely to its frequency. A dict, keyed by class
        label, is only accepted with a 1-D ``y`` and ``decision="ovo"``.
    probability : bool, default=False
        Enable :meth:`predict_proba`: sigmoid (Platt) calibration of the class scores
        on 5-fold out-of-fold predictions, which makes ``fit`` about 6x slower.
        Predictions do not change.
    min_combination_count : int, default=1
        Combinations with fewer training samples are merged into their nearest
        frequent combination by Hamming distance (ties: the more frequent, then the
        first seen); 1 keeps all. Only for a 2-D ``Y``.
    tol : float, default=1e-3
        Stopping tolerance of the SVM solver.
    cache_size : float, default=200
        Kernel cache of the SVM solver, in MB.
    max_iter : int, default=-1
        Solver iteration limit, -1 for none.
    random_state : int, RandomState instance or None, default=None
        Seeds the fold split of the calibration (``probability=True`` only).
    precompute_kernel : bool or "auto", default="auto"
        Compute the training kernel matrix once with BLAS and fit libsvm on it,
        instead of letting libsvm recompute kernel rows for each of the
        ``n_combinations * (n_combinations - 1) / 2`` one-vs-one problems: about 1.7x
        faster. BLAS rounds differently from libsvm, so the solver stops at a
        slightly different point (decision values agree to about ``tol``); a
        prediction can only change on a near-tie. False reproduces ``SVC`` exactly.
        Costs ``8 * n_samples**2`` bytes, computed in row chunks into that one
        matrix. "auto" precomputes when the kernel takes at most a quarter of the
        physical memory (about 28,000 samples with 24 GiB, 20,000 with 12 GiB): at
        HPA 2018's 24,853 training rows this makes the fit several times faster than
        libsvm's own kernel rows, which its ``cache_size`` cannot hold. True is
        refused before fitting when the kernel exceeds half of the physical memory.
        Only for string kernels other than "precomputed", on dense ``X``.

    Attributes
    ----------
    estimator_ : SVC or OneVsRestClassifier
        The fitted SVM; its classes are combination indices (2-D ``Y``) or the
        classes of ``y`` (1-D).
    combinations_ : ndarray of shape (n_combinations, n_labels), dtype uint8, or None
        Label combinations kept after merging, in order of first appearance; an
        all-zero row (no label) is a combination like any other. None for a 1-D ``y``.
    combination_counts_ : ndarray of shape (n_combinations,) or None
        Training samples per combination, merged samples included.
    classes_ : list of ndarray or ndarray
        ``[array([0, 1])] * n_labels`` for a 2-D ``Y`` (scikit-learn's multi-label
        convention); the sorted classes for a 1-D ``y``.
    X_fit_ : ndarray of shape (n_samples, n_features) or None
        Training samples, kept to compute test kernels when the kernel was
        precomputed (``estimator_`` is then fitted on the kernel matrix); else None.
    gamma_ : float
        The kernel coefficient in use (``gamma="scale"`` and ``"auto"`` resolved);
        only set for string kernels other than "precomputed".
    platt_coef_, platt_intercept_ : ndarray of shape (n_classes,)
        Sigmoid calibration of each class score (``probability=True`` only).
    n_features_in_ : int
        Number of features (training samples with a precomputed kernel).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen in :meth:`fit`, when ``X`` has string column names.

    See Also
    --------
    LabelPowerset : The same over any classifier.
    skmultilearn.problem_transform.LabelPowerset : ``LabelPowerset(SVC())`` there
        gives identical predictions to ``LabelPowersetSVM()`` here, in sparse form.

    Notes
    -----
    Relation to scikit-multilearn: ``LabelPowersetSVM()`` is
    ``skmultilearn.problem_transform.LabelPowerset(SVC())`` re-implemented natively:
    combinations are numbered in the same order (first appearance), so one-vs-one
    vote ties break the same way and predictions are identical (protloc's tests check
    this; with ``precompute_kernel=False`` even the SVM computations are the same).

    ``SVC(probability=True)`` is deprecated in scikit-learn 1.9, and
    ``CalibratedClassifierCV`` cannot calibrate classes missing from a training fold,
    which rare combinations always are; hence the calibration of its own.

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.multilabel import LabelPowersetSVM
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [2.1]])
    >>> Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [1, 1]])
    >>> LabelPowersetSVM(C=10).fit(X, Y).predict([[0.05], [2.05]])
    array([[1, 0],
           [1, 1]])

    With a precomputed kernel:

    >>> K = X @ X.T
    >>> clf = LabelPowersetSVM(kernel="precomputed", C=10).fit(K, Y)
    >>> clf.predict(np.array([[0.05], [2.05]]) @ X.T).shape
    (2, 2)
    """

    _parameter_constraints: ClassVar[dict] = {
        "C": [Interval(Real, 0.0, None, closed="neither")],
        "kernel": [StrOptions({"linear", "poly", "rbf", "sigmoid", "precomputed"}), callable],
        "degree": [Interval(Integral, 0, None, closed="left")],
        "gamma": [StrOptions({"scale", "auto"}), Interval(Real, 0.0, None, closed="left")],
        "coef0": [Interval(Real, None, None, closed="neither")],
        "decision": [StrOptions({"ovo", "ovr"})],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "probability": ["boolean"],
        "min_combination_count": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="neither")],
        "cache_size": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, -1, None, closed="left")],
        "random_state": ["random_state"],
        "precompute_kernel": ["boolean", StrOptions({"auto"})],
    }

    def __init__(
        self,
        *,
        C=1.0,
        kernel="rbf",
        degree=3,
        gamma="scale",
        coef0=0.0,
        decision="ovo",
        class_weight=None,
        probability=False,
        min_combination_count=1,
        tol=1e-3,
        cache_size=200,
        max_iter=-1,
        random_state=None,
        precompute_kernel="auto",
    ):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.decision = decision
        self.class_weight = class_weight
        self.probability = probability
        self.min_combination_count = min_combination_count
        self.tol = tol
        self.cache_size = cache_size
        self.max_iter = max_iter
        self.random_state = random_state
        self.precompute_kernel = precompute_kernel

    def _fit_kernel(self, X):
        """Decide whether to precompute the kernel; return what the SVM is fitted on."""
        self.X_fit_ = None
        if self.kernel == "precomputed" or callable(self.kernel) or sparse.issparse(X):
            return X
        if self.gamma == "scale":
            variance = X.var()
            self.gamma_ = 1.0 / (X.shape[1] * variance) if variance != 0 else 1.0
        else:
            self.gamma_ = 1.0 / X.shape[1] if self.gamma == "auto" else float(self.gamma)
        precompute = self.precompute_kernel
        if precompute == "auto":
            # Half of what a fit may use (memory_limit: half the physical memory), so
            # the data, libsvm and the test kernel's chunks keep the other half.
            precompute = _kernel_bytes(X.shape[0]) <= memory_limit() / 2
        if not precompute:
            return X
        _check_kernel_memory(X.shape[0])
        self.X_fit_ = X
        return self._model_input(X)

    def _kernel(self, A, B):
        return pairwise_kernels(
            A,
            B,
            metric=self.kernel,
            filter_params=True,
            gamma=self.gamma_,
            degree=self.degree,
            coef0=self.coef0,
        )

    def _model_input(self, X):
        if self.X_fit_ is None:
            return X
        # Row chunks written into one array: pairwise_kernels on all rows at once would
        # hold a second (n, n) temporary (its distances or products) beside the kernel.
        rows = max(1, _KERNEL_CHUNK_BYTES // (8 * self.X_fit_.shape[0]))
        K = np.empty((X.shape[0], self.X_fit_.shape[0]))
        for batch in gen_batches(len(X), rows):
            K[batch] = self._kernel(X[batch], self.X_fit_)
        return K

    def _check_n_classes(self, target, multilabel):
        if len(np.unique(target)) < 2:
            what = "label combinations" if multilabel else "classes"
            raise ValueError(
                f"The number of classes has to be greater than one: the training y holds "
                f"1 class (one of its {what}), so there is nothing for an SVM to separate."
            )

    def _make_estimator(self, multilabel):
        class_weight = self.class_weight
        if isinstance(class_weight, dict) and (multilabel or self.decision == "ovr"):
            raise ValueError(
                "A dict class_weight is keyed by class label, so LabelPowersetSVM accepts "
                "it only with a 1-D y and decision='ovo'; use class_weight='balanced' "
                "for a label matrix Y or with decision='ovr'."
            )
        svc = SVC(
            C=self.C,
            kernel=self.kernel,
            degree=self.degree,
            gamma=self.gamma,
            coef0=self.coef0,
            class_weight=class_weight,
            tol=self.tol,
            cache_size=self.cache_size,
            max_iter=self.max_iter,
        )
        if self.X_fit_ is not None:
            svc.set_params(kernel="precomputed")
        if self.decision == "ovr":
            return OneVsRestClassifier(svc)
        return svc

    def _check_X(self, X, reset=False):
        precomputed = self.kernel == "precomputed"
        try:
            X = validate_data(
                self, X, accept_sparse="csr", dtype=np.float64, order="C", reset=reset
            )
        except ValueError as error:
            if precomputed and not reset and "features" in str(error):
                raise ValueError(
                    f"{error} With kernel='precomputed', pass the kernel between the "
                    f"samples and the {self.n_features_in_} training samples, of shape "
                    f"(n_samples, {self.n_features_in_})."
                ) from error
            raise
        if precomputed and reset and X.shape[0] != X.shape[1]:
            raise ValueError(
                "kernel='precomputed' needs the square training kernel K(X_train, X_train) "
                f"in fit; got a matrix of shape {X.shape}."
            )
        return X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the SVM on label combinations (2-D ``Y``) or classes (1-D ``y``).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples, or the (n_samples, n_samples) training kernel when
            ``kernel="precomputed"``.
        y : array-like of shape (n_samples, n_labels) or (n_samples,)
            0/1 label matrix, or multi-class labels.

        Returns
        -------
        self : LabelPowersetSVM
            The fitted estimator.
        """
        X = self._check_X(X, reset=True)
        y, multilabel = check_target(y, estimator_name=type(self).__name__)
        X = self._fit_kernel(X)
        target = self._fit_target(X, y, multilabel)
        estimators = getattr(self.estimator_, "estimators_", [self.estimator_])
        self.n_iter_ = np.concatenate([np.atleast_1d(e.n_iter_) for e in estimators])
        if self.probability:
            self._fit_calibration(X, target, multilabel)
        return self

    def _fit_calibration(self, X, target, multilabel):
        if multilabel:
            codes, n_classes = target, len(self.combinations_)
        else:
            codes = np.searchsorted(self.classes_, target)
            n_classes = len(self.classes_)
        oof = out_of_fold_scores(
            lambda: self._make_estimator(multilabel),
            X,
            codes,
            n_classes,
            pairwise=self.kernel == "precomputed" or self.X_fit_ is not None,
            random_state=self.random_state,
        )
        self.platt_coef_, self.platt_intercept_ = fit_platt(oof, codes, n_classes)

    @available_if(lambda self: self.probability)
    def predict_proba(self, X):
        """Per-label marginal probabilities (2-D ``Y``) or class probabilities (1-D ``y``).

        The probability of label ``j`` is the summed probability of the combinations
        that hold ``j``. Needs ``probability=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples (test-vs-training kernel with ``kernel="precomputed"``).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels) or (n_samples, n_classes)
            Probabilities.
        """
        check_is_fitted(self)
        X = self._model_input(self._check_X(X))
        n_classes = len(self.combinations_ if self.combinations_ is not None else self.classes_)
        scores = ovr_scores(self.estimator_, X, n_classes)
        proba = platt_proba(scores, self.platt_coef_, self.platt_intercept_)
        return self._marginals(proba)

    def decision_function(self, X):
        """Per-label margins (2-D ``Y``) or the SVM's class scores (1-D ``y``).

        The margin of label ``j`` is the best combination score among combinations
        holding ``j`` minus the best among those lacking it, so it is positive
        exactly for the labels of the top-scoring combination. Combination scores are
        SVC's one-vs-rest shaped scores (votes plus confidence).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples (test-vs-training kernel with ``kernel="precomputed"``).

        Returns
        -------
        scores : ndarray of shape (n_samples, n_labels), (n_samples, n_classes) or (n_samples,)
            Per-label margins, or SVC's scores for a 1-D ``y``.
        """
        return self._decision_function(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        tags.input_tags.pairwise = self.kernel == "precomputed"
        tags.input_tags.sparse = self.kernel != "precomputed"
        return tags
