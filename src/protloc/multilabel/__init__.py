"""Multi-label classifiers: label powerset, binary relevance and threshold tuning.

Label powerset (LP) turns each distinct label combination into one class of a
multi-class problem; binary relevance (BR) fits one binary classifier per label;
:class:`ThresholdTuner` tunes per-label decision thresholds on out-of-fold scores.
Taormina et al. 2025 found LP over an SVM best on HPA features.
"""

from ._binary_relevance import BinaryRelevance
from ._powerset import LabelPowerset, LabelPowersetSVM
from ._thresholds import ThresholdTuner, UndecidableThresholdWarning, tune_thresholds

__all__ = [
    "BinaryRelevance",
    "LabelPowerset",
    "LabelPowersetSVM",
    "ThresholdTuner",
    "UndecidableThresholdWarning",
    "tune_thresholds",
]
