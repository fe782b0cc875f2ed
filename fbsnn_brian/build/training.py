"""Build layer of learning: free phase, perturbed phase and SPIDE plasticity in ONE Brian2 run.

Every sample of a chunk runs ``free_steps`` steps of the free phase, then ``backward_steps``
steps of the perturbed phase; at the first step of the next sample the plasticity is applied
from the two stages' counters (string code, ``run_regularly`` at ``when='start'``), then the
membranes and counters are reset and the next input and label are loaded. The run lasts one
step longer than the chunk so that the last sample's update is applied too. Nothing runs in
Python during a chunk, so the same objects run in runtime mode and in cpp_standalone.

:class:`TrainingSimulation` runs chunks and moves weights and optimizer state in and out;
the network itself is defined by :class:`~fbsnn_brian.build.training_network.TrainingNetwork`
(its module docstring describes the objects), with the neuron equations of
:mod:`fbsnn_brian.build.neurons` and the update terms of :mod:`fbsnn_brian.build.plasticity`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import TimedArray, second
from numpy.typing import NDArray

from fbsnn_brian.build.devices import cuda, standalone
from fbsnn_brian.build.devices import registry as devices
from fbsnn_brian.build.free_run import (
    RunArg,
    matrix_to_synapses,
    network_key,
    synapses_to_matrix,
    weight_run_args,
    whole_steps,
)
from fbsnn_brian.build.recordings import recording_from_chunks
from fbsnn_brian.build.training_network import TrainingNetwork
from fbsnn_brian.build.training_network import TrainingObjects as _Objects
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.recording import SpikeRecording
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol

__all__ = ["ChunkStatistics", "TrainingSimulation", "drop_inputs"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ChunkStatistics:
    """Summary of one trained chunk (read after the run).

    Rates are averages over the chunk's real samples and all forward neurons, in events per
    tau: ``forward_rate`` of the free phase's spikes, ``backward_rate`` of the error units'
    events (both signs) in the perturbed phase. ``layer_forward_rates`` holds the free-phase
    rate of each layer separately (averaged over its neurons and the chunk's samples).
    """

    n_samples: int
    wall_time_s: float
    forward_rate: float
    backward_rate: float
    layer_forward_rates: tuple[float, ...] = ()


def drop_inputs(inputs: FloatArray, probability: float, rng: np.random.Generator) -> FloatArray:
    """Input dropout: a fresh mask per sample, kept components scaled by ``1 / (1 - p)``."""
    if probability == 0:
        return inputs
    keep = rng.random(inputs.shape) >= probability
    return np.asarray(inputs * keep / (1.0 - probability), dtype=np.float64)


class TrainingSimulation:
    """SPIDE training of a FeedbackNetwork on chunks of samples, built once for a device.

    Parameters
    ----------
    network : FeedbackNetwork
        Its weights are read before and written back after every chunk.
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a :class:`SPIDEPlasticity`.
    device : str
        A name in :data:`fbsnn_brian.build.devices.registry.REGISTRY` that Brian2 runs (one of
        :data:`~fbsnn_brian.build.devices.registry.DEVICES`; GeNN trains with
        :class:`~fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`).
        The standalone devices compile once and rerun the binary with ``run_args``
        (cuda_standalone on a GPU, see :mod:`fbsnn_brian.build.devices.cuda`).
    chunk_size : int
        Samples per Brian2 run (a standalone build pads the last chunk with samples whose
        learning rate is zero).
    directory : str, optional
        Standalone project directory, kept (default: the build cache, see
        :mod:`fbsnn_brian.build.devices.standalone`); a binary already there is reused when
        it was compiled from the same code for the same target.
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        device: str = "cpp_standalone",
        chunk_size: int = 100,
        directory: str | None = None,
    ) -> None:
        owner = "TrainingSimulation"
        self.device = devices.check_device(owner, device)
        standalone.check_available(owner, self.device)
        self._standalone = devices.REGISTRY[self.device].standalone
        perturbed = protocol.perturbed_phase
        if perturbed is None or protocol.plasticity is None:
            raise ValidationError(
                f"{owner}: protocol must have a PerturbedPhase and a SPIDEPlasticity, "
                f"got {protocol!r}."
            )
        if network.input_coding != "current":
            raise ValidationError(
                f"{owner}: training supports input_coding='current' for now, got "
                f"{network.input_coding!r}."
            )
        self.network = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.perturbed = perturbed
        self.chunk_size = chunk_size
        self.directory = directory
        self.free_steps = whole_steps(
            owner, "FreePhase.duration", protocol.free_phase.duration, network.dt
        )
        self.backward_steps = whole_steps(
            owner, "PerturbedPhase.duration", perturbed.duration, network.dt
        )
        self.sample_steps = self.free_steps + self.backward_steps
        self.sample_duration = self.sample_steps * network.dt
        self._compiled: tuple[standalone.StandaloneBuild, _Objects] | None = None
        self._optimizer_state: dict[str, FloatArray] = {}
        # input dropout masks are drawn here, not in the simulation, so that a chunk's
        # result does not depend on the device's random number generator
        self._dropout_rng = np.random.default_rng([network.seed, 7])
        self.compile_time_s = 0.0
        self.build_cache_hit = False  # whether the last build reused a compiled binary
        self.compile_reason = ""  # why it was reused or compiled
        self._record = False

    # ------------------------------------------------------------------ definition
    def _state_suffixes(self) -> list[str]:
        suffixes = ["velocity"] if self.plasticity.momentum > 0 else []
        return suffixes + (["accum"] if self.plasticity.batch_size > 1 else [])

    def _state_views(self, objects: _Objects) -> list[tuple[str, Any, tuple[int, ...]]]:
        """(label, state variable view, shape) of every optimizer state variable in use."""
        sizes = self.network.layer_sizes
        n_inputs, n_classes = self.network.n_inputs, self.network.n_classes
        owners: list[tuple[str, Any, str, tuple[int, ...]]] = [
            ("input_synapses", objects.input_synapses, "w", (n_inputs * sizes[0],))
        ]
        owners += [
            (f"forward_{k + 1}", synapses, "w", (sizes[k] * sizes[k + 1],))
            for k, synapses in enumerate(objects.forward_synapses)
        ]
        owners += [
            ("feedback", objects.feedback_synapses, "w", (sizes[-1] * sizes[0],)),
            ("readout_synapses", objects.readout_synapses, "w", (sizes[-1] * n_classes,)),
            ("readout", objects.readout, "d", (n_classes,)),
        ]
        owners += [
            (f"layer_{k + 1}", group, "b", (sizes[k],)) for k, group in enumerate(objects.layers)
        ]
        return [
            (f"{name}.{variable}_{suffix}", getattr(owner, f"{variable}_{suffix}"), shape)
            for name, owner, variable, shape in owners
            for suffix in self._state_suffixes()
        ]

    def _define(
        self,
        inputs: FloatArray,
        labels: FloatArray,
        learning_rates: FloatArray,
        real_samples: FloatArray,
        apply_updates: FloatArray,
    ) -> _Objects:
        net = self.network
        n_samples = len(inputs)
        values = {
            "sample_inputs": inputs,
            "sample_labels": labels,
            "learning_rates": learning_rates,
            "real_samples": real_samples,
            "apply_updates": apply_updates,
        }
        tables = {
            name: TimedArray(table, dt=self.sample_duration, name=name)
            for name, table in values.items()
        }
        objects = TrainingNetwork(
            net,
            self.protocol,
            free_steps=self.free_steps,
            sample_steps=self.sample_steps,
            record=self._record,
            rules=cuda.training_rules(),
        ).define(tables)
        network = objects.network
        # optimizer state carried over from the previous chunk (cpp_standalone: run_args)
        for label, view, _ in self._state_views(objects):
            if label in self._optimizer_state:
                view[:] = self._optimizer_state[label]
        # one extra step: the update of the last sample happens at the next sample boundary
        with devices.per_sample_input_path():
            network.run(n_samples * self.sample_duration + net.dt, namespace={})
        return objects

    # ------------------------------------------------------------------ weights in and out
    def _weight_entries(self, objects: _Objects) -> list[RunArg]:
        net = self.network
        readout_shape = (net.layer_sizes[-1] * net.n_classes,)
        return [
            *weight_run_args(
                net,
                input_synapses=objects.input_synapses,
                forward_synapses=objects.forward_synapses,
                feedback_synapses=objects.feedback_synapses,
                layers=objects.layers,
            ),
            (
                objects.readout_synapses.w,
                "readout_synapses.w",
                matrix_to_synapses(net.readout_weights),
                readout_shape,
            ),
            (objects.readout.d, "readout.d", net.readout_bias.copy(), (net.n_classes,)),
        ]

    def _optimizer_state_entries(self, objects: _Objects) -> list[RunArg]:
        """run_args of the optimizer state: velocities and gradient sums (may be empty)."""
        entries: list[RunArg] = []
        for label, view, shape in self._state_views(objects):
            entries.append((view, label, self._optimizer_state.get(label, np.zeros(shape)), shape))
        return entries

    def _read_weights(self, objects: _Objects) -> None:
        net = self.network
        sizes = net.layer_sizes
        net.input_weights = synapses_to_matrix(objects.input_synapses.w[:], sizes[0], net.n_inputs)
        net.forward_weights = [
            synapses_to_matrix(s.w[:], sizes[k + 1], sizes[k])
            for k, s in enumerate(objects.forward_synapses)
        ]
        net.readout_weights = synapses_to_matrix(
            objects.readout_synapses.w[:], net.n_classes, sizes[-1]
        )
        net.readout_bias = np.asarray(objects.readout.d[:], dtype=np.float64)
        net.biases = [np.asarray(g.b[:], dtype=np.float64) for g in objects.layers]
        feedback = synapses_to_matrix(objects.feedback_synapses.w[:], sizes[0], sizes[-1])
        net.set_learned_feedback(feedback, max_gain=self.plasticity.max_feedback_gain)

    def _key(self) -> str:
        plasticity = self.plasticity.describe()
        for runtime_value in ("learning_rate", "input_dropout"):  # not in the code
            plasticity.pop(runtime_value)
        return standalone.build_key(
            "training",
            {
                "network": network_key(
                    self.network, random_feedback=self.plasticity.feedback == "random"
                ),
                "phases": self.protocol.describe()["phases"],
                "plasticity": plasticity,
                "chunk_size": self.chunk_size,
            },
            target=self.device,
        )

    def _compile(self) -> tuple[standalone.StandaloneBuild, _Objects]:
        if self._compiled is None:
            build, objects = self._build(
                key=self._key(), directory=self.directory, target=self.device
            )
            self.compile_time_s, self.build_cache_hit = build.compile_time_s, build.cache_hit
            self.compile_reason = build.compile_reason
            self._compiled = (build, objects)
        return self._compiled

    def compile(self, *, check_only: bool = False) -> standalone.StandaloneBuild | None:
        """Compile the standalone build now (the first chunk would), or only check it.

        Parameters
        ----------
        check_only : bool
            Generate the code and say whether the binary in the project directory fits it,
            compiling nothing.

        Returns
        -------
        StandaloneBuild or None
            The build; None on a runtime device, which compiles nothing.
        """
        if not self._standalone:
            return None
        if check_only:
            build, _ = self._build(
                key=self._key(), directory=self.directory, target=self.device, check_only=True
            )
            return build
        return self._compile()[0]

    def _build(
        self,
        *,
        key: str | None,
        directory: str | None,
        target: str = "cpp_standalone",
        check_only: bool = False,
    ) -> tuple[standalone.StandaloneBuild, _Objects]:
        size, net = self.chunk_size, self.network
        return standalone.compile_standalone(
            lambda: self._define(
                np.zeros((size, net.n_inputs)),
                np.zeros((size, net.n_classes)),
                np.zeros(size + 1),
                np.zeros(size),
                np.zeros(size + 1),
            ),
            network_of=lambda objects: objects.network,
            key=key,
            directory=directory,
            owner=self,
            target=target,
            what="the training simulation",
            check_only=check_only,
        )

    def generate(
        self, directory: str, *, target: str = "cpp_standalone"
    ) -> standalone.StandaloneBuild:
        """Generate and compile the training project in ``directory`` without running it.

        Parameters
        ----------
        directory : str
            Project directory (kept).
        target : str
            A standalone device of the registry
            (:data:`fbsnn_brian.build.devices.standalone.TARGETS`). cuda_standalone needs
            brian2cuda and nvcc (no GPU: see
            :func:`fbsnn_brian.build.devices.cuda.configure_cuda`); a binary already in
            ``directory`` that was compiled from the same code for the same target is reused.
        """
        build, _ = self._build(key=None, directory=directory, target=target)
        return build

    @property
    def optimizer_state(self) -> dict[str, FloatArray]:
        """Copies of the optimizer state carried between chunks (velocities, batch sums)."""
        return {label: value.copy() for label, value in self._optimizer_state.items()}

    @optimizer_state.setter
    def optimizer_state(self, state: dict[str, FloatArray]) -> None:
        self._optimizer_state = {label: np.array(value) for label, value in state.items()}

    @property
    def dropout_generator(self) -> np.random.Generator:
        """The generator of the input dropout masks (its state belongs in a checkpoint)."""
        return self._dropout_rng

    def _drop_inputs(self, inputs: FloatArray) -> FloatArray:
        return drop_inputs(inputs, self.plasticity.input_dropout, self._dropout_rng)

    def train_chunk(
        self,
        inputs: FloatArray,
        labels: NDArray[np.int64],
        learning_rate: float | FloatArray,
        apply_after: NDArray[np.bool_] | None = None,
    ) -> ChunkStatistics:
        """Present ``inputs`` once, in order, applying the SPIDE update after every sample.

        Parameters
        ----------
        inputs : ndarray, shape (n_samples, n_inputs)
            Validated inputs in [0, 1]; at most ``chunk_size`` samples on a standalone device.
        labels : ndarray of int, shape (n_samples,)
        learning_rate : float or ndarray of shape (n_samples,)
            eta per sample (a schedule may change it between samples).
        apply_after : ndarray of bool, shape (n_samples,), optional
            With ``batch_size`` > 1: whether the summed gradients are applied after each
            sample (default: after the last sample of the chunk and every ``batch_size``-th).
        """
        net = self.network
        net.check_invariants()
        n_samples = len(inputs)
        rates = np.broadcast_to(np.asarray(learning_rate, dtype=np.float64), (n_samples,))
        start = time.perf_counter()
        size = self.chunk_size if self._standalone else n_samples
        if n_samples > size:
            raise ValidationError(
                f"TrainingSimulation.train_chunk: at most chunk_size = {size} samples per chunk, "
                f"got {n_samples}."
            )
        padded_inputs = np.zeros((size, net.n_inputs))
        padded_inputs[:n_samples] = self._drop_inputs(np.asarray(inputs, dtype=np.float64))
        onehot = np.zeros((size, net.n_classes))
        onehot[np.arange(n_samples), labels] = 1.0
        # entry k is applied at the start of sample k, i.e. to the update of sample k - 1
        schedule = np.zeros(size + 1)
        schedule[1 : n_samples + 1] = rates
        real = np.zeros(size)
        real[:n_samples] = 1.0
        if apply_after is None:
            positions = np.arange(1, n_samples + 1)
            apply_after = (positions % self.plasticity.batch_size == 0) | (positions == n_samples)
        applied = np.zeros(size + 1)
        applied[1 : n_samples + 1] = np.asarray(apply_after, dtype=np.float64)
        if self._standalone:
            build, objects = self._compile()
            entries = [
                (objects.sample_inputs, "sample_inputs", padded_inputs, (size, net.n_inputs)),
                (objects.sample_labels, "sample_labels", onehot, (size, net.n_classes)),
                (objects.learning_rates, "learning_rates", schedule, (size + 1,)),
                (objects.real_samples, "real_samples", real, (size,)),
                *(
                    [(objects.apply_updates, "apply_updates", applied, (size + 1,))]
                    if self.plasticity.batch_size > 1
                    else []
                ),
                *self._weight_entries(objects),
                *self._optimizer_state_entries(objects),
            ]
            devices.check_run_args([(label, value, shape) for _, label, value, shape in entries])
            build.run({key: value for key, _, value, _ in entries})
        else:
            with devices.runtime_target(self.device):
                objects = self._define(padded_inputs, onehot, schedule, real, applied)
        self._read_weights(objects)
        if self._state_suffixes():
            for label, view, _ in self._state_views(objects):
                self._optimizer_state[label] = np.asarray(view[:], dtype=np.float64).copy()
        layer_spikes = [float(np.sum(group.spikes_total[:])) for group in objects.layers]
        events = sum(float(np.sum(group.events_total[:])) for group in objects.layers)
        per_sample_neuron = n_samples * net.n_neurons
        free_tau = float(self.protocol.free_phase.duration / net.tau)
        return ChunkStatistics(
            n_samples=n_samples,
            wall_time_s=time.perf_counter() - start,
            forward_rate=sum(layer_spikes) / per_sample_neuron / free_tau,
            backward_rate=events / per_sample_neuron / float(self.perturbed.duration / net.tau),
            layer_forward_rates=tuple(
                spikes / (n_samples * size) / free_tau
                for spikes, size in zip(layer_spikes, net.layer_sizes, strict=True)
            ),
        )

    def record(self, inputs: FloatArray, labels: NDArray[np.int64]) -> SpikeRecording:
        """Both phases of some samples, every spike and error event, without learning.

        The samples run through the training network (runtime mode with the numpy target,
        whatever the simulation's device) with a learning rate of zero, so the network is
        not changed. Populations: ``layer_l`` (forward spikes) and ``layer_l_error_up`` /
        ``layer_l_error_down`` (the error units' +delta and -delta events); phases ``free``
        and ``perturbed``, with rates per phase in events per tau.
        """
        from fbsnn_brian.io.recording import Population

        net = self.network
        batch = net.check_inputs(inputs, owner="TrainingSimulation.record")
        n_samples = len(batch)
        onehot = np.zeros((n_samples, net.n_classes))
        onehot[np.arange(n_samples), np.asarray(labels, dtype=np.int64)] = 1.0
        start = time.perf_counter()
        self._record = True
        try:
            with devices.runtime_target("numpy"):
                objects = self._define(
                    batch,
                    onehot,
                    np.zeros(n_samples + 1),
                    np.ones(n_samples),
                    np.zeros(n_samples + 1),
                )
        finally:
            self._record = False
        assert objects.monitors is not None
        populations = []
        for k, size in enumerate(net.layer_sizes):
            name = f"layer_{k + 1}"
            populations.append(Population(name=name, size=size, layer=k + 1, role="forward"))
            for event in ("error_up", "error_down"):
                populations.append(
                    Population(name=f"{name}_{event}", size=size, layer=k + 1, role=event)
                )
        dt_s = float(net.dt / second)
        sample_s = float(self.sample_duration / second)
        phase_s = (self.free_steps * dt_s, (self.sample_steps - self.free_steps) * dt_s)
        tau_s = float(net.tau / second)
        events = {}
        rates = {}
        for population in populations:
            monitor = objects.monitors[population.name]
            times = np.asarray(monitor.t[:] / second, dtype=np.float64)
            indices = np.asarray(monitor.i[:], dtype=np.int64)
            keep = times < n_samples * sample_s - 0.25 * dt_s  # the run's extra update step
            times, indices = times[keep], indices[keep]
            steps = np.rint(times / dt_s).astype(np.int64)
            samples = steps // self.sample_steps
            phases = (steps % self.sample_steps >= self.free_steps).astype(np.int64)
            counts = np.zeros((n_samples, 2, population.size))
            np.add.at(counts, (samples, phases, indices), 1.0)
            rates[population.name] = counts / (np.array(phase_s) / tau_s)[None, :, None]
            events[population.name] = [(indices, times, samples)]
        return recording_from_chunks(
            network=net,
            protocol=self.protocol,
            populations=populations,
            events=events,
            rates=rates,
            inputs=batch,
            phase_durations_s=phase_s,
            sample_duration_s=sample_s,
            device="numpy",
            wall_time_s=time.perf_counter() - start,
        )
