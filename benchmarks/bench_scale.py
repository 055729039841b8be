"""Benchmark: the post-feature fit (scaler, genetic selector, classifiers) from 1,000 to 31,072 rows.

Labels: the real rows of HPA 2018 (``hpa2018-train-labels.csv``, 31,072 rows, 28 labels,
577 label combinations), found through ``PROTLOC_HPA_LABELS`` or ``../shared/data``
beside the repository; a smaller N is a multi-label stratified subsample of them (the
selector's own ``max_samples`` subsampling, seed 0).

Features: synthetic, float32, in T25's block structure: 48 blocks (12 backbones x 4
channels) of 256 columns. Four "label" blocks each carry a code of 7 of the 28 labels
(label j in block j % 4), two "combination" blocks carry a code of the label combination,
the other 42 blocks are noise; so a search must find several blocks, and no block alone
predicts every label. Row i's features do not depend on N (noise drawn in fixed chunks of
rows), so the sizes are nested.

Stages, each in a fresh subprocess (so its peak RSS, VmHWM from /proc/self/status with the
high-water mark reset after the data are built, is its own), on a stratified 80/20
train/test split:

- ``scaler``: StandardScaler fit_transform of the training rows;
- ``ga1``: one generation of GeneticBlockSelector (30 individuals);
- ``ga``: a full search, 30 individuals x 20 generations, early stopping after 10;
  both with ``max_samples=--max-samples`` (a stratified subsample for the fitness) when N
  is larger, and ``n_jobs=2``;
- ``lpsvm``: LabelPowersetSVM() (all label combinations) fit on the training rows of the
  6 signal blocks (1,536 columns; the same at every N, so the sizes compare), and predict
  of the test rows;
- ``br``: ThresholdTuner(BinaryRelevance(LinearSVC(dual=True))) fit and predict, same
  blocks. liblinear's dual solver at every N: on HPA's rare labels (a few dozen
  positives) its primal solver, which ``dual="auto"`` picks when N exceeds the 1,536
  columns, stops at ``max_iter`` after 10 s per label at N = 4,000, where the dual one
  converges in 0.2 s;
- ``skml``: scikit-multilearn's LabelPowerset(SVC()), same blocks, within
  ``--skml-limit`` seconds (if scikit-multilearn is installed);
- ``fit``: the whole post-feature fit in one process, as a user runs it:
  ``make_pipeline(StandardScaler(), GeneticBlockSelector(...), LabelPowersetSVM())``
  on all 48 blocks (the selector as in ``ga``), then predict of the test rows;
- ``agree`` (run it with ``--sizes <n> --stages agree`` at an N where the exact fitness runs): the fitness of 50
  random individuals exact and with ``max_samples=--agree-max-samples`` (Spearman rank
  correlation), then a full search with each and the held-out macro-F1 of LabelPowersetSVM
  on the blocks each selected.

Every stage prints wall time, peak RSS and macro-F1 on the held-out 20% (the GA stages
print the search's cross-validated fitness instead). Results go to ``--out`` (JSON,
written after every stage); ``--plot`` draws CPU time against N on log-log axes with the fitted
exponent of each stage (least squares on log time vs log N).

Run (as measured for docs/benchmarks.md)::

    nice -n 10 python benchmarks/bench_scale.py --sizes 1000,4000,16000,31072

``--stages`` picks stages; ``--report`` only refits and redraws from ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_LABELS = 28
N_BLOCKS, WIDTH = 48, 256
LABEL_BLOCKS = (3, 17, 30, 41)
COMBINATION_BLOCKS = (8, 25)
CHUNK = 1024
STAGES = ("scaler", "ga1", "ga", "lpsvm", "br", "skml", "fit")
FIT_STAGES = ("scaler", "ga", "lpsvm")  # the post-feature fit of the goal, stage by stage


def labels_path():
    env = os.environ.get("PROTLOC_HPA_LABELS")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "hpa2018-train-labels.csv"


def load_labels():
    import pandas as pd

    table = pd.read_csv(labels_path())
    Y = np.zeros((len(table), N_LABELS), dtype=np.int64)
    for i, target in enumerate(table["Target"]):
        Y[i, [int(t) for t in str(target).split()]] = 1
    return Y


def subsample(Y, n):
    """Rows of a multi-label stratified subsample of size n (the selector's own)."""
    from protloc.selection._genetic import _fitness_samples

    return _fitness_samples(Y, n if n < len(Y) else None, True, 0)


def make_features(Y_full, rows, seed=0):
    """float32 features of ``rows``; row i's values do not depend on which rows are asked."""
    from protloc.multilabel._powerset import encode_combinations

    rng = np.random.default_rng(seed)
    label_codes = rng.normal(size=(len(LABEL_BLOCKS), N_LABELS, WIDTH)).astype(np.float32)
    for k in range(len(LABEL_BLOCKS)):
        label_codes[k, np.arange(N_LABELS) % len(LABEL_BLOCKS) != k] = 0
    codes, combinations, _ = encode_combinations(Y_full)
    combination_codes = rng.normal(size=(len(COMBINATION_BLOCKS), len(combinations), WIDTH))
    X = np.empty((rows.size, N_BLOCKS * WIDTH), dtype=np.float32)
    for start in range(0, len(Y_full), CHUNK):
        wanted = rows[(rows >= start) & (rows < start + CHUNK)]
        if wanted.size == 0:
            continue
        noise = np.random.default_rng([seed, start]).standard_normal(
            (CHUNK, N_BLOCKS * WIDTH), dtype=np.float32
        )
        X[np.searchsorted(rows, wanted)] = noise[wanted - start]
    Y = Y_full[rows].astype(np.float32)
    for k, b in enumerate(LABEL_BLOCKS):
        X[:, b * WIDTH : (b + 1) * WIDTH] += 1.0 * (Y @ label_codes[k])
    for k, b in enumerate(COMBINATION_BLOCKS):
        X[:, b * WIDTH : (b + 1) * WIDTH] += 1.0 * combination_codes[k][codes[rows]]
    return X


def cached_features(Y_full, rows):
    """make_features, saved once per N: building them takes minutes on a loaded machine."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / "protloc-bench-scale"
    path = folder / f"X_{rows.size}_{hash_rows(rows)}.npy"
    if path.exists():
        return np.load(path)
    X = make_features(Y_full, rows)
    folder.mkdir(exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with open(partial, "wb") as file:
        np.save(file, X)
    os.replace(partial, path)  # atomic: concurrent stages never read half a file
    return X


def hash_rows(rows):
    import hashlib

    return hashlib.sha1(rows.tobytes()).hexdigest()[:12]


def split(Y, seed=0):
    from protloc.model_selection import MultilabelStratifiedKFold

    cv = MultilabelStratifiedKFold(5, shuffle=True, random_state=seed)
    return next(cv.split(np.zeros(len(Y)), Y))


def block_columns(blocks):
    return np.concatenate([np.arange(b * WIDTH, (b + 1) * WIDTH) for b in sorted(blocks)])


def reset_peak():
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds():
    """CPU seconds of this process (all threads) and of its live child processes."""
    import psutil

    me = psutil.Process()
    total = time.process_time()
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def status_gib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def macro_f1(Y_true, Y_pred):
    from sklearn.metrics import f1_score

    return float(f1_score(Y_true, Y_pred, average="macro", zero_division=0))


def selector(args, n_train, *, population_size=30, generations=20, max_samples=None, **extra):
    from protloc.model_selection import MultilabelStratifiedKFold
    from protloc.multilabel import LabelPowersetSVM
    from protloc.selection import GeneticBlockSelector

    if max_samples is None and n_train > args.max_samples:
        max_samples = args.max_samples
    return GeneticBlockSelector(
        LabelPowersetSVM(),
        blocks=WIDTH,
        # a splitter, not cv=5: HPA's rarest labels have fewer positives than folds
        # in a subsample, which the selector otherwise refuses
        cv=MultilabelStratifiedKFold(5),
        population_size=population_size,
        generations=generations,
        max_samples=max_samples,
        n_jobs=args.n_jobs,
        random_state=0,
        progress=False,
        **extra,
    )


def run_stage(stage, n, args):
    """One stage in this process; returns its figures."""
    Y_full = load_labels()
    rows = subsample(Y_full, n)
    Y = Y_full[rows]
    X = cached_features(Y_full, rows)
    train, test = split(Y)
    result = {"stage": stage, "n": int(n), "n_train": int(train.size), "n_test": int(test.size)}
    if stage in ("lpsvm", "br", "skml"):
        # the same 6 signal blocks (1,536 columns) at every N, so sizes compare
        blocks = sorted(LABEL_BLOCKS + COMBINATION_BLOCKS)
        X = np.ascontiguousarray(X[:, block_columns(blocks)])
        result["blocks"] = blocks
    X_train, X_test, Y_train, Y_test = X[train], X[test], Y[train], Y[test]
    del X
    result["data_gib"] = status_gib("VmRSS")
    result["peak_reset"] = reset_peak()
    start = time.perf_counter()
    cpu = cpu_seconds()
    if stage == "scaler":
        from sklearn.preprocessing import StandardScaler

        StandardScaler().fit_transform(X_train)
    elif stage in ("ga1", "ga"):
        model = selector(args, train.size, generations=1 if stage == "ga1" else 20)
        model.fit(X_train, Y_train)
        result.update(
            cv_f1=float(model.best_score_),
            selected_blocks=[int(b) for b in np.flatnonzero(model.block_support_)],
            fitness_samples=int(model.fitness_samples_.size),
            n_generations=int(model.n_generations_),
            n_evaluations=int(model.n_evaluations_),
            fitness_method=model.fitness_method_,
        )
    elif stage == "lpsvm":
        from protloc.multilabel import LabelPowersetSVM

        model = LabelPowersetSVM().fit(X_train, Y_train)
        result["fit_s"] = time.perf_counter() - start
        result.update(
            f1=macro_f1(Y_test, model.predict(X_test)),
            n_combinations=len(model.combinations_),
            precomputed_kernel=model.X_fit_ is not None,
        )
    elif stage == "br":
        from sklearn.svm import LinearSVC

        from protloc.multilabel import BinaryRelevance, ThresholdTuner

        # labels absent from the training rows of a small N cannot be fitted: skip them
        present = Y_train.sum(axis=0) >= 5
        # one process: worker processes would hide their CPU time and memory from the figures
        model = ThresholdTuner(BinaryRelevance(LinearSVC(dual=True)))
        model.fit(X_train, Y_train[:, present])
        predicted = np.zeros_like(Y_test)
        predicted[:, present] = model.predict(X_test)
        result.update(f1=macro_f1(Y_test, predicted), labels_fitted=int(present.sum()))
    elif stage == "skml":
        from sklearn.svm import SVC
        from skmultilearn.problem_transform import LabelPowerset

        model = LabelPowerset(SVC()).fit(X_train, Y_train)
        result["fit_s"] = time.perf_counter() - start
        result["f1"] = macro_f1(Y_test, model.predict(X_test).toarray())
    elif stage == "fit":
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from protloc.multilabel import LabelPowersetSVM

        ga = selector(args, train.size)
        model = make_pipeline(StandardScaler(), ga, LabelPowersetSVM()).fit(X_train, Y_train)
        result["fit_s"] = time.perf_counter() - start
        result.update(
            f1=macro_f1(Y_test, model.predict(X_test)),
            selected_blocks=[int(b) for b in np.flatnonzero(ga.block_support_)],
            n_generations=int(ga.n_generations_),
            n_evaluations=int(ga.n_evaluations_),
        )
    elif stage == "agree":
        result.update(agreement(args, X_train, Y_train, X_test, Y_test))
    else:
        raise ValueError(f"unknown stage {stage!r}; choose among {(*STAGES, 'agree')}")
    result["wall_s"] = time.perf_counter() - start
    result["cpu_s"] = cpu_seconds() - cpu
    result["peak_rss_gib"] = status_gib("VmHWM")
    return result


def agreement(args, X_train, Y_train, X_test, Y_test):
    """Exact vs subsampled fitness: rank agreement, and the held-out score of their picks."""
    from scipy.stats import spearmanr

    from protloc.multilabel import LabelPowersetSVM

    class Keep:
        def __call__(self, state):
            self.scores = state.scores
            self.population = state.population

    cheap_samples = args.agree_max_samples
    scores, population = {}, None
    for name, max_samples in (("exact", None), ("cheap", cheap_samples)):
        keep = Keep()
        model = selector(args, 0, population_size=50, generations=1, max_samples=max_samples)
        model.set_params(callbacks=[keep], elitism=0).fit(X_train, Y_train)
        scores[name] = keep.scores
        if population is not None:  # same seed, same random first generation
            np.testing.assert_array_equal(population, keep.population)
        population = keep.population
    out = {
        "agree_max_samples": cheap_samples,
        "spearman_50": float(spearmanr(scores["exact"], scores["cheap"]).statistic),
    }
    if args.agree_searches:
        for name, max_samples in (("exact", None), ("cheap", cheap_samples)):
            start = time.perf_counter()
            model = selector(args, 0, max_samples=max_samples).fit(X_train, Y_train)
            blocks = np.flatnonzero(model.block_support_)
            columns = block_columns(blocks)
            svm = LabelPowersetSVM().fit(X_train[:, columns], Y_train)
            out[f"{name}_search_s"] = time.perf_counter() - start
            out[f"{name}_blocks"] = [int(b) for b in blocks]
            out[f"{name}_test_f1"] = macro_f1(Y_test, svm.predict(X_test[:, columns]))
        out["f1_difference"] = out["cheap_test_f1"] - out["exact_test_f1"]
    return out


def load_results(path):
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def save_result(path, result):
    data = load_results(path)
    runs = [
        r for r in data.get("runs", []) if (r["n"], r["stage"]) != (result["n"], result["stage"])
    ]
    data["runs"] = sorted([*runs, result], key=lambda r: (r["n"], r["stage"]))
    data["machine"] = f"{platform.platform()}, {os.cpu_count()} CPUs"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))


def exponents(runs, key="wall_s"):
    """Least-squares slope of log(time) on log(N), per stage (2+ finished sizes)."""
    fitted = {}
    for stage in STAGES:
        points = [(r["n"], r[key]) for r in runs if r["stage"] == stage and key in r]
        if len({n for n, _ in points}) >= 2:
            n, t = np.log(np.array(points, dtype=float)).T
            slope, intercept = np.polyfit(n, t, 1)
            fitted[stage] = {"exponent": float(slope), "log_intercept": float(intercept)}
    return fitted


def report(args):
    data = load_results(args.out)
    runs = data.get("runs", [])
    data["exponents"] = exponents(runs)
    data["exponents_cpu"] = exponents(runs, "cpu_s")
    largest = 31072
    projection = {}
    for key, fitted in (("wall_s", data["exponents"]), ("cpu_s", data["exponents_cpu"])):
        for stage, fit in fitted.items():
            done = [r for r in runs if r["stage"] == stage and r["n"] == largest and key in r]
            if not done:
                seconds = float(np.exp(fit["log_intercept"]) * largest ** fit["exponent"])
                projection.setdefault(stage, {})[key] = seconds
    data["projected_at_31072"] = projection
    Path(args.out).write_text(json.dumps(data, indent=1))
    print(f"{'stage':8} {'N':>6} {'wall s':>9} {'cpu s':>9} {'peak GiB':>9} {'F1':>6}")
    for r in runs:
        f1 = r.get("f1", r.get("cv_f1", float("nan")))
        status = "" if "wall_s" in r else f"  ({r.get('error', 'did not finish')})"
        print(
            f"{r['stage']:8} {r['n']:6d} {r.get('wall_s', float('nan')):9.1f} "
            f"{r.get('cpu_s', float('nan')):9.1f} {r.get('peak_rss_gib', float('nan')):9.2f} "
            f"{f1:6.3f}{status}"
        )
    print("\n| stage | N | wall s | CPU s | peak RSS GiB | macro-F1 (held-out; GA: CV fitness) |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        f1 = r.get("f1", r.get("cv_f1"))
        cells = [
            r["stage"],
            f"{r['n']:,}",
            f"{r['wall_s']:.1f}" if "wall_s" in r else r.get("error", "did not finish"),
            f"{r['cpu_s']:.1f}" if "cpu_s" in r else "",
            f"{r['peak_rss_gib']:.2f}" if "peak_rss_gib" in r else "",
            "" if f1 is None else f"{f1:.3f}",
        ]
        print("| " + " | ".join(cells) + " |")
    for stage, fit in data["exponents"].items():
        cpu = data["exponents_cpu"][stage]["exponent"]
        print(f"exponent of time in N, {stage}: wall {fit['exponent']:.2f}, CPU {cpu:.2f}")
    for stage, seconds in projection.items():
        print(
            f"PROJECTION (not measured) {stage} at N=31,072: {seconds.get('wall_s', 0):.0f} s "
            f"wall, {seconds.get('cpu_s', 0):.0f} CPU s"
        )
    if args.plot:
        plot(runs, data["exponents_cpu"], args.plot)


def plot(runs, fitted, path, key="cpu_s"):
    """CPU seconds against N: on a shared machine wall time mostly measures the load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    grid = np.geomspace(1000, 31072, 50)
    for stage in STAGES:
        points = sorted((r["n"], r[key]) for r in runs if r["stage"] == stage and key in r)
        if not points:
            continue
        n, t = np.array(points, dtype=float).T
        label = stage
        if stage in fitted:
            label += f" (N^{fitted[stage]['exponent']:.2f})"
        (line,) = ax.plot(n, t, "o-", label=label)
        if stage in fitted and n.max() < 31072:
            fit = fitted[stage]
            ax.plot(
                grid[grid >= n.max()],
                np.exp(fit["log_intercept"]) * grid[grid >= n.max()] ** fit["exponent"],
                ":",
                color=line.get_color(),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows N (HPA 2018 labels, synthetic 48 x 256 feature blocks)")
    ax.set_ylabel("CPU seconds (all threads and child processes)")
    ax.set_title("post-feature fit cost (dotted: projection)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,16000,31072")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--max-samples", type=int, default=2000)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    parser.add_argument("--skml-limit", type=float, default=600)
    parser.add_argument("--agree-max-samples", type=int, default=1000)
    parser.add_argument("--agree-searches", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_scale.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "_static" / "bench_scale.png"))
    parser.add_argument("--report", action="store_true", help="only fit and plot --out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # rare-label stratification and undefined-F1 warnings
    if args.worker:
        stage, n = args.worker.split(":")
        print("RESULT " + json.dumps(run_stage(stage, int(n), args)), flush=True)
        return
    if args.report:
        report(args)
        return
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; uptime: "
        + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    )
    skml_failed = False
    for n in [int(s) for s in args.sizes.split(",")]:
        for stage in args.stages.split(","):
            if stage == "skml" and skml_failed:
                continue
            timeout = args.skml_limit if stage == "skml" else args.timeout
            command = [sys.executable, __file__, "--worker", f"{stage}:{n}"]
            for flag in ("max_samples", "n_jobs", "agree_max_samples", "out"):
                command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            if args.agree_searches:
                command.append("--agree-searches")
            start = time.perf_counter()
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=timeout, check=False
                )
                lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if lines:
                    result = json.loads(lines[-1][len("RESULT ") :])
                else:
                    result = {"stage": stage, "n": n, "error": done.stderr.strip()[-500:]}
            except subprocess.TimeoutExpired:
                result = {"stage": stage, "n": n, "error": f"did not finish in {timeout:.0f} s"}
                skml_failed |= stage == "skml"
            result["subprocess_s"] = time.perf_counter() - start
            result["load"] = os.getloadavg()[0]
            save_result(args.out, result)
            print(json.dumps(result), flush=True)
    report(args)


if __name__ == "__main__":
    main()
