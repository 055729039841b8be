"""Tests of protloc.metrics.multilabel_report."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score, precision_recall_fscore_support

from protloc.io import HPA_CLASSES
from protloc.metrics import MultilabelReport, multilabel_report


def noisy_predictions(n_samples=300, n_classes=6, seed=0):
    """Y_true with imbalanced classes and Y_pred flipping some of its entries."""
    rng = np.random.default_rng(seed)
    frequencies = np.linspace(0.5, 0.05, n_classes)
    Y_true = (rng.random((n_samples, n_classes)) < frequencies).astype(int)
    flip = rng.random(Y_true.shape) < 0.15
    Y_pred = np.where(flip, 1 - Y_true, Y_true)
    return Y_true, Y_pred


def test_per_class_and_weighted_scores_equal_sklearn():
    Y_true, Y_pred = noisy_predictions()
    report = multilabel_report(Y_true, Y_pred)
    p, r, f, s = precision_recall_fscore_support(Y_true, Y_pred, average=None, zero_division=0)
    np.testing.assert_allclose(report.precision, p)
    np.testing.assert_allclose(report.recall, r)
    np.testing.assert_allclose(report.f1, f)
    np.testing.assert_array_equal(report.support, s)
    for name, key in (("f1", 2), ("precision", 0), ("recall", 1)):
        for average, got in (("macro", report.macro), ("weighted", report.weighted)):
            expected = precision_recall_fscore_support(
                Y_true, Y_pred, average=average, zero_division=0
            )[key]
            assert got[name] == pytest.approx(expected), (name, average)
    assert report.macro["support"] == report.weighted["support"] == Y_true.sum()
    assert report.excluded == ()


def test_absent_classes_are_excluded_from_the_macro_average():
    Y_true, Y_pred = noisy_predictions()
    Y_true[:, [1, 4]] = 0
    Y_pred[:, [1, 4]] = 0
    Y_pred[:, 3] = 0  # present in Y_true only: kept, with F1 = 0
    Y_true[:, 5] = 0  # predicted but absent from Y_true: kept, with F1 = 0
    report = multilabel_report(Y_true, Y_pred)
    assert report.excluded == (1, 4)
    kept = [0, 2, 3, 5]
    assert report.f1[3] == 0 and report.f1[5] == 0
    expected = f1_score(Y_true, Y_pred, labels=kept, average="macro", zero_division=0)
    assert report.macro["f1"] == pytest.approx(expected)
    # sklearn's own macro average counts the absent classes as 0, so it is lower.
    assert report.macro["f1"] > f1_score(Y_true, Y_pred, average="macro", zero_division=0)
    assert report.weighted["f1"] == pytest.approx(
        f1_score(Y_true, Y_pred, average="weighted", zero_division=0)
    )
    text = str(report)
    assert "Macro average over 4 of 6 classes" in text
    assert "excluded (absent from both Y_true and Y_pred): 1, 4." in text
    assert report.to_dict()["excluded"] == [1, 4]


def test_every_class_excluded_gives_nan_averages():
    Y = np.zeros((5, 3), dtype=int)
    report = multilabel_report(Y, Y)
    assert report.excluded == (0, 1, 2)
    assert np.isnan(report.macro["f1"]) and np.isnan(report.weighted["recall"])
    assert "Macro average over 0 of 3 classes" in str(report)


def test_str_lays_out_the_paper_table():
    Y_true, Y_pred = noisy_predictions(n_classes=4)
    names = ["Nucleoplasm", "Nuclear membrane", "Nucleoli", "Rods & rings"]
    report = multilabel_report(Y_true, Y_pred, class_names=names, digits=3)
    lines = str(report).splitlines()
    assert lines[0].split() == ["Pattern", "name", "index", "F1", "Precision", "Recall", "Support"]
    for i, name in enumerate(names):
        row = lines[2 + i]
        assert row.startswith(name)
        cells = row[len(name) :].split()
        assert cells == [
            str(i),
            f"{report.f1[i]:.3f}",
            f"{report.precision[i]:.3f}",
            f"{report.recall[i]:.3f}",
            str(report.support[i]),
        ]
    macro = next(line for line in lines if line.startswith("Macro avg"))
    weighted = next(line for line in lines if line.startswith("Weighted avg"))
    assert macro.split()[2] == f"{report.macro['f1']:.3f}"
    assert weighted.split()[2] == f"{report.weighted['f1']:.3f}"
    assert "excluded" not in str(report)
    assert "macro_f1=" in repr(report)


def test_labels_select_and_order_columns_with_hpa_names():
    rng = np.random.default_rng(1)
    Y_true = (rng.random((200, 28)) < 0.2).astype(int)
    Y_pred = (rng.random((200, 28)) < 0.2).astype(int)
    report = multilabel_report(Y_true, Y_pred, class_names="hpa2018", labels=[25, 0, 21])
    assert report.class_names == (HPA_CLASSES[25], HPA_CLASSES[0], HPA_CLASSES[21])
    assert report.class_indices.tolist() == [25, 0, 21]
    _, _, f, s = precision_recall_fscore_support(
        Y_true, Y_pred, labels=[25, 0, 21], average=None, zero_division=0
    )
    np.testing.assert_allclose(report.f1, f)
    np.testing.assert_array_equal(report.support, s)
    assert report.macro["f1"] == pytest.approx(f.mean())
    assert str(report).splitlines()[2].startswith("Cytosol")


def test_single_column_is_scored_as_the_positive_class():
    y_true = np.array([[1], [1], [0], [0]])
    y_pred = np.array([[1], [0], [1], [0]])
    report = multilabel_report(y_true, y_pred)
    assert report.f1.tolist() == [0.5]
    assert report.support.tolist() == [2]


def test_sparse_and_boolean_inputs_give_the_same_report():
    Y_true, Y_pred = noisy_predictions()
    dense = multilabel_report(Y_true, Y_pred)
    for a, b in ((sp.csr_matrix(Y_true), sp.csr_matrix(Y_pred)), (Y_true == 1, Y_pred == 1)):
        other = multilabel_report(a, b)
        np.testing.assert_array_equal(other.f1, dense.f1)
        assert other.macro == dense.macro


def test_to_dict_is_json_serialisable_and_complete():
    Y_true, Y_pred = noisy_predictions(n_classes=3)
    report = multilabel_report(Y_true, Y_pred, class_names=["a", "b", "c"])
    data = json.loads(json.dumps(report.to_dict()))
    assert [c["name"] for c in data["classes"]] == ["a", "b", "c"]
    assert data["classes"][1]["f1"] == pytest.approx(report.f1[1])
    assert data["classes"][2]["support"] == int(report.support[2])
    assert data["macro avg"]["f1"] == pytest.approx(report.macro["f1"])
    assert data["weighted avg"]["support"] == int(Y_true.sum())


def test_to_frame_has_a_row_per_class_and_the_averages():
    pd = pytest.importorskip("pandas")
    Y_true, Y_pred = noisy_predictions(n_classes=3)
    Y_true[:, 2] = Y_pred[:, 2] = 0
    frame = multilabel_report(Y_true, Y_pred, class_names=["a", "b", "c"]).to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["a", "b", "c", "Macro avg", "Weighted avg"]
    assert frame.index.name == "Pattern name"
    assert list(frame.columns) == ["index", "F1", "Precision", "Recall", "Support", "Excluded"]
    assert frame["Excluded"].tolist() == [False, False, True, False, False]
    assert frame.loc["a", "index"] == 0 and pd.isna(frame.loc["Macro avg", "index"])
    assert frame.loc["Macro avg", "F1"] == pytest.approx(frame.loc[["a", "b"], "F1"].mean())


def test_report_is_a_dataclass_without_pandas_objects():
    Y_true, Y_pred = noisy_predictions(n_classes=2)
    report = multilabel_report(Y_true, Y_pred)
    assert isinstance(report, MultilabelReport)
    assert all(
        type(v).__module__.split(".")[0] in ("builtins", "numpy") for v in vars(report).values()
    )


@pytest.mark.parametrize(
    ("Y_true", "Y_pred", "kwargs", "match"),
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), {}, r"Y_true has shape \(4, 3\) but Y_pred"),
        (np.zeros((4, 3)), np.zeros((5, 3)), {}, "same samples"),
        (np.zeros((4, 2)), np.full((4, 2), 0.7), {}, r"only 0 and 1.*0\.7.*proba >= 0\.5"),
        (np.full((4, 2), 2), np.zeros((4, 2)), {}, "Y_true must hold only 0 and 1"),
        (np.zeros(4), np.zeros(4), {}, "classification_report"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {"class_names": ["a"]}, "1 names but Y has 2"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {"class_names": "hpa2019"}, "Unknown class"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {"labels": [0, 2]}, "indices in 0..1"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {"labels": [1, 1]}, "more than once"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {"labels": ["a"]}, "column indices"),
        (np.zeros((4, 2)), np.zeros((4, 2)), {"digits": -1}, "digits"),
    ],
)
def test_bad_input_raises(Y_true, Y_pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        multilabel_report(Y_true, Y_pred, **kwargs)
