import numpy as np
import pytest
import tifffile
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from sklearn.model_selection import KFold, cross_val_score
from sklearn.utils._indexing import _safe_indexing

from protloc.io import (
    DEFAULT_CHANNELS,
    HPA2021_CLASSES,
    HPA_CLASSES,
    HPAImageSequence,
    check_images,
    load_hpa,
    parse_targets,
    read_labels,
    resolve_channels,
)


def _write_sample(folder, sample_id, shape=(16, 12), dtype=np.uint8, ext=".png", seed=0):
    rng = np.random.default_rng(seed)
    planes = {}
    for channel in DEFAULT_CHANNELS:
        high = 255 if dtype == np.uint8 else 65535
        plane = rng.integers(0, high, size=shape, endpoint=True).astype(dtype)
        path = folder / f"{sample_id}_{channel}{ext}"
        if ext == ".png":
            Image.fromarray(plane).save(path)
        else:
            tifffile.imwrite(path, plane)
        planes[channel] = plane
    return np.stack([planes[c] for c in DEFAULT_CHANNELS], axis=-1)


@pytest.fixture
def hpa_folder(tmp_path):
    images = {sid: _write_sample(tmp_path, sid, seed=i) for i, sid in enumerate(["b", "a", "c"])}
    (tmp_path / "labels.csv").write_text("Id,Target\nb,0\na,25 3 0\nc,21 22\n")
    return tmp_path, images


def test_class_tables():
    assert len(HPA_CLASSES) == 28 and len(HPA2021_CLASSES) == 19
    assert HPA_CLASSES[21] == "Plasma membrane" and HPA_CLASSES[22] == "Cell junctions"
    assert HPA2021_CLASSES[-1] == "Negative"


def test_load_eager_matches_files(hpa_folder):
    folder, images = hpa_folder
    data = load_hpa(folder, folder / "labels.csv")
    assert data.images.shape == (3, 16, 12, 4) and data.images.dtype == np.uint8
    assert data.ids.tolist() == ["b", "a", "c"]  # CSV order
    for i, sid in enumerate(data.ids):
        np.testing.assert_array_equal(data.images[i], images[sid])
    assert data.labels.shape == (3, 28)
    assert data.labels[1].nonzero()[0].tolist() == [0, 3, 25]
    assert data.class_names[0] == "Nucleoplasm"


def test_load_without_labels_sorts_ids_and_selects_channels(hpa_folder):
    folder, images = hpa_folder
    X, Y = load_hpa(folder, channels=("green", "blue"), return_X_y=True)
    assert Y is None and X.shape == (3, 16, 12, 2)
    np.testing.assert_array_equal(X[0], images["a"][..., [1, 2]])


def test_load_ids_subset_in_given_order(hpa_folder):
    folder, images = hpa_folder
    data = load_hpa(folder, folder / "labels.csv", ids=["c", "b"])
    assert data.ids.tolist() == ["c", "b"]
    assert data.labels[0].nonzero()[0].tolist() == [21, 22]
    np.testing.assert_array_equal(data.images[0], images["c"])


def test_sixteen_bit_tiff(tmp_path):
    expected = _write_sample(tmp_path, "t", dtype=np.uint16, ext=".tif")
    X, _ = load_hpa(tmp_path, return_X_y=True)
    assert X.dtype == np.uint16
    np.testing.assert_array_equal(X[0], expected)


def test_sixteen_bit_png(tmp_path):
    plane = np.arange(16 * 12, dtype=np.uint16).reshape(16, 12) * 300
    for channel in DEFAULT_CHANNELS:
        Image.fromarray(plane).save(tmp_path / f"s_{channel}.png")
    X, _ = load_hpa(tmp_path, return_X_y=True)
    assert X.dtype == np.uint16
    np.testing.assert_array_equal(X[0, ..., 0], plane)


