"""Project metadata stays valid."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fbsnn_brian

ROOT = Path(__file__).resolve().parents[1]


def test_citation_file_is_valid_cff() -> None:
    executable = shutil.which("cffconvert") or str(Path(sys.executable).parent / "cffconvert")
    if not Path(executable).exists():
        pytest.skip("cffconvert is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [executable, "--validate", "-i", str(ROOT / "CITATION.cff")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "CITATION.cff").read_text()
    assert "Implicit Differentiation on the Equilibrium State" in text
    assert "SPIDE" in text


def test_public_api_is_listed_once() -> None:
    assert len(fbsnn_brian.__all__) == len(set(fbsnn_brian.__all__))
    for name in fbsnn_brian.__all__:
        assert hasattr(fbsnn_brian, name)
