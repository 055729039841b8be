"""protloc.nets estimators for scikit-learn's estimator checks (tests/test_common.py).

The checks feed tabular ``(n_samples, n_features)`` arrays; these estimators take
image batches ``(n, rows, cols, channels)`` and refuse 2-d X with a ValueError naming
the expected shape. Every check that needs a successful fit on tabular X therefore
fails; API checks (cloning, parameters, repr, unfitted errors, 1-d X, sparse and
complex X, y validation) run and pass. Training, pickling, determinism and
pipelines are tested on images in tests/nets/.
"""

from protloc.nets import CNNClassifier, FCNClassifier

_TABULAR = (
    "fits on 2-d tabular X, but image estimators need (n, rows, cols, channels) images; "
    "the same behaviour is tested on images in tests/nets/"
)

EXPECTED_FAILED_CHECKS = {
    name: _TABULAR
    for name in (
        "check_classifier_data_not_an_array",
        "check_classifiers_classes",
        "check_classifiers_multilabel_output_format_decision_function",
        "check_classifiers_multilabel_output_format_predict",
        "check_classifiers_multilabel_output_format_predict_proba",
        "check_classifiers_multilabel_representation_invariance",
        "check_classifiers_train",
        "check_decision_proba_consistency",
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_estimators_dtypes",
        "check_estimators_fit_returns_self",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit2d_1feature",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
        "check_supervised_y_2d",
    )
}
EXPECTED_FAILED_CHECKS.update(
    {
        "check_class_weight_classifiers": (
            "fits on 2-d tabular X and passes a class_weight dict; only 'balanced' or None "
            "is supported"
        ),
        "check_dtype_object": (
            "object X is refused with a TypeError naming the dtype, not the tabular "
            "string-conversion message the check looks for"
        ),
        "check_estimators_empty_data_messages": (
            "2-d empty X is refused for its shape before the check's expected '0 sample(s)' message"
        ),
        "check_estimators_nan_inf": (
            "NaN is put in 2-d X, which is refused for its shape first; NaN in images is "
            "tested in tests/nets/test_nets_api.py"
        ),
        "check_n_features_in": (
            "images have no n_features_in_; the fitted channel count is n_channels_in_"
        ),
        "check_n_features_in_after_fitting": (
            "images have no n_features_in_; a channel count differing from fit raises "
            "(tested in tests/nets/test_nets_api.py)"
        ),
    }
)

_SMALL = dict(image_size=8, width=2, depth=2, epochs=1, batch_size=8, progress=False)

ESTIMATOR_CHECKS = [
    (CNNClassifier(**_SMALL, random_state=0), EXPECTED_FAILED_CHECKS),
    (FCNClassifier(**_SMALL, random_state=0), EXPECTED_FAILED_CHECKS),
]
