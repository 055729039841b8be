"""What every segmenter shares: channel checks, the batch loop, the mask cache, the warning.

A segmenter subclasses :class:`BaseSegmenter` and supplies ``_segment(planes)`` (masks
for a list of ``(rows, cols, 1 + n_cyto)`` planes, nucleus first) and its cache
parameters; fitting, the image loop, the cache and the output container live here once.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from protloc._cache import DiskCache, hash_array
from protloc._containers import (
    ContainerOutputMixin,
    HPAImageSequence,
    SegmentedImages,
    load_batch,
)
from protloc._params import cache_folder
from protloc._sharding import map_shards, shard_bounds
from protloc._validation import channel_names, check_channels_match, check_images, resolve_channels

__all__ = ["BaseSegmenter", "NoNucleiWarning"]


class NoNucleiWarning(UserWarning):
    """Some images have no nucleus; their masks are empty and they yield no cells."""


def number_key(value):
    """A numeric parameter as it enters a cache key: ``60`` and ``60.0`` are one entry.

    Examples
    --------
    >>> number_key(60), number_key(60.0), number_key(None)
    (60.0, 60.0, None)
    """
    return None if value is None else float(value)


def compact(mask):
    """A label mask as uint16 when it fits (half the cache size), else unchanged."""
    return mask.astype(np.uint16) if mask.max(initial=0) < 2**16 else mask


def check_dense(X, owner):
    """Validate an image batch; a sparse matrix gets a TypeError naming ``owner``."""
    from scipy import sparse

    if sparse.issparse(X):
        raise TypeError(
            f"X is a sparse matrix; {owner} takes dense image batches of shape "
            "(n_images, rows, cols, channels) or an HPAImageSequence."
        )
    return check_images(X)


class BaseSegmenter(ContainerOutputMixin, TransformerMixin, BaseEstimator):
    """Base of the segmenters: nucleus and cytoplasm channels in, SegmentedImages out.

    Subclasses store ``nucleus_channel``, ``cyto_channels``, ``batch_size``, ``cache``,
    ``progress``, ``shard_size`` and ``n_jobs``, and implement ``_segment(planes)``
    (an iterable of ``(nuclei, cells)`` masks, one per plane stack, in order) and
    ``_cache_params()``. The images are cut into shards that run through joblib
    (:mod:`protloc._sharding`), locally or on a Dask cluster.
    """

    def _fit_channels(self, X):
        """Check the channels of ``X`` and set the channel attributes; return ``X``."""
        X = check_dense(X, type(self).__name__)
        names = channel_names(X)
        (nucleus,), _ = resolve_channels(self.nucleus_channel, names)
        cyto, _ = resolve_channels(self.cyto_channels, names)
        if not cyto:
            raise ValueError("cyto_channels is empty; name at least one cytoplasm channel.")
        if nucleus in cyto:
            raise ValueError(
                f"Channel {names[nucleus]!r} is both the nucleus channel and a cytoplasm "
                "channel; pick different channels for cyto_channels."
            )
        self.channels_ = tuple(names)
        self.nucleus_channel_ = int(nucleus)
        self.cyto_channels_ = tuple(int(c) for c in cyto)
        return X

    def _segment_images(self, X):
        """The shared body of ``transform``: every image through ``_segment``, cached."""
        check_is_fitted(self)
        X = check_dense(X, type(self).__name__)
        names = tuple(channel_names(X))
        check_channels_match(names, self.channels_, estimator=type(self).__name__)
        params = None if self.cache is None else self._cache_params()
        n_images = len(X)
        nuclei, cells = [], []

        from tqdm.auto import tqdm

        bounds = shard_bounds(n_images, self.shard_size, self.n_jobs)
        # A slice of an HPAImageSequence holds paths only: workers read the pixels.
        tasks = [(self, X[a:b], params) for a, b in bounds]
        bar = tqdm(total=n_images, disable=not self.progress, desc="Segmenting", unit="image")
        with bar:
            for masks in map_shards(_segment_shard, tasks, self.n_jobs):
                for nuc, cel in masks:
                    nuclei.append(nuc)
                    cells.append(cel)
                bar.update(len(masks))

        ids = X.ids if isinstance(X, HPAImageSequence) else None
        empty = [i for i in range(n_images) if nuclei[i].max(initial=0) == 0]
        if empty:
            shown = [str(ids[i]) if ids is not None else str(i) for i in empty[:5]]
            more = ", ..." if len(empty) > 5 else ""
            warnings.warn(
                f"{len(empty)} of {n_images} images have no nucleus ({', '.join(shown)}{more}); "
                "their masks are empty and they yield no cells. Check the nucleus channel, "
                "the diameter and the images.",
                NoNucleiWarning,
                stacklevel=3,
            )
        if len({m.shape for m in nuclei}) == 1:
            nuclei, cells = np.stack(nuclei), np.stack(cells)
        return SegmentedImages(images=X, nuclei=nuclei, cells=cells, channels=names, ids=ids)

    def _cached_segment(self, planes, cache, params):
        """Yield the masks of each image of a batch, from the cache where possible."""
        if cache is None:
            yield from self._segment(planes)
            return
        keys = [cache.key(hash_array(p), params) for p in planes]
        results = [None] * len(planes)
        for j, key in enumerate(keys):
            hit = cache.get(key)
            # An entry must fit its image; a foreign or stale one is recomputed.
            if (
                hit is not None
                and {"nuclei", "cells"} <= set(hit)
                and hit["nuclei"].shape == hit["cells"].shape == planes[j].shape[:2]
            ):
                results[j] = (hit["nuclei"].astype(np.int32), hit["cells"].astype(np.int32))
        computed = iter(self._segment([p for p, r in zip(planes, results) if r is None]))
        for j in range(len(planes)):
            if results[j] is None:
                results[j] = next(computed)
                # Stored as soon as the image is done, so an interrupted run keeps it.
                cache.set(
                    keys[j], {"nuclei": compact(results[j][0]), "cells": compact(results[j][1])}
                )
            yield results[j]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags


def _segment_shard(segmenter, images, params):
    """Masks of a shard of images (a joblib task: runs in a worker or here)."""
    cache = None if params is None else DiskCache(cache_folder(segmenter.cache), "segmentation")
    planes_at = [segmenter.nucleus_channel_, *segmenter.cyto_channels_]
    masks = []
    for start in range(0, len(images), segmenter.batch_size):
        batch = range(start, min(start + segmenter.batch_size, len(images)))
        planes = [np.ascontiguousarray(im[..., planes_at]) for im in load_batch(images, batch)]
        masks.extend(segmenter._cached_segment(planes, cache, params))
    return masks
