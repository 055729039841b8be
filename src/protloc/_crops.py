"""The container of per-cell region crops passed from RegionCropper to CNNFeatureExtractor."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protloc.io import sample_index

__all__ = ["CellCrops"]


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
