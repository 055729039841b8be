"""SegmentedImages and the mask geometry that pairs cells with nuclei (no Cellpose needed)."""

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GroupKFold, train_test_split
from sklearn.utils import _safe_indexing

from protloc.io import load_hpa
from protloc.segmentation import SegmentedImages
from protloc.segmentation._masks import (
    assign_cells_to_nuclei,
    grow_cells,
    pair_labels,
    remove_border_objects,
)

CHANNELS = ("red", "green", "blue", "yellow")


def _disk(shape, centre, radius):
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def _segmented(n=4, size=16):
    images = np.arange(n * size * size * 4, dtype=np.uint16).reshape(n, size, size, 4)
    nuclei = np.zeros((n, size, size), np.int32)
    cells = np.zeros_like(nuclei)
    for i in range(n):
        # image i holds i objects, so every selection is recognisable by its counts
        for k in range(1, i + 1):
            nuclei[i, 2 * k, 2 * k] = k
            cells[i, 2 * k, 2 * k : 2 * k + 2] = k
    return SegmentedImages(images, nuclei, cells, CHANNELS, ids=[f"s{i}" for i in range(n)])


# --------------------------------------------------------------------------- container
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (2, [2]),
        (slice(1, 3), [1, 2]),
        (np.array([3, 0]), [3, 0]),
        ([1, 1], [1, 1]),
        (np.array([True, False, True, False]), [0, 2]),
        ((np.array([2, 1]), Ellipsis), [2, 1]),
    ],
)
def test_indexing_selects_images(key, expected):
    seg = _segmented()
    sub = seg[key]
    assert isinstance(sub, SegmentedImages)
    assert sub.shape == (len(expected),) and len(sub) == len(expected)
    assert sub.n_objects.tolist() == expected
    assert sub.ids.tolist() == [f"s{i}" for i in expected]
    np.testing.assert_array_equal(sub.images, seg.images[expected])
    np.testing.assert_array_equal(sub.cells, seg.cells[expected])


def test_sklearn_splits_segmented_images():
    seg = _segmented()
    picked = _safe_indexing(seg, np.array([3, 1]))
    assert picked.n_objects.tolist() == [3, 1]
    train, test = train_test_split(seg, test_size=0.5, random_state=0)
    assert sorted(train.n_objects.tolist() + test.n_objects.tolist()) == [0, 1, 2, 3]
    folds = list(GroupKFold(n_splits=2).split(np.zeros(len(seg)), groups=seg.ids))
    assert len(folds) == 2


def test_other_tuple_index_is_refused():
    with pytest.raises(IndexError, match="only sample indexing"):
        _segmented()[0, 1]


def test_ragged_masks_with_lazy_images(tmp_path):
    for sid, size in (("a", 12), ("b", 20)):
        for c in CHANNELS:
            Image.fromarray(np.full((size, size), 7, np.uint8)).save(tmp_path / f"{sid}_{c}.png")
    images = load_hpa(tmp_path, lazy=True).images
    nuclei = [np.zeros((12, 12), np.int32), np.ones((20, 20), np.int32)]
    seg = SegmentedImages(images, nuclei, [m.copy() for m in nuclei], CHANNELS)
    assert seg.ids.tolist() == ["a", "b"]
    assert isinstance(seg.nuclei, list)
    assert seg[1].n_objects.tolist() == [1]
    loaded = seg.load_images([1, 0])
    assert [im.shape for im in loaded] == [(20, 20, 4), (12, 12, 4)]


def test_container_rejects_inconsistent_input():
    images = np.zeros((2, 8, 8, 4), np.uint8)
    good = np.zeros((2, 8, 8), np.int32)
    with pytest.raises(ValueError, match="masks must have the image's rows and cols"):
        SegmentedImages(
            images, np.zeros((2, 8, 9), np.int32), np.zeros((2, 8, 9), np.int32), CHANNELS
        )
    with pytest.raises(ValueError, match="differ in shape"):
        SegmentedImages(images, good, [np.zeros((8, 8), int), np.zeros((4, 4), int)], CHANNELS)
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        SegmentedImages(images, np.zeros((3, 8, 8), np.int32), good, CHANNELS)
    with pytest.raises(TypeError, match="label masks hold integers"):
        SegmentedImages(images, good.astype(float), good, CHANNELS)
    with pytest.raises(ValueError, match="channels names 3 channels"):
        SegmentedImages(images, good, good, CHANNELS[:3])
    with pytest.raises(ValueError, match=r"shape \(n_images, rows, cols, channels\)"):
        SegmentedImages(images[0], good, good, CHANNELS)


# --------------------------------------------------------------------------- geometry
def _one_nucleus_per_cell(nuclei, cells):
    """Every label k: nucleus k lies inside cell k, and cell k holds no other nucleus."""
    labels = np.unique(nuclei[nuclei > 0])
    if not np.array_equal(labels, np.unique(cells[cells > 0])):
        return False
    for k in labels:
        if not np.all(cells[nuclei == k] == k):
            return False
        inside = np.unique(nuclei[cells == k])
        if set(inside.tolist()) - {0} != {k}:
            return False
    return True


