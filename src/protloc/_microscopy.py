"""Reading users' microscopy (OME-TIFF, OME-Zarr, TIFF, vendor formats) through bioio.

:func:`load_images` builds the same lazy :class:`~protloc.io.HPAImageSequence` as
``load_hpa(lazy=True)``, so every estimator takes it unchanged. A sample is either one
file per channel (a manifest CSV) or one multi-channel file whose channels are picked
by their names in the file's metadata. Pixels keep their dtype (16-bit stays 16-bit);
the pixel size in micrometres is carried in ``images.pixel_sizes``.

bioio and its format plugins come with the ``io`` extra (``pip install 'protloc[io]'``)
and are imported only when a file is read.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from protloc.io import (
    DEFAULT_CHANNELS,
    HPAImageSequence,
    _class_table,
    parse_targets,
    read_image,
    read_labels,
)

__all__ = ["load_images", "microns_to_pixels", "read_planes"]

# Files that read_image decodes without bioio (one greyscale plane per file).
_PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")

# Which bioio plugin reads which file ending; named when no installed plugin can.
_PLUGINS = (
    (".ome.tiff", "bioio-ome-tiff"),
    (".ome.tif", "bioio-ome-tiff"),
    (".ome.zarr", "bioio-ome-zarr"),
    (".zarr", "bioio-ome-zarr"),
    (".tiff", "bioio-tifffile"),
    (".tif", "bioio-tifffile"),
    (".czi", "bioio-czi"),
    (".nd2", "bioio-nd2"),
    (".lif", "bioio-lif"),
    (".dv", "bioio-dv"),
    (".sldy", "bioio-sldy"),
    (".png", "bioio-imageio"),
    (".jpg", "bioio-imageio"),
)

_STRIP_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr")


def microns_to_pixels(value_um, pixel_size_um):
    """Convert a length in micrometres to whole pixels at a given pixel size.

    Use it to give Cellpose's diameter or the crop size in micrometres: for
    images of one pixel size,
    ``CellposeSegmenter(diameter=microns_to_pixels(17, images.pixel_sizes[0]))``
    and ``RegionCropper(crop_size=microns_to_pixels(40, images.pixel_sizes[0]))``.
    Images of several pixel sizes are segmented in groups of equal pixel size
    (``images[images.pixel_sizes == size]``), one converted value per group.

    Parameters
    ----------
    value_um : float
        A length in micrometres (> 0).
    pixel_size_um : float
        Micrometres per pixel (> 0), e.g. from ``images.pixel_sizes``.

    Returns
    -------
    pixels : int
        ``round(value_um / pixel_size_um)``, at least 1.

    Examples
    --------
    >>> microns_to_pixels(17.0, 0.28)  # an HPA nucleus at the 2018 images' pixel size
    61
    """
    for name, value in (("value_um", value_um), ("pixel_size_um", pixel_size_um)):
        if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
            hint = (
                " The file has no pixel size in its metadata; give lengths in pixels instead."
                if name == "pixel_size_um"
                else ""
            )
            raise ValueError(f"{name} must be a positive finite number, got {value!r}.{hint}")
    return max(1, round(float(value_um) / float(pixel_size_um)))


# --------------------------------------------------------------------------- bioio access
def _import_bioio():
    try:
        import bioio
    except ImportError:
        raise ImportError(
            "Reading microscopy files needs bioio and its format plugins: "
            "pip install 'protloc[io]'."
        ) from None
    return bioio


def _plugin_for(path):
    name = str(path).lower().rstrip("/")
    for suffix, plugin in _PLUGINS:
        if name.endswith(suffix):
            return plugin
    return None


def _open(path, sample_id=None):
    """A bioio.BioImage of ``path``, with errors that name the file and the fix."""
    bioio = _import_bioio()
    from bioio_base.exceptions import UnsupportedFileFormatError

    where = f" (sample {sample_id!r})" if sample_id is not None else ""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image file {str(path)!r}{where} does not exist.")
    try:
        return bioio.BioImage(path)
    except UnsupportedFileFormatError:
        import importlib.util

        plugin = _plugin_for(path)
        if plugin is None:
            fix = "install the bioio plugin for this format (see bioio's list of plugins)"
        elif importlib.util.find_spec(plugin.replace("-", "_")) is not None:
            raise ValueError(
                f"{plugin} is installed but cannot read {str(path)!r}{where}: the file is "
                "damaged or not in the format its name says; re-export it."
            ) from None
        else:
            fix = f"pip install {plugin}"
        raise ValueError(f"No installed bioio plugin reads {str(path)!r}{where}; {fix}.") from None


def _check_2d(image, path):
    """Only 2-D images: one time point, one Z plane."""
    dims = image.dims
    for axis, what in (("T", "time points"), ("Z", "Z planes")):
        n = getattr(dims, axis, 1)
        if n != 1:
            raise ValueError(
                f"Image file {str(path)!r} has {n} {what}; protloc reads 2-D images. "
                "Project the stack (e.g. a maximum projection) or save the plane you want."
            )


def _pixel_size(image):
    size = image.physical_pixel_sizes.X
    return float("nan") if size is None else float(size)


def read_planes(paths, planes, sample_id=None):
    """Decode the planes of one sample, opening each file once.

    Parameters
    ----------
    paths : sequence of str
        One path per channel; a multi-channel file may repeat.
    planes : sequence of int
        The channel index inside each file (read through bioio), or -1 for a
        single-plane PNG/TIFF read by :func:`protloc.io.read_image`.
    sample_id : str, optional
        Named in error messages.

    Returns
    -------
    planes : list of ndarray of shape (rows, cols)
        In the file's dtype.
    """
    opened, out = {}, []
    for path, plane in zip(paths, planes, strict=True):
        if plane < 0:
            out.append(read_image(path, sample_id=sample_id))
            continue
        if path not in opened:
            opened[path] = _open(path, sample_id)
        out.append(np.asarray(opened[path].get_image_data("YX", C=int(plane), T=0, Z=0)))
    return out


# --------------------------------------------------------------------------- load_images
def _sample_id(path):
    name = Path(str(path).rstrip("/")).name
    for suffix in _STRIP_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _check_mapping(channels, channel_map, source):
    """Channel names -> the source name (file channel or CSV column) of each."""
    channels = tuple(str(c).lower() for c in channels)
    if not channels:
        raise ValueError("channels is empty; name at least one channel, e.g. ('green',).")
    if channel_map is None:
        return channels, {c: c for c in channels}
    if not isinstance(channel_map, Mapping):
        raise TypeError(
            f"channel_map must be a dict from the {source} to protloc channel names, e.g. "
            "{'DAPI': 'blue', 'GFP': 'green'}; got "
            f"{type(channel_map).__name__}."
        )
    inverse = {}
    for name, channel in channel_map.items():
        channel = str(channel).lower()
        if channel in inverse:
            raise ValueError(
                f"channel_map maps both {inverse[channel]!r} and {name!r} to {channel!r}."
            )
        inverse[channel] = str(name)
    missing = [c for c in channels if c not in inverse]
    if missing:
        raise ValueError(
            f"Channel {missing[0]!r} is missing from channel_map {dict(channel_map)}; map one "
            f"of the {source} to every channel of {channels}."
        )
    return channels, inverse


def _from_manifest(manifest, channels, channel_map, id_column, label_column):
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest file {str(manifest)!r} does not exist.")
    channels, source = _check_mapping(channels, channel_map, "manifest's columns")
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
        rows = list(reader)
    id_col = columns.get(id_column.lower())
    if id_col is None:
        raise ValueError(
            f"Manifest {str(manifest)!r} has columns {list(columns.values())} but no id column "
            f"{id_column!r}; add one or pass id_column=."
        )
    path_cols = []
    for channel in channels:
        column = columns.get(source[channel].lower())
        if column is None:
            raise ValueError(
                f"Manifest {str(manifest)!r} has no column {source[channel]!r} for channel "
                f"{channel!r}; its columns are {list(columns.values())}."
            )
        path_cols.append(column)
    if label_column is None:
        label_col = columns.get("target") or columns.get("label")
    else:
        label_col = columns.get(label_column.lower())
        if label_col is None:
            raise ValueError(
                f"Manifest {str(manifest)!r} has no label column {label_column!r}; its columns "
                f"are {list(columns.values())}."
            )
    ids, paths, planes, sizes, targets = [], [], [], [], []
    for row in rows:
        sample_id = row[id_col].strip()
        ids.append(sample_id)
        empty = [col for col in path_cols if not (row[col] or "").strip()]
        if empty:
            raise ValueError(
                f"Sample {sample_id!r} of {str(manifest)!r} has no file in column {empty[0]!r}; "
                "every channel column needs a path."
            )
        row_paths = [manifest.parent / row[col].strip() for col in path_cols]
        row_planes, shapes, size = [], {}, float("nan")
        for channel, path in zip(channels, row_paths, strict=True):
            if str(path).lower().endswith(_PLAIN_SUFFIXES):
                if not path.is_file():
                    raise FileNotFoundError(
                        f"Image file {str(path)!r} (sample {sample_id!r}, channel "
                        f"{channel!r}) does not exist."
                    )
                row_planes.append(-1)
                continue
            image = _open(path, sample_id)
            _check_2d(image, path)
            if image.dims.C != 1:
                raise ValueError(
                    f"Image file {str(path)!r} (sample {sample_id!r}, channel {channel!r}) "
                    f"has {image.dims.C} channels {list(image.channel_names)}; a manifest "
                    "column names one single-channel file. For multi-channel files call "
                    "load_images(files, channel_map=...) instead."
                )
            shapes[channel] = (image.dims.Y, image.dims.X)
            size = _pixel_size(image) if math.isnan(size) else size
            row_planes.append(0)
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"Sample {sample_id!r} of {str(manifest)!r} has channel images of different "
                f"sizes ({shapes}); all channels of a sample must have the same rows and cols."
            )
        if label_col is not None:
            targets.append(row[label_col])
        paths.append(row_paths)
        planes.append(row_planes)
        sizes.append(size)
    if not ids:
        raise ValueError(f"Manifest {str(manifest)!r} lists no samples.")
    if len(set(ids)) != len(ids):
        dup = next(sid for sid in ids if ids.count(sid) > 1)
        raise ValueError(f"Manifest {str(manifest)!r} lists sample {dup!r} more than once.")
    return channels, ids, paths, planes, sizes, targets if label_col is not None else None


def _from_files(files, channels, channel_map, ids):
    channels, source = _check_mapping(channels, channel_map, "files' channel names")
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("files is empty; pass at least one image file.")
    ids = [_sample_id(f) for f in files] if ids is None else [str(s) for s in ids]
    if len(ids) != len(files):
        raise ValueError(f"ids has {len(ids)} entries for {len(files)} files.")
    if len(set(ids)) != len(ids):
        raise ValueError("Two files give the same sample id; rename them or pass ids= explicitly.")
    paths, planes, sizes = [], [], []
    for sample_id, path in zip(ids, files, strict=True):
        image = _open(path, sample_id)
        _check_2d(image, path)
        names = [str(n) for n in image.channel_names]
        row = []
        for channel in channels:
            if source[channel] not in names:
                raise ValueError(
                    f"Image file {str(path)!r} has no channel named {source[channel]!r} (for "
                    f"{channel!r}); its channels are {names}. Fix channel_map."
                )
            row.append(names.index(source[channel]))
        paths.append([path] * len(channels))
        planes.append(row)
        sizes.append(_pixel_size(image))
    return channels, ids, paths, planes, sizes


def load_images(
    source,
    *,
    channel_map=None,
    channels=DEFAULT_CHANNELS,
    ids=None,
    labels_csv=None,
    id_column="Id",
    label_column=None,
    classes="hpa2018",
    n_jobs=4,
):
    """Read microscopy files (OME-TIFF, OME-Zarr, TIFF, vendor formats) lazily.

    Two layouts are accepted:

    - a **manifest CSV** (``source`` is its path): one row per sample, an id
      column, one column per channel holding a file path (relative to the CSV),
      and optionally a label column (``Target``/``Label``, HPA's space- or
      ``|``-separated class indices);
    - a **list of multi-channel files**: ``channel_map`` maps the channel names
      stored in each file's metadata (OME ``Channel/@Name``, OME-Zarr ``omero``
      labels) to protloc's channel names.

    Files are read through bioio (the ``io`` extra); PNG/JPEG files in a manifest
    are read directly. Only the first scene, time point and Z plane exist for
    protloc: a file with several time points or Z planes is refused.

    Parameters
    ----------
    source : path-like or sequence of path-like
        The manifest CSV, or the image files.
    channel_map : dict of str to str, optional
        ``{name in the source: protloc channel}``, e.g. ``{"DAPI": "blue", "GFP":
        "green", "Tubulin": "red", "Calreticulin": "yellow"}``. For a manifest the
        keys are column names. None: the source already uses the names in
        ``channels``.
    channels : sequence of str, default=("red", "green", "blue", "yellow")
        The channels to read, in the order of the last image axis. Each estimator's
        channel parameters (e.g. ``CellposeSegmenter(nucleus_channel="blue")``)
        refer to these names.
    ids : sequence of str, optional
        Sample ids of the files; the file names without extension by default.
        (A manifest has its own id column.)
    labels_csv : path-like, optional
        For a list of files: an HPA ``Id,Target`` CSV (:func:`protloc.io.read_labels`)
        that lists every sample id.
    id_column : str, default="Id"
        The manifest's id column.
    label_column : str, optional
        The manifest's label column; by default ``Target`` or ``Label`` if present.
    classes : {"hpa2018", "hpa2021"} or sequence of str, default="hpa2018"
        The class table of the labels.
    n_jobs : int, default=4
        Threads decoding a batch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (a lazy :class:`~protloc.io.HPAImageSequence`, with
        ``images.pixel_sizes`` in micrometres, NaN where the metadata has none),
        ``labels`` (``(n, n_classes)`` uint8 indicators, or None), ``ids``,
        ``channels``, ``class_names`` and ``pixel_sizes``.

    Raises
    ------
    FileNotFoundError
        The manifest or an image file does not exist.
    ValueError
        A channel is missing from ``channel_map`` or from the manifest, a file has
        no channel of the mapped name (the message lists its names), the channels
        of a sample differ in size, or no installed bioio plugin reads the format
        (the message names the plugin to install).
    ImportError
        bioio is not installed (``pip install 'protloc[io]'``).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from bioio.writers import OmeTiffWriter
    >>> from bioio_base.types import PhysicalPixelSizes
    >>> path = tempfile.mkdtemp() + "/well1.ome.tiff"
    >>> pixels = np.arange(2 * 8 * 6, dtype=np.uint16).reshape(2, 8, 6)
    >>> OmeTiffWriter.save(pixels, path, dim_order="CYX", channel_names=["DAPI", "GFP"],
    ...                    physical_pixel_sizes=PhysicalPixelSizes(None, 0.5, 0.5))
    >>> data = load_images([path], channel_map={"GFP": "green", "DAPI": "blue"},
    ...                    channels=("green", "blue"))
    >>> data.images[0].shape, data.images[0].dtype, data.ids.tolist(), data.pixel_sizes.tolist()
    ((8, 6, 2), dtype('uint16'), ['well1'], [0.5])
    """
    table = _class_table(classes)
    Y = None
    if isinstance(source, (str, os.PathLike)):
        if Path(source).suffix.lower() != ".csv":
            raise ValueError(
                f"source {str(source)!r} is one path but not a manifest .csv; pass image "
                "files as a list, e.g. load_images([path], channel_map=...)."
            )
        channels, sample_ids, paths, planes, sizes, targets = _from_manifest(
            source, channels, channel_map, id_column, label_column
        )
        if targets is not None:
            Y = np.zeros((len(sample_ids), len(table)), dtype=np.uint8)
            for i, (sample_id, text) in enumerate(zip(sample_ids, targets, strict=True)):
                Y[i, parse_targets(text, len(table), sample_id=sample_id)] = 1
    else:
        channels, sample_ids, paths, planes, sizes = _from_files(
            list(source), channels, channel_map, ids
        )
        if labels_csv is not None:
            label_ids, labels = read_labels(labels_csv, classes=classes)
            position = {sid: i for i, sid in enumerate(label_ids)}
            unknown = [sid for sid in sample_ids if sid not in position]
            if unknown:
                raise ValueError(
                    f"Sample id {unknown[0]!r} is not in the labels file {str(labels_csv)!r} "
                    f"({len(unknown)} unknown ids in all)."
                )
            Y = labels[[position[sid] for sid in sample_ids]]
    images = HPAImageSequence(
        paths, sample_ids, channels, n_jobs=n_jobs, planes=planes, pixel_sizes=sizes
    )
    return Bunch(
        images=images,
        labels=Y,
        ids=images.ids,
        channels=channels,
        class_names=list(table),
        pixel_sizes=images.pixel_sizes,
    )
