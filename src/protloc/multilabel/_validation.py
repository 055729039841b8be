"""Checks of label targets shared by the multi-label estimators."""

import numpy as np
from scipy import sparse
from sklearn.utils import check_array, get_tags
from sklearn.utils.validation import validate_data


def check_label_matrix(Y, *, estimator_name):
    """Return ``Y`` as a dense ``uint8`` 0/1 matrix of shape (n_samples, n_labels).

    Raises a ``ValueError`` naming the problem and the fix when ``Y`` is 1-D, has no
    label column, or holds values other than 0 and 1. A sparse ``Y`` (as
    scikit-multilearn users pass it) is made dense.
    """
    Y = _as_array(Y, estimator_name)
    if Y.ndim != 2:
        raise ValueError(
            f"{estimator_name} needs a 2-D label indicator matrix Y of shape "
            f"(n_samples, n_labels); got an array of shape {Y.shape}. For a single-label "
            "multi-class target use LabelPowersetSVM or the base estimator directly; for "
            "one binary label pass y.reshape(-1, 1)."
        )
    return _as_indicator(Y, estimator_name=estimator_name)


def _as_array(y, estimator_name):
    if y is None:
        raise ValueError(f"{estimator_name} requires y to be passed, but the target y is None.")
    if sparse.issparse(y):
        y = y.toarray()
    y = check_array(y, ensure_2d=False, dtype=None, ensure_min_features=0, input_name="y")
    if y.dtype == object and y.ndim == 2:
        try:
            # 0/1 labels that arrive as Python objects, as from a pandas object column
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise ValueError(
            f"Unknown label type: {estimator_name} got continuous target values; it is a "
            "classifier and needs class labels (or a 0/1 label matrix)."
        )
    return y


def _as_indicator(Y, *, estimator_name):
    if Y.shape[1] == 0:
        raise ValueError(
            f"{estimator_name} needs at least one label column in Y; got shape {Y.shape}."
        )
    if Y.dtype == bool:
        return Y.astype(np.uint8)
    if Y.dtype.kind not in "biuf" or not np.isin(Y, (0, 1)).all():
        found = np.unique(Y)[:5] if Y.dtype.kind in "biuf" else f"dtype {Y.dtype}"
        raise ValueError(
            f"Unknown label type: {estimator_name} needs a 0/1 label indicator matrix Y (1 = the sample has "
            f"the label); found values {found}. Binarise Y, for instance with "
            "sklearn.preprocessing.MultiLabelBinarizer; for a single-label multi-class "
            "target pass a 1-D y to an estimator that accepts one (LabelPowersetSVM)."
        )
    return Y.astype(np.uint8)


def check_target(y, *, estimator_name):
    """Return ``(y, is_multilabel)``: a 1-D multi-class ``y`` as given, a 2-D ``y`` as 0/1.

    A 2-D ``y`` must be a 0/1 indicator matrix, even with a single column: a column of
    class labels is rejected rather than silently raveled, so a multi-label and a
    multi-class problem are never mistaken for each other.
    """
    y = _as_array(y, estimator_name)
    if y.ndim == 1:
        return y, False
    if y.ndim != 2:
        raise ValueError(
            f"{estimator_name} needs a 1-D multi-class y or a 2-D 0/1 label matrix Y; "
            f"got an array of shape {y.shape}."
        )
    return _as_indicator(y, estimator_name=estimator_name), True


def check_meta_X(estimator, X, *, reset):
    """Validate ``X`` lightly for a meta-estimator.

    The wrapped estimator validates ``X`` fully; this sets (``reset=True``) or checks
    ``n_features_in_`` and ``feature_names_in_``.
    """
    return validate_data(
        estimator, X, accept_sparse=True, ensure_all_finite=False, dtype=None, reset=reset
    )


def check_n_samples(X, y):
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and Y have different numbers of samples: {X.shape[0]} and {y.shape[0]}."
        )


def multilabel_meta_tags(tags, base_estimator):
    """Tag a multi-label meta-estimator, taking input tags from ``base_estimator``."""
    base = get_tags(base_estimator)
    tags.target_tags.multi_output = True
    tags.classifier_tags.multi_label = True
    tags.input_tags.pairwise = base.input_tags.pairwise
    tags.input_tags.sparse = base.input_tags.sparse
    tags.input_tags.allow_nan = base.input_tags.allow_nan
    return tags
