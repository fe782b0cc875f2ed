"""Where the toolkit keeps what it compiles: the build cache's directory.

``$FBSNN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fbsnn_brian`` or ``~/.cache/fbsnn_brian``.
The builds themselves are in ``builds/`` (:mod:`fbsnn_brian.build.devices.standalone`),
cuda_standalone's library links in ``cuda_libraries/`` (:mod:`fbsnn_brian.build.devices.cuda`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """Directory of the build cache (see the module docstring for how it is chosen)."""
    explicit = os.environ.get("FBSNN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fbsnn_brian"
