"""Nucleus and cell segmentation with Cellpose, and the container of the resulting masks.

cellpose is imported only when a model is first needed, so importing this package
stays fast.
"""

from protloc._containers import SegmentedImages
from protloc.segmentation._cellpose import CellposeSegmenter, NoNucleiWarning, cellpose_version

__all__ = ["CellposeSegmenter", "NoNucleiWarning", "SegmentedImages", "cellpose_version"]
