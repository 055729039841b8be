"""protloc: where does a protein sit in a cell?

Multi-label classification of protein subcellular localization from multi-channel
fluorescence microscopy in the Human Protein Atlas style, built from scikit-learn
estimators: Cellpose segmentation, region crops, pretrained CNN feature blocks, a
genetic block selector and a label-powerset SVM (Taormina et al. 2025), plus CNN and
FCN classifiers trained end to end (Liimatainen et al. 2021).

Public names are imported lazily, so ``import protloc`` does not import torch, timm
or cellpose.
"""

from protloc._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access (PEP 562).
_EXPORTS = {
    "HPA_CLASSES": "protloc.io",
    "HPA2021_CLASSES": "protloc.io",
    "DEFAULT_CHANNELS": "protloc.io",
    "HPAImageSequence": "protloc.io",
    "load_hpa": "protloc.io",
    "load_images": "protloc.io",
    "microns_to_pixels": "protloc.io",
    "fit_cell_classifier": "protloc.io",
    "predict_cells": "protloc.io",
    "write_cell_results": "protloc.io",
    "read_labels": "protloc.io",
    "CellCrops": "protloc._containers",
    "make_synthetic_hpa": "protloc.datasets",
    "synthetic_class_names": "protloc.datasets",
    "MultilabelStratifiedKFold": "protloc.model_selection",
    "MultilabelRepeatedStratifiedKFold": "protloc.model_selection",
    "StratificationWarning": "protloc.model_selection",
    "multilabel_report": "protloc.metrics",
    "MultilabelReport": "protloc.metrics",
    "CellposeSegmenter": "protloc.segmentation",
    "SegmentedImages": "protloc.segmentation",
    "WatershedSegmenter": "protloc.segmentation",
    "RegionCropper": "protloc.regions",
    "CNNFeatureExtractor": "protloc.features",
    "FeatureBlock": "protloc.features",
    "GeneticBlockSelector": "protloc.selection",
    "SelectionWarning": "protloc.exceptions",
    "LabelPowerset": "protloc.multilabel",
    "LabelPowersetSVM": "protloc.multilabel",
    "BinaryRelevance": "protloc.multilabel",
    "ThresholdTuner": "protloc.multilabel",
    "tune_thresholds": "protloc.multilabel",
    "UndecidableThresholdWarning": "protloc.multilabel",
    "CNNClassifier": "protloc.nets",
    "FCNClassifier": "protloc.nets",
    "make_t25_pipeline": "protloc.pipeline",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
