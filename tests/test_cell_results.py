"""Per-cell results: weak-label cell classifier, pooling, AnnData / CSV / mask files."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Bunch

from protloc.datasets import make_synthetic_hpa, synthetic_class_names
from protloc.features import CNNFeatureExtractor
from protloc.io import (
    DEFAULT_CHANNELS,
    fit_cell_classifier,
    pool_cells,
    predict_cells,
    write_cell_results,
)
from protloc.multilabel import BinaryRelevance
from protloc.regions import RegionCropper
from protloc.segmentation import SegmentedImages

OBS_COLUMNS = ["image_id", "cell_label", "centroid_row", "centroid_col", "area"]


@pytest.fixture(scope="module")
def cell_model():
    """Synthetic images with their true masks, a cell extractor and a weak-label classifier."""
    X, Y, masks = make_synthetic_hpa(
        n_samples=4, image_size=64, n_cells=(2, 4), return_masks=True, random_state=0
    )
    segmented = SegmentedImages(
        X, masks.nuclei, masks.cells, channels=DEFAULT_CHANNELS, ids=["a", "b", "c", "d"]
    )
    cropper = RegionCropper(regions=("nucleus", "cell"), crop_size=16, min_area=10)
    crops = cropper.fit_transform(segmented)
    extractor = CNNFeatureExtractor(
        "test_efficientnet",
        weights=None,
        random_state=0,
        image_size=32,
        device="cpu",
        progress=False,
    ).fit(crops)
    features, image_index = extractor.transform_cells(crops)
    classifier = fit_cell_classifier(
        BinaryRelevance(LogisticRegression(max_iter=200)), features, image_index, Y
    )
    class_names = list(synthetic_class_names())[: Y.shape[1]]
    return Bunch(
        segmented=segmented,
        cropper=cropper,
        extractor=extractor,
        classifier=classifier,
        crops=crops,
        features=features,
        image_index=image_index,
        Y=Y,
        masks=masks,
        class_names=class_names,
    )


def test_weak_labels_give_every_cell_its_image_labels(cell_model):
    m = cell_model
    captured = {}

    class Recorder(LogisticRegression):
        def fit(self, X, y):
            captured["y"] = np.asarray(y)
            return super().fit(X, y[:, 0])

    fit_cell_classifier(Recorder(), m.features, m.image_index, m.Y)
    np.testing.assert_array_equal(captured["y"], m.Y[m.image_index])


def test_pool_cells_mean_max_and_empty_images():
    values = np.array([[0.2, 1.0], [0.6, 0.0], [0.9, 0.5]])
    index = np.array([0, 0, 2])
    np.testing.assert_allclose(pool_cells(values, index, 3), [[0.4, 0.5], [0, 0], [0.9, 0.5]])
    np.testing.assert_allclose(
        pool_cells(values, index, 3, how="max"), [[0.6, 1.0], [0, 0], [0.9, 0.5]]
    )
    with pytest.raises(ValueError, match="how must be one of"):
        pool_cells(values, index, 3, how="median")
    with pytest.raises(ValueError, match=r"outside 0 \.\. 1"):
        pool_cells(values, index, 2)


def test_fit_cell_classifier_checks_its_input(cell_model):
    m = cell_model
    estimator = BinaryRelevance(LogisticRegression())
    with pytest.raises(ValueError, match="one integer image index per cell"):
        fit_cell_classifier(estimator, m.features, m.image_index[:-1], m.Y)
    with pytest.raises(ValueError, match=r"outside 0 \.\. 1"):
        fit_cell_classifier(estimator, m.features, m.image_index, m.Y[:2])


def test_predict_cells_one_row_per_cell(cell_model):
    m = cell_model
    results = predict_cells(
        m.segmented,
        cropper=m.cropper,
        extractor=m.extractor,
        classifier=m.classifier,
        class_names=m.class_names,
        description="test model",
    )
    n_cells = m.crops.n_cells
    assert list(results.obs.columns) == OBS_COLUMNS
    assert len(results.obs) == n_cells
    assert results.features.shape == (n_cells, len(results.feature_names))
    np.testing.assert_array_equal(results.features, m.features)
    assert results.proba.shape == (n_cells, len(m.class_names))
    np.testing.assert_allclose(
        results.image_proba, pool_cells(results.proba, m.image_index, len(m.segmented))
    )
    np.testing.assert_array_equal(results.obs["cell_label"], m.crops.properties["label"])
    assert results.obs["image_id"].tolist() == list(np.asarray(["a", "b", "c", "d"])[m.image_index])
    with pytest.raises(ValueError, match="one column per class"):
        predict_cells(
            m.segmented,
            cropper=m.cropper,
            extractor=m.extractor,
            classifier=m.classifier,
            class_names=m.class_names[:-1],
        )


@pytest.fixture(scope="module")
def results(cell_model):
    m = cell_model
    return predict_cells(
        m.segmented,
        cropper=m.cropper,
        extractor=m.extractor,
        classifier=m.classifier,
        class_names=m.class_names,
        description={"features": "test_efficientnet, random weights", "labels": "weak"},
    )


def test_h5ad_reopens_with_anndata(results, tmp_path):
    anndata = pytest.importorskip("anndata")
    paths = write_cell_results(results, tmp_path, masks=None)
    adata = anndata.read_h5ad(paths["h5ad"])
    n_cells = len(results.obs)
    assert adata.shape == (n_cells, len(results.feature_names))
    assert list(adata.obs.columns) == OBS_COLUMNS
    assert adata.obs_names.tolist() == results.obs.index.tolist()
    assert adata.obsm["proba"].shape == (n_cells, len(results.class_names))
    np.testing.assert_allclose(adata.obsm["proba"], results.proba)
    np.testing.assert_allclose(adata.X, results.features)
    assert list(adata.uns["class_names"]) == results.class_names
    assert adata.uns["model"]["labels"] == "weak"
    assert paths["masks"] == []


def test_csv_holds_obs_and_probabilities(results, tmp_path):
    pytest.importorskip("anndata")
    paths = write_cell_results(results, tmp_path, name="run1", masks=None)
    table = pd.read_csv(paths["csv"], index_col="cell_id")
    expected = OBS_COLUMNS + [f"proba_{c}" for c in results.class_names]
    assert list(table.columns) == expected
    np.testing.assert_allclose(table[expected[len(OBS_COLUMNS) :]].to_numpy(), results.proba)
    with_features = pd.read_csv(
        write_cell_results(results, tmp_path, csv_features=True, masks=None)["csv"]
    )
    assert with_features.shape[1] == 1 + len(expected) + len(results.feature_names)


def test_masks_as_tiff(results, cell_model, tmp_path):
    pytest.importorskip("anndata")
    import tifffile

    paths = write_cell_results(results, tmp_path, masks="tiff")
    assert len(paths["masks"]) == 2 * len(results.ids)
    cells = tifffile.imread(tmp_path / "masks" / "b_cells.tiff")
    nuclei = tifffile.imread(tmp_path / "masks" / "b_nuclei.tiff")
    np.testing.assert_array_equal(cells, cell_model.masks.cells[1])
    np.testing.assert_array_equal(nuclei, cell_model.masks.nuclei[1])


def test_masks_as_ome_zarr_labels(results, cell_model, tmp_path):
    pytest.importorskip("anndata")
    pytest.importorskip("ome_zarr")
    import zarr

    write_cell_results(results, tmp_path, masks="ome-zarr")
    root = zarr.open_group(str(tmp_path / "masks" / "c.ome.zarr"), mode="r")
    cells = root["labels/cells/s0"][...]
    np.testing.assert_array_equal(cells, cell_model.masks.cells[2])
    assert root["labels"].attrs["ome"]["labels"] == ["nuclei", "cells"]
    assert sorted(root["labels/cells"].keys()) == ["s0"]


def test_bad_mask_format(results, tmp_path):
    with pytest.raises(ValueError, match="masks must be one of"):
        write_cell_results(results, tmp_path, masks="png")
