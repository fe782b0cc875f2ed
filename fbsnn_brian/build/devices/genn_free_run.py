"""GeNN (brian2genn) build of the free phase: evaluation of a FeedbackNetwork on GeNN.

:class:`GeNNFreeRun` builds the same free-phase simulation as
:class:`~fbsnn_brian.build.free_run.FreeRunSimulation`, restated within what brian2genn 1.7 accepts
(docs/architecture.rst, section "Devices"), and either writes the GeNN project without GeNN
(:meth:`GeNNFreeRun.generate`) or builds and runs it with GeNN (:meth:`GeNNFreeRun.run`).

brian2genn needs Brian2 < 2.6 and numpy < 2, so it lives in a virtual environment of its own,
with GeNN 4.x installed by the user (``GENN_PATH``). This module imports brian2genn only
inside the methods that need it: importing this module works everywhere.

The network is the one free-phase definition of every device,
:class:`~fbsnn_brian.build.free_phase_network.FreePhaseNetwork`, with brian2genn's rules
(:class:`~fbsnn_brian.build.devices.genn_rules.GeNNRules`): it changes only what brian2genn
forbids (object names are the Brian2 names):

* one Brian2 run per call, every sample back to back: the inputs live in a TimedArray
  ``sample_inputs`` read by ``run_regularly`` string code at each sample start (brian2genn
  runs ``run_regularly`` on the host, in the ``start`` slot, every ``sample_steps`` steps);
* every NeuronGroup and Synapses on Brian2's ``defaultclock`` (brian2genn refuses other
  clocks; only the ``run_regularly`` operations have the clock of one sample);
* current coding: ``stimulus`` holds ``x`` and ``input_synapses`` computes layer 1's drive
  ``F x`` as ONE summed variable ``I_drive`` (a summed variable may not target ``Isyn`` in
  GeNN, and linked variables are not supported, so the per-sample ``drive`` group and the
  linked ``I_input`` of :mod:`fbsnn_brian.build.free_run` cannot be used);
* ``forward_l`` and ``feedback``: the same Synapses, with deliveries gated so that a spike
  emitted in the last step of a sample is not delivered into the next one (see below);
* SpikeMonitors on every group; no custom events, no linked variables, no ``seed()``.

Schedules. brian2genn forces the schedule ``start, synapses, groups, thresholds, resets, end``
(spikes of step ``n - 1`` are delivered at the beginning of step ``n``), whereas the runtime
and cpp_standalone builds use Brian2's default ``start, groups, thresholds, synapses, resets,
end`` (spikes of step ``n`` delivered in step ``n``). Between sample starts the two deliver a
spike before the same membrane update, so they integrate the same values (up to the order of
two floating-point additions, ``(v + w) - theta`` against ``(v - theta) + w``). At a sample
start they differ: under Brian2's schedule a spike of the last step of sample ``k`` reaches
its target and is then wiped by the sample-start reset of sample ``k + 1``; under
brian2genn's it would arrive after that reset and leak into sample ``k + 1``. The ``on_pre``
code therefore multiplies ``w`` by ``int((t / dt + 0.5) % sample_steps >= 1)``, which
drops exactly those deliveries, and the GeNN build reproduces the runtime build spike for
spike.

Drive timing (the summed variable). brian2genn implements a summed variable as GeNN
synapse-dynamics code that accumulates ``w * x_pre`` into the postsynaptic input buffer, which
the neuron update copies into ``I_drive`` before integrating. A summed variable arrives one
step late on GeNN when its expression reads a synaptic variable that ``on_pre`` changes: GeNN
accumulates before it propagates the step's spikes, Brian2 after. Here the expression reads
only ``w`` and ``x_pre``, and ``x`` is set on the host before GeNN's step, so ``I_drive`` in
step ``n`` is ``F x`` of step ``n`` and the drive of sample ``k`` is in place from the first
step of sample ``k``, as in :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` (StateMonitors
of ``I_drive`` on GeNN and in :meth:`GeNNFreeRun.run_on_runtime` gave identical traces, and
the tests check that the spikes are the same). Had it
arrived one step late, the first step of sample ``k`` would integrate ``F x_(k-1)`` (zero for
the first sample) instead of ``F x_k``: a charge error of ``|(F (x_k - x_(k-1)))_i| dt / tau``
on layer-1 neuron ``i`` per sample, which can move its spike count by one, and the network's
through the loop.

brian2genn traps met on the way, which the code below avoids: a ``run_regularly`` whose name
lacks ``_run_regularly`` is silently dropped from the GeNN project, and ``int()`` in GeNN
code takes a bool (``int(2.5)`` gives 1), so it may only wrap comparisons.

Only the ideal biophysics is supported (instantaneous synapses, subtractive reset, no delays,
no noise; IF or LIF neurons; input coding ``'current'`` or ``'spikes'``). Dale's law
(``excitatory_fraction``) only constrains the weights' signs, which the network enforces, so
it is accepted.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import defaultclock, second
from brian2.devices.device import get_device
from numpy.typing import NDArray

from fbsnn_brian.build.devices import registry as devices
from fbsnn_brian.build.devices.genn_device import (
    GeNNBinary,
    check_genn_available,
    check_ideal_biophysics,
    genn_build,
    genn_device,
    import_brian2genn,
    record_binary,
    rerun_binary,
)
from fbsnn_brian.build.devices.genn_rules import GeNNRules
from fbsnn_brian.build.free_phase_network import (
    FreePhaseNetwork,
    FreePhaseObjects,
    free_phase_arrays,
    whole_steps,
)
from fbsnn_brian.build.recordings import recording_from_chunks
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.recording import Population, SpikeRecording
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.validation import check_choice

__all__ = ["GeNNFreeRun", "free_phase_arrays"]

logger = logging.getLogger(__name__)


class GeNNFreeRun:
    """The free phase of a FeedbackNetwork on a chunk of samples, built for brian2genn.

    Every call simulates all its samples in one Brian2 run (brian2genn allows one run per
    build), so a call is one GeNN build: code generation, compilation and the run. The
    module docstring explains how the network is restated for brian2genn and why it
    reproduces :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` spike for spike.

    Parameters
    ----------
    network : FeedbackNetwork
        The network (ideal biophysics only); its weights are read at every call.
    protocol : Protocol
        The schedule; only its free phase is simulated.
    record_spikes : bool
        Keep every spike event in the returned recording (rates are always computed).

    Raises
    ------
    ValidationError
        If the network uses a biophysical setting other than the ideal one (the message
        names the setting), or the free phase is not a whole number of steps.

    Examples
    --------
    >>> from brian2 import ms
    >>> from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
    >>> net = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
    >>> free_run = GeNNFreeRun(net, Protocol([FreePhase(duration=5 * ms)]))
    >>> free_run.sample_steps
    20
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        record_spikes: bool = True,
    ) -> None:
        owner = "GeNNFreeRun"
        if not isinstance(network, FeedbackNetwork):
            raise ValidationError(
                f"{owner}: network must be a FeedbackNetwork, got {type(network).__name__}."
            )
        if not isinstance(protocol, Protocol):
            raise ValidationError(
                f"{owner}: protocol must be a Protocol, got {type(protocol).__name__}."
            )
        check_ideal_biophysics(network)
        self.network = network
        self.protocol = protocol
        self.record_spikes = bool(record_spikes)
        self.sample_steps = whole_steps(
            owner, "FreePhase.duration", protocol.free_phase.duration, network.dt
        )
        self.sample_duration = self.sample_steps * network.dt
        #: seconds the last :meth:`generate` took
        self.generate_time_s = 0.0
        #: seconds the last :meth:`run` took: generation, GeNN compilation and the run
        self.build_time_s = 0.0
        #: seconds of the last :meth:`run` spent in the simulation loop (GeNN's own timer)
        self.simulation_time_s = 0.0

    # ------------------------------------------------------------------ definition
    def _populations(self) -> list[Population]:
        populations = []
        if self.network.input_coding == "spikes":
            populations.append(
                Population(name="input", size=self.network.n_inputs, layer=0, role="input")
            )
        for k, size in enumerate(self.network.layer_sizes):
            populations.append(
                Population(name=f"layer_{k + 1}", size=size, layer=k + 1, role="forward")
            )
        return populations

    def _define(self, inputs: NDArray[np.float64]) -> FreePhaseObjects:
        """Create the Brian2 objects for ``inputs`` on the current device and run them."""
        return FreePhaseNetwork(
            self.network,
            sample_steps=self.sample_steps,
            free_steps=self.sample_steps,
            population_names=[population.name for population in self._populations()],
            rules=GeNNRules(),
        ).define(inputs, len(inputs))

    def _check_inputs(self, owner: str, inputs: Any) -> NDArray[np.float64]:
        return self.network.check_inputs(inputs, owner=owner)

    def generate(
        self, inputs: Any, directory: str | os.PathLike[str], *, use_GPU: bool = False
    ) -> Path:
        """Write the GeNN project of a run on ``inputs`` without compiling it (no GeNN needed).

        Parameters
        ----------
        inputs : array_like, shape (n_samples, n_inputs)
            Input values in [0, 1]; they are part of the project (brian2genn has no
            ``run_args``).
        directory : str or path
            Project directory (created; the files of a project already there are
            overwritten).
        use_GPU : bool
            Generate for GeNN's CUDA backend (True) or its single-threaded CPU backend.

        Returns
        -------
        Path
            The project directory, holding ``magicnetwork_model.cpp`` (the GeNN model),
            ``main.cpp``, ``engine.cpp`` and a ``Makefile``.

        Raises
        ------
        DeviceError
            If brian2genn cannot be imported.
        """
        owner = "GeNNFreeRun.generate"
        array = self._check_inputs(owner, inputs)
        import_brian2genn(owner)
        target = Path(directory).resolve()
        start = time.perf_counter()
        with genn_device(target, dt=self.network.dt, use_GPU=use_GPU, compile_and_run=False):
            self._define(array)
        self.generate_time_s = time.perf_counter() - start
        logger.info("GeNN project written to %s in %.1f s", target, self.generate_time_s)
        return target

    def run(
        self,
        inputs: Any,
        *,
        directory: str | os.PathLike[str] | None = None,
        use_GPU: bool = False,
    ) -> SpikeRecording:
        """Build and run the free phase of every sample of ``inputs`` with GeNN.

        Parameters
        ----------
        inputs : array_like, shape (n_samples, n_inputs)
            Input values in [0, 1].
        directory : str or path, optional
            Project directory, kept after the run (default: a temporary directory, removed).
        use_GPU : bool
            Run on GeNN's CUDA backend (needs a GPU and CUDA) or on its CPU backend.

        Returns
        -------
        SpikeRecording
            Spikes and average rates per (sample, phase, neuron), laid out as
            :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` lays them out; ``device`` is
            ``'genn'``.

        Raises
        ------
        DeviceError
            If brian2genn cannot be imported or GeNN is not installed (one message saying
            what to install), or if the GeNN build fails.
        """
        owner = "GeNNFreeRun.run"
        array = self._check_inputs(owner, inputs)
        check_genn_available(owner)
        start = time.perf_counter()
        with genn_build(owner, directory, dt=self.network.dt, use_GPU=use_GPU):
            objects = self._define(array)
            spikes = self._spikes(objects, len(array))
            self.simulation_time_s = float(getattr(get_device(), "_last_run_time", 0.0))
        self.build_time_s = time.perf_counter() - start
        return self._recording(array, spikes, device="genn", wall_time_s=self.build_time_s)

    def build(
        self,
        inputs: Any,
        *,
        directory: str | os.PathLike[str],
        use_GPU: bool = False,
    ) -> tuple[SpikeRecording, GeNNBinary]:
        """Build a project for runs of ``len(inputs)`` samples, run it on ``inputs``.

        Like :meth:`run`, and keeps the compiled project in ``directory`` so that
        :meth:`rerun` can simulate other inputs, or the same with new weights, without
        building again.

        Returns
        -------
        (SpikeRecording, GeNNBinary)
        """
        owner = "GeNNFreeRun.build"
        array = self._check_inputs(owner, inputs)
        check_genn_available(owner)
        learned = free_phase_arrays(self.network)
        start = time.perf_counter()
        with genn_build(owner, directory, dt=self.network.dt, use_GPU=use_GPU) as project:
            objects = self._define(array)
            spikes = self._spikes(objects, len(array))
            self.simulation_time_s = float(getattr(get_device(), "_last_run_time", 0.0))
            binary = record_binary(
                owner,
                objects.network,
                project,
                tables={"sample_inputs": array},
                learned=learned,
                outputs=self._output_keys(),
                size=len(array),
                gpu=use_GPU,
            )
        self.build_time_s = time.perf_counter() - start
        recording = self._recording(array, spikes, device="genn", wall_time_s=self.build_time_s)
        return recording, binary

    def rerun(self, binary: GeNNBinary, inputs: Any) -> SpikeRecording:
        """Simulate ``inputs`` with a project :meth:`build` compiled, and current weights.

        At most ``binary.size`` samples; fewer are padded with zero inputs, whose spikes are
        dropped.
        """
        owner = "GeNNFreeRun.rerun"
        array = self._check_inputs(owner, inputs)
        if len(array) > binary.size:
            raise ValidationError(
                f"{owner}: at most {binary.size} samples per run of this build, got {len(array)}."
            )
        padded = np.zeros((binary.size, self.network.n_inputs))
        padded[: len(array)] = array
        outputs, wall, self.simulation_time_s = rerun_binary(
            owner, binary, {"sample_inputs": padded, **free_phase_arrays(self.network)}
        )
        recorded = {
            population.name: (
                outputs[f"spikes_{population.name}.i"],
                outputs[f"spikes_{population.name}.t"],
            )
            for population in self._populations()
        }
        spikes = self._select(recorded, len(array))
        return self._recording(array, spikes, device="genn", wall_time_s=wall)

    def run_on_runtime(self, inputs: Any, *, target: str = "numpy") -> SpikeRecording:
        """Simulate the same definition on Brian2's runtime device (no GeNN needed).

        The network, the gated ``on_pre`` code, the summed drive and brian2genn's schedule
        are exactly those of :meth:`run`, so this is the reference a GeNN run is checked
        against, and a way to check the GeNN model where GeNN is not installed.

        Parameters
        ----------
        inputs : array_like, shape (n_samples, n_inputs)
            Input values in [0, 1].
        target : str
            The runtime device, one of
            :data:`~fbsnn_brian.build.devices.registry.RUNTIME_DEVICES` (its code target).

        Returns
        -------
        SpikeRecording
            As :meth:`run` returns it; ``device`` is e.g. ``'numpy (brian2genn schedule)'``.
        """
        owner = "GeNNFreeRun.run_on_runtime"
        array = self._check_inputs(owner, inputs)
        check_choice(owner, "target", target, devices.RUNTIME_DEVICES)
        saved_dt = defaultclock.dt
        start = time.perf_counter()
        try:
            with devices.runtime_target(target):
                defaultclock.dt = self.network.dt
                objects = self._define(array)
                spikes = self._spikes(objects, len(array))
        finally:
            defaultclock.dt = saved_dt
        wall = time.perf_counter() - start
        return self._recording(
            array, spikes, device=f"{target} (brian2genn schedule)", wall_time_s=wall
        )

    # ------------------------------------------------------------------ results
    def _output_keys(self) -> list[str]:
        return [
            f"spikes_{population.name}.{variable}"
            for population in self._populations()
            for variable in ("i", "t")
        ]

    def _spikes(
        self, objects: FreePhaseObjects, n_samples: int
    ) -> dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]:
        """Spike (neuron index, time in s) per population, read before the device resets."""
        recorded = {
            name: (np.asarray(monitor.i[:]), np.asarray(monitor.t[:] / second))
            for name, monitor in objects.monitors.items()
        }
        return self._select(recorded, n_samples)

    def _select(
        self, recorded: dict[str, tuple[Any, Any]], n_samples: int
    ) -> dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]:
        """The spikes of the first ``n_samples`` samples (the rest is padding)."""
        end = n_samples * float(self.sample_duration / second)
        spikes = {}
        for name, (indices, times) in recorded.items():
            times = np.asarray(times, dtype=np.float64)
            indices = np.asarray(indices, dtype=np.int64)
            keep = times < end - 0.25 * float(self.network.dt / second)
            spikes[name] = (indices[keep], times[keep])
        return spikes

    def _recording(
        self,
        inputs: NDArray[np.float64],
        spikes: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]],
        *,
        device: str,
        wall_time_s: float,
    ) -> SpikeRecording:
        """Rates and events as :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` has them."""
        net = self.network
        n_samples = len(inputs)
        dt_s = float(net.dt / second)
        sample_s = float(self.sample_duration / second)
        populations = self._populations()
        counts = {pop.name: np.zeros((n_samples, pop.size)) for pop in populations}
        events: dict[
            str, list[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]]
        ] = {pop.name: [] for pop in populations}
        for name, (indices, times) in spikes.items():
            steps = np.rint(times / dt_s).astype(np.int64)
            sample = steps // self.sample_steps
            in_sample = (steps - sample * self.sample_steps) * dt_s * second
            weights = net.spike_weights(in_sample, self.sample_duration)
            np.add.at(counts[name], (sample, indices), weights)
            if self.record_spikes:
                events[name].append((indices, times, sample))
        normaliser = net.rate_normaliser(self.sample_duration)
        rates = {name: counts[name][:, None, :] / normaliser for name in counts}
        return recording_from_chunks(
            network=net,
            protocol=Protocol([self.protocol.free_phase]),
            populations=populations,
            events=events,
            rates=rates,
            inputs=inputs,
            phase_durations_s=(self.sample_steps * dt_s,),
            sample_duration_s=sample_s,
            device=device,
            wall_time_s=wall_time_s,
        )
