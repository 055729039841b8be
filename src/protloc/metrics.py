"""Multi-label evaluation: a per-class report laid out like the tables of Taormina et al. 2025.

:func:`multilabel_report` computes per-class F1, precision, recall and support with
:func:`sklearn.metrics.precision_recall_fscore_support` (``zero_division=0``), plus the
macro and support-weighted averages. Classes absent from both the truth and the
predictions carry no information, so they are left out of the macro average, and the
report says which ones.

Decision thresholds belong to :class:`protloc.multilabel.ThresholdTuner`; this module
only scores 0/1 predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import precision_recall_fscore_support

__all__ = ["MultilabelReport", "multilabel_report"]

_METRICS = ("f1", "precision", "recall")


def _check_indicator(y, *, name, hint_1d):
    """Return ``y`` as a 2-D boolean ndarray, or raise a ValueError naming the fix.

    Shared by the metrics and the multi-label splitters; ``hint_1d`` says what to do
    with 1-D input in the caller's context.
    """
    if sp.issparse(y):
        y = y.toarray()
    y = np.asarray(y)
    if y.dtype == object:
        raise ValueError(
            f"{name} has dtype object (a list of label lists?); it must be a 0/1 indicator "
            "matrix of shape (n_samples, n_labels). Convert label lists with "
            "sklearn.preprocessing.MultiLabelBinarizer."
        )
    if y.ndim == 1:
        raise ValueError(
            f"{name} is 1-D with shape {y.shape}; it must be a 2-D 0/1 indicator matrix of "
            f"shape (n_samples, n_labels). {hint_1d}"
        )
    if y.ndim != 2:
        raise ValueError(
            f"{name} has {y.ndim} dimensions (shape {y.shape}); it must be a 2-D 0/1 "
            "indicator matrix of shape (n_samples, n_labels)."
        )
    if y.shape[1] == 0:
        raise ValueError(f"{name} has shape {y.shape}: it needs at least one label column.")
    if y.dtype != bool:
        if not (np.issubdtype(y.dtype, np.number)):
            raise ValueError(
                f"{name} has dtype {y.dtype}; it must hold only 0 and 1 (or False/True)."
            )
        binary = (y == 0) | (y == 1)
        if not binary.all():
            bad = np.unique(y[~binary])[:5].tolist()
            raise ValueError(
                f"{name} must hold only 0 and 1 (or False/True); found {bad}. Threshold "
                "scores or probabilities first, e.g. (proba >= 0.5).astype(int)."
            )
        y = y.astype(bool)
    return y


def _resolve_class_names(class_names, n_columns):
    if class_names is None:
        return tuple(str(j) for j in range(n_columns))
    if isinstance(class_names, str):
        from protloc.io import HPA2021_CLASSES, HPA_CLASSES

        tables = {"hpa2018": HPA_CLASSES, "hpa2021": HPA2021_CLASSES}
        if class_names not in tables:
            raise ValueError(
                f"Unknown class table {class_names!r}; use 'hpa2018', 'hpa2021' or a "
                "sequence with one name per column of Y."
            )
        class_names = tables[class_names]
    names = tuple(str(name) for name in class_names)
    if len(names) != n_columns:
        raise ValueError(
            f"class_names has {len(names)} names but Y has {n_columns} columns; give one "
            "name per column of Y (use labels= to report a subset of the columns)."
        )
    return names


def _resolve_labels(labels, n_columns):
    if labels is None:
        return np.arange(n_columns)
    indices = np.asarray(labels)
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D sequence of column indices; got {labels!r}."
        )
    if indices.min() < 0 or indices.max() >= n_columns:
        raise ValueError(
            f"labels must be column indices in 0..{n_columns - 1}; got {indices.tolist()}."
        )
    if np.unique(indices).size != indices.size:
        raise ValueError(f"labels lists a column more than once: {indices.tolist()}.")
    return indices.astype(np.intp)


@dataclass(eq=False)
class MultilabelReport:
    """Per-class and averaged scores of a multi-label prediction.

    Built by :func:`multilabel_report`; read its fields, print it, or turn it into a
    dict (:meth:`to_dict`) or a pandas DataFrame (:meth:`to_frame`).

    Attributes
    ----------
    class_names : tuple of str
        Names of the reported classes, in report order.
    class_indices : ndarray of int, shape (n_reported,)
        Column of ``Y`` that each reported class comes from.
    f1, precision, recall : ndarray of float, shape (n_reported,)
        Per-class scores, as :func:`sklearn.metrics.precision_recall_fscore_support`
        with ``zero_division=0`` gives them.
    support : ndarray of int, shape (n_reported,)
        Number of true positives plus false negatives (positives in ``Y_true``).
    macro : dict
        Unweighted mean of ``"f1"``, ``"precision"`` and ``"recall"`` over the reported
        classes that are not excluded, and ``"support"``, the total support. The scores
        are NaN when every class is excluded.
    weighted : dict
        Support-weighted mean of the same scores (NaN when the total support is 0).
    excluded : tuple of int
        Column indices of the reported classes absent from both ``Y_true`` and
        ``Y_pred``; they are left out of the macro average.
    digits : int
        Decimals shown by ``str(report)``.
    """

    class_names: tuple
    class_indices: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    support: np.ndarray
    macro: dict
    weighted: dict
    excluded: tuple
    digits: int = 2

    def _rows(self):
        excluded = set(self.excluded)
        for i, index in enumerate(self.class_indices):
            yield (
                self.class_names[i],
                int(index),
                {m: float(getattr(self, m)[i]) for m in _METRICS},
                int(self.support[i]),
                int(index) in excluded,
            )

    def to_dict(self):
        """Return the report as plain Python types (JSON-serialisable, NaN aside).

        Returns
        -------
        report : dict
            ``"classes"``: one dict per reported class with ``name``, ``index``,
            ``f1``, ``precision``, ``recall``, ``support`` and ``excluded``;
            ``"macro avg"`` and ``"weighted avg"``: dicts of the averages;
            ``"excluded"``: list of excluded column indices.
        """
        classes = [
            {"name": name, "index": index, **scores, "support": support, "excluded": excl}
            for name, index, scores, support, excl in self._rows()
        ]
        return {
            "classes": classes,
            "macro avg": dict(self.macro),
            "weighted avg": dict(self.weighted),
            "excluded": list(self.excluded),
        }

    def to_frame(self):
        """Return the report as a pandas DataFrame, one row per class plus the averages.

        Returns
        -------
        frame : pandas.DataFrame
            Index ``"Pattern name"``; columns ``index`` (nullable integer, empty on
            the average rows), ``F1``, ``Precision``, ``Recall``, ``Support`` and
            ``Excluded``.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is a dependency here
            raise ImportError(
                "MultilabelReport.to_frame needs pandas: pip install pandas "
                "(or use to_dict() / str(report))."
            ) from exc
        rows = [
            (name, index, s["f1"], s["precision"], s["recall"], support, excl)
            for name, index, s, support, excl in self._rows()
        ]
        for label, avg in (("Macro avg", self.macro), ("Weighted avg", self.weighted)):
            rows.append(
                (label, None, avg["f1"], avg["precision"], avg["recall"], avg["support"], False)
            )
        columns = ["Pattern name", "index", "F1", "Precision", "Recall", "Support", "Excluded"]
        frame = pd.DataFrame.from_records(rows, columns=columns).set_index("Pattern name")
        return frame.astype({"index": "Int64", "Support": "int64", "Excluded": bool})

    def __str__(self):
        d = self.digits
        width = max(len("Weighted avg"), len("Pattern name"), *map(len, self.class_names))
        num = max(d + 3, len("Precision"))

        def line(name, index, values, support):
            cells = [f"{v:>{num}}" if isinstance(v, str) else f"{v:>{num}.{d}f}" for v in values]
            return f"{name:<{width}}  {index:>5}  {'  '.join(cells)}  {support:>8}"

        out = [
            line("Pattern name", "index", ["F1", "Precision", "Recall"], "Support"),
            "-" * (width + 5 + 3 * (num + 2) + 12),
        ]
        for name, index, scores, support, excl in self._rows():
            values = ["n/a"] * 3 if excl else [scores[m] for m in _METRICS]
            out.append(line(name, index, values, support))
        out.append("")
        for label, avg in (("Macro avg", self.macro), ("Weighted avg", self.weighted)):
            out.append(line(label, "", [avg[m] for m in _METRICS], avg["support"]))
        n_kept = len(self.class_indices) - len(self.excluded)
        if self.excluded:
            names = dict(zip(self.class_indices.tolist(), self.class_names))
            listed = ", ".join(
                f"{i} {names[i]}" if names[i] != str(i) else str(i) for i in self.excluded
            )
            out.append(
                f"\nMacro average over {n_kept} of {len(self.class_indices)} classes; "
                f"excluded (absent from both Y_true and Y_pred): {listed}."
            )
        return "\n".join(out)

    def __repr__(self):
        return (
            f"MultilabelReport(n_classes={len(self.class_indices)}, "
            f"macro_f1={self.macro['f1']:.4f}, weighted_f1={self.weighted['f1']:.4f}, "
            f"excluded={list(self.excluded)})"
        )


