"""Training runs on disk: what ``fbsnn train`` writes and ``fbsnn evaluate`` reads.

A run directory holds

* ``config.json``: the settings, written first (``fbsnn train --resume`` reads them);
* ``checkpoint.npz``: the last checkpoint (:mod:`fbsnn_brian.io.checkpoint`);
* ``weights.npz``: the trained network (:meth:`FeedbackNetwork.save`), and the same weights as
  an xarray Dataset with named post/pre dimensions in ``weights.nc``
  (:mod:`fbsnn_brian.io.weights`);
* ``metrics.json``: per-epoch train and test accuracy, the final ``test_accuracy``, training
  ``samples_per_s``, ``wall_time_s``, mean forward and backward firing rates, the cosine of the
  rule's update with the exact IDE gradient on a few test samples at the trained state
  (``gradient_cosine_vs_ide``), the data split and the whole configuration;
* ``history.nc``: the training history Dataset (:meth:`Trainer.fit`);
* ``recording.nc``: every spike and rate of the free phase of a few test samples;
* ``learning_recording.nc``: both phases of two test samples (forward spikes, and the error
  units' +delta / -delta events of the perturbed phase), without learning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.presets import default_preset
from fbsnn_brian.experiments.run_data import (
    RunData,
    has_own_partition,
    run_datasets,
    split_dataset,
)
from fbsnn_brian.experiments.run_outputs import write_results
from fbsnn_brian.experiments.settings import (
    DataSettings,
    RunSettings,
    SettingValue,
    check_names,
    default_values,
    preset_values,
)
from fbsnn_brian.files import write_json_atomically
from fbsnn_brian.interrupt import Interrupted
from fbsnn_brian.io.datasets import Dataset, load_dataset

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import NDArray

    from fbsnn_brian.learning.trainer import Trainer
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import SPIDEPlasticity
    from fbsnn_brian.model.protocol import Protocol as PhaseProtocol

__all__ = [
    "DEFAULTS",
    "Fit",
    "Metrics",
    "TrainingConfig",
    "evaluate_run",
    "fit_of",
    "network_from_settings",
    "protocol_from_settings",
    "resolve_run",
    "resolve_settings",
    "train_run",
    "trainer_from_settings",
]

#: Settings as given (setting name -> value; None: not given): a run file, the options of
#: ``fbsnn train``, a ``config.json``.
TrainingConfig = Mapping[str, SettingValue]

#: What :func:`train_run` and :func:`evaluate_run` return (and write to ``metrics.json``).
Metrics = dict[str, object]

#: What ``samples_per_s`` in metrics.json and the printed summary measure.
SAMPLES_PER_S = (
    "training samples presented per second of training simulation (all epochs; compilation, "
    "the per-epoch evaluations and the final test excluded)"
)

logger = logging.getLogger(__name__)

#: Setting name -> default: a view of :class:`~fbsnn_brian.experiments.settings.RunSettings`,
#: where every default is written.
DEFAULTS: dict[str, SettingValue] = default_values()


def network_from_settings(settings: RunSettings, n_inputs: int, n_classes: int) -> FeedbackNetwork:
    """The FeedbackNetwork a run's settings describe (times given in units of tau = 1 ms)."""
    from brian2 import ms

    from fbsnn_brian.model.biophysics import Biophysics
    from fbsnn_brian.model.network import FeedbackNetwork

    tau = 1 * ms
    net = settings.network
    biophysics = Biophysics(
        synapse=net.synapse,
        tau_syn=net.tau_syn * tau,
        e_excitatory=net.e_excitatory,
        e_inhibitory=net.e_inhibitory,
        reset=net.reset,
        delay=net.delay * tau,
        delay_spread=net.delay_spread * tau,
        noise_sigma=net.noise_sigma,
        noise_tau=net.noise_tau * tau if net.noise_tau else None,
        excitatory_fraction=net.excitatory_fraction or None,
    )
    return FeedbackNetwork(
        n_inputs=n_inputs,
        layer_sizes=net.layers,
        n_classes=n_classes,
        neuron=net.neuron,
        tau_m=net.tau_m * tau,
        tau_a=net.tau_a * tau,
        b_a=net.b_a,
        tau=tau,
        dt=net.dt * tau,
        refractory=net.refractory * tau,
        seed=net.seed,
        biophysics=biophysics,
        rate_estimate=net.rate_estimate,
    )


def _run_directory(out: str | os.PathLike[str] | None, *, resume: bool, overwrite: bool) -> Path:
    """The run directory, checked but not created (created once every setting is valid)."""
    if resume:
        if out is None or not (Path(out) / "config.json").is_file():
            raise ValidationError(
                f"fbsnn train --resume: {str(out)!r} is not a run directory (no config.json); "
                "give the --out directory of the run to continue."
            )
        return Path(out)
    if out is None:
        return Path("runs") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise ValidationError(f"fbsnn train --out: {str(out)!r} exists and is not a directory.")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise ValidationError(
            f"fbsnn train --out: {str(out)!r} is not empty (it holds an earlier run); choose "
            "another directory, continue that run with --resume, or replace it with --overwrite."
        )
    return directory


