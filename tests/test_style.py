"""The code base stays ruff clean (rules in pyproject.toml)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is part of the test extra: pip install -e '.[test]'")
def test_ruff_check_is_clean():
    completed = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
