"""Reading HPA images and labels, eagerly or lazily, and the class-name tables.

The Kaggle layout stores one greyscale file per channel, ``<Id>_<channel>.png``
(or ``.tif``/``.tiff``), 8-bit or 16-bit. :func:`load_hpa` reads it into a
``(n, rows, cols, channels)`` array, or into an :class:`HPAImageSequence` that
holds only paths and decodes samples in batches when a later step asks for them.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils import Bunch

if TYPE_CHECKING:  # resolved lazily by __getattr__ at the end of this module
    from protloc._cell_results import (
        fit_cell_classifier,
        pool_cells,
        predict_cells,
        write_cell_results,
    )
    from protloc._microscopy import load_images, microns_to_pixels

__all__ = [
    "DEFAULT_CHANNELS",
    "HPA2021_CLASSES",
    "HPA_CLASSES",
    "HPAImageSequence",
    "check_images",
    "fit_cell_classifier",
    "load_hpa",
    "load_images",
    "microns_to_pixels",
    "parse_targets",
    "pool_cells",
    "predict_cells",
    "read_image",
    "read_labels",
    "resolve_channels",
    "write_cell_results",
]

#: The 28 classes of the HPA 2018 Kaggle competition, in its label files' index order.
HPA_CLASSES = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Peroxisomes",
    "Endosomes",
    "Lysosomes",
    "Intermediate filaments",
    "Actin filaments",
    "Focal adhesion sites",
    "Microtubules",
    "Microtubule ends",
    "Cytokinetic bridge",
    "Mitotic spindle",
    "Microtubule organizing center",
    "Centrosome",
    "Lipid droplets",
    "Plasma membrane",
    "Cell junctions",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Cytoplasmic bodies",
    "Rods & rings",
)

#: The 19 classes of the HPA 2021 single-cell competition (18 patterns plus Negative).
HPA2021_CLASSES = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Intermediate filaments",
    "Actin filaments",
    "Microtubules",
    "Mitotic spindle",
    "Centrosome",
    "Plasma membrane",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Vesicles and punctate cytosolic patterns",
    "Negative",
)

#: Channel order of :func:`load_hpa` and of every array-valued image batch by default.
DEFAULT_CHANNELS = ("red", "green", "blue", "yellow")

_CLASS_TABLES = {"hpa2018": HPA_CLASSES, "hpa2021": HPA2021_CLASSES}
_EXTENSIONS = (".png", ".tif", ".tiff")


# --------------------------------------------------------------------------- labels
def parse_targets(text, n_classes=28, *, sample_id=None, allow_empty=False):
    """Parse one ``Target`` cell into sorted class indices.

    Both HPA formats are accepted: space-separated (2018, ``"25 3 0"``) and
    ``|``-separated (2021, ``"25|3|0"``).

    Parameters
    ----------
    text : str
        The label cell.
    n_classes : int, default=28
        Valid indices are ``0 .. n_classes - 1``.
    sample_id : str, optional
        Named in error messages.
    allow_empty : bool, default=False
        Accept an empty cell (no class), as in prediction files.

    Returns
    -------
    indices : list of int
        Sorted, without duplicates.

    Examples
    --------
    >>> parse_targets("25 3 0")
    [0, 3, 25]
    >>> parse_targets("7|1")
    [1, 7]
    """
    where = f" of sample {sample_id!r}" if sample_id is not None else ""
    tokens = str(text).replace("|", " ").split()
    if not tokens:
        if allow_empty:
            return []
        raise ValueError(
            f"The label{where} is empty; every HPA sample needs at least one class index."
        )
    indices = set()
    for token in tokens:
        try:
            value = int(token)
        except ValueError:
            raise ValueError(
                f"Label {token!r}{where} is not an integer class index; "
                "write labels as space- or '|'-separated indices such as '25 3 0'."
            ) from None
        if not 0 <= value < n_classes:
            raise ValueError(
                f"Label {value}{where} is outside 0..{n_classes - 1}; check that the file "
                f"uses the {n_classes}-class table (pass classes='hpa2021' for the "
                "19-class single-cell labels)."
            )
        indices.add(value)
    return sorted(indices)


def _class_table(classes):
    if isinstance(classes, str):
        try:
            return _CLASS_TABLES[classes]
        except KeyError:
            raise ValueError(
                f"Unknown class table {classes!r}; use 'hpa2018' (28 classes) or "
                "'hpa2021' (19 classes), or pass a sequence of class names."
            ) from None
    return tuple(classes)


def read_labels(labels_csv, *, classes="hpa2018", allow_empty=False):
    """Read an HPA ``Id,Target`` CSV into ids and a 0/1 indicator matrix.

    Parameters
    ----------
    labels_csv : path-like
        CSV with columns ``Id`` and ``Target`` (2018), ``ID`` and ``Label`` (2021),
        or ``Id`` and ``Predicted`` (a Kaggle submission); other columns are ignored.
    classes : {"hpa2018", "hpa2021"} or sequence of str, default="hpa2018"
        The class table; its length fixes the number of indicator columns.
    allow_empty : bool, default=False
        Accept samples with no class (predictions may have none).

    Returns
    -------
    ids : ndarray of str, shape (n_samples,)
    Y : ndarray of uint8, shape (n_samples, n_classes)

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = path.write_text("Id,Target\\na,25 0\\nb,7\\n")
    >>> ids, Y = read_labels(path)
    >>> list(ids), Y.shape, Y[0, [0, 25]].tolist()
    (['a', 'b'], (2, 28), [1, 1])
    """
    table = _class_table(classes)
    path = Path(labels_csv)
    if not path.is_file():
        raise FileNotFoundError(f"Labels file {str(path)!r} does not exist.")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = {name.strip().lower(): name for name in reader.fieldnames or ()}
        id_col = fields.get("id")
        target_col = fields.get("target") or fields.get("label") or fields.get("predicted")
        if id_col is None or target_col is None:
            raise ValueError(
                f"Labels file {str(path)!r} has columns {reader.fieldnames}; it needs an "
                "'Id' column and a 'Target' (or 'Label') column, as in the Kaggle HPA CSVs."
            )
        ids, rows = [], []
        for row in reader:
            sample_id = row[id_col].strip()
            ids.append(sample_id)
            rows.append(
                parse_targets(
                    row[target_col], len(table), sample_id=sample_id, allow_empty=allow_empty
                )
            )
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for sample_id in ids:
            if sample_id in seen:
                dup = sample_id
                break
            seen.add(sample_id)
        raise ValueError(f"Labels file {str(path)!r} lists sample {dup!r} more than once.")
    Y = np.zeros((len(ids), len(table)), dtype=np.uint8)
    for i, indices in enumerate(rows):
        Y[i, indices] = 1
    return np.asarray(ids, dtype=object), Y


# --------------------------------------------------------------------------- images
def read_image(path, *, sample_id=None):
    """Read one single-channel image file (PNG or TIFF, 8- or 16-bit) as a 2-D array.

    Parameters
    ----------
    path : path-like
    sample_id : str, optional
        Named in error messages.

    Returns
    -------
    image : ndarray of shape (rows, cols)
        ``uint8`` or ``uint16`` as stored (float TIFFs keep their float dtype).
    """
    path = Path(path)
    where = f" (sample {sample_id!r})" if sample_id is not None else ""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            image = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as handle:
                image = np.array(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file {str(path)!r}{where} does not exist.") from None
    except Exception as exc:  # PIL and tifffile raise many types for a damaged file
        raise ValueError(
            f"Cannot decode image file {str(path)!r}{where}: {exc}. The file is corrupt or "
            "not a PNG/TIFF; re-download or remove that sample."
        ) from exc
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        # Some tools save greyscale channels as RGB(A); the planes are then identical.
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(
            f"Image file {str(path)!r}{where} has shape {image.shape}; each HPA channel file "
            "must hold one greyscale plane."
        )
    return image


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


def _index_directory(image_dir, channels):
    """Map (id, channel) -> file name with one directory listing (fast for 100k files)."""
    found = {}
    suffixes = tuple(f"_{channel}{ext}" for channel in channels for ext in _EXTENSIONS)
    with os.scandir(image_dir) as entries:
        for entry in entries:
            name = entry.name
            lower = name.lower()
            if not lower.endswith(suffixes):
                continue
            stem, ext = os.path.splitext(name)
            sample_id, _, channel = stem.rpartition("_")
            # .png wins over .tif when both exist, matching _EXTENSIONS order.
            key = (sample_id, channel.lower())
            previous = found.get(key)
            if previous is None or _EXTENSIONS.index(ext.lower()) < _EXTENSIONS.index(
                os.path.splitext(previous)[1].lower()
            ):
                found[key] = name
    return found


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
        single-plane PNG/TIFF read by :func:`read_image`. None (the Kaggle layout)
        is all -1. :func:`load_images` fills it.
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
        """Decode sample ``i``, or only the channels at ``positions``.

        Parameters
        ----------
        i : int
        positions : sequence of int, optional
            Channel positions; all channels when omitted.

        Returns
        -------
        image : ndarray of shape (rows, cols, len(positions))
        """
        positions = range(len(self.channels)) if positions is None else list(positions)
        if (self.planes[i, positions] < 0).all():
            planes = [read_image(self.paths[i, c], sample_id=self.ids[i]) for c in positions]
        else:
            from protloc._microscopy import read_planes

            planes = read_planes(self.paths[i, positions], self.planes[i, positions], self.ids[i])
        shapes = {plane.shape for plane in planes}
        if len(shapes) > 1:
            detail = ", ".join(
                f"{self.channels[c]}={plane.shape}"
                for c, plane in zip(positions, planes, strict=True)
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


def load_hpa(
    image_dir,
    labels_csv=None,
    *,
    channels=DEFAULT_CHANNELS,
    ids=None,
    lazy=False,
    classes="hpa2018",
    return_X_y=False,
    n_jobs=4,
):
    """Load HPA images in the Kaggle layout, with optional labels.

    Parameters
    ----------
    image_dir : path-like
        Folder of ``<Id>_<channel>.png`` (or ``.tif``/``.tiff``) files.
    labels_csv : path-like, optional
        ``Id,Target`` CSV (2018, space-separated) or ``ID,Label`` (2021,
        ``|``-separated). When given, its ids (in its order) are the samples.
    channels : sequence of str, default=("red", "green", "blue", "yellow")
        Channels to read, in the order of the last image axis.
    ids : sequence of str, optional
        Restrict to these samples, in this order. Without labels and ids, every
        sample found in ``image_dir`` is loaded, sorted by id.
    lazy : bool, default=False
        Return an :class:`HPAImageSequence` of paths instead of decoded pixels.
    classes : {"hpa2018", "hpa2021"} or sequence of str, default="hpa2018"
        The class table for the labels.
    return_X_y : bool, default=False
        Return ``(images, labels)`` instead of a Bunch.
    n_jobs : int, default=4
        Threads for decoding.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (ndarray ``(n, rows, cols, channels)`` in the stored dtype, or an
        :class:`HPAImageSequence` when ``lazy``), ``labels`` (``(n, n_classes)``
        uint8 indicators, or None), ``ids``, ``channels`` and ``class_names``.

    Raises
    ------
    FileNotFoundError
        The folder, the CSV or a channel file of a sample is missing.
    ValueError
        An id is unknown, a label is out of range, a file is corrupt or channel
        sizes disagree.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> for c in ("red", "green", "blue", "yellow"):
    ...     Image.fromarray(np.zeros((8, 6), np.uint8)).save(f"{folder}/s1_{c}.png")
    >>> data = load_hpa(folder)
    >>> data.images.shape, data.ids.tolist()
    ((1, 8, 6, 4), ['s1'])
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(
            f"Image folder {str(image_dir)!r} does not exist or is not a folder."
        )
    channels = tuple(str(c).lower() for c in channels)
    if not channels:
        raise ValueError("channels is empty; name at least one channel, e.g. ('green',).")
    table = _class_table(classes)
    found = _index_directory(image_dir, channels)

    Y = None
    if labels_csv is not None:
        label_ids, Y = read_labels(labels_csv, classes=classes)
        if ids is not None:
            position = {sid: i for i, sid in enumerate(label_ids)}
            unknown = [sid for sid in ids if sid not in position]
            if unknown:
                raise ValueError(
                    f"Sample id {unknown[0]!r} is not in the labels file {str(labels_csv)!r}"
                    f" ({len(unknown)} unknown ids in all)."
                )
            rows = [position[sid] for sid in ids]
            label_ids, Y = label_ids[rows], Y[rows]
        sample_ids = [str(s) for s in label_ids]
    elif ids is not None:
        sample_ids = [str(s) for s in ids]
    else:
        sample_ids = sorted({sid for sid, _ in found})
        if not sample_ids:
            raise ValueError(
                f"Image folder {str(image_dir)!r} holds no files named <Id>_<channel>.png "
                f"or .tif for channels {channels}."
            )

    paths = []
    for sid in sample_ids:
        row = []
        for channel in channels:
            name = found.get((sid, channel))
            if name is None:
                raise FileNotFoundError(
                    f"Sample {sid!r} has no {channel!r} channel file: expected "
                    f"{str(image_dir / f'{sid}_{channel}.png')!r} (or .tif/.tiff)."
                )
            row.append(image_dir / name)
        paths.append(row)

    images = HPAImageSequence(paths, sample_ids, channels, n_jobs=n_jobs)
    if not lazy:
        images = images.load()
    if return_X_y:
        return images, Y
    return Bunch(
        images=images,
        labels=Y,
        ids=np.asarray(sample_ids, dtype=object),
        channels=channels,
        class_names=list(table),
    )