def _resumed_config(directory: Path, config: TrainingConfig) -> dict[str, SettingValue]:
    """The saved configuration of a resumed run, with ``epochs`` extended where possible."""
    saved: dict[str, SettingValue] = json.loads((directory / "config.json").read_text())
    given = {key: value for key, value in config.items() if value is not None}
    others = sorted(set(given) - {"epochs"})
    if others:
        raise ValidationError(
            f"fbsnn train --resume: the run continues with its own configuration; "
            f"{', '.join('--' + key.replace('_', '-') for key in others)} cannot change it "
            "(only --epochs can extend it). Start a new run to change settings."
        )
    epochs = given.get("epochs", saved["epochs"])
    if epochs != saved["epochs"]:
        if saved["schedule"] != "constant":
            raise ValidationError(
                f"fbsnn train --resume --epochs {epochs}: the run was trained for "
                f"{saved['epochs']} epochs with the {saved['schedule']!r} learning-rate schedule, "
                "which depends on the number of epochs; only a run with the constant schedule "
                "can be extended. Start a new run instead."
            )
        if not isinstance(epochs, int) or not isinstance(saved["epochs"], int):
            raise ValidationError(
                f"fbsnn train --resume --epochs: must be an integer, got {epochs!r}."
            )
        if epochs < saved["epochs"]:
            raise ValidationError(
                f"fbsnn train --resume --epochs {epochs}: the run is configured for "
                f"{saved['epochs']} epochs; --epochs can only extend it."
            )
        saved["epochs"] = epochs
    return saved


def _given(config: TrainingConfig) -> dict[str, SettingValue]:
    """The settings ``config`` gives (None: not given); every key must be a setting."""
    check_names(config, owner="train_run")
    return {key: value for key, value in config.items() if value is not None}


def resolve_settings(config: TrainingConfig, train: Dataset) -> RunSettings:
    """Defaults, then the data set's preset, then the given settings (None: not given).

    The preset is ``config``'s, or the data set's (:func:`default_preset` of the training
    part ``train``); non-image data trains without image shifts.

    Raises
    ------
    ValidationError
        If a key is not a setting, or the preset is unknown.
    """
    given = _given(config)
    name = given.get("preset") or default_preset(
        str(given.get("dataset", "digits")), train.n_features
    )
    values = {**preset_values(name), **given, "preset": name}
    settings = RunSettings.from_values(values, owner="train_run")
    if settings.training.shift and not train.is_image:
        logger.warning(
            "the inputs of %s are not images: trained without image shifts (--shift 0)",
            settings.data.dataset,
        )
        settings = replace(settings, training=replace(settings.training, shift=0))
    return settings


def resolve_run(config: TrainingConfig) -> tuple[RunSettings, RunData]:
    """A run's settings and data from the given settings (None: not given).

    The data comes first (the defaults and the given data settings: a preset sets none of
    them); its training part chooses the preset (:func:`resolve_settings`).
    """
    data = run_datasets(RunSettings.from_values(_given(config), owner="train_run").data)
    return resolve_settings(config, data.train), data


def protocol_from_settings(
    settings: RunSettings, network: FeedbackNetwork, plasticity: SPIDEPlasticity
) -> PhaseProtocol:
    """The run's free and perturbed phases (in the network's tau), with ``plasticity``."""
    from fbsnn_brian.model.plasticity import PerturbedPhase
    from fbsnn_brian.model.protocol import FreePhase
    from fbsnn_brian.model.protocol import Protocol as PhaseProtocol

    return PhaseProtocol(
        [
            FreePhase(duration=settings.protocol.free_tau * network.tau),
            PerturbedPhase(duration=settings.protocol.perturbed_tau * network.tau),
        ],
        plasticity=plasticity,
    )


