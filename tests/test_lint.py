"""The tree is ruff-clean (the standards ask for it; this keeps it so)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(ROOT / ".venv" / "bin"))
    if ruff is None:
        candidate = [sys.executable, "-m", "ruff"]
    else:
        candidate = [ruff]
    result = subprocess.run(
        [*candidate, "check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if "No module named ruff" in result.stderr:
        pytest.fail("ruff is not installed (it is in the [test] extra)")
    assert result.returncode == 0, result.stdout + result.stderr
