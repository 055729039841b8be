"""Per-cell results: a weakly supervised cell classifier, and AnnData / CSV / mask files.

The HPA gives labels per *image*, not per cell. As in the HPA 2021 single-cell
competition, a cell classifier is trained by giving every cell the labels of its
image (*weak labels*): :func:`fit_cell_classifier`. The assumption is that a
protein's localization is the same in every cell of an image; it is wrong for
images with cell-to-cell variation (about a fifth of HPA proteins), where cells
without the pattern are trained as positives, which blurs the cell classifier
towards the image average. Pooling the cell probabilities back per image
(:func:`pool_cells`) gives an image-level prediction to compare with an
image-level model.

:func:`predict_cells` runs cropping, cell features and the cell classifier on
segmented images and gathers one row per cell; :func:`write_cell_results` writes it
as an AnnData ``.h5ad`` (for scanpy and the scverse tools), a CSV and label masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

__all__ = ["fit_cell_classifier", "pool_cells", "predict_cells", "write_cell_results"]

_POOLINGS = ("mean", "max")
_MASK_FORMATS = ("tiff", "ome-zarr", None)


def fit_cell_classifier(estimator, cell_features, image_index, image_labels):
    """Fit a clone of ``estimator`` on cells, each cell taking its image's labels.

    Every cell gets the labels of the image it comes from (weak labels, as in the
    HPA 2021 single-cell competition); this assumes that all cells of an image
    show the same localization. Images without cells add no training rows.

    Parameters
    ----------
    estimator : multi-label classifier
        Unfitted; cloned. For instance
        ``protloc.multilabel.BinaryRelevance(LogisticRegression())``.
    cell_features : array-like of shape (n_cells, n_features)
        From ``CNNFeatureExtractor.transform_cells``.
    image_index : array-like of int, shape (n_cells,)
        The image of every cell, in ``0 .. n_images - 1``.
    image_labels : array-like of shape (n_images, n_labels)
        0/1 label indicators per image.

    Returns
    -------
    classifier : estimator
        The fitted clone.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from protloc.multilabel import BinaryRelevance
    >>> features = np.array([[0.0], [0.2], [1.0], [1.2]])
    >>> image_index = np.array([0, 0, 1, 1])
    >>> labels = np.array([[1, 0], [0, 1]])
    >>> clf = fit_cell_classifier(BinaryRelevance(LogisticRegression()), features,
    ...                           image_index, labels)
    >>> clf.predict(features).tolist()
    [[1, 0], [1, 0], [0, 1], [0, 1]]
    """
    cell_features = np.asarray(cell_features)
    image_index, image_labels = _check_index(image_index, image_labels, len(cell_features))
    if len(cell_features) == 0:
        raise ValueError("There are no cells to train on; check the segmentation.")
    return clone(estimator).fit(cell_features, image_labels[image_index])


def pool_cells(cell_values, image_index, n_images, *, how="mean"):
    """Pool per-cell rows (e.g. probabilities) into one row per image.

    Parameters
    ----------
    cell_values : array-like of shape (n_cells, n_columns)
    image_index : array-like of int, shape (n_cells,)
        The image of every cell.
    n_images : int
    how : {"mean", "max"}, default="mean"
        Mean over an image's cells, or max (an image has a pattern if any cell has).

    Returns
    -------
    pooled : ndarray of float64, shape (n_images, n_columns)
        Images without cells get zeros.

    Examples
    --------
    >>> pool_cells([[0.2], [0.6], [0.9]], [0, 0, 2], 3).tolist()
    [[0.4], [0.0], [0.9]]
    >>> pool_cells([[0.2], [0.6], [0.9]], [0, 0, 2], 3, how="max").tolist()
    [[0.6], [0.0], [0.9]]
    """
    if how not in _POOLINGS:
        raise ValueError(f"how must be one of {_POOLINGS}, got {how!r}.")
    values = np.asarray(cell_values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"cell_values must be 2-D (n_cells, n_columns), got {values.shape}.")
    image_index = np.asarray(image_index, dtype=np.int64)
    if image_index.shape != (len(values),):
        raise ValueError(f"image_index has shape {image_index.shape} for {len(values)} cells.")
    if len(image_index) and (image_index.min() < 0 or image_index.max() >= n_images):
        raise ValueError(f"image_index holds values outside 0 .. {n_images - 1}.")
    pooled = np.zeros((n_images, values.shape[1]))
    if how == "mean":
        np.add.at(pooled, image_index, values)
        counts = np.bincount(image_index, minlength=n_images)
        pooled[counts > 0] /= counts[counts > 0, None]
    else:
        pooled[:] = -np.inf
        np.maximum.at(pooled, image_index, values)
        pooled[np.isinf(pooled)] = 0.0
    return pooled


def _check_index(image_index, image_labels, n_cells):
    image_index = np.asarray(image_index)
    image_labels = np.asarray(image_labels)
    if image_index.shape != (n_cells,) or (n_cells and image_index.dtype.kind not in "iu"):
        raise ValueError(
            f"image_index must hold one integer image index per cell ({n_cells}), got "
            f"shape {image_index.shape} and dtype {image_index.dtype}."
        )
    if image_labels.ndim != 2:
        raise ValueError(
            f"image_labels must be a (n_images, n_labels) indicator matrix, got shape "
            f"{image_labels.shape}."
        )
    if n_cells and (image_index.min() < 0 or image_index.max() >= len(image_labels)):
        raise ValueError(
            f"image_index holds values outside 0 .. {len(image_labels) - 1}, the rows of "
            "image_labels."
        )
    return image_index, image_labels


def _cell_feature_names(extractor):
    return [
        f"{block.name}__{k}"
        for block in extractor.cell_feature_blocks_
        for k in range(block.slice.stop - block.slice.start)
    ]


def predict_cells(segmented, *, cropper, extractor, classifier, class_names, description=None):
    """Crop, describe and classify every cell of segmented images.

    Parameters
    ----------
    segmented : :class:`~protloc.segmentation.SegmentedImages`
        From ``CellposeSegmenter.transform`` (or built from your own masks).
    cropper : fitted :class:`~protloc.regions.RegionCropper`
    extractor : fitted :class:`~protloc.features.CNNFeatureExtractor`
        Fitted on crops; its ``transform_cells`` gives one feature row per cell.
    classifier : fitted multi-label classifier
        Trained on cell features (:func:`fit_cell_classifier`); its
        ``predict_proba`` returns ``(n_cells, n_classes)``.
    class_names : sequence of str
        Names of the classifier's labels, in column order.
    description : str or dict of str to str, optional
        What the model is (backbones, training data, date), stored with the results.

    Returns
    -------
    results : :class:`~sklearn.utils.Bunch`
        ``obs`` (a DataFrame, one row per cell: ``image_id``, ``cell_label``,
        ``centroid_row``, ``centroid_col``, ``area``), ``features`` ``(n_cells,
        n_features)`` float32, ``feature_names``, ``proba`` ``(n_cells, n_classes)``,
        ``image_proba`` (the mean over each image's cells), ``class_names``,
        ``description``, ``ids`` and the label masks ``nuclei`` and ``cells``.
    """
    import pandas as pd

    crops = cropper.transform(segmented)
    features, image_index = extractor.transform_cells(crops)
    proba = np.asarray(classifier.predict_proba(features), dtype=np.float64)
    class_names = [str(c) for c in class_names]
    if proba.shape != (len(features), len(class_names)):
        raise ValueError(
            f"The classifier's predict_proba returned shape {proba.shape}; expected "
            f"({len(features)}, {len(class_names)}): one column per class of class_names."
        )
    n_images = len(segmented)
    ids = (
        np.asarray([str(s) for s in segmented.ids], dtype=object)
        if segmented.ids is not None
        else np.asarray([str(i) for i in range(n_images)], dtype=object)
    )
    labels = crops.properties["label"]
    centroid = crops.properties["centroid"]
    image_ids = ids[image_index]
    # Object dtypes: anndata writes them everywhere; pandas 3's string arrays it refuses.
    obs = pd.DataFrame(
        {
            "image_id": pd.Series(image_ids, dtype=object),
            "cell_label": np.asarray(labels, dtype=np.int64),
            "centroid_row": centroid[:, 0],
            "centroid_col": centroid[:, 1],
            "area": np.asarray(crops.properties["area"], dtype=np.int64),
        }
    )
    obs.index = pd.Index(
        [f"{sid}_{label}" for sid, label in zip(image_ids, labels, strict=True)], dtype=object
    )
    return Bunch(
        obs=obs,
        features=np.asarray(features, dtype=np.float32),
        feature_names=_cell_feature_names(extractor),
        proba=proba,
        image_proba=pool_cells(proba, image_index, n_images),
        class_names=class_names,
        description=description,
        ids=ids,
        nuclei=list(segmented.nuclei),
        cells=list(segmented.cells),
    )


def _description(description):
    if description is None:
        return ""
    if isinstance(description, dict):
        return {str(k): str(v) for k, v in description.items()}
    return str(description)


def to_anndata(results):
    """The per-cell results as an :class:`anndata.AnnData`.

    ``obs``: image id, cell label, centroid and area; ``X``: the cell features;
    ``obsm["proba"]``: per-class probabilities; ``uns["class_names"]`` and
    ``uns["model"]``.

    Parameters
    ----------
    results : Bunch
        From :func:`predict_cells`.

    Returns
    -------
    adata : anndata.AnnData
    """
    try:
        import anndata
    except ImportError:
        raise ImportError("Writing .h5ad files needs anndata: pip install 'protloc[io]'.") from None
    import pandas as pd

    var = pd.DataFrame(index=pd.Index(list(results.feature_names), dtype=object))
    adata = anndata.AnnData(X=results.features, obs=results.obs.copy(), var=var)
    adata.obsm["proba"] = results.proba
    adata.uns["class_names"] = np.asarray(results.class_names, dtype=object)
    adata.uns["model"] = _description(results.description)
    return adata


def _write_masks(results, folder, fmt):
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for sid, nuclei, cells in zip(results.ids, results.nuclei, results.cells, strict=True):
        if fmt == "tiff":
            import tifffile

            for name, mask in (("nuclei", nuclei), ("cells", cells)):
                path = folder / f"{sid}_{name}.tiff"
                tifffile.imwrite(path, np.asarray(mask, dtype=np.int32), compression="zlib")
                written.append(path)
        else:
            import zarr
            from ome_zarr.writer import write_labels

            path = folder / f"{sid}.ome.zarr"
            root = zarr.open_group(str(path), mode="w")
            for name, mask in (("nuclei", nuclei), ("cells", cells)):
                # One resolution: masks are small, and viewers read a single level.
                write_labels(
                    np.asarray(mask, dtype=np.int32),
                    root,
                    name=name,
                    axes="yx",
                    scaler=None,
                    scale_factors=(),
                )
            written.append(path)
    return written


def write_cell_results(results, out_dir, *, name="cells", csv_features=False, masks="tiff"):
    """Write per-cell results: AnnData ``.h5ad``, CSV and label masks.

    Files written in ``out_dir``:

    - ``<name>.h5ad``: an AnnData with ``obs`` (``image_id``, ``cell_label``,
      ``centroid_row``, ``centroid_col``, ``area`` in pixels), ``X`` (the cell
      features, ``var_names`` their block names), ``obsm["proba"]`` (per-class
      probabilities), ``uns["class_names"]`` and ``uns["model"]``;
    - ``<name>.csv``: the obs columns plus one ``proba_<class>`` column per class
      (and the features with ``csv_features=True``);
    - ``masks/``: per image, the nucleus and cell label masks (label ``k`` in both
      is cell ``k``, the ``cell_label`` of obs): ``<id>_nuclei.tiff`` and
      ``<id>_cells.tiff``, or one ``<id>.ome.zarr`` with OME-Zarr labels
      ``nuclei`` and ``cells``.

    Parameters
    ----------
    results : Bunch
        From :func:`predict_cells`.
    out_dir : path-like
        Created if needed; existing files of the same names are replaced.
    name : str, default="cells"
        Base name of the table files.
    csv_features : bool, default=False
        Also write the feature columns to the CSV (large: thousands per cell).
    masks : {"tiff", "ome-zarr"} or None, default="tiff"
        Format of the label masks; None writes none. OME-Zarr needs ``ome-zarr``.

    Returns
    -------
    paths : dict of str to Path or list of Path
        ``"h5ad"``, ``"csv"`` and ``"masks"``.
    """
    if masks not in _MASK_FORMATS:
        raise ValueError(f"masks must be one of {_MASK_FORMATS}, got {masks!r}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    h5ad = out_dir / f"{name}.h5ad"
    to_anndata(results).write_h5ad(h5ad)

    table = results.obs.copy()
    proba = pd.DataFrame(
        results.proba,
        index=table.index,
        columns=[f"proba_{c}" for c in results.class_names],
    )
    parts = [table, proba]
    if csv_features:
        parts.append(
            pd.DataFrame(results.features, index=table.index, columns=results.feature_names)
        )
    csv_path = out_dir / f"{name}.csv"
    pd.concat(parts, axis=1).to_csv(csv_path, index_label="cell_id")
    written = _write_masks(results, out_dir / "masks", masks) if masks else []
    return {"h5ad": h5ad, "csv": csv_path, "masks": written}
