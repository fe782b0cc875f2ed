"""One training run on several worker processes: periodic model averaging (local SGD) on Dask.

``fbsnn train --workers K [--scheduler tcp://HOST:PORT] [--sync-every N]`` trains ONE network
with K Dask workers (a LocalCluster of K processes by default). Every synchronisation round
covers the next ``K * N`` samples of the epoch's shuffled order: worker k trains online, with
SPIDE inside its own compiled binary, on positions ``k, k + K, k + 2K, ...`` of them (N samples,
the learning rate of each position as in a single-process run), starting from the round's
common weights; the coordinator then merges the K resulting weights (:data:`MERGES`),
averages the optimizer states, caps the loop gain, checks the run's health and writes a
checkpoint. The default merge, ``'scaled'``, is the linear scaling rule of large-batch SGD:
every worker trains with K times the run's learning rate and the K weights are averaged, so a
round makes as many samples' worth of progress as a single process makes on its samples. The
plain mean (``'average'``) makes 1/K of it; the round's weights plus the sum of the K changes
(``'sum'``) adds changes that each already corrected the same errors, and overshoots. Measured
on MNIST 784-256-10 (``benchmarks/workers.py``, benchmarks/results/README.md, "Scaling one
run"; 2 epochs, lr 0.02):
K = 2 with 'scaled' ended 0.2 points above one process (mean of two seeds), 'average' and 'sum'
1.1 and 1.0 points below it (seed 0).

After every epoch the training (and validation) images are evaluated by the K workers, each
predicting an even share of them in its own compiled free-phase simulation with the epoch's
weights (:func:`predict_shard`); with K = 1 the coordinator evaluates, as a single process does.

Why model averaging and not synchronous mini-batches: SPIDE is an online rule, one update per
sample, and a standalone binary is started once per chunk of samples (weights in and out
through ``run_args`` files). A synchronous mini-batch of B samples would pay one launch and one
weight exchange per worker for only B / K samples; averaging every N samples pays them once per
N samples per worker (``benchmarks/workers.py`` measures both costs; benchmarks/results/README.md,
"Scaling one run").

Determinism: the per-round task :func:`train_round` is a pure function of the weights, the
optimizer state and the shard (inputs already shifted and dropped out by the coordinator,
labels, learning rates, update positions), so a task lost with its worker is recomputed by Dask
(``retries``) with the same result. With K = 1 and ``sync_every`` a multiple of the chunk size,
the samples, chunks, random draws and updates are those of :meth:`Trainer.fit`, and the
weights equal the single-process result bit for bit.

Dask is optional (the ``sweep`` extra: ``pip install 'fbsnn_brian[sweep]'``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian import interrupt
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.build.training import TrainingSimulation, drop_inputs
from fbsnn_brian.errors import FbsnnError, ValidationError
from fbsnn_brian.learning.epochs import Epoch, EpochLoop, LabelledSet, set_accuracies
from fbsnn_brian.learning.records import training_history
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.validation import check_choice, check_positive_int

__all__ = [
    "MERGES",
    "DistributedTraining",
    "average",
    "connect",
    "merge",
    "predict_shard",
    "train_round",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
Arrays = dict[str, FloatArray]

#: Tasks of a round Dask recomputes after a failure or a lost worker.
RETRIES = 3

# one compiled training engine per configuration and worker process, reused by every round
_ENGINES: dict[str, TrainingSimulation] = {}
# one compiled evaluation (free phase only) per configuration and worker process
_EVALUATIONS: dict[str, FreeRunSimulation] = {}

#: Samples per Brian2 run of an evaluation (as the single-process Trainer's evaluation).
EVALUATION_CHUNK = 500


def _dask() -> Any:
    """The dask.distributed module, or an error that names the extra providing it."""
    try:
        return importlib.import_module("dask.distributed")
    except ImportError:
        raise FbsnnError(
            "training with --workers or --scheduler needs Dask: install the 'sweep' extra "
            "(pip install 'fbsnn_brian[sweep]')."
        ) from None


@contextlib.contextmanager
def connect(workers: int, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: of the scheduler at ``scheduler``, or of a LocalCluster of ``workers``."""
    distributed = _dask()
    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = distributed.Client(cluster if cluster is not None else scheduler)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _built(store: dict[str, Any], network: FeedbackNetwork, parts: list[Any], build: Any) -> Any:
    """This process's simulation for ``network``'s configuration and ``parts`` (built once)."""
    key = json.dumps([network.config_json(), *parts], sort_keys=True)
    if key not in store:
        store[key] = build()
    return store[key]


