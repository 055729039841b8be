"""CellposeSegmenter: nucleus and cell label masks from the real Cellpose package."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from numbers import Integral, Real
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from protloc._cache import hash_file
from protloc._models import FETCH_HINT, download_cellpose_model, error_text, is_offline
from protloc._params import fill_shared_docs, fit_device, runtime_device, shared_constraints
from protloc._sharding import shared_model
from protloc.exceptions import ModelUnavailableError
from protloc.segmentation._base import BaseSegmenter, NoNucleiWarning, number_key
from protloc.segmentation._masks import (
    assign_cells_to_nuclei,
    cytoplasm_signal,
    grow_cells,
    pair_labels,
    remove_border_objects,
)

__all__ = ["CellposeSegmenter", "NoNucleiWarning", "cellpose_version"]

# Built-in names of cellpose 3.1 (cellpose.models.MODEL_NAMES), kept here so that
# fit can check a name without the slow cellpose import.
CELLPOSE3_MODELS = (
    "cyto3", "nuclei", "cyto2_cp3", "tissuenet_cp3", "livecell_cp3", "yeast_PhC_cp3",
    "yeast_BF_cp3", "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3", "cyto2", "cyto",
    "transformer_cp3", "neurips_cellpose_default", "neurips_cellpose_transformer",
    "neurips_grayscale_cyto2", "CP", "CPx", "TN1", "TN2", "TN3", "LC1", "LC2", "LC3", "LC4",
)  # fmt: skip
CELLPOSE4_MODELS = ("cpsam",)

# Bump when the mask post-processing changes, so that old cache entries are not reused.
_ALGORITHM_VERSION = 1
# Smoothing (pixels) of the cytoplasm signal before the watershed threshold.
_WATERSHED_SIGMA = 2.0


def cellpose_version():
    """The installed cellpose version, as ``(version_string, major)``.

    Read from the package metadata, so cellpose (slow to import) is not imported.
    """
    try:
        text = _dist_version("cellpose")
    except PackageNotFoundError:
        raise ImportError(
            "CellposeSegmenter needs the cellpose package: `pip install 'cellpose>=3.1,<4'` "
            "for the 3.x models ('nuclei', 'cyto3', model files), or `pip install "
            "'cellpose>=4'` for 'cpsam'."
        ) from None
    match = re.match(r"(\d+)", text)
    return text, int(match.group(1)) if match else 0


def _resolve_model(model, *, param):
    """Check that the installed cellpose can load ``model``; return ("name"|"path", value)."""
    version, major = cellpose_version()
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_file():
        return "path", str(path.resolve())
    own, other = (
        (CELLPOSE4_MODELS, CELLPOSE3_MODELS) if major >= 4 else (CELLPOSE3_MODELS, CELLPOSE4_MODELS)
    )
    if text in own:
        return "name", text
    if text in other:
        if major >= 4:
            raise ValueError(
                f"{param}={text!r} is a cellpose 3 model, but cellpose {version} is installed; "
                "cellpose 4 loads only 'cpsam' and files trained with cellpose 4. Use "
                f"{param}='cpsam', or install cellpose 3 (`pip install 'cellpose>=3.1,<4'`) "
                f"to use {text!r}."
            )
        raise ValueError(
            f"{param}={text!r} needs cellpose>=4, but cellpose {version} is installed. "
            "Install it with `pip install 'cellpose>=4'`, or use a cellpose 3 model such as "
            "'nuclei' or 'cyto3', or the path of a cellpose 3 model file."
        )
    if isinstance(model, os.PathLike) or os.sep in text or "/" in text or path.suffix:
        raise FileNotFoundError(
            f"{param}={text!r}: no Cellpose model file at {str(path)!r}. Pass an existing "
            f"model file, or a built-in name of cellpose {version}: {', '.join(own[:4])}..."
        )
    raise ValueError(
        f"Unknown Cellpose model {param}={text!r}. Built-in models of the installed cellpose "
        f"{version} are {list(own)}; or pass the path of a model file."
    )


def _model_identity(spec):
    kind, value = spec
    return f"file:{hash_file(value)}" if kind == "path" else f"name:{value}"


@contextlib.contextmanager
def _quiet_cellpose():
    # Cellpose 3 on CPU triggers torch-internal notices that users cannot act on.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*torch.jit.script_method.*", category=FutureWarning
        )
        warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
        yield


def _build_model(spec, device):
    version, major = cellpose_version()
    kind, value = spec
    if kind == "name" and (major < 4 or is_offline()):
        # Download through protloc (PROTLOC_OFFLINE, one error type), so that cellpose
        # finds the file and never downloads itself; cellpose 4 downloads its own.
        download_cellpose_model(value)
    from cellpose import models

    gpu = device.type != "cpu"
    try:
        with _quiet_cellpose():
            if major < 4 and kind == "name":
                return models.CellposeModel(gpu=gpu, device=device, model_type=value)
            return models.CellposeModel(gpu=gpu, device=device, pretrained_model=value)
    except OSError as exc:
        if kind != "name":
            raise
        if callable(getattr(exc, "close", None)):
            # An HTTPError holds the open response; cellpose leaves it to the GC.
            exc.close()
        raise ModelUnavailableError(
            f"Cellpose could not download its {value!r} model ({error_text(exc)}); it keeps "
            f"named models in {str(models.MODEL_DIR)!r} (set CELLPOSE_LOCAL_MODELS_PATH to "
            f"use another folder). Without internet access, {FETCH_HINT}; or pass the path "
            "of a local model file as model=..."
        ) from exc
    except Exception as exc:  # torch's unpickler raises almost any type for a bad file
        if kind != "path":
            raise
        # torch's UnpicklingError text advises weights_only=False, unsafe on a file of
        # unknown origin: error_text leaves it out, and so does the chained cause.
        unpickling = isinstance(exc, pickle.UnpicklingError)
        raise ValueError(
            f"Cannot load the Cellpose model file {value!r} with cellpose {version} "
            f"({error_text(exc)}). Either it is not a Cellpose model (corrupt, truncated, or "
            "another kind of file): re-download or re-export it, or pass another model. Or it "
            "was trained with another cellpose: files trained with cellpose 3 load only in "
            "cellpose 3.x, and 'cpsam'-based files only in cellpose 4.x; install the "
            "matching version."
        ) from (None if unpickling else exc)


@fill_shared_docs
class CellposeSegmenter(BaseSegmenter):
    """Segment nuclei and cells with Cellpose; every cell holds exactly one nucleus.

    Nuclei come from a Cellpose model run on the nucleus channel. Cells are then
    grown from them, either by a nucleus-seeded watershed on the cytoplasm channels
    (``cell_method="watershed"``) or by a cytoplasm model run on (cytoplasm,
    nucleus) whose cells are matched to the nuclei (``cell_method="cellpose"``).
    Either way, cell ``k`` contains nucleus ``k`` and labels run ``1 .. k`` per image.
    Images with no nucleus get empty masks and a :class:`NoNucleiWarning`; an image
    whose nucleus channel is flat is not even sent to Cellpose.

    The installed cellpose decides which models load: cellpose 3.x takes built-in
    names (``"nuclei"``, ``"cyto3"``, ...) and cellpose 3 model files, cellpose 4.x
    takes ``"cpsam"`` and cellpose 4 files; anything else fails with a clear error.
    Models are built on first use, never pickled, and fed ``batch_size`` images per
    ``eval`` call.

    Parameters
    ----------
    model : str or path-like, default="nuclei"
        Nucleus model: a built-in name of the installed cellpose, or a model file.
    cell_model : str, path-like or None, default=None
        Cytoplasm model for ``cell_method="cellpose"``; None means ``"cyto3"`` with
        cellpose 3 and ``"cpsam"`` with cellpose 4. Ignored by the watershed.
    nucleus_channel : str or int, default="blue"
        The nucleus (DAPI) channel, by name or position.
    cyto_channels : str, int or sequence of them, default=("red", "yellow")
        Channels that outline the cytoplasm (HPA: microtubules and ER). Each is
        normalized to its 1st-99.5th percentiles, then they are averaged.
    diameter : float or None, default=None
        Typical nucleus diameter in pixels; Cellpose rescales images so that it
        matches the model's own (30 px for most models). None keeps the model's
        default scale. Nuclei in 512-px HPA images are about 50 to 80 px across, so
        ``diameter=60`` suits them; a good value matters far more than any other.
    cell_diameter : float or None, default=None
        Typical cell diameter for ``cell_method="cellpose"``; None keeps the
        model's default scale.
    flow_threshold : float, default=0.4
        Cellpose's maximum flow error of a kept mask.
    cellprob_threshold : float, default=0.0
        Cellpose's cell-probability threshold; lower finds more and larger masks.
    %(batch_size)s
        Here: images decoded and passed to Cellpose per ``eval`` call (also
        Cellpose's number of tiles run through the network at once).
    %(device)s
    cell_method : {"watershed", "cellpose"}, default="watershed"
        How cells are grown from the nuclei (see above).
    remove_border_cells : bool, default=False
        Drop cells (and their nuclei) that touch the image border.
    %(cache)s
        Here: sub-folder ``segmentation``, keyed by the nucleus and cytoplasm pixels,
        the model (its file's bytes for a path), the parameters and the cellpose
        version.
    %(progress)s
    %(shard_size)s
    %(n_jobs)s
        Here: workers over shards of images; under
        ``joblib.parallel_config(backend="dask")`` each Dask worker builds the model
        once and keeps it for every shard it gets.

    Attributes
    ----------
    channels_ : tuple of str
        Channel names of the images seen in ``fit``; ``transform`` needs the same.
    nucleus_channel_ : int
        Position of the nucleus channel.
    cyto_channels_ : tuple of int
        Positions of the cytoplasm channels.
    cellpose_version_ : str
        The installed cellpose version.
    device_ : str
        The resolved device, e.g. ``"cpu"`` or ``"cuda"``.

    See Also
    --------
    protloc.regions.RegionCropper : nucleus, nuclear-membrane and cell crops from the masks.
    protloc.segmentation.SegmentedImages : the output container.

    Examples
    --------
    Blank images have no nucleus: they get empty masks (and a warning) without
    Cellpose being asked.

    >>> import warnings
    >>> import numpy as np
    >>> from protloc.segmentation import CellposeSegmenter
    >>> seg = CellposeSegmenter("nuclei", diameter=60, progress=False)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     out = seg.fit_transform(np.zeros((2, 32, 32, 4), np.uint8))
    >>> out.nuclei.shape, out.n_objects.tolist(), caught[-1].category.__name__
    ((2, 32, 32), [0, 0], 'NoNucleiWarning')

    On real HPA images (the 'nuclei' model is downloaded on first use):

    >>> from protloc.io import load_hpa
    >>> images = load_hpa("hpa/train", lazy=True).images  # doctest: +SKIP
    >>> seg = CellposeSegmenter("nuclei", diameter=60, cache="~/.cache/protloc")  # doctest: +SKIP
    >>> segmented = seg.fit_transform(images)  # doctest: +SKIP
    """

    _parameter_constraints: ClassVar[dict] = {
        "model": [str, os.PathLike],
        "cell_model": [str, os.PathLike, None],
        "nucleus_channel": [str, Interval(Integral, None, None, closed="neither")],
        "cyto_channels": [str, Integral, list, tuple],
        "diameter": [Interval(Real, 0, None, closed="neither"), None],
        "cell_diameter": [Interval(Real, 0, None, closed="neither"), None],
        "flow_threshold": [Interval(Real, 0, None, closed="left")],
        "cellprob_threshold": [Interval(Real, None, None, closed="neither")],
        "cell_method": [StrOptions({"watershed", "cellpose"})],
        "remove_border_cells": ["boolean"],
        **shared_constraints("batch_size", "device", "cache", "progress", "shard_size", "n_jobs"),
    }

    def __init__(
        self,
        model="nuclei",
        *,
        cell_model=None,
        nucleus_channel="blue",
        cyto_channels=("red", "yellow"),
        diameter=None,
        cell_diameter=None,
        flow_threshold=0.4,
        cellprob_threshold=0.0,
        batch_size=8,
        device="auto",
        cell_method="watershed",
        remove_border_cells=False,
        cache=None,
        progress=True,
        shard_size=None,
        n_jobs=None,
    ):
        self.model = model
        self.cell_model = cell_model
        self.nucleus_channel = nucleus_channel
        self.cyto_channels = cyto_channels
        self.diameter = diameter
        self.cell_diameter = cell_diameter
        self.flow_threshold = flow_threshold
        self.cellprob_threshold = cellprob_threshold
        self.batch_size = batch_size
        self.device = device
        self.cell_method = cell_method
        self.remove_border_cells = remove_border_cells
        self.cache = cache
        self.progress = progress
        self.shard_size = shard_size
        self.n_jobs = n_jobs

    # ----------------------------------------------------------------- sklearn API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the images' channels, the model and the device; no model is loaded.

        Parameters
        ----------
        X : ndarray of shape (n_images, rows, cols, n_channels) or HPAImageSequence
            Pixels as in the one pixel-scale contract (user guide, "Pixel scale"):
            uint8, uint16 or floats in [0, 1]; other dtypes are refused.
        y : ignored

        Returns
        -------
        self : CellposeSegmenter
        """
        self._fit_channels(X)
        self._model_specs()
        self.device_ = fit_device(self.device)
        self.cellpose_version_ = cellpose_version()[0]
        return self

    def transform(self, X):
        """Segment every image.

        Parameters
        ----------
        X : ndarray of shape (n_images, rows, cols, n_channels) or HPAImageSequence

        Returns
        -------
        segmented : SegmentedImages
            ``X`` itself (not copied) with the nucleus and cell masks.
        """
        check_is_fitted(self)
        # Checked before any image is read: a missing model file fails at once.
        self._model_specs()
        return self._segment_images(X)

    # ----------------------------------------------------------------- internals
    def _model_specs(self):
        """Check the models against the installed cellpose: {param: (kind, value)}."""
        specs = {"model": _resolve_model(self.model, param="model")}
        if self.cell_method == "cellpose":
            cell_model = self.cell_model
            if cell_model is None:
                cell_model = "cpsam" if cellpose_version()[1] >= 4 else "cyto3"
            specs["cell_model"] = _resolve_model(cell_model, param="cell_model")
        return specs

    def _cache_params(self):
        specs = self._model_specs()
        params = {
            "algorithm": _ALGORITHM_VERSION,
            "cellpose": self.cellpose_version_,
            "model": _model_identity(specs["model"]),
            "diameter": number_key(self.diameter),
            "flow_threshold": number_key(self.flow_threshold),
            "cellprob_threshold": number_key(self.cellprob_threshold),
            "cell_method": self.cell_method,
            "remove_border_cells": self.remove_border_cells,
        }
        if self.cell_method == "cellpose":
            params["cell_model"] = _model_identity(specs["cell_model"])
            params["cell_diameter"] = number_key(self.cell_diameter)
        return params

    def _get_model(self, spec):
        # One model per process, reused by every shard a worker gets.
        device = runtime_device(self)
        return shared_model(("cellpose", spec, str(device)), lambda: _build_model(spec, device))

    def _eval(self, spec, images, diameter, *, two_channel):
        model = self._get_model(spec)
        major = cellpose_version()[1]
        kwargs = {
            "batch_size": self.batch_size,
            "diameter": diameter,
            "flow_threshold": self.flow_threshold,
            "cellprob_threshold": self.cellprob_threshold,
        }
        if two_channel:
            kwargs["channel_axis"] = -1
            if major >= 4:
                # cellpose 4 reads three channels and no longer takes `channels`.
                images = [
                    np.concatenate([im, np.zeros_like(im[..., :1])], axis=-1) for im in images
                ]
            else:
                kwargs["channels"] = [1, 2]
        elif major < 4:
            kwargs["channels"] = [0, 0]
        with _quiet_cellpose():
            masks = model.eval(list(images), **kwargs)[0]
        return [np.asarray(m, dtype=np.int32) for m in masks]

    def _segment(self, planes):
        """Yield the masks of each (rows, cols, 1 + n_cyto) plane stack (nucleus first).

        Images go through Cellpose one at a time (as its own ``eval`` of a list
        does), so that each is yielded, and cached, as soon as it is done.
        """
        specs = self._model_specs()
        for plane in planes:
            if plane[..., 0].min() == plane[..., 0].max():
                # A flat nucleus channel holds no nucleus; Cellpose is not asked.
                blank = np.zeros(plane.shape[:2], np.int32)
                yield blank, blank.copy()
                continue
            (nuc,) = self._eval(specs["model"], [plane[..., 0]], self.diameter, two_channel=False)
            if self.cell_method == "cellpose":
                stack = np.stack(
                    [cytoplasm_signal(plane[..., 1:]), plane[..., 0].astype(np.float32)], axis=-1
                )
                (raw,) = self._eval(
                    specs["cell_model"], [stack], self.cell_diameter, two_channel=True
                )
                cel = assign_cells_to_nuclei(nuc, raw)
            else:
                cel = grow_cells(nuc, plane[..., 1:], sigma=_WATERSHED_SIGMA)
            if self.remove_border_cells:
                nuc, cel = remove_border_objects(nuc, cel)
            yield pair_labels(nuc, cel)