def test_lazy_sequence_slices_like_an_array(hpa_folder):
    folder, images = hpa_folder
    data = load_hpa(folder, folder / "labels.csv", lazy=True)
    seq = data.images
    assert isinstance(seq, HPAImageSequence) and len(seq) == 3 and seq.shape == (3,)
    np.testing.assert_array_equal(seq[2], images["c"])
    sub = seq[np.array([2, 0])]
    assert isinstance(sub, HPAImageSequence) and sub.ids.tolist() == ["c", "b"]
    np.testing.assert_array_equal(sub.load(), np.stack([images["c"], images["b"]]))
    np.testing.assert_array_equal(seq[np.array([False, True, False])].load()[0], images["a"])
    # scikit-learn's own indexing, as used by every CV splitter
    picked = _safe_indexing(seq, np.array([1]))
    assert isinstance(picked, HPAImageSequence) and picked.ids.tolist() == ["a"]
    np.testing.assert_array_equal(np.asarray(seq), data.images.load())


def test_lazy_sequence_goes_through_cross_validation(hpa_folder):
    from sklearn.base import BaseEstimator, ClassifierMixin

    class MeanGreen(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            self.seen_ = len(X)
            return self

        def predict(self, X):
            return (X.load()[..., 1].mean(axis=(1, 2)) > 127).astype(int)

    folder, _ = hpa_folder
    seq = load_hpa(folder, lazy=True).images
    scores = cross_val_score(MeanGreen(), seq, np.array([0, 1, 0]), cv=KFold(3))
    assert scores.shape == (3,)


def test_lazy_does_not_decode_30000_samples(tmp_path):
    # 30,000 ids over 4 channel files each: only the directory listing is read.
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(30000):
        for channel in DEFAULT_CHANNELS:
            (folder / f"s{i:05d}_{channel}.png").touch()  # empty: decoding would fail
    seq = load_hpa(folder, lazy=True).images
    assert len(seq) == 30000
    with pytest.raises(ValueError, match=r"Cannot decode image file .*s00007_red.png"):
        seq[7]


def test_missing_channel_names_sample_and_file(hpa_folder):
    folder, _ = hpa_folder
    (folder / "a_yellow.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Sample 'a' has no 'yellow'.*a_yellow\.png"):
        load_hpa(folder, folder / "labels.csv")


def test_corrupt_png_names_sample_and_file(hpa_folder):
    folder, _ = hpa_folder
    (folder / "c_green.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=r"c_green\.png.*sample 'c'.*corrupt"):
        load_hpa(folder, folder / "labels.csv")


def test_mismatched_channel_sizes(hpa_folder):
    folder, _ = hpa_folder
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "b_blue.png")
    with pytest.raises(ValueError, match="Sample 'b' has channel images of different sizes"):
        load_hpa(folder, folder / "labels.csv")


def test_mixed_sample_sizes_suggest_resizing(tmp_path):
    _write_sample(tmp_path, "x", shape=(8, 8))
    _write_sample(tmp_path, "y", shape=(9, 8))
    seq = load_hpa(tmp_path, lazy=True).images
    assert seq[0].shape == (8, 8, 4) and seq[1].shape == (9, 8, 4)
    with pytest.raises(ValueError, match=r"different sizes.*image_size"):
        seq.load()


def test_unknown_id(hpa_folder):
    folder, _ = hpa_folder
    with pytest.raises(ValueError, match="Sample id 'zzz' is not in the labels file"):
        load_hpa(folder, folder / "labels.csv", ids=["a", "zzz"])


def test_label_out_of_range(hpa_folder):
    folder, _ = hpa_folder
    (folder / "labels.csv").write_text("Id,Target\na,0 28\n")
    with pytest.raises(ValueError, match=r"Label 28 of sample 'a' is outside 0..27"):
        load_hpa(folder, folder / "labels.csv")


def test_labels_csv_without_columns(tmp_path):
    (tmp_path / "l.csv").write_text("Name,Classes\na,1\n")
    with pytest.raises(ValueError, match="needs an 'Id' column and a 'Target'"):
        read_labels(tmp_path / "l.csv")


def test_duplicate_ids(tmp_path):
    (tmp_path / "l.csv").write_text("Id,Target\na,1\na,2\n")
    with pytest.raises(ValueError, match="lists sample 'a' more than once"):
        read_labels(tmp_path / "l.csv")


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hpa(tmp_path / "nope")
    with pytest.raises(ValueError, match="holds no files named"):
        load_hpa(tmp_path)


def test_2021_format(tmp_path):
    (tmp_path / "l.csv").write_text("ID,Label\na,16|0\nb,18\n")
    _, Y = read_labels(tmp_path / "l.csv", classes="hpa2021")
    assert Y.shape == (2, 19) and Y[0].nonzero()[0].tolist() == [0, 16]
    with pytest.raises(ValueError, match=r"outside 0..18"):
        parse_targets("19", n_classes=19)


@given(st.lists(st.integers(0, 27), min_size=1, max_size=10), st.sampled_from([" ", "|", "  "]))
def test_parse_targets_round_trip(indices, sep):
    assert parse_targets(sep.join(map(str, indices))) == sorted(set(indices))


@given(st.text(alphabet="abc-_.;,", min_size=1, max_size=5))
def test_parse_targets_rejects_non_integers(token):
    with pytest.raises(ValueError, match="is not an integer class index"):
        parse_targets(f"1 {token}")


def test_resolve_channels_errors():
    with pytest.raises(ValueError, match="Channel 'purple' is not present"):
        resolve_channels(["purple"], DEFAULT_CHANNELS)
    with pytest.raises(ValueError, match="out of range"):
        resolve_channels([4], DEFAULT_CHANNELS)
    with pytest.raises(ValueError, match="same channel twice"):
        resolve_channels(["green", 1], DEFAULT_CHANNELS)
    with pytest.raises(TypeError):
        resolve_channels([1.5], DEFAULT_CHANNELS)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((8, 8, 4)), ValueError, "ndim=3.*X\\[None\\]"),
        (np.zeros((0, 8, 8, 4)), ValueError, "holds no samples"),
        (np.full((1, 8, 8, 4), np.nan), ValueError, "NaN or Inf"),
        (np.array([[[["a"]]]]), TypeError, "must hold numbers"),
    ],
)
def test_check_images_errors(X, error, match):
    with pytest.raises(error, match=match):
        check_images(X)


