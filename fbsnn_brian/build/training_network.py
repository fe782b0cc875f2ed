"""The Brian2 objects of SPIDE training: ONE definition for every device.

:class:`TrainingNetwork` defines the network that
:class:`~fbsnn_brian.build.training.TrainingSimulation` runs on runtime, cpp_standalone and
cuda_standalone, and that :class:`~fbsnn_brian.build.devices.genn_training.GeNNTraining` runs
on brian2genn. It carries no device flag: the parts of the network, their names, their
order, the state every layer keeps, what a sample start resets, the connectivity, the fixed
random backward weights and the constants are written here once; the constructs that
devices express differently are realised by the definition's
:class:`~fbsnn_brian.build.training_rules.TrainingRules` (Brian2's own by default; brian2genn's
are :class:`~fbsnn_brian.build.devices.genn_training_network.GeNNTrainingRules`, each override
naming the brian2genn rule that forces it). The neuron equations come from
:mod:`fbsnn_brian.build.neurons` and every update term from :mod:`fbsnn_brian.build.plasticity`.

The parts (names are the Brian2 object names):

* ``stimulus``: one neuron per input feature; with current input coding each input with
  ``x > 0`` adds ``F x`` to layer 1's input current once per sample;
* ``layer_1`` .. ``layer_N``: each forward layer group carries, per neuron, the forward
  membrane ``v`` and the ternary error unit's membrane ``u_err`` (``e`` in
  docs/algorithm.rst; ``e`` is a constant in Brian2), the free-phase spike count and the
  signed error-event count of the current sample;
* ``input_synapses``, ``forward_l`` (layer l to l + 1) and ``feedback`` (layer N to layer 1):
  every weight matrix is one set of synapses that delivers forward spikes, and the post
  unit's error events travel backward through the same weights (the forward and backward
  copies of a weight stay equal); per-synapse updates read only the presynaptic free-phase
  rate and the postsynaptic error rate and gate: the locality of SPIDE;
* ``readout``, ``softmax_sum`` and ``readout_synapses``: the non-spiking readout of the last
  layer's free-phase rates, the softmax and the output error that drives the last layer's
  error units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import EventMonitor, Network, NeuronGroup, SpikeMonitor, Synapses, TimedArray
from numpy.typing import NDArray

from fbsnn_brian.build.free_phase_network import SynapticDelays, all_to_all
from fbsnn_brian.build.neurons import integration_method, membrane_equations, neuron_sample_start
from fbsnn_brian.build.plasticity import optimizer_update, spide_namespace
from fbsnn_brian.build.training_rules import TrainingRules
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol

__all__ = ["TrainingNetwork", "TrainingObjects"]

FloatArray = NDArray[np.float64]

#: State every layer keeps on every device (per neuron).
LAYER_STATE = """
b : 1
spike_count : 1
error_count : 1
t_last_spike : second
t_last_error : second
spikes_total : 1
events_total : 1
"""


@dataclass
class TrainingObjects:
    """The Brian2 objects of one defined training network.

    ``backward_synapses`` holds the synapses a device adds for the backward path (none on
    Brian2's devices, where every weight matrix is one Synapses object).
    """

    network: Network
    sample_inputs: TimedArray
    sample_labels: TimedArray
    learning_rates: TimedArray
    real_samples: TimedArray
    apply_updates: TimedArray | None
    stimulus: NeuronGroup
    layers: list[NeuronGroup]
    readout: NeuronGroup
    input_synapses: Synapses
    forward_synapses: list[Synapses]
    feedback_synapses: Synapses
    readout_synapses: Synapses
    monitors: dict[str, Any] | None = None
    backward_synapses: list[Synapses] = field(default_factory=list)


class TrainingNetwork:
    """Defines the training network of one chunk, part by part (see the module docstring).

    Parameters
    ----------
    network : FeedbackNetwork
        Its current weights are the starting values.
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity.
    free_steps, sample_steps : int
        Steps of the free phase and of one sample (both phases, and whatever steps the
        device's rules add).
    record : bool
        Add spike and error-event monitors on every layer.
    rules : TrainingRules, optional
        How the device realises the constructs that devices express differently (Brian2's
        own rules by default).
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        free_steps: int,
        sample_steps: int,
        record: bool = False,
        rules: TrainingRules | None = None,
    ) -> None:
        assert protocol.plasticity is not None
        self.net = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.free_steps = free_steps
        self.sample_steps = sample_steps
        self.sample_duration = sample_steps * network.dt
        self.record = record
        self.rules = TrainingRules() if rules is None else rules
        self.transport = self.plasticity.feedback == "transpose"
        self.back = "w" if self.transport else "w_back"
        # fixed random backward weights, drawn in the order the synapses are defined
        self._feedback_rng = np.random.default_rng(network.seed + 1)
        self.namespace: dict[str, Any] = {}
        self.clock: Any = None
        self.sample_clock: Any = None
        self.readout_clock: Any = None

    # ------------------------------------------------------------------ shared pieces
    def update(self, variable: str, gradient: str) -> str:
        """String code of one parameter's update at a sample boundary (the optimizer's)."""
        return optimizer_update(
            variable,
            gradient,
            batch_size=self.plasticity.batch_size,
            momentum=self.plasticity.momentum,
        )

    def random_feedback(self, weights: FloatArray) -> FloatArray | None:
        """Fixed random backward weights of a matrix (None with weight transport).

        Drawn with the forward matrix's shape and spread from one generator seeded by the
        network's seed, in the order the synapses are defined, so that every device's build
        uses the same ones.
        """
        if self.transport:
            return None
        return self._feedback_rng.standard_normal(weights.shape) * float(np.std(weights))

    def every_sample(self) -> dict[str, Any]:
        """``run_regularly`` arguments of an operation at every sample start (but its name)."""
        arguments = self.rules.sample_start("", self.sample_clock, self.sample_duration)
        arguments.pop("name")
        return {**arguments, "when": "start"}

    def operation_name(self, name: str) -> str:
        """The name of an operation at every sample start, as the device needs it."""
        return str(self.rules.sample_start(name, self.sample_clock, self.sample_duration)["name"])

    def connect_all(self, synapses: Synapses) -> NDArray[np.int64]:
        """All-to-all connections, pre-major (weight vector of a (post, pre) matrix: W.T).

        Returns the presynaptic index of every synapse (read back from a standalone build's
        synapses only after it runs).
        """
        pre, post = all_to_all(len(synapses.source), len(synapses.target))
        synapses.connect(i=pre, j=post)
        return pre

    # ------------------------------------------------------------------ layers
    def _layer_model(self, *, first: bool, last: bool) -> str:
        drive = "(I_input + b)" if first else "b"
        model = membrane_equations(
            neuron=self.net.neuron, drive=drive, biophysics=self.net.biophysics
        )
        model += LAYER_STATE + self.rules.layer_state(self)
        if first:
            model += "I_input : 1\n"
        return model + self.rules.error_unit(self, last=last)

    def _layer(self, k: int) -> NeuronGroup:
        net = self.net
        first, last = k == 0, k == net.n_layers - 1
        events = self.rules.layer_events(self, k)
        group = NeuronGroup(
            net.layer_sizes[k],
            self._layer_model(first=first, last=last),
            threshold=events.threshold,
            reset=events.reset,
            refractory=events.refractory,
            events=events.events,
            method=integration_method(net.neuron, net.biophysics),
            clock=self.clock,
            namespace=self.namespace,
            name=f"layer_{k + 1}",
        )
        self.rules.layer_operations(self, k, group)
        start = [
            *neuron_sample_start(net.neuron, net.biophysics),
            "u_err = 0\nspike_count = 0\nerror_count = 0",
            *self.rules.layer_sample_start(self),
            "t_last_spike = t - refractory\nt_last_error = t - tau",
        ]
        if first:
            start.append("I_input = 0")
        group.run_regularly(
            "\n".join(start) + self.rules.sample_start_suffix(self),
            order=-5,
            name=self.operation_name(f"layer_{k + 1}"),
            **self.every_sample(),
        )
        group.t_last_spike = -net.refractory
        group.t_last_error = -net.tau
        return group

    # ------------------------------------------------------------------ readout
    def _readout(self) -> tuple[NeuronGroup, Synapses]:
        """The readout group and the synapses that sum the softmax denominator.

        The readout is needed only once the free phase is over; it runs on the readout clock,
        which ticks at every common multiple of the two phase lengths, so the free/perturbed
        boundary is a tick.
        """
        net = self.net
        events = self.rules.readout_events(self)
        readout = NeuronGroup(
            net.n_classes,
            "o : 1\nd : 1\nlabel : 1\npartition : 1\n" + self.rules.readout_state(self),
            threshold=events.threshold if events else None,
            reset=events.reset if events else None,
            clock=self.readout_clock,
            namespace=self.namespace,
            name="readout",
        )
        readout.partition = float(net.n_classes)  # valid softmax before the first summation
        self.rules.readout_operations(self, readout)
        readout.run_regularly(
            "\n".join(["label = sample_labels(t, i)", *self.rules.readout_sample_start(self)]),
            order=-5,
            name=self.operation_name("readout"),
            **self.every_sample(),
        )
        # softmax denominator: every readout unit sums exp(o + d) over all of them
        softmax_sum = Synapses(
            readout,
            readout,
            "partition_post = exp(o_pre + d_pre) : 1 (summed)",
            clock=self.readout_clock,
            namespace=self.namespace,
            name="softmax_sum",
        )
        softmax_sum.connect()
        softmax_sum.summed_updaters["partition_post"].order = self.rules.softmax_order
        return readout, softmax_sum

    def _monitors(self, layers: list[NeuronGroup]) -> dict[str, Any]:
        monitors: dict[str, Any] = {}
        if self.record:
            for k, group in enumerate(layers):
                name = f"layer_{k + 1}"
                monitors[name] = SpikeMonitor(group, record=True, name=f"spikes_{name}")
                for event in ("error_up", "error_down"):
                    monitors[f"{name}_{event}"] = EventMonitor(
                        group, event, record=True, name=f"{event}_{name}"
                    )
        return monitors

    # ------------------------------------------------------------------ the whole network
    def define(self, tables: dict[str, TimedArray]) -> TrainingObjects:
        """Create every object of the network; ``tables`` are the per-sample TimedArrays."""
        net = self.net
        self.namespace = {
            **spide_namespace(net, self.protocol, self.free_steps),
            "sample_steps": self.sample_steps,
            "free_steps": self.free_steps,
            **self.rules.namespace(self),
            **tables,
        }
        self.clock = self.rules.step_clock(net.dt)
        self.sample_clock = self.rules.sample_clock(self.sample_duration)
        # The phase flag and the readout change only at phase boundaries; this clock ticks at
        # every common multiple of the two phase lengths, so both boundaries are ticks.
        readout_steps = math.gcd(self.free_steps, self.sample_steps)
        self.readout_clock = self.rules.readout_clock(readout_steps * net.dt)

        stimulus = self.rules.stimulus(self)
        layers = [self._layer(k) for k in range(net.n_layers)]
        input_synapses = self.rules.input_synapses(self, stimulus, layers[0])
        delays = SynapticDelays(net)
        forward, backward = [], []
        for k, weights in enumerate(net.forward_weights):
            connection = self.rules.loop_synapses(
                self, layers[k], layers[k + 1], weights, f"forward_{k + 1}", k, delays
            )
            forward.append(connection[0])
            backward.extend(connection[1:])
        feedback, *feedback_back = self.rules.loop_synapses(
            self,
            layers[-1],
            layers[0],
            net.feedback_weights,
            "feedback",
            net.n_layers - 1,
            delays,
            learned=self.plasticity.learn_feedback,
        )
        readout, softmax_sum = self._readout()
        readout_synapses, *readout_back = self.rules.readout_synapses(self, layers[-1], readout)
        monitors = self._monitors(layers)
        backward += feedback_back + readout_back
        network = Network(
            stimulus,
            *layers,
            input_synapses,
            *forward,
            feedback,
            readout,
            softmax_sum,
            readout_synapses,
            *backward,
            *monitors.values(),
            name=self.rules.network_name,
        )
        return TrainingObjects(
            network=network,
            sample_inputs=tables["sample_inputs"],
            sample_labels=tables["sample_labels"],
            learning_rates=tables["learning_rates"],
            real_samples=tables["real_samples"],
            apply_updates=tables.get("apply_updates"),
            stimulus=stimulus,
            layers=layers,
            readout=readout,
            input_synapses=input_synapses,
            forward_synapses=forward,
            feedback_synapses=feedback,
            readout_synapses=readout_synapses,
            monitors=monitors,
            backward_synapses=backward,
        )
