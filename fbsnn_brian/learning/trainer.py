"""Trainer: epochs of in-simulation SPIDE learning, validation, history.

The Trainer owns two compiled (or runtime) simulations of the same network: the training
simulation (free phase, perturbed phase and plasticity for every sample, see
:mod:`fbsnn_brian.build.training`) and the evaluation simulation (free phase only, see
:mod:`fbsnn_brian.build.free_run`). Samples are presented one at a time (online learning), in an
order
shuffled per epoch with a seeded generator, in chunks of ``chunk_size`` samples per Brian2 run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from tqdm.auto import tqdm

from fbsnn_brian import interrupt
from fbsnn_brian.build.devices.genn_engines import GeNNEvaluation, GeNNTrainingSimulation
from fbsnn_brian.build.devices.registry import device_names, get_device_spec
from fbsnn_brian.build.devices.standalone import check_available, compile_all
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from fbsnn_brian.learning.augmentation import RandomShift
from fbsnn_brian.learning.engine import TrainingEngine
from fbsnn_brian.learning.health import check_health
from fbsnn_brian.learning.recorded import RecordedRuleSimulation
from fbsnn_brian.learning.records import run_fingerprint, training_history
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.rules.learning_rules import SPIDE, LearningRule, rule_from_name
from fbsnn_brian.validation import check_choice, check_labels, check_positive_int, describe

__all__ = ["SCHEDULES", "TRAINER_DEVICES", "Trainer"]

logger = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")

#: Devices a Trainer accepts (from the device registry): Brian2's and 'genn' (SPIDE only).
TRAINER_DEVICES = device_names("train")


_RECORDS = (
    "train_accuracy",
    "test_accuracy",
    "learning_rate",
    "samples_per_s",
    "wall_time_s",
    "forward_rate",
    "backward_rate",
    "loop_gain",
)

FloatArray = NDArray[np.float64]


def set_accuracies(
    predicted: NDArray[np.int64], sets: list[tuple[FloatArray, NDArray[np.int64]]]
) -> list[float]:
    """Accuracy on each (inputs, labels) set of the predictions of their concatenated inputs."""
    accuracies, start = [], 0
    for inputs, labels in sets:
        stop = start + len(inputs)
        accuracies.append(float(np.mean(predicted[start:stop] == labels)))
        start = stop
    return accuracies


class Trainer:
    """Train a FeedbackNetwork with a learning rule (SPIDE by default, inside the simulation).

    Parameters
    ----------
    network : FeedbackNetwork
        Trained in place (its weight arrays are replaced after every chunk).
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a
        :class:`~fbsnn_brian.model.plasticity.SPIDEPlasticity`.
    device : {'cpp_standalone', 'runtime', 'numpy', 'cython', 'genn'}
        cpp_standalone compiles each simulation once and reuses the binary for every chunk,
        epoch and evaluation. ``'genn'`` (brian2genn and GeNN, SPIDE only) compiles the
        training project once and reruns it for every chunk
        (:class:`~fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`), and the
        evaluation
        project likewise (:class:`~fbsnn_brian.build.devices.genn_engines.GeNNEvaluation`).
    chunk_size : int
        Samples per Brian2 run.
    schedule : {'constant', 'cosine'}
        Learning rate over the whole run: constant, or cosine annealing from the rule's
        learning rate to zero, updated per sample.
    seed : int
        Seed of the per-epoch shuffling.
    progress : bool
        Show a progress bar over chunks.
    augmentation : RandomShift, optional
        Applied to every chunk of training inputs before it is presented (a fresh random
        draw each epoch, seeded by ``seed``); evaluation always sees the inputs unchanged.
    directory : str, optional
        Parent directory of the cpp_standalone projects (default: temporary directories).
    rule : LearningRule or str, optional
        The learning rule (:mod:`fbsnn_brian.rules.learning_rules`): ``'spide'`` (default) learns
        inside the
        simulation, one update per sample; ``'ide'``, ``'st_rsbp'``, ``'na'`` and
        ``'spike_bp'`` record a free-phase chunk and apply its mean gradient once per chunk
        (:mod:`fbsnn_brian.learning.recorded`). The protocol's SPIDEPlasticity supplies the
        learning rate, weight decay, momentum and feedback gain cap for every rule.
    use_gpu : bool
        With ``device='genn'``: GeNN's CUDA backend (True, the default) or its CPU backend.

    Examples
    --------
    >>> from brian2 import ms
    >>> from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
    >>> from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    >>> net = FeedbackNetwork(n_inputs=64, layer_sizes=[32], n_classes=10, seed=0)
    >>> protocol = Protocol([FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
    ...                     plasticity=SPIDEPlasticity(learning_rate=0.01, scale=4))
    >>> Trainer(net, protocol, device="numpy", progress=False).schedule
    'constant'
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        device: str = "cpp_standalone",
        chunk_size: int = 200,
        schedule: str = "constant",
        seed: int = 0,
        progress: bool = True,
        augmentation: RandomShift | None = None,
        directory: str | None = None,
        rule: LearningRule | str | None = None,
        use_gpu: bool = True,
    ) -> None:
        owner = "Trainer"
        if rule is None:
            rule = SPIDE()
        elif isinstance(rule, str):
            rule = rule_from_name(rule)
        elif not isinstance(rule, LearningRule):
            raise ValidationError(
                f"{owner}: rule must be a LearningRule or a rule name such as 'spide', got "
                f"{describe(rule)}."
            )
        self.rule = rule
        if augmentation is not None and not isinstance(augmentation, RandomShift):
            raise ValidationError(
                f"{owner}: augmentation must be a RandomShift or None, got "
                f"{describe(augmentation)}."
            )
        self.augmentation = augmentation
        if not isinstance(network, FeedbackNetwork):
            raise ValidationError(
                f"{owner}: network must be a FeedbackNetwork, got {describe(network)}."
            )
        if protocol.plasticity is None or protocol.perturbed_phase is None:
            raise ValidationError(
                f"{owner}: protocol must have a PerturbedPhase and a SPIDEPlasticity, "
                f"got {protocol!r}."
            )
        self._device = get_device_spec(owner, device, "train")
        self.device = self._device.name
        check_available(owner, self.device)
        self.use_gpu = bool(use_gpu)
        self.chunk_size = check_positive_int(owner, "chunk_size", chunk_size)
        self.schedule = check_choice(owner, "schedule", schedule, SCHEDULES)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValidationError(
                f"{owner}: seed must be a non-negative integer, got {describe(seed)}."
            )
        self.seed = int(seed)
        self.network = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.progress = progress
        train_directory = None if directory is None else f"{directory}/train"
        self._train: TrainingEngine
        if self._device.kind == "genn":
            if not self.plasticity.learn_feedback:
                raise ValidationError(
                    f"{owner}: device 'genn' learns every weight; SPIDEPlasticity("
                    "learn_feedback=False) (the no_feedback setting) runs on cpp_standalone, "
                    "cuda_standalone or a runtime device."
                )
            if not isinstance(rule, SPIDE):
                raise ValidationError(
                    f"{owner}: device 'genn' trains with SPIDE only, got rule {rule.name!r}; "
                    "train the other rules on runtime or cpp_standalone."
                )
            self._train = GeNNTrainingSimulation(
                network,
                protocol,
                chunk_size=self.chunk_size,
                use_GPU=self.use_gpu,
                directory=train_directory,
            )
        elif rule.in_simulation:
            self._train = TrainingSimulation(
                network,
                protocol,
                device=self.device,
                chunk_size=self.chunk_size,
                directory=train_directory,
            )
        else:
            self._train = RecordedRuleSimulation(
                network,
                protocol,
                rule,
                device=self.device,
                chunk_size=self.chunk_size,
                directory=train_directory,
            )
        self._directory = directory
        self._evaluation: FreeRunSimulation | GeNNEvaluation | None = None

    def compile(self, *, check_only: bool = False) -> dict[str, dict[str, Any]]:
        """Compile the standalone builds (``train``, ``evaluate``) now, or only check them.

        See :func:`~fbsnn_brian.build.devices.standalone.compile_all`.
        """
        engines = {"train": self._train, "evaluate": self._evaluator()}
        return compile_all(engines, check_only=check_only)

    # ------------------------------------------------------------------ evaluation
    def _evaluator(self) -> FreeRunSimulation | GeNNEvaluation:
        if self._evaluation is None and self._device.kind == "genn":
            self._evaluation = GeNNEvaluation(
                self.network, Protocol([self.protocol.free_phase]), use_GPU=self.use_gpu
            )
        if self._evaluation is None:
            self._evaluation = FreeRunSimulation(
                self.network,
                Protocol([self.protocol.free_phase]),
                device=self.device,
                chunk_size=max(self.chunk_size, 500),
                record_spikes=False,
                directory=None if self._directory is None else f"{self._directory}/evaluate",
            )
        return self._evaluation

    def predict(self, inputs: Any) -> NDArray[np.int64]:
        """Class predictions: argmax of the readout of the free-phase rates."""
        array = self.network.check_inputs(inputs, owner="Trainer.predict")
        scores = self._evaluator().run(array).readout
        return np.asarray(scores.argmax(axis=1), dtype=np.int64)

    def evaluate(self, inputs: Any, labels: Any) -> dict[str, Any]:
        """Accuracy and confusion matrix (rows: true class, columns: predicted class)."""
        self.network.check_invariants()
        array = self.network.check_inputs(inputs, owner="Trainer.evaluate")
        truth = check_labels("Trainer.evaluate", labels, len(array), self.network.n_classes)
        recording = self._evaluator().run(array)
        predicted = recording.readout.argmax(axis=1)
        confusion = np.zeros((self.network.n_classes,) * 2, dtype=np.int64)
        np.add.at(confusion, (truth, predicted), 1)
        rates = np.concatenate([r.ravel() for r in recording.layer_rates()])
        return {
            "accuracy": float(np.mean(predicted == truth)),
            "confusion_matrix": confusion,
            "mean_forward_rate": float(rates.mean()),
            "wall_time_s": float(recording.attrs["wall_time_s"]),
        }

    def _accuracies(self, sets: list[tuple[FloatArray, NDArray[np.int64]]]) -> list[float]:
        """Accuracy on each (inputs, labels) set, all evaluated in one simulation call."""
        readout = self._evaluator().run(np.concatenate([inputs for inputs, _ in sets])).readout
        return set_accuracies(readout.argmax(axis=1), sets)

    # ------------------------------------------------------------------ training
    def _learning_rates(self, epoch: int, epochs: int, n_samples: int) -> FloatArray:
        base = self.plasticity.learning_rate
        if self.schedule == "constant":
            return np.full(n_samples, base)
        total = epochs * n_samples
        position = epoch * n_samples + np.arange(n_samples)
        return base * 0.5 * (1.0 + np.cos(math.pi * position / total))

    def fit(
        self,
        inputs: Any,
        labels: Any,
        *,
        epochs: int,
        validation: tuple[Any, Any] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
    ) -> xr.Dataset:
        """Train for ``epochs`` passes over the data; return the history.

        Parameters
        ----------
        inputs : array_like, shape (n_samples, n_inputs)
            Training inputs in [0, 1].
        labels : array_like of int, shape (n_samples,)
        epochs : int
        validation : (inputs, labels), optional
            Evaluated after every epoch.
        checkpoint : path, optional
            ``.npz`` file that receives a checkpoint (:mod:`fbsnn_brian.io.checkpoint`) every
            ``checkpoint_every`` chunks and at the end of every epoch, written atomically.
        checkpoint_every : int
            Chunks between checkpoints (default 1).
        resume : bool
            Continue from ``checkpoint`` if it exists (it must come from the same
            configuration and data); the result is the same as that of an uninterrupted run.

        Returns
        -------
        xarray.Dataset
            Over ``epoch``: ``train_accuracy`` (free-phase accuracy on the training set after the
            epoch), ``test_accuracy`` (NaN without validation), ``learning_rate`` (mean),
            ``samples_per_s``, ``wall_time_s``, ``forward_rate``, ``backward_rate`` and
            ``loop_gain``.
        """
        owner = "Trainer.fit"
        self.network.check_invariants()
        array = self.network.check_inputs(inputs, owner=owner)
        truth = check_labels(owner, labels, len(array), self.network.n_classes)
        epochs = check_positive_int(owner, "epochs", epochs)
        checkpoint_every = check_positive_int(owner, "checkpoint_every", checkpoint_every)
        if resume and checkpoint is None:
            raise ValidationError(f"{owner}: resume=True needs a checkpoint path.")
        sets = [(array, truth)]
        if validation is not None:
            sets.append(self._checked_pair(f"{owner} (validation)", validation))
        generators = {
            "shuffle": np.random.default_rng(self.seed),
            "augmentation": np.random.default_rng([self.seed, 1]),
            "dropout": self._train.dropout_generator,
        }
        state = TrainingState(
            fingerprint=self._fingerprint(array, truth, epochs, validation is not None),
            records={key: [] for key in _RECORDS},
        )
        if resume and checkpoint is not None and Path(checkpoint).is_file():
            state = self._resume(checkpoint, state, generators)

        save = functools.partial(self._save, checkpoint, state, generators)
        records = state.records
        n_chunks = math.ceil(len(array) / self.chunk_size)
        epochs_bar, chunks_bar = self._progress_bars(epochs, state.epoch, n_chunks)
        try:
            with interrupt.interruptible():
                for epoch in range(state.epoch, epochs):
                    order, mean_rate = self._train_epoch(
                        epoch,
                        epochs,
                        (array, truth),
                        state,
                        generators,
                        save,
                        chunks_bar,
                        checkpoint_every,
                    )
                    with contextlib.suppress(interrupt.Interrupted):  # redone on resume
                        accuracies = [*self._accuracies(sets), math.nan][:2]
                    if interrupt.requested():
                        # an evaluation binary stops early on the signal: redone on resume
                        save(epoch, len(array), order)
                        interrupt.check(
                            f"after chunk {n_chunks}/{n_chunks} of epoch "
                            f"{epoch + 1}/{epochs}, during its evaluation"
                        )
                    self._record_epoch(records, state.partial, accuracies, mean_rate, len(array))
                    save(epoch + 1, 0, None)
                    epochs_bar.update(1)
                    epochs_bar.set_postfix(
                        train=f"{accuracies[0]:.3f}", test=f"{accuracies[1]:.3f}"
                    )
        finally:
            chunks_bar.close()
            epochs_bar.close()
        return self._history(records)

    def _train_epoch(
        self,
        epoch: int,
        epochs: int,
        data: tuple[FloatArray, NDArray[np.int64]],
        state: TrainingState,
        generators: dict[str, np.random.Generator],
        save: Callable[[int, int, NDArray[np.int64] | None], None],
        bar: Any,
        checkpoint_every: int,
    ) -> tuple[NDArray[np.int64], float]:
        """Train the chunks of one epoch (from a resumed position); return its order and mean lr.

        A signal (:mod:`fbsnn_brian.interrupt`) is honoured at every chunk boundary. A chunk
        during which one arrived is discarded, because a standalone binary stops its simulation
        early on SIGINT: the weights, optimizer state and random generators go back to their
        state before the chunk, that state is checkpointed, and
        :class:`~fbsnn_brian.interrupt.Interrupted` is raised.
        """
        array, truth = data
        n_samples, n_chunks = len(array), math.ceil(len(array) / self.chunk_size)
        if state.order is None or epoch != state.epoch:
            order = generators["shuffle"].permutation(n_samples)
            first_sample, partial = 0, {"spikes": 0.0, "events": 0.0, "elapsed_s": 0.0}
        else:
            order, first_sample, partial = state.order, state.next_sample, state.partial
        state.partial = partial
        rates = self._learning_rates(epoch, epochs, n_samples)
        # mini-batches run over chunk boundaries; the last one of an epoch may be short
        positions = np.arange(1, n_samples + 1)
        apply_after = (positions % self.plasticity.batch_size == 0) | (positions == n_samples)
        bar.reset(total=n_chunks)
        bar.update(math.ceil(first_sample / self.chunk_size))
        for first in range(first_sample, n_samples, self.chunk_size):
            where = (
                f"after chunk {first // self.chunk_size}/{n_chunks} of epoch {epoch + 1}/{epochs}"
            )
            if interrupt.requested():
                save(epoch, first, order)
                interrupt.check(where)
            before = self._snapshot(generators)
            start = time.perf_counter()
            chosen = order[first : first + self.chunk_size]
            shown = array[chosen]
            if self.augmentation is not None:
                shown = self.augmentation(shown, generators["augmentation"])
            try:
                stats = self._train.train_chunk(
                    shown,
                    truth[chosen],
                    rates[first : first + len(chosen)],
                    apply_after[first : first + len(chosen)],
                )
            except interrupt.Interrupted:
                pass  # the binary died of the signal: undone below
            if interrupt.requested():
                self._restore(before, generators)
                save(epoch, first, order)
                interrupt.check(where)
            if not (self.plasticity.learn_feedback or self.rule.in_simulation):
                # a recorded rule updates once per chunk, so W_fb is frozen by undoing its part
                self.network.feedback_weights = before["weights"]["feedback_weights"]
            partial["spikes"] += stats.forward_rate * len(chosen)
            partial["events"] += stats.backward_rate * len(chosen)
            partial["elapsed_s"] += time.perf_counter() - start
            check_health(self.network, self.plasticity, epoch, stats)
            bar.update(1)
            position = first + len(chosen)
            if position < n_samples and not (position // self.chunk_size) % checkpoint_every:
                save(epoch, position, order)
        return order, float(rates.mean())

    def _save(
        self,
        checkpoint: str | os.PathLike[str] | None,
        state: TrainingState,
        generators: dict[str, np.random.Generator],
        epoch: int,
        next_sample: int,
        order: NDArray[np.int64] | None,
    ) -> None:
        """Checkpoint the state before ``next_sample`` of ``epoch`` (nothing without a path)."""
        if checkpoint is None:
            return
        state.epoch, state.next_sample, state.order = epoch, next_sample, order
        state.generators = {
            name: dict(generator.bit_generator.state) for name, generator in generators.items()
        }
        state.optimizer_state = self._train.optimizer_state
        save_checkpoint(checkpoint, self.network, state)

    def _checked_pair(
        self, owner: str, pair: tuple[Any, Any]
    ) -> tuple[FloatArray, NDArray[np.int64]]:
        """Validated (inputs, labels) of an evaluation set."""
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValidationError(
                f"{owner}: validation must be a pair (inputs, labels), got {describe(pair)}."
            )
        inputs = self.network.check_inputs(pair[0], owner=owner)
        return inputs, check_labels(owner, pair[1], len(inputs), self.network.n_classes)

    def _resume(
        self,
        checkpoint: str | os.PathLike[str],
        state: TrainingState,
        generators: dict[str, np.random.Generator],
    ) -> TrainingState:
        """Load a checkpoint into the network, the engine and the generators."""
        state = load_checkpoint(checkpoint, self.network, state.fingerprint)
        self._train.optimizer_state = state.optimizer_state
        for name, generator in generators.items():
            generator.bit_generator.state = state.generators[name]
        logger.info(
            "resumed from %s at epoch %d, sample %d", checkpoint, state.epoch + 1, state.next_sample
        )
        return state

    def _record_epoch(
        self,
        records: dict[str, list[float]],
        partial: dict[str, float],
        accuracies: list[float],
        mean_rate: float,
        n_samples: int,
    ) -> None:
        """Append one finished epoch to the history records."""
        for key, value in (
            ("train_accuracy", accuracies[0]),
            ("test_accuracy", accuracies[1]),
            ("learning_rate", mean_rate),
            ("samples_per_s", n_samples / partial["elapsed_s"]),
            ("wall_time_s", partial["elapsed_s"]),
            ("forward_rate", partial["spikes"] / n_samples),
            ("backward_rate", partial["events"] / n_samples),
            ("loop_gain", self.network.loop_gain()),
        ):
            records[key].append(value)
        logger.info(
            "epoch %d: train %.4f, test %.4f, %.1f samples/s",
            len(records["train_accuracy"]),
            accuracies[0],
            accuracies[1],
            records["samples_per_s"][-1],
        )

    def _progress_bars(self, epochs: int, done: int, n_chunks: int) -> tuple[Any, Any]:
        """An epoch-level progress bar, and the chunks of the current epoch below it."""
        epochs_bar = tqdm(
            total=epochs,
            initial=done,
            disable=not self.progress,
            desc=f"{self.rule.name}: epochs",
            unit="epoch",
        )
        chunks_bar = tqdm(
            total=n_chunks, disable=not self.progress, desc="chunks", unit="chunk", leave=False
        )
        return epochs_bar, chunks_bar

    def _snapshot(self, generators: dict[str, np.random.Generator]) -> dict[str, Any]:
        """Weights, optimizer state and generator states, to undo a discarded chunk."""
        return {
            "weights": {k: np.array(v) for k, v in self.network.weight_arrays().items()},
            "optimizer": {k: np.array(v) for k, v in self._train.optimizer_state.items()},
            "generators": {k: dict(g.bit_generator.state) for k, g in generators.items()},
        }

    def _restore(
        self, snapshot: dict[str, Any], generators: dict[str, np.random.Generator]
    ) -> None:
        self.network.set_weight_arrays(snapshot["weights"])
        self._train.optimizer_state = snapshot["optimizer"]
        for name, generator in generators.items():
            generator.bit_generator.state = snapshot["generators"][name]

    def _fingerprint(
        self, inputs: FloatArray, labels: NDArray[np.int64], epochs: int, validated: bool
    ) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (:func:`run_fingerprint`)."""
        return run_fingerprint(self, inputs, labels, epochs, validated)

    def _history(self, records: dict[str, list[float]]) -> xr.Dataset:
        """The history Dataset of the records (:func:`training_history`)."""
        return training_history(self, records)
