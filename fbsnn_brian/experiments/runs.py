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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.presets import default_preset, preset_settings
from fbsnn_brian.experiments.run_outputs import write_results
from fbsnn_brian.files import write_json_atomically
from fbsnn_brian.interrupt import Interrupted
from fbsnn_brian.io.datasets import (
    Dataset,
    check_compatible,
    load_dataset,
    load_train_and_test,
    train_test_split,
)

__all__ = [
    "TrainingConfig",
    "evaluate_run",
    "network_from_settings",
    "protocol_from_settings",
    "split_dataset",
    "train_run",
    "trainer_from_settings",
]

TrainingConfig = dict[str, Any]

#: What ``samples_per_s`` in metrics.json and the printed summary measure.
SAMPLES_PER_S = (
    "training samples presented per second of training simulation (all epochs; compilation, "
    "the per-epoch evaluations and the final test excluded)"
)

logger = logging.getLogger(__name__)

DEFAULTS: TrainingConfig = {
    "dataset": "digits",
    # a separate test set (npz:FILE or idx:DIR); then the whole --dataset trains
    "test_dataset": None,
    "train_size": None,
    "test_size": None,
    # samples carved from the end of the training part to follow learning per epoch; the test
    # set is evaluated once, after training
    "validation_size": 0,
    "split_seed": 0,
    # settings per data set (fbsnn_brian.experiments.presets); None: chosen from the data set
    "preset": None,
    # None: the largest training label + 1 (with a warning for classes without samples)
    "n_classes": None,
    "layers": [128],
    "neuron": "if",
    # the settings below are under the data set's preset (fbsnn_brian.experiments.presets),
    # which overrides the training schedule and the layer sizes
    "epochs": 30,
    "learning_rate": 0.04,
    "scale": 4.0,
    "weight_decay": 0.001,
    "momentum": 0.0,
    "batch_size": 1,
    "schedule": "cosine",
    "free_tau": 30.0,
    "perturbed_tau": 100.0,
    "device": "cpp_standalone",
    # device 'genn': GeNN's CPU backend instead of CUDA
    "cpu_only": False,
    # samples per Brian2 run; None: 200 for SPIDE, 16 for a recorded rule (its mini-batch)
    "chunk_size": None,
    "rule": "spide",
    "seed": 0,
    "max_feedback_gain": 0.9,
    "input_dropout": 0.0,
    "shift": 1,
    "feedback": "transpose",
    "no_feedback": False,  # True: no feedback loop, W_fb = 0 and never learned
    # finite-difference directions of the trained state's ground truth (0: ideal IDE only)
    "alignment_directions": 0,
    # biophysics (fbsnn_brian.model.biophysics); times in units of tau, 0 switches noise_tau
    # (white noise) and excitatory_fraction (Dale's law) off
    "tau_m": 20.0,
    # the adaptive LIF (neuron "alif"): adaptation time constant (in tau) and increment
    "tau_a": 10.0,
    "b_a": 0.05,
    "refractory": 1.0,
    "synapse": "instantaneous",
    "tau_syn": 1.0,
    "e_excitatory": 4.0,
    "e_inhibitory": -2.0,
    "reset": "subtract",
    "delay": 0.0,
    "delay_spread": 0.0,
    "noise_sigma": 0.0,
    "noise_tau": 0.0,
    "excitatory_fraction": 0.0,
    "rate_estimate": "average",
    # integration step in units of tau (at most 1/4; it must divide tau and the refractory
    # period)
    "dt": 0.25,
    # one run on several Dask worker processes (fbsnn_brian.learning.distributed): K workers
    # merging their weights every sync_every samples each (None: the chunk size), on the
    # scheduler at this address (None: a LocalCluster of K processes)
    "workers": 1,
    "scheduler": None,
    "sync_every": None,
}


