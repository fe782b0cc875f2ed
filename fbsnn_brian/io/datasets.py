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

The :class:`Dataset` class lives in :mod:`fbsnn_brian.io.labelled`, the IDX reader in
:mod:`fbsnn_brian.io.idx` and the digits and ``.npz`` loaders in :mod:`fbsnn_brian.io.loaders`;
every public name is re-exported here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.idx import load_idx
from fbsnn_brian.io.labelled import Dataset, EmptyClassWarning, format_listing
from fbsnn_brian.io.loaders import load_digits, load_npz, save_npz
from fbsnn_brian.validation import check_choice, check_positive_int, describe

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

#: Fraction of each class held out for testing when :func:`train_test_split` gets no sizes.
DEFAULT_TEST_FRACTION = 0.22


_SCHEMES = ("digits", "idx", "npz")


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
            f"{owner}: the test set {test.name!r} has labels {format_listing(too_large)} (largest "
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
            f"{owner}: {noun} {format_listing(missing)} of {dataset!r} "
            f"{'has' if missing.size == 1 else 'have'} no training sample (all in the test "
            f"part); the training labels are {format_listing(np.unique(train.labels))}. Use the "
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