# --------------------------------------------------------------------------- validation
def resolve_channels(channels, available):
    """Turn channel names or indices into positions in ``available``.

    Parameters
    ----------
    channels : None, str, int or sequence of str/int
        None selects every channel.
    available : sequence of str
        The channel names of the data, in order.

    Returns
    -------
    positions : list of int
    names : list of str

    Examples
    --------
    >>> resolve_channels(["green", 2], ("red", "green", "blue", "yellow"))
    ([1, 2], ['green', 'blue'])
    """
    available = tuple(available)
    if channels is None:
        return list(range(len(available))), list(available)
    if isinstance(channels, (str, Integral)):
        channels = [channels]
    positions = []
    for channel in channels:
        if isinstance(channel, str):
            if channel.lower() not in available:
                raise ValueError(
                    f"Channel {channel!r} is not present; the data has channels {available}."
                )
            positions.append(available.index(channel.lower()))
        elif isinstance(channel, Integral) and not isinstance(channel, bool):
            if not -len(available) <= channel < len(available):
                raise ValueError(
                    f"Channel index {channel} is out of range for {len(available)} channels "
                    f"{available}."
                )
            positions.append(int(channel) % len(available))
        else:
            raise TypeError(
                f"Channels are given by name or index, got {channel!r} of type "
                f"{type(channel).__name__}."
            )
    if len(set(positions)) != len(positions):
        raise ValueError(f"Channels {list(channels)} name the same channel twice.")
    return positions, [available[p] for p in positions]


