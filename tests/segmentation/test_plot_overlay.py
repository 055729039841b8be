"""protloc.plot.segmentation_overlay, rendered to a PNG file."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from protloc.plot import segmentation_overlay
from protloc.plot._segmentation import CELL_COLOR, NUCLEUS_COLOR


@pytest.fixture
def field():
    rows, cols = np.indices((60, 80))
    nuclei = np.zeros((60, 80), np.int32)
    nuclei[(rows - 30) ** 2 + (cols - 40) ** 2 <= 8**2] = 1
    cells = np.zeros_like(nuclei)
    cells[(rows - 30) ** 2 + (cols - 40) ** 2 <= 20**2] = 1
    image = np.zeros((60, 80, 4), np.uint8)
    image[..., 0] = 40 * (cells > 0)  # red cytoplasm
    image[..., 2] = 90 * (nuclei > 0)  # blue nucleus
    return image, nuclei, cells


def _rendered(fig, path):
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def test_overlay_png_has_image_size_and_outlines(field, tmp_path):
    image, nuclei, cells = field
    pixels = _rendered(segmentation_overlay(image, nuclei, cells), tmp_path / "overlay.png")
    assert pixels.shape == (60, 80, 3)
    nucleus_px = np.all(pixels == np.array(NUCLEUS_COLOR) * 255, axis=-1)
    cell_px = np.all(pixels == np.array(CELL_COLOR) * 255, axis=-1)
    # outlines lie on the object edges: the nucleus ring is about 2*pi*8 pixels long
    assert 30 <= nucleus_px.sum() <= 80
    assert 80 <= cell_px.sum() <= 200
    r, c = np.nonzero(nucleus_px)
    dist = np.hypot(r - 30, c - 40)
    assert dist.min() >= 6 and dist.max() <= 8.5
    r, c = np.nonzero(cell_px)
    assert np.hypot(r - 30, c - 40).min() >= 18
    # no outline inside the nucleus or in the background
    assert not nucleus_px[30, 40] and not cell_px[2, 2]


def test_overlay_on_given_axes_and_without_cells(field, tmp_path):
    import matplotlib.pyplot as plt

    image, nuclei, _ = field
    fig, axes = plt.subplots(1, 2)
    assert segmentation_overlay(image, nuclei, None, ax=axes[1]) is fig
    assert len(axes[1].images) == 1 and len(axes[0].images) == 0
    plt.close(fig)


def test_overlay_rejects_mismatched_masks(field):
    image, nuclei, cells = field
    with pytest.raises(ValueError, match="nuclei has shape"):
        segmentation_overlay(image, nuclei[:10], cells)
    with pytest.raises(ValueError, match="not a batch"):
        segmentation_overlay(image[None], nuclei, cells)
    with pytest.raises(TypeError, match="integer label mask"):
        segmentation_overlay(image, nuclei.astype(float), cells)
