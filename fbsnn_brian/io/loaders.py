"""Loaders of scikit-learn's 8x8 digits and of ``.npz`` archives, and the ``.npz`` writer.

:func:`load_npz` and :func:`save_npz` read and write a
:class:`~fbsnn_brian.io.labelled.Dataset` as arrays ``X`` and ``y`` plus its number of
classes and image shape.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.labelled import Dataset, as_integer_array
from fbsnn_brian.validation import check_finite_array, describe

__all__ = ["load_digits", "load_npz", "save_npz"]


def load_digits(*, n_classes: int | None = None) -> Dataset:
    """Load scikit-learn's 8x8 handwritten digits, scaled to [0, 1].

    Parameters
    ----------
    n_classes : int, optional
        Number of classes, at least 10 (default 10).

    Returns
    -------
    Dataset
        1797 samples of 64 pixels (grey levels 0-16 divided by 16) in 10 classes, named
        ``"digits"``, with ``image_shape`` (8, 8).

    Examples
    --------
    >>> digits = load_digits()
    >>> digits
    Dataset(name='digits', n_samples=1797, n_features=64, n_classes=10)
    >>> float(digits.inputs.max())
    1.0
    """
    from sklearn import datasets as sklearn_datasets

    bunch = sklearn_datasets.load_digits()
    return Dataset(
        inputs=np.asarray(bunch.data, dtype=np.float64) / 16.0,
        labels=np.asarray(bunch.target, dtype=np.int64),
        n_classes=10 if n_classes is None else n_classes,
        name="digits",
        image_shape=(8, 8),
    )


def load_npz(path: str | Path, *, n_classes: int | None = None) -> Dataset:
    """Load a data set from a ``.npz`` archive with arrays ``X`` and ``y``.

    ``X`` (n_samples, n_features) must already lie in [0, 1]; nothing is rescaled. ``y``
    (n_samples,) holds integer labels. An optional scalar ``n_classes`` entry (written by
    :func:`save_npz`) sets the number of classes; otherwise it is one more than the largest label
    (with an :class:`EmptyClassWarning` if classes below it have no sample). An optional
    ``image_shape`` entry (height, width) marks the rows as flattened images; without it the
    data are tabular (``image_shape`` None), even when the number of features is a square.

    Parameters
    ----------
    path : str or Path
        The archive to read (no pickled objects are loaded).
    n_classes : int, optional
        Number of classes; overrides the file's ``n_classes`` entry.

    Returns
    -------
    Dataset
        Named ``"npz:PATH"``.

    Raises
    ------
    ValidationError
        If the file is unreadable, lacks ``X`` or ``y``, or holds values out of range.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> archive = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
    >>> np.savez(archive, X=[[0.0, 0.5], [1.0, 0.25]], y=[1, 0])
    >>> load_npz(archive).labels.tolist()
    [1, 0]
    """
    owner = "load_npz"
    file_path = Path(path)
    if not file_path.is_file():
        raise ValidationError(f"{owner}: path must be an existing file, got {str(file_path)!r}.")
    try:
        with np.load(file_path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise ValidationError(
            f"{owner}: cannot read {str(file_path)!r} as a .npz archive: {error}."
        ) from None
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        raise ValidationError(
            f"{owner}: {str(file_path)!r} must hold arrays 'X' and 'y', missing "
            f"{', '.join(repr(key) for key in missing)}; it holds {sorted(arrays) or 'nothing'}."
        )
    inputs = check_finite_array(f"{owner}({str(file_path)!r})", "X", arrays["X"], ndim=2)
    low, high = float(inputs.min()), float(inputs.max())
    if low < 0.0 or high > 1.0:
        raise ValidationError(
            f"{owner}: X in {str(file_path)!r} must lie in [0, 1], got values from {low:g} to "
            f"{high:g}. Rescale it before saving, e.g. X / 255 for 8-bit pixels or "
            "(X - X.min()) / (X.max() - X.min())."
        )
    labels = as_integer_array(f"{owner}({str(file_path)!r})", "y", arrays["y"])
    count: Any = n_classes
    if count is None and "n_classes" in arrays:
        count = arrays["n_classes"]
        count = count.item() if count.shape == () else count
    return Dataset(
        inputs=inputs,
        labels=labels,
        n_classes=count,
        name=f"npz:{path}",
        image_shape=arrays.get("image_shape"),
    )


def save_npz(dataset: Dataset, path: str | Path) -> None:
    """Write ``dataset`` to a ``.npz`` archive that :func:`load_npz` reads back.

    Parameters
    ----------
    dataset : Dataset
        The data set to save (``inputs`` as ``X``, ``labels`` as ``y``, plus ``n_classes``
        and, for images, ``image_shape``).
    path : str or Path
        Destination file; numpy appends ``.npz`` if the name lacks it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> archive = pathlib.Path(tempfile.mkdtemp()) / "digits.npz"
    >>> save_npz(load_digits(), archive)
    >>> load_npz(archive)  # doctest: +ELLIPSIS
    Dataset(name='npz:...digits.npz', n_samples=1797, n_features=64, n_classes=10)
    """
    if not isinstance(dataset, Dataset):
        raise ValidationError(f"save_npz: dataset must be a Dataset, got {describe(dataset)}.")
    arrays: dict[str, NDArray[Any]] = {
        "X": dataset.inputs,
        "y": dataset.labels,
        "n_classes": np.array(dataset.n_classes, dtype=np.int64),
    }
    if dataset.image_shape is not None:
        arrays["image_shape"] = np.array(dataset.image_shape, dtype=np.int64)
    np.savez_compressed(Path(path), **arrays)  # type: ignore[arg-type]
