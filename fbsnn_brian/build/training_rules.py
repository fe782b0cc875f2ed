"""How Brian2's own devices realise the constructs of the training network that devices differ in.

The training network (:class:`~fbsnn_brian.build.training_network.TrainingNetwork`) is defined
once; :class:`TrainingRules` realises the constructs whose expression depends on the device,
as runtime, cpp_standalone and cuda_standalone accept them. brian2genn's realisations are
:class:`~fbsnn_brian.build.devices.genn_training_network.GeNNTrainingRules`, which overrides
these methods and names the brian2genn rule behind each. The constructs:

* **how a layer's neurons emit their three kinds of events** (:meth:`TrainingRules.layer_events`,
  :meth:`TrainingRules.layer_state`, :meth:`TrainingRules.error_unit`): forward spikes are the
  ``spike`` event, which fires only in the free phase; the ternary error unit emits the custom
  events ``error_up`` (+delta) and ``error_down`` (-delta) in the perturbed phase. A unit whose
  forward partner has gate m = 0 stays silent: its events would be multiplied by m on every
  synapse anyway, so this changes no update and saves the synaptic work;
* **when the parameters change** (:meth:`TrainingRules.layer_operations` and the plasticity of
  every synapse): at the next sample start, by a ``run_regularly`` operation on a clock that
  ticks once per sample, reading the counts of the sample just finished;
* **the backward path** (:meth:`TrainingRules.loop_synapses`): one Synapses object per weight
  matrix carries the weight once; its ``on_pre`` pathway delivers forward spikes
  (``v_post += w``) and its two ``on_post`` pathways deliver the post unit's error events
  backward through the same weight (``u_err_pre += w delta / theta``);
* **the input path** (:meth:`TrainingRules.stimulus`, :meth:`TrainingRules.input_synapses`):
  with current input coding, each input neuron with ``x > 0`` emits one onset event at the
  first step of a sample, before the layers integrate, which adds ``F x`` to layer 1's input
  current once per sample; the stimulus and its synapses tick on a clock one sample long;
* **the readout** (:meth:`TrainingRules.readout_operations`,
  :meth:`TrainingRules.readout_synapses`): on a
  coarser clock that ticks at every common multiple of the phase lengths, so the free /
  perturbed boundary is a tick; the readout's score, the softmax, the output error and the
  last layer's error drive ``g`` are summed variables there.

So the only work done at every step is the layers' own update and the spikes and error
events they emit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from brian2 import NeuronGroup, Synapses
from numpy.typing import NDArray

from fbsnn_brian.build.device_rules import DeviceRules
from fbsnn_brian.build.free_phase_network import SynapticDelays, matrix_to_synapses
from fbsnn_brian.build.neurons import (
    forward_threshold,
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
    output_error,
    readout_drive,
    readout_weight_gradient,
    spide_gate,
    weight_gradient,
)

if TYPE_CHECKING:
    from fbsnn_brian.build.training_network import TrainingNetwork

__all__ = ["STEP_IN_SAMPLE", "LayerEvents", "TrainingRules"]

FloatArray = NDArray[np.float64]

#: The step within the sample (Brian2's devices; brian2genn's ``int()`` takes a bool only).
STEP_IN_SAMPLE = "(int(t / dt + 0.5) % sample_steps)"


@dataclass
class LayerEvents:
    """How a layer group emits its events: the NeuronGroup arguments a device chooses."""

    threshold: str
    reset: str
    refractory: Any
    events: dict[str, str] | None


class TrainingRules(DeviceRules):
    """The training network's device-dependent constructs, as Brian2's devices realise them."""

    #: The Brian2 name of the whole network.
    network_name = "spide_training"

    # ------------------------------------------------------------------ constants
    def namespace(self, definition: TrainingNetwork) -> dict[str, Any]:
        """Constants the realisations below use, besides the shared SPIDE constants."""
        return {
            "free_tau": float(definition.protocol.free_phase.duration / definition.net.tau),
            "momentum": definition.plasticity.momentum,
            "batch_size": definition.plasticity.batch_size,
        }

    # ------------------------------------------------------------------ layers
    def layer_state(self, definition: TrainingNetwork) -> str:
        """Per-neuron state besides the shared state: optimizer sums, rate, gate, phase flag."""
        return f"""
        b_velocity : 1
        b_accum : 1
        weighted_count : 1
        rate = {free_rate("weighted_count")} : 1
        gate = {spide_gate("spike_count")} : 1
        beta = {error_rate("error_count")} : 1
        in_backward : 1
        """

    def error_unit(self, definition: TrainingNetwork, *, last: bool) -> str:
        """The error unit's membrane: the last layer's integrates the output error drive g."""
        if last:
            return f"du_err/dt = in_backward * {ERROR_DRIVE} : 1\ng : 1\n"
        return "u_err : 1\n"

    def layer_events(self, definition: TrainingNetwork, k: int) -> LayerEvents:
        """Forward spikes in the free phase; the custom events error_up / error_down."""
        net = definition.net
        # weight of a spike in the rate estimate (FeedbackNetwork.rate_estimate)
        spike_weight = (
            "1"
            if net.rate_estimate == "average"
            else f"exp(-(free_steps - {STEP_IN_SAMPLE}) * dt / tau_m)"
        )
        error_allowed = f"in_backward > 0.5 and gate > 0.5 and {ERROR_REFRACTORY}"
        return LayerEvents(
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
        )

    def layer_operations(self, definition: TrainingNetwork, k: int, group: NeuronGroup) -> None:
        """The error events' effects, the bias update and the phase flag of layer ``k``."""
        counted = "t_last_error = t\nevents_total += real_samples(t)"
        group.run_on_event("error_up", f"u_err -= delta\nerror_count += 1\n{counted}")
        group.run_on_event("error_down", f"u_err += delta\nerror_count -= 1\n{counted}")
        group.run_regularly(
            definition.update("b", bias_gradient("gate", "beta")),
            order=-10,
            name=f"layer_{k + 1}_plasticity",
            **definition.every_sample(),
        )
        # a stored flag, not a function of t: the LIF layers integrate exactly
        group.run_regularly(
            f"in_backward = int({STEP_IN_SAMPLE} >= free_steps)",
            clock=definition.readout_clock,
            when="start",
            order=-20,
            name=f"layer_{k + 1}_phase",
        )
        group.b = definition.net.biases[k]

    def layer_sample_start(self, definition: TrainingNetwork) -> list[str]:
        """Sample-start code besides the shared resets: the weighted spike count."""
        return ["weighted_count = 0"]

    def sample_start_suffix(self, definition: TrainingNetwork) -> str:
        """Code after a layer's sample start: end a clamp carried over from the last sample."""
        return refractory_start(definition.net.biophysics)

    # ------------------------------------------------------------------ input path
    def stimulus(self, definition: TrainingNetwork) -> NeuronGroup:
        """The input group: an onset event per nonzero input, once per sample."""
        stimulus = NeuronGroup(
            definition.net.n_inputs,
            "x : 1",
            threshold="x > 0",  # a zero input adds nothing: no event, no synaptic work
            reset="",
            clock=definition.sample_clock,
            namespace=definition.namespace,
            name="stimulus",
        )
        stimulus.thresholder["spike"].when = "before_groups"
        stimulus.run_regularly("x = sample_inputs(t, i)", order=-5, name="stimulus_load")
        return stimulus

    def input_synapses(
        self, definition: TrainingNetwork, stimulus: NeuronGroup, first: NeuronGroup
    ) -> Synapses:
        """The input weights F: the onset event adds ``w x`` to layer 1's input current."""
        input_synapses = Synapses(
            stimulus,
            first,
            "w : 1\nw_velocity : 1\nw_accum : 1",
            on_pre="I_input_post += w * x_pre",
            clock=definition.sample_clock,
            namespace=definition.namespace,
            name="input_synapses",
        )
        input_synapses.pre.when = "before_groups"
        input_synapses.pre.order = 1
        definition.connect_all(input_synapses)
        input_synapses.w = matrix_to_synapses(definition.net.input_weights)
        input_synapses.run_regularly(
            definition.update("w", weight_gradient("gate_post", "beta_post", "x_pre")),
            order=-10,
            name="input_synapses_plasticity",
            **definition.every_sample(),
        )
        return input_synapses

    # ------------------------------------------------------------------ loop synapses
    def loop_synapses(
        self,
        definition: TrainingNetwork,
        source: NeuronGroup,
        target: NeuronGroup,
        weights: FloatArray,
        name: str,
        pre_layer: int,
        delays: SynapticDelays,
        *,
        learned: bool = True,
    ) -> list[Synapses]:
        """One Synapses object per weight matrix, forward and backward (module docstring)."""
        net = definition.net
        back = definition.back
        pathways = ["forward", "backward_up", "backward_down"]
        dale = net.biophysics.excitatory_fraction is not None
        synapses = Synapses(
            source,
            target,
            "w : 1\nw_velocity : 1\nw_accum : 1"
            + ("" if definition.transport else "\nw_back : 1 (constant)")
            + ("\nw_sign : 1 (constant)" if dale else ""),
            on_pre={"forward": synaptic_on_pre(net.biophysics)},
            on_post={
                "backward_up": f"u_err_pre += {error_jump(back)}",
                "backward_down": f"u_err_pre -= {error_jump(back)}",
            },
            on_event={
                "forward": "spike",
                "backward_up": "error_up",
                "backward_down": "error_down",
            },
            delay=delays.homogeneous(pathways),
            clock=definition.clock,
            namespace=definition.namespace,
            name=name,
        )
        pre = definition.connect_all(synapses)
        synapses.w = matrix_to_synapses(weights)
        delays.set_heterogeneous(synapses, pathways)
        back_weights = definition.random_feedback(weights)
        if back_weights is not None:
            synapses.w_back = matrix_to_synapses(back_weights)
        if not learned:  # SPIDEPlasticity(learn_feedback=False): the weights stay as they are
            return [synapses]
        update = definition.update("w", weight_gradient("gate_post", "beta_post", "rate_pre"))
        if dale:
            # projected gradient descent: a weight that would change sign stops at zero
            synapses.w_sign = net.presynaptic_signs(pre_layer)[pre]
            update += "\nw = w_sign * clip(w_sign * w, 0, inf)"
        synapses.run_regularly(
            update, order=-10, name=f"{name}_plasticity", **definition.every_sample()
        )
        return [synapses]

    # ------------------------------------------------------------------ readout
    #: The order of the softmax sum: after the score ``o``, before the output error.
    softmax_order = -29

    def readout_events(self, definition: TrainingNetwork) -> LayerEvents | None:
        """The readout's threshold and reset: none (it is not a spiking group here)."""
        return None

    def readout_state(self, definition: TrainingNetwork) -> str:
        """The readout's state besides score, bias, label and softmax denominator."""
        return "d_velocity : 1\nd_accum : 1\noutput_error : 1\n"

    def readout_operations(self, definition: TrainingNetwork, readout: NeuronGroup) -> None:
        """The output error, stored once per readout tick, and the readout bias's update."""
        readout.d = definition.net.readout_bias
        # stored once per readout tick (not a subexpression, which every synapse of the g
        # summation would re-evaluate, exp included)
        readout.run_regularly(
            f"output_error = {output_error(definition.plasticity.loss)}",
            when="groups",
            order=-28,
            name="readout_error",
        )
        readout.run_regularly(
            definition.update("d", "output_error"),
            order=-9,
            name="readout_plasticity",
            **definition.every_sample(),
        )

    def readout_sample_start(self, definition: TrainingNetwork) -> list[str]:
        """Readout code at a sample start besides loading the label: none."""
        return []

    def readout_synapses(
        self, definition: TrainingNetwork, last: NeuronGroup, readout: NeuronGroup
    ) -> list[Synapses]:
        """The readout weights: the score ``o`` forward and the error drive ``g`` backward."""
        net = definition.net
        readout_synapses = Synapses(
            last,
            readout,
            f"""
            w : 1
            w_velocity : 1
            w_accum : 1
            {"" if definition.transport else "w_back : 1 (constant)"}
            o_post = {readout_drive("w", "rate_pre")} : 1 (summed)
            g_pre = {error_feedback(definition.back, "output_error_post")} : 1 (summed)
            """,
            clock=definition.readout_clock,
            namespace=definition.namespace,
            name="readout_synapses",
        )
        definition.connect_all(readout_synapses)
        # o, the softmax denominator, the output error, then g, all before the layers integrate
        readout_synapses.summed_updaters["o_post"].order = -30
        error_sum = readout_synapses.summed_updaters["g_pre"]
        error_sum.order = -27
        # Brian2 runs a summed variable on its target's clock (here every step); g changes
        # only with the readout, so it is summed on the readout's clock instead.
        error_sum._clock = definition.readout_clock
        readout_synapses.w = matrix_to_synapses(net.readout_weights)
        back_weights = definition.random_feedback(net.readout_weights)
        if back_weights is not None:
            readout_synapses.w_back = matrix_to_synapses(back_weights)
        readout_synapses.run_regularly(
            definition.update("w", readout_weight_gradient("output_error_post", "rate_pre")),
            order=-10,
            name="readout_synapses_plasticity",
            **definition.every_sample(),
        )
        return [readout_synapses]
