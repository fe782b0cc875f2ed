"""Build layer: turns a FeedbackNetwork and a Protocol into one Brian2 simulation.

The central design (docs/architecture.rst, section "One simulation, many samples"): a chunk
of samples is presented back to back inside ONE Brian2 run. The input of sample k comes from a
TimedArray indexed by the sample number, membranes and counters are reset by ``run_regularly``
string code at each sample boundary, and nothing runs in Python during the run (no
``network_operation``), so the same objects run in runtime mode and in cpp_standalone.

The objects are defined by :class:`~fbsnn_brian.build.free_phase_network.FreePhaseNetwork`,
the one definition of the free phase that the brian2genn build uses too (its module docstring
describes them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from brian2 import NeuronGroup, Synapses, second, seed
from numpy.typing import NDArray
from tqdm.auto import tqdm

from fbsnn_brian.build.devices import cuda, standalone
from fbsnn_brian.build.devices import registry as devices
from fbsnn_brian.build.free_phase_network import (
    FreePhaseNetwork,
    SynapticDelays,
    all_to_all,
    matrix_to_synapses,
    synapses_to_matrix,
    whole_steps,
)
from fbsnn_brian.build.free_phase_network import FreePhaseObjects as _Objects
from fbsnn_brian.build.recordings import recording_from_chunks
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.recording import Population, SpikeRecording
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.validation import check_positive_int, describe

__all__ = [
    "FreeRunSimulation",
    "simulate",
    "RunArg",
    "SynapticDelays",
    "all_to_all",
    "matrix_to_synapses",
    "network_key",
    "synapses_to_matrix",
    "weight_run_args",
    "whole_steps",
]

logger = logging.getLogger(__name__)


RunArg = tuple[Any, str, NDArray[np.float64], tuple[int, ...]]


def network_key(network: FeedbackNetwork, *, random_feedback: bool = False) -> dict[str, Any]:
    """The part of a network's configuration its generated code depends on (a build key).

    Every weight and bias reaches a compiled binary through ``run_args``, so the seed of the
    weight initialisation does not change the code, and the runs of a sweep that differ only
    in their seed share one compiled build. The seed stays in the key where it draws something
    built into the code: heterogeneous delays, and fixed random backward weights.
    """
    config = network.config()
    if not (random_feedback or network.biophysics.delay_spread > 0 * second):
        config.pop("seed")
    return config


def weight_run_args(
    network: FeedbackNetwork,
    *,
    input_synapses: Synapses,
    forward_synapses: list[Synapses],
    feedback_synapses: Synapses,
    layers: list[NeuronGroup],
) -> list[RunArg]:
    """run_args entries (key, label, value, expected shape) of F, W, W_fb and the biases."""
    sizes = network.layer_sizes
    entries: list[RunArg] = [
        (
            input_synapses.w,
            "input_synapses.w",
            matrix_to_synapses(network.input_weights),
            (network.n_inputs * sizes[0],),
        ),
        (
            feedback_synapses.w,
            "feedback.w",
            matrix_to_synapses(network.feedback_weights),
            (sizes[-1] * sizes[0],),
        ),
    ]
    for k, (synapses, weights) in enumerate(
        zip(forward_synapses, network.forward_weights, strict=True)
    ):
        shape = (sizes[k] * sizes[k + 1],)
        entries.append((synapses.w, f"forward_{k + 1}.w", matrix_to_synapses(weights), shape))
    for k, (group, bias) in enumerate(zip(layers, network.biases, strict=True)):
        entries.append((group.b, f"layer_{k + 1}.b", bias.copy(), (sizes[k],)))
    return entries


class FreeRunSimulation:
    """A free-phase simulation of a chunk of samples, built once for a device.

    Parameters
    ----------
    network : FeedbackNetwork
        The network; its weights are read at every :meth:`run`.
    protocol : Protocol
        The schedule (one free phase).
    device : str
        A name in :data:`fbsnn_brian.build.devices.registry.REGISTRY` that serves the free
        phase (:data:`~fbsnn_brian.build.devices.registry.DEVICES`).
        Runtime devices define fresh Brian2 objects per chunk (cheap: Brian2 caches the
        generated code); the standalone devices compile once and rerun the binary with new
        inputs and weights passed through ``run_args``.
    chunk_size : int
        Samples per Brian2 run (a standalone build pads the last chunk).
    record_spikes : bool
        Keep every spike event in the returned recording.
    directory : str, optional
        cpp_standalone project directory, kept (default: the build cache, see
        :mod:`fbsnn_brian.build.devices.standalone`).
    noise_seed : int, optional
        Seed of Brian2's random numbers (membrane noise, spiking input) at the start of every
        run, so that runs with different weights see the same noise (common random numbers);
        a standalone build has it in its code. None (default): fresh random numbers per run.
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        device: str = "runtime",
        chunk_size: int = 100,
        record_spikes: bool = True,
        directory: str | None = None,
        noise_seed: int | None = None,
    ) -> None:
        owner = "FreeRunSimulation"
        if noise_seed is not None and (
            isinstance(noise_seed, bool) or not isinstance(noise_seed, int) or noise_seed < 0
        ):
            raise ValidationError(
                f"{owner}: noise_seed must be None or a non-negative integer, got "
                f"{describe(noise_seed)}."
            )
        self.noise_seed = noise_seed
        self.device = devices.check_device(owner, device)
        standalone.check_available(owner, self.device)
        self._standalone = devices.REGISTRY[self.device].standalone
        self.network = network
        self.protocol = protocol
        self.chunk_size = chunk_size
        self.record_spikes = record_spikes
        self.free_steps = whole_steps(
            owner, "FreePhase.duration", protocol.free_phase.duration, network.dt
        )
        self.sample_steps = self.free_steps
        self.sample_duration = self.sample_steps * network.dt
        self.directory = directory
        self._compiled: tuple[standalone.StandaloneBuild, _Objects] | None = None
        self.compile_time_s = 0.0
        self.build_cache_hit = False  # whether the build reused a compiled binary
        self.compile_reason = ""  # why it was reused or compiled

    # ------------------------------------------------------------------ definition
    def _populations(self) -> list[Population]:
        pops = []
        if self.network.input_coding == "spikes":
            pops.append(Population(name="input", size=self.network.n_inputs, layer=0, role="input"))
        for k, size in enumerate(self.network.layer_sizes):
            pops.append(Population(name=f"layer_{k + 1}", size=size, layer=k + 1, role="forward"))
        return pops

    def _define(self, n_samples: int, inputs: NDArray[np.float64]) -> _Objects:
        """Create the Brian2 objects for a chunk of ``n_samples`` samples and run them."""
        if self.noise_seed is not None:
            seed(self.noise_seed)
        return FreePhaseNetwork(
            self.network,
            sample_steps=self.sample_steps,
            free_steps=self.free_steps,
            population_names=[population.name for population in self._populations()],
            rules=cuda.device_rules(),
        ).define(inputs, n_samples)

    # ------------------------------------------------------------------ running
    def _run_args(self, objects: _Objects, inputs: NDArray[np.float64]) -> list[RunArg]:
        """(key, label, value, expected shape) of every value passed to the binary."""
        shape = (self.chunk_size, self.network.n_inputs)
        return [
            (objects.sample_inputs, "sample_inputs", inputs, shape),
            *weight_run_args(
                self.network,
                input_synapses=objects.input_synapses,
                forward_synapses=objects.forward_synapses,
                feedback_synapses=objects.feedback_synapses,
                layers=objects.layers,
            ),
        ]

    def _build(self, *, check_only: bool = False) -> tuple[standalone.StandaloneBuild, _Objects]:
        zeros = np.zeros((self.chunk_size, self.network.n_inputs))
        described = {
            "network": network_key(self.network),
            "protocol": self.protocol.describe(),
            "chunk_size": self.chunk_size,
            "record_spikes": self.record_spikes,
        }
        if self.noise_seed is not None:  # in the code: a seed() call before the run
            described["noise_seed"] = self.noise_seed
        key = standalone.build_key(
            "free_run",
            described,
            target=self.device,
        )
        return standalone.compile_standalone(
            lambda: self._define(self.chunk_size, zeros),
            network_of=lambda objects: objects.network,
            key=key,
            directory=self.directory,
            owner=self,
            target=self.device,
            what="the free-phase simulation",
            check_only=check_only,
        )

    def _compile(self) -> tuple[standalone.StandaloneBuild, _Objects]:
        if self._compiled is None:
            build, objects = self._build()
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
        return self._build(check_only=True)[0] if check_only else self._compile()[0]

    def _run_chunk(
        self, inputs: NDArray[np.float64]
    ) -> dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]:
        """Simulate one chunk; return spike (neuron index, time in s) per population."""
        n_samples = len(inputs)
        if self._standalone:
            build, objects = self._compile()
            padded = np.zeros((self.chunk_size, self.network.n_inputs))
            padded[:n_samples] = inputs
            entries = self._run_args(objects, padded)
            devices.check_run_args([(label, value, shape) for _, label, value, shape in entries])
            build.run({key: value for key, _, value, _ in entries})
        else:
            with devices.runtime_target(self.device):
                objects = self._define(n_samples, inputs)
        end = n_samples * float(self.sample_duration / second)
        spikes = {}
        for name, monitor in objects.monitors.items():
            times = np.asarray(monitor.t[:] / second, dtype=np.float64)
            indices = np.asarray(monitor.i[:], dtype=np.int64)
            keep = times < end - 0.25 * float(self.network.dt / second)
            spikes[name] = (indices[keep], times[keep])
        return spikes

    def run(self, inputs: NDArray[np.float64], *, progress: bool = False) -> SpikeRecording:
        """Simulate all samples (in chunks) and collect spikes and average rates."""
        net = self.network
        net.check_invariants()  # weights the user changed since the build was defined
        n_samples = len(inputs)
        chunk = self.chunk_size if self._standalone else min(self.chunk_size, n_samples)
        populations = self._populations()
        dt_s = float(net.dt / second)
        sample_s = float(self.sample_duration / second)
        counts = {pop.name: np.zeros((n_samples, pop.size)) for pop in populations}
        events: dict[
            str, list[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]]
        ] = {pop.name: [] for pop in populations}
        start = time.perf_counter()
        starts = range(0, n_samples, chunk)
        for first in tqdm(starts, disable=not progress, desc="free phase", unit="chunk"):
            block = inputs[first : first + chunk]
            spikes = self._run_chunk(block)
            for name, (indices, times) in spikes.items():
                steps = np.rint(times / dt_s).astype(np.int64)
                local_sample = steps // self.sample_steps
                in_sample = (steps - local_sample * self.sample_steps) * dt_s * second
                weights = net.spike_weights(in_sample, self.free_steps * net.dt)
                np.add.at(counts[name], (first + local_sample, indices), weights)
                if self.record_spikes:
                    events[name].append((indices, times + first * sample_s, first + local_sample))
        wall = time.perf_counter() - start
        normaliser = net.rate_normaliser(self.free_steps * net.dt)
        rates = {name: counts[name][:, None, :] / normaliser for name in counts}
        return recording_from_chunks(
            network=net,
            protocol=self.protocol,
            populations=populations,
            events=events,
            rates=rates,
            inputs=inputs,
            phase_durations_s=(self.free_steps * dt_s,),
            sample_duration_s=sample_s,
            device=self.device,
            wall_time_s=wall,
        )


