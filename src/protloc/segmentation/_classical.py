"""WatershedSegmenter: classical nucleus and cell masks from scikit-image, no model to download."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from protloc._params import fill_shared_docs, shared_constraints
from protloc.segmentation._base import BaseSegmenter, number_key
from protloc.segmentation._masks import grow_cells, pair_labels, remove_border_objects

__all__ = ["WatershedSegmenter", "segment_nuclei"]

# Bump when the algorithm changes, so that old cache entries are not reused.
_ALGORITHM_VERSION = 1
# Smoothing (pixels) of the cytoplasm signal before the cell watershed, as CellposeSegmenter.
_CELL_SIGMA = 2.0
# Shape of the nucleus search, as fractions of the nucleus diameter (tuned on the 100 real
# HPA images against Cellpose; see docs/benchmarks.md):
_SMOOTHING = 0.02  # Gaussian sigma before thresholding (more blurs nuclei together)
_PEAK_SPACING = 0.35  # least distance between two nucleus centres
_MIN_AREA = 0.1  # smallest nucleus, as a fraction of a disc of the diameter


def _threshold(image, method):
    from skimage import filters

    return {
        "otsu": filters.threshold_otsu,
        "li": filters.threshold_li,
        "triangle": filters.threshold_triangle,
    }[method](image)


def _foreground(plane, *, sigma, method, correction):
    """Smoothed plane, and its pixels above ``correction`` times the automatic threshold."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(plane.astype(np.float32, copy=False), sigma)
    if smooth.max() <= smooth.min():
        return smooth, np.zeros(smooth.shape, bool)
    return smooth, smooth > correction * _threshold(smooth, method)


def estimate_diameter(plane, *, threshold_method="li", threshold_correction=1.0):
    """Typical nucleus diameter of a nucleus plane, in pixels (None when it has none).

    The diameter of a disc of the area-weighted median area of the thresholded
    objects: the size of the object that a typical foreground pixel belongs to, so
    that specks of debris (many, but small) do not pull it down.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> plane = ((yy - 20) ** 2 + (xx - 20) ** 2 < 10**2) | ((yy - 45) ** 2 + (xx - 40) ** 2 < 10**2)
    >>> plane[2:4, 60:62] = True  # a speck
    >>> 19 <= estimate_diameter(plane.astype(float)) <= 23  # two discs 20 px across
    True
    """
    from scipy import ndimage

    _, foreground = _foreground(plane, sigma=1.0, method=threshold_method,
                                correction=threshold_correction)  # fmt: skip
    labels, n = ndimage.label(foreground)
    if n == 0:
        return None
    areas = np.sort(np.bincount(labels.ravel())[1:])
    share = np.cumsum(areas) / areas.sum()
    return float(2.0 * np.sqrt(areas[np.searchsorted(share, 0.5)] / np.pi))


