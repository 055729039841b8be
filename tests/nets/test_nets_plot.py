"""protloc.plot.localization_maps: one panel per class over the RGB composite."""

import numpy as np
import pytest

from protloc.nets import FCNClassifier
from protloc.plot import localization_maps

pytest.importorskip("matplotlib")


def test_panels_follow_the_classes_and_overlay_the_maps():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(48, 40, 4), dtype=np.uint8)
    maps = np.zeros((3, 12, 10))
    maps[2, :6, :5] = 0.9
    fig = localization_maps(image, maps, classes=[2], class_names=["a", "b", "c"])
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["image", "c\nmax 0.90"]
    overlay = titled[1].get_images()[1]
    np.testing.assert_array_equal(overlay.get_array(), maps[2])
    # The map is stretched over the whole image, whatever its resolution.
    assert overlay.get_extent() == [-0.5, 39.5, 47.5, -0.5]
    plt.close(fig)


def test_all_classes_by_default_with_fitted_fcn():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(8, 16, 16, 4), dtype=np.uint8)
    Y = np.array([[1, 0], [0, 1]] * 4)
    clf = FCNClassifier(
        image_size=16, width=4, depth=2, epochs=1, early_stopping=False, progress=False
    ).fit(X, Y)
    fig = localization_maps(X[0], clf.localization_maps(X[:1])[0])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "image" and titles[1].startswith("class 0") and len(titles) == 3
    plt.close(fig)


@pytest.mark.parametrize(
    ("image", "maps", "kwargs", "match"),
    [
        (np.zeros((2, 8, 8, 4)), np.zeros((2, 4, 4)), {}, "one image"),
        (np.zeros((8, 8, 4)), np.zeros((1, 2, 4, 4)), {}, "maps must have shape"),
        (np.zeros((8, 8, 4)), np.zeros((2, 4, 4)), {"classes": [2]}, "integer indices"),
        (np.zeros((8, 8, 4)), np.zeros((2, 4, 4)), {"class_names": ["a"]}, "1 names"),
    ],
)
def test_bad_input_raises(image, maps, kwargs, match):
    with pytest.raises(ValueError, match=match):
        localization_maps(image, maps, **kwargs)
