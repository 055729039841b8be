"""The mask geometry behind :class:`~protloc.segmentation.SegmentedImages`.

The container itself lives in :mod:`protloc._containers`. The functions below
turn Cellpose's nucleus masks (and, optionally, its cell masks) into the paired
masks that container promises: cell ``k`` holds exactly nucleus ``k``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "assign_cells_to_nuclei",
    "cytoplasm_signal",
    "grow_cells",
    "pair_labels",
    "remove_border_objects",
]


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