def network_from_settings(settings: TrainingConfig, n_inputs: int, n_classes: int) -> Any:
    """The FeedbackNetwork a run's settings describe (times given in units of tau = 1 ms)."""
    from brian2 import ms

    from fbsnn_brian.model.biophysics import Biophysics
    from fbsnn_brian.model.network import FeedbackNetwork

    tau = 1 * ms
    biophysics = Biophysics(
        synapse=settings["synapse"],
        tau_syn=settings["tau_syn"] * tau,
        e_excitatory=settings["e_excitatory"],
        e_inhibitory=settings["e_inhibitory"],
        reset=settings["reset"],
        delay=settings["delay"] * tau,
        delay_spread=settings["delay_spread"] * tau,
        noise_sigma=settings["noise_sigma"],
        noise_tau=settings["noise_tau"] * tau if settings["noise_tau"] else None,
        excitatory_fraction=settings["excitatory_fraction"] or None,
    )
    return FeedbackNetwork(
        n_inputs=n_inputs,
        layer_sizes=settings["layers"],
        n_classes=n_classes,
        neuron=settings["neuron"],
        tau_m=settings["tau_m"] * tau,
        tau_a=settings["tau_a"] * tau,
        b_a=settings["b_a"],
        tau=tau,
        dt=settings["dt"] * tau,
        refractory=settings["refractory"] * tau,
        seed=settings["seed"],
        biophysics=biophysics,
        rate_estimate=settings["rate_estimate"],
    )


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
    if test_spec is None and _has_own_partition(spec):
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


def _has_own_partition(spec: str) -> bool:
    if not spec.startswith("idx:"):
        return False
    folder = Path(spec[len("idx:") :])
    return any(folder.glob("train-*")) and any(folder.glob("t10k-*"))


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


def _resumed_config(directory: Path, config: TrainingConfig) -> TrainingConfig:
    """The saved configuration of a resumed run, with ``epochs`` extended where possible."""
    saved: TrainingConfig = json.loads((directory / "config.json").read_text())
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
        if epochs < saved["epochs"]:
            raise ValidationError(
                f"fbsnn train --resume --epochs {epochs}: the run is configured for "
                f"{saved['epochs']} epochs; --epochs can only extend it."
            )
        saved["epochs"] = epochs
    return saved


def _settings(config: TrainingConfig, train: Dataset) -> TrainingConfig:
    """Defaults, then the data set's preset, then the given settings."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValidationError(
            f"train_run: unknown configuration keys {unknown}; allowed: {sorted(DEFAULTS)}."
        )
    given = {key: value for key, value in config.items() if value is not None}
    name = given.get("preset") or default_preset(given.get("dataset", "digits"), train.n_features)
    settings = {**DEFAULTS, **preset_settings(name), **given, "preset": name}
    if settings["shift"] and not train.is_image:
        logger.warning(
            "the inputs of %s are not images: trained without image shifts (--shift 0)",
            settings["dataset"],
        )
        settings["shift"] = 0
    return settings


def _datasets(settings: TrainingConfig) -> tuple[Dataset, Dataset, Dataset | None]:
    """Training, test and (``validation_size`` > 0) validation parts of a run's data."""
    train, test = split_dataset(
        settings["dataset"],
        train_size=settings["train_size"],
        test_size=settings["test_size"],
        split_seed=settings["split_seed"],
        test_spec=settings["test_dataset"],
        n_classes=settings["n_classes"],
    )
    size = settings["validation_size"]
    if not size:
        return train, test, None
    if not isinstance(size, int) or not 0 < size < train.n_samples:
        raise ValidationError(
            f"fbsnn train --validation-size: must be a whole number in [0, {train.n_samples}) "
            f"(the training part has {train.n_samples} samples), got {size!r}."
        )
    cut = train.n_samples - size
    return train.subset(np.arange(cut)), test, train.subset(np.arange(cut, train.n_samples))


def protocol_from_settings(settings: TrainingConfig, network: Any, plasticity: Any) -> Any:
    """The run's free and perturbed phases (in the network's tau), with ``plasticity``."""
    from fbsnn_brian.model.plasticity import PerturbedPhase
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    return Protocol(
        [
            FreePhase(duration=settings["free_tau"] * network.tau),
            PerturbedPhase(duration=settings["perturbed_tau"] * network.tau),
        ],
        plasticity=plasticity,
    )


