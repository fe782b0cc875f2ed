"""brian2genn's realisation of the training network's device-dependent constructs.

The training network is defined once, by
:class:`~fbsnn_brian.build.training_network.TrainingNetwork`: its parts, names, the state every
layer keeps, the sample-start resets, the connectivity, the fixed random backward weights and
the constants. :class:`GeNNTrainingRules` overrides only the constructs of
:class:`~fbsnn_brian.build.training_rules.TrainingRules` that brian2genn 1.7 cannot express as
Brian2's devices do (besides those of
:class:`~fbsnn_brian.build.devices.genn_rules.GeNNRules`: one clock, named operations, the forced
schedule, ``int()`` of a bool), and each override names the rule. It writes no equation of its
own: the neuron equations, threshold, spike reset and namespace come from
:mod:`fbsnn_brian.build.neurons`, and every update term, the error units' drive and jumps and the
output error from :mod:`fbsnn_brian.build.plasticity`. The sample layout and the reasons for it
are in :mod:`fbsnn_brian.build.devices.genn_training`. The adaptations:

* **one event per group** (no custom events): a layer's ``spike`` is a forward spike in the free
  phase, an error event in the perturbed phase and the update spike after it, so threshold
  and reset are sums of 0/1 phase flags (:data:`FREE`, :data:`ERROR`, :data:`UPDATE`)
  (:meth:`GeNNTrainingRules.layer_events`);
* **parameters change on the update spike**: no ``run_regularly`` may run the plasticity at a
  sample start with its own reads of the tables, so every update is applied by the update
  spike, in the reset of a group and in the pathways of its synapses;
* **``on_pre`` may not read presynaptic variables and ``on_post`` may not write postsynaptic
  ones**: synapses count the spikes that cross them (``count``) instead of reading the
  presynaptic rate, the input ``x`` is a synaptic copy, and the error events travel through a
  second, transposed Synapses object per weight matrix, as one summed variable
  (:meth:`GeNNTrainingRules.loop_synapses`);
* **one summed variable per Synapses, onto its postsynaptic group**: the readout's score and
  the last layer's error drive are two Synapses (``readout_synapses``, ``readout_back``)
  (:meth:`GeNNTrainingRules.readout_synapses`);
* **TimedArrays only inside run_regularly**: the learning rate and the real-sample flag are
  per-neuron copies (``lr``, ``real``) loaded at the sample start;
* **brian2genn's schedule delivers a spike of step n at step n + 1**: the delivery flags
  (:data:`FREE_DELIVERY`, :data:`UPDATE_DELIVERY`) are those of the emission shifted by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from brian2 import NeuronGroup, Synapses
from numpy.typing import NDArray

from fbsnn_brian.build.devices.genn_rules import GeNNRules, sample_position
from fbsnn_brian.build.free_phase_network import (
    SynapticDelays,
    free_phase_arrays,
    matrix_to_synapses,
)
from fbsnn_brian.build.neurons import forward_threshold, spike_code, synaptic_on_pre
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
    sgd_step,
    spide_gate,
    weight_gradient,
)
from fbsnn_brian.build.training_rules import LayerEvents, TrainingRules
from fbsnn_brian.model.network import FeedbackNetwork

if TYPE_CHECKING:
    from fbsnn_brian.build.training_network import TrainingNetwork

__all__ = ["GeNNTrainingRules", "learned_arrays"]

FloatArray = NDArray[np.float64]

#: Position within the sample, ``n % sample_steps + 1/2`` at step n (half a unit away from
#: every integer it is compared with; no int() around it: brian2genn's int() takes a bool).
STEP = sample_position()


def during(first: str, last: str, step: str = STEP) -> str:
    """1 at the steps ``first .. last`` of a sample (inclusive), else 0."""
    return f"int({step} > {first}) * int({step} < {last} + 1)"


#: Flags, in the code of neurons (evaluated at the step itself).
FREE = during("0", "free_steps - 1")
ERROR = during("window_start", "window_start + backward_steps - 1")
UPDATE = during("update_step", "update_step")
LAST = during("sample_steps - 1", "sample_steps - 1")
#: Flags, in ``on_pre`` / ``on_post`` code: a spike of step n is delivered at step n + 1.
FREE_DELIVERY = during("1", "free_steps")
UPDATE_DELIVERY = during("update_step + 1", "update_step + 1")
DRIVE_DELIVERY = during("0", "0")
#: In summed variables (GeNN synapse dynamics, which have no ``dt``: the same step is
#: ``step_dt``, a constant).
ERROR_SUMMED = during(
    "window_start", "window_start + backward_steps - 1", "((t / step_dt + 0.5) % sample_steps)"
)


def learned_arrays(network: FeedbackNetwork, *, transpose: bool) -> dict[str, FloatArray]:
    """The network's learned parameters as the build stores them, by ``object.variable``.

    Those of the free phase (:func:`~fbsnn_brian.build.free_phase_network.free_phase_arrays`),
    the readout, and with transposed feedback (``transpose``) every ``*_back.w_back``, the
    transpose of its forward matrix.
    """
    arrays = free_phase_arrays(network)
    arrays["readout_synapses.w"] = matrix_to_synapses(network.readout_weights)
    arrays["readout.d"] = np.asarray(network.readout_bias, dtype=np.float64)
    if transpose:
        matrices = [(f"forward_{k + 1}", w) for k, w in enumerate(network.forward_weights)]
        matrices += [("feedback", network.feedback_weights), ("readout", network.readout_weights)]
        for name, weights in matrices:
            arrays[f"{name}_back.w_back"] = matrix_to_synapses(np.ascontiguousarray(weights.T))
    return arrays


class GeNNTrainingRules(GeNNRules, TrainingRules):
    """The training network's constructs as brian2genn 1.7 can express them (module docstring).

    Parameters
    ----------
    layout : dict of str to int
        The sample layout of :class:`~fbsnn_brian.build.devices.genn_training.GeNNTraining`:
        ``free_steps``, ``backward_steps``, ``window_start``, ``update_step``,
        ``sample_steps``.
    """

    network_name = "spide_training_genn"

    def __init__(self, layout: dict[str, int]) -> None:
        self.layout = dict(layout)

    def namespace(self, definition: TrainingNetwork) -> dict[str, Any]:
        """The sample layout, and the step as a constant for the synapse dynamics."""
        return {"step_dt": definition.net.dt, **self.layout}

    # ------------------------------------------------------------------ layers
    def layer_state(self, definition: TrainingNetwork) -> str:
        """The error events' summed current and the per-neuron copies of the tables.

        No custom events and no presynaptic reads in ``on_pre``, so the error events arrive
        as a summed current ``I_err`` (one step long); TimedArrays only inside
        ``run_regularly``, so the learning rate and the real-sample flag are copies
        (``lr``, ``real``); ``last_sign`` is the sign of the error event of the last step.
        """
        return "I_err : 1\nlr : 1\nlast_sign : 1\nreal : 1\n"

    def error_unit(self, definition: TrainingNetwork, *, last: bool) -> str:
        """The error unit integrates the summed error current (and, last, the drive g)."""
        error_drive = f"{ERROR_DRIVE} + " if last else ""
        return f"du_err/dt = {error_drive}I_err / step_dt : 1\n" + ("g : 1\n" if last else "")

    def layer_events(self, definition: TrainingNetwork, k: int) -> LayerEvents:
        """One event per group: forward spike, error event and update spike in one threshold.

        The reset applies each kind's effect under its phase flag, and the bias's update at
        the update spike.
        """
        net = definition.net
        gate = spide_gate("spike_count")
        forward = " * ".join(f"int({condition})" for condition in forward_threshold(net.neuron))
        threshold = (
            f"({FREE} * {forward}"
            f" + {ERROR} * {gate} * int(abs(u_err) >= v_b)"
            f" * int({ERROR_REFRACTORY}) + {UPDATE}) > 0"
        )
        bias_update = sgd_step(
            "b", f"{UPDATE} * lr", bias_gradient(gate, error_rate("error_count"))
        )
        reset = "\n".join(
            [
                spike_code(net.neuron, net.biophysics, gate=FREE),
                f"spike_count += {FREE}",
                f"spikes_total += real * {FREE}",
                f"t_last_spike += {FREE} * (t - t_last_spike)",
                f"last_sign = {ERROR} * (2 * int(u_err > 0) - 1)",
                "u_err -= last_sign * delta",
                "error_count += last_sign",
                "events_total += real * last_sign * last_sign",
                "t_last_error += last_sign * last_sign * (t - t_last_error)",
                bias_update,
            ]
        )
        # the ideal biophysics only (GeNNTraining refuses the others): no refractory clamp
        return LayerEvents(threshold=threshold, reset=reset, refractory=False, events=None)

    def layer_operations(self, definition: TrainingNetwork, k: int, group: NeuronGroup) -> None:
        """Nothing: the events' effects and the bias update are in the reset (one event)."""

    def layer_sample_start(self, definition: TrainingNetwork) -> list[str]:
        """Reset the last event's sign; copy the tables (TimedArrays only in run_regularly)."""
        return ["last_sign = 0", "lr = learning_rates(t)\nreal = real_samples(t)"]

    # ------------------------------------------------------------------ input path
    def stimulus(self, definition: TrainingNetwork) -> NeuronGroup:
        """Every input neuron fires at the last step of each sample and at the update step.

        The input path is event-driven: the spike of the last step arrives at the first step
        of the next sample, after that sample's input was loaded into the synapses' ``x``, and
        adds ``F x`` to layer 1's ``I_input`` once; the update spike applies the input
        weights' update.
        """
        return NeuronGroup(
            definition.net.n_inputs,
            "spikes_total : 1",
            threshold=f"({UPDATE} + {LAST}) > 0",
            reset="spikes_total += 1",
            namespace=definition.namespace,
            name="stimulus",
        )

    def input_synapses(
        self, definition: TrainingNetwork, stimulus: NeuronGroup, first: NeuronGroup
    ) -> Synapses:
        """The input weights, with ``x`` a synaptic copy (on_pre may not read the stimulus)."""
        gradient = weight_gradient(
            spide_gate("spike_count_post"), error_rate("error_count_post"), "x"
        )
        input_synapses = Synapses(
            stimulus,
            first,
            "w : 1\nx : 1",
            on_pre=(
                f"I_input_post += w * x * {DRIVE_DELIVERY}\n"
                + sgd_step("w", f"{UPDATE_DELIVERY} * lr_post", gradient)
            ),
            namespace=definition.namespace,
            name="input_synapses",
        )
        definition.connect_all(input_synapses)
        input_synapses.run_regularly(
            "x = sample_inputs(t, i)",
            order=-2,
            name="input_synapses_run_regularly_load",
            **definition.every_sample(),
        )
        return input_synapses

    # ------------------------------------------------------------------ loop synapses
    @staticmethod
    def _counted_update(weight: str, side: str, gradient: str) -> str:
        """Counting code and SPIDE update of one weight copy (``side``: 'post' or 'pre').

        on_pre may not read presynaptic variables (nor on_post postsynaptic ones), so the
        synapse counts the free-phase spikes that cross it and applies the update when the
        update spike arrives.
        """
        return (
            f"count += {FREE_DELIVERY}\n"
            f"{sgd_step(weight, f'{UPDATE_DELIVERY} * lr_{side}', gradient)}\n"
            f"count *= 1 - {UPDATE_DELIVERY}"
        )

    @staticmethod
    def _loop_gradient(side: str, weight: str) -> str:
        return weight_gradient(
            spide_gate(f"spike_count_{side}"),
            error_rate(f"error_count_{side}"),
            free_rate("count"),
            weight,
        )

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
        """Forward synapses (source -> target) and their transposed copy (target -> source).

        No custom events and one pathway each way, so the signed error events reach the
        membrane as a summed variable of a transposed copy of the weights. The learned
        weights are assigned after the definition (:func:`learned_arrays`); only fixed random
        backward weights (no weight transport) are set here. Every weight is learned
        (GeNNTraining refuses ``learn_feedback=False``) and there are no delays (the ideal
        biophysics).
        """
        back_weights = definition.random_feedback(weights)
        forward = Synapses(
            source,
            target,
            "w : 1\ncount : 1",
            on_pre=synaptic_on_pre(definition.net.biophysics, weight=f"w * {FREE_DELIVERY}")
            + "\n"
            + self._counted_update("w", "post", self._loop_gradient("post", "w")),
            namespace=definition.namespace,
            name=name,
        )
        definition.connect_all(forward)
        jump = error_jump("w_back * last_sign_pre * int(t_last_error_pre > t - 1.5 * step_dt)")
        backward = Synapses(
            target,
            source,
            f"w_back : 1\ncount : 1\nI_err_post = {jump} : 1 (summed)",
            on_post=(
                self._counted_update("w_back", "pre", self._loop_gradient("pre", "w_back"))
                if back_weights is None
                else None
            ),
            namespace=definition.namespace,
            name=f"{name}_back",
        )
        definition.connect_all(backward)
        if back_weights is not None:
            backward.w_back = matrix_to_synapses(np.ascontiguousarray(back_weights.T))
        return [forward, backward]

    # ------------------------------------------------------------------ readout
    #: Brian2's runtime sums every summed variable before the groups update, in order; the
    #: softmax denominator must read the readout of the previous step, as in GeNN.
    softmax_order = -3

    def readout_events(self, definition: TrainingNetwork) -> LayerEvents | None:
        """One event per group: the readout's spike latches the output error and updates d.

        It fires once before the perturbed phase, latching the output error, and at the
        update step, applying the readout bias's update.
        """
        latch = during("window_start - 1", "window_start - 1")
        error = output_error(definition.plasticity.loss)
        return LayerEvents(
            threshold=f"({latch} + {UPDATE}) > 0",
            reset=f"err += {latch} * ({error} - err)\n{sgd_step('d', f'{UPDATE} * lr', 'err')}",
            refractory=False,
            events=None,
        )

    def readout_state(self, definition: TrainingNetwork) -> str:
        """The latched output error, and the learning rate's copy.

        TimedArrays may be read only inside ``run_regularly``, so the learning rate is copied
        at every sample start.
        """
        return "err : 1\nlr : 1\n"

    def readout_operations(self, definition: TrainingNetwork, readout: NeuronGroup) -> None:
        """Nothing: the error latch and the bias update are in the reset (one event)."""

    def readout_sample_start(self, definition: TrainingNetwork) -> list[str]:
        """Copy the learning rate (TimedArrays only inside run_regularly)."""
        return ["lr = learning_rates(t)"]

    def readout_synapses(
        self, definition: TrainingNetwork, last: NeuronGroup, readout: NeuronGroup
    ) -> list[Synapses]:
        """The score ``o`` and, by a transposed copy, the last layer's error drive ``g``.

        One summed variable per Synapses, onto its postsynaptic group.
        """
        net = definition.net
        rate = free_rate("count")
        readout_synapses = Synapses(
            last,
            readout,
            "w : 1\ncount : 1\n"
            f"o_post = {readout_drive('w', 'spike_count_pre / rate_normaliser')} : 1 (summed)",
            on_pre=self._counted_update("w", "post", readout_weight_gradient("err_post", rate)),
            namespace=definition.namespace,
            name="readout_synapses",
        )
        definition.connect_all(readout_synapses)
        readout_synapses.summed_updaters["o_post"].order = -2
        readout_fixed = definition.random_feedback(net.readout_weights)
        feedback = error_feedback("w_back", "err_pre")
        readout_back = Synapses(
            readout,
            last,
            f"w_back : 1\ncount : 1\ng_post = {feedback} * {ERROR_SUMMED} : 1 (summed)",
            on_post=(
                self._counted_update(
                    "w_back", "pre", readout_weight_gradient("err_pre", rate, "w_back")
                )
                if readout_fixed is None
                else None
            ),
            namespace=definition.namespace,
            name="readout_back",
        )
        definition.connect_all(readout_back)
        if readout_fixed is not None:
            readout_back.w_back = matrix_to_synapses(np.ascontiguousarray(readout_fixed.T))
        return [readout_synapses, readout_back]
