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

from fbsnn_brian.errors import ValidationError

__all__ = ["read_npz", "write_json_atomically", "write_npz_atomically"]


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


def read_npz(
    path: str | os.PathLike[str], *, owner: str, noun: str, what: str, json_key: str
) -> tuple[dict[str, Any], Any]:
    """Read every array of an ``.npz`` file and parse its JSON entry ``json_key``.

    Returns ``(arrays, parsed JSON)``. A missing file, an unreadable one or one without the
    JSON entry raises :class:`ValidationError` naming ``owner`` and the file expected:
    ``noun`` for a missing one (``"weights file"``), ``what`` for a malformed one
    (``"a weights file written by FeedbackNetwork.save"``).
    """
    source = Path(path)
    if not source.is_file():
        raise ValidationError(f"{owner}: no {noun} at {str(path)!r}.")
    try:
        with np.load(source, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        return arrays, json.loads(str(arrays[json_key]))
    except (OSError, ValueError, KeyError) as error:
        raise ValidationError(f"{owner}: {str(path)!r} is not {what} ({error}).") from None
