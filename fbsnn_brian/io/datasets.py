"""Labelled data sets for training feedback spiking networks.

A :class:`Dataset` holds inputs scaled to [0, 1] (they become input firing rates) and integer
class labels. Loaders read scikit-learn's 8x8 digits, MNIST-style IDX files and ``.npz`` archives;
:func:`load_dataset` picks one from a short text spec such as ``"digits"`` or ``"idx:DIR"``, and
:func:`train_test_split` divides a data set by fixed counts or by a seeded stratified rule;
:func:`load_train_and_test` instead reads a training file and a separate test file, and
:func:`check_compatible` checks that a test set fits a training set.

Number of classes: given explicitly (``Dataset(n_classes=...)``, the loaders' ``n_classes``,
an ``n_classes`` entry of an ``.npz`` file, 10 for digits) or else one more than the largest
label, with an :class:`EmptyClassWarning` naming the classes below it that have no sample (one
stray label 7 in 3-class data gives 8 classes, 5 of them empty). With an explicit number, a
label at or above it is refused.

Images: ``Dataset.image_shape`` is ``(height, width)`` for image data (digits 8x8, IDX files
from their header, an ``.npz`` file with an ``image_shape`` entry) and None for tabular data,
so that image augmentation can be restricted to ``Dataset.is_image``.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import check_choice, check_finite_array, check_positive_int, describe

__all__ = [
    "DEFAULT_TEST_FRACTION",
    "Dataset",
    "EmptyClassWarning",
    "check_compatible",
    "load_dataset",
    "load_digits",
    "load_idx",
    "load_npz",
    "load_train_and_test",
    "save_npz",
    "train_test_split",
]

logger = logging.getLogger(__name__)

#: Fraction of each class held out for testing when :func:`train_test_split` gets no sizes.
DEFAULT_TEST_FRACTION = 0.22

_IDX_SPLITS = ("train", "t10k")
_IDX_FILE_PATTERN = re.compile(
    r"^(?P<split>train|t10k)-(?P<kind>images|labels)[.-]idx\d-ubyte(?:\.gz)?$"
)
_IDX_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_SCHEMES = ("digits", "idx", "npz")
# at most this many class numbers are listed in a message
_LISTED = 20


class EmptyClassWarning(UserWarning):
    """Some classes below the number of classes have no sample (e.g. after a stray label)."""


def _listing(values: Sequence[int] | NDArray[np.int64], total: int | None = None) -> str:
    """``"3, 4, 5"``, shortened after :data:`_LISTED` values (``total`` of them in all)."""
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
        labels = _as_integer_array(owner, "labels", labels)
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
        positions = _as_integer_array(owner, "indices", positions)
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
        f"{owner}: labels must {allowed}, got {noun} {_listing(values)} "
        f"({int(bad.sum())} of {labels.size} samples)."
    )


def _warn_empty(prefix: str, labels: NDArray[np.int64], n_classes: int, noun: str) -> None:
    """Warn (EmptyClassWarning) if some classes below ``n_classes`` have no label."""
    empty, count = _empty_classes(labels, n_classes)
    if count == 0:
        return
    verb = "has" if count == 1 else "have"
    warnings.warn(
        f"{prefix}class{'es' if count > 1 else ''} {_listing(empty, count)} {verb} no {noun}; "
        f"the labels are {_listing(np.unique(labels))}. Pass n_classes to fix the number of "
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


def _as_integer_array(owner: str, name: str, value: Any) -> NDArray[np.int64]:
    """Check that ``value`` is a non-empty 1-D array of integers and return it as int64."""
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


def load_idx(
    directory: str | Path, *, split: str | None = None, n_classes: int | None = None
) -> Dataset:
    """Load MNIST-style IDX images and labels from a directory.

    The directory must hold ``{split}-images-idx3-ubyte`` and ``{split}-labels-idx1-ubyte``
    (a ``.`` may replace the ``-`` before ``idx``; either file may be gzipped, with or without a
    ``.gz`` suffix), where ``split`` is ``train`` or ``t10k``. This is the layout of MNIST and
    Fashion-MNIST. Images are flattened row by row and divided by 255; ``image_shape`` is their
    (rows, columns) from the header.

    Parameters
    ----------
    directory : str or Path
        Directory holding the IDX files.
    split : {'train', 't10k'}, optional
        Which pair of files to read. Needed only when the directory holds both.
    n_classes : int, optional
        Number of classes; default one more than the largest label (see :class:`Dataset`).

    Returns
    -------
    Dataset
        Named ``"idx:DIRECTORY"``.

    Raises
    ------
    ValidationError
        If the directory is missing, the files are missing or ambiguous (the message lists the
        files found), or a file is not a well-formed unsigned-byte IDX file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> def idx_header(ndim, *dims):
    ...     return bytes([0, 0, 0x08, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    >>> images = idx_header(3, 2, 2, 4) + bytes(range(0, 256, 16))  # two 2x4 images
    >>> labels = idx_header(1, 2) + bytes([1, 0])
    >>> _ = (folder / "t10k-images-idx3-ubyte").write_bytes(images)
    >>> _ = (folder / "t10k-labels-idx1-ubyte").write_bytes(labels)
    >>> data = load_idx(folder)
    >>> data.n_samples, data.n_features, data.n_classes, data.labels.tolist(), data.image_shape
    (2, 8, 2, [1, 0], (2, 4))
    """
    owner = "load_idx"
    folder = Path(directory)
    if not folder.is_dir():
        raise ValidationError(
            f"{owner}: directory must be an existing directory, got {str(folder)!r}."
        )
    if split is not None:
        split = check_choice(owner, "split", split, _IDX_SPLITS)
    paths = _find_idx_files(folder, split)
    images = _read_idx(paths["images"], expected_ndim=3)
    labels = _read_idx(paths["labels"], expected_ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise ValidationError(
            f"{owner}: {paths['images'].name} holds {images.shape[0]} images but "
            f"{paths['labels'].name} holds {labels.shape[0]} labels."
        )
    logger.debug("Read %d images of shape %s from %s", images.shape[0], images.shape[1:], folder)
    return Dataset(
        inputs=images.reshape(images.shape[0], -1).astype(np.float64) / 255.0,
        labels=labels.astype(np.int64),
        n_classes=n_classes,
        name=f"idx:{directory}",
        image_shape=(images.shape[1], images.shape[2]),
    )


def _find_idx_files(folder: Path, split: str | None) -> dict[str, Path]:
    """Return the ``images`` and ``labels`` IDX paths of one split found in ``folder``."""
    owner = "load_idx"
    found = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    matches: dict[tuple[str, str], list[str]] = {}
    for file_name in found:
        match = _IDX_FILE_PATTERN.match(file_name)
        if match:
            matches.setdefault((match["split"], match["kind"]), []).append(file_name)
    listing = ", ".join(found[:20]) + (f", ... ({len(found)} files)" if len(found) > 20 else "")
    listing = listing or "none"
    complete = [
        name for name in _IDX_SPLITS if (name, "images") in matches and (name, "labels") in matches
    ]
    if split is None:
        if len(complete) > 1:
            raise ValidationError(
                f"{owner}: {str(folder)!r} holds both the 'train' and 't10k' splits; pass "
                f"split='train' or split='t10k'. Files found: {listing}."
            )
        if not complete:
            raise ValidationError(
                f"{owner}: {str(folder)!r} holds no complete pair of IDX files (expected e.g. "
                "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]). "
                f"Files found: {listing}."
            )
        split = complete[0]
    elif split not in complete:
        raise ValidationError(
            f"{owner}: {str(folder)!r} lacks the {split!r} split (expected "
            f"{split}-images-idx3-ubyte[.gz] and {split}-labels-idx1-ubyte[.gz]). "
            f"Files found: {listing}."
        )
    paths: dict[str, Path] = {}
    for kind in ("images", "labels"):
        candidates = matches[(split, kind)]
        if len(candidates) > 1:
            raise ValidationError(
                f"{owner}: {str(folder)!r} holds several {split} {kind} files "
                f"({', '.join(candidates)}); remove all but one."
            )
        paths[kind] = folder / candidates[0]
    return paths


def _read_idx(path: Path, *, expected_ndim: int) -> NDArray[np.uint8]:
    """Read one unsigned-byte IDX file (gzipped or not) and return its array."""
    owner = "load_idx"
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValidationError(f"{owner}: cannot read {str(path)!r}: {error}.") from None
    expected_magic = (_IDX_UNSIGNED_BYTE << 8) | expected_ndim
    if len(raw) < 4:
        raise ValidationError(
            f"{owner}: {path.name} is too short to be an IDX file ({len(raw)} bytes; the header "
            "alone takes at least 4)."
        )
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0:
        raise ValidationError(
            f"{owner}: {path.name} is not an IDX file: magic number 0x{magic:08X} must start with "
            f"two zero bytes (expected 0x{expected_magic:08X})."
        )
    if raw[2] != _IDX_UNSIGNED_BYTE:
        raise ValidationError(
            f"{owner}: {path.name} has IDX data type code 0x{raw[2]:02X} (magic number "
            f"0x{magic:08X}); only 0x08 (unsigned byte) is supported."
        )
    if raw[3] != expected_ndim:
        raise ValidationError(
            f"{owner}: {path.name} has {raw[3]} dimensions (magic number 0x{magic:08X}); "
            f"expected {expected_ndim} (magic number 0x{expected_magic:08X})."
        )
    header_size = 4 + 4 * expected_ndim
    if len(raw) < header_size:
        raise ValidationError(
            f"{owner}: {path.name} is truncated: its header needs {header_size} bytes, the file "
            f"holds {len(raw)}."
        )
    shape = tuple(
        int.from_bytes(raw[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(expected_ndim)
    )
    n_data_bytes = len(raw) - header_size
    if n_data_bytes != math.prod(shape):
        raise ValidationError(
            f"{owner}: {path.name} declares shape {shape}, i.e. {math.prod(shape)} data bytes, but "
            f"holds {n_data_bytes} after the header."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


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
    labels = _as_integer_array(f"{owner}({str(file_path)!r})", "y", arrays["y"])
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


def load_dataset(spec: str, *, split: str | None = None, n_classes: int | None = None) -> Dataset:
    """Load a data set from a short text spec.

    Parameters
    ----------
    spec : str
        ``"digits"`` (:func:`load_digits`), ``"idx:DIRECTORY"`` (:func:`load_idx`) or
        ``"npz:FILE"`` (:func:`load_npz`).
    split : {'train', 't10k'}, optional
        Passed to :func:`load_idx`; refused for the other schemes.
    n_classes : int, optional
        Number of classes, passed to the loader (see :class:`Dataset`): labels at or above it
        are refused. Default: the loader's (10 for digits, the ``.npz`` file's entry) or one
        more than the largest label.

    Returns
    -------
    Dataset
        The whole data set, not split: with :func:`check_compatible`, a separate test file.

    Raises
    ------
    ValidationError
        If the scheme is unknown (the message suggests the closest one) or the path is missing.

    Examples
    --------
    >>> load_dataset("digits").n_samples
    1797
    >>> load_dataset("digit")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fbsnn_brian.errors.ValidationError: load_dataset: scheme must be ... Did you mean 'digits'?
    """
    owner = "load_dataset"
    if not isinstance(spec, str):
        raise ValidationError(
            f"{owner}: spec must be a string such as 'digits', got {describe(spec)}."
        )
    scheme, separator, location = spec.partition(":")
    check_choice(owner, "scheme", scheme, _SCHEMES)
    if split is not None and scheme != "idx":
        raise ValidationError(
            f"{owner}: split applies only to 'idx:' specs, got split={split!r} for {spec!r}."
        )
    if scheme == "digits":
        if separator:
            raise ValidationError(f"{owner}: 'digits' takes no path, got spec {spec!r}.")
        return load_digits(n_classes=n_classes)
    if not location:
        raise ValidationError(
            f"{owner}: spec {spec!r} needs a path after the colon, e.g. '{scheme}:/data/mnist"
            f"{'.npz' if scheme == 'npz' else ''}'."
        )
    if scheme == "idx":
        return load_idx(location, split=split, n_classes=n_classes)
    return load_npz(location, n_classes=n_classes)


def check_compatible(train: Dataset, test: Dataset) -> Dataset:
    """Check that ``test`` can evaluate a network trained on ``train``; return it re-labelled.

    Parameters
    ----------
    train, test : Dataset
        The training set (its ``n_classes`` is the network's) and a test set, e.g. from a
        separate file.

    Returns
    -------
    Dataset
        ``test`` with the training set's ``n_classes``.

    Raises
    ------
    ValidationError
        If the numbers of features differ, or a test label is at or above the training set's
        ``n_classes`` (the message names both sizes and the labels).

    Examples
    --------
    >>> train = Dataset(inputs=[[0.0, 1.0], [1.0, 0.0]], labels=[0, 2], n_classes=3, name="a")
    >>> test = Dataset(inputs=[[0.5, 0.5]], labels=[1], n_classes=2, name="b")
    >>> check_compatible(train, test).n_classes
    3
    """
    owner = "check_compatible"
    for role, value in (("train", train), ("test", test)):
        if not isinstance(value, Dataset):
            raise ValidationError(f"{owner}: {role} must be a Dataset, got {describe(value)}.")
    if test.n_features != train.n_features:
        raise ValidationError(
            f"{owner}: the test set {test.name!r} has {test.n_features} features, the training "
            f"set {train.name!r} has {train.n_features}; they must be equal."
        )
    too_large = np.unique(test.labels[test.labels >= train.n_classes])
    if too_large.size:
        raise ValidationError(
            f"{owner}: the test set {test.name!r} has labels {_listing(too_large)} (largest "
            f"{int(too_large[-1])}, i.e. at least {int(too_large[-1]) + 1} classes), but the "
            f"training set {train.name!r} has n_classes={train.n_classes}; test labels must lie "
            f"in [0, {train.n_classes}). Give both files the same classes or pass n_classes."
        )
    if (
        train.image_shape is not None
        and test.image_shape is not None
        and train.image_shape != test.image_shape
    ):
        raise ValidationError(
            f"{owner}: the test set {test.name!r} holds images of shape {test.image_shape}, the "
            f"training set {train.name!r} images of shape {train.image_shape}; they must match."
        )
    return Dataset(
        inputs=test.inputs,
        labels=test.labels,
        n_classes=train.n_classes,
        name=test.name,
        image_shape=test.image_shape if test.image_shape is not None else train.image_shape,
    )


def load_train_and_test(
    train_spec: str,
    test_spec: str,
    *,
    n_classes: int | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
) -> tuple[Dataset, Dataset]:
    """Load a whole training file and a separate test file, without splitting.

    The training set fixes the number of classes (``n_classes`` or from its labels, see
    :class:`Dataset`); the test set is checked against it with :func:`check_compatible`. A
    test file may lack some classes without a warning.

    Parameters
    ----------
    train_spec, test_spec : str
        Specs as for :func:`load_dataset`, e.g. ``"npz:train.npz"`` and ``"npz:test.npz"``.
    n_classes : int, optional
        Number of classes of both sets; default that of the training set.
    train_split, test_split : {'train', 't10k'}, optional
        The IDX split of each spec, e.g. ``'train'`` and ``'t10k'`` for one MNIST directory.

    Returns
    -------
    train, test : tuple of Dataset

    Raises
    ------
    ValidationError
        As :func:`load_dataset` and :func:`check_compatible`.

    Examples
    --------
    >>> train, test = load_train_and_test("digits", "digits")
    >>> train.n_samples, test.n_samples, test.n_classes
    (1797, 1797, 10)
    """
    train = load_dataset(train_spec, split=train_split, n_classes=n_classes)
    with warnings.catch_warnings():
        # a test file that lacks classes is no fault; its labels are checked below
        warnings.simplefilter("ignore", EmptyClassWarning)
        test = load_dataset(test_spec, split=test_split)
    return train, check_compatible(train, test)


def train_test_split(
    dataset: Dataset,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
) -> tuple[Dataset, Dataset]:
    """Split a data set into a training part and a test part.

    With sizes given the split is by position and ``seed`` is not used:

    * ``train_size`` and ``test_size``: the first ``train_size`` samples train, the last
      ``test_size`` samples test (``train_size + test_size <= n_samples``; samples in between are
      left out).
    * ``train_size`` only: the first ``train_size`` samples train, the rest test.
    * ``test_size`` only: the last ``test_size`` samples test, the rest train.

    With neither, the split is stratified and seeded: for each class ``c`` in ascending order, the
    ``n_c`` positions of that class are shuffled with ``numpy.random.default_rng(seed)`` and the
    first ``floor(DEFAULT_TEST_FRACTION * n_c + 0.5)`` of them go to the test part (22 % of each
    class, rounded half up; the rest train). Both parts keep the original sample order. The 1797
    digits split into 1402 training and 395 test samples.

    Both parts keep the data set's ``n_classes``; an :class:`EmptyClassWarning` names the
    classes that have samples but none in the training part. Every split leaves a test part:
    to train on a whole file, evaluate on a separate test file (:func:`load_train_and_test`).

    Parameters
    ----------
    dataset : Dataset
        The data set to split.
    train_size, test_size : int, optional
        Positive sample counts, see above.
    seed : int, default 0
        Non-negative seed of the stratified shuffle.

    Returns
    -------
    train, test : tuple of Dataset

    Raises
    ------
    ValidationError
        If a size is not a positive integer (``test_size=0`` included: a split needs a test
        part), the sizes leave a part empty or overlap, or the stratified rule leaves the test
        part empty (every class has fewer than 3 samples).

    Examples
    --------
    >>> train, test = train_test_split(load_digits())
    >>> train.n_samples, test.n_samples
    (1402, 395)
    >>> train, test = train_test_split(load_digits(), train_size=1000, test_size=500)
    >>> train.n_samples, test.n_samples
    (1000, 500)
    """
    owner = "train_test_split"
    if not isinstance(dataset, Dataset):
        raise ValidationError(f"{owner}: dataset must be a Dataset, got {describe(dataset)}.")
    train, test = _split(owner, dataset, train_size, test_size, seed)
    missing = np.setdiff1d(np.unique(dataset.labels), train.labels)
    if missing.size:
        noun = "class" if missing.size == 1 else "classes"
        warnings.warn(
            f"{owner}: {noun} {_listing(missing)} of {dataset!r} "
            f"{'has' if missing.size == 1 else 'have'} no training sample (all in the test "
            f"part); the training labels are {_listing(np.unique(train.labels))}. Use the "
            "stratified split (no sizes) or reorder the data.",
            EmptyClassWarning,
            stacklevel=2,
        )
    return train, test


_WHOLE_FILE = (
    "; to train on the whole data set, load the test set from its own file "
    "(load_train_and_test(train_spec, test_spec), or load_dataset and check_compatible)"
)


def _split(
    owner: str, dataset: Dataset, train_size: int | None, test_size: int | None, seed: int
) -> tuple[Dataset, Dataset]:
    n_samples = dataset.n_samples
    if train_size is not None:
        train_size = check_positive_int(owner, "train_size", train_size)
    if test_size is not None:
        if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
            if test_size == 0:
                raise ValidationError(
                    f"{owner}: test_size must be a positive integer, got 0: a split needs a "
                    f"test part{_WHOLE_FILE}."
                )
        test_size = check_positive_int(owner, "test_size", test_size)
    if train_size is not None and test_size is not None:
        if train_size + test_size > n_samples:
            raise ValidationError(
                f"{owner}: train_size + test_size must be at most n_samples={n_samples} so the "
                f"parts do not overlap, got {train_size} + {test_size} = {train_size + test_size}."
            )
        positions = np.arange(n_samples)
        return dataset.subset(positions[:train_size]), dataset.subset(positions[-test_size:])
    given_name, given = (
        ("train_size", train_size) if train_size is not None else ("test_size", test_size)
    )
    if given is not None:
        if given >= n_samples:
            raise ValidationError(
                f"{owner}: {given_name} must be below n_samples={n_samples} to leave samples for "
                f"the other part, got {given}"
                f"{_WHOLE_FILE if given_name == 'train_size' else ''}."
            )
        n_train = given if train_size is not None else n_samples - given
        positions = np.arange(n_samples)
        return dataset.subset(positions[:n_train]), dataset.subset(positions[n_train:])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(
            f"{owner}: seed must be a non-negative integer, got {describe(seed)}."
        )
    generator = np.random.default_rng(int(seed))
    is_test = np.zeros(n_samples, dtype=bool)
    for label in range(dataset.n_classes):
        members = np.flatnonzero(dataset.labels == label)
        n_test = math.floor(DEFAULT_TEST_FRACTION * members.size + 0.5)
        is_test[generator.permutation(members)[:n_test]] = True
    if not is_test.any():
        raise ValidationError(
            f"{owner}: the stratified split of {dataset!r} leaves no test samples (each class "
            "needs at least 3 samples to contribute one); pass train_size or test_size instead."
        )
    return dataset.subset(~is_test), dataset.subset(is_test)
