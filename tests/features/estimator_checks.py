"""Instances of protloc.features estimators for scikit-learn's estimator checks.

Gathered by ``tests/test_common.py``; each expected failure states its reason.

CNNFeatureExtractor takes a batch of images ``(n, rows, cols, channels)`` (or a lazy
sequence, or cell crops), never a 2-D table, and rejects the checks' tabular data with a
ValueError that says so. Every check that needs a successful fit on a table is therefore
expected to fail; ``tests/features/test_cnn.py`` covers the same contracts (clone,
pickle, pipelines, grid search, idempotent fit, sample-order invariance, NaN, empty
input, unfitted use) on images.
"""

from protloc.features import CNNFeatureExtractor

_TABLE = (
    "the input is an image batch (n, rows, cols, channels); 2-D tabular X is rejected with "
    "a ValueError (the same contract is tested on images in tests/features/test_cnn.py)"
)
_NO_N_FEATURES_IN = (
    "n_features_in_ is not defined for images (documented): channel_names_in_ records the "
    "input layout instead"
)
_NEEDS_TABULAR_FIT = [
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_fit_score_takes_y",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_positive_only_tag_during_fit",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_complex_data",
    "check_estimators_empty_data_messages",
]
_EXPECTED = {name: _TABLE for name in _NEEDS_TABULAR_FIT}
_EXPECTED["check_n_features_in_after_fitting"] = _NO_N_FEATURES_IN
_EXPECTED["check_n_features_in"] = _NO_N_FEATURES_IN

ESTIMATOR_CHECKS = [
    (
        CNNFeatureExtractor(
            "test_efficientnet",
            weights=None,
            image_size=16,
            batch_size=16,
            device="cpu",
            random_state=0,
            progress=False,
        ),
        _EXPECTED,
    ),
]