def trainer_from_settings(settings: RunSettings, train: Dataset, *, progress: bool) -> Trainer:
    """The Trainer (with its network and protocol) that a run's settings describe."""
    from fbsnn_brian.learning.augmentation import RandomShift
    from fbsnn_brian.learning.trainer import Trainer
    from fbsnn_brian.model.plasticity import SPIDEPlasticity
    from fbsnn_brian.rules.learning_rules import rule_from_name

    network = network_from_settings(settings, train.n_features, train.n_classes)
    learning = settings.training
    no_feedback = learning.no_feedback
    if no_feedback:  # the loop removed: W_fb = 0, never learned
        network.feedback_weights = np.zeros_like(network.feedback_weights)
    plasticity = SPIDEPlasticity(
        learning_rate=learning.learning_rate,
        scale=learning.scale,
        weight_decay=learning.weight_decay,
        momentum=learning.momentum,
        batch_size=learning.batch_size,
        max_feedback_gain=settings.network.max_feedback_gain,
        input_dropout=learning.input_dropout,
        feedback=learning.feedback,
        learn_feedback=not no_feedback,
    )
    protocol = protocol_from_settings(settings, network, plasticity)
    rule = rule_from_name(learning.rule)
    return Trainer(
        network,
        protocol,
        rule=rule,
        device=learning.device,
        use_gpu=not learning.cpu_only,
        chunk_size=learning.chunk_size or (200 if rule.in_simulation else 16),
        schedule=learning.schedule,
        seed=settings.network.seed,
        progress=progress,
        augmentation=RandomShift(max_shift=learning.shift, image_shape=train.image_shape)
        if learning.shift
        else None,
    )


class Fit(Protocol):
    """How a run trains: :meth:`Trainer.fit` or :meth:`DistributedTraining.fit`."""

    def __call__(
        self,
        inputs: NDArray[np.float64],
        labels: NDArray[np.int64],
        *,
        epochs: int,
        validation: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
    ) -> xr.Dataset: ...


def fit_of(trainer: Trainer, settings: RunSettings) -> Fit:
    """``trainer.fit``, or the same training spread over ``workers`` Dask workers."""
    scaling = settings.training
    if scaling.workers == 1 and scaling.scheduler is None:
        return trainer.fit
    from fbsnn_brian.learning.distributed import DistributedTraining

    return DistributedTraining(
        trainer,
        workers=scaling.workers,
        scheduler=scaling.scheduler,
        sync_every=scaling.sync_every,
    ).fit


def _note_split(settings: DataSettings, n_train: int, test: Dataset) -> None:
    """Say on stderr when the test set is a seeded split of the one data set."""
    if (
        settings.test_dataset is None
        and settings.test_size is None
        and not has_own_partition(settings.dataset)
    ):
        logger.warning(
            "testing on a seeded stratified split of %s: %d samples train, %d test "
            "(give --test-dataset for a separate test set)",
            settings.dataset,
            n_train,
            test.n_samples,
        )


