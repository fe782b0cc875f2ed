"""GeNN (brian2genn) build of SPIDE training: free phase, perturbed phase and plasticity.

:class:`GeNNTraining` trains a FeedbackNetwork on a sequence of samples in ONE Brian2 run that
brian2genn turns into a GeNN model, on the GPU or on GeNN's CPU backend. It computes the same
updates as :class:`~fbsnn_brian.build.training.TrainingSimulation` (online SGD, one update per
sample), restated within what brian2genn 1.7 accepts (docs/architecture.rst, section
"Devices"): spikes are the only event, a Synapses object has one ``on_pre`` and one ``on_post``
pathway, ``on_pre`` may read postsynaptic but not presynaptic variables and may write one
postsynaptic variable, ``on_post`` may read presynaptic variables and write only synaptic ones, one
summed variable per Synapses (targeting its postsynaptic group), one clock, TimedArrays only inside
``run_regularly``, no ``run_args``.

Each sample lasts ``F + B + 4`` steps (F free-phase steps, B perturbed-phase steps):

====================  =================================================================
step in the sample     what happens
====================  =================================================================
0                      host ``run_regularly``: load the input, label and learning rate,
                       reset membranes and counters; the input spikes sent at the last
                       step of the previous sample arrive and add ``F x`` to layer 1's
                       constant input (the run starts with one padding sample for that)
0 .. F-1               free phase: forward spikes (``v >= V_th``), counted by each neuron
                       and, per synapse, by the synapses they cross
F, F+1                 the readout settles: ``o`` (step F), the softmax denominator
                       (F+1); a readout spike at F+1 latches the output error
F+2 .. F+B+1           perturbed phase: the error units integrate ``s g`` and the events
                       arriving through the transposed weights
F+B+2                  every neuron emits one *update spike*; its reset updates the bias
F+B+3                  the update spikes arrive: every synapse applies its SPIDE update;
                       every input neuron fires, for the next sample's input
====================  =================================================================

The perturbed phase starts two steps after the free phase ends because a summed variable
reads the values of the previous step: the readout ``o`` at step F sees the final spike
counts, the softmax denominator at F+1 sees that ``o``, and the last layer's error drive at
F+2 sees the latched error. Within the phase the error units evolve exactly as in
TrainingSimulation's phase (same drive, same events, B steps), two steps later.

How the error path fits brian2genn. Forward neuron and error unit share one NeuronGroup per
layer (as in TrainingSimulation), so the group's single ``spike`` event is a forward spike in
the free phase, an error event in the perturbed phase and the update spike after it. A
ternary error event has a sign, which ``on_pre`` could only read from the presynaptic neuron
(not allowed); the events therefore travel through a summed variable of a second Synapses
object per weight matrix, which holds the transposed weights ``w_back`` (pre: the error unit
k, post: the unit i) and sums ``w_back * last_sign_pre * delta / theta`` over the units that
fired in the previous step. That is the jump ``TrainingSimulation`` applies per event, and it
reaches the membrane before the same threshold test. It costs one operation per backward
synapse and step, instead of one per event.

Plasticity without reading presynaptic variables in ``on_pre``. Each forward synapse counts
the free-phase spikes that cross it (``count``, its presynaptic rate times T_f / tau). The
update spike of its presynaptic neuron then applies
``w -= eta * (gate_post * beta_post * count / T_f / (s theta) + lambda * w)``, reading the
postsynaptic gate and error rate, and clears the count. The transposed copy ``w_back`` counts
the free-phase spikes of its postsynaptic neuron in ``on_post`` and applies the same update
when that neuron's update spike arrives, reading the gate and error rate of its presynaptic
error unit, which ``on_post`` may read. Both copies start equal and receive the same update
from the same values, once per sample; the module measures that they stay equal (see
:attr:`GeNNTrainingResult.transport_mismatch`). The readout weights and their transposed copy
(which carries ``g = C^T (p - y)``) work the same way; the input weights read the input from a
synaptic copy ``x`` loaded per sample. Biases are updated by the update spike's reset, the
readout bias by the readout's.

Compiled once. brian2genn allows one run per build and has no ``run_args``, but the binary
it builds reads every learned parameter and every per-sample table from ``static_arrays/``
files when it starts. :meth:`GeNNTraining.build` therefore builds a project for a fixed
number of samples and records, for each input, the file the binary reads (checked against
the value the build stored) and, for each output, the file it writes;
:meth:`GeNNTraining.rerun` writes new weights and samples into those files (sizes checked)
and runs the binary again (:mod:`fbsnn_brian.build.devices.genn_device`). The Trainer's adapter
(:class:`fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`) uses this for its
chunks; the feedback gain cap (``max_feedback_gain``) is applied after every run, as
TrainingSimulation applies it after every chunk.

Supported: IF and LIF neurons with the ideal biophysics, current input coding, the average
rate estimate, online SGD (``batch_size`` 1, no momentum, no input dropout), transposed or
random feedback, cross-entropy or MSE. Other settings, Dale's law included, are refused.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import Network, TimedArray, defaultclock
from brian2.devices.device import get_device
from numpy.typing import NDArray

from fbsnn_brian.build.device_rules import assign_arrays
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
from fbsnn_brian.build.devices.genn_training_network import GeNNTrainingRules, learned_arrays
from fbsnn_brian.build.free_phase_network import synapses_to_matrix, whole_steps
from fbsnn_brian.build.training_network import TrainingNetwork
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.validation import check_choice

__all__ = ["GeNNTraining", "GeNNTrainingResult"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class GeNNTrainingResult:
    """What one GeNN training run reports (the network's weights are already updated).

    ``forward_rate`` and ``backward_rate`` are averages over samples and forward neurons in
    events per tau, as in :class:`~fbsnn_brian.build.training.ChunkStatistics`;
    ``transport_mismatch`` is the largest ``|w - w_back^T|`` over the loop and readout
    weights at the end of the run (0 means the two copies stayed identical); the times are
    in seconds.
    """

    n_samples: int
    forward_rate: float
    backward_rate: float
    layer_forward_rates: tuple[float, ...]
    transport_mismatch: float
    build_time_s: float
    simulation_time_s: float
    device: str


class GeNNTraining:
    """SPIDE training of a FeedbackNetwork on GeNN: every sample of a call in one GeNN run.

    The module docstring explains how the training network is restated for brian2genn.
    Each call of :meth:`run` is one GeNN build (code generation, compilation, run);
    :meth:`build` keeps the compiled project for :meth:`rerun`.

    Parameters
    ----------
    network : FeedbackNetwork
        Trained in place: its weights are read at every call and written back after it.
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a
        :class:`~fbsnn_brian.model.plasticity.SPIDEPlasticity`.

    Raises
    ------
    ValidationError
        For a setting this build does not implement (the message names it): biophysics other
        than the ideal one, input coding other than ``'current'``, the exponential rate
        estimate, momentum or mini-batches; or phases that are not whole numbers of steps.

    Examples
    --------
    >>> from brian2 import ms
    >>> from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
    >>> from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    >>> net = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
    >>> protocol = Protocol([FreePhase(duration=5 * ms), PerturbedPhase(duration=10 * ms)],
    ...                     plasticity=SPIDEPlasticity())
    >>> GeNNTraining(net, protocol).sample_steps  # 20 free, 40 perturbed, 4 more
    64
    """

    def __init__(self, network: FeedbackNetwork, protocol: Protocol) -> None:
        owner = "GeNNTraining"
        if not isinstance(network, FeedbackNetwork):
            raise ValidationError(
                f"{owner}: network must be a FeedbackNetwork, got {type(network).__name__}."
            )
        perturbed = protocol.perturbed_phase if isinstance(protocol, Protocol) else None
        if perturbed is None or protocol.plasticity is None:
            raise ValidationError(
                f"{owner}: protocol must be a Protocol with a PerturbedPhase and a "
                f"SPIDEPlasticity, got {protocol!r}."
            )
        check_ideal_biophysics(network, owner)
        plasticity = protocol.plasticity
        refused = [
            ("network.input_coding", network.input_coding, "'current'", "current"),
            ("network.rate_estimate", network.rate_estimate, "'average'", "average"),
            ("plasticity.momentum", plasticity.momentum, "0", 0),
            ("plasticity.batch_size", plasticity.batch_size, "1", 1),
            ("plasticity.input_dropout", plasticity.input_dropout, "0", 0),
        ]
        for name, value, allowed, accepted in refused:
            if value != accepted:
                raise ValidationError(
                    f"{owner}: {name} = {value!r} is not supported on GeNN (allowed: "
                    f"{allowed}); train this network on runtime or cpp_standalone."
                )
        if network.biophysics.excitatory_fraction is not None:
            raise ValidationError(
                f"{owner}: biophysics.excitatory_fraction = "
                f"{network.biophysics.excitatory_fraction!r} (Dale's law) is not supported "
                "in GeNN training (allowed: None); train this network on runtime or "
                "cpp_standalone."
            )
        self.network = network
        self.protocol = protocol
        self.plasticity = plasticity
        self.free_steps = whole_steps(
            owner, "FreePhase.duration", protocol.free_phase.duration, network.dt
        )
        self.backward_steps = whole_steps(
            owner, "PerturbedPhase.duration", perturbed.duration, network.dt
        )
        self.window_start = self.free_steps + 2
        self.update_step = self.window_start + self.backward_steps
        self.sample_steps = self.update_step + 2
        self.sample_duration = self.sample_steps * network.dt
        self.perturbed = perturbed
        #: seconds the last :meth:`generate` took
        self.generate_time_s = 0.0

    # ------------------------------------------------------------------ definition
    def _define(self, values: dict[str, FloatArray]) -> Network:
        """Create the network for the per-sample tables ``values`` and run it (one run).

        The network is the one training definition
        (:class:`~fbsnn_brian.build.training_network.TrainingNetwork`) with brian2genn's
        rules (:class:`~fbsnn_brian.build.devices.genn_training_network.GeNNTrainingRules`);
        the learned parameters are assigned from the dictionary a rerun writes.
        """
        layout = {
            "free_steps": self.free_steps,
            "backward_steps": self.backward_steps,
            "window_start": self.window_start,
            "update_step": self.update_step,
            "sample_steps": self.sample_steps,
        }
        tables = {
            name: TimedArray(table, dt=self.sample_duration, name=name)
            for name, table in values.items()
        }
        rules = GeNNTrainingRules(layout)
        network = (
            TrainingNetwork(
                self.network,
                self.protocol,
                free_steps=self.free_steps,
                sample_steps=self.sample_steps,
                rules=rules,
            )
            .define(tables)
            .network
        )
        assign_arrays(network, self._learned_arrays())
        rules.finish(network)
        network.run(len(values["real_samples"]) * self.sample_duration, namespace={})
        return network

    # ------------------------------------------------------------------ inputs
    def _tables(
        self, owner: str, inputs: Any, labels: Any, learning_rate: Any, size: int | None = None
    ) -> dict[str, FloatArray]:
        """Per-sample tables of a run: inputs, one-hot labels, learning rates, real flags.

        The run starts with one padding sample (zero input, learning rate 0, not counted in
        the statistics): its last step sends the first real sample's input. With ``size``,
        more padding samples at the end fill the run to ``size`` real-sample slots.
        """
        net = self.network
        array = net.check_inputs(inputs, owner=owner)
        n_samples = len(array)
        size = n_samples if size is None else size
        if n_samples > size:
            raise ValidationError(
                f"{owner}: at most {size} samples per run of this build, got {n_samples}."
            )
        truth = np.asarray(labels)
        if (
            truth.shape != (n_samples,)
            or not np.issubdtype(truth.dtype, np.integer)
            or (n_samples and (truth.min() < 0 or truth.max() >= net.n_classes))
        ):
            raise ValidationError(
                f"{owner}: labels must be integers in [0, {net.n_classes}) of shape "
                f"({n_samples},), got an array of shape {truth.shape} and dtype {truth.dtype}."
            )
        rates = np.broadcast_to(np.asarray(learning_rate, dtype=np.float64), (n_samples,))
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise ValidationError(
                f"{owner}: learning_rate must be finite and >= 0, got values in "
                f"[{rates.min()}, {rates.max()}]."
            )
        real = slice(1, n_samples + 1)
        tables = {
            "sample_inputs": np.zeros((size + 1, net.n_inputs)),
            "sample_labels": np.zeros((size + 1, net.n_classes)),
            "learning_rates": np.zeros(size + 1),
            "real_samples": np.zeros(size + 1),
        }
        tables["sample_inputs"][real] = array
        tables["sample_labels"][np.arange(1, n_samples + 1), truth] = 1.0
        tables["learning_rates"][real] = rates
        tables["real_samples"][real] = 1.0
        return tables

    # ------------------------------------------------------------------ devices
    def generate(
        self,
        inputs: Any,
        labels: Any,
        learning_rate: Any,
        directory: str | os.PathLike[str],
        *,
        use_GPU: bool = False,
    ) -> Path:
        """Write the GeNN project of training on these samples, without GeNN.

        Parameters are those of :meth:`run`; ``directory`` receives the project
        (``magicnetwork_model.cpp``, ``main.cpp``, ``engine.cpp``, ``Makefile``).

        Raises
        ------
        DeviceError
            If brian2genn cannot be imported.
        """
        owner = "GeNNTraining.generate"
        tables = self._tables(owner, inputs, labels, learning_rate)
        import_brian2genn(owner)
        target = Path(directory).resolve()
        start = time.perf_counter()
        with genn_device(target, dt=self.network.dt, use_GPU=use_GPU, compile_and_run=False):
            self._define(tables)
        self.generate_time_s = time.perf_counter() - start
        return target

    def run(
        self,
        inputs: Any,
        labels: Any,
        learning_rate: Any,
        *,
        directory: str | os.PathLike[str] | None = None,
        use_GPU: bool = False,
    ) -> GeNNTrainingResult:
        """Train on every sample once, in order, in one GeNN build; update the network.

        Parameters
        ----------
        inputs : array_like, shape (n_samples, n_inputs)
            Input values in [0, 1].
        labels : array_like of int, shape (n_samples,)
        learning_rate : float or array_like of shape (n_samples,)
            eta of each sample's update.
        directory : str or path, optional
            Project directory, kept (default: a temporary directory, removed).
        use_GPU : bool
            GeNN's CUDA backend (needs a GPU) or its CPU backend.

        Returns
        -------
        GeNNTrainingResult

        Raises
        ------
        DeviceError
            If brian2genn or GeNN is missing (one message saying what to install), or the
            GeNN build fails.
        """
        owner = "GeNNTraining.run"
        result, _ = self._build_and_run(
            owner,
            self._tables(owner, inputs, labels, learning_rate),
            len(inputs),
            directory=directory,
            use_GPU=use_GPU,
        )
        return result

    def build(
        self,
        inputs: Any,
        labels: Any,
        learning_rate: Any,
        *,
        size: int,
        directory: str | os.PathLike[str],
        use_GPU: bool = False,
    ) -> tuple[GeNNTrainingResult, GeNNBinary]:
        """Build a GeNN project for runs of ``size`` samples, run it on these samples.

        Like :meth:`run`, and keeps the compiled project so that :meth:`rerun` can train on
        further samples without building again. Fewer than ``size`` samples are padded with
        samples of learning rate 0, which change nothing.

        Returns
        -------
        (GeNNTrainingResult, GeNNBinary)
        """
        owner = "GeNNTraining.build"
        tables = self._tables(owner, inputs, labels, learning_rate, size=size)
        result, binary = self._build_and_run(
            owner, tables, len(inputs), directory=directory, use_GPU=use_GPU, keep=True
        )
        assert binary is not None
        return result, binary

    def _build_and_run(
        self,
        owner: str,
        tables: dict[str, FloatArray],
        n_samples: int,
        *,
        directory: str | os.PathLike[str] | None,
        use_GPU: bool,
        keep: bool = False,
    ) -> tuple[GeNNTrainingResult, GeNNBinary | None]:
        check_genn_available(owner)
        learned = self._learned_arrays()
        start = time.perf_counter()
        binary = None
        with genn_build(owner, directory, dt=self.network.dt, use_GPU=use_GPU) as project:
            network = self._define(tables)
            simulation = float(getattr(get_device(), "_last_run_time", 0.0))
            if keep:
                binary = record_binary(
                    owner,
                    network,
                    project,
                    tables=tables,
                    learned=learned,
                    outputs=self._output_keys(),
                    size=len(tables["real_samples"]) - 1,  # after the leading padding sample
                    gpu=use_GPU,
                )
            outputs = self._collect(network)
        result = self._apply(
            outputs,
            n_samples,
            device="genn (GPU)" if use_GPU else "genn (CPU)",
            build_time_s=time.perf_counter() - start,
            simulation_time_s=simulation,
        )
        return result, binary

    def rerun(
        self, binary: GeNNBinary, inputs: Any, labels: Any, learning_rate: Any
    ) -> GeNNTrainingResult:
        """Train on more samples with a project :meth:`build` compiled; update the network.

        The network's current weights and the samples' tables replace the project's input
        files (every file is checked to have the size the binary reads), the binary runs, and
        the trained weights are read from its result files. At most ``binary.size`` samples.
        """
        owner = "GeNNTraining.rerun"
        tables = self._tables(owner, inputs, labels, learning_rate, size=binary.size)
        outputs, wall, simulation = rerun_binary(
            owner, binary, {**tables, **self._learned_arrays()}
        )
        return self._apply(
            outputs,
            len(inputs),
            device="genn (GPU)" if binary.gpu else "genn (CPU)",
            build_time_s=wall,
            simulation_time_s=simulation,
        )

    def run_on_runtime(
        self, inputs: Any, labels: Any, learning_rate: Any, *, target: str = "numpy"
    ) -> GeNNTrainingResult:
        """Run the same definition on Brian2's runtime device, with brian2genn's schedule.

        The reference a GeNN run is checked against, and a way to check the GeNN training
        network where GeNN is not installed. Parameters and result are those of :meth:`run`.
        """
        owner = "GeNNTraining.run_on_runtime"
        tables = self._tables(owner, inputs, labels, learning_rate)
        check_choice(owner, "target", target, devices.RUNTIME_DEVICES)
        saved_dt = defaultclock.dt
        start = time.perf_counter()
        try:
            with devices.runtime_target(target):
                defaultclock.dt = self.network.dt
                network = self._define(tables)
                elapsed = time.perf_counter() - start
                return self._apply(
                    self._collect(network),
                    len(inputs),
                    device=f"{target} (brian2genn schedule)",
                    build_time_s=elapsed,
                    simulation_time_s=elapsed,
                )
        finally:
            defaultclock.dt = saved_dt

    # ------------------------------------------------------------------ results
    def _learned_arrays(self) -> dict[str, FloatArray]:
        """The network's learned parameters as the build stores them (:func:`learned_arrays`)."""
        return learned_arrays(self.network, transpose=self.plasticity.feedback == "transpose")

    def _output_keys(self) -> list[str]:
        counters = [
            f"layer_{k + 1}.{name}"
            for k in range(self.network.n_layers)
            for name in ("spikes_total", "events_total")
        ]
        return [*self._learned_arrays(), *counters]

    def _collect(self, network: Network) -> dict[str, FloatArray]:
        """Every output of a run (learned parameters, counters), read from its objects."""
        outputs = {}
        for key in self._output_keys():
            name, variable = key.split(".")
            outputs[key] = np.asarray(getattr(network[name], variable)[:], dtype=np.float64)
        return outputs

    def _apply(
        self,
        outputs: dict[str, FloatArray],
        n_samples: int,
        *,
        device: str,
        build_time_s: float,
        simulation_time_s: float,
    ) -> GeNNTrainingResult:
        """Write the trained parameters into the network and summarise the run."""
        net = self.network
        sizes = net.layer_sizes

        def matrix(key: str, n_post: int, n_pre: int) -> FloatArray:
            return synapses_to_matrix(outputs[key], n_post, n_pre)

        forward = [
            matrix(f"forward_{k + 1}.w", sizes[k + 1], sizes[k]) for k in range(len(sizes) - 1)
        ]
        feedback = matrix("feedback.w", sizes[0], sizes[-1])
        readout = matrix("readout_synapses.w", net.n_classes, sizes[-1])
        mismatch = 0.0
        if self.plasticity.feedback == "transpose":
            pairs = [
                (weights, matrix(f"forward_{k + 1}_back.w_back", sizes[k], sizes[k + 1]))
                for k, weights in enumerate(forward)
            ]
            pairs.append((feedback, matrix("feedback_back.w_back", sizes[-1], sizes[0])))
            pairs.append((readout, matrix("readout_back.w_back", sizes[-1], net.n_classes)))
            mismatch = max(float(np.max(np.abs(a - b.T))) for a, b in pairs)
        layer_spikes = [
            float(np.sum(outputs[f"layer_{k + 1}.spikes_total"])) for k in range(len(sizes))
        ]
        events = sum(
            float(np.sum(outputs[f"layer_{k + 1}.events_total"])) for k in range(len(sizes))
        )
        net.input_weights = matrix("input_synapses.w", sizes[0], net.n_inputs)
        net.forward_weights = forward
        net.readout_weights = readout
        net.readout_bias = outputs["readout.d"].copy()
        net.biases = [outputs[f"layer_{k + 1}.b"].copy() for k in range(len(sizes))]
        net.set_learned_feedback(feedback, max_gain=self.plasticity.max_feedback_gain)
        free_tau = float(self.protocol.free_phase.duration / net.tau)
        backward_tau = float(self.perturbed.duration / net.tau)
        samples = max(n_samples, 1)
        return GeNNTrainingResult(
            n_samples=n_samples,
            forward_rate=sum(layer_spikes) / (samples * net.n_neurons) / free_tau,
            backward_rate=events / (samples * net.n_neurons) / backward_tau,
            layer_forward_rates=tuple(
                spikes / (samples * size) / free_tau
                for spikes, size in zip(layer_spikes, sizes, strict=True)
            ),
            transport_mismatch=mismatch,
            build_time_s=build_time_s,
            simulation_time_s=simulation_time_s,
            device=device,
        )
