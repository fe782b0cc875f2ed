"""Interruption by SIGINT (Ctrl-C) or SIGTERM at a consistent state.

A terminal sends SIGINT to the whole process group: to Python and to a compiled standalone
binary or compiler it runs. The binary answers by stopping its simulation early and exiting
normally, so a chunk it returns after a signal is truncated and must not be used. While
:func:`interruptible` is active a signal only sets a flag; the training loop checks it at every
chunk boundary (:func:`check`), discards a chunk that ran while a signal arrived and stops with
:class:`Interrupted`, leaving the last checkpoint as the state to resume from. A second signal
stops at once (``KeyboardInterrupt``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from fbsnn_brian.errors import FbsnnError

__all__ = ["Interrupted", "check", "interruptible", "requested"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(FbsnnError):  # noqa: N818 (a state, not a fault)
    """Training or compilation stopped by SIGINT or SIGTERM at a consistent state."""


def requested() -> bool:
    """Whether a SIGINT or SIGTERM arrived since :func:`interruptible` was entered."""
    return bool(_received)


def check(where: str) -> None:
    """Raise :class:`Interrupted` (naming ``where``) if a signal arrived."""
    if _received:
        name = signal.Signals(_received[0]).name
        raise Interrupted(f"interrupted ({name}) {where}")


def _handle(signum: int, frame: FrameType | None) -> None:
    if _received:
        raise KeyboardInterrupt
    _received.append(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a flag for the duration of the block.

    Only the main thread can install signal handlers; elsewhere (a Dask worker thread) the
    block runs with the handlers as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in _SIGNALS}
    _received.clear()
    for number in _SIGNALS:
        signal.signal(number, _handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received.clear()
