"""GeneticBlockSelector at small N: parsimony, the all-blocks rule, repeated folds."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC
from sklearn.utils._param_validation import InvalidParameterError

from conftest import make_block_problem
from protloc import MultilabelRepeatedStratifiedKFold, SelectionWarning
from protloc.multilabel import BinaryRelevance, LabelPowersetSVM, ThresholdTuner
from protloc.selection import GeneticBlockSelector

TINY = dict(cv=3, population_size=6, generations=3, progress=False, random_state=0)


def noise_blocks(seed=0):
    """6 blocks of 8 columns of pure noise, and random 0/1 labels (3 columns)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 48))
    Y = (rng.random((60, 3)) < 0.4).astype(int)
    return X, Y


def test_noise_only_blocks_keep_all_blocks_with_a_warning():
    X, Y = noise_blocks()
    plain = GeneticBlockSelector(blocks=8, min_improvement=None, **TINY).fit(X, Y)
    # The plain search keeps a subset, although every block is noise.
    assert not plain.block_support_.all()
    assert plain.best_score_ > plain.all_blocks_score_ and plain.improved_

    # A margin no noise subset can reach (F1 gains above 1 are impossible).
    with pytest.warns(SelectionWarning, match=r"could not beat all blocks.*min_improvement=1\.0"):
        guarded = GeneticBlockSelector(blocks=8, min_improvement=1.0, **TINY).fit(X, Y)
    assert guarded.block_support_.all() and guarded.support_.all()
    assert guarded.improved_ is False
    assert guarded.best_score_ == guarded.all_blocks_score_ == plain.all_blocks_score_
    # The search itself is the same: only the final choice differs.
    np.testing.assert_array_equal(guarded.history_["best_score"], plain.history_["best_score"])
    assert (guarded.n_evaluations_, guarded.cache_hits_) == (
        plain.n_evaluations_,
        plain.cache_hits_,
    )


def test_default_min_improvement_keeps_all_blocks_on_a_tie():
    # Every block alone separates the two classes: every subset scores 1.0, and the
    # search's best (fewest blocks on a tie) does not beat all blocks by more than 0.
    X, y = make_block_problem(n_blocks=4, width=2, signal=(0, 1, 2, 3), shift=8.0)
    y = (y > 0).astype(int)
    X[:, ::2] += 8.0 * y[:, None]
    selector = GeneticBlockSelector(blocks=2, min_improvement=None, **TINY).fit(X, y)
    assert selector.best_score_ == selector.all_blocks_score_ == 1.0
    assert selector.block_support_.sum() == 1 and not selector.improved_
    with pytest.warns(SelectionWarning, match=r"best subset \(1 of 4 blocks\) scored 1\.0000"):
        default = GeneticBlockSelector(blocks=2, **TINY).fit(X, y)
    assert default.min_improvement == 0.0
    assert default.block_support_.all() and default.improved_ is False
    assert default.best_score_ == default.best_penalised_score_ == 1.0


def test_all_blocks_score_is_the_cross_validated_score_of_all_columns():
    X, y = make_block_problem(n_blocks=6, width=3, signal=(1, 4))
    selector = GeneticBlockSelector(blocks=3, **TINY).fit(X, y)  # cv=3: StratifiedKFold(3)
    expected = cross_val_score(SVC(), X, y, cv=StratifiedKFold(3), scoring="f1_macro").mean()
    assert selector.all_blocks_score_ == pytest.approx(expected, abs=1e-12)


def test_parsimony_selects_fewer_blocks():
    X, y = make_block_problem(n_blocks=8, width=3, signal=(1, 4, 6), shift=1.0)
    params = dict(blocks=3, cv=3, population_size=10, generations=6, progress=False,
                  random_state=0, min_improvement=None)  # fmt: skip
    free = GeneticBlockSelector(parsimony=0.0, **params).fit(X, y)
    frugal = GeneticBlockSelector(parsimony=1.0, **params).fit(X, y)
    assert frugal.block_support_.sum() < free.block_support_.sum()
    # best_score_ stays the raw score; the penalised one is what was maximised.
    share = frugal.block_support_.sum() / frugal.block_support_.size
    assert frugal.best_penalised_score_ == pytest.approx(frugal.best_score_ - share)
    assert free.best_penalised_score_ == free.best_score_
    history = frugal.history_
    shares = history["best_individual"].sum(axis=1) / history["best_individual"].shape[1]
    np.testing.assert_allclose(history["best_penalised_score"], history["best_score"] - shares)


