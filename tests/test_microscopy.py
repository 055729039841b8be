"""load_images: OME-TIFF, OME-Zarr and manifest CSVs read through bioio into HPAImageSequence.

Test files are written by the libraries themselves (bioio's OmeTiffWriter, ome-zarr's
writer, tifffile), never by hand.
"""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("bioio")
pytest.importorskip("bioio_ome_tiff")
pytest.importorskip("bioio_ome_zarr")

from bioio.writers import OmeTiffWriter
from bioio_base.types import PhysicalPixelSizes
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from protloc.datasets import make_synthetic_hpa
from protloc.features import CNNFeatureExtractor
from protloc.io import (
    DEFAULT_CHANNELS,
    HPAImageSequence,
    load_hpa,
    load_images,
    microns_to_pixels,
)
from protloc.multilabel import BinaryRelevance

# The microscope's channel names, in the file's order (not protloc's).
FILE_CHANNELS = ("DAPI", "GFP", "Tubulin", "Calreticulin")
CHANNEL_MAP = {"DAPI": "blue", "GFP": "green", "Tubulin": "red", "Calreticulin": "yellow"}
IDS = ("s0", "s1", "s2")


def _file_order(image):
    """(rows, cols, red/green/blue/yellow) -> (channels in FILE_CHANNELS order, rows, cols)."""
    at = {c: i for i, c in enumerate(DEFAULT_CHANNELS)}
    return np.stack([image[..., at[CHANNEL_MAP[name]]] for name in FILE_CHANNELS])


def write_ome_tiff(path, image, pixel_size):
    OmeTiffWriter.save(
        _file_order(image),
        str(path),
        dim_order="CYX",
        channel_names=list(FILE_CHANNELS),
        physical_pixel_sizes=PhysicalPixelSizes(None, pixel_size, pixel_size),
    )


def write_ome_zarr(path, image, pixel_size):
    from ome_zarr.writer import write_image

    window = {"start": 0, "end": 65535, "min": 0, "max": 65535}
    write_image(
        _file_order(image),
        str(path),
        axes="cyx",
        scale_factors=[],
        scale={"c": 1.0, "y": pixel_size, "x": pixel_size},
        axes_units={"y": "micrometer", "x": "micrometer"},
        omero={
            "channels": [{"label": n, "color": "FFFFFF", "window": window} for n in FILE_CHANNELS]
        },
    )


@pytest.fixture(scope="module")
def synthetic():
    X, Y, masks = make_synthetic_hpa(
        n_samples=len(IDS), image_size=64, dtype="uint16", return_masks=True, random_state=0
    )
    return X, Y, masks


@pytest.fixture(scope="module")
def files(synthetic, tmp_path_factory):
    """The same images as PNGs (Kaggle layout), OME-TIFFs, OME-Zarrs and a manifest."""
    X, Y, _ = synthetic
    root = tmp_path_factory.mktemp("microscopy")
    (root / "png").mkdir()
    (root / "tiff").mkdir()
    (root / "zarr").mkdir()
    (root / "manifest").mkdir()
    rows = ["Id,nucleus,protein,microtubules,er,Target"]
    for sample_id, image, labels in zip(IDS, X, Y):
        for c, channel in enumerate(DEFAULT_CHANNELS):
            Image.fromarray(image[..., c]).save(root / "png" / f"{sample_id}_{channel}.png")
        write_ome_tiff(root / "tiff" / f"{sample_id}.ome.tiff", image, 0.5)
        write_ome_zarr(root / "zarr" / f"{sample_id}.ome.zarr", image, 0.25)
        names = []
        for c, channel in enumerate(DEFAULT_CHANNELS):
            name = f"{sample_id}_{channel}.ome.tiff"
            OmeTiffWriter.save(
                image[..., c],
                str(root / "manifest" / name),
                dim_order="YX",
                channel_names=[channel],
                physical_pixel_sizes=PhysicalPixelSizes(None, 0.3, 0.3),
            )
            names.append(name)
        red, green, blue, yellow = names
        target = " ".join(str(k) for k in np.flatnonzero(labels))
        rows.append(f"{sample_id},{blue},{green},{red},{yellow},{target}")
    (root / "manifest" / "samples.csv").write_text("\n".join(rows) + "\n")
    return root


def _tiffs(files):
    return sorted((files / "tiff").glob("*.ome.tiff"))


