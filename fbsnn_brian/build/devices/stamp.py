"""What a compiled project's binary was compiled from, so that a copy of it is reused.

A standalone project (cpp_standalone, cuda_standalone) records, after compiling, a hash of its
generated code and the target options it was compiled for in ``fbsnn_build.json``
(:data:`STAMP`). The hash leaves out the project's own path, the makefile (the compiler and
library paths of the machine) and the static arrays (values, rewritten at every build), so a
project copied to another directory or another machine, where the same code is generated
again, is recognised: :func:`reuse_check` says whether its binary can run as it is, and why
not where it cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["STAMP", "reuse_check", "saved_stamp", "write_stamp"]


#: The record of what a project's binary was compiled from (in the project directory).
STAMP = "fbsnn_build.json"
_SOURCE_SUFFIXES = frozenset({".c", ".cpp", ".cu", ".cuh", ".h", ".hpp"})
_NOT_SOURCES = frozenset({"results", "static_arrays"})


def _source_hash(directory: str | os.PathLike[str]) -> str:
    """Hash of the generated code of a project, its own path replaced by a placeholder.

    The makefile (compiler and library paths of the machine) and the static arrays (values,
    rewritten at every build) are left out; the target they encode is in the options.
    """
    root = Path(directory)
    own_paths = sorted({str(root.resolve()).encode(), str(root.absolute()).encode()}, key=len)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.suffix not in _SOURCE_SUFFIXES or _NOT_SOURCES & set(relative.parts):
            continue
        if path.is_file():
            digest.update(str(relative).encode() + b"\0")
            text = path.read_bytes()
            for own_path in reversed(own_paths):  # the longer first
                text = text.replace(own_path, b"<project>")
            digest.update(text + b"\0")
    return digest.hexdigest()


def write_stamp(directory: str | os.PathLike[str], options: Mapping[str, Any]) -> None:
    """Record that the binary of ``directory`` was compiled from its code for ``options``."""
    record = {
        "sources": _source_hash(directory),
        "options": dict(options),
        "host": platform.node(),
        "compiled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (Path(directory) / STAMP).write_text(json.dumps(record, indent=2, default=str) + "\n")


def saved_stamp(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record of ``directory`` (None where there is none, or it is unreadable)."""
    try:
        record = json.loads((Path(directory) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def reuse_check(directory: str | os.PathLike[str], options: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the binary of ``directory`` is the one its generated code and ``options`` give.

    Returns
    -------
    (bool, str)
        Reusable, and why (or why not), in words.
    """
    if not (Path(directory) / "main").is_file():
        return False, f"no compiled binary in {directory}"
    saved = saved_stamp(directory)
    if saved is None:
        return False, f"no record of what the binary was compiled from ({STAMP})"
    wanted = json.loads(json.dumps(dict(options), default=str))
    if saved.get("options") != wanted:
        changed = sorted(
            key
            for key in set(wanted) | set(saved.get("options") or {})
            if wanted.get(key) != (saved.get("options") or {}).get(key)
        )
        return False, (
            f"the binary was compiled for other target options ({', '.join(changed)}: "
            f"{[(saved.get('options') or {}).get(k) for k in changed]}, now "
            f"{[wanted.get(k) for k in changed]})"
        )
    if saved.get("sources") != _source_hash(directory):
        return False, "the generated code differs from the code the binary was compiled from"
    where = saved.get("host")
    elsewhere = f", compiled on {where}" if where and where != platform.node() else ""
    return True, f"the generated code and target are those the binary was compiled from{elsewhere}"
