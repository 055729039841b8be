"""End-to-end CNN and FCN classifiers on multi-channel images (Liimatainen et al. 2021).

torch is imported when a network is built or trained, not when this package is
imported.
"""

from protloc.nets._estimators import CNNClassifier, FCNClassifier

__all__ = ["CNNClassifier", "FCNClassifier"]
