"""Benchmark: GeneticBlockSelector's kernel-sum fitness against refitting on columns.

Synthetic multi-label data shaped like T25's feature blocks: 48 blocks x 64 columns,
1,000 samples, 6 labels with HPA-like prevalences (40% down to 5%; about 40 distinct
label sets, the classes of the label powerset). Every block shares a low-rank
"appearance" component; 4 blocks carry a strong and 8 a weak code of the labels,
the rest are noise. The estimator is the default ``LabelPowersetSVM()`` (RBF,
``gamma="scale"``), scored by ``f1_macro`` over 5 multi-label stratified folds.

Prints, in the same process:

1. the time of one generation (the same random individuals, 5-fold CV each) with
   ``fitness="kernel"`` (per-block squared distances computed once, included in the
   time) against ``fitness="refit"``, which fits the SVM on the concatenated columns
   for every individual and fold, in two flavours:

   - naive: ``LabelPowersetSVM(precompute_kernel=False)``, where libsvm computes the
     kernel rows itself, exactly as ``SVC`` (and column-wise GA selectors) do; this is
     the baseline of the goal (>= 20x);
   - per-fit BLAS kernel: the default ``LabelPowersetSVM()``, which computes each
     fit's kernel once with BLAS before libsvm runs;

   and the time of libsvm alone (fit and predict of every fold on kernels built
   outside the timed region), the part of a fitness no kernel trick can remove;
2. whether the kernel and refit fitnesses are identical for every individual;
3. a full search of 50 generations x 50 individuals with the kernel fitness,
   ``n_jobs=2`` and early stopping off (goal < 60 s on 2 cores), on the selector's
   default backend (threads) or ``--backend loky``.

Run: ``python benchmarks/bench_genetic.py [--population 50] [--skip-full | --full-only] [--n-labels 6]
[--width 64] [--backend loky]``.
A smaller ``--population`` shortens part 1 (the naive generation takes minutes).
"""

import argparse
import os
import platform
import time

import numpy as np
from joblib import parallel_config
from sklearn.metrics.pairwise import rbf_kernel
from threadpoolctl import threadpool_limits

from protloc.model_selection import MultilabelStratifiedKFold
from protloc.multilabel import LabelPowersetSVM
from protloc.selection import GeneticBlockSelector

PREVALENCE = (0.40, 0.25, 0.15, 0.10, 0.10, 0.05)


def make_blocks(n_samples=1000, n_blocks=48, width=64, n_labels=6, n_strong=4, n_weak=8, seed=0):
    """X of ``n_blocks`` blocks of ``width`` columns and a 0/1 label matrix Y."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n_samples, n_labels)) < PREVALENCE[:n_labels]).astype(np.int64)
    Y[Y.sum(axis=1) == 0, 0] = 1  # every HPA image has at least one label
    appearance = rng.normal(size=(n_samples, 8))
    order = rng.permutation(n_blocks)
    strength = np.zeros(n_blocks)
    strength[order[:n_strong]] = 1.0
    strength[order[n_strong : n_strong + n_weak]] = 0.3
    X = np.empty((n_samples, n_blocks * width))
    for b in range(n_blocks):
        block = 0.5 * appearance @ rng.normal(size=(8, width))
        block += rng.normal(size=(n_samples, width))
        block += strength[b] * Y @ rng.normal(size=(n_labels, width))
        X[:, b * width : (b + 1) * width] = block
    return X, Y, np.sort(order[:n_strong])


class Recorder:
    """Callback keeping every generation's population and scores."""

    def __init__(self):
        self.populations, self.scores = [], []

    def __call__(self, state):
        self.populations.append(state.population)
        self.scores.append(state.scores)


def one_generation(X, Y, fitness, population_size, width, estimator=None):
    recorder = Recorder()
    selector = GeneticBlockSelector(
        estimator,
        blocks=width,
        population_size=population_size,
        generations=1,
        fitness=fitness,
        callbacks=[recorder],
        random_state=0,
        progress=False,
    )
    start, cpu = time.perf_counter(), time.process_time()
    selector.fit(X, Y)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return (wall, cpu), recorder.populations[0], recorder.scores[0]