def simulate(
    network: FeedbackNetwork,
    protocol: Protocol,
    *,
    inputs: Any,
    device: str = "runtime",
    chunk_size: int | None = None,
    record_spikes: bool = True,
    directory: str | None = None,
    progress: bool = False,
) -> SpikeRecording:
    """Simulate every sample of ``inputs`` through the protocol's free phase.

    The weights are not changed (use :class:`fbsnn_brian.Trainer` to learn).

    Parameters
    ----------
    network : FeedbackNetwork
        The network to simulate (its weights are read, not changed).
    protocol : Protocol
        Its free phase is simulated.
    inputs : array_like, shape (n_samples, n_inputs)
        Input values in [0, 1].
    device : str
        Where to simulate: a name in :data:`fbsnn_brian.build.devices.registry.REGISTRY` that
        serves the free phase (:data:`~fbsnn_brian.build.devices.registry.DEVICES`). Runtime
        devices simulate each chunk as one Brian2 run; the
        standalone devices compile once and run the binary per chunk.
    chunk_size : int, optional
        Samples per Brian2 run (default: all samples in one run for runtime devices, 100
        for the standalone devices).
    record_spikes : bool
        Record every spike (needed for :meth:`SpikeRecording.to_xarray` spike events).
    directory : str, optional
        Project directory of the cpp_standalone build (default: a temporary directory).
    progress : bool
        Show a progress bar over chunks.

    Returns
    -------
    SpikeRecording
        Spikes and average rates per (sample, phase, neuron).

    Examples
    --------
    >>> from brian2 import ms
    >>> from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
    >>> net = FeedbackNetwork(n_inputs=2, layer_sizes=[3], n_classes=2, seed=0)
    >>> recording = simulate(net, Protocol([FreePhase(duration=5 * ms)]),
    ...                      inputs=[[0.5, 1.0]], device="numpy")
    >>> recording.n_samples
    1
    """
    owner = "simulate"
    if not isinstance(protocol, Protocol):
        raise ValidationError(f"{owner}: protocol must be a Protocol, got {describe(protocol)}.")
    spec = devices.get_device_spec(owner, device)
    array = network.check_inputs(inputs, owner=owner)
    if chunk_size is None:
        # Runtime devices pay ~0.1 s per run() call: one run for everything. A compiled binary
        # has a fixed chunk size, reused for every chunk (the last one padded).
        chunk_size = min(len(array), 100) if spec.standalone else len(array)
    check_positive_int(owner, "chunk_size", chunk_size)
    simulation = FreeRunSimulation(
        network,
        Protocol([protocol.free_phase]),
        device=device,
        chunk_size=chunk_size,
        record_spikes=record_spikes,
        directory=directory,
    )
    return simulation.run(array, progress=progress)
