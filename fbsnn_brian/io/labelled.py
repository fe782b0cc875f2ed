"""The :class:`Dataset` container: inputs in [0, 1] with integer class labels.

:class:`Dataset` checks its arrays on construction and fixes the number of classes (see
:mod:`fbsnn_brian.io.datasets`, the public place of every data set name). The helpers here
list, refuse and warn about labels for the loaders and the split rules.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import check_finite_array, check_positive_int, describe

__all__ = ["Dataset", "EmptyClassWarning", "as_integer_array", "format_listing"]

# at most this many class numbers are listed in a message
_LISTED = 20


class EmptyClassWarning(UserWarning):
    """Some classes below the number of classes have no sample (e.g. after a stray label)."""


def format_listing(values: Sequence[int] | NDArray[np.int64], total: int | None = None) -> str:
    """``"3, 4, 5"``, shortened after :data:`_LISTED` values (``total`` of them in all).

    Parameters
    ----------
    values : sequence of int or ndarray of int64
        The values to list, e.g. class numbers.
    total : int, optional
        How many values there are in all, when ``values`` is already a shortened selection
        (default: ``len(values)``).

    Returns
    -------
    str
        The first 20 values separated by commas, followed by ``", ... (N in all)"`` when
        there are more.

    Examples
    --------
    >>> format_listing([3, 4, 5])
    '3, 4, 5'
    >>> format_listing(list(range(25)))[-23:]
    '18, 19, ... (25 in all)'
    """
    total = len(values) if total is None else total
    shown = ", ".join(str(int(v)) for v in values[:_LISTED])
    return shown + (f", ... ({total} in all)" if total > _LISTED else "")


def _empty_classes(labels: NDArray[np.int64], n_classes: int) -> tuple[NDArray[np.int64], int]:
    """The first :data:`_LISTED` classes in ``[0, n_classes)`` that no label names, and how many.

    Nothing of size ``n_classes`` is allocated, so one absurd label costs no memory.
    """
    present = np.unique(labels[labels < n_classes])
    candidates = np.arange(min(n_classes, present.size + _LISTED), dtype=np.int64)
    first: NDArray[np.int64] = np.setdiff1d(candidates, present)[:_LISTED]
    return first, n_classes - present.size


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Dataset:
    """Inputs in [0, 1] with integer class labels, checked on construction.

    Parameters
    ----------
    inputs : array_like, shape (n_samples, n_features)
        Finite values in [0, 1], stored as float64 (one row per sample).
    labels : array_like of int, shape (n_samples,)
        Class labels in ``[0, n_classes)``, stored as int64.
    n_classes : int, optional
        Number of classes (>= 1); may exceed the largest label, e.g. in a subset. A label at or
        above it is refused. Default: one more than the largest label, with an
        :class:`EmptyClassWarning` naming the classes below it that have no sample.
    name : str
        Where the data came from, e.g. ``"digits"``, ``"idx:/data/mnist"``, ``"npz:/data/x.npz"``.
    image_shape : (int, int), optional
        ``(height, width)`` of the images when each row is a flattened image (row by row);
        None (default) for tabular data. ``height * width`` must equal ``n_features``.

    Raises
    ------
    ValidationError
        If the arrays are empty, not finite, out of range, of the wrong rank or dtype, or of
        different lengths, if a label is at or above ``n_classes``, or if ``image_shape`` does
        not fit the features.

    Examples
    --------
    >>> data = Dataset(inputs=[[0.0, 1.0], [0.5, 0.25]], labels=[1, 0], n_classes=2, name="toy")
    >>> data
    Dataset(name='toy', n_samples=2, n_features=2, n_classes=2)
    >>> data.subset([1]).labels
    array([0])
    >>> data.image_shape is None, data.is_image
    (True, False)
    """

    # The dataclass gives frozen fields; __init__ is written out so that it accepts array_like
    # values (the fields hold the validated arrays) and takes keyword-only arguments.

    inputs: NDArray[np.float64]
    labels: NDArray[np.int64]
    n_classes: int
    name: str
    image_shape: tuple[int, int] | None

    def __init__(
        self,
        *,
        inputs: ArrayLike,
        labels: ArrayLike,
        n_classes: int | None = None,
        name: str,
        image_shape: Sequence[int] | NDArray[np.integer[Any]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError(
                f"Dataset: name must be a non-empty string, got {describe(name)}."
            )
        owner = f"Dataset(name={name!r})"
        if n_classes is not None:
            n_classes = check_positive_int(owner, "n_classes", n_classes)
        inputs = check_finite_array(owner, "inputs", inputs, ndim=2)
        if inputs.shape[1] == 0:
            raise ValidationError(
                f"{owner}: inputs must have at least one feature, got shape {inputs.shape}."
            )
        low, high = float(inputs.min()), float(inputs.max())
        if low < 0.0 or high > 1.0:
            raise ValidationError(
                f"{owner}: inputs must lie in [0, 1], got values from {low:g} to {high:g}. "
                "Rescale them first, e.g. divide 8-bit pixels by 255."
            )
        labels = as_integer_array(owner, "labels", labels)
        if labels.shape != (inputs.shape[0],):
            raise ValidationError(
                f"{owner}: labels must have shape ({inputs.shape[0]},) to match the "
                f"{inputs.shape[0]} rows of inputs, got shape {labels.shape}."
            )
        if n_classes is None:
            if labels.min() < 0:
                _refuse_labels(owner, labels, None)
            n_classes = int(labels.max()) + 1
            _warn_empty(
                f"{owner}: n_classes = {n_classes} was taken from the largest label; ",
                labels,
                n_classes,
                "sample",
            )
        elif labels.min() < 0 or labels.max() >= n_classes:
            _refuse_labels(owner, labels, n_classes)
        shape = None if image_shape is None else _check_image_shape(owner, image_shape, inputs)
        # Frozen fields can only be set through object.__setattr__.
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "n_classes", n_classes)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "image_shape", shape)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_samples={self.n_samples}, "
            f"n_features={self.n_features}, n_classes={self.n_classes})"
        )

    @property
    def n_samples(self) -> int:
        """Number of samples (rows of ``inputs``)."""
        return int(self.inputs.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features per sample (columns of ``inputs``)."""
        return int(self.inputs.shape[1])

    @property
    def is_image(self) -> bool:
        """Whether the rows are flattened images (``image_shape`` is set).

        Image augmentation such as :class:`fbsnn_brian.learning.augmentation.RandomShift` applies
        only
        to these; tabular data (an ``.npz`` file without ``image_shape``) has none.
        """
        return self.image_shape is not None

    def subset(self, indices: ArrayLike) -> Dataset:
        """Return the samples at ``indices``, keeping ``n_classes``, ``name`` and ``image_shape``.

        Parameters
        ----------
        indices : array_like of int, or boolean mask of length n_samples
            Sample positions in ``[0, n_samples)``, in the order wanted (repeats allowed).

        Returns
        -------
        Dataset
            A new data set holding copies of the selected rows.

        Examples
        --------
        >>> data = Dataset(inputs=[[0.0], [0.5], [1.0]], labels=[0, 1, 1], n_classes=2, name="toy")
        >>> data.subset([2, 0]).inputs.ravel().tolist()
        [1.0, 0.0]
        >>> data.subset([False, True, True]).n_samples
        2
        """
        owner = f"Dataset(name={self.name!r}).subset"
        positions = np.asarray(indices)
        if positions.dtype == np.bool_:
            if positions.shape != (self.n_samples,):
                raise ValidationError(
                    f"{owner}: a boolean mask must have shape ({self.n_samples},), got "
                    f"shape {positions.shape}."
                )
            positions = np.flatnonzero(positions)
        positions = as_integer_array(owner, "indices", positions)
        if positions.min() < 0 or positions.max() >= self.n_samples:
            raise ValidationError(
                f"{owner}: indices must lie in [0, {self.n_samples}), got values from "
                f"{positions.min()} to {positions.max()}."
            )
        return Dataset(
            inputs=self.inputs[positions],
            labels=self.labels[positions],
            n_classes=self.n_classes,
            name=self.name,
            image_shape=self.image_shape,
        )