def test_ome_tiff_round_trip(synthetic, files):
    X, _, _ = synthetic
    data = load_images(_tiffs(files), channel_map=CHANNEL_MAP)
    assert isinstance(data.images, HPAImageSequence)
    assert data.ids.tolist() == list(IDS)
    assert data.images.channels == DEFAULT_CHANNELS
    assert data.labels is None
    np.testing.assert_allclose(data.pixel_sizes, 0.5)
    images = data.images.load()
    assert images.dtype == np.uint16
    np.testing.assert_array_equal(images, X)


def test_ome_zarr_round_trip(synthetic, files):
    X, _, _ = synthetic
    data = load_images(sorted((files / "zarr").glob("*.ome.zarr")), channel_map=CHANNEL_MAP)
    assert data.ids.tolist() == list(IDS)
    np.testing.assert_allclose(data.pixel_sizes, 0.25)
    assert data.images[1].dtype == np.uint16
    np.testing.assert_array_equal(data.images.load(), X)


def test_manifest_round_trip_with_labels(synthetic, files):
    X, Y, _ = synthetic
    data = load_images(
        files / "manifest" / "samples.csv",
        channel_map={"nucleus": "blue", "protein": "green", "microtubules": "red", "er": "yellow"},
        classes=[f"class{k}" for k in range(Y.shape[1])],
    )
    assert data.ids.tolist() == list(IDS)
    np.testing.assert_array_equal(data.labels, Y)
    np.testing.assert_allclose(data.pixel_sizes, 0.3)
    np.testing.assert_array_equal(data.images.load(), X)


def test_channel_subset_and_order(synthetic, files):
    X, _, _ = synthetic
    data = load_images(
        _tiffs(files), channel_map={"GFP": "green", "DAPI": "blue"}, channels=("green", "blue")
    )
    np.testing.assert_array_equal(data.images.load(), X[..., [1, 2]])


def test_slicing_keeps_planes_and_pixel_sizes(synthetic, files):
    X, _, _ = synthetic
    tiffs = load_images(_tiffs(files), channel_map=CHANNEL_MAP).images
    zarrs = load_images(sorted((files / "zarr").glob("*.ome.zarr")), channel_map=CHANNEL_MAP)
    mixed = tiffs[[2, 0]]
    assert mixed.ids.tolist() == ["s2", "s0"]
    np.testing.assert_allclose(mixed.pixel_sizes, 0.5)
    np.testing.assert_array_equal(mixed.load(), X[[2, 0]])
    np.testing.assert_array_equal(zarrs.images[np.array([False, True, False])][0], X[1])


def test_pipeline_predicts_the_same_from_png_ome_tiff_and_ome_zarr(synthetic, files):
    _, Y, _ = synthetic
    png = load_hpa(files / "png", lazy=True).images
    model = make_pipeline(
        CNNFeatureExtractor(
            "test_efficientnet",
            weights=None,
            random_state=0,
            image_size=32,
            device="cpu",
            progress=False,
        ),
        BinaryRelevance(LogisticRegression(max_iter=200)),
    ).fit(png, Y)
    expected = model.predict_proba(png)
    tiff = load_images(_tiffs(files), channel_map=CHANNEL_MAP).images
    zarr = load_images(sorted((files / "zarr").glob("*.ome.zarr")), channel_map=CHANNEL_MAP)
    np.testing.assert_allclose(model.predict_proba(tiff), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(zarr.images), expected, rtol=0, atol=1e-6)


def test_feature_cache_tells_files_and_planes_apart(files, tmp_path):
    """Cached features are keyed by file bytes and plane, so channels never swap."""
    tiffs = _tiffs(files)
    extractor = CNNFeatureExtractor(
        "test_efficientnet",
        weights=None,
        random_state=0,
        image_size=32,
        device="cpu",
        progress=False,
        cache=tmp_path,
    )
    straight = load_images(tiffs, channel_map=CHANNEL_MAP).images
    swapped = load_images(tiffs, channel_map={**CHANNEL_MAP, "GFP": "blue", "DAPI": "green"})
    first = extractor.fit(straight).transform(straight)
    np.testing.assert_array_equal(extractor.transform(straight), first)
    assert not np.allclose(extractor.transform(swapped.images), first)


def test_region_cropper_takes_the_sequence(synthetic, files):
    from protloc.regions import RegionCropper
    from protloc.segmentation import SegmentedImages

    X, _, masks = synthetic
    seq = load_images(_tiffs(files), channel_map=CHANNEL_MAP).images
    from_files = SegmentedImages(seq, masks.nuclei, masks.cells, channels=seq.channels)
    in_memory = SegmentedImages(X, masks.nuclei, masks.cells, channels=DEFAULT_CHANNELS)
    cropper = RegionCropper(crop_size=16, min_area=10)
    a = cropper.fit_transform(from_files)
    b = cropper.fit_transform(in_memory)
    assert a.n_cells == b.n_cells > 0
    for region in a.regions:
        assert a.crops[region].dtype == np.uint16
        np.testing.assert_array_equal(a.crops[region], b.crops[region])


