"""Instances of protloc.multilabel estimators for scikit-learn's estimator checks.

Gathered by ``tests/test_common.py``; each expected failure states its reason.

BinaryRelevance and ThresholdTuner only take a 2-D 0/1 label matrix, as
MultiOutputClassifier does; scikit-learn skips MultiOutputClassifier from these checks
altogether (``_skip_test``), because many of them fit a 1-D target or expect 1-D
predictions. Here the checks run, and the ones built on that assumption are listed.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from protloc.multilabel import BinaryRelevance, LabelPowerset, LabelPowersetSVM, ThresholdTuner

_MULTIOUTPUT = (
    "classes_ follows MultiOutputClassifier's per-label list convention, which the check "
    "indexes as a single array; and a label powerset predicts its best combination, not "
    "the rounding of its per-label marginals"
)
_POWERSET = {
    "check_supervised_y_2d": (
        "a 2-D y must be a 0/1 label matrix, so a column of multi-class labels is rejected "
        "with an error instead of being raveled with a DataConversionWarning"
    ),
    "check_classifier_multioutput": _MULTIOUTPUT,
}
_OVR = {
    **_POWERSET,
    "check_class_weight_classifiers": (
        "a dict class_weight is keyed by class label, which the one-vs-rest binary SVMs "
        "cannot use; decision='ovr' raises for it and accepts 'balanced'"
    ),
}

_ONE_D = "the check fits a 1-D y; the estimator needs a 2-D 0/1 label matrix and says so"
_ONE_TWO = (
    "the check's target, made binary by the multi_class=False tag, holds the values 1 and "
    "2; the estimator needs 0/1 labels and says so"
)
_LABEL_MATRIX_ONLY = {
    "check_estimators_dtypes": _ONE_TWO,
    "check_classifier_data_not_an_array": _ONE_TWO,
    "check_fit2d_1feature": _ONE_TWO,
    "check_classifiers_classes": _ONE_D,
    "check_classifiers_train": "the check expects 1-D predictions of shape (n_samples,)",
    "check_classifiers_train(readonly_memmap=True)": "the check expects 1-D predictions",
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)": (
        "the check expects 1-D predictions"
    ),
    "check_classifier_not_supporting_multiclass": (
        "the check fits a 1-D multi-class y and wants the message of a binary classifier; "
        "the estimator rejects any 1-D y, asking for a 2-D 0/1 label matrix"
    ),
    "check_classifier_multioutput": _MULTIOUTPUT,
}
_WITH_PROBA = {
    **_LABEL_MATRIX_ONLY,
    "check_decision_proba_consistency": _ONE_D,
    "check_estimator_sparse_array": (
        "the check expects predict_proba of shape (n_samples, 2) for one binary target; "
        "multi-label predict_proba has shape (n_samples, n_labels)"
    ),
    "check_estimator_sparse_matrix": (
        "the check expects predict_proba of shape (n_samples, 2) for one binary target; "
        "multi-label predict_proba has shape (n_samples, n_labels)"
    ),
}

ESTIMATOR_CHECKS = [
    (LabelPowersetSVM(), _POWERSET),
    (LabelPowersetSVM(probability=True, random_state=0), _POWERSET),
    (LabelPowersetSVM(kernel="precomputed"), _POWERSET),
    (LabelPowersetSVM(decision="ovr", class_weight="balanced"), _OVR),
    (LabelPowerset(LogisticRegression(max_iter=1000)), _POWERSET),
    (BinaryRelevance(LogisticRegression(max_iter=1000)), _WITH_PROBA),
    (BinaryRelevance(SVC(), thresholds=0.0), _LABEL_MATRIX_ONLY),
    (ThresholdTuner(BinaryRelevance(LogisticRegression(max_iter=1000)), cv=3), _WITH_PROBA),
]
