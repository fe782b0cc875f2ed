"""Exception hierarchy of fbsnn_brian.

Every error the toolkit raises on purpose is a :class:`FbsnnError`. Bad user
input raises :class:`ValidationError` (also a :class:`ValueError`), a device
or toolchain problem raises :class:`DeviceError` (also a :class:`RuntimeError`).
Messages name the object, the parameter, the value given and what is allowed.
"""

from __future__ import annotations

__all__ = ["DeviceError", "FbsnnError", "NumericalError", "ValidationError"]


class FbsnnError(Exception):
    """Base class of every error raised on purpose by fbsnn_brian."""


class ValidationError(FbsnnError, ValueError):
    """A user-supplied value is not allowed (wrong shape, type, range or name)."""


class DeviceError(FbsnnError, RuntimeError):
    """A simulation device or its toolchain cannot do what was asked."""


class NumericalError(FbsnnError, RuntimeError):
    """The simulation or the reference produced a numerically unusable state."""