def train_run(
    config: TrainingConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    resume: bool = False,
    checkpoint_every: int = 1,
    overwrite: bool = False,
) -> Metrics:
    """Train a network as configured and write the run directory; return the metrics.

    Every setting is checked (data loaded, network, protocol and trainer built) before the
    directory is created, so a refused configuration leaves nothing on disk. A directory that
    is not empty is refused unless ``overwrite`` is true, which deletes it first. The
    configuration goes to ``config.json``, and a checkpoint to ``checkpoint.npz`` every
    ``checkpoint_every`` chunks. With ``resume=True``, ``out`` names an existing run directory:
    its ``config.json`` replaces ``config`` (only ``epochs`` may extend a run with the constant
    schedule) and training continues from its checkpoint (from the start if none was written
    yet). SIGINT or SIGTERM stops at a consistent state (:mod:`fbsnn_brian.interrupt`) and raises
    :class:`~fbsnn_brian.interrupt.Interrupted` naming the command that continues the run.
    """

    directory = _run_directory(out, resume=resume, overwrite=overwrite)
    if resume:
        config = _resumed_config(directory, config)
    settings, (train, test, validation) = resolve_run(config)
    _note_split(
        settings.data, train.n_samples + (0 if validation is None else validation.n_samples), test
    )
    trainer = trainer_from_settings(settings, train, progress=progress)
    fit = fit_of(trainer, settings)
    network, protocol = trainer.network, trainer.protocol

    # every setting is valid: only now does the run directory appear
    if overwrite and not resume and directory.is_dir():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomically(directory / "config.json", settings.values())
    start = time.perf_counter()
    try:
        history = fit(
            train.inputs,
            train.labels,
            epochs=settings.training.epochs,
            validation=None if validation is None else (validation.inputs, validation.labels),
            checkpoint=directory / "checkpoint.npz",
            checkpoint_every=checkpoint_every,
            resume=resume,
        )
    except Interrupted as error:
        raise Interrupted(f"{error}; continue with: fbsnn train --resume {directory}") from None
    wall = time.perf_counter() - start
    # the test set, once, after training
    evaluation_start = time.perf_counter()
    test_accuracy = trainer.evaluate(test.inputs, test.labels)["accuracy"]
    evaluation_time = time.perf_counter() - evaluation_start
    alignment = write_results(directory, trainer, history, settings.values(), test)
    training_time = float(history["wall_time_s"].sum())
    metrics: Metrics = {
        "test_accuracy": test_accuracy,
        "train_accuracy": float(history["train_accuracy"].values[-1]),
        "train_accuracy_per_epoch": [float(v) for v in history["train_accuracy"].values],
        "validation_accuracy": None
        if validation is None
        else float(history["test_accuracy"].values[-1]),
        "validation_accuracy_per_epoch": None
        if validation is None
        else [float(v) for v in history["test_accuracy"].values],
        "samples_per_s": train.n_samples * settings.training.epochs / training_time,
        "samples_per_s_definition": SAMPLES_PER_S,
        "wall_time_s": wall,
        "test_evaluation_time_s": evaluation_time,
        "compile_time_s": float(history.attrs["compile_time_s"]),
        "build_cache_hit": bool(history.attrs["build_cache_hit"]),
        "mean_forward_rate": float(history["forward_rate"].mean()),
        "mean_backward_rate": float(history["backward_rate"].mean()),
        "loop_gain": network.loop_gain(),
        **alignment,
        "n_train": train.n_samples,
        "n_validation": 0 if validation is None else validation.n_samples,
        "n_test": test.n_samples,
        "accuracy_units": "fraction of samples classified correctly",
        "config": settings.values(),
        "network": network.config(),
        "protocol": protocol.describe(),
    }
    write_json_atomically(directory / "metrics.json", metrics)
    metrics["run_dir"] = str(directory)
    return metrics


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    split_seed: int | None = None,
    device: str = "cpp_standalone",
) -> Metrics:
    """Evaluate the network of a run directory.

    Without ``dataset``, the test part of the run's own data, split as the run split it
    (``train_size``, ``test_size`` and ``split_seed`` override the run's values). With another
    ``dataset``, the whole of it (the ``t10k`` files of an IDX directory holding both parts),
    or its last ``test_size`` samples.
    """
    from fbsnn_brian.build.free_run import FreeRunSimulation
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    owner = "fbsnn evaluate"
    directory = Path(run_dir)
    metrics_path = directory / "metrics.json"
    if not metrics_path.is_file():
        raise ValidationError(
            f"{owner}: {str(run_dir)!r} is not a run directory (no metrics.json); "
            "give the --out directory of `fbsnn train`."
        )
    for flag, size in (("--train-size", train_size), ("--test-size", test_size)):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValidationError(f"{owner}: {flag} must be a positive integer, got {size!r}.")
    run = RunSettings.from_saved(json.loads(metrics_path.read_text())["config"])
    saved = run.data
    network = FeedbackNetwork.load(directory / "weights.npz")
    if dataset is None or dataset == saved.dataset:
        _, test = split_dataset(
            saved.dataset,
            train_size=saved.train_size if train_size is None else train_size,
            test_size=saved.test_size if test_size is None else test_size,
            split_seed=saved.split_seed if split_seed is None else split_seed,
            test_spec=saved.test_dataset,
            n_classes=network.n_classes,
        )
    else:
        if train_size is not None or split_seed is not None:
            raise ValidationError(
                f"{owner}: --train-size and --split-seed place the split of the run's own data "
                f"({saved.dataset}); {dataset} is scored whole (or its last --test-size "
                "samples)."
            )
        test = (
            load_dataset(dataset, split="t10k")
            if has_own_partition(dataset)
            else (load_dataset(dataset))
        )
        if test_size is not None:
            if test_size > test.n_samples:
                raise ValidationError(
                    f"{owner}: --test-size {test_size} exceeds the {test.n_samples} samples of "
                    f"{dataset}."
                )
            test = test.subset(np.arange(test.n_samples - test_size, test.n_samples))
    if test.n_features != network.n_inputs:
        raise ValidationError(
            f"{owner}: the data set has {test.n_features} features but the run's network has "
            f"{network.n_inputs} inputs."
        )
    if int(test.labels.max()) >= network.n_classes:
        raise ValidationError(
            f"{owner}: the data set has labels up to {int(test.labels.max())} "
            f"({test.n_classes} classes) but the run's network has {network.n_classes} classes."
        )
    protocol = Protocol([FreePhase(duration=run.protocol.free_tau * network.tau)])
    simulation = FreeRunSimulation(
        network, protocol, device=device, chunk_size=min(500, test.n_samples), record_spikes=False
    )
    start = time.perf_counter()
    scores = simulation.run(test.inputs).readout
    predicted = scores.argmax(axis=1)
    confusion = np.zeros((network.n_classes,) * 2, dtype=np.int64)
    np.add.at(confusion, (test.labels, predicted), 1)
    return {
        "test_accuracy": float(np.mean(predicted == test.labels)),
        "n_test": test.n_samples,
        "dataset": saved.dataset if dataset is None else dataset,
        "confusion_matrix": confusion.tolist(),
        "samples_per_s": test.n_samples / (time.perf_counter() - start),
        "device": device,
        "run_dir": str(directory),
    }
