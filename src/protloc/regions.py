"""RegionCropper: per-cell crops of the nucleus, the nuclear-membrane ring, the cell and the cytoplasm."""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from protloc._containers import CellCrops, ContainerOutputMixin, SegmentedImages
from protloc._validation import resolve_channels

__all__ = ["REGIONS", "RegionCropper", "membrane_ring"]

#: Regions RegionCropper can cut, in their canonical order.
REGIONS = ("nucleus", "nuclear_membrane", "cell", "cytoplasm")

# Images decoded at once from a lazy HPAImageSequence; bounds memory, not results.
_LOAD_BATCH = 16


def membrane_ring(nucleus, inside, outside, *, exclude=None):
    """The nuclear-membrane ring of a boolean nucleus mask.

    ``dilation(nucleus, disk(outside)) & ~erosion(nucleus, disk(inside))`` with
    scikit-image's ``disk`` footprints: the pixels within ``outside`` pixels
    outside the nucleus boundary and within ``inside`` pixels inside it (Euclidean
    distance, as ``disk`` draws it). Pixels beyond the array count as background,
    so a nucleus cut by the image border is ringed along the border too.

    Parameters
    ----------
    nucleus : ndarray of bool, shape (rows, cols)
    inside, outside : int
        Ring width in pixels on each side of the boundary.
    exclude : ndarray of bool, optional
        Pixels never in the ring, e.g. other nuclei.

    Returns
    -------
    ring : ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> import numpy as np
    >>> nucleus = np.zeros((14, 14), bool); nucleus[2:12, 2:12] = True
    >>> int(membrane_ring(nucleus, 1, 1).sum())  # 36 inner + 40 outer pixels
    76
    """
    from skimage.morphology import dilation, disk, erosion

    nucleus = np.asarray(nucleus, dtype=bool)
    grown = dilation(nucleus, disk(outside)) if outside else nucleus
    core = erosion(nucleus, disk(inside), mode="constant", cval=0) if inside else nucleus
    ring = grown & ~core
    if exclude is not None:
        ring &= ~exclude
    return ring


