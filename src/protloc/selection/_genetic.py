"""GeneticBlockSelector: a genetic algorithm choosing which feature blocks to concatenate.

Taormina et al. 2025 extract one block of CNN features per backbone x channel x
region, and search the combinations of blocks with a genetic algorithm whose fitness
is the cross-validated score of an SVM on the concatenated blocks. Here one gene is
one block (not one column), and the fitness of kernel SVMs is computed from per-block
kernel pieces (:mod:`protloc.selection._kernels`) instead of refitting on columns.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    _fit_context,
    clone,
    is_classifier,
)
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.feature_selection import SelectorMixin
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.svm import SVC, NuSVC
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt, StrOptions
from sklearn.utils._tags import get_tags
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from protloc._cache import DiskCache, cache_key, hash_array, hash_params
from protloc._memory import memory_limit
from protloc._params import cache_folder, fill_shared_docs, seeds, shared_constraints
from protloc.exceptions import SelectionWarning
from protloc.model_selection import (
    MultilabelStratifiedKFold,
    StratificationWarning,
    _iterative_stratification,
)
from protloc.multilabel import (
    BinaryRelevance,
    LabelPowersetSVM,
    ThresholdTuner,
    UndecidableThresholdWarning,
)
from protloc.selection import _ga_ops, _kernels
from protloc.selection._blocks import resolve_blocks

__all__ = ["GenerationState", "GeneticBlockSelector"]

_HISTORY_KEYS = ("best_score", "mean_score", "std_score", "best_individual", "n_evaluations")
_HISTORY_DTYPES = (np.float64, np.float64, np.float64, bool, np.int64)


@dataclass(frozen=True)
class GenerationState:
    """What a callback of :class:`GeneticBlockSelector` receives after each generation.

    Attributes
    ----------
    generation : int
        Index of the generation just evaluated, 0 for the initial population.
    population : ndarray of shape (population_size, n_blocks), dtype=bool
        The individuals of this generation, one gene per block.
    scores : ndarray of shape (population_size,)
        Their fitness (mean cross-validated score).
    best_individual : ndarray of shape (n_blocks,), dtype=bool
        The best individual found so far (all generations), ranked by penalised score
        (see ``parsimony``).
    best_score : float
        Its fitness (raw, without the ``parsimony`` penalty).
    history : dict
        The ``history_`` so far (see :class:`GeneticBlockSelector`).
    n_evaluations : int
        Fitness evaluations so far (cross-validations actually run).
    cache_hits : int
        Individuals whose fitness came from the memo so far.
    """

    generation: int
    population: np.ndarray
    scores: np.ndarray
    best_individual: np.ndarray
    best_score: float
    history: dict
    n_evaluations: int
    cache_hits: int


@fill_shared_docs
class GeneticBlockSelector(SelectorMixin, MetaEstimatorMixin, BaseEstimator):
    """Select groups of columns (feature blocks) with a genetic algorithm.

    Each individual of the genetic algorithm is a subset of blocks (one gene per
    block, e.g. one CNN backbone x channel x region of
    :class:`~protloc.CNNFeatureExtractor`); its fitness is the cross-validated score
    of ``estimator`` on the concatenated columns of its blocks (Taormina et al. 2025).
    The selector keeps the columns of the best subset found.

    For SVMs with a built-in kernel (``SVC``, ``NuSVC`` or
    :class:`~protloc.LabelPowersetSVM` with kernel "linear", "poly", "rbf" or
    "sigmoid", also inside :class:`~protloc.BinaryRelevance` or
    :class:`~protloc.ThresholdTuner`, the latter with a linear kernel or a gamma other
    than "scale", which its inner folds would compute on other rows), the fitness is computed from per-block Gram or squared-distance
    matrices computed once: the kernel of a concatenation is a function of their sum,
    and the SVM is fitted with ``kernel="precomputed"``. This gives the same
    predictions and scores as fitting on the columns (the kernels differ only by
    floating-point rounding in the last bits) without computing any kernel per fit;
    what remains is libsvm's solver, which dominates for label powersets with many
    label sets (``benchmarks/bench_genetic.py``). Other estimators are refitted on the
    columns. Fitness values are memoised by subset, and new subsets are evaluated in
    parallel with joblib.

    Parameters
    ----------
    estimator : estimator instance, default=None
        An unfitted estimator whose cross-validated score is the fitness. None means
        ``LabelPowersetSVM()`` (RBF kernel, ``gamma="scale"``) for a 2-D label
        indicator ``y``, and ``SVC()`` for a 1-D ``y``.
    blocks : "auto", int or array-like, default="auto"
        The feature blocks, one gene each:

        - "auto": from feature names of the form ``<block>__<k>`` (the columns of a
          DataFrame produced with ``set_output(transform="pandas")``), one block per
          distinct ``<block>``;
        - int: consecutive blocks of that many columns (the last may be shorter);
        - a list of block descriptions: column slices, integer index arrays, boolean
          column masks, or records with a name and a ``slice`` (dicts with keys
          "name" and "slice", or objects with such attributes, like
          ``CNNFeatureExtractor.feature_blocks_``);
        - a 1-D array of one group label per column.

        Blocks may not overlap; columns in no block are never selected.
    scoring : str, callable or None, default="f1_macro"
        The fitness: a scorer name, a callable ``scorer(estimator, X, y)``, or None
        for the estimator's ``score``. Undefined F1 terms (a class neither predicted
        nor present in a test fold) count as 0, silently, as during a search they
        occur in many evaluations; so do the warnings of a
        :class:`~protloc.ThresholdTuner` estimator about labels too rare in a fold
        (:class:`~protloc.multilabel.UndecidableThresholdWarning`,
        :class:`~protloc.model_selection.StratificationWarning`).
    cv : int, cross-validation generator or iterable, default=5
        The folds of the fitness. An int means
        :class:`~protloc.model_selection.MultilabelStratifiedKFold` for a 2-D ``y``,
        ``StratifiedKFold`` for a 1-D ``y`` of a classifier, ``KFold`` otherwise; it
        must not exceed the sample count of the rarest class (or label).
    population_size : int, default=50
        Individuals per generation.
    generations : int, default=40
        Number of generations, the initial random population included.
    crossover : "uniform" or int, default="uniform"
        Uniform crossover, or k-point crossover with this many cut points.
    crossover_rate : float, default=0.8
        Probability that a pair of parents is crossed (otherwise copied).
    mutation_rate : "auto" or float, default="auto"
        Probability that a gene flips; "auto" is ``1 / n_blocks``, one flip per child
        on average.
    elitism : int, default=2
        The best individuals of a generation passed on unchanged; smaller than
        ``population_size``.
    tournament_size : int, default=3
        Contestants per tournament selection.
    max_blocks : int, default=None
        Largest number of blocks in an individual (None: no limit); larger
        individuals lose random blocks. Values above the number of blocks mean no
        limit.
    early_stopping : bool, default=True
        Stop when the best score has not improved for ``n_iter_no_change``
        generations.
    n_iter_no_change : int, default=10
        Patience of early stopping, in generations.
    parsimony : float, default=0.0
        Preference for fewer blocks. Individuals are ranked (for breeding, elitism,
        early stopping and the final choice) by their penalised score, ``fitness -
        parsimony * n_selected_blocks / n_blocks``: with parsimony 0.01, dropping a
        tenth of the blocks is worth a loss of 0.001 in cross-validated score. 0 ranks
        by fitness alone (ties still go to fewer blocks). The memoised fitness, the
        history's "best_score" and ``best_score_`` stay the raw cross-validated score.
    min_improvement : float or None, default=0.0
        How much the chosen subset must beat all blocks by. The fitness of all blocks
        (``all_blocks_score_``) is always computed, on the same folds; when the best
        subset's penalised score exceeds that of all blocks by ``min_improvement`` or
        less, the selector keeps all blocks and sets ``improved_`` to False, with a
        :class:`~protloc.exceptions.SelectionWarning` unless the search's best already
        was all blocks. On small data sets the best of many subsets often scores above
        all blocks by chance alone (its cross-validated score is optimistic), so a
        positive margin guards against some selections that do not generalise; an
        outer cross-validation remains the real test. None never keeps all blocks in
        place of the best subset (the plain genetic algorithm of Taormina et al. 2025).
        The rule applies only when all blocks are a possible individual
        (``max_blocks`` is None or not below the number of blocks).
    fitness : {"auto", "kernel", "refit"}, default="auto"
        How fitness is computed: "kernel" from summed per-block kernel pieces (an
        error when the estimator does not allow it or memory does not suffice),
        "refit" by fitting the estimator on the concatenated columns, "auto" kernel
        when possible and else refit (with a warning when memory is the reason).
    max_samples : int, float or None, default=None
        Samples the fitness is computed on, to search at large ``n_samples``: an int
        is a count, a float in (0, 1] a fraction of ``n_samples``, None all of them.
        The subsample is drawn once, before the search, with ``random_state``; it is
        stratified like the folds (iterative stratification of the labels for a 2-D
        ``y`` or a classifier's classes, uniform otherwise), so rare labels keep their
        share as far as counts allow. The folds of ``cv`` split the subsample. A value
        covering every sample gives exactly the fitness without it. Only the search
        uses the subsample: ``transform`` keeps the selected blocks' columns of every
        row, and a downstream estimator in a Pipeline is fitted on all rows. The
        kernel fitness's memory grows with the square of this count (see
        ``max_memory``).
    max_memory : float, default=None
        GiB the kernel fitness may use: one float64 matrix of (n, n) per block, plus
        working matrices per worker, n being the samples of the fitness (see
        ``max_samples``). None means half of the machine's physical memory. A search
        that would need more is refused before it starts (``fitness="kernel"``) or
        refits on columns (``fitness="auto"``, with a warning); both messages name the
        largest ``max_samples`` that fits.
    callbacks : list of callables, default=None
        Each is called as ``callback(state)`` after every generation, with a
        :class:`GenerationState`; a callback returning True stops the search. Like
        every parameter, callbacks are deep-copied by ``clone`` (in a Pipeline's cross
        validation, for instance), so a callback that keeps state should write it to a
        file or a logger rather than to its own attributes.
    %(checkpoint)s
        Here: sub-folder ``genetic``, saved after every generation (population,
        random generator, history and fitness memo), keyed by the data, blocks, folds
        and search parameters; ``generations``, ``early_stopping`` and
        ``n_iter_no_change`` may differ, so a finished search can be extended.
    %(n_jobs)s
        Here: individuals evaluated in parallel with joblib (any backend, Dask
        included). The kernel fitness prefers threads, since libsvm releases the
        GIL; the refit fitness prefers processes. A ``joblib.parallel_config``
        backend overrides either. With several workers the kernel pieces are stored
        in a memory-mapped file that workers share rather than copy.
    %(random_state)s
        Here: the genetic algorithm (not the folds).
    %(progress)s

    Attributes
    ----------
    support_ : ndarray of shape (n_features_in_,), dtype=bool
        Selected columns: those of the selected blocks.
    block_support_ : ndarray of shape (n_blocks,), dtype=bool
        Selected blocks (the best individual).
    selected_blocks_ : ndarray of str
        Names of the selected blocks.
    blocks_ : list of ndarray
        Column indices of every block.
    block_names_ : ndarray of str
        Names of every block.
    best_score_ : float
        Fitness (raw cross-validated score, without the ``parsimony`` penalty) of the
        selected blocks: the best individual, or all blocks when ``min_improvement``
        kept them.
    best_penalised_score_ : float
        The same, minus ``parsimony * n_selected_blocks / n_blocks``: the value the
        selection maximised (equal to ``best_score_`` when ``parsimony`` is 0).
    all_blocks_score_ : float
        Fitness of all blocks, on the same folds (from the memo when the search met
        all blocks, else one more cross-validation, not counted in
        ``n_evaluations_``).
    improved_ : bool
        Whether the genetic algorithm's best subset beat all blocks, by penalised
        score, by more than ``min_improvement`` (more than 0 when it is None). False
        with ``min_improvement`` set means all blocks were kept (found by the search
        itself, or in place of its best subset), unless ``max_blocks`` excludes them.
    history_ : dict of ndarray
        Per generation: "best_score" (raw fitness of the generation's best
        individual), "best_penalised_score" (its penalised score, by which it was
        ranked), "mean_score", "std_score" (raw fitness over the population),
        "best_individual" (bool array of shape (n_generations, n_blocks)) and
        "n_evaluations" (cumulative). The history is that of the search: it does not
        record all blocks kept by ``min_improvement``.
    n_generations_ : int
        Generations run (fewer than ``generations`` after early stopping or a
        callback's stop).
    n_evaluations_ : int
        Fitness evaluations run (each a full cross-validation).
    cache_hits_ : int
        Individuals whose fitness came from the memo; ``n_evaluations_ +
        cache_hits_`` equals ``population_size * n_generations_``.
    fitness_method_ : {"kernel", "refit"}
        How fitness was computed.
    fitness_samples_ : ndarray of int
        Indices of the rows the fitness was computed on (all rows unless
        ``max_samples`` is smaller), in increasing order.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.feature_selection.SequentialFeatureSelector : Greedy selection of single columns.

    Notes
    -----
    With the kernel fitness, ``gamma="scale"`` is computed exactly as SVC computes it
    on the concatenated training columns of each fold, ``1 / (n_features *
    X_train.var())``, with the variance assembled from per-block means and sums of
    squared deviations; "auto" and float gammas are used as given.

    References
    ----------
    Taormina V., Tegolo D., Valenti C. (2025). Transfer Learning Approach with Features
    Block Selection via Genetic Algorithm for High-Imbalance and Multi-Label
    Classification of HPA Confocal Microscopy Images. Bioengineering 12, 1379.

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.selection import GeneticBlockSelector
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> X = rng.normal(size=(60, 12))
    >>> X[:, 4:8] += y[:, None]  # only the second block of 4 columns carries signal
    >>> selector = GeneticBlockSelector(blocks=4, cv=3, population_size=6, generations=4,
    ...                                 random_state=0, progress=False).fit(X, y)
    >>> selector.block_support_
    array([False,  True, False])
    >>> selector.transform(X).shape
    (60, 4)
    """

    _parameter_constraints: ClassVar[dict] = {
        "estimator": [None, HasMethods(["fit"])],
        "blocks": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), "array-like"],
        "scoring": [None, StrOptions(set(get_scorer_names())), callable],
        "cv": ["cv_object"],
        "population_size": [Interval(Integral, 2, None, closed="left")],
        "generations": [Interval(Integral, 1, None, closed="left")],
        "crossover": [StrOptions({"uniform"}), Interval(Integral, 1, None, closed="left")],
        "crossover_rate": [Interval(Real, 0, 1, closed="both")],
        "mutation_rate": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both")],
        "elitism": [Interval(Integral, 0, None, closed="left")],
        "tournament_size": [Interval(Integral, 1, None, closed="left")],
        "max_blocks": [None, Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "parsimony": [Interval(Real, 0, None, closed="left")],
        "min_improvement": [None, Interval(Real, 0, None, closed="left")],
        "fitness": [StrOptions({"auto", "kernel", "refit"})],
        "max_samples": [
            None,
            Interval(Integral, 2, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "max_memory": [None, Interval(Real, 0, None, closed="neither")],
        "callbacks": [None, list],
        **shared_constraints("checkpoint", "n_jobs", "random_state", "progress"),
    }

    def __init__(
        self,
        estimator=None,
        *,
        blocks="auto",
        scoring="f1_macro",
        cv=5,
        population_size=50,
        generations=40,
        crossover="uniform",
        crossover_rate=0.8,
        mutation_rate="auto",
        elitism=2,
        tournament_size=3,
        max_blocks=None,
        early_stopping=True,
        n_iter_no_change=10,
        parsimony=0.0,
        min_improvement=0.0,
        fitness="auto",
        max_samples=None,
        max_memory=None,
        callbacks=None,
        checkpoint=None,
        n_jobs=None,
        random_state=None,
        progress=True,
    ):
        self.estimator = estimator
        self.blocks = blocks
        self.scoring = scoring
        self.cv = cv
        self.population_size = population_size
        self.generations = generations
        self.crossover = crossover
        self.crossover_rate = crossover_rate
        self.mutation_rate = mutation_rate
        self.elitism = elitism
        self.tournament_size = tournament_size
        self.max_blocks = max_blocks
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.parsimony = parsimony
        self.min_improvement = min_improvement
        self.fitness = fitness
        self.max_samples = max_samples
        self.max_memory = max_memory
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    @_fit_context(
        # estimator is validated when it is fitted, in the fitness evaluations
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y):
        """Search the best subset of blocks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features; a DataFrame's column names give the blocks with ``blocks="auto"``.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 label indicator matrix.

        Returns
        -------
        self : object
            The fitted selector.
        """
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            ensure_all_finite=not get_tags(self).input_tags.allow_nan,
        )
        if self.elitism >= self.population_size:
            raise ValueError(
                f"elitism={self.elitism} must be smaller than population_size="
                f"{self.population_size}, or no child would ever be bred."
            )
        self.blocks_, self.block_names_ = resolve_blocks(
            self.blocks, X.shape[1], getattr(self, "feature_names_in_", None)
        )
        estimator = self._base_estimator(y)
        classifier = is_classifier(estimator)
        if classifier:
            type_of_target(y, input_name="y", raise_unknown=True)
            _check_several_classes(y)
        self.fitness_samples_ = _fitness_samples(y, self.max_samples, classifier, self.random_state)
        if self.fitness_samples_.size < X.shape[0]:
            # The search sees only the subsample; the fitted selection applies to all rows.
            X, y = X[self.fitness_samples_], y[self.fitness_samples_]
            if classifier:
                _check_several_classes(y)
        folds = [(np.asarray(tr), np.asarray(te)) for tr, te in self._cv(y, classifier).split(X, y)]
        scorer = check_scoring(estimator, scoring=self.scoring)

        n_workers = effective_n_jobs(self.n_jobs)
        kernel = self._kernel_fitness_params(estimator, folds, n_workers)
        self.fitness_method_ = "refit" if kernel is None else "kernel"
        checkpoint_key = self._checkpoint_key(X, y, estimator, folds)
        temp_folder = tempfile.mkdtemp(prefix="protloc-ga-") if n_workers > 1 else None
        try:
            if kernel is None:
                evaluate = delayed(_refit_cv_score)
                context = dict(X=X, blocks=self.blocks_, folds=folds, y=y)
            else:
                evaluate = delayed(_kernel_cv_score)
                context = _kernel_context(X, y, self.blocks_, folds, kernel, temp_folder)
                estimator = clone(estimator).set_params(**{kernel["param"]: "precomputed"})
            context.update(estimator=estimator, scorer=scorer)
            # libsvm releases the GIL, so threads run kernel-fitness evaluations in
            # parallel without copying anything; refits on columns go to processes.
            # The filter is set here as well because warning filters are global: the
            # evaluations' own catch_warnings can restore each other's state out of
            # order when they run in threads.
            prefer = None if kernel is None else "threads"
            with warnings.catch_warnings(), Parallel(n_jobs=self.n_jobs, prefer=prefer) as parallel:
                _ignore_search_warnings()
                fitness = _MemoisedFitness(parallel, evaluate, context)
                self._search(fitness, checkpoint_key)
        finally:
            if temp_folder is not None:
                shutil.rmtree(temp_folder, ignore_errors=True)
        return self

    def _base_estimator(self, y):
        if self.estimator is not None:
            return clone(self.estimator)
        return LabelPowersetSVM() if y.ndim == 2 else SVC()

    def _cv(self, y, classifier):
        cv = 5 if self.cv is None else self.cv
        if not isinstance(cv, Integral):
            return check_cv(cv, y, classifier=classifier)
        if not classifier:
            return KFold(cv)
        _check_rarest_class(y, cv)
        return MultilabelStratifiedKFold(cv) if y.ndim == 2 else StratifiedKFold(cv)

    def _kernel_fitness_params(self, estimator, folds, n_workers):
        """libsvm kernel parameters for the kernel fitness, or None to refit on columns."""
        if self.fitness == "refit":
            return None
        kernel = _precomputable_kernel(estimator)
        if kernel is None:
            if self.fitness == "kernel":
                raise ValueError(
                    "fitness='kernel' needs an SVC, NuSVC or LabelPowersetSVM with kernel "
                    "'linear', 'poly', 'rbf' or 'sigmoid', possibly wrapped in "
                    "BinaryRelevance or ThresholdTuner (then with a linear kernel or a "
                    f"gamma other than 'scale'); got {estimator!r}. Use fitness='auto' or "
                    "'refit' for other estimators."
                )
            return None
        rows = np.unique(np.concatenate([np.concatenate(f) for f in folds]))
        n_train = max(tr.size for tr, _ in folds)
        n_test = max(te.size for _, te in folds)
        pieces, work = _kernels.estimate_nbytes(
            len(self.blocks_), rows.size, n_train, n_test, n_workers
        )
        limit = memory_limit(self.max_memory)
        if pieces + work <= limit:
            return kernel
        fits = _kernels.max_samples_within(
            limit, len(self.blocks_), n_train / rows.size, n_test / rows.size, n_workers
        )
        message = (
            f"The kernel fitness needs about {(pieces + work) / 2**30:.1f} GiB: "
            f"{len(self.blocks_)} blocks x {rows.size}^2 samples x 8 bytes = "
            f"{pieces / 2**30:.1f} GiB of kernel pieces, plus {work / 2**30:.1f} GiB of "
            f"working memory for {n_workers} worker(s); the limit is max_memory="
            f"{limit / 2**30:.1f} GiB. Search on a stratified subsample with "
            f"max_samples={fits} (the most that fits), search fewer blocks, use fewer "
            "workers, raise max_memory if the machine has the memory, or use "
            "fitness='refit' (slow but small)."
        )
        if self.fitness == "kernel":
            raise ValueError(message)
        warnings.warn(message + " Falling back to fitness='refit'.", UserWarning, stacklevel=3)
        return None

    def _checkpoint_key(self, X, y, estimator, folds):
        if self.checkpoint is None:
            return None
        seed = self.random_state if isinstance(self.random_state, Integral) else None
        scoring = self.scoring
        if callable(scoring):
            scoring = getattr(scoring, "__qualname__", type(scoring).__name__)
        return cache_key(
            hash_array(X),
            hash_array(y),
            hash_params([hash_array(b) for b in self.blocks_]),
            hash_params([[hash_array(tr), hash_array(te)] for tr, te in folds]),
            {
                "estimator": [type(estimator).__qualname__, estimator.get_params(deep=False)],
                "scoring": scoring,
                "population_size": self.population_size,
                "crossover": self.crossover,
                "crossover_rate": self.crossover_rate,
                "mutation_rate": self.mutation_rate,
                "elitism": self.elitism,
                "tournament_size": self.tournament_size,
                "max_blocks": self.max_blocks,
                "random_state": seed,
                # Only when set, so that checkpoints of searches without it stay valid.
                **({"parsimony": self.parsimony} if self.parsimony else {}),
            },
        )

    def _search(self, fitness, checkpoint_key):
        """The generational loop; sets the fitted attributes."""
        from tqdm import tqdm

        n_blocks = len(self.blocks_)
        max_blocks = None if self.max_blocks is None else min(self.max_blocks, n_blocks)
        mutation_rate = 1.0 / n_blocks if self.mutation_rate == "auto" else self.mutation_rate
        (seed,) = seeds(self.random_state, 1)
        run = _Run(fitness, np.random.default_rng(seed), self.parsimony)
        cache = (
            None if checkpoint_key is None else DiskCache(cache_folder(self.checkpoint), "genetic")
        )
        saved = None if cache is None else cache.get(checkpoint_key)
        bar = tqdm(
            total=self.generations, disable=not self.progress, desc=type(self).__name__, unit="gen"
        )
        try:
            if saved is not None:
                # A resumed search goes on even where a callback had stopped it.
                run.restore(saved)
                bar.update(run.generation + 1)
                stop = False
            else:
                population = _ga_ops.random_population(
                    run.rng, self.population_size, n_blocks, max_blocks
                )
                stop = self._advance(run, population, cache, checkpoint_key, bar)
            while not stop and run.generation + 1 < self.generations and not self._stagnant(run):
                population = _ga_ops.next_generation(
                    run.rng,
                    run.population,
                    run.ranking_scores(),
                    elitism=self.elitism,
                    tournament_size=self.tournament_size,
                    crossover_rate=self.crossover_rate,
                    mutation_rate=mutation_rate,
                    crossover_method=self.crossover,
                    max_blocks=max_blocks,
                )
                stop = self._advance(run, population, cache, checkpoint_key, bar)
        finally:
            bar.close()
        self._set_result(run, fitness.score_of(np.ones(n_blocks, dtype=bool)), max_blocks)

    def _advance(self, run, population, cache, checkpoint_key, bar):
        """Evaluate the next generation, save it, run the callbacks; True means stop."""
        run.evaluate(population)
        if cache is not None:
            cache.set(checkpoint_key, run.snapshot())
        bar.set_postfix(best=f"{run.best()[1]:.4f}", refresh=False)
        bar.update(1)
        if not self.callbacks:
            return False
        state = run.state()
        # Every callback sees every generation, even after another asked to stop.
        return any([bool(callback(state)) for callback in self.callbacks])

    def _stagnant(self, run):
        if not self.early_stopping:
            return False
        # Progress is a better rank of the best individual so far: a higher score, or the
        # same score with fewer blocks; rank ties go to the generation that found it first.
        return run.generation - run.best_generation() >= self.n_iter_no_change

    def _set_result(self, run, all_blocks_score, max_blocks):
        self.history_ = run.history_arrays()
        best_individual, best_score = run.best()
        n_blocks = best_individual.size
        self.all_blocks_score_ = all_blocks_score
        best_penalised = float(run.penalised(best_score, best_individual))
        all_penalised = all_blocks_score - self.parsimony
        margin = 0.0 if self.min_improvement is None else self.min_improvement
        # A failed all-blocks evaluation (NaN) is beaten by any subset.
        self.improved_ = bool(
            not np.isfinite(all_penalised) or best_penalised - all_penalised > margin
        )
        if (
            self.min_improvement is not None
            and not self.improved_
            and max_blocks in (None, n_blocks)
            # The search's own best being all blocks is no override: nothing to warn.
            and not best_individual.all()
        ):
            scoring = self.scoring if isinstance(self.scoring, str) else "score"
            penalty = (
                f" minus parsimony={self.parsimony} x the share of blocks" if self.parsimony else ""
            )
            warnings.warn(
                f"{type(self).__name__} could not beat all blocks by more than "
                f"min_improvement={self.min_improvement}: its best subset "
                f"({int(best_individual.sum())} of {n_blocks} blocks) scored "
                f"{best_penalised:.4f}, all {n_blocks} blocks {all_penalised:.4f} "
                f"(cross-validated {scoring}{penalty}), so all blocks are "
                "kept. Pass min_improvement=None to keep the best subset anyway or a "
                "smaller min_improvement to accept smaller gains, or silence this with "
                "warnings.filterwarnings('ignore', category=protloc.exceptions."
                "SelectionWarning).",
                SelectionWarning,
                stacklevel=5,
            )
            best_individual = np.ones(n_blocks, dtype=bool)
            best_score, best_penalised = all_blocks_score, all_penalised
        self.block_support_, self.best_score_ = best_individual, best_score
        self.best_penalised_score_ = best_penalised
        self.selected_blocks_ = self.block_names_[self.block_support_]
        support = np.zeros(self.n_features_in_, dtype=bool)
        for b in np.flatnonzero(self.block_support_):
            support[self.blocks_[b]] = True
        self.support_ = support
        self.n_generations_ = run.generation + 1
        self.n_evaluations_ = run.fitness.n_evaluations
        self.cache_hits_ = run.fitness.cache_hits

    def _get_support_mask(self):
        check_is_fitted(self)
        return self.support_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = False
        if self.estimator is not None:
            tags.input_tags.allow_nan = get_tags(self.estimator).input_tags.allow_nan
        return tags


# --- targets and folds ----------------------------------------------------------------


def _check_several_classes(y):
    distinct = np.unique(y, axis=0) if y.ndim == 2 else np.unique(y)
    if distinct.shape[0] < 2:
        what = "one class (every row of Y is the same label set" if y.ndim == 2 else "one class ("
        raise ValueError(
            f"y has only {what} {distinct[0].tolist()!r}); a classifier's cross-validated "
            "score needs at least two. Check the labels, or select on more samples."
        )


def _check_rarest_class(y, n_splits):
    if y.ndim == 2:
        counts = np.asarray(y != 0).sum(axis=0)
        present = np.flatnonzero(counts)
        rarest = present[np.argmin(counts[present])]
        what, count = f"label column ({rarest})", counts[rarest]
        fix, splitter = "labels", f"MultilabelStratifiedKFold({n_splits})"
    else:
        classes, counts = np.unique(y, return_counts=True)
        what, count = f"class ({classes[np.argmin(counts)].tolist()!r})", counts.min()
        fix, splitter = "classes", f"StratifiedKFold({n_splits})"
    if count < n_splits:
        raise ValueError(
            f"cv={n_splits} folds, but the rarest {what} has only {count} positive "
            f"sample(s), so some folds would lack it. Use cv={max(count, 2)} or fewer folds, "
            f"leave out or merge the rarest {fix}, or pass a splitter as cv (e.g. "
            f"cv={splitter}) to accept folds without it."
        )


# --- fitness --------------------------------------------------------------------------

# The subsample of max_samples is a union of whole stratified folds (of at most this
# many), plus a random part of the next fold for the remainder.
_SUBSAMPLE_FOLDS = 20


def _fitness_samples(y, max_samples, classifier, random_state):
    """Sorted indices of the rows the fitness uses: all, or a stratified subsample."""
    n_samples = y.shape[0]
    if max_samples is None:
        return np.arange(n_samples)
    if isinstance(max_samples, Integral):
        n_keep = int(max_samples)
    else:
        n_keep = int(np.ceil(max_samples * n_samples))
    if n_keep >= n_samples:
        return np.arange(n_samples)
    rng = check_random_state(random_state)
    if not classifier:
        return np.sort(rng.choice(n_samples, size=n_keep, replace=False))
    if y.ndim == 2:
        indicator = np.asarray(y != 0)
    else:
        classes = np.unique(y, return_inverse=True)[1].ravel()
        indicator = np.zeros((n_samples, classes.max() + 1), dtype=bool)
        indicator[np.arange(n_samples), classes] = True
    # The fold count whose whole folds come closest to n_keep rows.
    n_folds = np.arange(2, max(3, min(n_samples, _SUBSAMPLE_FOLDS) + 1))
    share = n_keep / n_samples
    n_folds = int(n_folds[np.argmin(np.abs(np.round(share * n_folds) / n_folds - share))])
    fold = _iterative_stratification(indicator, n_folds, rng)
    # Whole folds first (each stratified), in random order within a fold.
    order = np.lexsort((rng.random_sample(n_samples), fold))
    return np.sort(order[:n_keep])


class _MemoisedFitness:
    """Fitness of a population: memoised by block mask, new masks evaluated in parallel."""

    def __init__(self, parallel, evaluate, context):
        self.parallel = parallel
        self.evaluate = evaluate
        self.context = context
        self.memo = {}
        self.n_evaluations = 0
        self.cache_hits = 0

    def __call__(self, population):
        keys = [np.packbits(individual).tobytes() for individual in population]
        new = {}
        for key, individual in zip(keys, population):
            if key not in self.memo and key not in new:
                new[key] = individual
        self.cache_hits += len(keys) - len(new)
        scores = self.parallel(self.evaluate(mask, **self.context) for mask in new.values())
        self.memo.update(zip(new, scores))
        self.n_evaluations += len(new)
        return np.array([self.memo[key] for key in keys], dtype=np.float64)

    def score_of(self, individual):
        """Fitness of one individual outside the search: from the memo, else evaluated.

        Neither the memo nor the counters change, so the search's accounting
        (``n_evaluations + cache_hits == population_size * generations``) and its
        checkpoints stay those of the search alone.
        """
        key = np.packbits(individual).tobytes()
        if key in self.memo:
            return float(self.memo[key])
        (score,) = self.parallel([self.evaluate(individual, **self.context)])
        return float(score)


def _ignore_search_warnings():
    """Silence, within a ``catch_warnings`` block, what many fitness evaluations warn.

    An F1 term undefined in a test fold, or a label too rare in a fold for a
    ThresholdTuner's inner folds, are expected in a search over small folds.
    """
    for category in (UndefinedMetricWarning, UndecidableThresholdWarning, StratificationWarning):
        warnings.simplefilter("ignore", category)


def _refit_cv_score(mask, *, X, blocks, folds, y, estimator, scorer):
    """Mean cross-validated score of ``estimator`` fitted on the columns of ``mask``."""
    columns = np.sort(np.concatenate([blocks[b] for b in np.flatnonzero(mask)]))
    scores = []
    with warnings.catch_warnings():
        _ignore_search_warnings()
        for train, test in folds:
            fitted = clone(estimator).fit(X[np.ix_(train, columns)], y[train])
            scores.append(scorer(fitted, X[np.ix_(test, columns)], y[test]))
    return float(np.mean(scores))


def _kernel_cv_score(mask, *, pieces, moments, widths, folds, kernel, estimator, scorer):
    """The same score as :func:`_refit_cv_score`, from summed per-block kernel pieces."""
    summed = _kernels.sum_pieces(pieces, mask)
    n_features = int(widths[mask].sum())
    # One clone serves every fold: fit resets it, and the scorer only reads it.
    model = clone(estimator)
    scores = []
    with warnings.catch_warnings():
        _ignore_search_warnings()
        for (train, test, y_train, y_test), fold_moments in zip(folds, moments):
            gamma = _kernels.resolve_gamma(kernel["gamma"], fold_moments, mask, n_features)
            shape = dict(gamma=gamma, degree=kernel["degree"], coef0=kernel["coef0"])
            k_train = summed.take(train, axis=0).take(train, axis=1)
            k_train = _kernels.apply_kernel(k_train, kernel["kernel"], **shape)
            k_test = _kernels.apply_kernel(
                summed.take(test, axis=0).take(train, axis=1), kernel["kernel"], **shape
            )
            model.fit(k_train, y_train)
            scores.append(scorer(model, k_test, y_test))
    return float(np.mean(scores))


def _kernel_context(X, y, blocks, folds, kernel, temp_folder):
    """Arguments of :func:`_kernel_cv_score`: the pieces over the samples the folds use."""
    rows = np.unique(np.concatenate([np.concatenate(f) for f in folds]))
    position = np.full(X.shape[0], -1)
    position[rows] = np.arange(rows.size)
    X_rows = X[rows]
    shape = (len(blocks), rows.size, rows.size)
    kind = _kernels.PIECE_KIND[kernel["kernel"]]
    if temp_folder is None:
        pieces = _kernels.block_pieces(X_rows, blocks, kind)
    else:
        # Workers open this file memory-mapped: joblib passes a memmap by reference,
        # so no worker receives a copy of the pieces.
        path = os.path.join(temp_folder, "pieces.npy")
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=shape)
        _kernels.block_pieces(X_rows, blocks, kind, out=out)
        out.flush()
        del out
        pieces = np.load(path, mmap_mode="r")
    local_folds = [(position[train], position[test], y[train], y[test]) for train, test in folds]
    moments = [_kernels.block_moments(X_rows, blocks, f[0]) for f in local_folds]
    return dict(
        pieces=pieces,
        moments=moments,
        widths=np.array([b.size for b in blocks]),
        folds=local_folds,
        kernel=kernel,
    )


def _precomputable_kernel(estimator):
    """Kernel parameters of an SVM that accepts kernel="precomputed", else None.

    The SVM may be wrapped in BinaryRelevance and ThresholdTuner: they fit it on rows
    of the same matrix, which they slice as a kernel (pairwise tag). "param" is the
    ``set_params`` name of its kernel.
    """
    prefix, inner_folds = "", False
    while isinstance(estimator, (ThresholdTuner, BinaryRelevance)):
        inner_folds = inner_folds or isinstance(estimator, ThresholdTuner)
        estimator, prefix = estimator.estimator, prefix + "estimator__"
    if not isinstance(estimator, (SVC, NuSVC, LabelPowersetSVM)):
        return None
    params = estimator.get_params(deep=False)
    if params.get("kernel") not in _kernels.PIECE_KIND:
        return None
    gamma = params.get("gamma", "scale")
    if inner_folds and params["kernel"] != "linear" and gamma == "scale":
        # gamma="scale" depends on the training rows, and a ThresholdTuner's inner folds
        # train on fewer rows than the fold whose kernel would be precomputed.
        return None
    return {
        "kernel": params["kernel"],
        "gamma": gamma,
        "degree": params.get("degree", 3),
        "coef0": params.get("coef0", 0.0),
        "param": prefix + "kernel",
    }


# --- search state and checkpoints -----------------------------------------------------


class _Run:
    """State of one search: the current generation, its history, the generator and memo."""

    def __init__(self, fitness, rng, parsimony=0.0):
        self.fitness = fitness
        self.rng = rng
        self.parsimony = parsimony
        self.generation = -1
        self.population = None
        self.scores = None
        self.history = {key: [] for key in _HISTORY_KEYS}

    def penalised(self, scores, individuals):
        """Scores minus ``parsimony`` times the share of blocks: what the search ranks by."""
        individuals = np.asarray(individuals, dtype=bool)
        return scores - self.parsimony * individuals.sum(axis=-1) / individuals.shape[-1]

    def ranking_scores(self):
        """The current generation's penalised scores, for breeding the next one."""
        return self.penalised(self.scores, self.population)

    def evaluate(self, population):
        self.generation += 1
        self.population = population
        self.scores = self.fitness(population)
        best = np.argmin(_ga_ops.rank(self.ranking_scores(), population))
        finite = self.scores[np.isfinite(self.scores)]
        self.history["best_score"].append(float(self.scores[best]))
        self.history["mean_score"].append(float(finite.mean()) if finite.size else np.nan)
        self.history["std_score"].append(float(finite.std()) if finite.size else np.nan)
        self.history["best_individual"].append(population[best].copy())
        self.history["n_evaluations"].append(self.fitness.n_evaluations)

    def history_arrays(self):
        arrays = {
            key: np.asarray(self.history[key], dtype=dtype)
            for key, dtype in zip(_HISTORY_KEYS, _HISTORY_DTYPES)
        }
        # Derived rather than stored, so checkpoints keep their layout.
        arrays["best_penalised_score"] = self.penalised(
            arrays["best_score"], arrays["best_individual"]
        )
        return arrays

    def best_generation(self):
        """Generation that first found the best individual: best penalised score, then
        fewer blocks."""
        individuals = np.asarray(self.history["best_individual"], dtype=bool)
        scores = np.asarray(self.history["best_score"], dtype=np.float64)
        return int(np.argmin(_ga_ops.rank(self.penalised(scores, individuals), individuals)))

    def best(self):
        """Best individual of all generations and its score."""
        best = self.best_generation()
        return self.history["best_individual"][best].copy(), float(self.history["best_score"][best])

    def state(self):
        best_individual, best_score = self.best()
        return GenerationState(
            generation=self.generation,
            population=self.population.copy(),
            scores=self.scores.copy(),
            best_individual=best_individual,
            best_score=best_score,
            history=self.history_arrays(),
            n_evaluations=self.fitness.n_evaluations,
            cache_hits=self.fitness.cache_hits,
        )

    def snapshot(self):
        """Everything a resumed search needs, as a dict of arrays for DiskCache."""
        memo = self.fitness.memo
        keys = list(memo)
        history = {f"history_{key}": value for key, value in self.history_arrays().items()}
        return {
            "generation": self.generation,
            "population": self.population,
            "scores": self.scores,
            "rng_state": json.dumps(self.rng.bit_generator.state),
            "memo_keys": np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1),
            "memo_scores": np.array([memo[key] for key in keys], dtype=np.float64),
            "n_evaluations": self.fitness.n_evaluations,
            "cache_hits": self.fitness.cache_hits,
            **history,
        }

    def restore(self, saved):
        self.rng.bit_generator.state = json.loads(str(saved["rng_state"]))
        self.fitness.memo = {
            key.tobytes(): float(score)
            for key, score in zip(saved["memo_keys"], saved["memo_scores"])
        }
        self.fitness.n_evaluations = int(saved["n_evaluations"])
        self.fitness.cache_hits = int(saved["cache_hits"])
        self.generation = int(saved["generation"])
        self.population = saved["population"].astype(bool)
        self.scores = saved["scores"]
        self.history = {key: list(saved[f"history_{key}"]) for key in _HISTORY_KEYS}
