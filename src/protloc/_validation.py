"""Input checks shared by every estimator that takes images, written once.

- :func:`check_images`: the shape, dtype and values of an image batch, and the
  pixel-scale contract below;
- :func:`resolve_channels`, :func:`channel_names`, :func:`check_channels_match`: which
  channels a batch has and which ones a step uses;
- :func:`to_unit_float`: pixels to float32 in [0, 1];
- :func:`check_label_matrix`, :func:`check_target`, :func:`check_n_samples`: labels
  (0/1 indicator matrices or 1-D classes) for every classifier.

**Pixel-scale contract** (one rule for the segmenter, the feature extractor and the
networks): ``uint8`` pixels are divided by 255 and ``uint16`` pixels by 65535; float
pixels are taken as already in [0, 1] and refused when plainly outside it (minimum
below -0.5 or maximum above 1.5: 0..255 or 0..65535 floats); other dtypes (bool,
signed integers, ``uint32``, ``uint64``) are refused with a TypeError that names the
conversion to make (``X.astype(np.uint8)`` for 8-bit data, ``np.uint16`` for 16-bit
data), because their bit depth cannot be known. So the same pixels give the same
features and predictions whatever dtype they arrive in.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.utils import check_array

from protloc._containers import DEFAULT_CHANNELS, HPAImageSequence

__all__ = [
    "channel_names",
    "check_channels_match",
    "check_images",
    "check_label_matrix",
    "check_n_samples",
    "check_pixel_dtype",
    "check_pixel_range",
    "check_target",
    "resolve_channels",
    "to_unit_float",
]

#: Divisor that brings each accepted integer dtype to [0, 1].
PIXEL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# Floats beyond these are 0..255 or 0..65535 data, not [0, 1] data with some noise.
_FLOAT_LOW, _FLOAT_HIGH = -0.5, 1.5


def check_pixel_dtype(dtype, *, name="X"):
    """Refuse pixel dtypes outside the contract (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> check_pixel_dtype(np.dtype(np.uint16))
    >>> check_pixel_dtype(np.dtype(np.int64))
    Traceback (most recent call last):
    ...
    TypeError: X has pixels of dtype int64, ...
    """
    dtype = np.dtype(dtype)
    if dtype in PIXEL_SCALE or dtype.kind == "f":
        return
    raise TypeError(
        f"{name} has pixels of dtype {dtype}, whose bit depth is unknown; protloc takes "
        "uint8 (0..255), uint16 (0..65535) or float in [0, 1]. Convert explicitly, e.g. "
        "X.astype(np.uint8) for 8-bit data or X.astype(np.uint16) for 16-bit data."
    )


def check_pixel_range(X, *, name="X"):
    """Refuse float pixels plainly outside [0, 1] (and NaN or Inf).

    Examples
    --------
    >>> import numpy as np
    >>> check_pixel_range(np.full((1, 2, 2, 1), 200.0))
    Traceback (most recent call last):
    ...
    ValueError: X holds float pixels from 200 to 200, ...
    """
    if X.dtype.kind != "f" or X.size == 0:
        return
    low, high = float(np.min(X)), float(np.max(X))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            f"{name} contains NaN or Inf values; clean or impute the images before fitting."
        )
    if low < _FLOAT_LOW or high > _FLOAT_HIGH:
        raise ValueError(
            f"{name} holds float pixels from {low:g} to {high:g}, but float pixels must be "
            "in [0, 1]. Divide by 255 (8-bit data) or 65535 (16-bit data), or pass the "
            "integer array itself (uint8 or uint16)."
        )


def to_unit_float(X):
    """Pixels as float32 in [0, 1], by the contract (the dtype must have passed it).

    Examples
    --------
    >>> import numpy as np
    >>> to_unit_float(np.array([0, 255], np.uint8)).tolist()
    [0.0, 1.0]
    """
    scale = PIXEL_SCALE.get(X.dtype)
    if scale is None:
        return X.astype(np.float32, copy=False)
    # A division, not a multiplication by 1/scale: it is exact to the last bit for
    # every uint8 and uint16 value, so results do not move with the dtype path.
    return X.astype(np.float32) / np.float32(scale)


def check_channels_match(available, fitted, *, estimator):
    """Refuse data whose channels differ from those seen in ``fit``.

    Examples
    --------
    >>> check_channels_match(("a", "b"), ("a", "b", "c"), estimator="Step")
    Traceback (most recent call last):
    ...
    ValueError: X has channels ('a', 'b') but Step was fitted on ('a', 'b', 'c'); ...
    """
    if tuple(available) != tuple(fitted):
        raise ValueError(
            f"X has channels {tuple(available)} but {estimator} was fitted on "
            f"{tuple(fitted)}; pass images with the same channels in the same order."
        )


def _check_same_size(X, name):
    """A plain list of images of mixed sizes cannot become one array: say what to do."""
    shapes = {np.shape(image) for image in X}
    if len(shapes) > 1:
        shown = sorted(shapes, key=str)[:3]
        raise ValueError(
            f"{name} is a list of images of different sizes (e.g. {shown}); a plain list "
            "or array must hold images of one size. Resize them, or load them with "
            "protloc.load_hpa(folder, lazy=True) (an HPAImageSequence), which steps "
            "decode and resize one sample at a time."
        )


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
    if isinstance(X, (list, tuple)):
        _check_same_size(X, name)
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported; pass real-valued images as {name}.")
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
    check_pixel_dtype(X.dtype, name=name)
    check_pixel_range(X, name=name)
    return X


# --------------------------------------------------------------------------- labels
def check_label_matrix(Y, *, estimator_name):
    """Return ``Y`` as a dense ``uint8`` 0/1 matrix of shape (n_samples, n_labels).

    Raises a ``ValueError`` naming the problem and the fix when ``Y`` is 1-D, has no
    label column, or holds values other than 0 and 1. A sparse ``Y`` (as
    scikit-multilearn users pass it) is made dense.
    """
    Y = _as_array(Y, estimator_name)
    if Y.ndim != 2:
        raise ValueError(
            f"{estimator_name} needs a 2-D label indicator matrix Y of shape "
            f"(n_samples, n_labels); got an array of shape {Y.shape}. For a single-label "
            "multi-class target use LabelPowersetSVM or the base estimator directly; for "
            "one binary label pass y.reshape(-1, 1)."
        )
    return _as_indicator(Y, estimator_name=estimator_name)


def _as_array(y, estimator_name):
    if y is None:
        raise ValueError(f"{estimator_name} requires y to be passed, but the target y is None.")
    if sparse.issparse(y):
        y = y.toarray()
    y = check_array(y, ensure_2d=False, dtype=None, ensure_min_features=0, input_name="y")
    if y.dtype == object and y.ndim == 2:
        try:
            # 0/1 labels that arrive as Python objects, as from a pandas object column
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise ValueError(
            f"Unknown label type: {estimator_name} got continuous target values; it is a "
            "classifier and needs class labels (or a 0/1 label matrix)."
        )
    return y


def _as_indicator(Y, *, estimator_name):
    if Y.shape[1] == 0:
        raise ValueError(
            f"{estimator_name} needs at least one label column in Y; got shape {Y.shape}."
        )
    if Y.dtype == bool:
        return Y.astype(np.uint8)
    if Y.dtype.kind not in "biuf" or not np.isin(Y, (0, 1)).all():
        found = np.unique(Y)[:5] if Y.dtype.kind in "biuf" else f"dtype {Y.dtype}"
        raise ValueError(
            f"Unknown label type: {estimator_name} needs a 0/1 label indicator matrix Y (1 = the sample has "
            f"the label); found values {found}. Binarise Y, for instance with "
            "sklearn.preprocessing.MultiLabelBinarizer; for a single-label multi-class "
            "target pass a 1-D y to an estimator that accepts one (LabelPowersetSVM)."
        )
    return Y.astype(np.uint8)


def check_target(y, *, estimator_name):
    """Return ``(y, is_multilabel)``: a 1-D multi-class ``y`` as given, a 2-D ``y`` as 0/1.

    A 2-D ``y`` must be a 0/1 indicator matrix, even with a single column: a column of
    class labels is rejected rather than silently raveled, so a multi-label and a
    multi-class problem are never mistaken for each other.
    """
    y = _as_array(y, estimator_name)
    if y.ndim == 1:
        return y, False
    if y.ndim != 2:
        raise ValueError(
            f"{estimator_name} needs a 1-D multi-class y or a 2-D 0/1 label matrix Y; "
            f"got an array of shape {y.shape}."
        )
    return _as_indicator(y, estimator_name=estimator_name), True


def check_n_samples(X, y):
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and Y have different numbers of samples: {X.shape[0]} and {y.shape[0]}."
        )
