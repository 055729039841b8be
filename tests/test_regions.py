"""RegionCropper: exact region geometry on hand-made masks, crop placement and errors."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.model_selection import GroupKFold

from protloc import CellCrops
from protloc.io import load_hpa
from protloc.regions import REGIONS, RegionCropper, membrane_ring
from protloc.segmentation import SegmentedImages

CHANNELS = ("red", "green", "blue", "yellow")
ALL = REGIONS


def _disk(shape, centre, radius):
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def _one_cell(shape=(64, 64), nucleus_radius=8, cell_radius=18, centre=(32, 32), dtype=np.uint8):
    nuclei = np.zeros(shape, np.int32)
    nuclei[_disk(shape, centre, nucleus_radius)] = 1
    cells = np.zeros(shape, np.int32)
    cells[_disk(shape, centre, cell_radius)] = 1
    image = np.ones((*shape, 4), dtype)
    return SegmentedImages(image[None], nuclei[None], cells[None], CHANNELS, ids=["a"])


# --------------------------------------------------------------------------- ring geometry
def test_ring_of_a_square_counts_by_hand():
    nucleus = np.zeros((20, 20), bool)
    nucleus[5:15, 5:15] = True
    # disk(1) is a cross: 40 pixels outside (no corners), 36 on the inner border
    ring = membrane_ring(nucleus, 1, 1)
    assert ring.sum() == 76
    assert ring[4, 5:15].all() and not ring[4, 4]  # outer band, no corner
    assert ring[5, 5:15].all() and not ring[6, 6:14].any()  # one-pixel inner band
    assert membrane_ring(nucleus, 0, 1).sum() == 40
    assert membrane_ring(nucleus, 1, 0).sum() == 36
    assert membrane_ring(nucleus, 2, 0).sum() == 100 - 36  # 6x6 core left


@pytest.mark.parametrize(("inside", "outside"), [(1, 1), (3, 2), (0, 4), (4, 0), (5, 5)])
def test_ring_matches_euclidean_distances(inside, outside):
    nucleus = _disk((60, 60), (30, 29), 12) | _disk((60, 60), (24, 38), 7)
    expected = (ndimage.distance_transform_edt(~nucleus) <= outside) & (
        ndimage.distance_transform_edt(nucleus) <= inside
    )
    # distance_transform_edt(nucleus) is 0 outside the nucleus, so the outer band is included
    np.testing.assert_array_equal(membrane_ring(nucleus, inside, outside), expected)


def test_ring_excludes_other_nuclei_and_follows_the_image_border():
    nucleus = np.zeros((20, 20), bool)
    nucleus[0:6, 5:15] = True  # cut by the top border
    other = np.zeros_like(nucleus)
    other[7:10, 5:15] = True  # a neighbour one pixel below
    ring = membrane_ring(nucleus, 1, 2, exclude=other)
    assert not (ring & other).any()
    assert ring[0, 5:15].all()  # the border row is the edge of the nucleus in view
    assert ring[6, 5:15].all()  # the free pixel row between the two nuclei


# --------------------------------------------------------------------------- crops
def test_region_crops_are_exact_on_a_hand_made_cell():
    seg = _one_cell()
    cropper = RegionCropper(regions=ALL, membrane_width=(2, 3), crop_size=48, min_area=1)
    crops = cropper.fit_transform(seg)
    assert isinstance(crops, CellCrops)
    assert crops.n_cells == 1 and crops.regions == ALL
    nucleus = _disk((64, 64), (32, 32), 8)
    cell = _disk((64, 64), (32, 32), 18)
    ring = membrane_ring(nucleus, 2, 3)
    expected = {
        "nucleus": nucleus,
        "nuclear_membrane": ring,
        "cell": cell,
        "cytoplasm": cell & ~nucleus,
    }
    for region, mask in expected.items():
        crop = crops.crops[region][0]
        assert crop.shape == (48, 48, 4) and crop.dtype == np.uint8
        # the image is all ones, so the crop is the region's mask; it fits, so no scaling
        assert crop[..., 1].sum() == mask.sum(), region
        assert np.array_equal(crop[..., 0], crop[..., 3])
        rows, cols = np.nonzero(crop[..., 0])
        # centred: the region's bounding-box centre sits at the crop centre (+-0.5 px)
        assert abs((rows.min() + rows.max()) / 2 - 23.5) <= 0.5, region
        assert abs((cols.min() + cols.max()) / 2 - 23.5) <= 0.5, region
        assert crops.properties[f"{region}_scale"][0] == 1.0
    # the ring crop is the ring itself, placed around the same centre as the nucleus
    # the nucleus' 17-px box [24, 41) sits in the 48-px window with 15 px above it
    shift = 24 - 15
    np.testing.assert_array_equal(
        crops.crops["nuclear_membrane"][0, ..., 0] > 0, ring[shift : shift + 48, shift : shift + 48]
    )
    assert crops.properties["area"][0] == cell.sum()
    assert crops.properties["nucleus_area"][0] == nucleus.sum()
    np.testing.assert_allclose(crops.properties["centroid"][0], (32, 32))
    assert crops.properties["label"].tolist() == [1]


def test_large_cells_are_downscaled_keeping_aspect():
    shape = (120, 200)
    nuclei = np.zeros(shape, np.int32)
    nuclei[50:70, 90:110] = 1
    cells = np.zeros(shape, np.int32)
    cells[40:80, 20:180] = 1  # 40 x 160: wider than the crop
    image = np.zeros((*shape, 4), np.uint16)
    image[..., 1] = 1000
    seg = SegmentedImages(image[None], nuclei[None], cells[None], CHANNELS)
    crops = RegionCropper(regions=("nucleus", "cell"), crop_size=32, min_area=1).fit_transform(seg)
    cell = crops.crops["cell"][0, ..., 1]
    assert crops.crops["cell"].dtype == np.uint16
    assert crops.properties["cell_scale"][0] == pytest.approx(32 / 160)
    assert crops.properties["nucleus_scale"][0] == 1.0  # the 20-px nucleus fits unscaled
    # 160 x 40 at scale 0.2 is 32 x 8: the whole width, a quarter of the height
    filled = cell > 500
    assert filled[:, 1:-1].any(axis=0).all()
    assert 6 <= filled.any(axis=1).sum() <= 10
    assert cell.max() <= 1000


def test_mask_outside_false_keeps_context():
    seg = _one_cell()
    crops = RegionCropper(regions=("nucleus",), crop_size=32, mask_outside=False, min_area=1)
    nucleus = crops.fit_transform(seg).crops["nucleus"][0]
    assert nucleus.min() == 1  # every pixel of the window, region or not


def test_window_past_the_image_border_is_zero_padded():
    shape = (40, 40)
    nuclei = np.zeros(shape, np.int32)
    nuclei[0:6, 0:6] = 1
    cells = np.zeros(shape, np.int32)
    cells[0:12, 0:12] = 1
    seg = SegmentedImages(np.full((1, *shape, 4), 9, np.uint8), nuclei[None], cells[None], CHANNELS)
    crops = RegionCropper(regions=("cell",), crop_size=24, mask_outside=False, min_area=1)
    crop = crops.fit_transform(seg).crops["cell"][0, ..., 0]
    # the 12x12 cell sits centred; the 6 rows and cols above and left are outside the image
    assert (crop[:6] == 0).all() and (crop[:, :6] == 0).all()
    assert (crop[6:, 6:] == 9).all()


def test_ring_crop_excludes_the_neighbouring_nucleus():
    shape = (50, 80)
    nuclei = np.zeros(shape, np.int32)
    nuclei[_disk(shape, (25, 30), 8)] = 1
    nuclei[_disk(shape, (25, 49), 8)] = 2  # 3 px gap between the two nuclei
    cells = np.zeros(shape, np.int32)
    cells[:, :40] = 1
    cells[:, 40:] = 2
    cells[nuclei > 0] = nuclei[nuclei > 0]
    seg = SegmentedImages(np.ones((1, *shape, 4), np.uint8), nuclei[None], cells[None], CHANNELS)
    crops = RegionCropper(regions=("nuclear_membrane",), membrane_width=5, crop_size=32, min_area=1)
    ring = crops.fit_transform(seg).crops["nuclear_membrane"][:, ..., 0]
    nucleus1 = nuclei == 1
    expected = membrane_ring(nucleus1, 5, 5, exclude=nuclei == 2)
    assert ring[0].sum() == expected.sum() < membrane_ring(nucleus1, 5, 5).sum()


def test_small_cells_are_dropped_and_counted():
    shape = (40, 40)
    nuclei = np.zeros((2, *shape), np.int32)
    cells = np.zeros_like(nuclei)
    cells[0, 2:20, 2:20], nuclei[0, 8:12, 8:12] = 1, 1  # 324 px
    cells[0, 25:30, 25:30], nuclei[0, 26:28, 26:28] = 2, 2  # 25 px: debris
    cells[1, 5:9, 5:9], nuclei[1, 6:8, 6:8] = 1, 1  # 16 px
    seg = SegmentedImages(
        np.ones((2, *shape, 4), np.uint8), nuclei, cells, CHANNELS, ids=["x", "y"]
    )
    crops = RegionCropper(crop_size=16, min_area=30).fit_transform(seg)
    assert crops.n_cells == 1
    assert crops.n_dropped.tolist() == [1, 1]
    assert crops.cells_per_image.tolist() == [1, 0]
    assert crops.properties["label"].tolist() == [1]
    assert crops.groups.tolist() == ["x"]


def test_groups_and_image_index_follow_the_images():
    shape = (30, 30)
    nuclei = np.zeros((3, *shape), np.int32)
    cells = np.zeros_like(nuclei)
    for i, n in enumerate((2, 0, 3)):
        for k in range(1, n + 1):
            cells[i, 2:8, 8 * k - 6 : 8 * k] = k
            nuclei[i, 4:6, 8 * k - 4 : 8 * k - 2] = k
    seg = SegmentedImages(
        np.ones((3, *shape, 4), np.uint8), nuclei, cells, CHANNELS, ids=["a", "b", "c"]
    )
    crops = RegionCropper(crop_size=16, min_area=1, channels=["green"]).fit_transform(seg)
    assert crops.channels == ("green",) and crops.crops["cell"].shape == (5, 16, 16, 1)
    assert crops.image_index.tolist() == [0, 0, 2, 2, 2]
    assert crops.groups.tolist() == ["a", "a", "c", "c", "c"]
    assert crops.properties["label"].tolist() == [1, 2, 1, 2, 3]
    rows = np.zeros(crops.n_cells)
    for train, test in GroupKFold(n_splits=2).split(rows, groups=crops.groups):
        assert set(crops.groups[train]).isdisjoint(crops.groups[test])
    # selecting images keeps their cells, and cropping a subset gives the same crops
    assert crops[[2]].n_cells == 3
    cropper = RegionCropper(crop_size=16, min_area=1, channels=["green"]).fit(seg)
    subset = cropper.transform(seg[[2, 0]])
    full = crops[[2, 0]]
    for region in crops.regions:
        np.testing.assert_array_equal(subset.crops[region], full.crops[region])
    np.testing.assert_array_equal(subset.image_index, full.image_index)


def test_lazy_images_are_cropped_like_arrays(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 40, 4), dtype=np.uint8)
    for c, name in enumerate(CHANNELS):
        Image.fromarray(image[..., c]).save(tmp_path / f"s1_{name}.png")
    lazy = load_hpa(tmp_path, lazy=True).images
    nuclei = np.zeros((1, 40, 40), np.int32)
    nuclei[0, 15:25, 15:25] = 1
    cells = np.zeros_like(nuclei)
    cells[0, 8:32, 8:32] = 1
    cropper = RegionCropper(crop_size=32, min_area=1)
    from_lazy = cropper.fit_transform(SegmentedImages(lazy, nuclei, cells, CHANNELS))
    from_array = cropper.fit_transform(SegmentedImages(image[None], nuclei, cells, CHANNELS))
    for region in cropper.regions_:
        np.testing.assert_array_equal(from_lazy.crops[region], from_array.crops[region])
    assert from_lazy.ids.tolist() == ["s1"]


# --------------------------------------------------------------------------- errors
def test_bad_parameters_raise_clear_errors():
    seg = _one_cell()
    with pytest.raises(ValueError, match="Unknown region 'nucleolus'"):
        RegionCropper(regions=("nucleus", "nucleolus")).fit(seg)
    with pytest.raises(ValueError, match="names a region twice"):
        RegionCropper(regions=("cell", "cell")).fit(seg)
    with pytest.raises(ValueError, match="regions is empty"):
        RegionCropper(regions=()).fit(seg)
    with pytest.raises(ValueError, match="'membrane_width' parameter"):
        RegionCropper(membrane_width=-1).fit(seg)
    with pytest.raises(ValueError, match="is negative"):
        RegionCropper(membrane_width=(2, -1)).fit(seg)
    with pytest.raises(ValueError, match=r"pair \(inside, outside\)"):
        RegionCropper(membrane_width=(1, 2, 3)).fit(seg)
    with pytest.raises(ValueError, match="empty nuclear-membrane ring"):
        RegionCropper(membrane_width=0).fit(seg)
    RegionCropper(regions="cell", membrane_width=0).fit(seg)  # no ring asked for
    with pytest.raises(ValueError, match=r"'crop_size' parameter .* range \[16, inf\)"):
        RegionCropper(crop_size=8).fit(seg)
    with pytest.raises(ValueError, match="'min_area' parameter"):
        RegionCropper(min_area=-3).fit(seg)
    with pytest.raises(ValueError, match="Channel 'violet' is not present"):
        RegionCropper(channels="violet").fit(seg)


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="takes a SegmentedImages"):
        RegionCropper().fit(np.zeros((1, 8, 8, 4)))
    # masks that do not match lazily loaded images are caught when the pixels arrive
    for name in CHANNELS:
        Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / f"s_{name}.png")
    lazy = load_hpa(tmp_path, lazy=True).images
    masks = np.zeros((1, 20, 20), np.int32)
    masks[0, 5:10, 5:10] = 1
    seg = SegmentedImages(lazy, masks, masks.copy(), CHANNELS)
    with pytest.raises(
        ValueError, match=r"Image 0 \('s'\) is 30x30 pixels but its masks are 20x20"
    ):
        RegionCropper(min_area=1).fit_transform(seg)
    # a cell without its nucleus breaks the container's promise
    nuclei = np.zeros((1, 20, 20), np.int32)
    cells = np.zeros_like(nuclei)
    cells[0, 2:8, 2:8] = 1
    bad = SegmentedImages(np.zeros((1, 20, 20, 4), np.uint8), nuclei, cells, CHANNELS)
    with pytest.raises(ValueError, match="label 1 is in only one of the nucleus and cell masks"):
        RegionCropper(min_area=1).fit_transform(bad)
    # other channels than at fit
    seg4 = _one_cell()
    cropper = RegionCropper(min_area=1).fit(seg4)
    other = SegmentedImages(
        np.ones((1, 64, 64, 3), np.uint8), seg4.nuclei, seg4.cells, ("a", "b", "c")
    )
    with pytest.raises(ValueError, match="was fitted on"):
        cropper.transform(other)