def segment_nuclei(plane, diameter, *, threshold_method="li", threshold_correction=1.0):
    """Nucleus labels of one plane: smooth, threshold, fill holes, split by a watershed.

    The steps of CellProfiler's IdentifyPrimaryObjects: Gaussian smoothing, an automatic
    threshold, holes filled and specks removed, then touching nuclei split by a watershed
    on the distance to the background, seeded at distance peaks at least
    ``0.35 * diameter`` apart.

    Parameters
    ----------
    plane : ndarray of shape (rows, cols)
        The nucleus (DAPI) channel.
    diameter : float
        Typical nucleus diameter in pixels.
    threshold_method : {"li", "otsu", "triangle"}, default="li"
    threshold_correction : float, default=1.0
        Factor on the automatic threshold; above 1 is stricter.

    Returns
    -------
    nuclei : ndarray of int32, shape (rows, cols)
        Labels ``1 .. k``; 0 is background.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :60]
    >>> plane = ((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 < 100)
    >>> int(segment_nuclei(plane.astype(float), 20).max())  # two touching discs, split
    2
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import relabel_sequential, watershed

    _, foreground = _foreground(
        plane,
        sigma=max(_SMOOTHING * diameter, 0.5),
        method=threshold_method,
        correction=threshold_correction,
    )
    min_area = _MIN_AREA * np.pi * (diameter / 2) ** 2
    foreground = ndimage.binary_fill_holes(foreground)
    blobs, n_blobs = ndimage.label(foreground)
    if n_blobs == 0:
        return np.zeros(plane.shape, np.int32)
    areas = np.bincount(blobs.ravel())
    keep = areas >= min_area
    keep[0] = False
    blobs = np.where(keep[blobs], blobs, 0)
    if not keep.any():
        return np.zeros(plane.shape, np.int32)
    distance = ndimage.distance_transform_edt(blobs > 0)
    peaks = peak_local_max(
        distance,
        min_distance=max(int(_PEAK_SPACING * diameter), 1),
        labels=blobs,
        exclude_border=False,
    )
    markers = np.zeros(plane.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    nuclei = watershed(-distance, markers, mask=blobs > 0)
    # Splitting can leave specks; they go like the specks before it.
    sizes = np.bincount(nuclei.ravel())
    nuclei[(sizes < min_area)[nuclei]] = 0
    return relabel_sequential(nuclei)[0].astype(np.int32, copy=False)


@fill_shared_docs
class WatershedSegmenter(BaseSegmenter):
    """Segment nuclei and cells with classical image processing; nothing to download.

    Nuclei are found on the nucleus channel as CellProfiler's IdentifyPrimaryObjects
    finds them: Gaussian smoothing, an automatic threshold, holes filled and specks
    removed, then a watershed on the distance transform, seeded at distance peaks
    spaced by the nucleus diameter, splits touching nuclei. Cells are then grown from
    the nuclei by the same nucleus-seeded watershed on the cytoplasm channels as
    :class:`CellposeSegmenter` uses with ``cell_method="watershed"``. Cell ``k``
    contains nucleus ``k`` and labels run ``1 .. k`` per image. Images with no nucleus
    get empty masks and a :class:`NoNucleiWarning`.

    It needs only scikit-image and SciPy (no torch, no model file). On the 100 real
    HPA images it is about 30 times faster than :class:`CellposeSegmenter` on a CPU,
    nuclei and cells together, and its nuclei match Cellpose's (see the benchmarks
    page); Cellpose remains finer on very dim or crowded fields.

    Parameters
    ----------
    nucleus_channel : str or int, default="blue"
        The nucleus (DAPI) channel, by name or position.
    cyto_channels : str, int or sequence of them, default=("red", "yellow")
        Channels that outline the cytoplasm (HPA: microtubules and ER). Each is
        normalized to its 1st-99.5th percentiles, then they are averaged.
    diameter : float or None, default=None
        Typical nucleus diameter in pixels. It sets the smoothing, the smallest
        nucleus kept (a tenth of a disc of this diameter) and the least distance
        between the centres of two touching nuclei. None estimates it for each image
        from the area-weighted median area of its thresholded objects, which crowded
        fields inflate: give it where it is known. For 512-px HPA images,
        ``diameter=50`` (45 to 60 match Cellpose equally well); for
        :func:`~protloc.datasets.make_synthetic_hpa` fields, ``image_size / 8``.
    threshold_method : {"li", "otsu", "triangle"}, default="li"
        The automatic threshold of the smoothed nucleus channel
        (:func:`skimage.filters.threshold_li` and its siblings). Li's
        minimum-cross-entropy threshold sits lower than Otsu's on HPA nuclei and keeps
        their dim rims and dim nuclei, as Cellpose does: it matched Cellpose's nuclei
        better on the real HPA images (see the benchmarks page).
    threshold_correction : float, default=1.0
        Factor on the automatic threshold (CellProfiler's "threshold correction
        factor"): above 1 keeps only brighter nuclei, below 1 takes in dimmer ones.
    %(batch_size)s
    remove_border_cells : bool, default=False
        Drop cells (and their nuclei) that touch the image border.
    %(cache)s
        Here: sub-folder ``segmentation``, shared with :class:`CellposeSegmenter`,
        keyed by the nucleus and cytoplasm pixels and the parameters.
    %(progress)s
    %(shard_size)s
    %(n_jobs)s
        Here: workers over shards of images (local processes, or a Dask cluster
        under ``joblib.parallel_config(backend="dask")``).

    Attributes
    ----------
    channels_ : tuple of str
        Channel names of the images seen in ``fit``; ``transform`` needs the same.
    nucleus_channel_ : int
        Position of the nucleus channel.
    cyto_channels_ : tuple of int
        Positions of the cytoplasm channels.

    See Also
    --------
    CellposeSegmenter : nuclei from a Cellpose network; slower, and finer in dense fields.
    protloc.regions.RegionCropper : nucleus, nuclear-membrane and cell crops from the masks.
    protloc.segmentation.SegmentedImages : the output container.

    Examples
    --------
    Two touching nuclei (blue) in a cytoplasm field (red and yellow) come out as two
    nuclei, each inside its own cell:

    >>> import numpy as np
    >>> from protloc.segmentation import WatershedSegmenter
    >>> yy, xx = np.mgrid[:48, :64]
    >>> image = np.zeros((48, 64, 4), np.uint8)
    >>> image[..., 2] = 200 * (((yy - 24) ** 2 + (xx - 22) ** 2 < 100)
    ...                        | ((yy - 24) ** 2 + (xx - 39) ** 2 < 100))
    >>> image[4:44, 4:60, 0] = image[4:44, 4:60, 3] = 120
    >>> seg = WatershedSegmenter(diameter=20, progress=False)
    >>> out = seg.fit_transform(image[None])
    >>> out.n_objects.tolist(), int(out.cells[0, 24, 8]), int(out.cells[0, 24, 55])
    ([2], 1, 2)
    """

    _parameter_constraints: ClassVar[dict] = {
        "nucleus_channel": [str, Interval(Integral, None, None, closed="neither")],
        "cyto_channels": [str, Integral, list, tuple],
        "diameter": [Interval(Real, 0, None, closed="neither"), None],
        "threshold_method": [StrOptions({"otsu", "li", "triangle"})],
        "threshold_correction": [Interval(Real, 0, None, closed="neither")],
        "remove_border_cells": ["boolean"],
        **shared_constraints("batch_size", "cache", "progress", "shard_size", "n_jobs"),
    }

    def __init__(
        self,
        *,
        nucleus_channel="blue",
        cyto_channels=("red", "yellow"),
        diameter=None,
        threshold_method="li",
        threshold_correction=1.0,
        batch_size=8,
        remove_border_cells=False,
        cache=None,
        progress=True,
        shard_size=None,
        n_jobs=None,
    ):
        self.nucleus_channel = nucleus_channel
        self.cyto_channels = cyto_channels
        self.diameter = diameter
        self.threshold_method = threshold_method
        self.threshold_correction = threshold_correction
        self.batch_size = batch_size
        self.remove_border_cells = remove_border_cells
        self.cache = cache
        self.progress = progress
        self.shard_size = shard_size
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the images' channels; there is nothing to learn.

        Parameters
        ----------
        X : ndarray of shape (n_images, rows, cols, n_channels) or HPAImageSequence
        y : ignored

        Returns
        -------
        self : WatershedSegmenter
        """
        self._fit_channels(X)
        return self

    def transform(self, X):
        """Segment every image.

        Parameters
        ----------
        X : ndarray of shape (n_images, rows, cols, n_channels) or HPAImageSequence

        Returns
        -------
        segmented : SegmentedImages
            ``X`` itself (not copied) with the nucleus and cell masks.
        """
        return self._segment_images(X)

    def _cache_params(self):
        return {
            "segmenter": "watershed",
            "algorithm": _ALGORITHM_VERSION,
            "diameter": number_key(self.diameter),
            "threshold_method": self.threshold_method,
            "threshold_correction": number_key(self.threshold_correction),
            "remove_border_cells": self.remove_border_cells,
        }

    def _segment(self, planes):
        """Masks for a list of (rows, cols, 1 + n_cyto) planes: nucleus first."""
        return [self._segment_one(plane) for plane in planes]

    def _segment_one(self, plane):
        nucleus = plane[..., 0]
        blank = np.zeros(nucleus.shape, np.int32)
        diameter = self.diameter
        if diameter is None and nucleus.min() != nucleus.max():
            diameter = estimate_diameter(
                nucleus,
                threshold_method=self.threshold_method,
                threshold_correction=self.threshold_correction,
            )
        if diameter is None:
            return blank, blank.copy()
        nuclei = segment_nuclei(
            nucleus,
            diameter,
            threshold_method=self.threshold_method,
            threshold_correction=self.threshold_correction,
        )
        cells = grow_cells(nuclei, plane[..., 1:], sigma=_CELL_SIGMA)
        if self.remove_border_cells:
            nuclei, cells = remove_border_objects(nuclei, cells)
        return pair_labels(nuclei, cells)
