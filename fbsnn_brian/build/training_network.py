"""The Brian2 objects of SPIDE training on runtime, cpp_standalone and cuda_standalone.

:class:`TrainingNetwork` defines the network that
:class:`~fbsnn_brian.build.training.TrainingSimulation` runs, part by part: the input path,
the layers (forward neuron and ternary error unit in one group), the loop synapses that carry
forward spikes and error events through one weight, and the readout. The neuron equations
come from :mod:`fbsnn_brian.build.neurons` and every update term from
:mod:`fbsnn_brian.build.plasticity`; the brian2genn restatement
(:mod:`fbsnn_brian.build.devices.genn_training_network`) takes them from the same places.

Each forward layer group carries, per neuron, the forward membrane ``v`` and the error-unit
membrane ``u_err`` (``e`` of ALGORITHM.md; ``e`` is a constant in Brian2). Forward spikes are the
``spike`` event; the ternary error unit emits the custom events ``error_up`` (+delta) and
``error_down`` (-delta). One Synapses object per weight matrix carries the weight once: its
``on_pre`` pathway delivers forward spikes (``v_post += w``) and its two ``on_post`` pathways
deliver the post unit's error events backward through the same weight
(``u_err_pre += w delta / theta``; a unit whose forward partner has gate m = 0 emits no
events, which is the ``m_post`` factor of the rule), so the forward and backward copies of a
weight are one variable and cannot drift apart. Per-synapse updates read only the presynaptic
free-phase rate and the postsynaptic error rate and gate: the locality of SPIDE.

With current input coding, each input neuron with ``x > 0`` emits one onset event at the first
step of a sample, before the layers integrate, which adds ``F x`` to layer 1's input current
once per sample. The input path and the readout run on their own coarser clocks (one tick per
sample; one tick at every common multiple of the phase lengths), so the only work done at
every step is the layers' own update and the spikes and error events they emit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import Clock, EventMonitor, Network, NeuronGroup, SpikeMonitor, Synapses, TimedArray
from numpy.typing import NDArray

from fbsnn_brian.build.devices import standalone
from fbsnn_brian.build.free_run import SynapticDelays, all_to_all, matrix_to_synapses
from fbsnn_brian.build.neurons import (
    forward_threshold,
    integration_method,
    membrane_equations,
    neuron_sample_start,
    refractory_argument,
    refractory_start,
    spike_code,
    synaptic_on_pre,
)
from fbsnn_brian.build.plasticity import (
    ERROR_DRIVE,
    ERROR_REFRACTORY,
    bias_gradient,
    error_feedback,
    error_jump,
    error_rate,
    free_rate,
    optimizer_update,
    output_error,
    readout_drive,
    readout_weight_gradient,
    spide_gate,
    spide_namespace,
    weight_gradient,
)
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol

__all__ = ["TrainingNetwork", "TrainingObjects"]

FloatArray = NDArray[np.float64]

_STEP_IN_SAMPLE = "(int(t / dt + 0.5) % sample_steps)"


@dataclass
class TrainingObjects:
    """The Brian2 objects of one defined training network."""

    network: Network
    sample_inputs: TimedArray
    sample_labels: TimedArray
    learning_rates: TimedArray
    real_samples: TimedArray
    apply_updates: TimedArray
    stimulus: NeuronGroup
    layers: list[NeuronGroup]
    readout: NeuronGroup
    input_synapses: Synapses
    forward_synapses: list[Synapses]
    feedback_synapses: Synapses
    readout_synapses: Synapses
    monitors: dict[str, Any] | None = None


class TrainingNetwork:
    """Defines the training network of one chunk, part by part (see the module docstring).

    Parameters
    ----------
    network : FeedbackNetwork
        Its current weights are the starting values.
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity.
    free_steps, sample_steps : int
        Steps of the free phase and of one sample (both phases).
    record : bool
        Add spike and error-event monitors on every layer.
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        free_steps: int,
        sample_steps: int,
        record: bool = False,
    ) -> None:
        assert protocol.plasticity is not None
        self.net = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.free_steps = free_steps
        self.sample_steps = sample_steps
        self.sample_duration = sample_steps * network.dt
        self.record = record
        self.transport = self.plasticity.feedback == "transpose"
        self.back = "w" if self.transport else "w_back"
        # fixed random backward weights, drawn in the order the synapses are defined
        self._feedback_rng = np.random.default_rng(network.seed + 1)
        self.namespace: dict[str, Any] = {}
        # One explicitly named clock for everything done once per sample: every object of the
        # build has a fixed name, so a second build of the same configuration in the same
        # process generates the same code and finds its compiled binary in the build cache.
        self.clock: Any = None
        self.sample_clock: Any = None
        self.readout_clock: Any = None
        self.every_sample: dict[str, Any] = {}

    # ------------------------------------------------------------------ parts
    def _update(self, variable: str, gradient: str) -> str:
        return optimizer_update(
            variable,
            gradient,
            batch_size=self.plasticity.batch_size,
            momentum=self.plasticity.momentum,
        )

    def _random_feedback(self, weights: FloatArray) -> FloatArray:
        # fixed random backward weights with the forward matrix's shape and spread
        return self._feedback_rng.standard_normal(weights.shape) * float(np.std(weights))

    def _stimulus(self) -> NeuronGroup:
        # The input path runs once per sample: the stimulus group and its synapses tick on a
        # clock of one sample's length, so nothing of it is evaluated at the other steps.
        stimulus = NeuronGroup(
            self.net.n_inputs,
            "x : 1",
            threshold="x > 0",  # a zero input adds nothing: no event, no synaptic work
            reset="",
            clock=self.sample_clock,
            namespace=self.namespace,
            name="stimulus",
        )
        stimulus.thresholder["spike"].when = "before_groups"
        stimulus.run_regularly("x = sample_inputs(t, i)", order=-5, name="stimulus_load")
        return stimulus

    def _layer_model(self, *, first: bool, last: bool) -> str:
        net = self.net
        drive = "(I_input + b)" if first else "b"
        model = membrane_equations(neuron=net.neuron, drive=drive, biophysics=net.biophysics)
        model += f"""
        b : 1
        spike_count : 1
        error_count : 1
        t_last_spike : second
        t_last_error : second
        spikes_total : 1
        events_total : 1
        b_velocity : 1
        b_accum : 1
        weighted_count : 1
        rate = {free_rate("weighted_count")} : 1
        gate = {spide_gate("spike_count")} : 1
        beta = {error_rate("error_count")} : 1
        in_backward : 1
        """
        if first:
            model += "I_input : 1\n"
        if last:
            model += f"du_err/dt = in_backward * {ERROR_DRIVE} : 1\ng : 1\n"
        else:
            model += "u_err : 1\n"
        return model

    def _layer(self, k: int) -> NeuronGroup:
        net = self.net
        first, last = k == 0, k == net.n_layers - 1
        # weight of a spike in the rate estimate (FeedbackNetwork.rate_estimate)
        spike_weight = (
            "1"
            if net.rate_estimate == "average"
            else f"exp(-(free_steps - {_STEP_IN_SAMPLE}) * dt / tau_m)"
        )
        # an error unit is silent while its forward partner's gate m is 0: its events
        # would be multiplied by m on every synapse anyway, so this changes no update and
        # saves the synaptic work (and the backward pathway need not read m_post)
        error_allowed = f"in_backward > 0.5 and gate > 0.5 and {ERROR_REFRACTORY}"
        group = NeuronGroup(
            net.layer_sizes[k],
            self._layer_model(first=first, last=last),
            threshold=" and ".join([*forward_threshold(net.neuron), "in_backward < 0.5"]),
            reset=(
                f"{spike_code(net.neuron, net.biophysics)}\nt_last_spike = t\nspike_count += 1\n"
                f"weighted_count += {spike_weight}\n"
                "spikes_total += real_samples(t)"
            ),
            refractory=refractory_argument(net.biophysics, net.refractory),
            events={
                "error_up": f"u_err >= v_b and {error_allowed}",
                "error_down": f"u_err <= -v_b and {error_allowed}",
            },
            # ideal network: the neuron model's exact method (u_err has a constant
            # derivative, which Euler and exponential Euler integrate exactly)
            method=integration_method(net.neuron, net.biophysics),
            clock=self.clock,
            namespace=self.namespace,
            name=f"layer_{k + 1}",
        )
        counted = "t_last_error = t\nevents_total += real_samples(t)"
        group.run_on_event("error_up", f"u_err -= delta\nerror_count += 1\n{counted}")
        group.run_on_event("error_down", f"u_err += delta\nerror_count -= 1\n{counted}")
        group.run_regularly(
            self._update("b", bias_gradient("gate", "beta")),
            order=-10,
            name=f"layer_{k + 1}_plasticity",
            **self.every_sample,
        )
        start = [
            *neuron_sample_start(net.neuron, net.biophysics),
            "u_err = 0\nspike_count = 0\nweighted_count = 0\nerror_count = 0",
            "t_last_spike = t - refractory\nt_last_error = t - tau",
        ]
        if first:
            start.append("I_input = 0")
        reset = "\n".join(start) + refractory_start(net.biophysics)
        group.run_regularly(
            reset, order=-5, name=f"layer_{k + 1}_sample_start", **self.every_sample
        )
        # a stored flag, not a function of t: the LIF layers integrate exactly
        group.run_regularly(
            f"in_backward = int({_STEP_IN_SAMPLE} >= free_steps)",
            clock=self.readout_clock,
            when="start",
            order=-20,
            name=f"layer_{k + 1}_phase",
        )
        group.b = net.biases[k]
        group.t_last_spike = -net.refractory
        group.t_last_error = -net.tau
        return group

    def _input_synapses(self, stimulus: NeuronGroup, first: NeuronGroup) -> Synapses:
        net = self.net
        input_synapses = Synapses(
            stimulus,
            first,
            "w : 1\nw_velocity : 1\nw_accum : 1",
            on_pre="I_input_post += w * x_pre",
            clock=self.sample_clock,
            namespace=self.namespace,
            name="input_synapses",
        )
        input_synapses.pre.when = "before_groups"
        input_synapses.pre.order = 1
        pre, post = all_to_all(net.n_inputs, net.layer_sizes[0])
        input_synapses.connect(i=pre, j=post)
        input_synapses.w = matrix_to_synapses(net.input_weights)
        input_synapses.run_regularly(
            self._update("w", weight_gradient("gate_post", "beta_post", "x_pre")),
            order=-10,
            name="input_synapses_plasticity",
            **self.every_sample,
        )
        return input_synapses

    def _loop_synapses(
        self,
        source: NeuronGroup,
        target: NeuronGroup,
        weights: FloatArray,
        name: str,
        pre_layer: int,
        delays: SynapticDelays,
        *,
        learned: bool = True,
    ) -> Synapses:
        net = self.net
        pathways = ["forward", "backward_up", "backward_down"]
        dale = net.biophysics.excitatory_fraction is not None
        synapses = Synapses(
            source,
            target,
            "w : 1\nw_velocity : 1\nw_accum : 1"
            + ("" if self.transport else "\nw_back : 1 (constant)")
            + ("\nw_sign : 1 (constant)" if dale else ""),
            on_pre={"forward": synaptic_on_pre(net.biophysics)},
            on_post={
                "backward_up": f"u_err_pre += {error_jump(self.back)}",
                "backward_down": f"u_err_pre -= {error_jump(self.back)}",
            },
            on_event={
                "forward": "spike",
                "backward_up": "error_up",
                "backward_down": "error_down",
            },
            delay=delays.homogeneous(pathways),
            clock=self.clock,
            namespace=self.namespace,
            name=name,
        )
        pre, post = all_to_all(len(source), len(target))
        synapses.connect(i=pre, j=post)
        synapses.w = matrix_to_synapses(weights)
        delays.set_heterogeneous(synapses, pathways)
        if not self.transport:
            synapses.w_back = matrix_to_synapses(self._random_feedback(weights))
        if not learned:  # SPIDEPlasticity(learn_feedback=False): the weights stay as they are
            return synapses
        update = self._update("w", weight_gradient("gate_post", "beta_post", "rate_pre"))
        if dale:
            # projected gradient descent: a weight that would change sign stops at zero
            synapses.w_sign = net.presynaptic_signs(pre_layer)[pre]
            update += "\nw = w_sign * clip(w_sign * w, 0, inf)"
        synapses.run_regularly(update, order=-10, name=f"{name}_plasticity", **self.every_sample)
        return synapses

    def _readout(self) -> NeuronGroup:
        net = self.net
        # The readout is needed only once the free phase is over; its clock ticks at every
        # common multiple of the two phase lengths, so the free/perturbed boundary is a tick.
        readout = NeuronGroup(
            net.n_classes,
            """
            o : 1
            d : 1
            d_velocity : 1
            d_accum : 1
            label : 1
            partition : 1
            output_error : 1
            """,
            clock=self.readout_clock,
            namespace=self.namespace,
            name="readout",
        )
        readout.d = net.readout_bias
        readout.partition = float(net.n_classes)  # valid softmax before the first summation
        # stored once per readout tick (not a subexpression, which every synapse of the g
        # summation would re-evaluate, exp included)
        readout.run_regularly(
            f"output_error = {output_error(self.plasticity.loss)}",
            when="groups",
            order=-28,
            name="readout_error",
        )
        readout.run_regularly(
            self._update("d", "output_error"),
            order=-9,
            name="readout_plasticity",
            **self.every_sample,
        )
        readout.run_regularly(
            "label = sample_labels(t, i)", order=-5, name="readout_load", **self.every_sample
        )
        return readout

    def _softmax_sum(self, readout: NeuronGroup) -> Synapses:
        # softmax denominator: every readout unit sums exp(o + d) over all of them
        normaliser_synapses = Synapses(
            readout,
            readout,
            "partition_post = exp(o_pre + d_pre) : 1 (summed)",
            clock=self.readout_clock,
            name="softmax_sum",
        )
        normaliser_synapses.connect()
        normaliser_synapses.summed_updaters["partition_post"].order = -29
        return normaliser_synapses

    def _readout_synapses(self, last: NeuronGroup, readout: NeuronGroup) -> Synapses:
        net = self.net
        readout_synapses = Synapses(
            last,
            readout,
            f"""
            w : 1
            w_velocity : 1
            w_accum : 1
            {"" if self.transport else "w_back : 1 (constant)"}
            o_post = {readout_drive("w", "rate_pre")} : 1 (summed)
            g_pre = {error_feedback(self.back, "output_error_post")} : 1 (summed)
            """,
            clock=self.readout_clock,
            namespace=self.namespace,
            name="readout_synapses",
        )
        pre, post = all_to_all(net.layer_sizes[-1], net.n_classes)
        readout_synapses.connect(i=pre, j=post)
        # o, the softmax denominator, the output error, then g, all before the layers integrate
        readout_synapses.summed_updaters["o_post"].order = -30
        error_sum = readout_synapses.summed_updaters["g_pre"]
        error_sum.order = -27
        # Brian2 runs a summed variable on its target's clock (here every step); g changes
        # only with the readout, so it is summed on the readout's clock instead.
        error_sum._clock = self.readout_clock
        readout_synapses.w = matrix_to_synapses(net.readout_weights)
        if not self.transport:
            readout_synapses.w_back = matrix_to_synapses(self._random_feedback(net.readout_weights))
        readout_synapses.run_regularly(
            self._update("w", readout_weight_gradient("output_error_post", "rate_pre")),
            order=-10,
            name="readout_synapses_plasticity",
            **self.every_sample,
        )
        return readout_synapses

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
            "free_tau": float(self.protocol.free_phase.duration / net.tau),
            "momentum": self.plasticity.momentum,
            "batch_size": self.plasticity.batch_size,
            **tables,
        }
        self.clock = standalone.step_clock(net.dt)
        self.sample_clock = Clock(dt=self.sample_duration, name="sample_clock")
        self.every_sample = {"clock": self.sample_clock, "when": "start"}
        # The phase flag and the readout change only at phase boundaries; this clock ticks at
        # every common multiple of the two phase lengths, so both boundaries are ticks.
        readout_steps = math.gcd(self.free_steps, self.sample_steps)
        self.readout_clock = Clock(dt=readout_steps * net.dt, name="readout_clock")

        stimulus = self._stimulus()
        layers = [self._layer(k) for k in range(net.n_layers)]
        input_synapses = self._input_synapses(stimulus, layers[0])
        delays = SynapticDelays(net)
        forward = [
            self._loop_synapses(layers[k], layers[k + 1], weights, f"forward_{k + 1}", k, delays)
            for k, weights in enumerate(net.forward_weights)
        ]
        feedback = self._loop_synapses(
            layers[-1],
            layers[0],
            net.feedback_weights,
            "feedback",
            net.n_layers - 1,
            delays,
            learned=self.plasticity.learn_feedback,
        )
        readout = self._readout()
        normaliser_synapses = self._softmax_sum(readout)
        readout_synapses = self._readout_synapses(layers[-1], readout)
        monitors = self._monitors(layers)
        network = Network(
            stimulus,
            *layers,
            input_synapses,
            *forward,
            feedback,
            readout,
            normaliser_synapses,
            readout_synapses,
            *monitors.values(),
            name="spide_training",
        )
        return TrainingObjects(
            network=network,
            sample_inputs=tables["sample_inputs"],
            sample_labels=tables["sample_labels"],
            learning_rates=tables["learning_rates"],
            real_samples=tables["real_samples"],
            apply_updates=tables["apply_updates"],
            stimulus=stimulus,
            layers=layers,
            readout=readout,
            input_synapses=input_synapses,
            forward_synapses=forward,
            feedback_synapses=feedback,
            readout_synapses=readout_synapses,
            monitors=monitors,
        )
