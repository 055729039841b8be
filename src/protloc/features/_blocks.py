"""Feature blocks as objects, and the one definition of their column-name format.

:class:`CNNFeatureExtractor` describes its output as a list of :class:`FeatureBlock`
(``feature_blocks_``); :class:`~protloc.selection.GeneticBlockSelector` takes such a
list as ``blocks=`` directly. Column names ``<backbone>__<channel>__<region>__<k>``
exist for pandas users and for ``blocks="auto"`` behind a ``FeatureUnion``; they are
built and read back only here. :func:`feature_blocks` asks a fitted step, a
``FeatureUnion`` or a ``Pipeline`` for its blocks as objects, with the union's
``<step>__`` prefix and column offsets applied, so the blocks of
``make_t25_pipeline(...)["features"]`` are queried like those of one extractor.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SEPARATOR", "FeatureBlock", "block_of_column", "feature_blocks", "sanitise"]

#: Separates the parts of a block name, and a block name from a column number.
SEPARATOR = "__"


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

    @property
    def width(self):
        """Number of columns."""
        return self.slice.stop - self.slice.start

    def column_names(self):
        """The block's column names ``<name>__<k>`` (as in ``get_feature_names_out``)."""
        return [f"{self.name}{SEPARATOR}{k}" for k in range(self.width)]


def sanitise(part):
    """Keep ``"__"`` free for the name separator.

    Examples
    --------
    >>> sanitise("tf__net_")
    'tf_net'
    """
    return re.sub("_{2,}", "_", str(part)).strip("_") or "x"


def block_of_column(name):
    """The block of a column name ``<block>__<k>``, or None when it is not one.

    Examples
    --------
    >>> block_of_column("image__resnet10t__green__cell__12")
    'image__resnet10t__green__cell'
    >>> block_of_column("age") is None
    True
    """
    block, separator, number = str(name).rpartition(SEPARATOR)
    if not (separator and block and number.isdigit()):
        return None
    return block


def feature_blocks(step):
    """The :class:`FeatureBlock` list of a fitted step's output columns.

    Parameters
    ----------
    step : fitted estimator
        A step with ``feature_blocks_`` (:class:`CNNFeatureExtractor`), a
        ``FeatureUnion`` of such steps (names get the union's ``<name>__`` prefix,
        slices its column offsets, as ``get_feature_names_out`` does), or a
        ``Pipeline`` ending in one.

    Returns
    -------
    blocks : list of FeatureBlock
        In column order; ``GeneticBlockSelector(blocks=blocks)`` takes them as given.

    Examples
    --------
    >>> from sklearn.pipeline import FeatureUnion
    >>> class Step:  # a fitted step with one block of 2 columns
    ...     feature_blocks_ = [FeatureBlock("r__green__image", "r", "green", "image",
    ...                                     slice(0, 2))]
    ...     def fit(self, X, y=None): return self
    ...     def transform(self, X): return X
    ...     def get_feature_names_out(self, names=None): return ["r__green__image__0",
    ...                                                          "r__green__image__1"]
    >>> union = FeatureUnion([("image", Step()), ("cell", Step())])
    >>> [(b.name, b.slice) for b in feature_blocks(union)]
    [('image__r__green__image', slice(0, 2, None)), ('cell__r__green__image', slice(2, 4, None))]
    """
    blocks = getattr(step, "feature_blocks_", None)
    if blocks is not None:
        return list(blocks)
    if hasattr(step, "transformer_list"):  # FeatureUnion
        out, offset = [], 0
        for name, transformer in step.transformer_list:
            if transformer == "drop":
                continue
            for block in feature_blocks(transformer):
                out.append(
                    block._replace(
                        name=f"{name}{SEPARATOR}{block.name}",
                        slice=slice(offset + block.slice.start, offset + block.slice.stop),
                    )
                )
            offset += len(transformer.get_feature_names_out())
        return out
    if hasattr(step, "steps"):  # Pipeline: the blocks of its last step
        return feature_blocks(step.steps[-1][1])
    raise TypeError(
        f"{type(step).__name__} does not describe its output as feature blocks; pass a "
        "fitted CNNFeatureExtractor, or a FeatureUnion or Pipeline built from them."
    )
