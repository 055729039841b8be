"""Tests of protloc.model_selection: multi-label iterative stratification."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier

from protloc.io import read_labels
from protloc.model_selection import (
    MultilabelRepeatedStratifiedKFold,
    MultilabelStratifiedKFold,
    StratificationWarning,
    _greedy_folds,
)

FREQUENCIES = np.array([0.4, 0.25, 0.15, 0.1, 0.08, 0.05, 0.03, 0.025, 0.02])


def imbalanced_labels(n_samples=600, seed=0):
    """Multi-label Y with HPA-like imbalance and correlated labels."""
    rng = np.random.default_rng(seed)
    Y = rng.random((n_samples, FREQUENCIES.size)) < FREQUENCIES
    Y[:, 1] |= Y[:, 0] & (rng.random(n_samples) < 0.2)
    Y[:, 6] |= Y[:, 3] & (rng.random(n_samples) < 0.1)
    return Y.astype(np.int64)


def test_folds(cv, Y):
    n_samples = Y.shape[0]
    folds = np.full(n_samples, -1)
    for j, (train, test) in enumerate(cv.split(np.zeros((n_samples, 1)), Y)):
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == n_samples
        assert (folds[test] == -1).all(), "a sample is in two test folds"
        folds[test] = j
    return folds


# pytest would collect the helper above as a test: keep it a plain function.
test_folds.__test__ = False


def per_fold_positives(Y, folds, n_splits):
    return np.array([Y[folds == j].sum(axis=0) for j in range(n_splits)])


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n_splits", [2, 3, 5, 7])
def test_folds_partition_samples(n_splits, shuffle):
    Y = imbalanced_labels()
    cv = MultilabelStratifiedKFold(n_splits, shuffle=shuffle, random_state=0 if shuffle else None)
    folds = test_folds(cv, Y)
    assert (folds >= 0).all()
    assert cv.get_n_splits() == n_splits
    # Test indices come sorted, as sklearn's splitters give them.
    for _, test in cv.split(np.zeros(len(Y)), Y):
        assert (np.diff(test) > 0).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shuffle", [False, True])
def test_each_label_spread_within_one_of_ideal(shuffle, seed):
    Y = imbalanced_labels(seed=seed)
    n_splits = 5
    cv = MultilabelStratifiedKFold(
        n_splits, shuffle=shuffle, random_state=seed if shuffle else None
    )
    folds = test_folds(cv, Y)
    positives = per_fold_positives(Y, folds, n_splits)
    ideal = Y.sum(axis=0) / n_splits
    # Every label's positives sit in floor/ceil of its ideal share, in every fold.
    assert (np.abs(positives - ideal) < 1).all(), positives
    sizes = np.bincount(folds, minlength=n_splits)
    assert sizes.max() - sizes.min() <= 3, sizes


def test_better_balanced_than_plain_kfold():
    Y = imbalanced_labels()
    n_splits = 5
    ideal = Y.sum(axis=0) / n_splits
    ours = per_fold_positives(Y, test_folds(MultilabelStratifiedKFold(n_splits), Y), n_splits)
    plain = per_fold_positives(
        Y, test_folds(KFold(n_splits, shuffle=True, random_state=0), Y), n_splits
    )
    assert np.abs(ours - ideal).max() < 1 <= np.abs(plain - ideal).max()


def test_all_negative_rows_fill_folds_evenly():
    Y = np.zeros((103, 2), dtype=int)
    Y[:10, 0] = 1
    Y[10:15, 1] = 1
    folds = test_folds(MultilabelStratifiedKFold(5), Y)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    assert (per_fold_positives(Y, folds, 5) == [2, 1]).all()


def test_shuffle_false_is_deterministic():
    Y = imbalanced_labels()
    first = test_folds(MultilabelStratifiedKFold(5), Y)
    again = test_folds(MultilabelStratifiedKFold(5), Y)
    np.testing.assert_array_equal(first, again)


def test_random_state_reproduces_and_shuffle_changes_folds():
    Y = imbalanced_labels()
    unshuffled = test_folds(MultilabelStratifiedKFold(5), Y)
    seeded = MultilabelStratifiedKFold(5, shuffle=True, random_state=3)
    a, b = test_folds(seeded, Y), test_folds(seeded, Y)
    c = test_folds(MultilabelStratifiedKFold(5, shuffle=True, random_state=3), Y)
    other = test_folds(MultilabelStratifiedKFold(5, shuffle=True, random_state=4), Y)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert (a != other).mean() > 0.5
    assert (a != unshuffled).mean() > 0.5


def test_random_state_instance_gives_new_folds_per_call():
    Y = imbalanced_labels()
    cv = MultilabelStratifiedKFold(5, shuffle=True, random_state=np.random.RandomState(0))
    assert (test_folds(cv, Y) != test_folds(cv, Y)).any()


def test_sparse_and_boolean_y_give_same_folds():
    Y = imbalanced_labels()
    cv = MultilabelStratifiedKFold(4)
    dense = test_folds(cv, Y)
    np.testing.assert_array_equal(dense, test_folds(cv, sp.csr_matrix(Y)))
    np.testing.assert_array_equal(dense, test_folds(cv, Y.astype(bool)))
    np.testing.assert_array_equal(dense, test_folds(cv, Y.astype(float)))


def test_warns_naming_labels_with_fewer_positives_than_folds():
    Y = imbalanced_labels(n_samples=200)
    Y[:, 2] = 0
    Y[:3, 2] = 1  # 3 positives < 5 folds
    Y[:, 4] = 0  # no positive at all
    cv = MultilabelStratifiedKFold(5)
    with pytest.warns(StratificationWarning, match=r"n_splits=5.*2 \(3\), 4 \(0\)") as record:
        folds = test_folds(cv, Y)
    assert issubclass(record[0].category, UserWarning)
    # The 3 positives still land in 3 different folds.
    assert np.unique(folds[Y[:, 2] == 1]).size == 3


def test_no_warning_when_every_label_fills_the_folds():
    Y = imbalanced_labels()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test_folds(MultilabelStratifiedKFold(5), Y)


def test_groups_are_ignored_with_a_warning():
    Y = imbalanced_labels(n_samples=50)[:, :4]
    with pytest.warns(UserWarning, match="groups parameter is ignored"):
        list(MultilabelStratifiedKFold(2).split(np.zeros(50), Y, groups=np.arange(50)))


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.array([0, 1] * 10), "StratifiedKFold"),
        (np.full((20, 2), 2), "only 0 and 1"),
        (np.full((20, 2), 0.5), "only 0 and 1"),
        (np.zeros((20, 2, 2)), "3 dimensions"),
        (np.zeros((20, 0)), "at least one label column"),
        (np.array([[0, 1]] * 10 + [["a", "b"]] * 10), "dtype"),
        (None, "needs y"),
    ],
)
def test_invalid_y_raises(y, match):
    with pytest.raises(ValueError, match=match):
        MultilabelStratifiedKFold(2).split(np.zeros((20, 1)), y)
    with pytest.raises(ValueError, match=match):
        MultilabelRepeatedStratifiedKFold(2).split(np.zeros((20, 1)), y)


def test_list_of_label_lists_points_to_multilabelbinarizer():
    y = np.empty(4, dtype=object)
    y[:] = [[0], [1, 2], [0], [2]]
    with pytest.raises(ValueError, match="MultiLabelBinarizer"):
        MultilabelStratifiedKFold(2).split(np.zeros((4, 1)), y)


def test_more_splits_than_samples_raises():
    Y = np.eye(3, dtype=int)
    with pytest.raises(ValueError, match="n_splits=4 greater than the number of samples"):
        list(MultilabelStratifiedKFold(4).split(np.zeros((3, 1)), Y))


def test_inconsistent_lengths_raise():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        list(MultilabelStratifiedKFold(2).split(np.zeros((5, 1)), np.eye(4, dtype=int)))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"n_splits": 1}, ValueError, "at least one train/test split"),
        ({"n_splits": 2.5}, ValueError, "Integral"),
        ({"n_splits": 5, "random_state": 0}, ValueError, "shuffle is False"),
        ({"n_splits": 5, "shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ],
)
def test_invalid_parameters_raise(params, error, match):
    with pytest.raises(error, match=match):
        MultilabelStratifiedKFold(**params)


def test_repr_lists_parameters():
    assert repr(MultilabelStratifiedKFold(3)) == (
        "MultilabelStratifiedKFold(n_splits=3, random_state=None, shuffle=False)"
    )
    assert repr(MultilabelRepeatedStratifiedKFold(random_state=1)) == (
        "MultilabelRepeatedStratifiedKFold(n_repeats=3, n_splits=5, random_state=1)"
    )


@given(
    primary=st.lists(st.integers(0, 15), min_size=2, max_size=6),
    n_picks=st.integers(1, 25),
    step=st.integers(1, 4),
    use_secondary=st.booleans(),
    data=st.data(),
)
@settings(max_examples=150, deadline=None)
def test_greedy_folds_equals_the_sample_by_sample_greedy(
    primary, n_picks, step, use_secondary, data
):
    k = len(primary)
    primary = np.array(primary)
    secondary = np.array(data.draw(st.lists(st.integers(0, 15), min_size=k, max_size=k)))
    capacity = None
    if data.draw(st.booleans()):
        capacity = np.array(data.draw(st.lists(st.integers(0, 10), min_size=k, max_size=k)))
        capacity[0] += max(0, n_picks - capacity.sum())
    got = _greedy_folds(
        primary,
        n_picks,
        None,
        secondary=secondary if use_secondary else None,
        step=step,
        capacity=capacity,
    )
    load, size = primary.copy(), (secondary if use_secondary else np.zeros(k, int)).copy()
    left = np.full(k, n_picks) if capacity is None else capacity.copy()
    expected = []
    for _ in range(n_picks):
        fold = min((j for j in range(k) if left[j] > 0), key=lambda j: (load[j], size[j], j))
        expected.append(fold)
        load[fold] += step
        size[fold] += use_secondary
        left[fold] -= 1
    np.testing.assert_array_equal(got, expected)


@given(
    n_splits=st.integers(2, 6),
    extra_samples=st.integers(0, 40),
    n_labels=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    shuffle=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_any_label_matrix_gives_a_partition_into_non_empty_folds(
    n_splits, extra_samples, n_labels, seed, shuffle
):
    rng = np.random.default_rng(seed)
    n_samples = n_splits + extra_samples
    Y = (rng.random((n_samples, n_labels)) < rng.random(n_labels)).astype(int)
    cv = MultilabelStratifiedKFold(
        n_splits, shuffle=shuffle, random_state=seed if shuffle else None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StratificationWarning)
        folds = test_folds(cv, Y)
    sizes = np.bincount(folds, minlength=n_splits)
    assert (sizes > 0).all()
    assert (folds >= 0).all()


# ----------------------------------------------------------------- repeated splits
def test_repeated_gives_reproducible_distinct_balanced_repeats():
    Y = imbalanced_labels()
    cv = MultilabelRepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0)
    assert cv.get_n_splits() == 15
    splits = list(cv.split(np.zeros(len(Y)), Y))
    assert len(splits) == 15
    again = list(MultilabelRepeatedStratifiedKFold(random_state=0).split(np.zeros(len(Y)), Y))
    for (_, a), (_, b) in zip(splits, again):
        np.testing.assert_array_equal(a, b)
    ideal = Y.sum(axis=0) / 5
    repeats = []
    for r in range(3):
        folds = np.full(len(Y), -1)
        for j, (_, test) in enumerate(splits[5 * r : 5 * r + 5]):
            folds[test] = j
        assert (folds >= 0).all()
        assert (np.abs(per_fold_positives(Y, folds, 5) - ideal) < 1).all()
        repeats.append(folds)
    assert (repeats[0] != repeats[1]).mean() > 0.5
    assert (repeats[1] != repeats[2]).mean() > 0.5


def test_repeated_invalid_parameters_raise():
    with pytest.raises(ValueError, match="greater than 0"):
        MultilabelRepeatedStratifiedKFold(n_repeats=0)
    with pytest.raises(ValueError, match="at least one train/test split"):
        list(MultilabelRepeatedStratifiedKFold(n_splits=1).split(np.zeros(10), np.eye(10)))


# ----------------------------------------------------------------- sklearn integration
def small_problem():
    rng = np.random.default_rng(0)
    Y = imbalanced_labels(n_samples=150)[:, :4]
    X = Y @ rng.normal(size=(4, 6)) + rng.normal(scale=0.8, size=(150, 6))
    return X, Y


def test_works_as_cv_in_cross_validate():
    X, Y = small_problem()
    model = MultiOutputClassifier(LogisticRegression())
    result = cross_validate(model, X, Y, cv=MultilabelStratifiedKFold(5), scoring="f1_macro")
    scores = result["test_score"]
    assert scores.shape == (5,)
    assert np.isfinite(scores).all() and (scores > 0.3).all()
    repeated = cross_validate(
        model,
        X,
        Y,
        cv=MultilabelRepeatedStratifiedKFold(3, n_repeats=2, random_state=0),
        scoring="f1_macro",
    )
    assert repeated["test_score"].shape == (6,)


def test_works_as_cv_in_grid_search():
    X, Y = small_problem()
    search = GridSearchCV(
        MultiOutputClassifier(LogisticRegression()),
        {"estimator__C": [0.01, 1.0]},
        cv=MultilabelStratifiedKFold(3, shuffle=True, random_state=0),
        scoring="f1_macro",
    )
    search.fit(X, Y)
    assert search.n_splits_ == 3
    assert {f"split{i}_test_score" for i in range(3)} <= set(search.cv_results_)
    assert search.best_params_["estimator__C"] in (0.01, 1.0)
    assert np.isfinite(search.best_score_)


# ----------------------------------------------------------------- real data
@pytest.mark.real_data
def test_full_hpa_table_is_balanced(hpa_full_labels):
    _, Y = read_labels(hpa_full_labels)
    n_splits = 5
    # The rarest HPA 2018 label has 11 samples: no StratificationWarning at 5 folds.
    folds = test_folds(MultilabelStratifiedKFold(n_splits), Y)
    positives = per_fold_positives(Y.astype(np.int64), folds, n_splits)
    assert (np.abs(positives - Y.sum(axis=0) / n_splits) < 1).all()
    sizes = np.bincount(folds, minlength=n_splits)
    # Sechidis' greedy alone leaves fold sizes ~30 samples apart on this table.
    assert np.abs(sizes - len(Y) / n_splits).max() <= 10, sizes
