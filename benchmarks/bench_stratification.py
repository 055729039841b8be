"""Benchmark: protloc's MultilabelStratifiedKFold against scikit-multilearn's.

Splits the full 31,072-row HPA 2018 label table into 5 folds with
``protloc.model_selection.MultilabelStratifiedKFold`` and with
``skmultilearn.model_selection.IterativeStratification(n_splits=5, order=1)`` (and, for
reference, ``iterstrat``'s MultilabelStratifiedKFold) in the same process, and prints
the wall-time ratio (goal: protloc >= 10x faster than scikit-multilearn) and the
balance measures of Sechidis et al. (2011):

- LD, label distribution: mean over labels and folds of the absolute difference
  between the fold's and the whole set's positive/negative ratio (lower is better);
- LPD, label-pair distribution: the same over the label pairs that co-occur;
- ED, examples distribution: mean absolute deviation of fold sizes from n/k;
- FZ / FZLP: (fold, label) and (fold, label pair) cells left with no positive
  although the label (pair) has at least k positives (lower is better);
- max |count dev| and max |prop dev|: the largest deviation of a label's per-fold positive count from its
  ideal count D_i / k, in samples; and the largest deviation of a label's per-fold
  positive proportion from its global proportion, in percentage points.

Run: ``python benchmarks/bench_stratification.py [--labels PATH] [--repeats 3]``.
The label table is read from ``$PROTLOC_HPA_LABELS`` or ``../shared/data``; the script
exits cleanly with a message when it is absent.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from protloc.io import read_labels
from protloc.model_selection import MultilabelStratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT.parent / "shared" / "data" / "hpa2018-train-labels.csv"


def test_folds_of(splits, n_samples):
    folds = np.full(n_samples, -1)
    for j, (_, test) in enumerate(splits):
        folds[test] = j
    if (folds < 0).any():
        raise RuntimeError("a sample is in no test fold")
    return folds


def balance(Y, folds, n_splits):
    """Sechidis et al. (2011) stratification measures of a fold assignment."""
    Y = Y.astype(np.int64)
    n, q = Y.shape
    onehot = np.eye(n_splits, dtype=np.int64)[folds]  # (n, k)
    sizes = onehot.sum(axis=0).astype(float)
    per_fold = onehot.T @ Y  # (k, q) positives per fold and label
    total = Y.sum(axis=0)

    def distribution(fold_pos, all_pos):
        keep = all_pos > 0
        fold_pos, all_pos = fold_pos[:, keep], all_pos[keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            fold_ratio = fold_pos / (sizes[:, None] - fold_pos)
            all_ratio = all_pos / (n - all_pos)
        return float(np.mean(np.abs(fold_ratio - all_ratio)))

    pair_total = Y.T @ Y
    iu = np.triu_indices(q, k=1)
    pairs = pair_total[iu] > 0
    first, second = iu[0][pairs], iu[1][pairs]
    pair_pos = onehot.T @ (Y[:, first] * Y[:, second])
    pair_all = pair_total[iu][pairs]
    ideal = total / n_splits
    proportion = per_fold / sizes[:, None]
    return {
        "LD": distribution(per_fold, total),
        "LPD": distribution(pair_pos, pair_all),
        "ED": float(np.mean(np.abs(sizes - n / n_splits))),
        "FZ": int(((per_fold == 0) & (total >= n_splits)).sum()),
        "FZLP": int(((pair_pos == 0) & (pair_all >= n_splits)).sum()),
        "max |count dev|": float(np.abs(per_fold - ideal).max()),
        "max |prop dev| pp": float(100 * np.abs(proportion - total / n).max()),
    }


def timed_runs(make, n_samples, repeats):
    """Best wall time over ``repeats`` runs, and the fold assignment of each run."""
    times, assignments = [], []
    for seed in range(repeats):
        start = time.perf_counter()
        folds = test_folds_of(make(seed), n_samples)
        times.append(time.perf_counter() - start)
        assignments.append(folds)
    return min(times), assignments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=os.environ.get("PROTLOC_HPA_LABELS", DEFAULT_LABELS))
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per splitter: best time, mean balance"
    )
    parser.add_argument("--n-splits", type=int, default=5)
    args = parser.parse_args(argv)
    if not Path(args.labels).is_file():
        print(
            f"Label table {args.labels} is absent: nothing to benchmark (set PROTLOC_HPA_LABELS)."
        )
        return 0
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold as IterstratKFold
    from skmultilearn.model_selection import IterativeStratification

    _, Y = read_labels(args.labels)
    n, k = len(Y), args.n_splits
    X = np.zeros((n, 1))
    print(
        f"label table: {n} samples x {Y.shape[1]} labels, {Y.sum() / n:.2f} labels/sample; "
        f"{k} folds; {args.repeats} runs each (seeds 0..{args.repeats - 1}): best time, "
        "mean balance"
    )

    runs = {
        "protloc (shuffle=False)": lambda seed: MultilabelStratifiedKFold(k).split(X, Y),
        "protloc (shuffle=True)": lambda seed: MultilabelStratifiedKFold(
            k, shuffle=True, random_state=seed
        ).split(X, Y),
        # scikit-multilearn draws ties from numpy's global generator: not seedable here.
        "skmultilearn IterativeStratification": lambda seed: IterativeStratification(
            n_splits=k, order=1
        ).split(X, Y),
        "iterstrat MultilabelStratifiedKFold": lambda seed: IterstratKFold(
            n_splits=k, shuffle=True, random_state=seed
        ).split(X, Y),
    }
    results = {}
    with warnings.catch_warnings():
        # Silence third-party deprecation noise; HPA's rarest label (11) fills 5 folds anyway.
        warnings.simplefilter("ignore")
        for name, make in runs.items():
            seconds, assignments = timed_runs(make, n, args.repeats)
            scores = [balance(Y, folds, k) for folds in assignments]
            results[name] = (
                seconds,
                {m: float(np.mean([s[m] for s in scores])) for m in scores[0]},
            )

    base = results["skmultilearn IterativeStratification"][0]
    measures = list(next(iter(results.values()))[1])
    header = f"{'splitter':<38} {'time s':>8} {'speed-up':>9} " + " ".join(
        f"{m:>{max(len(m), 8)}}" for m in measures
    )
    print(header)
    print("-" * len(header))
    for name, (seconds, scores) in results.items():
        cells = " ".join(
            f"{scores[m]:>{max(len(m), 8)}.{1 if m.startswith('FZ') else 5}f}" for m in measures
        )
        print(f"{name:<38} {seconds:>8.3f} {base / seconds:>8.1f}x {cells}")
    ratio = base / results["protloc (shuffle=False)"][0]
    print(
        f"\nprotloc is {ratio:.1f}x faster than scikit-multilearn (goal >= 10x): "
        f"{'met' if ratio >= 10 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
