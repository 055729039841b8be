"""Meta-estimator plumbing shared by the multi-label estimators.

The label checks themselves live in :mod:`protloc._validation`, with every other input
check; they are imported here for the modules of this package.
"""

from sklearn.utils import get_tags
from sklearn.utils.validation import validate_data

from protloc._validation import check_label_matrix, check_n_samples, check_target

__all__ = [
    "check_label_matrix",
    "check_meta_X",
    "check_n_samples",
    "check_target",
    "multilabel_meta_tags",
]


def check_meta_X(estimator, X, *, reset):
    """Validate ``X`` lightly for a meta-estimator.

    The wrapped estimator validates ``X`` fully; this sets (``reset=True``) or checks
    ``n_features_in_`` and ``feature_names_in_``.
    """
    return validate_data(
        estimator, X, accept_sparse=True, ensure_all_finite=False, dtype=None, reset=reset
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
