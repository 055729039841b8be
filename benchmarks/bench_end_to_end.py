"""Wall time of the T25 reproduction's stages on CPU, against the 10-minute goal.

Runs the feature stages of ``examples/reproduce_t25.py`` (image features; Cellpose
segmentation, region crops and cell features) on the real HPA sample, then one
cross-validated classifier on the result, and prints each stage's wall time. The goal
is at most 10 minutes for 100 images with 4 backbones, counting feature extraction
once: pass ``--cache`` to a fresh folder for the first (cold) run; a second run with the
same folder shows the cached cost.

Usage::

    python benchmarks/bench_end_to_end.py --data ../shared/data/hpa2018-sample \\
        --cellpose-model ../shared/weights/cellpose3-scellseg.pth --cache /tmp/e2e-cache
"""

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from protloc import MultilabelRepeatedStratifiedKFold, load_hpa

GOAL_SECONDS = 600
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reproduce_t25.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("reproduce_t25", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/hpa2018-sample")
    parser.add_argument("--cellpose-model", default="../shared/weights/cellpose3-scellseg.pth")
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=[
            "tf_efficientnet_lite0",
            "tf_efficientnet_lite1",
            "tf_efficientnet_lite2",
            "mobilenetv2_100",
        ],
    )
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--cache", default="/tmp/protloc-e2e-cache")
    args = parser.parse_args()

    example = _load_example()
    repro_args = example.parse_args(
        [
            "--data",
            args.data,
            "--cellpose-model",
            args.cellpose_model,
            "--cache",
            args.cache,
            "--backbones",
            *args.backbones,
        ]
    )
    data = load_hpa(Path(args.data) / "images", Path(args.data) / "labels.csv", lazy=True)
    images = data.images[: args.n_images]
    keep = np.flatnonzero(data.labels[: args.n_images].sum(axis=0) >= 2)
    Y = data.labels[: args.n_images, keep].astype(int)

    timings = {}
    start = time.perf_counter()
    frame = example.extract_features(images, repro_args, timings)
    features = time.perf_counter() - start
    cv = MultilabelRepeatedStratifiedKFold(n_splits=3, n_repeats=1, random_state=0)
    start = time.perf_counter()
    example.cv_scores(
        example.classifier("br-linear-svm", thresholds=True),
        frame.to_numpy(np.float64),
        Y,
        cv,
        n_jobs=2,
    )
    timings["one CV classifier"] = time.perf_counter() - start
    total = features + timings["one CV classifier"]

    print(f"\n{len(images)} images, backbones {', '.join(args.backbones)}, cache {args.cache}")
    for stage, seconds in timings.items():
        print(f"  {stage:<20} {seconds:8.1f} s")
    print(f"  {'total':<20} {total:8.1f} s   ({total / GOAL_SECONDS:.2f} x the 600 s goal)")


if __name__ == "__main__":
    main()
