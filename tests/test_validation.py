"""One input contract for every estimator that takes images (protloc._validation).

Pixel scale: uint8 / 255, uint16 / 65535, floats in [0, 1], other dtypes refused; the
channels seen in fit; images of one size in a plain list or an unresized batch.
"""

import numpy as np
import pytest

from protloc import CellposeSegmenter, CNNClassifier, CNNFeatureExtractor, FCNClassifier
from protloc.io import load_hpa

TINY_NET = dict(image_size=16, width=4, depth=2, epochs=1, batch_size=8, progress=False)


def _extractor(**kwargs):
    return CNNFeatureExtractor(
        "resnet10t",
        weights=None,
        image_size=32,
        device="cpu",
        random_state=0,
        progress=False,
        **kwargs,
    )


def _fit(estimator, X):
    if isinstance(estimator, (CNNClassifier, FCNClassifier)):
        return estimator.fit(X, np.tile([[1, 0], [0, 1]], (len(X) // 2, 1)))
    return estimator.fit(X)


def _image_estimators():
    return [
        pytest.param(lambda: CellposeSegmenter(progress=False), id="CellposeSegmenter"),
        pytest.param(_extractor, id="CNNFeatureExtractor"),
        pytest.param(lambda: CNNClassifier(**TINY_NET, early_stopping=False), id="CNNClassifier"),
        pytest.param(lambda: FCNClassifier(**TINY_NET, early_stopping=False), id="FCNClassifier"),
    ]


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, (2, 32, 32, 4)).astype(np.uint8)


# --------------------------------------------------------------------------- pixel scale
def test_same_pixels_give_same_features_in_every_accepted_dtype(pixels):
    reference = _extractor().fit_transform(pixels)
    as_float = pixels.astype(np.float32) / np.float32(255)
    as_uint16 = pixels.astype(np.uint16) * np.uint16(257)  # x * 257 / 65535 == x / 255
    for X in (as_float, as_float.astype(np.float64), as_uint16):
        np.testing.assert_allclose(_extractor().fit_transform(X), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", _image_estimators())
@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.uint32, np.bool_])
def test_integer_dtypes_of_unknown_depth_are_refused(make, dtype, pixels):
    X = (pixels > 128) if dtype is np.bool_ else pixels.astype(dtype)
    with pytest.raises(TypeError, match=r"bit depth is unknown.*astype\(np.uint8\)"):
        _fit(make(), np.concatenate([X, X]))


@pytest.mark.parametrize("make", _image_estimators())
def test_float_pixels_outside_unit_range_are_refused(make, pixels):
    X = pixels.astype(np.float32)  # 0..255 as floats
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]. Divide by 255"):
        _fit(make(), np.concatenate([X, X]))


def test_classifier_probabilities_do_not_depend_on_the_dtype(pixels):
    X = np.concatenate([pixels, pixels])[..., :16, :16, :]
    Y = np.tile([[1, 0], [0, 1]], (2, 1))
    net = CNNClassifier(**TINY_NET, early_stopping=False, random_state=0).fit(X, Y)
    np.testing.assert_allclose(
        net.predict_proba(X.astype(np.float32) / np.float32(255)), net.predict_proba(X), atol=1e-5
    )


# --------------------------------------------------------------------------- channels
def test_extractor_refuses_other_channels_than_in_fit(pixels):
    ext = _extractor().fit(pixels[..., :3])
    five = np.concatenate([pixels, pixels[..., :1]], axis=-1)
    with pytest.raises(ValueError, match=r"channels \('ch0'.*fitted on \('ch0', 'ch1', 'ch2'\)"):
        ext.transform(five)
    hpa = _extractor().fit(pixels)
    with pytest.raises(ValueError, match=r"'red', 'green', 'blue', 'yellow'\)"):
        hpa.transform(pixels[..., :3])


# --------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("make", _image_estimators())
def test_plain_list_of_mixed_sizes_names_the_fix(make, pixels):
    images = [pixels[0], pixels[1, :24, :24]]
    with pytest.raises(ValueError, match=r"different sizes.*load_hpa\(folder, lazy=True\)"):
        _fit(make(), images)


def test_lazy_mixed_sizes_without_resizing_names_the_fix(tmp_path, pixels):
    from PIL import Image

    for sample_id, size in (("a", 32), ("b", 24), ("c", 32), ("d", 24)):
        for c, name in enumerate(("red", "green", "blue", "yellow")):
            Image.fromarray(pixels[0, :size, :size, c]).save(tmp_path / f"{sample_id}_{name}.png")
    lazy = load_hpa(tmp_path, lazy=True).images
    net = CNNClassifier(**dict(TINY_NET, image_size=None), early_stopping=False)
    with pytest.raises(ValueError, match=r"different sizes.*Set image_size"):
        _fit(net, lazy)