def _engine(network: FeedbackNetwork, protocol: Protocol, device: str, chunk_size: int) -> Any:
    """This process's training engine for the configuration (built once, then reused)."""
    return _built(
        _ENGINES,
        network,
        [protocol.to_json(), device, chunk_size],
        lambda: TrainingSimulation(network, protocol, device=device, chunk_size=chunk_size),
    )


def train_round(
    network: FeedbackNetwork,
    protocol: Protocol,
    device: str,
    chunk_size: int,
    optimizer_state: Arrays,
    shard: dict[str, Any],
) -> dict[str, Any]:
    """Train a copy of ``network`` online on one worker's shard of a round (a pure function).

    Parameters
    ----------
    network : FeedbackNetwork
        The configuration and the round's common weights.
    protocol : Protocol
        Its plasticity has no input dropout (the coordinator drops inputs out).
    device : str
        The training device (cpp_standalone compiles once per worker process).
    chunk_size : int
        Samples per Brian2 run.
    optimizer_state : dict
        Momentum velocities and mini-batch sums at the start of the round.
    shard : dict
        ``inputs`` (as shown), ``labels``, ``rates`` (learning rate per sample) and
        ``apply_after`` (whether the mini-batch sum is applied after each sample).

    Returns
    -------
    dict
        ``weights``, ``optimizer_state``, ``statistics`` (one
        :class:`~fbsnn_brian.build.training.ChunkStatistics` per chunk), ``compile_time_s``,
        ``build_cache_hit`` and ``pid`` (the worker process).
    """
    engine = _engine(network, protocol, device, chunk_size)
    engine.network.set_weight_arrays(network.weight_arrays())
    engine.optimizer_state = optimizer_state
    statistics = []
    for first in range(0, len(shard["labels"]), chunk_size):
        part = slice(first, first + chunk_size)
        statistics.append(
            engine.train_chunk(
                shard["inputs"][part],
                shard["labels"][part],
                shard["rates"][part],
                shard["apply_after"][part],
            )
        )
    return {
        "weights": {
            name: np.array(value) for name, value in engine.network.weight_arrays().items()
        },
        "optimizer_state": engine.optimizer_state,
        "statistics": statistics,
        "compile_time_s": float(engine.compile_time_s),
        "build_cache_hit": bool(engine.build_cache_hit),
        "pid": os.getpid(),
    }


def predict_shard(
    network: FeedbackNetwork, protocol: Protocol, device: str, inputs: FloatArray
) -> NDArray[np.int64]:
    """Predicted classes of one worker's share of an evaluation set (a pure function).

    The argmax of the readout of the free-phase rates, as :meth:`Trainer.predict` computes
    it, with ``network``'s weights in this process's compiled free-phase simulation.
    """
    evaluation = _built(
        _EVALUATIONS,
        network,
        [protocol.to_json(), device],
        lambda: FreeRunSimulation(
            network,
            Protocol([protocol.free_phase]),
            device=device,
            chunk_size=EVALUATION_CHUNK,
            record_spikes=False,
        ),
    )
    evaluation.network.set_weight_arrays(network.weight_arrays())
    return np.asarray(evaluation.run(inputs).readout.argmax(axis=1), dtype=np.int64)


#: How the workers' weights become the next round's: ``'scaled'`` (the workers train with K
#: times the learning rate, their weights are averaged), ``'average'`` (their mean) or
#: ``'sum'`` (the round's weights plus the sum of their changes).
MERGES = ("scaled", "average", "sum")


def merge(start: Arrays, arrays: list[Arrays], how: str) -> Arrays:
    """The next round's weights from the round's ``start`` and each worker's ``arrays``."""
    if how != "sum" or len(arrays) == 1:
        return average(arrays)
    return {
        name: start[name] + np.sum([entry[name] - start[name] for entry in arrays], axis=0)
        for name in start
    }


def average(arrays: list[Arrays]) -> Arrays:
    """The mean of each named array over the workers (one worker's arrays unchanged)."""
    if len(arrays) == 1:
        return {name: np.array(value) for name, value in arrays[0].items()}
    return {
        name: np.mean(np.stack([entry[name] for entry in arrays]), axis=0) for name in arrays[0]
    }