@pytest.mark.real_data
@pytest.mark.slow
def test_cellpose_segmenter_takes_the_sequence(synthetic, files, cellpose_model_path):
    from protloc.segmentation import CellposeSegmenter

    X, _, _ = synthetic
    seq = load_images(_tiffs(files), channel_map=CHANNEL_MAP).images
    segmenter = CellposeSegmenter(
        cellpose_model_path,
        diameter=microns_to_pixels(7.5, seq.pixel_sizes[0]),
        device="cpu",
        progress=False,
    )
    from_files = segmenter.fit_transform(seq)
    in_memory = segmenter.fit_transform(X)
    np.testing.assert_array_equal(np.asarray(from_files.cells), np.asarray(in_memory.cells))
    assert from_files.ids.tolist() == list(IDS)


def test_microns_to_pixels():
    assert microns_to_pixels(17.0, 0.28) == 61
    assert microns_to_pixels(0.01, 1.0) == 1
    with pytest.raises(ValueError, match="no pixel size"):
        microns_to_pixels(17.0, float("nan"))
    with pytest.raises(ValueError, match="value_um"):
        microns_to_pixels(-1, 0.5)


# --------------------------------------------------------------------------- bad input
def test_channel_missing_from_channel_map(files):
    with pytest.raises(ValueError, match="'yellow' is missing from channel_map"):
        load_images(_tiffs(files), channel_map={"DAPI": "blue", "GFP": "green", "Tubulin": "red"})


def test_channel_name_not_in_file_lists_its_names(files):
    bad = {**CHANNEL_MAP}
    del bad["GFP"]
    bad["Alexa488"] = "green"
    with pytest.raises(ValueError, match=r"s0\.ome\.tiff.*no channel named 'Alexa488'.*'GFP'"):
        load_images(_tiffs(files), channel_map=bad)


def test_missing_file(files, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.ome\.tiff"):
        load_images([tmp_path / "nowhere.ome.tiff"], channel_map=CHANNEL_MAP)
    manifest = tmp_path / "m.csv"
    manifest.write_text("Id,red,green,blue,yellow\na,a_r.png,a_g.png,a_b.png,a_y.png\n")
    with pytest.raises(FileNotFoundError, match=r"a_r\.png"):
        load_images(manifest)


def test_unsupported_format_names_the_plugin(tmp_path):
    path = tmp_path / "scan.czi"
    path.write_bytes(b"not a czi file")
    with pytest.raises(ValueError, match=r"scan\.czi.*pip install bioio-czi"):
        load_images([path], channel_map=CHANNEL_MAP)


def test_damaged_file_of_an_installed_plugin(tmp_path):
    path = tmp_path / "broken.ome.tiff"
    path.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"bioio-ome-tiff is installed but cannot read"):
        load_images([path], channel_map=CHANNEL_MAP)


def test_manifest_row_without_a_file(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("Id,green,blue\na,a_g.png,\n")
    with pytest.raises(ValueError, match=r"'a'.*no file in column 'blue'"):
        load_images(manifest, channels=("green", "blue"))


def test_unequal_channel_shapes_in_a_manifest(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "a_big.tif", np.zeros((16, 16), np.uint16))
    tifffile.imwrite(tmp_path / "a_small.tif", np.zeros((8, 16), np.uint16))
    manifest = tmp_path / "m.csv"
    manifest.write_text("Id,green,blue\na,a_big.tif,a_small.tif\n")
    with pytest.raises(ValueError, match=r"'a'.*different sizes"):
        load_images(manifest, channels=("green", "blue"))


def test_manifest_without_a_channel_column(files):
    with pytest.raises(ValueError, match="no column 'red' for channel 'red'"):
        load_images(files / "manifest" / "samples.csv")


def test_z_stack_is_refused(tmp_path):
    path = tmp_path / "stack.ome.tiff"
    OmeTiffWriter.save(
        np.zeros((3, 2, 8, 8), np.uint16), str(path), dim_order="ZCYX", channel_names=["a", "b"]
    )
    with pytest.raises(ValueError, match="3 Z planes"):
        load_images([path], channel_map={"a": "green", "b": "blue"}, channels=("green", "blue"))
