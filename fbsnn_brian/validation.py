"""Small validators shared by the public entry points.

Each function checks one value and raises :class:`~fbsnn_brian.errors.ValidationError`
with a message that names the owner, the parameter, the value given and what is allowed.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError

__all__ = [
    "check_choice",
    "check_duration",
    "check_finite_array",
    "check_labels",
    "check_positive_float",
    "check_positive_int",
    "describe",
]


def describe(value: Any) -> str:
    """Return a short printable description of ``value`` for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_choice(owner: str, name: str, value: Any, allowed: Sequence[str]) -> str:
    """Check that ``value`` is one of ``allowed`` and suggest the closest name if not."""
    if isinstance(value, str) and value in allowed:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, list(allowed), n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    options = ", ".join(repr(a) for a in allowed)
    raise ValidationError(f"{owner}: {name} must be one of {options}, got {describe(value)}.{hint}")


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """Check that ``value`` is an integer >= 1 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(f"{owner}: {name} must be a positive integer, got {describe(value)}.")
    return int(value)


def check_positive_float(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Check that ``value`` is a finite real number > 0 (or >= 0 with ``allow_zero``)."""
    number = math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int beyond the float range
            number = float(value)
    if not (math.isfinite(number) and (number >= 0 if allow_zero else number > 0)):
        bound = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValidationError(f"{owner}: {name} must be {bound}, got {describe(value)}.")
    return number


def check_finite_array(
    owner: str,
    name: str,
    value: Any,
    *,
    ndim: int,
    shape: tuple[int | None, ...] | None = None,
) -> NDArray[np.float64]:
    """Convert ``value`` to a float64 array and check its rank, shape and finiteness.

    Parameters
    ----------
    owner, name : str
        Used in the error message ("owner: name must ...").
    value : array_like
        The value to check.
    ndim : int
        Required number of dimensions.
    shape : tuple of (int or None), optional
        Required shape; ``None`` entries accept any length.
    """
    try:
        is_complex = bool(np.iscomplexobj(value))
    except (TypeError, ValueError):  # ragged nested lists; refused below
        is_complex = False
    if is_complex:
        raise ValidationError(
            f"{owner}: {name} must be a real-valued array, got {describe(value)}."
        )
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"{owner}: {name} must be a numeric array, got {describe(value)}."
        ) from None
    if array.ndim != ndim:
        raise ValidationError(f"{owner}: {name} must be a {ndim}-D array, got shape {array.shape}.")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(array.shape, shape, strict=True)):
            if want is not None and got != want:
                wanted = tuple("any" if s is None else s for s in shape)
                raise ValidationError(
                    f"{owner}: {name} must have shape {wanted}, got {array.shape} "
                    f"(axis {axis} has length {got}, expected {want})."
                )
    if array.size == 0:
        raise ValidationError(f"{owner}: {name} must not be empty, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        n_bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValidationError(
            f"{owner}: {name} must contain only finite values, got {n_bad} NaN or infinite "
            f"entries in an array of shape {array.shape}."
        )
    return array


def check_duration(owner: str, name: str, value: Any) -> Any:
    """Check that ``value`` is a Brian2 time quantity > 0 and return it.

    Bare numbers are refused: the toolkit never guesses a time unit.
    """
    from brian2 import Quantity, second
    from brian2.units.fundamentalunits import DimensionMismatchError, fail_for_dimension_mismatch

    if not isinstance(value, Quantity):
        raise ValidationError(
            f"{owner}: {name} must be a Brian2 time quantity such as 30*ms, got "
            f"{describe(value)} (a bare number has no unit)."
        )
    try:
        fail_for_dimension_mismatch(value, second)
    except DimensionMismatchError:
        raise ValidationError(
            f"{owner}: {name} must have units of time (e.g. 30*ms), got {value!r}."
        ) from None
    if value.size != 1 or not np.isfinite(float(value)) or float(value) <= 0:
        raise ValidationError(f"{owner}: {name} must be a positive, finite time, got {value!r}.")
    return value


def check_labels(owner: str, labels: Any, n_samples: int, n_classes: int) -> NDArray[np.int64]:
    """Class labels: integers of shape (n_samples,) in [0, n_classes), as int64."""
    array = np.asarray(labels)
    if array.shape != (n_samples,) or not np.issubdtype(array.dtype, np.integer):
        raise ValidationError(
            f"{owner}: labels must be an integer array of shape ({n_samples},), got "
            f"{describe(array)}."
        )
    if array.min() < 0 or array.max() >= n_classes:
        raise ValidationError(
            f"{owner}: labels must lie in [0, {n_classes}), got values in "
            f"[{array.min()}, {array.max()}]."
        )
    return array.astype(np.int64)