def solver_floor(X, Y, population, width):
    """Wall time of only fitting and predicting the SVM of every fold on ready kernels.

    This is what no kernel trick removes: libsvm's solver and prediction (plus the
    estimator's own input checks). The kernels are built outside the timed region,
    with one BLAS thread so that no idle BLAS worker spins inside it.
    """
    folds = list(MultilabelStratifiedKFold(5).split(X, Y))  # the selector's default cv=5
    blocks = [np.arange(b * width, (b + 1) * width) for b in range(X.shape[1] // width)]
    estimator = LabelPowersetSVM(kernel="precomputed")
    elapsed = 0.0
    with threadpool_limits(limits=1):
        for mask in population:
            columns = np.concatenate([blocks[b] for b in np.flatnonzero(mask)])
            for train, test in folds:
                X_train, X_test = X[np.ix_(train, columns)], X[np.ix_(test, columns)]
                gamma = 1.0 / (X_train.shape[1] * X_train.var())  # gamma="scale"
                k_train = rbf_kernel(X_train, X_train, gamma=gamma)
                k_test = rbf_kernel(X_test, X_train, gamma=gamma)
                start = time.perf_counter()
                estimator.fit(k_train, Y[train]).predict(k_test)
                elapsed += time.perf_counter() - start
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--skip-full", action="store_true", help="parts 1 and 2 only")
    parser.add_argument("--full-only", action="store_true", help="part 3 only")
    parser.add_argument("--width", type=int, default=64, help="columns per block")
    parser.add_argument(
        "--n-labels", type=int, default=6, choices=range(1, 7),
        help="fewer labels mean fewer label sets, so cheaper libsvm solves",
    )  # fmt: skip
    parser.add_argument("--backend", default=None, help="joblib backend of the full search")
    args = parser.parse_args()

    X, Y, strong = make_blocks(width=args.width, n_labels=args.n_labels)
    n_sets = np.unique(Y, axis=0).shape[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; numpy {np.__version__}")
    print(
        f"data: X {X.shape} in 48 blocks x {args.width} columns; Y {Y.shape} with {n_sets} distinct "
        f"label sets; strong blocks {strong.tolist()}"
    )

    if not args.full_only:
        compare_generation(X, Y, args.population, args.width)
    if not args.skip_full:
        full_search(X, Y, args.width, strong, args.backend)


def compare_generation(X, Y, k, width):
    """Parts 1 and 2: one generation, kernel fitness against the refit baselines."""
    fast_time, population, fast_scores = one_generation(X, Y, "kernel", k, width)
    naive = LabelPowersetSVM(precompute_kernel=False)
    naive_time, naive_population, naive_scores = one_generation(X, Y, "refit", k, width, naive)
    blas_time, blas_population, blas_scores = one_generation(X, Y, "refit", k, width)
    for other in (naive_population, blas_population):
        if not (other == population).all():
            raise RuntimeError("the runs drew different individuals")
    print(f"\n1. one generation of {k} individuals ({population.sum(axis=1).mean():.1f} blocks")
    print("   on average), 5-fold CV each, one process:")
    print(
        f"   kernel fitness        : {fast_time[0]:7.1f} s wall, {fast_time[1]:7.1f} s CPU "
        "(per-block pieces included)"
    )
    for name, (wall, cpu), goal in (
        ("naive refit          ", naive_time, " (goal >= 20x)"),
        ("refit, per-fit kernel", blas_time, ""),
    ):
        print(
            f"   {name} : {wall:7.1f} s wall, {cpu:7.1f} s CPU -> speed-up "
            f"{wall / fast_time[0]:5.1f}x wall, {cpu / fast_time[1]:5.1f}x CPU{goal}"
        )
    floor = solver_floor(X, Y, population, width)
    print(
        f"   libsvm alone          : {floor:7.1f} s wall (fit + predict on ready kernels) -> "
        f"the kernel fitness costs {fast_time[0] / floor:.2f}x the solver alone"
    )
    for name, other in (("naive refit", naive_scores), ("per-fit kernel", blas_scores)):
        diff = np.abs(fast_scores - other)
        print(
            f"\n2. identical fitness, kernel vs {name}: {bool((diff == 0).all())} "
            f"(max |difference| {diff.max():.3g} over {k} individuals; "
            f"f1_macro {other.min():.3f} .. {other.max():.3f})"
        )


def full_search(X, Y, width, strong, backend, n_jobs=2, n_floor_samples=40, size=50):
    """Part 3: the 50 x 50 search, and what libsvm alone would need for it."""
    recorder = Recorder()
    selector = GeneticBlockSelector(
        blocks=width,
        population_size=size,
        generations=size,
        early_stopping=False,
        n_jobs=n_jobs,
        callbacks=[recorder],
        random_state=0,
        progress=False,
    )
    start = time.perf_counter()
    with parallel_config(**({} if backend is None else {"backend": backend})):
        selector.fit(X, Y)
    full_time = time.perf_counter() - start
    found = np.flatnonzero(selector.block_support_).tolist()
    print(
        f"\n3. full search, {size} generations x {size} individuals, n_jobs={n_jobs}, backend "
        f"{backend or 'default (threads)'}: {full_time:.1f} s (goal < 60 s)"
    )
    print(
        f"   {selector.n_evaluations_} evaluations "
        f"({full_time / selector.n_evaluations_:.3f} s each on {n_jobs} workers), "
        f"{selector.cache_hits_} cache hits; best f1_macro {selector.best_score_:.3f} "
        f"with blocks {found} (strong: {strong.tolist()})"
    )
    # A lower bound for any exact fitness: libsvm's own fits and predictions for the
    # search's distinct individuals, estimated from a random sample of them.
    distinct = np.unique(np.concatenate(recorder.populations), axis=0)
    rng = np.random.default_rng(0)
    sample = distinct[rng.choice(len(distinct), min(n_floor_samples, len(distinct)), replace=False)]
    per_evaluation = solver_floor(X, Y, sample, width) / len(sample)
    floor = per_evaluation * selector.n_evaluations_ / n_jobs
    print(
        f"   libsvm alone for these {selector.n_evaluations_} evaluations: about {floor:.0f} s "
        f"on {n_jobs} workers ({per_evaluation:.3f} s per evaluation, from {len(sample)} "
        f"sampled individuals) -> the search costs {full_time / floor:.2f}x the solver alone"
    )


if __name__ == "__main__":
    main()
