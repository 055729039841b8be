"""Result figures: per-class F1 against the paper's numbers, and label co-occurrence."""

from __future__ import annotations

import numpy as np

from protloc.io import HPA_CLASSES
from protloc.plot._common import import_pyplot

__all__ = ["T25_PER_CLASS_F1", "cooccurrence", "per_class_f1"]

#: Per-class F1 of Taormina et al. 2025 (image + cell level, LP-SVM; HPA 2018 index order).
#: The paper prints classes 21 and 22 swapped (21 Cell junctions, 22 Plasma membrane); the
#: values here are re-ordered to the competition's index order used throughout protloc.
T25_PER_CLASS_F1 = np.array(
    [
        0.85, 0.79, 0.65, 0.62, 0.75, 0.58, 0.53, 0.59, 0.70, 0.70,
        0.67, 0.63, 0.56, 0.51, 0.71, 0.40, 0.30, 0.46, 0.45, 0.37,
        0.57, 0.47, 0.61, 0.71, 0.45, 0.67, 0.44, 0.80,
    ]
)  # fmt: skip


def _figure(ax, figsize):
    plt = import_pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        fig = ax.figure
    return fig, ax


def per_class_f1(
    report, *, reference=T25_PER_CLASS_F1, reference_label="Taormina et al. 2025", ax=None
):
    """Horizontal bars of per-class F1, next to a reference such as the paper's.

    Parameters
    ----------
    report : MultilabelReport or dict
        A :func:`protloc.metrics.multilabel_report` result whose class indices are
        HPA 2018 indices (build it on 28-column indicators with ``labels=``), or a
        mapping with ``"labels"`` (HPA class indices), ``"class_names"`` and ``"f1"``.
    reference : array-like of shape (28,) or None, default=T25_PER_CLASS_F1
        Reference F1 by HPA class index; None draws no reference bars.
    reference_label : str
        Legend text of the reference.
    ax : matplotlib Axes, optional

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> fig = per_class_f1({"labels": [0, 25], "class_names": ["Nucleoplasm", "Cytosol"],
    ...                     "f1": [0.8, 0.5]})
    >>> len(fig.axes[0].patches)
    4
    """
    if isinstance(report, dict):
        labels, f1 = report["labels"], report["f1"]
        names = report.get("class_names")
    else:
        labels, f1, names = report.class_indices, report.f1, report.class_names
        names = [names[i] for i in labels] if len(names) != len(labels) else names
    labels = np.asarray(labels, dtype=int)
    f1 = np.nan_to_num(np.asarray(f1, dtype=float))
    names = list(names) if names is not None else [HPA_CLASSES[i] for i in labels]
    fig, ax = _figure(ax, (7, 0.35 * len(labels) + 1.5))
    y = np.arange(len(labels))
    height = 0.4 if reference is not None else 0.8
    ax.barh(y - (height / 2 if reference is not None else 0), f1, height, label="protloc")
    if reference is not None:
        ref = np.asarray(reference, dtype=float)[labels]
        ax.barh(y + height / 2, ref, height, label=reference_label, alpha=0.6)
        ax.legend(loc="lower right")
    ax.set_yticks(y, [f"{i} {n}" for i, n in zip(labels, names, strict=True)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title("Per-class F1")
    return fig


def cooccurrence(Y, *, class_names=None, normalize=True, ax=None):
    """Heat map of label co-occurrence: how often class j is present when class i is.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes)
        0/1 indicators (true labels, or predictions to compare with them).
    class_names : sequence of str, optional
    normalize : bool, default=True
        Divide each row by the count of class i, giving P(j | i); the diagonal is 1.
    ax : matplotlib Axes, optional

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> fig = cooccurrence([[1, 1, 0], [1, 0, 0], [0, 0, 1]], class_names=["a", "b", "c"])
    >>> fig.axes[0].images[0].get_array()[0].tolist()
    [1.0, 0.5, 0.0]
    """
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"Y must be a 2-D 0/1 indicator matrix, got shape {Y.shape}.")
    Y = (Y > 0).astype(float)
    counts = Y.T @ Y
    matrix = counts
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.nan_to_num(counts / np.diag(counts)[:, None])
    names = list(class_names) if class_names is not None else [str(i) for i in range(Y.shape[1])]
    if len(names) != Y.shape[1]:
        raise ValueError(f"class_names has {len(names)} names for {Y.shape[1]} classes.")
    fig, ax = _figure(ax, (0.35 * len(names) + 3, 0.35 * len(names) + 2.5))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_title("P(column | row)" if normalize else "Co-occurrence counts")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig
