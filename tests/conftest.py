"""Shared fixtures: real-data locations (skipped when absent) and GPU detection."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Registries of sklearn-check instances, loaded by path in test_common.py; they hold
# no tests, and their shared basename would clash under --doctest-modules.
collect_ignore_glob = ["*/estimator_checks.py"]
SHARED = ROOT.parent / "shared"


def _hpa_sample_dir():
    env = os.environ.get("PROTLOC_HPA_SAMPLE")
    path = Path(env) if env else SHARED / "data" / "hpa2018-sample"
    return path if (path / "labels.csv").is_file() else None


def _cellpose_model_path():
    env = os.environ.get("PROTLOC_CELLPOSE_MODEL")
    path = Path(env) if env else SHARED / "weights" / "cellpose3-scellseg.pth"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def hpa_sample_dir():
    """Folder with ``images/`` and ``labels.csv`` of the 100 real HPA samples."""
    path = _hpa_sample_dir()
    if path is None:
        pytest.skip("real HPA sample absent: set PROTLOC_HPA_SAMPLE or provide ../shared/data")
    return path


@pytest.fixture(scope="session")
def hpa_full_labels():
    """The 31,072-row HPA 2018 label table."""
    env = os.environ.get("PROTLOC_HPA_LABELS")
    path = Path(env) if env else SHARED / "data" / "hpa2018-train-labels.csv"
    if not path.is_file():
        pytest.skip("full HPA label table absent: set PROTLOC_HPA_LABELS or provide ../shared/data")
    return path


@pytest.fixture(scope="session")
def cellpose_model_path():
    """The real Cellpose 3 network file (scellseg-derived)."""
    path = _cellpose_model_path()
    if path is None:
        pytest.skip(
            "Cellpose model absent: set PROTLOC_CELLPOSE_MODEL or provide ../shared/weights"
        )
    return path


def pytest_collection_modifyitems(config, items):
    if not any("gpu" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