def multilabel_report(Y_true, Y_pred, *, class_names=None, labels=None, digits=2):
    """Per-class F1, precision, recall and support, plus macro and weighted averages.

    The layout follows the per-class tables of Taormina et al. 2025 (Pattern name |
    index | F1 | Precision | Recall | Support). Classes absent from both ``Y_true``
    and ``Y_pred`` are excluded from the macro average (their scores are undefined,
    and counting them as 0 would punish a model for a class the data never shows);
    the report lists them.

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_samples, n_classes)
        Ground-truth 0/1 (or boolean) indicator matrix.
    Y_pred : array-like or sparse matrix of shape (n_samples, n_classes)
        Predicted 0/1 indicator matrix (threshold scores first).
    class_names : sequence of str, {"hpa2018", "hpa2021"} or None, default=None
        One name per column of ``Y``; a string picks the HPA class table of
        :mod:`protloc.io`. None names each class by its column index.
    labels : sequence of int or None, default=None
        Columns to report, in this order; None reports every column. The averages
        are taken over these columns only.
    digits : int, default=2
        Decimals shown by ``str(report)``; the stored numbers are not rounded.

    Returns
    -------
    report : MultilabelReport
        Per-class arrays, averages and the excluded classes; ``print`` it for the table.

    Raises
    ------
    ValueError
        If an input is not a 2-D 0/1 matrix, the shapes differ, ``class_names`` has
        the wrong length, or ``labels`` holds an invalid column index.

    See Also
    --------
    sklearn.metrics.classification_report : The same per-class scores as text, with
        absent classes counted as 0 in the macro average.

    Examples
    --------
    >>> import numpy as np
    >>> Y_true = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]])
    >>> Y_pred = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    >>> report = multilabel_report(Y_true, Y_pred, class_names=["Nucleoplasm", "Cytosol", "Rods"])
    >>> print(report)
    Pattern name  index         F1  Precision     Recall   Support
    --------------------------------------------------------------
    Nucleoplasm       0       0.80       1.00       0.67         3
    Cytosol           1       0.67       1.00       0.50         2
    Rods              2        n/a        n/a        n/a         0
    <BLANKLINE>
    Macro avg                 0.73       1.00       0.58         5
    Weighted avg              0.75       1.00       0.60         5
    <BLANKLINE>
    Macro average over 2 of 3 classes; excluded (absent from both Y_true and Y_pred): 2 Rods.
    >>> report.excluded, round(report.macro["f1"], 4)
    ((2,), 0.7333)
    """
    if not isinstance(digits, Integral) or isinstance(digits, bool) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer; got {digits!r}.")
    hint = (
        "For single-label (multiclass) targets use sklearn.metrics.classification_report; "
        "for one binary label pass y.reshape(-1, 1)."
    )
    Y_true = _check_indicator(Y_true, name="Y_true", hint_1d=hint)
    Y_pred = _check_indicator(Y_pred, name="Y_pred", hint_1d=hint)
    if Y_true.shape != Y_pred.shape:
        raise ValueError(
            f"Y_true has shape {Y_true.shape} but Y_pred has shape {Y_pred.shape}; both must "
            "be (n_samples, n_classes) with the same samples and classes."
        )
    n_columns = Y_true.shape[1]
    names = _resolve_class_names(class_names, n_columns)
    indices = _resolve_labels(labels, n_columns)

    true = Y_true[:, indices].astype(np.int8)
    pred = Y_pred[:, indices].astype(np.int8)
    if true.shape[1] == 1:
        # sklearn reads a single column as a binary target, whose labels are values.
        true, pred, sk_labels = true[:, 0], pred[:, 0], [1]
    else:
        sk_labels = np.arange(true.shape[1])
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=sk_labels, average=None, zero_division=0
    )
    support = support.astype(np.int64)
    absent = (support == 0) & (pred.reshape(len(pred), -1).sum(axis=0) == 0)
    scores = {"f1": f1, "precision": precision, "recall": recall}
    total = int(support.sum())
    macro = {
        m: float(np.mean(v[~absent])) if (~absent).any() else float("nan")
        for m, v in scores.items()
    }
    weighted = {
        m: float(np.average(v, weights=support)) if total else float("nan")
        for m, v in scores.items()
    }
    macro["support"] = weighted["support"] = total
    return MultilabelReport(
        class_names=tuple(names[i] for i in indices),
        class_indices=indices,
        f1=f1,
        precision=precision,
        recall=recall,
        support=support,
        macro=macro,
        weighted=weighted,
        excluded=tuple(int(i) for i in indices[absent]),
        digits=int(digits),
    )