def _window(image, top, left, size):
    """``image[top:top+size, left:left+size]`` with zeros where it leaves the image."""
    out = np.zeros((size, size, *image.shape[2:]), dtype=image.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, image.shape[0]), min(left + size, image.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return out


def _resize(crop, size):
    """Downscale a (side, side, channels) crop to (size, size, channels) by area averaging."""
    from PIL import Image

    # Box (area) resampling is exact anti-aliasing for downscaling, and fast in Pillow's
    # float mode, which also keeps 16-bit and float images intact.
    box = Image.Resampling.BOX
    planes = [
        np.asarray(Image.fromarray(crop[..., c].astype(np.float32)).resize((size, size), box))
        for c in range(crop.shape[-1])
    ]
    out = np.stack(planes, axis=-1)
    if np.issubdtype(crop.dtype, np.integer):
        info = np.iinfo(crop.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return out.astype(crop.dtype, copy=False)


class RegionCropper(ContainerOutputMixin, TransformerMixin, BaseEstimator):
    """Cut nucleus, nuclear-membrane, cell and cytoplasm crops of every cell.

    For each cell ``k`` of a :class:`~protloc.segmentation.SegmentedImages` (cell
    ``k`` holds nucleus ``k``) and each region, a square window centred on that
    region of the cell is cut from every selected channel:

    - ``"nucleus"``: nucleus ``k``;
    - ``"nuclear_membrane"``: a ring ``membrane_width`` pixels inside and outside
      the nucleus boundary (:func:`membrane_ring`), without other nuclei's pixels;
    - ``"cell"``: cell ``k``, nucleus included;
    - ``"cytoplasm"``: cell ``k`` minus its nucleus.

    A region that fits in ``crop_size`` is padded: the window is ``crop_size``
    wide, so pixel scale is kept and small nuclei are not blown up. A larger region
    gets a window just wide enough, downscaled to ``crop_size`` by area averaging;
    as windows are square, aspect is always kept. With
    ``mask_outside``, pixels outside the region are zeroed before any
    downscaling. Windows reaching past the image border are zero-padded.

    Parameters
    ----------
    regions : str or sequence of str, default=("nucleus", "nuclear_membrane", "cell")
        Regions to cut, among ``"nucleus"``, ``"nuclear_membrane"``, ``"cell"`` and
        ``"cytoplasm"``.
    membrane_width : int or (int, int), default=4
        Ring width in pixels inside and outside the nucleus boundary (one value for
        both, or ``(inside, outside)``). In 512-px HPA images 4 px is about 1.3 um
        on each side, which holds the nuclear envelope given segmentation error.
    crop_size : int, default=128
        Side of every crop (at least 16). Most nuclei of 512-px HPA images (50-80
        px) fit unscaled; larger cells are downscaled.
    min_area : int, default=100
        Cells with fewer pixels are dropped and counted in ``n_dropped`` (debris and
        fragments; a real cell in a 512-px HPA image has thousands of pixels).
    mask_outside : bool, default=True
        Zero the pixels outside the region; False keeps the surrounding context.
    channels : str, int, sequence of them, or None, default=None
        Channels to crop, by name or position; None keeps all.

    Attributes
    ----------
    regions_ : tuple of str
        The regions, checked.
    membrane_width_ : tuple of (int, int)
        ``(inside, outside)`` ring widths.
    channels_ : tuple of str
        Names of the cropped channels.
    channel_indices_ : list of int
        Their positions in the images.
    image_channels_ : tuple of str
        Channel names of the images seen in ``fit``.

    See Also
    --------
    protloc.segmentation.CellposeSegmenter : produces the input.
    protloc.CellCrops : the output container.

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.segmentation import SegmentedImages
    >>> nuclei = np.zeros((1, 40, 40), np.int32); nuclei[0, 15:25, 15:25] = 1
    >>> cells = np.zeros_like(nuclei); cells[0, 8:32, 8:32] = 1
    >>> seg = SegmentedImages(np.ones((1, 40, 40, 4), np.uint8), nuclei, cells,
    ...                       channels=("red", "green", "blue", "yellow"))
    >>> crops = RegionCropper(crop_size=32, membrane_width=1, min_area=10).fit_transform(seg)
    >>> crops.n_cells, crops.crops["nuclear_membrane"].shape
    (1, (1, 32, 32, 4))
    >>> int(crops.crops["nucleus"][0, ..., 0].sum()), int(crops.crops["nuclear_membrane"][0, ..., 0].sum())
    (100, 76)
    """

    _parameter_constraints: ClassVar[dict] = {
        "regions": [str, list, tuple],
        "membrane_width": [Interval(Integral, 0, None, closed="left"), list, tuple],
        "crop_size": [Interval(Integral, 16, None, closed="left")],
        "min_area": [Interval(Integral, 0, None, closed="left")],
        "mask_outside": ["boolean"],
        "channels": [str, Integral, list, tuple, None],
    }

    def __init__(
        self,
        regions=("nucleus", "nuclear_membrane", "cell"),
        *,
        membrane_width=4,
        crop_size=128,
        min_area=100,
        mask_outside=True,
        channels=None,
    ):
        self.regions = regions
        self.membrane_width = membrane_width
        self.crop_size = crop_size
        self.min_area = min_area
        self.mask_outside = mask_outside
        self.channels = channels

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the regions, widths and channels against the segmented images.

        Parameters
        ----------
        X : SegmentedImages
        y : ignored

        Returns
        -------
        self : RegionCropper
        """
        X = _check_segmented(X)
        regions = (self.regions,) if isinstance(self.regions, str) else tuple(self.regions)
        if not regions:
            raise ValueError(f"regions is empty; choose among {REGIONS}.")
        unknown = [r for r in regions if r not in REGIONS]
        if unknown:
            raise ValueError(f"Unknown region {unknown[0]!r}; choose among {REGIONS}.")
        if len(set(regions)) != len(regions):
            raise ValueError(f"regions {regions} names a region twice.")
        self.membrane_width_ = _check_widths(self.membrane_width)
        if "nuclear_membrane" in regions and sum(self.membrane_width_) == 0:
            raise ValueError(
                "membrane_width (0, 0) gives an empty nuclear-membrane ring; use at least "
                "1 pixel inside or outside."
            )
        positions, names = resolve_channels(self.channels, X.channels)
        self.regions_ = regions
        self.channels_ = tuple(names)
        self.channel_indices_ = positions
        self.image_channels_ = tuple(X.channels)
        return self

    def transform(self, X):
        """Crop every cell of every image.

        Parameters
        ----------
        X : SegmentedImages

        Returns
        -------
        crops : CellCrops
            One row per kept cell, images in order; ``properties`` holds ``label``,
            ``area`` and ``nucleus_area`` (pixels), ``centroid`` (row, col of the
            cell) and ``<region>_scale`` (``crop_size`` over the window side: 1 when
            padded, below 1 when downscaled); ``ids`` and ``n_dropped`` per image.
        """
        check_is_fitted(self)
        X = _check_segmented(X)
        if tuple(X.channels) != self.image_channels_:
            raise ValueError(
                f"X has channels {tuple(X.channels)} but the cropper was fitted on "
                f"{self.image_channels_}; pass images with the same channels."
            )
        crops = {region: [] for region in self.regions_}
        props = {"label": [], "area": [], "nucleus_area": [], "centroid": []}
        props.update({f"{region}_scale": [] for region in self.regions_})
        image_index, n_dropped, dtype = [], np.zeros(len(X), np.int64), None
        for start in range(0, len(X), _LOAD_BATCH):
            batch = range(start, min(start + _LOAD_BATCH, len(X)))
            for i, image in zip(batch, X.load_images(batch)):
                image = np.asarray(image)[..., self.channel_indices_]
                dtype = image.dtype if dtype is None else dtype
                kept, dropped = self._crop_image(
                    image, X.nuclei[i], X.cells[i], crops, props, where=_name(X, i)
                )
                image_index.extend([i] * kept)
                n_dropped[i] = dropped
        size, n_channels = self.crop_size, len(self.channels_)
        stacked = {
            region: np.stack(arrays)
            if arrays
            else np.zeros((0, size, size, n_channels), dtype or np.uint8)
            for region, arrays in crops.items()
        }
        properties = {
            "label": np.asarray(props["label"], np.int32),
            "area": np.asarray(props["area"], np.int64),
            "nucleus_area": np.asarray(props["nucleus_area"], np.int64),
            "centroid": np.asarray(props["centroid"], np.float64).reshape(-1, 2),
        }
        for region in self.regions_:
            properties[f"{region}_scale"] = np.asarray(props[f"{region}_scale"], np.float64)
        return CellCrops(
            crops=stacked,
            image_index=np.asarray(image_index, np.int64),
            n_images=len(X),
            channels=self.channels_,
            properties=properties,
            ids=X.ids,
            n_dropped=n_dropped,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags

    # ----------------------------------------------------------------- internals
    def _crop_image(self, image, nuclei, cells, crops, props, *, where):
        """Append the crops of one image; return (cells kept, cells dropped)."""
        from scipy import ndimage

        if image.shape[:2] != nuclei.shape:
            raise ValueError(
                f"{where} is {image.shape[0]}x{image.shape[1]} pixels but its masks are "
                f"{nuclei.shape[0]}x{nuclei.shape[1]}; masks must have the image's rows "
                "and cols."
            )
        n_labels = int(max(nuclei.max(initial=0), cells.max(initial=0)))
        if n_labels == 0:
            return 0, 0
        area = np.bincount(cells.ravel(), minlength=n_labels + 1)
        nucleus_area = np.bincount(nuclei.ravel(), minlength=n_labels + 1)
        mismatch = np.flatnonzero((area[1:] > 0) != (nucleus_area[1:] > 0)) + 1
        if mismatch.size:
            raise ValueError(
                f"{where}: label {mismatch[0]} is in only one of the nucleus and cell "
                "masks. Cell k must contain nucleus k (CellposeSegmenter's output does)."
            )
        labels = np.flatnonzero(area[1:]) + 1
        rows, cols = np.indices(cells.shape)
        row_sum = np.bincount(cells.ravel(), weights=rows.ravel(), minlength=n_labels + 1)
        col_sum = np.bincount(cells.ravel(), weights=cols.ravel(), minlength=n_labels + 1)
        cell_boxes = ndimage.find_objects(cells, max_label=n_labels)
        nucleus_boxes = ndimage.find_objects(nuclei, max_label=n_labels)
        outside = self.membrane_width_[1]
        kept = dropped = 0
        for k in labels:
            if area[k] < self.min_area:
                dropped += 1
                continue
            for region in self.regions_:
                if region in ("cell", "cytoplasm"):
                    box, grow = cell_boxes[k - 1], 0
                else:
                    box, grow = (
                        nucleus_boxes[k - 1],
                        (outside if region == "nuclear_membrane" else 0),
                    )
                crop, scale = self._crop_region(image, nuclei, cells, k, region, box, grow)
                crops[region].append(crop)
                props[f"{region}_scale"].append(scale)
            props["label"].append(k)
            props["area"].append(area[k])
            props["nucleus_area"].append(nucleus_area[k])
            props["centroid"].append((row_sum[k] / area[k], col_sum[k] / area[k]))
            kept += 1
        return kept, dropped

    def _crop_region(self, image, nuclei, cells, k, region, box, grow):
        r0, r1 = box[0].start - grow, box[0].stop + grow
        c0, c1 = box[1].start - grow, box[1].stop + grow
        height, width = r1 - r0, c1 - c0
        side = max(self.crop_size, height, width)
        # Centred to within half a pixel; the box always lies inside the window.
        top, left = r0 - (side - height) // 2, c0 - (side - width) // 2
        crop = _window(image, top, left, side)
        if self.mask_outside:
            nucleus = _window(nuclei, top, left, side)
            if region == "nucleus":
                mask = nucleus == k
            elif region == "nuclear_membrane":
                # The grown nucleus box holds the whole ring, and nucleus k does not reach
                # past it, so the morphology runs on that box alone.
                inside, outside = self.membrane_width_
                box = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
                mask = np.zeros((side, side), bool)
                mask[box] = membrane_ring(
                    nucleus[box] == k,
                    inside,
                    outside,
                    exclude=(nucleus[box] > 0) & (nucleus[box] != k),
                )
            else:
                mask = _window(cells, top, left, side) == k
                if region == "cytoplasm":
                    mask &= nucleus != k
            crop *= mask[..., None].astype(crop.dtype)
        if side > self.crop_size:
            crop = _resize(crop, self.crop_size)
        return crop, self.crop_size / side


def _check_segmented(X):
    if not isinstance(X, SegmentedImages):
        from scipy import sparse

        kind = "a sparse matrix" if sparse.issparse(X) else type(X).__name__
        raise TypeError(
            f"RegionCropper takes a SegmentedImages (the output of CellposeSegmenter), got "
            f"{kind}. Segment the images first, e.g. in a Pipeline "
            "[('segment', CellposeSegmenter(...)), ('crop', RegionCropper())]."
        )
    return X


def _check_widths(width):
    pair = (width, width) if isinstance(width, Integral) else tuple(width)
    if len(pair) != 2 or not all(isinstance(w, Integral) and not isinstance(w, bool) for w in pair):
        raise ValueError(
            f"membrane_width must be an int or a pair (inside, outside) of ints, got {width!r}."
        )
    if min(pair) < 0:
        raise ValueError(
            f"membrane_width {width!r} is negative; ring widths are pixel counts >= 0."
        )
    return int(pair[0]), int(pair[1])


def _name(X, i):
    return f"Image {i}" + (f" ({X.ids[i]!r})" if X.ids is not None else "")
