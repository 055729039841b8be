"""scikit-learn estimator checks for the segmenters and RegionCropper (gathered by tests/test_common.py).

The estimators keep the default ``two_d_array`` input tag, so that sklearn runs its
API checks (cloning, get/set_params, repr, no work in ``__init__``, unfitted errors,
sparse rejection, mixin order...). Every check that fits on sklearn's small 2-D
tabular arrays fails by design: the segmenter takes image batches
(n, rows, cols, channels) and the cropper takes a SegmentedImages. Their real
behaviour on those inputs (fit/transform, pickling, sample-subset invariance,
idempotence) is tested in tests/segmentation/ and tests/test_regions.py.
"""

from protloc.regions import RegionCropper
from protloc.segmentation import CellposeSegmenter, WatershedSegmenter

# Checks that call fit (or transform) with 2-D tabular X.
_TABULAR_CHECKS = (
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_estimators_pickle(readonly_memmap=True)",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_general(readonly_memmap=True)",
)

_SEGMENTER_REASON = (
    "fits on 2-D tabular X; the segmenters take image batches (n, rows, cols, "
    "channels) and reject 2-D input with a ValueError naming that shape (their real "
    "fit/transform, pickling and subset behaviour are in tests/segmentation/)"
)
_CROPPER_REASON = (
    "fits on 2-D tabular X; RegionCropper takes a SegmentedImages (CellposeSegmenter's "
    "output) and rejects arrays with a TypeError saying so (its real behaviour is in "
    "tests/test_regions.py)"
)

ESTIMATOR_CHECKS = [
    (
        # No model is loaded: every failing check stops at input validation in fit.
        CellposeSegmenter(progress=False),
        dict.fromkeys(_TABULAR_CHECKS, _SEGMENTER_REASON),
    ),
    (WatershedSegmenter(progress=False), dict.fromkeys(_TABULAR_CHECKS, _SEGMENTER_REASON)),
    (
        RegionCropper(crop_size=16),
        {
            **dict.fromkeys(_TABULAR_CHECKS, _CROPPER_REASON),
            "check_fit1d": (
                "expects a ValueError for 1-D X; any input that is not a SegmentedImages "
                "is a TypeError (wrong type, not a wrong value)"
            ),
        },
    ),
]
