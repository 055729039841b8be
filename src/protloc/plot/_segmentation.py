"""Nucleus and cell outlines drawn over the RGB composite of an image."""

from __future__ import annotations

import numpy as np

from protloc.plot._common import import_pyplot, rgb_composite

__all__ = ["segmentation_overlay"]

#: Outline colours (RGB in [0, 1]): cells white, nuclei cyan.
CELL_COLOR = (1.0, 1.0, 1.0)
NUCLEUS_COLOR = (0.0, 1.0, 1.0)


def _check_mask(mask, shape, name):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(
            f"{name} has shape {mask.shape} but the image is {shape[0]}x{shape[1]}; pass "
            "the 2-D label mask of this image, e.g. segmented.nuclei[i]."
        )
    if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
        raise TypeError(f"{name} must be an integer label mask, got dtype {mask.dtype}.")
    return mask


def segmentation_overlay(image, nuclei, cells, ax=None, *, channels=None):
    """Draw nucleus and cell boundaries on the RGB composite of one image.

    Cell outlines are white and nucleus outlines cyan, one pixel wide, drawn into
    the pixels themselves. Without ``ax``, the figure has exactly one figure pixel
    per image pixel at its default dpi (100), so ``savefig`` keeps the image size.

    Parameters
    ----------
    image : ndarray of shape (rows, cols, n_channels) or (rows, cols)
        One image, for instance ``segmented.load_images([i])[0]``.
    nuclei : ndarray of int, shape (rows, cols), or None
        Nucleus labels (0 = background).
    cells : ndarray of int, shape (rows, cols), or None
        Cell labels.
    ax : matplotlib Axes, optional
        Where to draw; a new borderless figure when omitted.
    channels : sequence of str, optional
        Channel names of ``image``; the HPA order (red, green, blue, yellow) is
        assumed for 4-channel images.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.plot import segmentation_overlay
    >>> nuclei = np.zeros((32, 32), np.int32); nuclei[10:20, 10:20] = 1
    >>> cells = np.zeros_like(nuclei); cells[5:25, 5:25] = 1
    >>> fig = segmentation_overlay(np.zeros((32, 32, 4), np.uint8), nuclei, cells)
    >>> [int(v) for v in fig.get_size_inches() * fig.dpi]
    [32, 32]
    """
    from skimage.segmentation import find_boundaries

    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image has shape {image.shape}; pass one image (rows, cols, channels), not a batch."
        )
    shape = image.shape[:2]
    nuclei = _check_mask(nuclei, shape, "nuclei")
    cells = _check_mask(cells, shape, "cells")
    rgb = rgb_composite(image, channels=channels)
    # Cells first, so that nucleus outlines stay visible where the two touch.
    for mask, color in ((cells, CELL_COLOR), (nuclei, NUCLEUS_COLOR)):
        if mask is not None:
            rgb[find_boundaries(mask, mode="inner")] = color

    plt = import_pyplot()
    if ax is None:
        dpi = 100
        fig = plt.figure(figsize=(shape[1] / dpi, shape[0] / dpi), dpi=dpi)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    return ax.figure
