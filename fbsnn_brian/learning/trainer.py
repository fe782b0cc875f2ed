"""Trainer: epochs of in-simulation SPIDE learning, validation, history.

The Trainer owns two compiled (or runtime) simulations of the same network: the training
simulation (free phase, perturbed phase and plasticity for every sample, see
:mod:`fbsnn_brian.build.training`) and the evaluation simulation (free phase only, see
:mod:`fbsnn_brian.build.free_run`). Samples are presented one at a time (online learning), in an
order shuffled per epoch with a seeded generator, in chunks of ``chunk_size`` samples per Brian2
run.

What a run does from epoch to epoch (the learning-rate schedule, checkpoints and resume, health
checks, the evaluation after every epoch and the history records) is an
:class:`~fbsnn_brian.learning.epochs.EpochLoop` (:meth:`Trainer.epoch_loop`), which
:class:`~fbsnn_brian.learning.distributed.DistributedTraining` drives with its own rounds; the
Trainer trains the chunks of each epoch.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from tqdm.auto import tqdm

from fbsnn_brian import interrupt
from fbsnn_brian.build.devices.engines import Evaluator, engines_of
from fbsnn_brian.build.devices.registry import device_names, get_device_spec
from fbsnn_brian.build.devices.standalone import check_available, compile_all
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.learning.augmentation import RandomShift
from fbsnn_brian.learning.engine import TrainingEngine
from fbsnn_brian.learning.epochs import SCHEDULES, Epoch, EpochLoop, set_accuracies
from fbsnn_brian.learning.recorded import RecordedRuleSimulation
from fbsnn_brian.learning.records import run_fingerprint, training_history
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.rules.learning_rules import SPIDE, LearningRule, rule_from_name
from fbsnn_brian.validation import check_choice, check_labels, check_positive_int, describe

__all__ = ["SCHEDULES", "TRAINER_DEVICES", "Trainer"]

logger = logging.getLogger(__name__)

#: Devices a Trainer accepts: those of the device registry that serve training.
TRAINER_DEVICES = device_names("train")


FloatArray = NDArray[np.float64]


class Trainer:
    """Train a FeedbackNetwork with a learning rule (SPIDE by default, inside the simulation).

    Parameters
    ----------
    network : FeedbackNetwork
        Trained in place (its weight arrays are replaced after every chunk).
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a
        :class:`~fbsnn_brian.model.plasticity.SPIDEPlasticity`.
    device : str
        A name in :data:`fbsnn_brian.build.devices.registry.REGISTRY` that serves training
        (:data:`TRAINER_DEVICES`); the entry builds the training engine and the evaluator
        (:func:`fbsnn_brian.build.devices.engines.engines_of`) and refuses the rules and
        plasticity options it does not train
        (:meth:`~fbsnn_brian.build.devices.registry.Device.check_training`).
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
        self._device.check_training(
            owner, rule=rule.name, learn_feedback=self.plasticity.learn_feedback
        )
        if rule.in_simulation:
            self._train = engines_of(self._device).training(
                network,
                protocol,
                chunk_size=self.chunk_size,
                directory=train_directory,
                use_gpu=self.use_gpu,
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
        self._evaluation: Evaluator | None = None

    def compile(self, *, check_only: bool = False) -> dict[str, dict[str, Any]]:
        """Compile the standalone builds (``train``, ``evaluate``) now, or only check them.

        See :func:`~fbsnn_brian.build.devices.standalone.compile_all`.
        """
        engines = {"train": self._train, "evaluate": self._evaluator()}
        return compile_all(engines, check_only=check_only)

    # ------------------------------------------------------------------ evaluation
    def _evaluator(self) -> Evaluator:
        if self._evaluation is None:
            self._evaluation = engines_of(self._device).evaluation(
                self.network,
                Protocol([self.protocol.free_phase]),
                chunk_size=max(self.chunk_size, 500),
                directory=None if self._directory is None else f"{self._directory}/evaluate",
                use_gpu=self.use_gpu,
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

    def accuracies(self, sets: list[tuple[FloatArray, NDArray[np.int64]]]) -> list[float]:
        """Accuracy on each (inputs, labels) set, all evaluated in one simulation call."""
        readout = self._evaluator().run(np.concatenate([inputs for inputs, _ in sets])).readout
        return set_accuracies(readout.argmax(axis=1), sets)

    # ------------------------------------------------------------------ training
    @property
    def engine(self) -> TrainingEngine:
        """The engine that trains the network, built for the device and the rule.

        A :class:`~fbsnn_brian.learning.engine.TrainingEngine`: it carries the optimizer
        state and the input-dropout generator that checkpoints record.
        """
        return self._train

    def epoch_loop(
        self,
        owner: str,
        inputs: Any,
        labels: Any,
        *,
        epochs: int,
        validation: tuple[Any, Any] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        fingerprint: dict[str, Any] | None = None,
    ) -> EpochLoop:
        """The :class:`~fbsnn_brian.learning.epochs.EpochLoop` of one run of this trainer.

        Its network, plasticity, engine, schedule and seed are this trainer's; the arguments
        are those of :meth:`fit` (checked, the errors naming ``owner``). A checkpoint must
        match :func:`~fbsnn_brian.learning.records.run_fingerprint` of this trainer and the
        data, followed by the entries of ``fingerprint`` (what a caller adds to it).
        """

        def described(
            array: FloatArray, truth: NDArray[np.int64], epochs: int, validated: bool
        ) -> dict[str, Any]:
            return {**run_fingerprint(self, array, truth, epochs, validated), **(fingerprint or {})}

        return EpochLoop(
            owner=owner,
            network=self.network,
            plasticity=self.plasticity,
            engine=self._train,
            schedule=self.schedule,
            seed=self.seed,
            inputs=inputs,
            labels=labels,
            epochs=epochs,
            validation=validation,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            fingerprint=described,
        )

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
        loop = self.epoch_loop(
            "Trainer.fit",
            inputs,
            labels,
            epochs=epochs,
            validation=validation,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
        )
        n_chunks = math.ceil(loop.n_samples / self.chunk_size)
        epochs_bar, chunks_bar = self._progress_bars(loop.epochs, loop.state.epoch, n_chunks)

        def finished(accuracies: list[float]) -> None:
            epochs_bar.update(1)
            epochs_bar.set_postfix(train=f"{accuracies[0]:.3f}", test=f"{accuracies[1]:.3f}")

        try:
            records = loop.run(
                functools.partial(self._train_epoch, loop, chunks_bar),
                self.accuracies,
                evaluation_where=lambda index: (
                    f"after chunk {n_chunks}/{n_chunks} of epoch "
                    f"{index + 1}/{loop.epochs}, during its evaluation"
                ),
                finished=finished,
            )
        finally:
            chunks_bar.close()
            epochs_bar.close()
        return training_history(self, records)

    def _train_epoch(self, loop: EpochLoop, bar: Any, epoch: Epoch) -> None:
        """Train the chunks of one epoch (from a resumed position).

        A signal (:mod:`fbsnn_brian.interrupt`) is honoured at every chunk boundary. A chunk
        during which one arrived is discarded, because a standalone binary stops its simulation
        early on SIGINT: the weights, optimizer state and random generators go back to their
        state before the chunk, that state is checkpointed, and
        :class:`~fbsnn_brian.interrupt.Interrupted` is raised.
        """
        array, truth = loop.inputs, loop.labels
        n_samples, n_chunks = loop.n_samples, math.ceil(loop.n_samples / self.chunk_size)
        # mini-batches run over chunk boundaries; the last one of an epoch may be short
        positions = np.arange(1, n_samples + 1)
        apply_after = (positions % self.plasticity.batch_size == 0) | (positions == n_samples)
        bar.reset(total=n_chunks)
        bar.update(math.ceil(epoch.first / self.chunk_size))
        for first in range(epoch.first, n_samples, self.chunk_size):
            where = (
                f"after chunk {first // self.chunk_size}/{n_chunks} of epoch "
                f"{epoch.index + 1}/{loop.epochs}"
            )
            loop.stop_if_requested(epoch, first, where)
            before = loop.snapshot()
            start = time.perf_counter()
            chosen = epoch.order[first : first + self.chunk_size]
            shown = array[chosen]
            if self.augmentation is not None:
                shown = self.augmentation(shown, loop.generators["augmentation"])
            try:
                stats = self._train.train_chunk(
                    shown,
                    truth[chosen],
                    epoch.rates[first : first + len(chosen)],
                    apply_after[first : first + len(chosen)],
                )
            except interrupt.Interrupted:
                pass  # the binary died of the signal: undone below
            loop.undo_if_requested(before, epoch, first, where)
            if not (self.plasticity.learn_feedback or self.rule.in_simulation):
                # a recorded rule updates once per chunk, so W_fb is frozen by undoing its part
                self.network.feedback_weights = before["weights"]["feedback_weights"]
            loop.count_time(time.perf_counter() - start)
            loop.count(epoch, stats, len(chosen))
            bar.update(1)
            position = first + len(chosen)
            loop.after_step(epoch, position, position // self.chunk_size)

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
