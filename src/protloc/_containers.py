"""The containers that carry images, masks and crops from one step to the next.

- :class:`HPAImageSequence`: a lazy sequence of multi-channel samples backed by files
  (what ``protloc.load_hpa(..., lazy=True)`` returns);
- :class:`SegmentedImages`: images with paired nucleus and cell label masks (what
  :class:`~protloc.segmentation.CellposeSegmenter` returns);
- :class:`CellCrops`: per-cell region crops, ragged over images (what
  :class:`~protloc.regions.RegionCropper` returns).

All three index by sample like arrays (:func:`sample_index`), so scikit-learn's
cross-validation splits them. Their public import paths are ``protloc.io``,
``protloc.segmentation`` and ``protloc`` respectively; they live together here so
that every step shares one definition. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np

__all__ = [
    "DEFAULT_CHANNELS",
    "CellCrops",
    "ContainerOutputMixin",
    "HPAImageSequence",
    "SegmentedImages",
    "load_batch",
    "sample_index",
]

#: Channel order of :func:`load_hpa` and of every array-valued image batch by default.
DEFAULT_CHANNELS = ("red", "green", "blue", "yellow")


def sample_index(key, n_samples, container="container"):
    """Positions selected by ``key`` in a container of ``n_samples`` samples.

    Containers index like arrays along their sample axis only: an integer gives an
    ``int``; a slice, an integer array or a boolean mask gives an integer array.
    scikit-learn's splitters index array-likes as ``X[indices, ...]``, so a
    ``(key, Ellipsis)`` tuple is accepted too.

    Examples
    --------
    >>> sample_index((slice(1, None), ...), 3).tolist()
    [1, 2]
    >>> sample_index(-1, 3)
    2
    """
    if isinstance(key, tuple):
        if len(key) == 2 and key[1] is Ellipsis:
            key = key[0]
        else:
            raise IndexError(f"{container} supports only sample indexing, got {key!r}.")
    if isinstance(key, Integral):
        if not -n_samples <= key < n_samples:
            raise IndexError(f"Sample {key} is out of range for {n_samples} samples.")
        return int(key) % n_samples
    return np.arange(n_samples)[key]


class HPAImageSequence(Sequence):
    """A lazy, sliceable sequence of multi-channel HPA samples backed by files.

    Only paths are held; pixels are decoded when a sample or a batch is asked for,
    so a folder of 30,000 samples costs a few megabytes. Indexing with an integer
    returns one image ``(rows, cols, channels)``; indexing with a slice, an integer
    array or a boolean mask returns a new ``HPAImageSequence``, which is how
    scikit-learn's cross-validation splits it.

    Parameters
    ----------
    paths : sequence of sequence of path-like, shape (n_samples, n_channels)
        One file per channel for every sample.
    ids : sequence of str, shape (n_samples,)
    channels : sequence of str
        Channel names, in the order of ``paths``' inner sequences.
    n_jobs : int, default=4
        Threads used to decode a batch in :meth:`load`.
    planes : array-like of int, shape (n_samples, n_channels), optional
        Where a path names a multi-channel microscopy file (OME-TIFF, OME-Zarr, ...),
        the index of the channel to take from it, read through bioio; -1 marks a
        single-plane PNG/TIFF read by :func:`protloc.io.read_image`. None (the Kaggle
        layout) is all -1. :func:`protloc.io.load_images` fills it.
    pixel_sizes : array-like of float, shape (n_samples,), optional
        Pixel size in micrometres (along cols) of every sample, NaN where unknown.

    Attributes
    ----------
    shape : tuple
        ``(n_samples,)``; lets scikit-learn count and index samples.

    Examples
    --------
    >>> seq = HPAImageSequence([["a_red.png", "a_green.png"]], ["a"], ("red", "green"))
    >>> len(seq), seq.channels, seq.ids.tolist()
    (1, ('red', 'green'), ['a'])
    """

    def __init__(self, paths, ids, channels, *, n_jobs=4, planes=None, pixel_sizes=None):
        self.paths = np.asarray([[str(p) for p in row] for row in paths], dtype=object)
        self.paths = self.paths.reshape(len(ids), len(channels))
        self.ids = np.asarray(list(ids), dtype=object)
        self.channels = tuple(channels)
        self.n_jobs = n_jobs
        self.planes = (
            np.full(self.paths.shape, -1, dtype=np.int64)
            if planes is None
            else np.asarray(planes, dtype=np.int64).reshape(self.paths.shape)
        )
        self.pixel_sizes = (
            np.full(len(self.ids), np.nan)
            if pixel_sizes is None
            else np.asarray(pixel_sizes, dtype=np.float64).reshape(len(self.ids))
        )

    @property
    def shape(self):
        return (len(self.ids),)

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return f"HPAImageSequence(n_samples={len(self)}, channels={self.channels})"

    def __getitem__(self, key):
        index = sample_index(key, len(self), type(self).__name__)
        if isinstance(index, int):
            return self.load([index])[0]
        return HPAImageSequence(
            self.paths[index],
            self.ids[index],
            self.channels,
            n_jobs=self.n_jobs,
            planes=self.planes[index],
            pixel_sizes=self.pixel_sizes[index],
        )

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        images = self.load()
        return images if dtype is None else images.astype(dtype)

    def read_sample(self, i, positions=None):
        """Decode sample ``i`` (only the channels at ``positions``, default all).

        Returns
        -------
        image : ndarray of shape (rows, cols, channels)
        """
        positions = range(len(self.channels)) if positions is None else list(positions)
        channels = [self.channels[p] for p in positions]
        paths, indices = self.paths[i, positions], self.planes[i, positions]
        # Decoding belongs to protloc.io and protloc._microscopy, which import this
        # module: imported here.
        if (indices < 0).all():
            from protloc.io import read_image

            planes = [read_image(p, sample_id=self.ids[i]) for p in paths]
        else:
            from protloc._microscopy import read_planes

            planes = read_planes(paths, indices, self.ids[i])
        shapes = {plane.shape for plane in planes}
        if len(shapes) > 1:
            detail = ", ".join(
                f"{c}={plane.shape}" for c, plane in zip(channels, planes, strict=True)
            )
            raise ValueError(
                f"Sample {self.ids[i]!r} has channel images of different sizes ({detail}); "
                "all channels of a sample must have the same rows and cols."
            )
        return np.stack(planes, axis=-1)

    def load(self, indices=None):
        """Decode samples into one array.

        Parameters
        ----------
        indices : sequence of int, optional
            Which samples; all when omitted.

        Returns
        -------
        images : ndarray of shape (k, rows, cols, channels)
        """
        indices = range(len(self)) if indices is None else [int(i) for i in indices]
        indices = [i + len(self) if i < 0 else i for i in indices]
        if len(indices) == 0:
            return np.empty((0, 0, 0, len(self.channels)), dtype=np.uint8)
        if len(indices) == 1 or self.n_jobs in (None, 1):
            samples = [self.read_sample(i) for i in indices]
        else:
            # PIL and zlib release the GIL while decoding, so threads give real speed-up.
            with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
                samples = list(pool.map(self.read_sample, indices))
        shapes = {s.shape for s in samples}
        if len(shapes) > 1:
            by_shape = {}
            for i, s in zip(indices, samples, strict=True):
                by_shape.setdefault(s.shape, self.ids[i])
            detail = "; ".join(f"{sid!r} is {shape}" for shape, sid in by_shape.items())
            raise ValueError(
                f"Samples have different sizes ({detail}); an array batch needs one size. "
                "Resize the images, or use a step that resizes per sample "
                "(CNNFeatureExtractor with image_size set)."
            )
        return np.stack(samples, axis=0)


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


@dataclass(eq=False)
class CellCrops:
    """Per-cell crops of several regions, ragged over images.

    One row per cell; the cells of an image are contiguous and images appear in
    ascending order, so ``cell_slices()`` gives each image's rows. Indexing selects
    *images* (the samples scikit-learn splits), returning a new ``CellCrops`` whose
    cells are those of the chosen images, re-numbered ``0 .. k-1``.

    Parameters
    ----------
    crops : dict of str to ndarray of shape (n_cells, crop_rows, crop_cols, n_channels)
        One array per region (``"nucleus"``, ``"nuclear_membrane"``, ``"cell"``,
        ``"cytoplasm"``), all with the same number of cells. Pixels outside the
        region are zero when the cropper masks them. The dtype is the image's.
    image_index : ndarray of int, shape (n_cells,)
        The image each cell comes from, in ``0 .. n_images - 1``, non-decreasing.
    n_images : int
        Number of images, including those with no cell.
    channels : tuple of str
        Names of the last crop axis.
    properties : dict of str to ndarray, default={}
        Per-cell measurements with ``n_cells`` rows, e.g. ``"label"`` (the cell's
        label in the mask), ``"area"`` (pixels) and ``"centroid"`` (rows, cols).
    ids : ndarray of str, shape (n_images,), optional
        Image ids; ``groups`` repeats them per cell for GroupKFold.
    n_dropped : ndarray of int, shape (n_images,), optional
        Cells dropped per image (for instance below ``min_area``).

    Examples
    --------
    >>> import numpy as np
    >>> crops = CellCrops(
    ...     crops={"cell": np.zeros((3, 4, 4, 2), np.uint8)},
    ...     image_index=np.array([0, 0, 2]), n_images=3, channels=("green", "blue"))
    >>> len(crops), crops.n_cells, crops.cells_per_image.tolist()
    (3, 3, [2, 0, 1])
    >>> sub = crops[[2, 0]]
    >>> sub.image_index.tolist(), sub.n_cells
    ([0, 1, 1], 3)
    """

    crops: dict
    image_index: np.ndarray
    n_images: int
    channels: tuple
    properties: dict = field(default_factory=dict)
    ids: np.ndarray | None = None
    n_dropped: np.ndarray | None = None

    def __post_init__(self):
        self.image_index = np.asarray(self.image_index, dtype=np.int64).reshape(-1)
        self.n_images = int(self.n_images)
        self.channels = tuple(self.channels)
        if not self.crops:
            raise ValueError("CellCrops needs at least one region in crops.")
        n_cells = len(self.image_index)
        for region, array in self.crops.items():
            if array.ndim != 4 or array.shape[0] != n_cells:
                raise ValueError(
                    f"Crops of region {region!r} have shape {array.shape}; expected "
                    f"({n_cells}, crop_rows, crop_cols, {len(self.channels)})."
                )
            if array.shape[-1] != len(self.channels):
                raise ValueError(
                    f"Crops of region {region!r} have {array.shape[-1]} channels but "
                    f"channels names {len(self.channels)}: {self.channels}."
                )
        if n_cells and (
            self.image_index.min() < 0
            or self.image_index.max() >= self.n_images
            or np.any(np.diff(self.image_index) < 0)
        ):
            raise ValueError(
                "image_index must be non-decreasing values in 0 .. n_images - 1, with "
                "the cells of each image contiguous."
            )
        for name, values in self.properties.items():
            if len(values) != n_cells:
                raise ValueError(
                    f"Cell property {name!r} has {len(values)} rows for {n_cells} cells."
                )
        if self.ids is not None:
            self.ids = np.asarray(self.ids, dtype=object)
            if len(self.ids) != self.n_images:
                raise ValueError(f"ids has {len(self.ids)} entries for {self.n_images} images.")
        if self.n_dropped is None:
            self.n_dropped = np.zeros(self.n_images, dtype=np.int64)
        self.n_dropped = np.asarray(self.n_dropped, dtype=np.int64)

    # sklearn counts and splits samples through len(), .shape and X[indices, ...]
    @property
    def shape(self):
        return (self.n_images,)

    def __len__(self):
        return self.n_images

    @property
    def n_cells(self):
        return len(self.image_index)

    @property
    def regions(self):
        return tuple(self.crops)

    @property
    def cells_per_image(self):
        return np.bincount(self.image_index, minlength=self.n_images)

    @property
    def groups(self):
        """Image id (or image index) of every cell, for GroupKFold on cell rows."""
        if self.ids is None:
            return self.image_index.copy()
        return self.ids[self.image_index]

    def cell_slices(self):
        """``offsets`` of shape (n_images + 1,): image i owns rows ``offsets[i]:offsets[i+1]``."""
        return np.concatenate([[0], np.cumsum(self.cells_per_image)])

    def __repr__(self):
        return (
            f"CellCrops(n_images={self.n_images}, n_cells={self.n_cells}, "
            f"regions={self.regions}, channels={self.channels})"
        )

    def __getitem__(self, key):
        images = np.atleast_1d(sample_index(key, self.n_images, "CellCrops"))
        offsets = self.cell_slices()
        rows = [np.arange(offsets[i], offsets[i + 1]) for i in images]
        rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        counts = [offsets[i + 1] - offsets[i] for i in images]
        return CellCrops(
            crops={region: array[rows] for region, array in self.crops.items()},
            image_index=np.repeat(np.arange(len(images)), counts),
            n_images=len(images),
            channels=self.channels,
            properties={name: np.asarray(v)[rows] for name, v in self.properties.items()},
            ids=None if self.ids is None else self.ids[images],
            n_dropped=self.n_dropped[images],
        )


class ContainerOutputMixin:
    """For transformers whose output is a container (masks, crops), not a table.

    scikit-learn's ``Pipeline.set_output(transform="pandas")`` configures every step
    and refuses steps without ``set_output``; ``Pipeline.get_feature_names_out``
    likewise asks every step for its output names. Such a transformer's output cannot
    be a DataFrame and has no columns, so ``set_output`` is accepted and leaves the
    output unchanged, and ``get_feature_names_out`` returns no names. This lets
    segmentation and cropping sit in pipelines whose feature columns travel as named
    DataFrame columns (the next step, CNNFeatureExtractor, names its own columns).
    """

    def get_feature_names_out(self, input_features=None):
        """No column names: the output is a container of images, masks or crops.

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        names : ndarray of str, shape (0,)
        """
        return np.asarray([], dtype=object)

    def set_output(self, *, transform=None):
        """Accepted for Pipeline compatibility; the output stays a container.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            Ignored.

        Returns
        -------
        self : estimator
        """
        return self
