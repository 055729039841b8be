import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from protloc.multilabel import LabelPowerset, LabelPowersetSVM
from protloc.multilabel._powerset import encode_combinations


@pytest.fixture(scope="module")
def data():
    X, Y = make_multilabel_classification(
        n_samples=120, n_features=8, n_classes=4, n_labels=2, random_state=0
    )
    return StandardScaler().fit_transform(X), Y


def test_combinations_numbered_by_first_appearance():
    Y = np.array([[0, 1], [1, 1], [0, 1], [0, 0], [1, 1]])
    codes, combos, counts = encode_combinations(Y)
    assert codes.tolist() == [0, 1, 0, 2, 1]
    assert combos.tolist() == [[0, 1], [1, 1], [0, 0]]
    assert combos.dtype == np.uint8
    assert counts.tolist() == [2, 2, 1]


def test_rare_combination_merged_into_nearest_then_more_frequent():
    # [1,1,1] is at distance 1 from both [1,1,0] (2 samples) and [0,1,1] (3 samples):
    # the tie goes to the more frequent; [0,0,1] is nearest to [0,1,1] alone.
    Y = np.array([[1, 1, 0]] * 2 + [[0, 1, 1]] * 3 + [[1, 1, 1]] + [[0, 0, 0]] * 2 + [[1, 0, 0]])
    codes, combos, counts = encode_combinations(Y, min_combination_count=2)
    assert combos.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert combos[codes[5]].tolist() == [0, 1, 1]
    # [1,0,0] is at distance 1 from [1,1,0] and from [0,0,0], both with 2 samples:
    # the one seen first wins
    assert combos[codes[8]].tolist() == [1, 1, 0]
    assert counts.tolist() == [3, 4, 2]