@pytest.mark.parametrize("fitness", ["kernel", "refit"])
def test_repeated_folds(fitness):
    X, Y = make_block_problem(n_blocks=6, width=3, signal=(1, 4), multilabel=True, n_per_class=8)
    cv = MultilabelRepeatedStratifiedKFold(n_splits=2, n_repeats=2, random_state=0)
    selector = GeneticBlockSelector(
        LabelPowersetSVM(), blocks=3, fitness=fitness, **{**TINY, "cv": cv}
    ).fit(X, Y)
    assert selector.fitness_method_ == fitness
    # Both ways give the same scores over the 4 folds.
    other = "refit" if fitness == "kernel" else "kernel"
    twin = GeneticBlockSelector(LabelPowersetSVM(), blocks=3, fitness=other, **{**TINY, "cv": cv})
    twin.fit(X, Y)
    np.testing.assert_array_equal(selector.history_["best_score"], twin.history_["best_score"])
    assert selector.all_blocks_score_ == twin.all_blocks_score_


@pytest.mark.parametrize(
    "estimator",
    [
        ThresholdTuner(BinaryRelevance(SVC(kernel="linear", C=0.1, class_weight="balanced")), cv=3),
        BinaryRelevance(SVC(class_weight="balanced")),
        ThresholdTuner(LabelPowersetSVM(kernel="rbf", gamma=0.05), cv=3),
    ],
    ids=["tuned-br-linear", "br-rbf-scale", "tuned-lpsvm-rbf"],
)
def test_wrapped_svms_kernel_fitness_equals_column_refit(estimator):
    X, Y = make_block_problem(n_blocks=5, width=4, signal=(0, 2), multilabel=True, n_per_class=10)
    runs = {}
    for fitness in ("kernel", "refit"):
        runs[fitness] = GeneticBlockSelector(
            estimator, blocks=4, fitness=fitness, min_improvement=None, **TINY
        ).fit(X, Y)
        assert runs[fitness].fitness_method_ == fitness
    for key in ("best_score", "mean_score", "best_individual"):
        np.testing.assert_array_equal(runs["kernel"].history_[key], runs["refit"].history_[key])
    assert runs["kernel"].all_blocks_score_ == runs["refit"].all_blocks_score_


def test_threshold_tuner_with_data_dependent_gamma_refits_on_columns():
    X, Y = make_block_problem(n_blocks=5, width=4, signal=(0, 2), multilabel=True, n_per_class=10)
    # gamma="scale" inside the tuner's inner folds is not the fold's: no kernel fitness.
    estimator = ThresholdTuner(BinaryRelevance(SVC(class_weight="balanced")), cv=3)
    selector = GeneticBlockSelector(estimator, blocks=4, min_improvement=None, **TINY).fit(X, Y)
    assert selector.fitness_method_ == "refit"
    assert 0 < selector.all_blocks_score_ <= 1 and 0 < selector.best_score_ <= 1
    with pytest.raises(ValueError, match="gamma other than 'scale'"):
        GeneticBlockSelector(estimator, blocks=4, fitness="kernel", **TINY).fit(X, Y)


@pytest.mark.parametrize(
    "param", [{"parsimony": -1}, {"min_improvement": -0.1}, {"min_improvement": "x"}]
)
def test_bad_robustness_parameters(param):
    X, Y = noise_blocks()
    with pytest.raises(InvalidParameterError, match=next(iter(param))):
        GeneticBlockSelector(blocks=8, **{**TINY, **param}).fit(X, Y)


def test_checkpoint_resume_with_parsimony(tmp_path):
    X, y = make_block_problem(n_blocks=8, width=3, signal=(1, 4, 6), shift=1.0)
    params = dict(blocks=3, cv=3, population_size=6, generations=5, early_stopping=False,
                  parsimony=0.05, progress=False, random_state=0)  # fmt: skip
    uninterrupted = GeneticBlockSelector(**params).fit(X, y)

    def stop_at_1(state):
        return state.generation == 1

    GeneticBlockSelector(checkpoint=tmp_path, callbacks=[stop_at_1], **params).fit(X, y)
    resumed = GeneticBlockSelector(checkpoint=tmp_path, **params).fit(X, y)
    for key in uninterrupted.history_:
        np.testing.assert_array_equal(resumed.history_[key], uninterrupted.history_[key])
    np.testing.assert_array_equal(resumed.block_support_, uninterrupted.block_support_)
    # Another parsimony is another search: its checkpoint is not reused.
    GeneticBlockSelector(checkpoint=tmp_path, **{**params, "parsimony": 0.5}).fit(X, y)
    assert len(list((tmp_path / "genetic").glob("*/*.npz"))) == 2
