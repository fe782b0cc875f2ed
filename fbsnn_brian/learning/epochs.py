"""The epochs of one training run, shared by the single-process and the distributed trainer.

:class:`EpochLoop` is what :meth:`Trainer.fit <fbsnn_brian.learning.trainer.Trainer.fit>` and
:meth:`DistributedTraining.fit <fbsnn_brian.learning.distributed.DistributedTraining.fit>` have
in common: the checked training and validation sets, the learning-rate schedule, the three
random generators, the checkpoints and the resume from one, the numerical health checks, the
evaluation after every epoch and the history records. What differs between the two is how the
samples of an epoch are trained (chunks in this process, or synchronisation rounds on Dask
workers) and how a set is evaluated; each passes those to :meth:`EpochLoop.run`, and drives
the loop's checkpoints through its public methods at the boundaries of its own steps.

Checkpoints are written at step boundaries only (:mod:`fbsnn_brian.io.checkpoint`). A signal
(:mod:`fbsnn_brian.interrupt`) is honoured there: the state is checkpointed and
:class:`~fbsnn_brian.interrupt.Interrupted` is raised. A step during which a signal arrived is
undone first (:meth:`EpochLoop.undo_if_requested`), because a standalone binary stops its
simulation early on SIGINT; so a run resumed from any checkpoint ends with the weights and the
history of a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian import interrupt
from fbsnn_brian.build.training import ChunkStatistics
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from fbsnn_brian.learning.engine import TrainingEngine
from fbsnn_brian.learning.health import check_health
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.plasticity import SPIDEPlasticity
from fbsnn_brian.validation import check_labels, check_positive_int, describe

__all__ = [
    "RECORDS",
    "SCHEDULES",
    "Epoch",
    "EpochLoop",
    "LabelledSet",
    "learning_rates",
    "set_accuracies",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
#: (inputs, labels) of one evaluation set.
LabelledSet = tuple[FloatArray, NDArray[np.int64]]

#: Learning-rate schedules over a whole run (:func:`learning_rates`).
SCHEDULES = ("constant", "cosine")

#: The quantities the history records once per finished epoch (in this order).
RECORDS = (
    "train_accuracy",
    "test_accuracy",
    "learning_rate",
    "samples_per_s",
    "wall_time_s",
    "forward_rate",
    "backward_rate",
    "loop_gain",
)


def learning_rates(
    schedule: str, base: float, epoch: int, epochs: int, n_samples: int
) -> FloatArray:
    """The learning rate of every position of epoch ``epoch`` (0-based) of ``epochs``.

    ``'constant'``: ``base`` everywhere; ``'cosine'``: cosine annealing from ``base`` to zero
    over the whole run, updated per sample.

    Examples
    --------
    >>> learning_rates("cosine", 1.0, 0, 1, 4).round(3).tolist()
    [1.0, 0.854, 0.5, 0.146]
    >>> learning_rates("constant", 0.02, 1, 2, 3).tolist()
    [0.02, 0.02, 0.02]
    """
    if schedule == "constant":
        return np.full(n_samples, base)
    total = epochs * n_samples
    position = epoch * n_samples + np.arange(n_samples)
    return base * 0.5 * (1.0 + np.cos(math.pi * position / total))


def set_accuracies(predicted: NDArray[np.int64], sets: list[LabelledSet]) -> list[float]:
    """Accuracy on each (inputs, labels) set of the predictions of their concatenated inputs."""
    accuracies, start = [], 0
    for inputs, labels in sets:
        stop = start + len(inputs)
        accuracies.append(float(np.mean(predicted[start:stop] == labels)))
        start = stop
    return accuracies


@dataclass(frozen=True)
class Epoch:
    """One epoch, as :meth:`EpochLoop.run` hands it to the code that trains its samples.

    Attributes
    ----------
    index : int
        The epoch (0-based).
    order : ndarray of int
        The epoch's shuffled order of the training samples.
    first : int
        Position in ``order`` of the first sample to train: 0, or where a resumed run stopped.
    rates : ndarray of float
        The schedule's learning rate at every position of the epoch (:func:`learning_rates`).
    """

    index: int
    order: NDArray[np.int64]
    first: int
    rates: FloatArray


class EpochLoop:
    """One call of ``fit``: its data, schedule, generators, checkpoints, health and records.

    The constructor checks the arguments of ``fit`` (in the order a caller lists them) and,
    with ``resume``, loads the checkpoint into the network, the engine and the generators.

    Parameters
    ----------
    owner : str
        Names the caller in error messages (``'Trainer.fit'``).
    network : FeedbackNetwork
        Trained in place; its weights are checkpointed, and restored when a step is undone.
    plasticity : SPIDEPlasticity
        Its ``learning_rate`` is the base of the schedule; the health checks name it.
    engine : TrainingEngine
        Supplies the input-dropout generator and the optimizer state that checkpoints carry.
    schedule : {'constant', 'cosine'}
        The learning rate over the whole run (:func:`learning_rates`).
    seed : int
        Seeds the shuffling (``'shuffle'``) and augmentation (``'augmentation'``) generators.
    inputs : array_like, shape (n_samples, n_inputs)
        Training inputs in [0, 1].
    labels : array_like of int, shape (n_samples,)
    epochs : int
        Passes over the training set.
    validation : (inputs, labels), optional
        Evaluated after every epoch (its accuracy is the history's ``test_accuracy``).
    checkpoint : path, optional
        ``.npz`` file that receives the checkpoints (none without it).
    checkpoint_every : int
        Steps (the caller's chunks or rounds) between checkpoints inside an epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists.
    fingerprint : callable
        ``fingerprint(inputs, labels, epochs, validated)``: what a checkpoint must match to be
        resumed (:func:`~fbsnn_brian.learning.records.run_fingerprint`, and what a caller
        adds to it), given the checked training set.

    Attributes
    ----------
    inputs, labels : ndarray
        The checked training set.
    sets : list of (inputs, labels)
        The sets evaluated after every epoch: the training set, then the validation set.
    generators : dict of str to numpy.random.Generator
        ``'shuffle'``, ``'augmentation'`` and ``'dropout'`` (the engine's), checkpointed.
    state : TrainingState
        Where the run stands, as the checkpoints record it.
    """

    def __init__(
        self,
        *,
        owner: str,
        network: FeedbackNetwork,
        plasticity: SPIDEPlasticity,
        engine: TrainingEngine,
        schedule: str,
        seed: int,
        inputs: Any,
        labels: Any,
        epochs: int,
        validation: tuple[Any, Any] | None,
        checkpoint: str | os.PathLike[str] | None,
        checkpoint_every: int,
        resume: bool,
        fingerprint: Callable[[FloatArray, NDArray[np.int64], int, bool], dict[str, Any]],
    ) -> None:
        network.check_invariants()
        self.inputs = network.check_inputs(inputs, owner=owner)
        self.labels = check_labels(owner, labels, len(self.inputs), network.n_classes)
        self.epochs = check_positive_int(owner, "epochs", epochs)
        self.checkpoint_every = check_positive_int(owner, "checkpoint_every", checkpoint_every)
        if resume and checkpoint is None:
            raise ValidationError(f"{owner}: resume=True needs a checkpoint path.")
        self.sets: list[LabelledSet] = [(self.inputs, self.labels)]
        if validation is not None:
            self.sets.append(_checked_pair(f"{owner} (validation)", network, validation))
        self.network, self.plasticity, self.engine = network, plasticity, engine
        self.schedule, self.checkpoint = schedule, checkpoint
        self.generators = {
            "shuffle": np.random.default_rng(seed),
            "augmentation": np.random.default_rng([seed, 1]),
            "dropout": engine.dropout_generator,
        }
        self.state = TrainingState(
            fingerprint=fingerprint(self.inputs, self.labels, self.epochs, validation is not None),
            records={key: [] for key in RECORDS},
        )
        if resume and checkpoint is not None and Path(checkpoint).is_file():
            self._resume(checkpoint)

    @property
    def n_samples(self) -> int:
        """Samples of the training set (of every epoch)."""
        return len(self.inputs)

    @property
    def records(self) -> dict[str, list[float]]:
        """One list per quantity of :data:`RECORDS`, one value per finished epoch."""
        return self.state.records

    # ------------------------------------------------------------------ the epochs
    def run(
        self,
        train: Callable[[Epoch], None],
        accuracies: Callable[[list[LabelledSet]], list[float]],
        *,
        evaluation_where: Callable[[int], str],
        finished: Callable[[list[float]], None] | None = None,
    ) -> dict[str, list[float]]:
        """Train and evaluate the remaining epochs, with signals turned into checkpoints.

        Parameters
        ----------
        train : callable
            ``train(epoch)``: trains the samples of an :class:`Epoch` from ``epoch.first`` on.
        accuracies : callable
            ``accuracies(sets)``: the accuracy on each of :attr:`sets` with the current weights.
        evaluation_where : callable
            ``evaluation_where(index)``: where a run interrupted during the evaluation of
            epoch ``index`` stopped, in words (for :class:`~fbsnn_brian.interrupt.Interrupted`).
        finished : callable, optional
            ``finished(accuracies)``: called after every recorded and checkpointed epoch with
            its training and validation (NaN without one) accuracies.

        Returns
        -------
        dict of str to list of float
            :attr:`records`.
        """
        with interrupt.interruptible():
            for index in range(self.state.epoch, self.epochs):
                epoch = self.begin(index)
                train(epoch)
                with contextlib.suppress(interrupt.Interrupted):  # redone on resume
                    measured = [*accuracies(self.sets), math.nan][:2]
                if interrupt.requested():
                    # an evaluation binary stops early on the signal: redone on resume
                    self.save(index, self.n_samples, epoch.order)
                    interrupt.check(evaluation_where(index))
                self.record(measured, float(epoch.rates.mean()))
                self.save(index + 1, 0, None)
                if finished is not None:
                    finished(measured)
        return self.records

    def begin(self, index: int) -> Epoch:
        """Epoch ``index``: its order (drawn, or the resumed one) and its learning rates."""
        state = self.state
        if state.order is None or index != state.epoch:
            state.order = self.generators["shuffle"].permutation(self.n_samples)
            state.next_sample = 0
            state.partial = {"spikes": 0.0, "events": 0.0, "elapsed_s": 0.0}
        rates = learning_rates(
            self.schedule, self.plasticity.learning_rate, index, self.epochs, self.n_samples
        )
        return Epoch(index=index, order=state.order, first=state.next_sample, rates=rates)

    # ------------------------------------------------------------------ the steps
    def stop_if_requested(self, epoch: Epoch, position: int, where: str) -> None:
        """If a signal arrived: checkpoint before ``position`` of ``epoch`` and raise.

        Called at the boundary of a step, before it starts; ``where`` names the boundary.
        """
        if interrupt.requested():
            self.save(epoch.index, position, epoch.order)
            interrupt.check(where)

    def undo_if_requested(
        self, snapshot: dict[str, Any], epoch: Epoch, position: int, where: str
    ) -> None:
        """If a signal arrived during the step from ``position``: undo it, checkpoint, raise.

        The weights, optimizer state and random generators go back to ``snapshot`` (taken
        by :meth:`snapshot` before the step), and that state is checkpointed.
        """
        if interrupt.requested():
            self.restore(snapshot)
            self.save(epoch.index, position, epoch.order)
            interrupt.check(where)

    def count(self, epoch: Epoch, stats: ChunkStatistics, n_samples: int) -> None:
        """Add a trained chunk of ``n_samples`` samples to the epoch's counters; check health.

        Raises :class:`~fbsnn_brian.errors.NumericalError` (:func:`check_health`) before the
        step's checkpoint is written, so the checkpoint on disk is the last good state.
        """
        partial = self.state.partial
        partial["spikes"] += stats.forward_rate * n_samples
        partial["events"] += stats.backward_rate * n_samples
        check_health(self.network, self.plasticity, epoch.index, stats)

    def count_time(self, seconds: float) -> None:
        """Add the wall time of a step to the epoch's training time."""
        self.state.partial["elapsed_s"] += seconds

    def after_step(self, epoch: Epoch, position: int, step: int) -> None:
        """Checkpoint before ``position`` after every ``checkpoint_every``-th step of an epoch.

        ``step`` counts the epoch's steps (1 after its first); the end of an epoch is
        checkpointed by :meth:`run`, after its evaluation.
        """
        if position < self.n_samples and not step % self.checkpoint_every:
            self.save(epoch.index, position, epoch.order)

    # ------------------------------------------------------------------ the state
    def save(self, epoch: int, next_sample: int, order: NDArray[np.int64] | None) -> None:
        """Checkpoint the state before ``next_sample`` of ``epoch`` (nothing without a path)."""
        if self.checkpoint is None:
            return
        state = self.state
        state.epoch, state.next_sample, state.order = epoch, next_sample, order
        state.generators = {
            name: dict(generator.bit_generator.state) for name, generator in self.generators.items()
        }
        state.optimizer_state = self.engine.optimizer_state
        save_checkpoint(self.checkpoint, self.network, state)

    def snapshot(self) -> dict[str, Any]:
        """Weights, optimizer state and generator states, to undo a discarded step.

        ``snapshot["weights"]`` holds copies of the network's weight arrays by name.
        """
        return {
            "weights": {k: np.array(v) for k, v in self.network.weight_arrays().items()},
            "optimizer": {k: np.array(v) for k, v in self.engine.optimizer_state.items()},
            "generators": {k: dict(g.bit_generator.state) for k, g in self.generators.items()},
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Put the network, the engine and the generators back to a :meth:`snapshot`."""
        self.network.set_weight_arrays(snapshot["weights"])
        self.engine.optimizer_state = snapshot["optimizer"]
        for name, generator in self.generators.items():
            generator.bit_generator.state = snapshot["generators"][name]

    def record(self, accuracies: list[float], mean_rate: float) -> None:
        """Append one finished epoch to the history records.

        ``accuracies`` holds the training and validation accuracies; ``mean_rate`` is the
        epoch's mean learning rate.
        """
        partial, n_samples, records = self.state.partial, self.n_samples, self.records
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

    def _resume(self, checkpoint: str | os.PathLike[str]) -> None:
        """Load a checkpoint into the network, the engine and the generators."""
        self.state = load_checkpoint(checkpoint, self.network, self.state.fingerprint)
        self.engine.optimizer_state = self.state.optimizer_state
        for name, generator in self.generators.items():
            generator.bit_generator.state = self.state.generators[name]
        logger.info(
            "resumed from %s at epoch %d, sample %d",
            checkpoint,
            self.state.epoch + 1,
            self.state.next_sample,
        )


def _checked_pair(owner: str, network: FeedbackNetwork, pair: tuple[Any, Any]) -> LabelledSet:
    """Validated (inputs, labels) of an evaluation set."""
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise ValidationError(
            f"{owner}: validation must be a pair (inputs, labels), got {describe(pair)}."
        )
    inputs = network.check_inputs(pair[0], owner=owner)
    return inputs, check_labels(owner, pair[1], len(inputs), network.n_classes)