def _shard_layout(n_samples: int, workers: int, sync_every: int) -> tuple[NDArray[Any], ...]:
    """Per epoch position: its worker and its position in that worker's epoch."""
    positions = np.arange(n_samples)
    span = workers * sync_every
    offset = positions % span
    worker = offset % workers
    local = (positions // span) * sync_every + offset // workers
    return worker, local


class DistributedTraining:
    """Train a Trainer's network with K worker processes by periodic model averaging.

    Parameters
    ----------
    trainer : Trainer
        Its network, protocol, schedule, augmentation, seed, chunk size and device; SPIDE on
        cpp_standalone or a Brian2 runtime device. The network is trained in place.
    workers : int
        K, the number of shards per round (and of LocalCluster processes).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:port``); default a LocalCluster.
    sync_every : int, optional
        N, samples each worker trains between two averagings (default the chunk size).
    merge : {'scaled', 'average', 'sum'}
        The next round's weights: the mean of the weights of workers that trained with K times
        the learning rate (default), their plain mean, or the round's weights plus the sum of
        the workers' changes (see :data:`MERGES`).
    task : callable
        The per-round task (:func:`train_round`, or a wrapper of it with the same signature).
    retries : int
        Recomputations Dask allows a failed task.
    """

    def __init__(
        self,
        trainer: Trainer,
        *,
        workers: int,
        scheduler: str | None = None,
        sync_every: int | None = None,
        merge: str = "scaled",
        task: Callable[..., dict[str, Any]] = train_round,
        retries: int = RETRIES,
    ) -> None:
        owner = "DistributedTraining"
        if not isinstance(trainer, Trainer):
            raise ValidationError(f"{owner}: trainer must be a Trainer, got {type(trainer)}.")
        if not isinstance(trainer.engine, TrainingSimulation):
            raise ValidationError(
                f"{owner}: several workers train with SPIDE on cpp_standalone or a runtime "
                f"device; got rule {trainer.rule.name!r} on {trainer.device!r}."
            )
        self.trainer = trainer
        self.workers = check_positive_int(owner, "workers", workers)
        self.scheduler = scheduler
        self.sync_every = check_positive_int(
            owner, "sync_every", trainer.chunk_size if sync_every is None else sync_every
        )
        self.chunk_size = min(trainer.chunk_size, self.sync_every)
        self.merge = check_choice(owner, "merge", merge, MERGES)
        self.task = task
        self.retries = int(retries)
        plasticity = dataclasses.replace(trainer.plasticity, input_dropout=0.0)
        self._protocol = Protocol(trainer.protocol.phases, plasticity=plasticity)
        self._compile: dict[str, Any] = {"compile_time_s": 0.0, "build_cache_hit": False}

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
        """Train for ``epochs`` epochs; return the history (as :meth:`Trainer.fit`).

        A checkpoint is written every ``checkpoint_every`` synchronisation rounds (default:
        after every round) and after every epoch; with ``resume=True`` training continues from
        it to the weights of an uninterrupted run. The history's attributes add ``workers``
        and ``sync_every``. The epochs, schedule, checkpoints, health checks and records are
        the trainer's :class:`~fbsnn_brian.learning.epochs.EpochLoop`
        (:meth:`Trainer.epoch_loop`); a checkpoint also records ``workers``, ``sync_every`` and
        ``merge``, which a resumed run must repeat.
        """
        trainer = self.trainer
        loop = trainer.epoch_loop(
            "DistributedTraining.fit",
            inputs,
            labels,
            epochs=epochs,
            validation=validation,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            fingerprint={
                "workers": self.workers,
                "sync_every": self.sync_every,
                "merge": self.merge,
            },
        )
        with connect(self.workers, self.scheduler) as client:
            records = loop.run(
                lambda epoch: self._train_epoch(client, loop, epoch),
                lambda sets: self._accuracies(client, sets),
                evaluation_where=lambda index: (
                    f"during the evaluation of epoch {index + 1}/{loop.epochs}"
                ),
            )
        history = training_history(trainer, records)
        history.attrs.update(self._compile, workers=self.workers, sync_every=self.sync_every)
        history.attrs["build_cache_hit"] = int(history.attrs["build_cache_hit"])
        return history

    def _shards(
        self,
        positions: NDArray[np.int64],
        loop: EpochLoop,
        order: NDArray[np.int64],
        plan: dict[str, NDArray[Any]],
    ) -> list[dict[str, Any]]:
        """The round's shards, shown as the single-process Trainer shows its chunks."""
        array, truth, generators = loop.inputs, loop.labels, loop.generators
        augmentation = self.trainer.augmentation
        dropout = self.trainer.plasticity.input_dropout
        shards = []
        for k in range(self.workers):
            mine = positions[plan["worker"][positions] == k]
            if not len(mine):
                continue
            chunks = []
            for first in range(0, len(mine), self.chunk_size):
                shown = array[order[mine[first : first + self.chunk_size]]]
                if augmentation is not None:
                    shown = augmentation(shown, generators["augmentation"])
                chunks.append(drop_inputs(shown, dropout, generators["dropout"]))
            shards.append(
                {
                    "inputs": np.concatenate(chunks),
                    "labels": truth[order[mine]],
                    "rates": plan["rates"][mine],
                    "apply_after": plan["apply_after"][mine],
                }
            )
        return shards

    def _plan(self, rates: FloatArray) -> dict[str, NDArray[Any]]:
        """Per epoch position: worker, learning rates (the workers') and mini-batch ends.

        ``rates`` are the run's learning rates of the epoch's positions (those the history
        records, :func:`~fbsnn_brian.learning.epochs.learning_rates`).
        """
        n_samples = len(rates)
        worker, local = _shard_layout(n_samples, self.workers, self.sync_every)
        per_worker = np.bincount(worker, minlength=self.workers)
        batch = self.trainer.plasticity.batch_size
        return {
            "worker": worker,
            "rates": rates * self.workers if self.merge == "scaled" else rates,
            "apply_after": ((local + 1) % batch == 0) | (local + 1 == per_worker[worker]),
        }

    def _train_epoch(self, client: Any, loop: EpochLoop, epoch: Epoch) -> None:
        """The rounds of one epoch (from a resumed position)."""
        trainer, network = self.trainer, self.trainer.network
        n_samples = loop.n_samples
        plan = self._plan(epoch.rates)
        span = self.workers * self.sync_every
        run = uuid.uuid4().hex[:8]
        for first in range(epoch.first, n_samples, span):
            where = f"before sample {first}/{n_samples} of epoch {epoch.index + 1}/{loop.epochs}"
            loop.stop_if_requested(epoch, first, where)
            before = loop.snapshot()
            start = time.perf_counter()
            positions = np.arange(first, min(first + span, n_samples))
            shards = self._shards(positions, loop, epoch.order, plan)
            try:
                results = self._run_round(client, shards, f"{run}-{epoch.index}-{first}")
            except Exception:
                if not interrupt.requested():
                    raise
                results = []
            loop.undo_if_requested(before, epoch, first, where)  # the round is redone on resume
            weights = merge(
                before["weights"], [result["weights"] for result in results], self.merge
            )
            if len(results) == 1:  # capped by the worker already, as by a single process
                network.set_weight_arrays(weights)
            else:  # the loop gain of an average can exceed the cap
                network.set_learned_weights(weights, max_gain=trainer.plasticity.max_feedback_gain)
            trainer.engine.optimizer_state = average(
                [result["optimizer_state"] for result in results]
            )
            loop.count_time(time.perf_counter() - start)
            for stats in (stats for result in results for stats in result["statistics"]):
                loop.count(epoch, stats, stats.n_samples)
            rounds = first // span + 1  # of the epoch
            loop.after_step(epoch, int(positions[-1]) + 1, rounds)

    def _accuracies(self, client: Any, sets: list[LabelledSet]) -> list[float]:
        """Accuracy on each set, its samples split evenly over the K workers.

        With K = 1 the coordinator evaluates, as the single-process Trainer does.
        """
        if self.workers == 1:
            return self.trainer.accuracies(sets)
        inputs = np.concatenate([array for array, _ in sets])
        parts = np.array_split(np.arange(len(inputs)), self.workers)
        name = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                predict_shard,
                self.trainer.network,
                self._protocol,
                self.trainer.device,
                inputs[part],
                key=f"fbsnn-evaluate-{name}-{k}",
                pure=False,
                retries=self.retries,
            )
            for k, part in enumerate(parts)
            if len(part)
        ]
        try:
            predicted = np.concatenate(client.gather(futures))
        except Exception:
            if not interrupt.requested():
                raise
            return [math.nan] * len(sets)  # redone on resume
        return set_accuracies(predicted, sets)

    def _run_round(
        self, client: Any, shards: list[dict[str, Any]], name: str
    ) -> list[dict[str, Any]]:
        """Run the round's tasks on the workers and gather their results, in shard order."""
        trainer = self.trainer
        futures = [
            client.submit(
                self.task,
                trainer.network,
                self._protocol,
                trainer.device,
                self.chunk_size,
                trainer.engine.optimizer_state,
                shard,
                key=f"fbsnn-round-{name}-{k}",
                pure=False,
                retries=self.retries,
            )
            for k, shard in enumerate(shards)
        ]
        results: list[dict[str, Any]] = client.gather(futures)
        self._compile["compile_time_s"] = max(
            [self._compile["compile_time_s"], *(r["compile_time_s"] for r in results)]
        )
        self._compile["build_cache_hit"] = all(r["build_cache_hit"] for r in results)
        return results
