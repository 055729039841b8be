"""The container of images with nucleus and cell label masks, and the mask geometry behind it.

:class:`SegmentedImages` is what :class:`~protloc.segmentation.CellposeSegmenter`
returns and what :class:`~protloc.regions.RegionCropper` takes. The functions below
turn Cellpose's nucleus masks (and, optionally, its cell masks) into the paired
masks that container promises: cell ``k`` holds exactly nucleus ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protloc.io import HPAImageSequence, sample_index

__all__ = [
    "SegmentedImages",
    "assign_cells_to_nuclei",
    "cytoplasm_signal",
    "grow_cells",
    "load_batch",
    "pair_labels",
    "remove_border_objects",
]


def _as_label_image(mask, *, name, index):
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(
            f"{name} mask of image {index} has shape {mask.shape}; label masks are 2-D "
            "(rows, cols)."
        )
    if not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(
            f"{name} mask of image {index} has dtype {mask.dtype}; label masks hold "
            "integers (0 = background, 1..k = objects), e.g. from skimage.measure.label."
        )
    return mask.astype(np.int32, copy=False)


def _as_masks(masks, n_images, *, name):
    """Masks as one int32 (n, rows, cols) array, or a list of 2-D int32 arrays."""
    if isinstance(masks, np.ndarray) and masks.ndim == 3:
        if not np.issubdtype(masks.dtype, np.integer):
            raise TypeError(f"{name} masks have dtype {masks.dtype}; label masks hold integers.")
        out = masks.astype(np.int32, copy=False)
    elif isinstance(masks, np.ndarray) and masks.ndim != 3 and masks.dtype != object:
        raise ValueError(
            f"{name} masks have shape {masks.shape}; expected (n_images, rows, cols) "
            "or a list of 2-D label images."
        )
    else:
        out = [_as_label_image(m, name=name, index=i) for i, m in enumerate(masks)]
    if len(out) != n_images:
        raise ValueError(f"{name} has {len(out)} masks for {n_images} images.")
    return out


@dataclass(eq=False)
class SegmentedImages:
    """Images together with their nucleus and cell label masks.

    Cell ``k`` of an image contains exactly nucleus ``k``: the two masks use the
    same labels, ``1 .. n_objects`` in each image (0 is background). Indexing selects
    *images*, the samples scikit-learn splits: an integer, a slice, an integer array
    or a boolean mask (also written ``X[key, ...]``) returns a new
    ``SegmentedImages`` that shares the pixels; the images of a lazy
    :class:`~protloc.io.HPAImageSequence` stay on disk until a step loads them.

    Parameters
    ----------
    images : ndarray of shape (n_images, rows, cols, n_channels) or HPAImageSequence
        The images, as given to the segmenter.
    nuclei : ndarray of int32, shape (n_images, rows, cols), or list of 2-D arrays
        Nucleus labels. A list when images differ in size (lazy folders).
    cells : ndarray of int32, shape (n_images, rows, cols), or list of 2-D arrays
        Cell labels, the same labels as ``nuclei``.
    channels : tuple of str
        Names of the images' last axis.
    ids : ndarray of str, shape (n_images,), optional
        Image ids; taken from an ``HPAImageSequence`` when omitted.

    Attributes
    ----------
    shape : tuple
        ``(n_images,)``, so that scikit-learn can count and index samples.
    n_objects : ndarray of int, shape (n_images,)
        Cells (equal to nuclei) per image.

    Examples
    --------
    >>> import numpy as np
    >>> nuclei = np.zeros((2, 8, 8), np.int32); nuclei[0, 2:4, 2:4] = 1
    >>> cells = np.zeros_like(nuclei); cells[0, 1:6, 1:6] = 1
    >>> seg = SegmentedImages(np.zeros((2, 8, 8, 4), np.uint8), nuclei, cells,
    ...                       channels=("red", "green", "blue", "yellow"))
    >>> len(seg), seg.n_objects.tolist()
    (2, [1, 0])
    >>> seg[[1, 0]].n_objects.tolist(), seg[np.array([True, False])].n_objects.tolist()
    ([0, 1], [1])
    """

    images: object
    nuclei: object
    cells: object
    channels: tuple
    ids: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.images, HPAImageSequence):
            self.images = np.asarray(self.images)
            if self.images.ndim != 4:
                raise ValueError(
                    f"images must have shape (n_images, rows, cols, channels), got "
                    f"{self.images.shape}."
                )
        n_images = len(self.images)
        self.nuclei = _as_masks(self.nuclei, n_images, name="nuclei")
        self.cells = _as_masks(self.cells, n_images, name="cells")
        for i in range(n_images):
            if self.nuclei[i].shape != self.cells[i].shape:
                raise ValueError(
                    f"Image {i}: nuclei mask {self.nuclei[i].shape} and cells mask "
                    f"{self.cells[i].shape} differ in shape; both must match the image."
                )
        if isinstance(self.images, np.ndarray):
            mask_shape = self.images.shape[1:3]
            for i in range(n_images):
                if self.nuclei[i].shape != mask_shape:
                    raise ValueError(
                        f"Image {i} is {mask_shape[0]}x{mask_shape[1]} pixels but its masks "
                        f"are {self.nuclei[i].shape[0]}x{self.nuclei[i].shape[1]}; masks "
                        "must have the image's rows and cols."
                    )
        self.channels = tuple(self.channels)
        n_channels = (
            len(self.images.channels)
            if isinstance(self.images, HPAImageSequence)
            else self.images.shape[-1]
        )
        if len(self.channels) != n_channels:
            raise ValueError(
                f"channels names {len(self.channels)} channels {self.channels} but the "
                f"images have {n_channels}."
            )
        if self.ids is None and isinstance(self.images, HPAImageSequence):
            self.ids = self.images.ids
        if self.ids is not None:
            self.ids = np.asarray(self.ids, dtype=object)
            if len(self.ids) != n_images:
                raise ValueError(f"ids has {len(self.ids)} entries for {n_images} images.")

    # sklearn counts and splits samples through len(), .shape and X[indices, ...]
    @property
    def shape(self):
        return (len(self),)

    def __len__(self):
        return len(self.images)

    @property
    def n_objects(self):
        # Labels are 1..k per image, so the maximum is the count.
        return np.array([int(m.max()) if m.size else 0 for m in self.nuclei], dtype=np.int64)

    def __repr__(self):
        return (
            f"SegmentedImages(n_images={len(self)}, n_objects={int(self.n_objects.sum())}, "
            f"channels={self.channels})"
        )

    def __getitem__(self, key):
        index = np.atleast_1d(sample_index(key, len(self), "SegmentedImages"))
        if isinstance(self.nuclei, np.ndarray):
            nuclei, cells = self.nuclei[index], self.cells[index]
        else:
            nuclei = [self.nuclei[i] for i in index]
            cells = [self.cells[i] for i in index]
        return SegmentedImages(
            images=self.images[index],
            nuclei=nuclei,
            cells=cells,
            channels=self.channels,
            ids=None if self.ids is None else self.ids[index],
        )

    def load_images(self, indices):
        """Pixels of some images, as a list of (rows, cols, channels) arrays.

        Parameters
        ----------
        indices : sequence of int

        Returns
        -------
        images : list of ndarray
        """
        return load_batch(self.images, indices)


def load_batch(images, indices):
    """Some images of an array or an HPAImageSequence, as a list of (rows, cols, channels)."""
    indices = [int(i) for i in indices]
    if not isinstance(images, HPAImageSequence):
        return [images[i] for i in indices]
    try:
        return list(images.load(indices))
    except ValueError:
        # Mixed sizes cannot stack into one batch; decode one at a time.
        return [images.load([i])[0] for i in indices]


# --------------------------------------------------------------------------- geometry
def pair_labels(nuclei, cells):
    """Renumber paired masks to ``1 .. k`` in nucleus-label order, dropping unpaired labels.

    A label survives only when it is present in both masks; nucleus pixels are
    then forced into their own cell so that cell ``k`` always contains nucleus ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> nuclei = np.array([[0, 3, 0, 7]]); cells = np.array([[3, 3, 5, 0]])
    >>> pair_labels(nuclei, cells)
    (array([[0, 1, 0, 0]], dtype=int32), array([[1, 1, 0, 0]], dtype=int32))
    """
    nuclei = np.asarray(nuclei)
    cells = np.asarray(cells)
    top = int(max(nuclei.max(initial=0), cells.max(initial=0)))
    present = np.zeros(top + 1, bool)
    present[np.unique(nuclei)] = True
    in_cells = np.zeros(top + 1, bool)
    in_cells[np.unique(cells)] = True
    present &= in_cells
    present[0] = False
    lut = np.zeros(top + 1, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    new_nuclei = lut[nuclei]
    new_cells = lut[cells]
    inside = new_nuclei > 0
    new_cells[inside] = new_nuclei[inside]
    return new_nuclei, new_cells


def remove_border_objects(nuclei, cells):
    """Zero every label whose cell (or nucleus) touches the image border.

    Examples
    --------
    >>> import numpy as np
    >>> cells = np.array([[1, 0, 0], [0, 0, 2], [0, 0, 0]]); nuclei = cells.copy()
    >>> remove_border_objects(nuclei, cells)[1].tolist()
    [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    """
    edge = np.concatenate(
        [m[[0, -1], :].ravel() for m in (nuclei, cells)]
        + [m[:, [0, -1]].ravel() for m in (nuclei, cells)]
    )
    touching = np.unique(edge)
    touching = touching[touching > 0]
    if touching.size == 0:
        return nuclei, cells
    drop_n = np.isin(nuclei, touching)
    drop_c = np.isin(cells, touching)
    nuclei = np.where(drop_n, 0, nuclei)
    cells = np.where(drop_c, 0, cells)
    return nuclei, cells


def _normalize(plane):
    """Scale a plane to about [0, 1] between its 1st and 99.5th percentiles."""
    plane = plane.astype(np.float32, copy=False)
    low, high = np.percentile(plane, [1.0, 99.5])
    if high <= low:
        return np.zeros_like(plane)
    return np.clip((plane - low) / (high - low), 0.0, 1.0)


def cytoplasm_signal(planes):
    """Mean of percentile-normalized cytoplasm planes (rows, cols, k) -> (rows, cols) float32.

    Each plane is normalized on its own first, so that a bright microtubule channel
    does not drown a dim ER channel.
    """
    planes = np.asarray(planes)
    if planes.ndim == 2:
        planes = planes[..., None]
    return np.mean([_normalize(planes[..., j]) for j in range(planes.shape[-1])], axis=0)


def _fill_small_holes(foreground, max_area):
    """Fill enclosed background patches of at most ``max_area`` pixels."""
    from scipy import ndimage

    # Dim patches inside a cell (vacuoles, thin ER) would otherwise punch holes in it,
    # while larger gaps between cells are real background and stay.
    holes, _ = ndimage.label(~foreground)
    small = np.bincount(holes.ravel()) <= max_area
    small[0] = False
    small[np.unique(np.concatenate([holes[[0, -1], :].ravel(), holes[:, [0, -1]].ravel()]))] = False
    return foreground | small[holes]


def grow_cells(nuclei, cyto, *, sigma=2.0):
    """Cells grown from nuclei by a seeded watershed on the cytoplasm signal.

    The foreground is the smoothed signal above its Otsu threshold, plus the nuclei,
    with enclosed holes smaller than a typical nucleus filled; the watershed floods ``-signal`` from the nuclei, so that boundaries between
    touching cells settle in the darker gaps between them. Cell ``k`` is the
    catchment basin of nucleus ``k`` and contains it.

    Parameters
    ----------
    nuclei : ndarray of int, shape (rows, cols)
        Nucleus labels (the markers).
    cyto : ndarray of shape (rows, cols) or (rows, cols, k)
        Cytoplasm channels (for HPA: microtubules and ER).
    sigma : float, default=2.0
        Gaussian smoothing in pixels before thresholding.

    Returns
    -------
    cells : ndarray of int32, shape (rows, cols)

    Examples
    --------
    >>> import numpy as np
    >>> nuclei = np.zeros((20, 20), np.int32); nuclei[4:7, 4:7] = 1; nuclei[13:16, 13:16] = 2
    >>> cyto = np.zeros((20, 20)); cyto[1:10, 1:10] = 1; cyto[10:19, 10:19] = 1
    >>> cells = grow_cells(nuclei, cyto, sigma=0.5)
    >>> int(cells[2, 2]), int(cells[17, 17]), int(cells[2, 17])  # cell 1, cell 2, background
    (1, 2, 0)
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    nuclei = np.asarray(nuclei, dtype=np.int32)
    if nuclei.max(initial=0) == 0:
        return np.zeros_like(nuclei)
    signal = ndimage.gaussian_filter(cytoplasm_signal(cyto), sigma)
    if signal.max() > signal.min():
        foreground = signal > threshold_otsu(signal)
    else:
        foreground = np.zeros(signal.shape, bool)
    foreground |= nuclei > 0
    foreground = _fill_small_holes(foreground, int(np.median(np.bincount(nuclei.ravel())[1:])))
    cells = watershed(-signal, markers=nuclei, mask=foreground)
    return cells.astype(np.int32, copy=False)


def assign_cells_to_nuclei(nuclei, cells, *, min_overlap=0.5):
    """Relabel a cell mask from a cytoplasm model so that cell ``k`` holds nucleus ``k``.

    A nucleus belongs to the cell that covers most of it (at least ``min_overlap``
    of its area). A cell with one nucleus takes that nucleus' label; a cell with
    several is split between them by nearest nucleus; a cell with none is dropped;
    a nucleus with no cell keeps itself as its cell. Nucleus pixels always belong
    to their own cell.

    Examples
    --------
    >>> import numpy as np
    >>> nuclei = np.array([[1, 0, 0, 0, 0, 2, 0]])
    >>> cells = np.array([[5, 5, 5, 5, 5, 5, 9]])
    >>> assign_cells_to_nuclei(nuclei, cells).tolist()
    [[1, 1, 1, 2, 2, 2, 0]]
    """
    from scipy import ndimage

    nuclei = np.asarray(nuclei, dtype=np.int32)
    cells = np.asarray(cells, dtype=np.int64)
    n_nuc = int(nuclei.max(initial=0))
    n_cell = int(cells.max(initial=0))
    out = np.zeros(nuclei.shape, np.int32)
    if n_nuc == 0:
        return out
    overlap = np.bincount(
        nuclei.ravel().astype(np.int64) * (n_cell + 1) + cells.ravel(),
        minlength=(n_nuc + 1) * (n_cell + 1),
    ).reshape(n_nuc + 1, n_cell + 1)
    area = overlap.sum(axis=1)
    host = np.zeros(n_nuc + 1, np.int64)
    if n_cell:
        best = overlap[:, 1:].argmax(axis=1) + 1
        share = overlap[np.arange(n_nuc + 1), best]
        ok = (share >= min_overlap * np.maximum(area, 1)) & (area > 0)
        host[ok] = best[ok]
    host[0] = 0
    guests = np.bincount(host[1:], minlength=n_cell + 1)
    lut = np.zeros(n_cell + 1, np.int32)
    single = np.flatnonzero(host[1:] > 0) + 1
    single = single[guests[host[single]] == 1]
    lut[host[single]] = single
    out = lut[cells]
    for cell in np.flatnonzero(guests >= 2):
        members = np.flatnonzero(host == cell)
        region = cells == cell
        seeds = np.where(np.isin(nuclei, members), nuclei, 0)
        # Nearest-nucleus split: every pixel takes the label of its closest seed pixel.
        _, (rows, cols) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        nearest = seeds[rows, cols]
        out[region] = nearest[region]
    inside = nuclei > 0
    out[inside] = nuclei[inside]
    return out
