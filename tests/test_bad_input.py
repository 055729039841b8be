"""Bad input never passes silently (issue 16): each case gets a clear error or a safe result.

Readers (load_hpa, read_labels), threshold tuning, corrupt model and checkpoint files.
Every error case checks the exception type and a fragment naming the problem; the
silent cases check the corrected behaviour.
"""

import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from protloc.io import DEFAULT_CHANNELS, load_hpa, read_labels
from protloc.multilabel import (
    BinaryRelevance,
    ThresholdTuner,
    UndecidableThresholdWarning,
    tune_thresholds,
)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hpa_folder(tmp_path_factory):
    """Three 8x6 samples s0..s2 in the Kaggle layout, with a labels CSV."""
    folder = tmp_path_factory.mktemp("hpa")
    rng = np.random.default_rng(0)
    for sid in ("s0", "s1", "s2"):
        for channel in DEFAULT_CHANNELS:
            plane = rng.integers(0, 255, size=(8, 6), dtype=np.uint8)
            Image.fromarray(plane).save(folder / f"{sid}_{channel}.png")
    (folder / "labels.csv").write_text("Id,Target\ns0,0\ns1,2 5\ns2,7\n")
    return folder


@pytest.fixture
def one_torch_thread():
    """Tiny nets train faster with one intra-op thread on a loaded two-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _undecidable_warnings(record):
    return [w for w in record if issubclass(w.category, UndecidableThresholdWarning)]


# --------------------------------------------------------------------------- thresholds
def test_tune_thresholds_one_positive_gets_the_fallback_and_one_warning():
    Y = np.array([[1, 1], [0, 1], [0, 0], [0, 0], [0, 1]])
    # label 0's only positive scores lowest: F1 alone would keep every sample
    scores = np.array([[0.1, 0.9], [0.4, 0.8], [0.3, 0.2], [0.2, 0.1], [0.5, 0.7]])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        thresholds = tune_thresholds(Y, scores)
    caught = _undecidable_warnings(record)
    assert len(caught) == 1
    assert "Label 0 (1 positive sample)" in str(caught[0].message)
    assert thresholds[0] == 0.5
    assert np.isfinite(thresholds).all()


@pytest.mark.parametrize(
    ("column", "why"),
    [([0, 0, 0, 0], "no positive sample"), ([1, 1, 1, 1], "no negative sample")],
)
def test_tune_thresholds_no_positive_or_no_negative(column, why):
    Y = np.array([column, [1, 0, 1, 0]]).T
    scores = np.array([[0.9, 0.8], [0.2, 0.1], [0.6, 0.7], [0.4, 0.3]])
    with pytest.warns(UndecidableThresholdWarning, match=why):
        thresholds = tune_thresholds(Y, scores, fallback=0.0, label_names=["rare", "common"])
    assert thresholds[0] == 0.0 and np.isfinite(thresholds).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_tune_thresholds_refuses_non_finite_scores(bad):
    Y = np.array([[1], [1], [0], [0]])
    with pytest.raises(ValueError, match="scores hold NaN or infinity"):
        tune_thresholds(Y, np.array([[0.9], [bad], [0.2], [0.1]]))


def test_threshold_tuner_does_not_predict_a_one_positive_label_for_every_sample():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    Y = np.zeros((30, 2), dtype=int)
    Y[:15, 0] = 1
    X[:15, 0] += 3
    Y[4, 1] = 1  # one positive: before issue 16 its threshold was -inf
    tuner = ThresholdTuner(BinaryRelevance(LogisticRegression()), cv=KFold(3))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tuner.fit(X, Y)
    caught = _undecidable_warnings(record)
    assert len(caught) == 1 and "Label 1 (1 positive sample)" in str(caught[0].message)
    assert tuner.thresholds_[1] == 0.5  # predict_proba's own cut
    assert np.isfinite(tuner.thresholds_).all()
    assert tuner.predict(X)[:, 1].sum() < len(X)


def test_threshold_tuner_on_decision_function_falls_back_to_zero():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 3))
    Y = np.zeros((24, 2), dtype=int)
    Y[:12, 0] = 1
    X[:12, 0] += 3
    tuner = ThresholdTuner(
        BinaryRelevance(LogisticRegression()), cv=KFold(3), response_method="decision_function"
    )
    with pytest.warns(UndecidableThresholdWarning, match="Label 1 \\(no positive sample\\)"):
        tuner.fit(X, Y)
    assert tuner.thresholds_[1] == 0.0
    assert tuner.predict(X)[:, 1].sum() == 0


@pytest.mark.usefixtures("one_torch_thread")
def test_net_validation_thresholds_warn_once_and_stay_finite():
    from protloc.nets import FCNClassifier

    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(16, 16, 16, 4), dtype=np.uint8)
    Y = np.zeros((16, 2), dtype=np.uint8)
    Y[::2, 0] = 1  # label 1 never occurs: undecidable in every validation split
    clf = FCNClassifier(
        image_size=16,
        width=4,
        depth=2,
        epochs=3,
        batch_size=8,
        threshold="validation",
        validation_fraction=0.5,
        early_stopping=False,
        progress=False,
        device="cpu",
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clf.fit(X, Y)
    caught = _undecidable_warnings(record)
    assert len(caught) == 1, [str(w.message) for w in caught]  # once, not per epoch
    assert "validation split" in str(caught[0].message)
    assert clf.thresholds_[1] == 0.5 and np.isfinite(clf.thresholds_).all()


# --------------------------------------------------------------------------- load_hpa
@pytest.mark.parametrize(
    ("argument", "one"), [("channels", "green"), ("ids", "s1")], ids=["channels", "ids"]
)
def test_load_hpa_takes_a_bare_string_as_one_name(hpa_folder, argument, one):
    data = load_hpa(hpa_folder, **{argument: one})
    expected = load_hpa(hpa_folder, **{argument: [one]})
    np.testing.assert_array_equal(data.images, expected.images)
    if argument == "channels":
        assert data.channels == ("green",) and data.images.shape == (3, 8, 6, 1)
    else:
        assert data.ids.tolist() == ["s1"] and data.images.shape == (1, 8, 6, 4)


def test_load_hpa_bare_id_with_labels(hpa_folder):
    data = load_hpa(hpa_folder, hpa_folder / "labels.csv", ids="s1")
    assert data.ids.tolist() == ["s1"] and data.labels[0, [2, 5]].tolist() == [1, 1]


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1])
def test_load_hpa_valid_n_jobs(hpa_folder, n_jobs):
    data = load_hpa(hpa_folder, n_jobs=n_jobs)
    np.testing.assert_array_equal(data.images, load_hpa(hpa_folder, n_jobs=1).images)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_jobs": 0}, ValueError, "n_jobs=0 means no thread"),
        ({"n_jobs": -2}, ValueError, "n_jobs=-2 means no thread"),
        ({"n_jobs": "4"}, TypeError, "n_jobs must be an int.*got '4' of type str"),
        ({"n_jobs": 2.0}, TypeError, "n_jobs must be an int"),
        ({"channels": 5}, TypeError, "channels must be a sequence of channel names"),
        ({"channels": ("green", 2)}, TypeError, "channels must be channel names.*got 2"),
        ({"channels": ("green", "Green")}, ValueError, "names a channel twice"),
        ({"ids": []}, ValueError, "ids is empty"),
        ({"ids": 3}, TypeError, "ids must be a sequence of sample ids"),
        ({"classes": 123}, TypeError, "classes must be 'hpa2018', 'hpa2021' or a sequence"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_load_hpa_bad_arguments(hpa_folder, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_hpa(hpa_folder, **kwargs)


def test_load_hpa_accepts_a_labels_csv_with_a_byte_order_mark(hpa_folder, tmp_path):
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (hpa_folder / "labels.csv").read_bytes())
    data = load_hpa(hpa_folder, bom)
    plain = load_hpa(hpa_folder, hpa_folder / "labels.csv")
    assert data.ids.tolist() == plain.ids.tolist() == ["s0", "s1", "s2"]
    np.testing.assert_array_equal(data.labels, plain.labels)


# --------------------------------------------------------------------------- read_labels
def _png(path):
    Image.fromarray(np.full((4, 4), 200, np.uint8)).save(path, format="PNG")


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "match"),
    [
        (lambda p: p.mkdir(), {}, ValueError, "is a folder; pass the CSV file"),
        (_png, {}, ValueError, "is not a UTF-8 text CSV.*image or a spreadsheet"),
        (
            lambda p: p.write_text("Id,Target\na,1\n", encoding="utf-16"),
            {},
            ValueError,
            "is not a UTF-8 text CSV",
        ),
        (lambda p: p.write_text(""), {}, ValueError, "is empty; it needs an 'Id,Target'"),
        (
            lambda p: p.write_text("Id,Target\na,1\nb\n"),
            {},
            ValueError,
            "Line 3 .* has fewer fields than its header",
        ),
        (lambda p: None, {}, FileNotFoundError, "does not exist"),
        (
            lambda p: p.write_text("Id;Target\na;1\n"),
            {},
            ValueError,
            "needs an 'Id' column.*separated by ';'; save it with commas",
        ),
        (
            lambda p: p.write_text("Id,Target\na,1\n"),
            {"classes": 123},
            TypeError,
            "classes must be 'hpa2018', 'hpa2021' or a sequence of class names; got 123",
        ),
        (lambda p: p.write_text("Id,Target\na,1\n"), {"classes": ()}, ValueError, "empty"),
    ],
    ids=[
        "folder",
        "png",
        "utf16",
        "empty",
        "short-row",
        "missing",
        "semicolons",
        "classes-int",
        "no-class",
    ],
)
def test_read_labels_bad_input(tmp_path, make, kwargs, error, match):
    path = tmp_path / "labels.csv"
    make(path)
    with pytest.raises(error, match=match):
        read_labels(path, **kwargs)


def test_read_labels_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfId,Target\na,25 0\n")
    ids, Y = read_labels(path)
    assert ids.tolist() == ["a"] and Y[0, [0, 25]].tolist() == [1, 1]


# --------------------------------------------------------------------------- model files
def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


# Each makes torch.load fail differently: IndexError, KeyError, EOFError, UnpicklingError.
BAD_MODEL_FILES = {
    "dot": lambda p: p.write_text("."),
    "text": lambda p: p.write_text("hello\n"),
    "empty": lambda p: p.write_bytes(b""),
    "random-bytes": _random_bytes,
}


@pytest.mark.parametrize("make", BAD_MODEL_FILES.values(), ids=BAD_MODEL_FILES.keys())
def test_cellpose_model_that_is_not_a_model(tmp_path, make):
    from protloc.segmentation import CellposeSegmenter

    bad = tmp_path / "model.pth"
    make(bad)
    X = np.zeros((1, 32, 32, 4), np.uint8)
    X[0, 10:20, 10:20, 2] = 200  # a nucleus, so Cellpose is needed
    seg = CellposeSegmenter(bad, progress=False).fit(X)
    with pytest.raises(
        ValueError, match=r"Cannot load the Cellpose model file.*not a Cellpose"
    ) as info:
        seg.transform(X)
    assert "weights_only" not in str(info.value)


def _list_in_a_torch_file(path):
    import torch

    torch.save([1, 2, 3], path)


@pytest.mark.parametrize(
    "make",
    [*BAD_MODEL_FILES.values(), _list_in_a_torch_file],
    ids=[*BAD_MODEL_FILES.keys(), "torch-list"],
)
def test_net_checkpoint_that_is_not_a_checkpoint(tmp_path, make):
    from protloc.nets import CNNClassifier

    X = np.zeros((8, 16, 16, 4), np.uint8)
    Y = np.eye(2, dtype=np.uint8)[np.arange(8) % 2]
    params = dict(image_size=16, width=4, depth=2, epochs=1, progress=False, random_state=0)
    CNNClassifier(**params, checkpoint=tmp_path).fit(X, Y)
    (saved,) = tmp_path.glob("cnnclassifier-*.pt")
    saved.unlink()
    make(saved)  # the same fit's file, now damaged or foreign
    with pytest.raises(ValueError, match=r"\.pt' is not a protloc checkpoint.*Delete it") as info:
        CNNClassifier(**params, checkpoint=tmp_path).fit(X, Y)
    assert "weights_only" not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.usefixtures("one_torch_thread")
def test_net_truncated_checkpoint(tmp_path):
    from protloc.nets import CNNClassifier

    X = np.random.default_rng(0).integers(0, 255, size=(8, 16, 16, 4), dtype=np.uint8)
    Y = np.eye(2, dtype=np.uint8)[np.arange(8) % 2]
    params = dict(
        image_size=16,
        width=4,
        depth=2,
        epochs=1,
        early_stopping=False,
        progress=False,
        random_state=0,
    )
    CNNClassifier(**params, checkpoint=tmp_path).fit(X, Y)
    (path,) = tmp_path.glob("cnnclassifier-*.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    with pytest.raises(ValueError, match="is not a protloc checkpoint"):
        CNNClassifier(**params, checkpoint=tmp_path).fit(X, Y)


def test_net_checkpoint_that_is_a_file(tmp_path):
    from protloc.nets import CNNClassifier

    X = np.zeros((8, 16, 16, 4), np.uint8)
    Y = np.eye(2, dtype=np.uint8)[np.arange(8) % 2]
    (tmp_path / "fit.pt").write_bytes(b"x")
    clf = CNNClassifier(
        image_size=16, width=4, depth=2, epochs=1, progress=False, checkpoint=tmp_path / "fit.pt"
    )
    with pytest.raises(ValueError, match="is a file; checkpoint names a folder"):
        clf.fit(X, Y)
