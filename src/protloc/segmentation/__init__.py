"""Nucleus and cell segmentation (Cellpose, or classical watershed), and the container of masks.

cellpose is imported only when a model is first needed, so importing this package
stays fast.
"""

from protloc._containers import SegmentedImages
from protloc.segmentation._cellpose import CellposeSegmenter, NoNucleiWarning, cellpose_version
from protloc.segmentation._classical import WatershedSegmenter

__all__ = [
    "CellposeSegmenter",
    "NoNucleiWarning",
    "SegmentedImages",
    "WatershedSegmenter",
    "cellpose_version",
]
