import warnings
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC, NuSVC
from sklearn.utils._param_validation import InvalidParameterError

from conftest import SIGNAL_BLOCKS, make_block_problem
from protloc.multilabel import LabelPowersetSVM
from protloc.selection import GenerationState, GeneticBlockSelector


class Block(NamedTuple):
    """Shaped like CNNFeatureExtractor's FeatureBlock records."""

    name: str
    channel: str
    slice: slice


SMALL = dict(cv=3, population_size=8, generations=3, progress=False, random_state=0)


class Recorder:
    """Callback keeping every generation's state; stops at ``stop_at`` if given."""

    def __init__(self, stop_at=None):
        self.states = []
        self.stop_at = stop_at

    def __call__(self, state):
        self.states.append(state)
        return state.generation == self.stop_at

    def scores(self):
        return np.concatenate([s.scores for s in self.states])

    def populations(self):
        return np.concatenate([s.population for s in self.states])


def assert_same_search(a, b):
    for key in a.history_:
        np.testing.assert_array_equal(a.history_[key], b.history_[key], err_msg=key)
    np.testing.assert_array_equal(a.support_, b.support_)
    assert a.best_score_ == b.best_score_
    assert (a.n_evaluations_, a.cache_hits_) == (b.n_evaluations_, b.cache_hits_)


def test_finds_the_signal_blocks_and_beats_all_blocks():
    width = 4
    X, y = make_block_problem(width=width, shift=2.5)
    # Loud noise blocks: every noise block added to the signal ones costs score.
    noise = np.ones(X.shape[1], dtype=bool)
    for b in SIGNAL_BLOCKS:
        noise[b * width : (b + 1) * width] = False
    X[:, noise] *= 2
    selector = GeneticBlockSelector(
        blocks=width,
        cv=3,
        population_size=20,
        generations=15,
        max_blocks=5,
        random_state=0,
        progress=False,
    ).fit(X, y)
    assert selector.fitness_method_ == "kernel"
    np.testing.assert_array_equal(np.flatnonzero(selector.block_support_), SIGNAL_BLOCKS)
    all_blocks = cross_val_score(SVC(), X, y, cv=StratifiedKFold(3), scoring="f1_macro").mean()
    assert selector.best_score_ > all_blocks + 0.2
    assert selector.transform(X).shape == (X.shape[0], 3 * width)


