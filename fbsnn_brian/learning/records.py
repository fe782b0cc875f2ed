"""What a Trainer records about a run: its history Dataset and its checkpoint fingerprint.

:func:`training_history` turns the per-epoch records of
:meth:`~fbsnn_brian.learning.trainer.Trainer.fit` into the CF-described history Dataset, with
the run's provenance in its attributes; :func:`run_fingerprint` is the JSON-serialisable
description of a configuration and its data that a checkpoint must match to be resumed
(:mod:`fbsnn_brian.io.checkpoint`). Both read a Trainer's public attributes only (typed
``Any``: this module sits below the trainer, which imports it).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian.io.netcdf import describe_dataset
from fbsnn_brian.version import __version__

__all__ = ["run_fingerprint", "training_history"]


def training_history(trainer: Any, records: dict[str, list[float]]) -> xr.Dataset:
    """The history Dataset over ``epoch`` of the records, described by the CF conventions.

    Parameters
    ----------
    trainer : Trainer
        Supplies the provenance attributes (device, network, protocol, rule, ...).
    records : dict of str to list of float
        One list per recorded quantity, one value per finished epoch.
    """
    epochs = np.arange(1, len(records["train_accuracy"]) + 1)
    data = {key: ("epoch", np.asarray(values, dtype=np.float64)) for key, values in records.items()}
    engine = trainer.engine
    history = xr.Dataset(
        data,
        coords={"epoch": epochs},
        attrs={
            "title": "fbsnn_brian training history",
            "toolkit_version": __version__,
            "device": trainer.device,
            "network": trainer.network.config_json(),
            "protocol": trainer.protocol.to_json(),
            "schedule": trainer.schedule,
            "rule": trainer.rule.name,
            "seed": trainer.seed,
            "chunk_size": trainer.chunk_size,
            "compile_time_s": float(engine.compile_time_s),
            "build_cache_hit": int(engine.build_cache_hit),
        },
    )
    # long names and units from the one vocabulary of the exports
    return describe_dataset(history, where="Trainer.fit")


def run_fingerprint(
    trainer: Any,
    inputs: NDArray[np.float64],
    labels: NDArray[np.int64],
    epochs: int,
    validated: bool,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (JSON-serialisable).

    The configuration of the trainer, its network and protocol, the number of epochs, whether
    a validation set is followed, and a SHA-256 digest of the training inputs and labels.
    """
    digest = hashlib.sha256(np.ascontiguousarray(inputs).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return {
        "network": trainer.network.config(),
        "protocol": trainer.protocol.describe(),
        "rule": trainer.rule.describe(),
        "device": trainer.device,
        "chunk_size": trainer.chunk_size,
        "schedule": trainer.schedule,
        "seed": trainer.seed,
        "augmentation": repr(trainer.augmentation),
        "epochs": epochs,
        "validation": validated,
        "data_sha256": digest.hexdigest(),
    }
