"""GeneticBlockSelector at large n_samples: max_samples and the memory refusal."""

import numpy as np
import pytest
from sklearn.svm import SVR
from sklearn.utils._param_validation import InvalidParameterError

from conftest import make_block_problem
from protloc._memory import check_memory
from protloc.multilabel._powerset import _check_kernel_memory
from protloc.selection import GeneticBlockSelector

SMALL = dict(cv=3, population_size=8, generations=3, progress=False, random_state=0)


class Recorder:
    def __init__(self):
        self.scores = []

    def __call__(self, state):
        self.scores.append(state.scores)


@pytest.mark.parametrize("multilabel", [False, True])
@pytest.mark.parametrize("fitness", ["kernel", "refit"])
def test_max_samples_covering_all_samples_is_the_exact_fitness(multilabel, fitness):
    X, y = make_block_problem(multilabel=multilabel, n_per_class=8)
    searches = {}
    for max_samples in (None, X.shape[0], 10**6, 1.0):
        recorder = Recorder()
        selector = GeneticBlockSelector(
            blocks=3, fitness=fitness, max_samples=max_samples, callbacks=[recorder], **SMALL
        ).fit(X, y)
        np.testing.assert_array_equal(selector.fitness_samples_, np.arange(X.shape[0]))
        searches[max_samples] = (np.concatenate(recorder.scores), selector)
    exact_scores, exact = searches[None]
    for scores, selector in searches.values():
        np.testing.assert_array_equal(scores, exact_scores)
        assert selector.best_score_ == exact.best_score_
        np.testing.assert_array_equal(selector.support_, exact.support_)


def test_max_samples_subsample_is_stratified_and_seeded():
    X, Y = make_block_problem(multilabel=True, n_per_class=20)  # 160 rows, 3 labels
    fit = GeneticBlockSelector(blocks=3, max_samples=0.5, **SMALL).fit
    selector = fit(X, Y)
    rows = selector.fitness_samples_
    assert rows.size == 80 and np.unique(rows).size == 80
    # every label keeps its share to within one sample
    assert np.all(np.abs(Y[rows].sum(axis=0) - Y.sum(axis=0) / 2) <= 1)
    np.testing.assert_array_equal(fit(X, Y).fitness_samples_, rows)
    other = GeneticBlockSelector(blocks=3, max_samples=80, **{**SMALL, "random_state": 1})
    assert other.fit(X, Y).fitness_samples_.tolist() != rows.tolist()
    # the selection still covers every row's columns
    assert selector.transform(X).shape == (X.shape[0], selector.support_.sum())


def test_max_samples_classes_and_regression():
    X, y = make_block_problem(n_per_class=10)  # 8 classes of 10
    rows = GeneticBlockSelector(blocks=3, max_samples=40, **SMALL).fit(X, y).fitness_samples_
    np.testing.assert_array_equal(np.bincount(y[rows]), np.full(8, 5))
    target = X[:, 12] + X[:, 13]
    selector = GeneticBlockSelector(SVR(), blocks=3, scoring="r2", max_samples=50, **SMALL).fit(
        X, target
    )
    assert selector.fitness_samples_.size == 50


@pytest.mark.parametrize(
    "max_samples, match",
    [
        (0, "max_samples"),
        (1, "max_samples"),
        (0.0, "max_samples"),
        (1.5, "max_samples"),
        (-3, "max_samples"),
        ("half", "max_samples"),
    ],
)
def test_bad_max_samples(max_samples, match):
    X, y = make_block_problem(n_per_class=5)
    with pytest.raises(InvalidParameterError, match=match):
        GeneticBlockSelector(blocks=3, max_samples=max_samples, **SMALL).fit(X, y)


def test_max_samples_too_small_for_the_folds():
    X, y = make_block_problem(n_per_class=10)
    with pytest.raises(ValueError, match=r"cv=3 folds, but the rarest class"):
        GeneticBlockSelector(blocks=3, max_samples=16, **SMALL).fit(X, y)


def test_memory_refusal_names_the_need_and_max_samples():
    X, y = make_block_problem(n_per_class=15)  # 120 rows, 30 blocks
    selector = GeneticBlockSelector(blocks=3, fitness="kernel", max_memory=1e-3, **SMALL)
    with pytest.raises(ValueError, match=r"needs about .* GiB.*max_samples=(\d+)") as info:
        selector.fit(X, y)
    fits = int(info.value.args[0].split("max_samples=")[1].split(" ")[0])
    assert 2 <= fits < X.shape[0]
    # the suggested subsample does fit: the search runs with the kernel fitness
    selector.set_params(max_samples=fits).fit(X, y)
    assert selector.fitness_method_ == "kernel"


def test_label_powerset_svm_kernel_memory_refusal():
    _check_kernel_memory(1000, max_memory=1.0)  # 16 MB fits
    with pytest.raises(ValueError, match=r"precompute_kernel=True on 31072 .*7\.3 GiB.*'auto'"):
        _check_kernel_memory(31072, max_memory=1.0)
    with pytest.raises(ValueError, match=r"a kernel needs about 2\.0 GiB.*use fewer samples"):
        check_memory(2**31, "a kernel", "use fewer samples", max_memory=1.0)