def test_merging_needs_one_frequent_combination():
    Y = np.array([[1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="lower min_combination_count"):
        encode_combinations(Y, min_combination_count=2)


def test_min_combination_count_shrinks_the_problem(data):
    X, Y = data
    full = LabelPowersetSVM().fit(X, Y)
    merged = LabelPowersetSVM(min_combination_count=5).fit(X, Y)
    assert len(merged.combinations_) < len(full.combinations_)
    assert merged.combination_counts_.min() >= 5
    assert merged.combination_counts_.sum() == len(Y)
    predicted = {tuple(row) for row in merged.predict(X)}
    assert predicted <= {tuple(row) for row in merged.combinations_}


def test_unseen_combination_is_never_predicted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    Y = np.array([[1, 0], [0, 1], [0, 0]] * 30)
    X[Y[:, 0] == 1, 0] += 3
    X[Y[:, 1] == 1, 1] += 3
    clf = LabelPowersetSVM().fit(X, Y)
    # a point that looks like both labels still gets one seen combination
    both = clf.predict([[3.0, 3.0, 0.0]])
    assert both.tolist() != [[1, 1]]
    assert {tuple(r) for r in clf.predict(rng.normal(size=(200, 3)) * 3)} <= {
        (1, 0),
        (0, 1),
        (0, 0),
    }


def test_empty_label_set_is_a_combination():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    Y = np.zeros((60, 2), dtype=int)
    Y[X[:, 0] > 0.5, 0] = 1
    Y[X[:, 1] > 0.5, 1] = 1
    clf = LabelPowersetSVM(C=10).fit(X, Y)
    assert [0, 0] in clf.combinations_.tolist()
    assert clf.predict([[-2.0, -2.0]]).tolist() == [[0, 0]]


def test_predict_is_dense_int_with_per_label_classes(data):
    X, Y = data
    clf = LabelPowersetSVM().fit(X, Y)
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == Y.shape
    assert pred.dtype.kind == "i"
    assert len(clf.classes_) == Y.shape[1]
    assert all(c.tolist() == [0, 1] for c in clf.classes_)
    assert clf.n_features_in_ == X.shape[1]
    assert clf.n_iter_.ndim == 1


def test_predict_proba_sums_combination_probabilities(data):
    X, Y = data
    lp = LabelPowerset(LogisticRegression(max_iter=1000)).fit(X, Y)
    combo_proba = lp.estimator_.predict_proba(X)
    assert np.allclose(lp.predict_proba(X), combo_proba @ lp.combinations_)


def test_decision_function_is_positive_for_predicted_labels(data):
    X, Y = data
    lp = LabelPowerset(LogisticRegression(max_iter=1000)).fit(X, Y)
    scores = lp.decision_function(X)
    assert scores.shape == Y.shape
    np.testing.assert_array_equal(scores > 0, lp.predict(X) == 1)


def test_svm_probability_gives_marginals_and_keeps_predictions(data):
    X, Y = data
    plain = LabelPowersetSVM().fit(X, Y)
    calibrated = LabelPowersetSVM(probability=True, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(plain.predict(X), calibrated.predict(X))
    proba = calibrated.predict_proba(X)
    assert proba.shape == Y.shape
    assert np.all((proba > 0) & (proba < 1))
    # marginals rank the true labels above the absent ones on training data
    assert proba[Y == 1].mean() > proba[Y == 0].mean() + 0.2
    assert not hasattr(plain, "predict_proba")


def test_1d_y_behaves_like_svc():
    X, y = make_classification(
        n_samples=90, n_features=5, n_informative=3, n_classes=3, random_state=0
    )
    labels = np.array(["nucleus", "cytosol", "membrane"])[y]
    # without the precomputed kernel the SVM arithmetic is SVC's own, so equality is exact
    ours = LabelPowersetSVM(C=2.0, precompute_kernel=False).fit(X, labels)
    svc = SVC(C=2.0).fit(X, labels)
    assert ours.combinations_ is None
    np.testing.assert_array_equal(ours.classes_, svc.classes_)
    np.testing.assert_array_equal(ours.predict(X), svc.predict(X))
    np.testing.assert_allclose(ours.decision_function(X), svc.decision_function(X))
    proba = LabelPowersetSVM(probability=True, random_state=0).fit(X, labels).predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_ovr_is_one_binary_svm_per_class():
    X, y = make_classification(
        n_samples=90, n_features=5, n_informative=3, n_classes=3, random_state=1
    )
    ours = LabelPowersetSVM(decision="ovr").fit(X, y)
    reference = OneVsRestClassifier(SVC()).fit(X, y)
    assert len(ours.estimator_.estimators_) == 3
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_precomputed_kernel_matches_linear(data):
    X, Y = data
    train, test = slice(0, 90), slice(90, None)
    linear = LabelPowersetSVM(kernel="linear", C=0.5).fit(X[train], Y[train])
    pre = LabelPowersetSVM(kernel="precomputed", C=0.5).fit(X[train] @ X[train].T, Y[train])
    np.testing.assert_array_equal(pre.predict(X[test] @ X[train].T), linear.predict(X[test]))


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid"])
def test_precomputing_the_kernel_keeps_predictions(data, kernel):
    X, Y = data
    fast = LabelPowersetSVM(kernel=kernel, precompute_kernel=True).fit(X[:90], Y[:90])
    slow = LabelPowersetSVM(kernel=kernel, precompute_kernel=False).fit(X[:90], Y[:90])
    assert fast.X_fit_ is not None and slow.X_fit_ is None
    assert fast.estimator_.kernel == "precomputed" and slow.estimator_.kernel == kernel
    np.testing.assert_array_equal(fast.predict(X[90:]), slow.predict(X[90:]))
    # the same optimum, reached to the solver's tolerance (tol=1e-3) from other rounding
    np.testing.assert_allclose(
        fast.decision_function(X[90:]), slow.decision_function(X[90:]), atol=1e-3
    )


def test_cross_validate_slices_a_precomputed_kernel_square(data):
    X, Y = data
    cv = KFold(3, shuffle=True, random_state=0)
    linear = cross_validate(LabelPowersetSVM(kernel="linear"), X, Y, cv=cv, scoring="f1_macro")
    pre = cross_validate(
        LabelPowersetSVM(kernel="precomputed"), X @ X.T, Y, cv=cv, scoring="f1_macro"
    )
    np.testing.assert_allclose(pre["test_score"], linear["test_score"])


def test_pipeline_clone_pickle(data):
    X, Y = data
    pipe = make_pipeline(StandardScaler(), LabelPowersetSVM(C=3.0, class_weight="balanced"))
    pipe.fit(X, Y)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict(X), pipe.predict(X))
    cloned = clone(pipe)
    assert cloned.get_params()["labelpowersetsvm__C"] == 3.0
    assert not hasattr(cloned[-1], "combinations_")


@pytest.mark.parametrize(
    "estimator, grid",
    [
        (LabelPowersetSVM(), {"C": [0.1, 10.0]}),
        (LabelPowerset(SVC()), {"estimator__C": [0.1, 10.0]}),
    ],
)
def test_grid_search_over_c_with_f1_macro(data, estimator, grid):
    X, Y = data
    search = GridSearchCV(estimator, grid, scoring="f1_macro", cv=3).fit(X, Y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores.max() > 0.3
    assert search.predict(X).shape == Y.shape


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_labels", [3, 6])
def test_identical_to_skmultilearn_label_powerset(seed, n_labels):
    from skmultilearn.problem_transform import LabelPowerset as SkmlLabelPowerset

    X, Y = make_multilabel_classification(
        n_samples=150, n_features=10, n_classes=n_labels, n_labels=2, random_state=seed
    )
    X_train, Y_train, X_test = X[:100], Y[:100], X[100:]
    ours = LabelPowersetSVM().fit(X_train, Y_train).predict(X_test)
    with warnings.catch_warnings():
        # skmultilearn hands SVC one class per combination, and scikit-learn warns that
        # that many classes may be a regression target
        warnings.filterwarnings(
            "ignore", message="The number of unique classes", category=UserWarning
        )
        theirs = SkmlLabelPowerset(SVC()).fit(X_train, Y_train).predict(X_test)
    np.testing.assert_array_equal(ours, theirs.toarray())


@pytest.mark.parametrize(
    "Y, match",
    [
        (np.array([[0, 2], [1, 0], [0, 1], [1, 1]]), "0/1 label indicator"),
        (np.array([["a", "b"], ["b", "a"], ["a", "a"], ["b", "b"]]), "0/1 label indicator"),
        (np.array([[0.5, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "continuous"),
        (np.array([[0, np.nan], [1, 0], [0, 1], [1, 1]]), "NaN"),
        (np.array([[0], [1], [2], [1]]), "pass a 1-D y"),
        (np.zeros((4, 0)), "at least one label"),
    ],
)
@pytest.mark.parametrize("estimator", [LabelPowersetSVM(), LabelPowerset(SVC())])
def test_bad_label_matrix(estimator, Y, match):
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match=match):
        estimator.fit(X, Y)


def test_bad_parameters_for_1d_y():
    X, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="min_combination_count"):
        LabelPowersetSVM(min_combination_count=2).fit(X, y)
    with pytest.raises(ValueError, match="dict class_weight"):
        LabelPowersetSVM(class_weight={0: 2.0}).fit(X, np.eye(6, 2, dtype=int))
    with pytest.raises(ValueError, match="dict class_weight"):
        LabelPowersetSVM(class_weight={0: 2.0}, decision="ovr").fit(X, y)
    with pytest.raises(ValueError, match="greater than one"):
        LabelPowersetSVM().fit(X, np.ones((6, 2), dtype=int))


def test_predict_checks_the_feature_count(data):
    X, Y = data
    clf = LabelPowersetSVM().fit(X, Y)
    with pytest.raises(ValueError, match="expecting 8 features"):
        clf.predict(X[:, :5])


def test_precomputed_kernel_shapes_are_checked(data):
    X, Y = data
    with pytest.raises(ValueError, match="square training kernel"):
        LabelPowersetSVM(kernel="precomputed").fit(X[:50] @ X[:40].T, Y[:50])
    clf = LabelPowersetSVM(kernel="precomputed").fit(X[:50] @ X[:50].T, Y[:50])
    with pytest.raises(ValueError, match=r"the 50 training samples, of shape \(n_samples, 50\)"):
        clf.predict(X[50:] @ X[:40].T)
    with pytest.raises(ValueError, match="different numbers of samples"):
        LabelPowersetSVM().fit(X, Y[:-1])
