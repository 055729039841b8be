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
from protloc._validation import channel_names, check_channels_match, check_images, resolve_channels

__all__ = ["BaseSegmenter", "NoNucleiWarning"]


class NoNucleiWarning(UserWarning):
    """Some images have no nucleus; their masks are empty and they yield no cells."""


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

    Subclasses store ``nucleus_channel``, ``cyto_channels``, ``batch_size``, ``cache``
    and ``progress``, and implement ``_segment(planes)`` and ``_cache_params()``.
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
        cache = params = None
        if self.cache is not None:
            cache = DiskCache(cache_folder(self.cache), "segmentation")
            params = self._cache_params()
        n_images = len(X)
        nuclei, cells = [None] * n_images, [None] * n_images
        planes_at = [self.nucleus_channel_, *self.cyto_channels_]

        from tqdm.auto import tqdm

        bar = tqdm(total=n_images, disable=not self.progress, desc="Segmenting", unit="image")
        with bar:
            for start in range(0, n_images, self.batch_size):
                batch = range(start, min(start + self.batch_size, n_images))
                planes = [np.ascontiguousarray(im[..., planes_at]) for im in load_batch(X, batch)]
                for i, (nuc, cel) in zip(batch, self._cached_segment(planes, cache, params)):
                    nuclei[i], cells[i] = nuc, cel
                bar.update(len(batch))

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
        """Masks of a batch, from the cache where possible."""
        if cache is None:
            return self._segment(planes)
        keys = [cache.key(hash_array(p), params) for p in planes]
        results = [None] * len(planes)
        for j, key in enumerate(keys):
            hit = cache.get(key)
            if hit is not None and {"nuclei", "cells"} <= set(hit):
                results[j] = (hit["nuclei"].astype(np.int32), hit["cells"].astype(np.int32))
        todo = [j for j, result in enumerate(results) if result is None]
        if todo:
            for j, result in zip(todo, self._segment([planes[j] for j in todo])):
                results[j] = result
                # Written at once, so an interrupted run keeps the images already done.
                cache.set(keys[j], {"nuclei": compact(result[0]), "cells": compact(result[1])})
        return results

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags
