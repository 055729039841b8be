"""Pretrained CNN feature blocks per backbone, channel and region (Taormina et al. 2025).

torch and timm are imported when an extractor is fitted, not when this package is.
"""

from ._blocks import FeatureBlock, feature_blocks
from ._cnn import CNNFeatureExtractor, NoCellsWarning
from ._weights import PACKAGED_WEIGHTS, PackagedWeights

__all__ = [
    "PACKAGED_WEIGHTS",
    "CNNFeatureExtractor",
    "FeatureBlock",
    "NoCellsWarning",
    "PackagedWeights",
    "feature_blocks",
]
