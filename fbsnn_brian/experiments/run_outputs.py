"""What a finished run writes beside its metrics: weights, history, recordings, alignment.

:func:`write_results` is called by :func:`fbsnn_brian.experiments.runs.train_run` once training
and the test are done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.io.datasets import Dataset

__all__ = ["ALIGNMENT_SAMPLES", "write_results"]

# test samples on which a run measures the cosine of its rule's update with the IDE gradient
ALIGNMENT_SAMPLES = 5


def write_results(
    directory: Path, trainer: Any, history: Any, settings: dict[str, Any], test: Dataset
) -> dict[str, Any]:
    """Write the trained network, its history and recordings; return the gradient alignment.

    The alignment is :func:`fbsnn_brian.experiments.comparison.alignment_measures` at the
    trained state, keys prefixed ``gradient_`` (``gradient_cosine_vs_ide``, and with
    ``alignment_directions`` > 0 ``gradient_cosine_vs_measured_ide``,
    ``gradient_cosine_vs_finite_difference``, ``gradient_measured_ide_vs_finite_difference``).
    """
    from fbsnn_brian.build.devices.registry import get_device_spec
    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.experiments.comparison import alignment_measures
    from fbsnn_brian.io.netcdf import write_dataset
    from fbsnn_brian.io.weights import weights_to_xarray
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    network, protocol, rule = trainer.network, trainer.protocol, trainer.rule
    network.save(directory / "weights.npz")
    write_dataset(weights_to_xarray(network), directory / "weights.nc")
    write_dataset(history, directory / "history.nc")
    recording = simulate(
        network,
        Protocol([FreePhase(duration=settings["free_tau"] * network.tau)]),
        inputs=test.inputs[:5],
        device="numpy",
    ).with_samples(labels=test.labels[:5], positions=np.arange(min(5, test.n_samples)))
    write_dataset(recording.to_xarray(), directory / "recording.nc")
    # both phases of two test samples: forward spikes and the error units' events
    learning_recording = (
        TrainingSimulation(network, protocol, device="numpy")
        .record(test.inputs[:2], test.labels[:2])
        .with_samples(labels=test.labels[:2], positions=np.arange(min(2, test.n_samples)))
    )
    write_dataset(learning_recording.to_xarray(), directory / "learning_recording.nc")
    # the learning signal of this condition against the exact gradient, at the trained state
    chosen = (test.inputs[:ALIGNMENT_SAMPLES], test.labels[:ALIGNMENT_SAMPLES])
    where = get_device_spec("fbsnn train", settings["device"], "train").ground_truth
    directions = settings["alignment_directions"]
    measures = alignment_measures(
        rule, network, protocol, *chosen, "numpy", directions=directions, ground_truth_device=where
    )
    # the ground truth's cosines only where measured (JSON has no NaN)
    return {
        f"gradient_{key}": value
        for key, value in measures.items()
        if key == "cosine_vs_ide" or np.isfinite(value)
    }
