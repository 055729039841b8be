"""Feature blocks as objects, and the one definition of their column-name format.

:class:`CNNFeatureExtractor` describes its output as a list of :class:`FeatureBlock`
(``feature_blocks_``); :class:`~protloc.selection.GeneticBlockSelector` takes such a
list as ``blocks=`` directly. Column names ``<backbone>__<channel>__<region>__<k>``
exist for pandas users and for ``blocks="auto"`` behind a ``FeatureUnion``; they are
built and read back only here.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SEPARATOR", "FeatureBlock", "block_of_column", "sanitise"]

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