@pytest.mark.real_data
def test_real_sample(hpa_sample_dir):
    data = load_hpa(hpa_sample_dir / "images", hpa_sample_dir / "labels.csv")
    assert data.images.shape == (100, 512, 512, 4) and data.images.dtype == np.uint8
    assert data.labels.shape == (100, 28) and data.labels.dtype == np.uint8
    counts = data.labels.sum(axis=0)
    assert counts[0] == 42 and counts[25] == 31
    assert (counts >= 5).nonzero()[0].tolist() == [0, 1, 2, 3, 4, 5, 7, 21, 22, 23, 25]
    assert len({tuple(row) for row in data.labels}) == 46
    lazy = load_hpa(hpa_sample_dir / "images", hpa_sample_dir / "labels.csv", lazy=True)
    np.testing.assert_array_equal(lazy.images[np.arange(5, 8)].load(), data.images[5:8])


@pytest.mark.real_data
def test_real_sample_error_paths(hpa_sample_dir, tmp_path):
    import shutil

    ids, _ = read_labels(hpa_sample_dir / "labels.csv")
    for channel in ("red", "green", "blue"):
        shutil.copy(hpa_sample_dir / "images" / f"{ids[0]}_{channel}.png", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{ids[0]}.*yellow"):
        load_hpa(tmp_path, hpa_sample_dir / "labels.csv", ids=[ids[0]])


def test_full_label_table(hpa_full_labels):
    _, Y = read_labels(hpa_full_labels)
    assert Y.shape == (31072, 28)
    assert Y.sum(axis=0).min() == 11 and Y.sum(axis=0).max() == 12885
