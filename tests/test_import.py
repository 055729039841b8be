"""``import protloc`` stays light: no torch, timm, cellpose or matplotlib, and fast."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "timm", "cellpose", "matplotlib")


def _run(code):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_does_not_load_heavy_dependencies():
    out = _run(
        "import sys, protloc, protloc.plot; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert out == ""


def test_import_time_is_under_half_a_second():
    # Best of three cold interpreter imports, so a busy machine does not fail the test.
    code = "import time; t = time.perf_counter(); import protloc; print(time.perf_counter() - t)"
    best = min(float(_run(code)) for _ in range(3))
    assert best < 0.5, f"import protloc took {best:.3f} s"


def test_lazy_exports_resolve():
    import protloc

    assert protloc.HPA_CLASSES[21] == "Plasma membrane"
    assert "load_hpa" in dir(protloc)
    with pytest.raises(AttributeError, match="not_a_name"):
        _ = protloc.not_a_name
