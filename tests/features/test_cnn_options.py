"""CNNFeatureExtractor options: intermediate stages, native-resolution tiles, dihedral TTA.

Each option is checked against a naive computation done here with numpy, timm and torch.
"""

import numpy as np
import pytest

from protloc import CellCrops
from protloc.features import CNNFeatureExtractor

LITE0_STAGES = (16, 24, 40, 112, 320)  # channels of tf_efficientnet_lite0's feature_info


@pytest.fixture(scope="module")
def pixels():
    """Three 40x48 2-channel uint8 images (not square, so turns change their shape)."""
    return np.random.default_rng(0).integers(0, 256, (3, 40, 48, 2), dtype=np.uint8)


def make(**params):
    params.setdefault("image_size", 32)
    params.setdefault("device", "cpu")
    params.setdefault("progress", False)
    params.setdefault("weights", None)
    params.setdefault("random_state", 0)
    return CNNFeatureExtractor(params.pop("backbones", "resnet10t"), **params)


def close(a, b, tol=1e-5):
    """Equal to ``tol`` relative to the features' scale."""
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale)


def dihedral(X):
    """The 8 views of a batch (n, rows, cols, C): 4 quarter turns, each then mirrored."""
    for turns in range(4):
        turned = np.rot90(X, turns, axes=(1, 2))
        yield np.ascontiguousarray(turned)
        yield np.ascontiguousarray(turned[:, :, ::-1])


# --------------------------------------------------------------------------- stages
def test_stages_are_feature_maps_pooled_by_mean_then_max(lite0):
    """The block equals timm's features_only network with the same weights, pooled by hand."""
    import timm
    import torch
    from safetensors.torch import load_file

    X = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 2), dtype=np.uint8)
    ext = make(backbones="tf_efficientnet_lite0", weights=lite0, layer="stages")
    features = ext.fit_transform(X)
    width = 2 * sum(LITE0_STAGES)
    assert width == 1024 and ext.backbone_config_["tf_efficientnet_lite0"]["width"] == width
    assert features.shape == (2, 2 * width)
    names = ext.get_feature_names_out()
    assert len(names) == 2 * width
    assert names[width] == "tf_efficientnet_lite0__ch1__image__0"
    assert [b.slice for b in ext.feature_blocks_] == [slice(0, width), slice(width, 2 * width)]

    net = timm.create_model("tf_efficientnet_lite0", features_only=True)
    missing, _ = net.load_state_dict(load_file(str(lite0)), strict=False)
    assert missing == []
    net.eval()
    assert tuple(net.feature_info.channels()) == LITE0_STAGES
    mean, std = net.pretrained_cfg["mean"], net.pretrained_cfg["std"]
    rows = []
    for image in X:
        row = []
        for c in range(2):  # 32 px images at image_size=32: no resize
            plane = torch.tensor(image[..., c], dtype=torch.float32)[None, None] / 255
            x = torch.cat([(plane - m) / s for m, s in zip(mean, std)], dim=1)
            with torch.no_grad():
                maps = net(x)
            for m in maps:  # stage by stage: the mean of every channel, then the max
                row += [m.mean((2, 3))[0], m.amax((2, 3))[0]]
        rows.append(torch.cat(row).numpy())
    close(features, np.stack(rows))


def test_stages_width_and_names_of_resnet10t(pixels):
    ext = make(layer="stages", channels="ch1").fit(pixels)
    # feature_info of resnet10t: its stem (64) and 4 stages (64, 128, 256, 512)
    assert ext.backbone_config_["resnet10t"]["width"] == 2 * 1024
    features = ext.transform(pixels)
    assert features.shape == (3, 2048)
    names = ext.get_feature_names_out()
    assert names[0] == "resnet10t__ch1__image__0" and names[-1] == "resnet10t__ch1__image__2047"
    # stage by stage, the means then the maxima, which are never below them
    start = 0
    for channels in (64, 64, 128, 256, 512):
        means, maxima = features[:, start : start + channels], features[:, start + channels :]
        assert np.all(maxima[:, :channels] >= means)
        start += 2 * channels
    assert start == 2048


# --------------------------------------------------------------------------- tiles
def test_tiles_are_the_mean_over_a_hand_cut_grid():
    X = np.random.default_rng(2).integers(0, 256, (2, 65, 66, 2), dtype=np.uint8)
    tiled = make(tiles=2).fit(X)
    features = tiled.transform(X)
    plain = make().fit(X)
    assert features.shape == plain.transform(X).shape == (2, 2 * 512)
    assert tiled.get_feature_names_out().tolist() == plain.get_feature_names_out().tolist()
    # boundaries at rows * i // tiles: rows 0:32, 32:65; cols 0:33, 33:66
    tiles = [X[:, r0:r1, c0:c1] for r0, r1 in ((0, 32), (32, 65)) for c0, c1 in ((0, 33), (33, 66))]
    close(features, np.mean([plain.transform(t) for t in tiles], axis=0))
    assert not np.allclose(features, plain.transform(X), atol=1e-3)


