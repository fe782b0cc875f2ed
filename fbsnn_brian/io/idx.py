"""Reader of MNIST-style IDX files (images and labels, gzipped or not).

:func:`load_idx` finds the ``{split}-images-idx3-ubyte`` and ``{split}-labels-idx1-ubyte``
pair of one split in a directory and reads it into a :class:`~fbsnn_brian.io.labelled.Dataset`.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.labelled import Dataset
from fbsnn_brian.validation import check_choice

__all__ = ["load_idx"]

logger = logging.getLogger(__name__)


_IDX_SPLITS = ("train", "t10k")
_IDX_FILE_PATTERN = re.compile(
    r"^(?P<split>train|t10k)-(?P<kind>images|labels)[.-]idx\d-ubyte(?:\.gz)?$"
)
_IDX_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


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