def _refuse_labels(owner: str, labels: NDArray[np.int64], n_classes: int | None) -> None:
    """Raise the ValidationError naming the labels outside ``[0, n_classes)``."""
    bad = labels < 0 if n_classes is None else (labels < 0) | (labels >= n_classes)
    values = np.unique(labels[bad])
    noun = "label" if len(values) == 1 else "labels"
    allowed = (
        "be >= 0" if n_classes is None else f"lie in [0, {n_classes}) for n_classes={n_classes}"
    )
    raise ValidationError(
        f"{owner}: labels must {allowed}, got {noun} {format_listing(values)} "
        f"({int(bad.sum())} of {labels.size} samples)."
    )


def _warn_empty(prefix: str, labels: NDArray[np.int64], n_classes: int, noun: str) -> None:
    """Warn (EmptyClassWarning) if some classes below ``n_classes`` have no label."""
    empty, count = _empty_classes(labels, n_classes)
    if count == 0:
        return
    verb = "has" if count == 1 else "have"
    warnings.warn(
        f"{prefix}class{'es' if count > 1 else ''} {format_listing(empty, count)} {verb} no "
        f"{noun}; "
        f"the labels are {format_listing(np.unique(labels))}. Pass n_classes to fix the number of "
        "classes (labels at or above it are then refused), or correct the labels.",
        EmptyClassWarning,
        stacklevel=3,
    )


def _check_image_shape(owner: str, value: Any, inputs: NDArray[np.float64]) -> tuple[int, int]:
    """``(height, width)`` as two positive ints whose product is the number of features."""
    array = np.asarray(value)
    if (
        array.shape != (2,)
        or array.dtype == np.bool_
        or not np.issubdtype(array.dtype, np.integer)
        or np.any(array < 1)
    ):
        raise ValidationError(
            f"{owner}: image_shape must be two positive integers (height, width), got "
            f"{describe(value)}."
        )
    height, width = int(array[0]), int(array[1])
    if height * width != inputs.shape[1]:
        raise ValidationError(
            f"{owner}: image_shape ({height}, {width}) holds {height * width} pixels, but the "
            f"inputs have {inputs.shape[1]} features; they must be equal."
        )
    return height, width


def as_integer_array(owner: str, name: str, value: Any) -> NDArray[np.int64]:
    """Check that ``value`` is a non-empty 1-D array of integers and return it as int64.

    Parameters
    ----------
    owner : str
        Name of the calling function or class, used in the error message.
    name : str
        Name of the argument, used in the error message.
    value : array_like
        The labels or indices to check; booleans and floats are refused, even whole-number
        floats.

    Returns
    -------
    ndarray of int64
        The checked values.

    Raises
    ------
    ValidationError
        If ``value`` is not 1-D, is empty or does not have an integer dtype.
    """
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValidationError(f"{owner}: {name} must be a 1-D array, got shape {array.shape}.")
    if array.size == 0:
        raise ValidationError(f"{owner}: {name} must not be empty.")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValidationError(
            f"{owner}: {name} must have an integer dtype, got dtype {array.dtype}. "
            "Convert whole-number floats with .astype(int)."
        )
    return array.astype(np.int64, copy=False)
