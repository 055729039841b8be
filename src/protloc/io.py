"""Reading HPA images and labels, eagerly or lazily, and the class-name tables.

The Kaggle layout stores one greyscale file per channel, ``<Id>_<channel>.png``
(or ``.tif``/``.tiff``), 8-bit or 16-bit. :func:`load_hpa` reads it into a
``(n, rows, cols, channels)`` array, or into an :class:`HPAImageSequence` that
holds only paths and decodes samples in batches when a later step asks for them.
"""

from __future__ import annotations

import csv
import os
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils import Bunch

# Re-exported: the containers and the input checks have their own modules, and
# ``protloc.io.HPAImageSequence`` stays the public path of the lazy sequence.
from protloc._containers import DEFAULT_CHANNELS, HPAImageSequence
from protloc._lazy import lazy_exports
from protloc._validation import check_images, resolve_channels

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
                f"uses the {n_classes}-class table. (HPA 2021 single-cell labels have 19 "
                "classes: read them in Python with classes='hpa2021'.)"
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
    try:
        table = tuple(classes)
    except TypeError:
        raise TypeError(
            f"classes must be 'hpa2018', 'hpa2021' or a sequence of class names; got "
            f"{classes!r} of type {type(classes).__name__}."
        ) from None
    if not table:
        raise ValueError("classes is empty; pass 'hpa2018', 'hpa2021' or the class names.")
    return table


def _read_label_rows(path, n_classes, allow_empty):
    """Ids and class-index lists of a labels CSV; ``utf-8-sig`` accepts Excel's BOM."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise ValueError(
                f"CSV file {str(path)!r} is empty; it needs an 'Id,Target' header and "
                "one row per sample."
            )
        fields = {name.strip().lower(): name for name in reader.fieldnames}
        id_col = fields.get("id")
        target_col = fields.get("target") or fields.get("label") or fields.get("predicted")
        if id_col is None or target_col is None:
            header = ",".join(reader.fieldnames)
            # Excel in many locales saves "CSV" with semicolons; tab-separated files too
            other = next((sep for sep in ";\t" if sep in header), None)
            hint = f" It seems separated by {other!r}; save it with commas." if other else ""
            raise ValueError(
                f"CSV file {str(path)!r} has columns {reader.fieldnames}; it needs an "
                "'Id' column and a 'Target' (or 'Label', or 'Predicted') column, as in the Kaggle "
                "HPA CSVs." + hint
            )
        ids, rows = [], []
        for row in reader:
            if row[id_col] is None or row[target_col] is None:
                raise ValueError(
                    f"Line {reader.line_num} of CSV file {str(path)!r} has fewer fields "
                    f"than its header {reader.fieldnames}; give every row an Id and a "
                    f"{target_col}."
                )
            sample_id = row[id_col].strip()
            ids.append(sample_id)
            rows.append(
                parse_targets(
                    row[target_col], n_classes, sample_id=sample_id, allow_empty=allow_empty
                )
            )
    return ids, rows


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

    Raises
    ------
    FileNotFoundError
        ``labels_csv`` does not exist.
    ValueError
        It is a folder, not a UTF-8 text CSV (a byte-order mark, as Excel writes,
        is fine), lacks the columns, or holds a bad label.
    TypeError
        ``classes`` is neither a table name nor a sequence of class names.

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
    if path.is_dir():
        raise ValueError(
            f"CSV file {str(path)!r} is a folder; pass the CSV file inside it, e.g. "
            f"{str(path / 'train.csv')!r}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {str(path)!r} does not exist.")
    try:
        ids, rows = _read_label_rows(path, len(table), allow_empty)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"CSV file {str(path)!r} is not a UTF-8 text CSV (byte {exc.start} cannot be "
            "decoded); is it an image or a spreadsheet? Save the labels as CSV (UTF-8)."
        ) from None
    except csv.Error as exc:
        raise ValueError(
            f"CSV file {str(path)!r} is not a readable CSV ({exc}); save the labels as CSV (UTF-8)."
        ) from None
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for sample_id in ids:
            if sample_id in seen:
                dup = sample_id
                break
            seen.add(sample_id)
        raise ValueError(f"CSV file {str(path)!r} lists sample {dup!r} more than once.")
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


def _as_names(value, name, *, kind, require_str=True):
    """A sequence argument as a tuple; a bare string is one name, as the estimators take it."""
    if isinstance(value, str):
        return (value,)
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of {kind}, or one as a string; got {value!r} of type "
            f"{type(value).__name__}."
        ) from None
    if require_str:
        for item in values:
            if not isinstance(item, str):
                raise TypeError(
                    f"{name} must be {kind} (str); got {item!r} of type {type(item).__name__}."
                )
    return values


def _check_n_jobs(n_jobs):
    """Decoding threads: a positive int, -1 for every core, or None for one thread."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral):
        raise TypeError(
            f"n_jobs must be an int (threads), -1 (every core) or None (one thread); got "
            f"{n_jobs!r} of type {type(n_jobs).__name__}."
        )
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(
            f"n_jobs={n_jobs} means no thread; pass a positive number of threads, -1 for "
            "every core, or None for one thread."
        )
    return int(n_jobs)


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
    channels : str or sequence of str, default=("red", "green", "blue", "yellow")
        Channels to read, in the order of the last image axis; one name alone reads
        that channel.
    ids : str or sequence of str, optional
        Restrict to these samples, in this order (one id alone loads that sample).
        Without labels and ids, every sample found in ``image_dir`` is loaded, sorted
        by id.
    lazy : bool, default=False
        Return an :class:`HPAImageSequence` of paths instead of decoded pixels.
    classes : {"hpa2018", "hpa2021"} or sequence of str, default="hpa2018"
        The class table for the labels.
    return_X_y : bool, default=False
        Return ``(images, labels)`` instead of a Bunch.
    n_jobs : int or None, default=4
        Threads for decoding; -1 uses every core, None one thread.

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
    TypeError
        An argument has the wrong type (``channels=5``, ``n_jobs="4"``, ``classes=1``).

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
    channels = tuple(c.lower() for c in _as_names(channels, "channels", kind="channel names"))
    if not channels:
        raise ValueError("channels is empty; name at least one channel, e.g. ('green',).")
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels {channels} names a channel twice; name each once.")
    if ids is not None:
        ids = [str(s) for s in _as_names(ids, "ids", kind="sample ids", require_str=False)]
        if not ids:
            raise ValueError("ids is empty; pass the sample ids to load, or None for all.")
    n_jobs = _check_n_jobs(n_jobs)
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


# Readers and writers of users' microscopy (bioio, AnnData, OME-Zarr) live in their own
# modules, which build on this one; they are resolved on first access (PEP 562).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_images": "protloc._microscopy",
        "microns_to_pixels": "protloc._microscopy",
        "fit_cell_classifier": "protloc._cell_results",
        "pool_cells": "protloc._cell_results",
        "predict_cells": "protloc._cell_results",
        "write_cell_results": "protloc._cell_results",
    },
)
