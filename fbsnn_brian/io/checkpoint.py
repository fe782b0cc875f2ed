"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``.npz`` file written atomically (:mod:`fbsnn_brian.files`), holding

* every weight and bias of the network;
* the optimizer state of the training simulation (momentum velocities, mini-batch sums);
* the states of the three random generators (epoch shuffling, augmentation, input dropout);
* the position: the epoch in progress, the next sample of its shuffled order and that order;
* the history records of the finished epochs and the partial counters of the current one;
* a fingerprint of the configuration and the data, checked on resume so that a checkpoint
  never silently continues a different run.

Training is deterministic given these (the simulation draws no random numbers), so a run
killed at any point and resumed from its last checkpoint ends with the same weights as a run
that was never interrupted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.files import read_npz, write_npz_atomically
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = ["TrainingState", "load_checkpoint", "save_checkpoint"]

_OPTIMIZER = "optimizer::"
_WEIGHTS = "weights::"


@dataclass
class TrainingState:
    """Where a training run stands (see the module docstring).

    Attributes
    ----------
    fingerprint : dict
        Configuration and data digest of the run.
    epoch : int
        Epoch in progress (0-based); equal to the number of finished epochs at a boundary.
    next_sample : int
        Position, in the epoch's order, of the next sample to train.
    order : ndarray of int or None
        The epoch's shuffled order, or None at an epoch boundary (not drawn yet).
    generators : dict
        ``bit_generator.state`` of each named random generator.
    optimizer_state : dict
        Arrays of the training simulation's optimizer state by label.
    records : dict
        Per-epoch history values of the finished epochs.
    partial : dict
        Counters of the epoch in progress (``spikes``, ``events``, ``elapsed_s``).
    """

    fingerprint: dict[str, Any]
    epoch: int = 0
    next_sample: int = 0
    order: NDArray[np.int64] | None = None
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)
    optimizer_state: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    records: dict[str, list[float]] = field(default_factory=dict)
    partial: dict[str, float] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str], network: FeedbackNetwork, state: TrainingState
) -> Path:
    """Write the network's weights and ``state`` to ``path`` (an ``.npz`` file), atomically."""
    meta = {
        "fingerprint": state.fingerprint,
        "epoch": state.epoch,
        "next_sample": state.next_sample,
        "generators": state.generators,
        "records": state.records,
        "partial": state.partial,
        "network": network.config(),
    }
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
    if state.order is not None:
        arrays["order"] = np.asarray(state.order, dtype=np.int64)
    for name, value in network.weight_arrays().items():
        arrays[_WEIGHTS + name] = value
    for label, value in state.optimizer_state.items():
        arrays[_OPTIMIZER + label] = value
    return write_npz_atomically(path, arrays)


def load_checkpoint(
    path: str | os.PathLike[str], network: FeedbackNetwork, fingerprint: dict[str, Any]
) -> TrainingState:
    """Read a checkpoint into ``network`` and return the training state.

    Raises
    ------
    ValidationError
        If the file is missing or unreadable, or its fingerprint differs from ``fingerprint``
        (the message names the differing entries).
    """
    data, meta = read_npz(
        path,
        owner="load_checkpoint",
        noun="checkpoint",
        what="a checkpoint written by fbsnn_brian",
        json_key="meta",
    )
    stored_fingerprint = meta["fingerprint"]
    if stored_fingerprint != fingerprint:
        keys = sorted(set(stored_fingerprint) | set(fingerprint))
        differing = [k for k in keys if stored_fingerprint.get(k) != fingerprint.get(k)]
        raise ValidationError(
            f"load_checkpoint: {str(path)!r} belongs to a different run; these settings "
            f"differ: {', '.join(differing)}. Resume with the configuration and data it was "
            "written with, or start a new run."
        )
    network.set_weight_arrays(
        {k[len(_WEIGHTS) :]: v for k, v in data.items() if k.startswith(_WEIGHTS)}
    )
    return TrainingState(
        fingerprint=stored_fingerprint,
        epoch=int(meta["epoch"]),
        next_sample=int(meta["next_sample"]),
        order=np.asarray(data["order"], dtype=np.int64) if "order" in data else None,
        generators=meta["generators"],
        optimizer_state={
            k[len(_OPTIMIZER) :]: np.asarray(v, dtype=np.float64)
            for k, v in data.items()
            if k.startswith(_OPTIMIZER)
        },
        records={k: [float(x) for x in v] for k, v in meta["records"].items()},
        partial={k: float(v) for k, v in meta["partial"].items()},
    )
