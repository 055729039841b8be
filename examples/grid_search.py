"""Tuning the T25 pipeline with GridSearchCV, and why the feature cache matters.

Every step of ``make_t25_pipeline`` is reachable by name, so ``GridSearchCV`` tunes
any of them: here the label-powerset SVM's ``C`` and kernel
(``labelpowersetsvm__C``, ``labelpowersetsvm__kernel``), with multilabel-stratified
folds and macro-F1. CNN features do not depend on these parameters; with ``cache=``
they are computed once (first fold, first candidate) and read back everywhere else.
The script runs the same search twice on one cache folder to show the difference.

Run::

    python examples/grid_search.py                 # a few minutes on a laptop CPU
    python examples/grid_search.py --level both    # add Cellpose cell-level features
"""

import argparse
import os
import tempfile
import time

from sklearn.model_selection import GridSearchCV

from protloc import MultilabelStratifiedKFold, make_synthetic_hpa, make_t25_pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--level", choices=["image", "cell", "both"], default="image")
    parser.add_argument("--weights", default="packaged", help='"packaged", "imagenet" or a file')
    parser.add_argument(
        "--cellpose-model", default=os.environ.get("PROTLOC_CELLPOSE_MODEL", "nuclei")
    )
    args = parser.parse_args()

    X, Y = make_synthetic_hpa(args.n_samples, image_size=args.image_size, random_state=0)
    cache = tempfile.mkdtemp(prefix="protloc-grid-search-")

    pipe = make_t25_pipeline(
        preset="paper",  # the label-powerset SVM, whose C and kernel the grid tunes
        weights=args.weights,
        level=args.level,
        image_size=128,
        segmenter="cellpose",
        cellpose_model=args.cellpose_model,
        diameter=args.image_size / 8,  # synthetic nuclei: an eighth of the field
        crop_size=64,
        population_size=8,
        generations=4,
        cache=cache,
        random_state=0,
    )
    print("Pipeline steps:", [name for name, _ in pipe.steps])
    param_grid = {
        "labelpowersetsvm__C": [0.1, 1.0, 10.0],
        "labelpowersetsvm__kernel": ["linear", "rbf"],
    }
    cv = MultilabelStratifiedKFold(n_splits=3, shuffle=True, random_state=0)

    timings = []
    for run in ("cold cache", "warm cache"):
        search = GridSearchCV(pipe, param_grid, cv=cv, scoring="f1_macro")
        start = time.perf_counter()
        search.fit(X, Y)
        timings.append(time.perf_counter() - start)
        print(
            f"{run}: {timings[-1]:.0f} s for {len(search.cv_results_['params'])} candidates "
            f"x {cv.get_n_splits()} folds + refit"
        )

    print(f"\nBest parameters: {search.best_params_}, CV macro-F1 {search.best_score_:.3f}")
    for params, mean, std in zip(
        search.cv_results_["params"],
        search.cv_results_["mean_test_score"],
        search.cv_results_["std_test_score"],
    ):
        print(f"    {params}: {mean:.3f} ± {std:.3f}")
    print(f"The warm-cache search took {timings[1] / timings[0]:.2f}x the time of the cold one.")
    blocks = search.best_estimator_.named_steps["geneticblockselector"].selected_blocks_
    print(f"Blocks selected by the refitted pipeline: {list(blocks)}")


if __name__ == "__main__":
    main()
