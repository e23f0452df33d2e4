"""The tree is formatted by the one formatter configured in pyproject.toml (ruff format, 2-space indent)."""

import subprocess
import sys

import pytest

from training_helpers import REPO


def test_ruff_format_check_passes_on_the_whole_tree():
  pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install -e '.[test]'")
  proc = subprocess.run(
    [sys.executable, "-m", "ruff", "format", "--check", "."],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, f"run `ruff format .` in the repository root:\n{proc.stdout[-3000:]}"
