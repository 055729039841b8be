"""Weak-label cell classifier against image-level models, image-level macro-F1, same CV.

On the 100-image real HPA sample (``../shared/data/hpa2018-sample`` or
``$PROTLOC_HPA_SAMPLE``), classes with at least 4 images: Cellpose nuclei (the shared
Cellpose 3 model, diameter 60 px) and watershed cells, RegionCropper's three regions,
Lite0 (packaged weights) pooled features of the green channel. The same classifier
(StandardScaler + BinaryRelevance(LogisticRegression(C=0.1, class_weight="balanced")),
threshold 0.5) is cross-validated on the same 5 MultilabelStratifiedKFold folds on:

- ``image``: whole-image features;
- ``pooled_cell_features``: the cells' features averaged per image (CNNFeatureExtractor.transform on crops);
- ``weak_cells_mean`` / ``weak_cells_max``: trained per cell with the image's labels
  (protloc.io.fit_cell_classifier), cell probabilities pooled back per image
  (protloc.io.pool_cells, mean or max).

Run: ``nice -n 10 python benchmarks/eval_weak_cells.py [cache folder]`` (segmentation
and features are cached there; the first run segments 100 images on the CPU).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from protloc.features import CNNFeatureExtractor
from protloc.io import fit_cell_classifier, load_hpa, pool_cells
from protloc.model_selection import MultilabelStratifiedKFold
from protloc.multilabel import BinaryRelevance
from protloc.regions import RegionCropper
from protloc.segmentation import CellposeSegmenter

HERE = Path(__file__).resolve().parent
SAMPLE = os.environ.get(
    "PROTLOC_HPA_SAMPLE", str(HERE.parent.parent / "shared" / "data" / "hpa2018-sample")
)
MODEL = os.environ.get(
    "PROTLOC_CELLPOSE_MODEL",
    str(HERE.parent.parent / "shared" / "weights" / "cellpose3-scellseg.pth"),
)
CACHE = sys.argv[1] if len(sys.argv) > 1 else "protloc-eval-cache"
t0 = time.time()
print(
    "start",
    time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    subprocess.getoutput("uptime"),
    flush=True,
)
data = load_hpa(f"{SAMPLE}/images", f"{SAMPLE}/labels.csv", lazy=True)
X, Y = data.images, data.labels
keep = Y.sum(axis=0) >= 4
Y = Y[:, keep]
print("images", len(X), "classes kept (>=4 images)", int(keep.sum()), flush=True)

seg = CellposeSegmenter(
    MODEL,
    diameter=60,
    cache=CACHE,
    device="cpu",
    progress=False,
    batch_size=4,
).fit(X)
S = seg.transform(X)
print("segmented", round(time.time() - t0), "s; cells", int(S.n_objects.sum()), flush=True)
crops = RegionCropper().fit_transform(S)
print(
    "crops",
    crops.n_cells,
    "images without cells",
    int((crops.cells_per_image == 0).sum()),
    flush=True,
)


def extractor():
    return CNNFeatureExtractor(
        "tf_efficientnet_lite0",
        weights="packaged",
        layer="pooled",
        channels=("green",),
        cache=CACHE,
        device="cpu",
        progress=False,
    )


ext = extractor().fit(crops)
F_cells, idx = ext.transform_cells(crops)
print("cell features", F_cells.shape, round(time.time() - t0), "s", flush=True)
F_pool = ext.transform(crops)
F_img = extractor().fit(X).transform(X)
print("image features", F_img.shape, round(time.time() - t0), "s", flush=True)


def classifier():
    return make_pipeline(
        StandardScaler(),
        BinaryRelevance(LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)),
    )


cv = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=0)
pred = {
    k: np.zeros_like(Y)
    for k in ("image", "pooled_cell_features", "weak_cells_mean", "weak_cells_max")
}
for train, test in cv.split(F_img, Y):
    pred["image"][test] = classifier().fit(F_img[train], Y[train]).predict_proba(F_img[test]) >= 0.5
    pred["pooled_cell_features"][test] = (
        classifier().fit(F_pool[train], Y[train]).predict_proba(F_pool[test]) >= 0.5
    )
    pos = np.full(len(Y), -1)
    pos[train] = np.arange(len(train))
    in_train = pos[idx] >= 0
    clf = fit_cell_classifier(classifier(), F_cells[in_train], pos[idx[in_train]], Y[train])
    pos_test = np.full(len(Y), -1)
    pos_test[test] = np.arange(len(test))
    in_test = pos_test[idx] >= 0
    p = clf.predict_proba(F_cells[in_test])
    for how in ("mean", "max"):
        pooled = pool_cells(p, pos_test[idx[in_test]], len(test), how=how)
        pred[f"weak_cells_{how}"][test] = pooled >= 0.5
for name, P in pred.items():
    print(f"{name:24s} macro-F1 {f1_score(Y, P, average='macro', zero_division=0):.3f}", flush=True)
print("done", round(time.time() - t0), "s", subprocess.getoutput("uptime"), flush=True)