def test_tiles_refuse_cell_crops_and_too_small_images(pixels):
    crops = CellCrops(
        crops={"cell": pixels[:, :24, :24]},
        image_index=np.array([0, 0, 1]),
        n_images=2,
        channels=("green", "blue"),
    )
    with pytest.raises(ValueError, match=r"tiles=2 applies to whole images only.*Use tiles=1"):
        make(tiles=2).fit(crops)
    ext = make().fit(crops)
    ext.set_params(tiles=3)
    with pytest.raises(ValueError, match="tiles=3 applies to whole images only"):
        ext.transform(crops)
    with pytest.raises(ValueError, match=r"tiles=41 cannot cut an image of 40x48.*tiles <= 40"):
        make(tiles=41).fit_transform(pixels)


# --------------------------------------------------------------------------- tta
def test_dihedral_tta_is_the_mean_over_turned_and_mirrored_images(pixels):
    features = make(tta="dihedral").fit_transform(pixels)
    plain = make().fit(pixels)
    assert features.shape == (3, 2 * 512)
    views = [plain.transform(view) for view in dihedral(pixels)]
    close(features, np.mean(views, axis=0))
    assert not np.allclose(features, views[0], atol=1e-3)


def test_dihedral_tta_of_cell_crops(pixels):
    def crops_of(arrays):
        return CellCrops(
            crops=dict(zip(("nucleus", "cell"), arrays)),
            image_index=np.array([0, 0, 1]),
            n_images=2,
            channels=("green", "blue"),
        )

    nucleus, cell = pixels[:, 4:20, 4:24], pixels[:, :24, :30]
    crops = crops_of([nucleus, cell])
    # 3 cells x 8 views in batches of 2: an image's views are split over batches
    ext = make(tta="dihedral", batch_size=2).fit(crops)
    cells, index = ext.transform_cells(crops)
    assert cells.shape == (3, 2 * 2 * 512) and index.tolist() == [0, 0, 1]
    plain = make().fit(crops)
    views = zip(dihedral(nucleus), dihedral(cell))
    close(cells, np.mean([plain.transform_cells(crops_of(v))[0] for v in views], axis=0))


# --------------------------------------------------------------------------- shared
OPTIONS = {
    "stages": {"layer": "stages"},
    "tiles": {"tiles": 2},
    "tta": {"tta": "dihedral"},
}


@pytest.mark.parametrize("option", OPTIONS)
def test_options_give_the_same_bits_whatever_the_batches_and_shards(pixels, option):
    # Two channels: a pass of a single plane takes other CPU kernels (last bits differ,
    # with or without these options), which padding to batch_size does not change.
    X = pixels
    reference = make(batch_size=4, **OPTIONS[option]).fit_transform(X)
    np.testing.assert_array_equal(make(batch_size=1, **OPTIONS[option]).fit_transform(X), reference)
    sharded = make(batch_size=4, shard_size=1, **OPTIONS[option]).fit_transform(X)
    np.testing.assert_array_equal(sharded, reference)


def test_cache_keys_keep_options_apart_and_defaults_unchanged(tmp_path, pixels):
    X = pixels[:2, ..., :1]
    default = make(cache=tmp_path).fit(X)
    assert not {"tiles", "tta"} & set(default._get_runtimes()[0].cache_params())
    expected = {}
    for option, params in {"default": {}, **OPTIONS}.items():
        expected[option] = make(**params).fit_transform(X)
        cached = make(cache=tmp_path, **params).fit(X)
        np.testing.assert_array_equal(cached.transform(X), expected[option])
    assert len(list((tmp_path / "cnn-features").glob("*/*.npz"))) == 2 * 4
    # read back from the cache, each option its own entries
    for option, params in {"default": {}, **OPTIONS}.items():
        np.testing.assert_array_equal(
            make(cache=tmp_path, **params).fit(X).transform(X), expected[option]
        )
    assert len(list((tmp_path / "cnn-features").glob("*/*.npz"))) == 2 * 4


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tiles": 0}, r"'tiles' parameter .* range \[1, inf\)"),
        ({"tiles": 1.5}, "'tiles' parameter"),
        ({"tta": "foo"}, r"'tta' parameter .*None or a str among \{'dihedral'\}"),
        ({"layer": "stage"}, r"'layer' parameter .*'stages'"),
    ],
)
def test_bad_option_values_are_refused(pixels, params, match):
    with pytest.raises(ValueError, match=match):
        make(**params).fit(pixels)