def test_grow_cells_splits_touching_cells_in_the_dark_gap():
    shape = (60, 100)
    nuclei = np.zeros(shape, np.int32)
    nuclei[_disk(shape, (30, 25), 6)] = 1
    nuclei[_disk(shape, (30, 75), 6)] = 2
    cyto = np.zeros(shape, np.float32)
    cyto[_disk(shape, (30, 25), 27)] = 1.0
    cyto[_disk(shape, (30, 75), 27)] = 1.0
    seam = np.zeros(shape, bool)
    seam[:, 49:51] = True
    cyto[seam & (cyto > 0)] = 0.6  # the dimmer seam where the two cells touch
    cells = grow_cells(nuclei, np.stack([cyto, cyto], axis=-1), sigma=1.0)
    assert _one_nucleus_per_cell(nuclei, cells)
    # the boundary settles within two pixels of the seam
    boundary_cols = np.flatnonzero((cells[30, :-1] == 1) & (cells[30, 1:] == 2))
    assert boundary_cols.size == 1 and abs(boundary_cols[0] - 49.5) <= 2
    # background stays background; each cell fills its disk
    assert cells[2, 2] == 0
    assert (cells[_disk(shape, (30, 25), 22)] == 1).mean() > 0.95


def test_grow_cells_fills_small_dim_holes_but_not_large_gaps():
    shape = (80, 80)
    nuclei = np.zeros(shape, np.int32)
    nuclei[_disk(shape, (40, 25), 6)] = 1
    cyto = np.zeros(shape, np.float32)
    cyto[5:75, 5:75] = 1.0
    cyto[38:42, 45:49] = 0.0  # 16-px hole inside the cell: smaller than the nucleus
    cyto[20:60, 55:70] = 0.0  # 600-px gap: larger than the nucleus, stays background
    cells = grow_cells(nuclei, cyto, sigma=0.5)
    assert cells[40, 47] == 1
    assert cells[40, 62] == 0


def test_grow_cells_without_nuclei_or_signal():
    assert grow_cells(np.zeros((8, 8), np.int32), np.ones((8, 8))).max() == 0
    nuclei = np.zeros((8, 8), np.int32)
    nuclei[3:5, 3:5] = 1
    # flat cytoplasm: the cell is just its nucleus
    np.testing.assert_array_equal(grow_cells(nuclei, np.ones((8, 8))), nuclei)


def test_assign_cells_to_nuclei_cases():
    nuclei = np.zeros((20, 40), np.int32)
    cells = np.zeros_like(nuclei)
    cells[2:18, 2:18] = 7  # one nucleus
    nuclei[8:12, 8:12] = 1
    cells[2:18, 20:38] = 3  # two nuclei: split between them
    nuclei[8:12, 22:25] = 2
    nuclei[8:12, 33:36] = 3
    nuclei[0:2, 38:40] = 4  # a nucleus with no cell: it becomes its own cell
    cells[0:2, 0:2] = 9  # a cell with no nucleus: dropped
    out = assign_cells_to_nuclei(nuclei, cells)
    assert _one_nucleus_per_cell(nuclei, out)
    assert np.all(out[cells == 7] == 1)
    assert set(np.unique(out[cells == 3]).tolist()) == {2, 3}
    assert out[10, 21] == 2 and out[10, 37] == 3
    np.testing.assert_array_equal(out == 4, nuclei == 4)
    assert np.all(out[0:2, 0:2] == 0)


def test_assign_nucleus_mostly_outside_any_cell_keeps_itself():
    nuclei = np.zeros((10, 10), np.int32)
    nuclei[2:6, 2:6] = 1
    cells = np.zeros_like(nuclei)
    cells[2:3, 2:6] = 5  # covers a quarter of the nucleus only
    cells[6:9, 2:6] = 5
    out = assign_cells_to_nuclei(nuclei, cells)
    np.testing.assert_array_equal(out > 0, nuclei > 0)


def test_pair_labels_renumbers_and_drops_unpaired():
    nuclei = np.array([[0, 5, 0, 9, 2]])
    cells = np.array([[5, 5, 2, 0, 2]])
    new_nuclei, new_cells = pair_labels(nuclei, cells)
    # labels 2 and 5 are paired (renumbered 1, 2); 9 has no cell
    assert new_nuclei.tolist() == [[0, 2, 0, 0, 1]]
    assert new_cells.tolist() == [[2, 2, 1, 0, 1]]
    assert new_nuclei.dtype == np.int32


def test_remove_border_objects():
    nuclei = np.zeros((10, 10), np.int32)
    cells = np.zeros_like(nuclei)
    cells[0:4, 3:6], nuclei[1:3, 4] = 1, 1  # cell touches the top row
    cells[4:8, 4:8], nuclei[5:7, 5:7] = 2, 2  # interior
    cells[5:9, 8:10], nuclei[6, 9] = 3, 3  # nucleus and cell touch the right column
    new_nuclei, new_cells = remove_border_objects(nuclei, cells)
    assert set(np.unique(new_cells).tolist()) == {0, 2}
    assert set(np.unique(new_nuclei).tolist()) == {0, 2}