def channel_names(X, n_channels=None):
    """Channel names of an image batch: its own, the HPA defaults, or ``ch0..chK``."""
    names = getattr(X, "channels", None)
    if names is not None:
        return tuple(names)
    if n_channels is None:
        n_channels = X.shape[-1]
    if n_channels == len(DEFAULT_CHANNELS):
        return DEFAULT_CHANNELS
    return tuple(f"ch{i}" for i in range(n_channels))


def check_images(X, *, allow_lazy=True, min_size=1, name="X"):
    """Validate an image batch before any model work.

    Parameters
    ----------
    X : array-like of shape (n, rows, cols, channels) or HPAImageSequence
    allow_lazy : bool, default=True
        Accept an :class:`HPAImageSequence` (returned unchanged, not decoded).
    min_size : int, default=1
        Smallest allowed rows and cols.
    name : str, default="X"
        Named in error messages.

    Returns
    -------
    X : ndarray or HPAImageSequence
        Arrays are returned as ndarrays of their own numeric dtype.

    Examples
    --------
    >>> import numpy as np
    >>> check_images(np.zeros((2, 8, 8, 4), np.uint8)).shape
    (2, 8, 8, 4)
    """
    if isinstance(X, HPAImageSequence):
        if not allow_lazy:
            raise TypeError(f"{name} must be an array here, not a lazy HPAImageSequence.")
        if len(X) == 0:
            raise ValueError(f"{name} holds no samples; pass at least one image.")
        return X
    if hasattr(X, "iloc") or isinstance(X, (str, bytes)):
        raise TypeError(
            f"{name} must be an image batch of shape (n, rows, cols, channels), got "
            f"{type(X).__name__}."
        )
    X = np.asarray(X)
    if X.dtype == object or not (
        np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)
    ):
        raise TypeError(
            f"{name} must hold numbers, got dtype {X.dtype}; pass images as uint8, uint16 "
            "or float arrays of equal size (use lazy=True for folders of mixed sizes)."
        )
    if X.ndim != 4:
        hint = (
            " For one image use X[None]; for a single-channel batch use X[..., None]."
            if X.ndim == 3
            else ""
        )
        raise ValueError(
            f"{name} must have shape (n, rows, cols, channels); got ndim={X.ndim} with shape "
            f"{X.shape}.{hint}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} holds no samples (shape {X.shape}); pass at least one image.")
    if X.shape[1] < min_size or X.shape[2] < min_size:
        raise ValueError(
            f"{name} images are {X.shape[1]}x{X.shape[2]} pixels; at least "
            f"{min_size}x{min_size} is needed."
        )
    if X.shape[3] == 0:
        raise ValueError(f"{name} has no channels (shape {X.shape}).")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise ValueError(
            f"{name} contains NaN or Inf values; clean or impute the images before fitting."
        )
    return X


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


# Readers and writers of users' microscopy (bioio, AnnData, OME-Zarr) live in their own
# modules, which build on this one; they are resolved on first access (PEP 562).
_LAZY = {
    "load_images": "protloc._microscopy",
    "microns_to_pixels": "protloc._microscopy",
    "fit_cell_classifier": "protloc._cell_results",
    "pool_cells": "protloc._cell_results",
    "predict_cells": "protloc._cell_results",
    "write_cell_results": "protloc._cell_results",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'protloc.io' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
