"""``fbsnn check alignment``: SPIDE's update against the ground truth of the simulated network.

The network, its biophysics, the phases and the data come from the settings of ``fbsnn train``
(its flags or a ``--config`` file over the defaults of
:class:`fbsnn_brian.experiments.settings.RunSettings` and the data set's preset), or from a
trained run directory (``--run``: its own settings and its trained weights, ``state``
``'trained'``). The samples are the first ``n_samples`` of the training part, never the test
part. The measurement is :func:`fbsnn_brian.experiments.alignment.
measure_alignment`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from fbsnn_brian.build.devices.registry import get_device_spec
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments import runs
from fbsnn_brian.experiments.alignment import measure_alignment
from fbsnn_brian.experiments.run_data import run_datasets
from fbsnn_brian.experiments.settings import RunSettings

if TYPE_CHECKING:
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.protocol import Protocol

__all__ = ["check_alignment"]


def _protocol(settings: RunSettings, network: FeedbackNetwork) -> Protocol:
    from fbsnn_brian.model.plasticity import SPIDEPlasticity

    # the update's direction only: no weight decay, momentum or mini-batches
    plasticity = SPIDEPlasticity(
        learning_rate=settings.training.learning_rate,
        scale=settings.training.scale,
        feedback=settings.training.feedback,
    )
    return runs.protocol_from_settings(settings, network, plasticity)


def _from_run(run_dir: str) -> tuple[RunSettings, FeedbackNetwork]:
    from fbsnn_brian.model.network import FeedbackNetwork

    directory = Path(run_dir)
    metrics = directory / "metrics.json"
    if not metrics.is_file():
        raise ValidationError(
            f"fbsnn check alignment --run: {run_dir!r} is not a finished run directory (no "
            "metrics.json); give a directory written by fbsnn train."
        )
    settings = RunSettings.from_saved(json.loads(metrics.read_text())["config"])
    return settings, FeedbackNetwork.load(directory / "weights.npz")


def check_alignment(
    config: runs.TrainingConfig,
    *,
    run_dir: str | None = None,
    n_samples: int = 8,
    n_directions: int = 32,
    duration_tau: float = 1000.0,
    relative_step: float = 0.1,
    transfer_duration_tau: float = 2000.0,
    fluctuations: bool = True,
) -> dict[str, object]:
    """Cosines of SPIDE's update with the ideal, measured and finite-difference gradients.

    Parameters
    ----------
    config : dict
        Settings of ``fbsnn train`` (None values are not given); ignored with ``run_dir``.
    run_dir : str, optional
        A run written by ``fbsnn train``: its settings and trained weights are measured.
    n_samples : int
        Training samples the mean loss is taken over.
    n_directions, duration_tau, relative_step
        Of the finite differences (:func:`fbsnn_brian.experiments.alignment.ground_truth`).
    transfer_duration_tau : float
        Simulated time per current of the measured transfer functions, in tau.
    fluctuations : bool
        Include each layer's input fluctuations in its transfer function.

    Returns
    -------
    dict
        The keys of :func:`~fbsnn_brian.experiments.alignment.measure_alignment`, plus
        ``network`` (its configuration) and ``device``: the device of the update and of the
        finite differences, the ground-truth device of the run's device
        (:attr:`~fbsnn_brian.build.devices.registry.Device.ground_truth`).
    """
    owner = "fbsnn check alignment"
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValidationError(f"{owner}: --samples must be a positive integer, got {n_samples!r}.")
    for flag, value in (
        ("--duration", duration_tau),
        ("--transfer-duration", transfer_duration_tau),
    ):
        if not value > 0:
            raise ValidationError(f"{owner}: {flag} must be > 0 tau, got {value!r}.")
    if run_dir is not None:
        settings, network = _from_run(run_dir)
        state = "trained"
        train = run_datasets(settings.data).train
    else:
        settings, data = runs.resolve_run(config)
        state = "initial"
        train = data.train
        network = runs.network_from_settings(settings, train.n_features, train.n_classes)
    if n_samples > train.n_samples:
        raise ValidationError(
            f"{owner}: --samples must be at most {train.n_samples} (the training part), got "
            f"{n_samples}."
        )
    # the update and the finite differences, on the device the registry names for this one
    device = get_device_spec(
        owner, settings.training.device, "train", parameter="--device"
    ).ground_truth
    result = measure_alignment(
        network,
        _protocol(settings, network),
        train.inputs[:n_samples],
        train.labels[:n_samples],
        state=state,
        device=device,
        n_directions=n_directions,
        duration_tau=duration_tau,
        relative_step=relative_step,
        transfer_duration_tau=transfer_duration_tau,
        fluctuations=fluctuations,
        seed=int(settings.network.seed),
    )
    return {**result, "network": network.config(), "device": device}
