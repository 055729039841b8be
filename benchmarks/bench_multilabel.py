"""Benchmark: LabelPowersetSVM against scikit-multilearn, and on the real HPA label structure.

Prints, in one process:

1. fit+predict time of ``LabelPowersetSVM()`` against scikit-multilearn's
   ``LabelPowerset(SVC())`` on the same data, runs interleaved, median of
   ``--repeats`` (goal: ratio <= 1.0x), and whether the predictions are identical.
   Data: ``make_multilabel_classification`` with 256 features and 10 labels;
2. the 31,072 label rows of the HPA 2018 training table
   (``../shared/data/hpa2018-train-labels.csv`` or ``$PROTLOC_HPA_LABELS``): the
   number of distinct label combinations kept for each ``min_combination_count``;
3. on a random subsample of those rows (``--n-train`` + ``--n-test``) with 256
   synthetic features (a per-label signal, a per-combination signal and noise):
   fit and predict CPU time, combinations kept and held-out macro-F1 for each
   ``min_combination_count``. One-vs-one SVM trains one binary SVM per pair of
   combinations, so merging rare ones shortens the fit.

Run: ``python benchmarks/bench_multilabel.py [--repeats 5] [--n-train 4000] [--n-test 2000]``
"""

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_multilabel_classification
from sklearn.metrics import f1_score
from sklearn.svm import SVC

from protloc.io import read_labels
from protloc.multilabel import LabelPowersetSVM
from protloc.multilabel._powerset import encode_combinations

ROOT = Path(__file__).resolve().parents[1]
COUNTS = (1, 2, 5, 10, 20, 50)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def cpu_timed(fn):
    """Wall time and this process's CPU time, which other jobs inflate less."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def fit_predict(model, X_train, Y_train, X_test):
    return model.fit(X_train, Y_train).predict(X_test)


def against_skmultilearn(repeats):
    from skmultilearn.problem_transform import LabelPowerset

    X, Y = make_multilabel_classification(
        n_samples=3000, n_features=256, n_classes=10, n_labels=2, random_state=0
    )
    X_train, Y_train, X_test = X[:2000], Y[:2000], X[2000:]
    n_combos = len(np.unique(Y_train, axis=0))
    print(
        f"[1] fit+predict, 2000 train / 1000 test samples, 256 features, 10 labels, "
        f"{n_combos} combinations; median of {repeats} interleaved runs"
    )
    runs = {"ours": [], "theirs": []}
    for _ in range(repeats):
        wall, cpu, ours = cpu_timed(
            lambda: fit_predict(LabelPowersetSVM(), X_train, Y_train, X_test)
        )
        runs["ours"].append((wall, cpu))
        with warnings.catch_warnings():
            # scikit-learn mistakes many combination classes for a regression target
            warnings.simplefilter("ignore", UserWarning)
            wall, cpu, theirs = cpu_timed(
                lambda: fit_predict(LabelPowerset(SVC()), X_train, Y_train, X_test)
            )
        runs["theirs"].append((wall, cpu))
    (a_wall, a_cpu), (b_wall, b_cpu) = (
        [statistics.median(t[i] for t in runs[k]) for i in (0, 1)] for k in ("ours", "theirs")
    )
    same = np.array_equal(ours, theirs.toarray())
    print("                                           wall s    CPU s")
    print(f"    protloc LabelPowersetSVM():          {a_wall:8.3f} {a_cpu:8.3f}")
    print(f"    skmultilearn LabelPowerset(SVC()):   {b_wall:8.3f} {b_cpu:8.3f}")
    print(
        f"    ratio protloc / skmultilearn:        {a_wall / b_wall:7.3f}x {a_cpu / b_cpu:7.3f}x"
        "  (goal <= 1.0x)"
    )
    without = LabelPowersetSVM(precompute_kernel=False)
    wall, cpu, plain = cpu_timed(lambda: fit_predict(without, X_train, Y_train, X_test))
    print(
        f"    protloc, precompute_kernel=False:    {wall:8.3f} {cpu:8.3f}  (one run; "
        f"{cpu / b_cpu:.3f}x skmultilearn CPU)"
    )
    print(
        f"    identical predictions (default / precompute_kernel=False): "
        f"{same} / {np.array_equal(plain, theirs.toarray())}"
    )


def hpa_labels():
    env = os.environ.get("PROTLOC_HPA_LABELS")
    path = Path(env) if env else ROOT.parent / "shared" / "data" / "hpa2018-train-labels.csv"
    if not path.is_file():
        return None
    return read_labels(path)[1]


def combination_counts(Y):
    print(
        f"[2] HPA 2018 label table: {Y.shape[0]} rows, {Y.shape[1]} labels, "
        f"{Y.sum(axis=1).mean():.2f} labels per row"
    )
    for m in COUNTS:
        t, (_, combos, counts) = timed(lambda m=m: encode_combinations(Y, m))
        print(
            f"    min_combination_count={m:3d}: {len(combos):4d} combinations "
            f"(smallest {counts.min():5d} samples), encoded in {t:.3f} s"
        )


def synthetic_features(Y, n_features, rng):
    codes, combos, _ = encode_combinations(Y)
    label_effect = rng.normal(size=(Y.shape[1], n_features))
    combination_effect = 0.5 * rng.normal(size=(len(combos), n_features))
    noise = 2.0 * rng.normal(size=(len(Y), n_features))
    return Y @ label_effect + combination_effect[codes] + noise


def hpa_structure(Y, n_train, n_test):
    rng = np.random.default_rng(0)
    rows = rng.choice(len(Y), size=n_train + n_test, replace=False)
    Y = Y[rows].astype(np.int64)
    X = synthetic_features(Y, 256, rng)
    X_train, Y_train, X_test, Y_test = X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]
    print(
        f"[3] {n_train} train / {n_test} test rows drawn from the HPA table, 256 synthetic "
        f"features; {len(np.unique(Y_train, axis=0))} combinations in the training rows"
    )
    base = None
    for m in COUNTS:
        model = LabelPowersetSVM(min_combination_count=m)
        _, fit_cpu, _ = cpu_timed(lambda model=model: model.fit(X_train, Y_train))
        _, pred_cpu, pred = cpu_timed(lambda model=model: model.predict(X_test))
        f1 = f1_score(Y_test, pred, average="macro", zero_division=0)
        base = base or fit_cpu
        print(
            f"    min_combination_count={m:3d}: {len(model.combinations_):4d} combinations, "
            f"fit {fit_cpu:6.2f} CPU s ({fit_cpu / base:4.2f}x of m=1), "
            f"predict {pred_cpu:6.2f} CPU s, macro-F1 {f1:.3f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=2000)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    against_skmultilearn(args.repeats)
    Y = hpa_labels()
    if Y is None:
        print("[2, 3] skipped: HPA label table absent (set PROTLOC_HPA_LABELS)")
        return
    combination_counts(Y)
    hpa_structure(Y, args.n_train, args.n_test)


if __name__ == "__main__":
    main()