def test_same_random_state_same_history(block_problem):
    X, y = block_problem
    a = GeneticBlockSelector(blocks=3, **SMALL).fit(X, y)
    b = GeneticBlockSelector(blocks=3, **SMALL).fit(X, y)
    assert_same_search(a, b)
    c = GeneticBlockSelector(blocks=3, **{**SMALL, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.history_["mean_score"], c.history_["mean_score"])


@pytest.mark.parametrize(
    "estimator",
    [
        SVC(),
        SVC(kernel="linear", C=0.1),
        SVC(kernel="poly", degree=2, gamma="auto", coef0=1.0),
        SVC(kernel="sigmoid", gamma=0.02, coef0=0.5),
        NuSVC(nu=0.3, gamma=0.05),
    ],
    ids=["rbf-scale", "linear", "poly-auto", "sigmoid", "nusvc"],
)
def test_kernel_fitness_equals_column_refit(block_problem, estimator):
    X, y = block_problem
    runs = {}
    for fitness in ("kernel", "refit"):
        recorder = Recorder()
        selector = GeneticBlockSelector(
            estimator, blocks=3, fitness=fitness, callbacks=[recorder], **SMALL
        ).fit(X, y)
        assert selector.fitness_method_ == fitness
        runs[fitness] = selector, recorder
    np.testing.assert_array_equal(runs["kernel"][1].populations(), runs["refit"][1].populations())
    # The same predictions, hence bit-identical scores, for every individual.
    np.testing.assert_array_equal(runs["kernel"][1].scores(), runs["refit"][1].scores())
    assert_same_search(runs["kernel"][0], runs["refit"][0])


def test_kernel_fitness_equals_column_refit_multilabel_float32():
    X, Y = make_block_problem(multilabel=True, n_per_class=10)
    X = X.astype(np.float32)
    scores = {}
    for fitness in ("kernel", "refit"):
        recorder = Recorder()
        GeneticBlockSelector(
            LabelPowersetSVM(C=3.0), blocks=3, fitness=fitness, callbacks=[recorder], **SMALL
        ).fit(X, Y)
        scores[fitness] = recorder.scores()
    np.testing.assert_array_equal(scores["kernel"], scores["refit"])


def test_default_estimator_for_a_label_matrix_is_label_powerset_svm():
    X, Y = make_block_problem(multilabel=True, n_per_class=10)
    selector = GeneticBlockSelector(blocks=3, **SMALL).fit(X, Y)
    assert selector.fitness_method_ == "kernel"
    assert 0 < selector.best_score_ <= 1


def test_parallel_workers_give_the_same_search(block_problem):
    X, y = block_problem
    serial = GeneticBlockSelector(blocks=3, **SMALL).fit(X, y)
    filters = list(warnings.filters)
    # The kernel fitness runs in threads by default (libsvm releases the GIL).
    threads = GeneticBlockSelector(blocks=3, n_jobs=2, **SMALL).fit(X, y)
    assert_same_search(serial, threads)
    # Threads' catch_warnings blocks interleave; none of their filters may leak out.
    assert warnings.filters == filters


@pytest.mark.slow
@pytest.mark.parametrize("fitness", ["kernel", "refit"])
def test_process_workers_give_the_same_search(block_problem, fitness):
    X, y = block_problem
    serial = GeneticBlockSelector(blocks=3, fitness=fitness, **SMALL).fit(X, y)
    with parallel_config(backend="loky"):
        processes = GeneticBlockSelector(blocks=3, fitness=fitness, n_jobs=2, **SMALL).fit(X, y)
    assert_same_search(serial, processes)


def test_memoised_fitness_accounting(block_problem):
    X, y = block_problem
    selector = GeneticBlockSelector(
        blocks=30,
        cv=3,
        population_size=10,
        generations=4,
        early_stopping=False,
        random_state=0,
        progress=False,
    ).fit(X, y)
    # 3 blocks of 30 columns: 7 subsets, so repeats are certain
    assert selector.n_evaluations_ <= 7
    assert selector.cache_hits_ > 0
    assert selector.n_evaluations_ + selector.cache_hits_ == 10 * selector.n_generations_
    np.testing.assert_array_equal(selector.history_["n_evaluations"][-1], selector.n_evaluations_)


def test_checkpoint_resume_equals_uninterrupted_run(block_problem, tmp_path):
    X, y = block_problem
    params = dict(blocks=3, cv=3, population_size=8, generations=6, early_stopping=False,
                  random_state=0, progress=False)  # fmt: skip
    uninterrupted = GeneticBlockSelector(**params).fit(X, y)

    stopper = Recorder(stop_at=2)
    stopped = GeneticBlockSelector(checkpoint=tmp_path, callbacks=[stopper], **params).fit(X, y)
    assert stopped.n_generations_ == 3
    assert list((tmp_path / "genetic").glob("*/*.npz"))
    resumed_recorder = Recorder()
    resumed = GeneticBlockSelector(checkpoint=tmp_path, callbacks=[resumed_recorder], **params)
    resumed.fit(X, y)
    assert [s.generation for s in resumed_recorder.states] == [3, 4, 5]
    assert_same_search(resumed, uninterrupted)

    # A finished search can be extended.
    longer = {**params, "generations": 8}
    extended = GeneticBlockSelector(checkpoint=tmp_path, **longer).fit(X, y)
    assert_same_search(extended, GeneticBlockSelector(**longer).fit(X, y))


def test_checkpoint_of_other_data_is_not_used(block_problem, tmp_path):
    X, y = block_problem
    params = dict(blocks=3, checkpoint=tmp_path, **SMALL)
    GeneticBlockSelector(**params).fit(X, y)
    recorder = Recorder()
    GeneticBlockSelector(callbacks=[recorder], **params).fit(X + 1.0, y)
    assert recorder.states[0].generation == 0  # started afresh
    assert len(list((tmp_path / "genetic").glob("*/*.npz"))) == 2


def test_callbacks_receive_state_and_can_stop(block_problem):
    X, y = block_problem
    recorder, other = Recorder(stop_at=1), Recorder()
    # min_improvement=None: the stopped search's best subset, not all blocks, is kept.
    selector = GeneticBlockSelector(
        blocks=3, callbacks=[recorder, other], min_improvement=None, **{**SMALL, "generations": 5}
    ).fit(X, y)
    assert selector.n_generations_ == 2
    assert len(other.states) == 2  # every callback saw every generation
    state = recorder.states[-1]
    assert isinstance(state, GenerationState)
    assert state.population.shape == (8, 30) and state.scores.shape == (8,)
    assert state.best_score == selector.best_score_
    np.testing.assert_array_equal(state.best_individual, selector.block_support_)
    assert state.n_evaluations + state.cache_hits == 16


def test_early_stopping():
    X, y = make_block_problem(n_blocks=1, signal=(0,), width=2)
    selector = GeneticBlockSelector(
        blocks=2,
        cv=3,
        population_size=4,
        generations=20,
        early_stopping=True,
        n_iter_no_change=2,
        random_state=0,
        progress=False,
    ).fit(X, y)
    # one block: the best never changes, so generations 1 and 2 stagnate
    assert selector.n_generations_ == 3
    assert selector.n_evaluations_ == 1


def test_max_blocks_bounds_every_individual(block_problem):
    X, y = block_problem
    recorder = Recorder()
    GeneticBlockSelector(blocks=3, max_blocks=2, callbacks=[recorder], **SMALL).fit(X, y)
    sizes = recorder.populations().sum(axis=1)
    assert sizes.min() >= 1 and sizes.max() <= 2


def test_other_estimators_refit_on_columns(block_problem):
    X, y = block_problem
    # Two generations of four do not beat all blocks; this test is about the fitness.
    tiny = {**SMALL, "population_size": 4, "generations": 2, "min_improvement": None}
    selector = GeneticBlockSelector(KNeighborsClassifier(), blocks=3, **tiny).fit(X, y)
    assert selector.fitness_method_ == "refit"
    assert 0 < selector.best_score_ <= 1
    with pytest.raises(ValueError, match="fitness='kernel' needs an SVC"):
        GeneticBlockSelector(KNeighborsClassifier(), blocks=3, fitness="kernel", **tiny).fit(X, y)


def test_memory_estimate_refuses_or_falls_back(block_problem):
    X, y = block_problem
    tiny = 1e-5  # GiB
    with pytest.raises(ValueError, match=r"GiB.*30 blocks x 120\^2.*max_memory"):
        GeneticBlockSelector(blocks=3, fitness="kernel", max_memory=tiny, **SMALL).fit(X, y)
    with pytest.warns(UserWarning, match="Falling back to fitness='refit'"):
        selector = GeneticBlockSelector(blocks=3, max_memory=tiny, **SMALL).fit(X, y)
    assert selector.fitness_method_ == "refit"


def test_progress_bar_on_stderr(block_problem, capsys):
    X, y = block_problem
    GeneticBlockSelector(blocks=3, **{**SMALL, "progress": True}).fit(X, y)
    assert "GeneticBlockSelector" in capsys.readouterr().err


# --- blocks -------------------------------------------------------------------------


def frame_with_block_names(X, width):
    names = [f"image__lite0__{ch}__nucleus__{k}" for ch in range(X.shape[1] // width)
             for k in range(width)]  # fmt: skip
    return pd.DataFrame(X, columns=names)


def test_auto_blocks_from_feature_names(block_problem):
    X, y = block_problem
    frame = frame_with_block_names(X, 3)
    selector = GeneticBlockSelector(**SMALL).fit(frame, y)
    assert len(selector.blocks_) == 30
    assert selector.block_names_[4] == "image__lite0__4__nucleus"
    names = selector.get_feature_names_out()
    assert set(selector.selected_blocks_) == {name.rsplit("__", 1)[0] for name in names}
    assert list(names) == list(frame.columns[selector.support_])


@pytest.mark.parametrize(
    "blocks",
    [
        [slice(0, 2), slice(2, 5), slice(5, 6)],
        [[0, 1], np.array([2, 3, 4]), [5]],
        [{"name": "a", "slice": slice(0, 2)}, {"name": "b", "slice": [2, 3, 4]},
         {"name": "c", "slice": slice(5, 6)}],
        [SimpleNamespace(name="a", slice=slice(0, 2)), SimpleNamespace(name="b", slice=slice(2, 5)),
         SimpleNamespace(name="c", slice=slice(5, None))],
        [Block("a", "green", slice(0, 2)), Block("b", "blue", slice(2, 5)),
         Block("c", "red", slice(5, 6))],
        ["a", "a", "b", "b", "b", "c"],
        [np.arange(6) < 2, (np.arange(6) >= 2) & (np.arange(6) < 5), np.arange(6) == 5],
    ],
    ids=["slices", "indices", "dicts", "objects", "namedtuples", "labels", "masks"],
)  # fmt: skip
def test_explicit_block_specifications(blocks):
    X, y = make_block_problem(n_blocks=3, signal=(0, 1), width=2)
    selector = GeneticBlockSelector(blocks=blocks, **SMALL).fit(X, y)
    assert [b.tolist() for b in selector.blocks_] == [[0, 1], [2, 3, 4], [5]]
    if isinstance(blocks[0], (str, dict, SimpleNamespace, Block)):
        assert list(selector.block_names_) == ["a", "b", "c"]


def test_int_blocks_last_block_shorter():
    X, y = make_block_problem(n_blocks=3, signal=(0, 1), width=3)
    selector = GeneticBlockSelector(blocks=4, **SMALL).fit(X, y)
    assert [b.size for b in selector.blocks_] == [4, 4, 1]


def test_columns_outside_blocks_are_never_selected():
    X, y = make_block_problem(n_blocks=3, signal=(0, 1), width=2)
    selector = GeneticBlockSelector(blocks=[[0, 1], [2, 3]], **SMALL).fit(X, y)
    assert not selector.support_[4:].any()


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "blocks, error, match",
    [
        ([slice(0, 4), slice(3, 8)], ValueError, "overlap .*column 3"),
        ([[0, 1, 1]], ValueError, "overlap"),
        ([slice(0, 4), slice(4, 100)], ValueError, "out of range"),
        ([slice(-4, None)], ValueError, "out of range"),
        ([[0, 1], [2, 90]], ValueError, "column index 90, out of range"),
        ([[0, 1], []], ValueError, "selects no column"),
        ([{"name": "a"}], TypeError, "without a 'slice'"),
        ([[0.5, 1.5]], TypeError, "integer index array"),
        (["a", "b"], ValueError, "one label per column"),
        ([np.ones(5, bool)], ValueError, "boolean mask of shape"),
        ([], ValueError, "gives no block"),
    ],
)
def test_bad_blocks(block_problem, blocks, error, match):
    X, y = block_problem
    with pytest.raises(error, match=match):
        GeneticBlockSelector(blocks=blocks, **SMALL).fit(X, y)


def test_auto_blocks_need_feature_names(block_problem):
    X, y = block_problem
    with pytest.raises(ValueError, match=r"no feature names.*feature_blocks_"):
        GeneticBlockSelector(**SMALL).fit(X, y)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with pytest.raises(ValueError, match="'f0' is not"):
        GeneticBlockSelector(**SMALL).fit(frame, y)


def test_y_with_one_class(block_problem):
    X, _ = block_problem
    with pytest.raises(ValueError, match="only one class"):
        GeneticBlockSelector(blocks=3, **SMALL).fit(X, np.zeros(X.shape[0]))
    Y = np.tile([1, 0, 1], (X.shape[0], 1))
    with pytest.raises(ValueError, match=r"only one class .*same label set"):
        GeneticBlockSelector(blocks=3, **SMALL).fit(X, Y)


@pytest.mark.parametrize("param", [{"max_blocks": 0}, {"population_size": 1}, {"cv": "x"}])
def test_bad_parameters(block_problem, param):
    X, y = block_problem
    with pytest.raises(InvalidParameterError, match=next(iter(param))):
        GeneticBlockSelector(blocks=3, **{**SMALL, **param}).fit(X, y)


def test_elitism_must_leave_room_for_children(block_problem):
    X, y = block_problem
    with pytest.raises(ValueError, match="elitism=8 must be smaller"):
        GeneticBlockSelector(blocks=3, elitism=8, **SMALL).fit(X, y)


def test_more_folds_than_the_rarest_class(block_problem):
    X, y = block_problem
    y = y.copy()
    y[:13] = 1  # class 0 keeps 2 samples
    with pytest.raises(ValueError, match=r"rarest class \(0\) has only 2 .*Use cv=2"):
        GeneticBlockSelector(blocks=3, **SMALL).fit(X, y)
    # a splitter given explicitly is trusted
    GeneticBlockSelector(blocks=3, **{**SMALL, "cv": KFold(3)}).fit(X, y)


def test_more_folds_than_the_rarest_label():
    X, Y = make_block_problem(multilabel=True, n_per_class=10)
    Y = np.column_stack([Y, np.zeros(len(Y), dtype=Y.dtype)])
    Y[:2, -1] = 1
    with pytest.raises(ValueError, match=r"rarest label column \(3\) has only 2"):
        GeneticBlockSelector(blocks=3, **SMALL).fit(X, Y)
