"""GeNN (brian2genn) build of SPIDE training: free phase, perturbed phase and plasticity.

:class:`GeNNTraining` trains a FeedbackNetwork on a sequence of samples in ONE Brian2 run that
brian2genn turns into a GeNN model, on the GPU or on GeNN's CPU backend. It computes the same
updates as :class:`~fbsnn_brian.build.training.TrainingSimulation` (online SGD, one update per
sample), restated within what brian2genn 1.7 accepts (ARCHITECTURE.md, "Devices"): spikes are
the only event, a Synapses object has one ``on_pre`` and one ``on_post`` pathway, ``on_pre``
may read postsynaptic but not presynaptic variables and may write one postsynaptic variable,
``on_post`` may read presynaptic variables and write only synaptic ones, one summed variable
per Synapses (targeting its postsynaptic group), one clock, TimedArrays only inside
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
(:class:`fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`) uses this for its chunks; the
feedback gain cap (``max_feedback_gain``) is applied after every run, as TrainingSimulation
applies it after every chunk.

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
from brian2 import Network, NeuronGroup, Synapses, TimedArray, defaultclock
from brian2.devices.device import get_device
from numpy.typing import NDArray

from fbsnn_brian.build.devices import registry as devices
from fbsnn_brian.build.devices.genn_device import (
    GENN_SCHEDULE,
    GeNNBinary,
    assign_arrays,
    check_genn_available,
    check_ideal_biophysics,
    genn_build,
    genn_device,
    import_brian2genn,
    record_binary,
    rerun_binary,
)
from fbsnn_brian.build.devices.genn_free_run import free_phase_arrays
from fbsnn_brian.build.free_run import (
    all_to_all,
    matrix_to_synapses,
    synapses_to_matrix,
    whole_steps,
)
from fbsnn_brian.build.neurons import integration_method, membrane_equations
from fbsnn_brian.build.plasticity import spide_namespace
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.validation import check_choice

__all__ = ["GeNNTraining", "GeNNTrainingResult"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: Position within the sample, ``n % sample_steps + 1/2`` at step n (half a unit away from
#: every integer it is compared with; no int() around it: brian2genn's int() takes a bool).
_STEP = "((t / dt + 0.5) % sample_steps)"


def _during(first: str, last: str, step: str = _STEP) -> str:
    """1 at the steps ``first .. last`` of a sample (inclusive), else 0."""
    return f"int({step} > {first}) * int({step} < {last} + 1)"


#: Flags, in the code of neurons (evaluated at the step itself).
_FREE = _during("0", "free_steps - 1")
_ERROR = _during("window_start", "window_start + backward_steps - 1")
_UPDATE = _during("update_step", "update_step")
_LAST = _during("sample_steps - 1", "sample_steps - 1")
#: Flags, in ``on_pre`` / ``on_post`` code: a spike of step n is delivered at step n + 1.
_FREE_DELIVERY = _during("1", "free_steps")
_UPDATE_DELIVERY = _during("update_step + 1", "update_step + 1")
_DRIVE_DELIVERY = _during("0", "0")
#: In summed variables (GeNN synapse dynamics, which have no ``dt``: the same step is
#: ``step_dt``, a constant).
_ERROR_SUMMED = _during(
    "window_start", "window_start + backward_steps - 1", "((t / step_dt + 0.5) % sample_steps)"
)
_GATE = "int({0}spike_count{1} > 0) * int({0}spike_count{1} < max_count)"


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
        ``[FreePhase, PerturbedPhase]`` with a :class:`~fbsnn_brian.model.plasticity.SPIDEPlasticity`.

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
    def _namespace(self, tables: dict[str, TimedArray]) -> dict[str, Any]:
        return {
            **spide_namespace(self.network, self.protocol, self.free_steps),
            "step_dt": self.network.dt,
            "sample_steps": self.sample_steps,
            "free_steps": self.free_steps,
            "backward_steps": self.backward_steps,
            "window_start": self.window_start,
            "update_step": self.update_step,
            **tables,
        }

    def _layer(self, k: int, namespace: dict[str, Any]) -> NeuronGroup:
        net = self.network
        first, last = k == 0, k == net.n_layers - 1
        drive = "(I_input + b)" if first else "b"
        error_drive = "scale * g / tau + " if last else ""
        model = membrane_equations(neuron=net.neuron, drive=drive, biophysics=net.biophysics)
        model += f"""
        du_err/dt = {error_drive}I_err / step_dt : 1
        I_err : 1
        b : 1
        lr : 1
        spike_count : 1
        error_count : 1
        last_sign : 1
        t_last_spike : second
        t_last_error : second
        spikes_total : 1
        events_total : 1
        real : 1
        """
        if first:
            model += "I_input : 1\n"
        if last:
            model += "g : 1\n"
        gate = _GATE.format("", "")
        threshold = (
            f"({_FREE} * int(v >= v_threshold) * int(t - t_last_spike >= refractory - 0.5 * dt)"
            f" + {_ERROR} * {gate} * int(abs(u_err) >= v_b)"
            f" * int(t - t_last_error >= tau - 0.5 * dt) + {_UPDATE}) > 0"
        )
        reset = f"""
        v -= theta * {_FREE}
        spike_count += {_FREE}
        spikes_total += real * {_FREE}
        t_last_spike += {_FREE} * (t - t_last_spike)
        last_sign = {_ERROR} * (2 * int(u_err > 0) - 1)
        u_err -= last_sign * delta
        error_count += last_sign
        events_total += real * last_sign * last_sign
        t_last_error += last_sign * last_sign * (t - t_last_error)
        b -= {_UPDATE} * lr * ({gate} * (error_count * delta / backward_tau) / (scale * theta))
        """
        group = NeuronGroup(
            net.layer_sizes[k],
            model,
            threshold=threshold,
            reset=reset,
            method=integration_method(net.neuron, net.biophysics),
            namespace=namespace,
            name=f"layer_{k + 1}",
        )
        group.run_regularly(
            "v = 0\nu_err = 0\nspike_count = 0\nerror_count = 0\nlast_sign = 0\n"
            "t_last_spike = t - refractory\nt_last_error = t - tau\n"
            "lr = learning_rates(t)\nreal = real_samples(t)" + ("\nI_input = 0" if first else ""),
            dt=self.sample_duration,
            when="start",
            order=-1,
            name=f"layer_{k + 1}_run_regularly_sample_start",
        )
        group.t_last_spike = -net.refractory
        group.t_last_error = -net.tau
        return group

    def _update_code(self, weight: str, side: str, gradient: str) -> str:
        """Counting code and SPIDE update of one weight copy (``side``: 'post' or 'pre')."""
        return (
            f"count += {_FREE_DELIVERY}\n"
            f"{weight} -= {_UPDATE_DELIVERY} * lr_{side} * ({gradient} + weight_decay * {weight})\n"
            f"count *= 1 - {_UPDATE_DELIVERY}"
        )

    def _loop_gradient(self, side: str) -> str:
        gate = _GATE.format("", f"_{side}")
        beta = f"(error_count_{side} * delta / backward_tau)"
        return f"{gate} * {beta} * (count / rate_normaliser) / (scale * theta)"

    def _loop_pair(
        self,
        source: NeuronGroup,
        target: NeuronGroup,
        back_weights: FloatArray | None,
        name: str,
        namespace: dict[str, Any],
    ) -> tuple[Synapses, Synapses]:
        """Forward synapses (source -> target) and their transposed copy (target -> source).

        The learned weights are assigned later (:meth:`_learned_arrays`); only fixed random
        ``back_weights`` (no weight transport) are set here.
        """
        learned_back = back_weights is None
        forward = Synapses(
            source,
            target,
            "w : 1\ncount : 1",
            on_pre=f"v_post += w * {_FREE_DELIVERY}\n"
            + self._update_code("w", "post", self._loop_gradient("post")),
            namespace=namespace,
            name=name,
        )
        pre, post = all_to_all(len(source), len(target))
        forward.connect(i=pre, j=post)
        backward = Synapses(
            target,
            source,
            "w_back : 1\ncount : 1\n"
            "I_err_post = w_back * last_sign_pre * int(t_last_error_pre > t - 1.5 * step_dt)"
            " * delta / theta : 1 (summed)",
            on_post=(
                self._update_code("w_back", "pre", self._loop_gradient("pre"))
                if learned_back
                else None
            ),
            namespace=namespace,
            name=f"{name}_back",
        )
        pre, post = all_to_all(len(target), len(source))
        backward.connect(i=pre, j=post)
        if back_weights is not None:
            backward.w_back = matrix_to_synapses(np.ascontiguousarray(back_weights.T))
        return forward, backward

    def _define(self, values: dict[str, FloatArray]) -> Network:
        net = self.network
        tables = {
            name: TimedArray(table, dt=self.sample_duration, name=name)
            for name, table in values.items()
        }
        n_runs = len(values["real_samples"])
        namespace = self._namespace(tables)
        every_sample = {"dt": self.sample_duration, "when": "start"}
        # brian2genn recognises a run_regularly operation by '_run_regularly' in its name and
        # silently drops one named otherwise: keep that word in every name below.

        # The input path is event-driven: every input neuron fires at the last step of each
        # sample; the spike arrives at the first step of the next one, after that sample's
        # input was loaded into the synapses' x, and adds F x to layer 1's I_input once.
        # It fires again at the update step, for the input weights' update.
        stimulus = NeuronGroup(
            net.n_inputs,
            "spikes_total : 1",
            threshold=f"({_UPDATE} + {_LAST}) > 0",
            reset="spikes_total += 1",
            namespace=namespace,
            name="stimulus",
        )
        layers = [self._layer(k, namespace) for k in range(net.n_layers)]

        input_synapses = Synapses(
            stimulus,
            layers[0],
            "w : 1\nx : 1",
            on_pre=(
                f"I_input_post += w * x * {_DRIVE_DELIVERY}\n"
                f"w -= {_UPDATE_DELIVERY} * lr_post * ({_GATE.format('', '_post')}"
                " * (error_count_post * delta / backward_tau) * x / (scale * theta)"
                " + weight_decay * w)"
            ),
            namespace=namespace,
            name="input_synapses",
        )
        pre, post = all_to_all(net.n_inputs, net.layer_sizes[0])
        input_synapses.connect(i=pre, j=post)
        input_synapses.run_regularly(
            "x = sample_inputs(t, i)",
            order=-2,
            name="input_synapses_run_regularly_load",
            **every_sample,
        )

        random_back = self.plasticity.feedback == "random"
        rng = np.random.default_rng(net.seed + 1)

        def back_weights(weights: FloatArray) -> FloatArray | None:
            # fixed random backward weights with the forward matrix's shape and spread, drawn
            # in TrainingSimulation's order so that both builds use the same ones
            if not random_back:
                return None
            return rng.standard_normal(weights.shape) * float(np.std(weights))

        forward, backward = [], []
        for k, weights in enumerate(net.forward_weights):
            pair = self._loop_pair(
                layers[k],
                layers[k + 1],
                back_weights(weights),
                f"forward_{k + 1}",
                namespace,
            )
            forward.append(pair[0])
            backward.append(pair[1])
        feedback, feedback_back = self._loop_pair(
            layers[-1],
            layers[0],
            back_weights(net.feedback_weights),
            "feedback",
            namespace,
        )

        cross_entropy = self.plasticity.loss == "cross_entropy"
        error = "exp(o + d) / partition - label" if cross_entropy else "o + d - label"
        latch = _during("window_start - 1", "window_start - 1")
        readout = NeuronGroup(
            net.n_classes,
            "o : 1\nd : 1\nlabel : 1\npartition : 1\nerr : 1\nlr : 1",
            threshold=f"({latch} + {_UPDATE}) > 0",
            reset=f"err += {latch} * ({error} - err)\nd -= {_UPDATE} * lr * err",
            namespace=namespace,
            name="readout",
        )
        readout.partition = float(net.n_classes)
        readout.run_regularly(
            "label = sample_labels(t, i)\nlr = learning_rates(t)",
            order=-1,
            name="readout_run_regularly_sample_start",
            **every_sample,
        )
        softmax_sum = Synapses(
            readout,
            readout,
            "partition_post = exp(o_pre + d_pre) : 1 (summed)",
            namespace=namespace,
            name="softmax_sum",
        )
        softmax_sum.connect()
        readout_synapses = Synapses(
            layers[-1],
            readout,
            "w : 1\ncount : 1\no_post = w * spike_count_pre / rate_normaliser : 1 (summed)",
            on_pre=self._update_code("w", "post", "err_post * (count / rate_normaliser)"),
            namespace=namespace,
            name="readout_synapses",
        )
        pre, post = all_to_all(net.layer_sizes[-1], net.n_classes)
        readout_synapses.connect(i=pre, j=post)
        readout_fixed = back_weights(net.readout_weights)
        readout_back = Synapses(
            readout,
            layers[-1],
            f"w_back : 1\ncount : 1\ng_post = w_back * err_pre * {_ERROR_SUMMED} : 1 (summed)",
            on_post=(
                self._update_code("w_back", "pre", "err_pre * (count / rate_normaliser)")
                if readout_fixed is None
                else None
            ),
            namespace=namespace,
            name="readout_back",
        )
        pre, post = all_to_all(net.n_classes, net.layer_sizes[-1])
        readout_back.connect(i=pre, j=post)
        if readout_fixed is not None:
            readout_back.w_back = matrix_to_synapses(np.ascontiguousarray(readout_fixed.T))
        # Brian2's runtime sums every summed variable before the groups update, in order; the
        # softmax denominator must read the readout of the previous step, as in GeNN.
        softmax_sum.summed_updaters["partition_post"].order = -3
        readout_synapses.summed_updaters["o_post"].order = -2

        network = Network(
            stimulus,
            *layers,
            readout,
            input_synapses,
            *forward,
            *backward,
            feedback,
            feedback_back,
            softmax_sum,
            readout_synapses,
            readout_back,
            name="spide_training_genn",
        )
        assign_arrays(network, self._learned_arrays())
        network.schedule = list(GENN_SCHEDULE)
        network.run(n_runs * self.sample_duration, namespace={})
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
        """The network's learned parameters as the build stores them, by ``object.variable``.

        Those of the free phase (:func:`~fbsnn_brian.build.devices.genn_free_run.free_phase_arrays`), the readout,
        and with transposed feedback every ``*_back.w_back``, the transpose of its forward
        matrix.
        """
        net = self.network
        arrays = free_phase_arrays(net)
        arrays["readout_synapses.w"] = matrix_to_synapses(net.readout_weights)
        arrays["readout.d"] = np.asarray(net.readout_bias, dtype=np.float64)
        if self.plasticity.feedback == "transpose":
            matrices = [(f"forward_{k + 1}", w) for k, w in enumerate(net.forward_weights)]
            matrices += [("feedback", net.feedback_weights), ("readout", net.readout_weights)]
            for name, weights in matrices:
                arrays[f"{name}_back.w_back"] = matrix_to_synapses(np.ascontiguousarray(weights.T))
        return arrays

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
