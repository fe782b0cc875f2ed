"""A run's data: its training, test and validation parts, split by the toolkit's rules.

:func:`split_dataset` splits a data set spec into training and test parts; :func:`run_datasets`
does it for the ``[data]`` settings of a run (:class:`~fbsnn_brian.experiments.settings.
DataSettings`) and carves the validation part from the end of the training part.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.settings import DataSettings
from fbsnn_brian.io.datasets import (
    Dataset,
    check_compatible,
    load_dataset,
    load_train_and_test,
    train_test_split,
)

__all__ = ["RunData", "has_own_partition", "run_datasets", "split_dataset"]


def split_dataset(
    spec: str,
    *,
    train_size: int | None,
    test_size: int | None,
    split_seed: int,
    test_spec: str | None = None,
    n_classes: int | None = None,
) -> tuple[Dataset, Dataset]:
    """Training and test parts of a data set, by the toolkit's rules.

    * ``test_spec`` given: ``spec`` trains (its first ``train_size`` samples if given) and
      ``test_spec`` tests (its last ``test_size`` samples if given); nothing is split.
    * ``spec`` an ``idx:`` directory holding both ``train-*`` and ``t10k-*`` files (the MNIST
      layout): its own partition, the ``train`` files training and the ``t10k`` files testing,
      with the sizes applied as above.
    * otherwise :func:`fbsnn_brian.io.datasets.train_test_split` of the one data set.

    ``n_classes`` (default: the largest training label + 1) is checked against every label.
    """
    if test_spec is None and has_own_partition(spec):
        train, test = load_train_and_test(
            spec, spec, n_classes=n_classes, train_split="train", test_split="t10k"
        )
    elif test_spec is not None:
        train, test = load_train_and_test(spec, test_spec, n_classes=n_classes)
    else:
        return train_test_split(
            load_dataset(spec, n_classes=n_classes),
            train_size=train_size,
            test_size=test_size,
            seed=split_seed,
        )
    if train_size is not None:
        train = train.subset(np.arange(min(train_size, train.n_samples)))
    if test_size is not None:
        test = test.subset(np.arange(max(0, test.n_samples - test_size), test.n_samples))
    return train, check_compatible(train, test)


def has_own_partition(spec: str) -> bool:
    """Whether ``spec`` is an ``idx:`` directory holding both ``train-*`` and ``t10k-*`` files."""
    if not spec.startswith("idx:"):
        return False
    folder = Path(spec[len("idx:") :])
    return any(folder.glob("train-*")) and any(folder.glob("t10k-*"))


class RunData(NamedTuple):
    """The parts of a run's data: training, test and (``validation_size`` > 0) validation."""

    train: Dataset
    test: Dataset
    validation: Dataset | None


def run_datasets(data: DataSettings) -> RunData:
    """Training, test and (``validation_size`` > 0) validation parts of a run's data."""
    train, test = split_dataset(
        data.dataset,
        train_size=data.train_size,
        test_size=data.test_size,
        split_seed=data.split_seed,
        test_spec=data.test_dataset,
        n_classes=data.n_classes,
    )
    size = data.validation_size
    if not size:
        return RunData(train, test, None)
    if not isinstance(size, int) or not 0 < size < train.n_samples:
        raise ValidationError(
            f"fbsnn train --validation-size: must be a whole number in [0, {train.n_samples}) "
            f"(the training part has {train.n_samples} samples), got {size!r}."
        )
    cut = train.n_samples - size
    return RunData(
        train.subset(np.arange(cut)), test, train.subset(np.arange(cut, train.n_samples))
    )