def trainer_from_settings(settings: TrainingConfig, train: Dataset, *, progress: bool) -> Any:
    """The Trainer (with its network and protocol) that a run's settings describe."""
    from fbsnn_brian.learning.augmentation import RandomShift
    from fbsnn_brian.learning.trainer import Trainer
    from fbsnn_brian.model.plasticity import SPIDEPlasticity
    from fbsnn_brian.rules.learning_rules import rule_from_name

    network = network_from_settings(settings, train.n_features, train.n_classes)
    if settings["no_feedback"]:  # the loop removed: W_fb = 0, never learned
        network.feedback_weights = np.zeros_like(network.feedback_weights)
    fields = "learning_rate scale weight_decay momentum batch_size max_feedback_gain input_dropout"
    plasticity = SPIDEPlasticity(
        **{name: settings[name] for name in (*fields.split(), "feedback")},  # the same names
        learn_feedback=not settings["no_feedback"],
    )
    protocol = protocol_from_settings(settings, network, plasticity)
    rule = rule_from_name(settings["rule"])
    return Trainer(
        network,
        protocol,
        rule=rule,
        device=settings["device"],
        use_gpu=not settings["cpu_only"],
        chunk_size=settings["chunk_size"] or (200 if rule.in_simulation else 16),
        schedule=settings["schedule"],
        seed=settings["seed"],
        progress=progress,
        augmentation=RandomShift(max_shift=settings["shift"], image_shape=train.image_shape)
        if settings["shift"]
        else None,
    )


def _fit(trainer: Any, settings: TrainingConfig) -> Any:
    """``trainer.fit``, or the same training spread over ``workers`` Dask workers."""
    if settings["workers"] == 1 and settings["scheduler"] is None:
        return trainer.fit
    from fbsnn_brian.learning.distributed import DistributedTraining

    return DistributedTraining(
        trainer,
        workers=settings["workers"],
        scheduler=settings["scheduler"],
        sync_every=settings["sync_every"],
    ).fit


def _note_split(settings: TrainingConfig, n_train: int, test: Dataset) -> None:
    """Say on stderr when the test set is a seeded split of the one data set."""
    if (
        settings["test_dataset"] is None
        and settings["test_size"] is None
        and not _has_own_partition(settings["dataset"])
    ):
        logger.warning(
            "testing on a seeded stratified split of %s: %d samples train, %d test "
            "(give --test-dataset for a separate test set)",
            settings["dataset"],
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
) -> dict[str, Any]:
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
    given = {key: value for key, value in config.items() if value is not None}
    train, test, validation = _datasets({**DEFAULTS, **given})
    settings = _settings(config, train)
    _note_split(
        settings, train.n_samples + (0 if validation is None else validation.n_samples), test
    )
    trainer = trainer_from_settings(settings, train, progress=progress)
    fit = _fit(trainer, settings)
    network, protocol = trainer.network, trainer.protocol

    # every setting is valid: only now does the run directory appear
    if overwrite and not resume and directory.is_dir():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomically(directory / "config.json", settings)
    start = time.perf_counter()
    try:
        history = fit(
            train.inputs,
            train.labels,
            epochs=settings["epochs"],
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
    alignment = write_results(directory, trainer, history, settings, test)
    training_time = float(history["wall_time_s"].sum())
    metrics = {
        "test_accuracy": test_accuracy,
        "train_accuracy": float(history["train_accuracy"].values[-1]),
        "train_accuracy_per_epoch": [float(v) for v in history["train_accuracy"].values],
        "validation_accuracy": None
        if validation is None
        else float(history["test_accuracy"].values[-1]),
        "validation_accuracy_per_epoch": None
        if validation is None
        else [float(v) for v in history["test_accuracy"].values],
        "samples_per_s": train.n_samples * settings["epochs"] / training_time,
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
        "config": settings,
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
) -> dict[str, Any]:
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
    saved = {**DEFAULTS, **json.loads(metrics_path.read_text())["config"]}
    network = FeedbackNetwork.load(directory / "weights.npz")
    if dataset is None or dataset == saved["dataset"]:
        _, test = split_dataset(
            saved["dataset"],
            train_size=saved["train_size"] if train_size is None else train_size,
            test_size=saved["test_size"] if test_size is None else test_size,
            split_seed=saved["split_seed"] if split_seed is None else split_seed,
            test_spec=saved["test_dataset"],
            n_classes=network.n_classes,
        )
    else:
        if train_size is not None or split_seed is not None:
            raise ValidationError(
                f"{owner}: --train-size and --split-seed place the split of the run's own data "
                f"({saved['dataset']}); {dataset} is scored whole (or its last --test-size "
                "samples)."
            )
        test = (
            load_dataset(dataset, split="t10k")
            if _has_own_partition(dataset)
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
    protocol = Protocol([FreePhase(duration=saved["free_tau"] * network.tau)])
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
        "dataset": saved["dataset"] if dataset is None else dataset,
        "confusion_matrix": confusion.tolist(),
        "samples_per_s": test.n_samples / (time.perf_counter() - start),
        "device": device,
        "run_dir": str(directory),
    }
