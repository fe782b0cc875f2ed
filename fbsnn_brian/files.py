"""Atomic file writes: a file appears under its final name complete or not at all.

Each writer writes to a temporary name in the same directory, flushes and fsyncs it, then
renames it over the target (``os.replace`` is atomic on POSIX and Windows), so a crash or a
SIGKILL mid-write leaves the previous version, never a truncated one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_json_atomically", "write_npz_atomically"]


def _replace_with(target: Path, suffix: str, write: Any) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp{suffix}")
    with open(temporary, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, target)
    return target


def write_npz_atomically(path: str | os.PathLike[str], arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` to an uncompressed ``.npz`` file atomically; return the path."""
    return _replace_with(Path(path), ".npz", lambda stream: np.savez(stream, **arrays))


def write_json_atomically(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically; return the path."""
    text = json.dumps(payload, indent=2).encode()
    return _replace_with(Path(path), ".json", lambda stream: stream.write(text))
