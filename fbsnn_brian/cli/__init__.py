"""The ``fbsnn`` command (the only layer that prints)."""

from fbsnn_brian.cli.main import main

__all__ = ["main"]
