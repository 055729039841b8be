"""Which columns form each feature block: the ``blocks`` parameter of the selector.

A block is given as a :class:`~protloc.features.FeatureBlock` (or any record with a
``name`` and a ``slice``), a column slice, an index array or a boolean mask, as one
group label per column, as a block width, or, with ``blocks="auto"``, by the column
names ``<block>__<k>`` that :class:`~protloc.features.CNNFeatureExtractor` writes (the
format is defined once, in :mod:`protloc.features._blocks`; a ``FeatureUnion`` prefixes
``<step>__``, so the block ``image__<backbone>__<channel>__<region>`` keeps its level).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral

import numpy as np

from protloc.features._blocks import block_of_column

__all__ = ["resolve_blocks"]

_HOW_TO_GIVE_BLOCKS = (
    "Pass X as a pandas DataFrame whose columns are named '<block>__<k>' (what "
    "CNNFeatureExtractor and a FeatureUnion around it produce with "
    "set_output(transform='pandas')), or give blocks explicitly: "
    "blocks=extractor.feature_blocks_, a list of column slices or index arrays, one group "
    "label per column, or an int block width."
)


def resolve_blocks(blocks, n_features, feature_names):
    """Column indices (sorted int arrays) and names of the blocks a ``blocks`` spec gives.

    Examples
    --------
    >>> columns, names = resolve_blocks(2, 5, None)
    >>> [c.tolist() for c in columns], names.tolist()
    ([[0, 1], [2, 3], [4]], ['block0', 'block1', 'block2'])
    >>> columns, names = resolve_blocks("auto", 3, ["image__r__green__image__0",
    ...                                             "image__r__green__image__1", "x__0"])
    >>> names.tolist()
    ['image__r__green__image', 'x']
    """
    if isinstance(blocks, str):
        return _blocks_from_names(feature_names)
    if isinstance(blocks, Integral):
        columns = [np.arange(s, min(s + blocks, n_features)) for s in range(0, n_features, blocks)]
        names = [f"block{i}" for i in range(len(columns))]
    else:
        specs = list(blocks)
        if specs and all(_is_group_label(spec) for spec in specs):
            return _blocks_from_labels(np.asarray(specs), n_features)
        columns, names = [], []
        for i, spec in enumerate(specs):
            name, cols = _block_columns(spec, n_features, i)
            columns.append(cols)
            names.append(f"block{i}" if name is None else str(name))
    _check_disjoint(columns, names, n_features)
    return columns, np.asarray(names, dtype=object)


def _blocks_from_names(feature_names):
    if feature_names is None:
        raise ValueError(
            "blocks='auto' derives the blocks from feature names of the form "
            f"'<block>__<k>', but X has no feature names (a plain array). {_HOW_TO_GIVE_BLOCKS}"
        )
    labels = []
    for name in feature_names:
        block = block_of_column(name)
        if block is None:
            raise ValueError(
                f"blocks='auto' needs every feature name to be of the form '<block>__<k>'; "
                f"{name!r} is not. {_HOW_TO_GIVE_BLOCKS}"
            )
        labels.append(block)
    return _blocks_from_labels(np.asarray(labels, dtype=object), len(labels))


def _is_group_label(spec):
    if isinstance(spec, (slice, Mapping)) or hasattr(spec, "slice"):
        return False
    return np.ndim(spec) == 0


def _blocks_from_labels(labels, n_features):
    if labels.shape != (n_features,):
        raise ValueError(
            f"blocks given as group labels need one label per column: got {labels.shape[0]} "
            f"labels for {n_features} columns."
        )
    _, first, inverse = np.unique(labels.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)  # blocks in order of first appearance
    columns = [np.flatnonzero(inverse == group) for group in order]
    names = np.asarray([str(labels[first[group]]) for group in order], dtype=object)
    return columns, names


def _block_columns(spec, n_features, i):
    """(name or None, sorted column indices) of one block description."""
    name = None
    if isinstance(spec, Mapping):
        if "slice" not in spec:
            raise TypeError(
                f"Block {i} is a dict without a 'slice' key: {spec!r}. Give records with "
                "'name' and 'slice', as CNNFeatureExtractor.feature_blocks_ has."
            )
        name, spec = spec.get("name"), spec["slice"]
    elif hasattr(spec, "slice"):
        name, spec = getattr(spec, "name", None), spec.slice
    label = f"Block {i}" if name is None else f"Block {i} ({name!r})"
    if isinstance(spec, slice):
        start, stop, step = spec.start or 0, spec.stop, spec.step or 1
        if stop is None:
            stop = n_features
        if not (0 <= start <= n_features and 0 <= stop <= n_features) or step < 1:
            raise ValueError(
                f"{label} is the slice {spec!r}, out of range for X with {n_features} "
                "columns: give slices within [0, n_features] with a positive step."
            )
        columns = np.arange(start, stop, step)
    else:
        columns = np.asarray(spec)
        if columns.dtype == bool:
            if columns.shape != (n_features,):
                raise ValueError(
                    f"{label} is a boolean mask of shape {columns.shape}; a column mask "
                    f"needs shape ({n_features},)."
                )
            columns = np.flatnonzero(columns)
        elif columns.ndim != 1 or (columns.size and columns.dtype.kind not in "iu"):
            raise TypeError(
                f"{label} must be a slice, an integer index array, a boolean column mask "
                f"or a record with a 'slice'; got {spec!r}."
            )
        columns = columns.astype(np.intp)
        outside = columns[(columns < 0) | (columns >= n_features)]
        if outside.size:
            raise ValueError(
                f"{label} has column index {outside[0]}, out of range for X with "
                f"{n_features} columns: indices must be in [0, {n_features - 1}]."
            )
    if columns.size == 0:
        raise ValueError(f"{label} selects no column; every block needs at least one.")
    return name, np.sort(columns)


def _check_disjoint(columns, names, n_features):
    if not columns:
        raise ValueError(f"blocks gives no block. {_HOW_TO_GIVE_BLOCKS}")
    owner = np.full(n_features, -1)
    for b, cols in enumerate(columns):
        taken = np.unique(cols, return_counts=True)
        shared = taken[0][taken[1] > 1]
        other = owner[cols]
        if shared.size or (other >= 0).any():
            column = shared[0] if shared.size else cols[other >= 0][0]
            first = b if shared.size else other[other >= 0][0]
            raise ValueError(
                f"Blocks {names[first]!r} and {names[b]!r} overlap (both hold column "
                f"{column}): each column may belong to one block only."
            )
        owner[cols] = b
