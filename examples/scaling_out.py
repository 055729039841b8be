"""Scaling out: the genetic block search on local processes and on a Dask cluster.

GeneticBlockSelector scores the individuals of each generation in parallel through
joblib, so whatever joblib backend is active does the work: local processes
(``n_jobs``) or a Dask cluster (``joblib.parallel_config(backend="dask")``, which
needs ``pip install "protloc[dask]"``). All randomness comes from ``random_state``,
so every backend selects the same blocks; only the wall time changes.

The data are synthetic feature blocks, the shape CNNFeatureExtractor produces: a
few blocks carry the labels, the rest are noise.

Run::

    python examples/scaling_out.py                 # about a minute on 2 cores
    python examples/scaling_out.py --n-samples 1000 --n-blocks 48 --n-jobs 8
"""

import argparse
import time

import joblib
import numpy as np

from protloc import GeneticBlockSelector


def make_blocks(n_samples, n_blocks, block_width, n_informative, random_state):
    """Features in blocks of ``block_width`` columns; label k shifts one block's mean."""
    rng = np.random.default_rng(random_state)
    Y = (rng.random((n_samples, n_informative)) < 0.4).astype(np.uint8)
    Y[Y.sum(axis=1) == 0, rng.integers(n_informative)] = 1  # at least one label, as in HPA
    X = rng.normal(size=(n_samples, n_blocks, block_width)).astype(np.float32)
    informative = np.sort(rng.choice(n_blocks, n_informative, replace=False))
    for k, block in enumerate(informative):
        X[:, block, : block_width // 2] += 1.5 * Y[:, k, None]
    return X.reshape(n_samples, -1), Y, informative.tolist()


def search(X, Y, args, n_jobs):
    selector = GeneticBlockSelector(
        blocks=args.block_width,  # consecutive blocks of this many columns
        cv=3,
        population_size=args.population_size,
        generations=args.generations,
        early_stopping=False,  # run every generation, so timings compare
        n_jobs=n_jobs,
        random_state=0,
        progress=False,
    )
    start = time.perf_counter()
    selector.fit(X, Y)
    return selector, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--n-blocks", type=int, default=24)
    parser.add_argument("--block-width", type=int, default=16)
    parser.add_argument("--population-size", type=int, default=20)
    parser.add_argument("--generations", type=int, default=15)
    parser.add_argument("--n-jobs", type=int, default=2, help="local worker processes")
    args = parser.parse_args()

    X, Y, informative = make_blocks(
        args.n_samples, args.n_blocks, args.block_width, n_informative=3, random_state=0
    )
    print(
        f"X {X.shape}: {args.n_blocks} blocks of {args.block_width} columns; "
        f"Y {Y.shape}; informative blocks {informative}"
    )

    runs = {}
    runs["serial (n_jobs=1)"] = search(X, Y, args, n_jobs=1)
    runs[f"local processes (n_jobs={args.n_jobs})"] = search(X, Y, args, n_jobs=args.n_jobs)

    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print('Dask backend skipped: install it with pip install "protloc[dask]".')
    else:
        # A real cluster is Client("scheduler-address:8786"); the code does not change.
        with (
            LocalCluster(
                n_workers=args.n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster),
            joblib.parallel_config(backend="dask"),
        ):
            runs["dask LocalCluster"] = search(X, Y, args, n_jobs=-1)

    reference = runs["serial (n_jobs=1)"][0]
    print(f"\n{'backend':<32} {'time (s)':>9} {'best F1':>8}  selected blocks")
    for name, (selector, seconds) in runs.items():
        blocks = np.flatnonzero(selector.block_support_).tolist()
        print(f"{name:<32} {seconds:9.1f} {selector.best_score_:8.3f}  {blocks}")
        # Parallelism changes the speed, never the result.
        np.testing.assert_array_equal(selector.block_support_, reference.block_support_)
        np.testing.assert_allclose(
            selector.history_["best_score"], reference.history_["best_score"]
        )
    found = np.flatnonzero(reference.block_support_).tolist()
    print(
        f"\nSame selection on every backend; fitness method: {reference.fitness_method_}, "
        f"{reference.n_evaluations_} evaluations, {reference.cache_hits_} memo hits."
    )
    print(
        f"Informative blocks {informative}, selected {found}: "
        f"{'found exactly' if found == informative else 'not exactly (run longer)'}."
    )


if __name__ == "__main__":
    main()
