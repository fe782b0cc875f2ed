"""The Brian2 objects of SPIDE training restated within brian2genn 1.7's rules.

:class:`GeNNTrainingNetwork` defines the network that
:class:`~fbsnn_brian.build.devices.genn_training.GeNNTraining` runs (the sample layout and the
reasons for it are in that module's docstring). It writes no equation of its own: the neuron
equations, threshold, spike reset and namespace come from :mod:`fbsnn_brian.build.neurons`,
and every update term, the error units' drive and jumps and the output error from
:mod:`fbsnn_brian.build.plasticity`, as for
:class:`~fbsnn_brian.build.training_network.TrainingNetwork`. What differs from that network is
only what brian2genn forbids, and each such place names the rule:

* one event per group (no custom events): a layer's ``spike`` is a forward spike in the free
  phase, an error event in the perturbed phase and the update spike after it, so threshold
  and reset are sums of 0/1 phase flags (:data:`FREE`, :data:`ERROR`, :data:`UPDATE`), and the
  plasticity runs from the update spike instead of a ``run_regularly`` at a sample start;
* ``on_pre`` may not read presynaptic variables and ``on_post`` may not write postsynaptic
  ones: synapses count the spikes that cross them (``count``) instead of reading the
  presynaptic rate, and the error events travel through a second, transposed Synapses object
  per weight matrix, as one summed variable;
* one summed variable per Synapses, onto its postsynaptic group: the readout's score and the
  last layer's error drive are two Synapses (``readout_synapses``, ``readout_back``);
* one clock: only ``run_regularly`` has the sample's own ``dt``; its name must contain
  ``_run_regularly`` or brian2genn drops it silently;
* brian2genn's schedule delivers a spike of step n at step n + 1: the delivery flags
  (:data:`FREE_DELIVERY`, :data:`UPDATE_DELIVERY`) are those of the emission shifted by one;
* ``int()`` in GeNN code takes a bool: it wraps comparisons only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from brian2 import Network, NeuronGroup, Synapses, TimedArray
from numpy.typing import NDArray

from fbsnn_brian.build.devices.genn_device import GENN_SCHEDULE, assign_arrays
from fbsnn_brian.build.free_phase_network import all_to_all, free_phase_arrays, matrix_to_synapses
from fbsnn_brian.build.neurons import (
    forward_threshold,
    integration_method,
    membrane_equations,
    neuron_sample_start,
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
    sgd_step,
    spide_gate,
    spide_namespace,
    weight_gradient,
)
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol

__all__ = ["GeNNTrainingNetwork", "learned_arrays"]

FloatArray = NDArray[np.float64]

#: Position within the sample, ``n % sample_steps + 1/2`` at step n (half a unit away from
#: every integer it is compared with; no int() around it: brian2genn's int() takes a bool).
STEP = "((t / dt + 0.5) % sample_steps)"


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


class GeNNTrainingNetwork:
    """Defines the GeNN training network of one run, part by part (module docstring).

    Parameters
    ----------
    network : FeedbackNetwork
        Its current weights are the starting values.
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity.
    layout : dict of str to int
        The sample layout of :class:`~fbsnn_brian.build.devices.genn_training.GeNNTraining`:
        ``free_steps``, ``backward_steps``, ``window_start``, ``update_step``,
        ``sample_steps``.
    """

    def __init__(
        self, network: FeedbackNetwork, protocol: Protocol, *, layout: dict[str, int]
    ) -> None:
        assert protocol.plasticity is not None
        self.net = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.layout = layout
        self.sample_duration = layout["sample_steps"] * network.dt
        # brian2genn: one clock; only run_regularly may have its own dt
        self.every_sample = {"dt": self.sample_duration, "when": "start"}
        self.namespace: dict[str, Any] = {}
        # fixed random backward weights, drawn in TrainingNetwork's order so that both builds
        # use the same ones
        self._feedback_rng = np.random.default_rng(network.seed + 1)

    def _back_weights(self, weights: FloatArray) -> FloatArray | None:
        if self.plasticity.feedback != "random":
            return None
        return self._feedback_rng.standard_normal(weights.shape) * float(np.std(weights))

    # ------------------------------------------------------------------ layers
    def _layer_model(self, first: bool, last: bool) -> str:
        net = self.net
        drive = "(I_input + b)" if first else "b"
        error_drive = f"{ERROR_DRIVE} + " if last else ""
        model = membrane_equations(neuron=net.neuron, drive=drive, biophysics=net.biophysics)
        # brian2genn: no custom events and no presynaptic reads in on_pre, so the error
        # events arrive as a summed current I_err (one step long) and the phase flags and
        # learning rate are per-neuron copies (lr, real, last_sign)
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
        return model

    def _layer(self, k: int) -> NeuronGroup:
        net = self.net
        first, last = k == 0, k == net.n_layers - 1
        gate = spide_gate("spike_count")
        # brian2genn: one event per group, so the forward spike, the error event and the
        # update spike are one threshold, a sum of phase-flagged conditions
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
        group = NeuronGroup(
            net.layer_sizes[k],
            self._layer_model(first, last),
            threshold=threshold,
            reset=reset,
            method=integration_method(net.neuron, net.biophysics),
            namespace=self.namespace,
            name=f"layer_{k + 1}",
        )
        start = [
            *neuron_sample_start(net.neuron, net.biophysics),
            "u_err = 0\nspike_count = 0\nerror_count = 0\nlast_sign = 0",
            "t_last_spike = t - refractory\nt_last_error = t - tau",
            # brian2genn: TimedArrays only inside run_regularly, so the tables are copied here
            "lr = learning_rates(t)\nreal = real_samples(t)",
        ]
        if first:
            start.append("I_input = 0")
        group.run_regularly(
            "\n".join(start),
            dt=self.sample_duration,
            when="start",
            order=-1,
            name=f"layer_{k + 1}_run_regularly_sample_start",
        )
        group.t_last_spike = -net.refractory
        group.t_last_error = -net.tau
        return group

    # ------------------------------------------------------------------ synapses
    @staticmethod
    def _counted_update(weight: str, side: str, gradient: str) -> str:
        """Counting code and SPIDE update of one weight copy (``side``: 'post' or 'pre').

        brian2genn: on_pre may not read presynaptic variables (nor on_post postsynaptic
        ones), so the synapse counts the free-phase spikes that cross it and applies the
        update when the update spike arrives.
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

    def _loop_pair(
        self, source: NeuronGroup, target: NeuronGroup, weights: FloatArray, name: str
    ) -> tuple[Synapses, Synapses]:
        """Forward synapses (source -> target) and their transposed copy (target -> source).

        The learned weights are assigned later (:func:`learned_arrays`); only fixed random
        backward weights (no weight transport) are set here.
        """
        back_weights = self._back_weights(weights)
        forward = Synapses(
            source,
            target,
            "w : 1\ncount : 1",
            on_pre=synaptic_on_pre(self.net.biophysics, weight=f"w * {FREE_DELIVERY}")
            + "\n"
            + self._counted_update("w", "post", self._loop_gradient("post", "w")),
            namespace=self.namespace,
            name=name,
        )
        pre, post = all_to_all(len(source), len(target))
        forward.connect(i=pre, j=post)
        # brian2genn: no custom events and one pathway each way, so the signed error events
        # reach the membrane as a summed variable of a transposed copy of the weights
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
            namespace=self.namespace,
            name=f"{name}_back",
        )
        pre, post = all_to_all(len(target), len(source))
        backward.connect(i=pre, j=post)
        if back_weights is not None:
            backward.w_back = matrix_to_synapses(np.ascontiguousarray(back_weights.T))
        return forward, backward

    def _stimulus(self) -> NeuronGroup:
        # The input path is event-driven: every input neuron fires at the last step of each
        # sample; the spike arrives at the first step of the next one, after that sample's
        # input was loaded into the synapses' x, and adds F x to layer 1's I_input once.
        # It fires again at the update step, for the input weights' update.
        stimulus = NeuronGroup(
            self.net.n_inputs,
            "spikes_total : 1",
            threshold=f"({UPDATE} + {LAST}) > 0",
            reset="spikes_total += 1",
            namespace=self.namespace,
            name="stimulus",
        )
        return stimulus

    def _input_synapses(self, stimulus: NeuronGroup, first: NeuronGroup) -> Synapses:
        net = self.net
        gradient = weight_gradient(
            spide_gate("spike_count_post"), error_rate("error_count_post"), "x"
        )
        # brian2genn: on_pre may not read presynaptic variables, so x is a synaptic copy
        input_synapses = Synapses(
            stimulus,
            first,
            "w : 1\nx : 1",
            on_pre=(
                f"I_input_post += w * x * {DRIVE_DELIVERY}\n"
                + sgd_step("w", f"{UPDATE_DELIVERY} * lr_post", gradient)
            ),
            namespace=self.namespace,
            name="input_synapses",
        )
        pre, post = all_to_all(net.n_inputs, net.layer_sizes[0])
        input_synapses.connect(i=pre, j=post)
        input_synapses.run_regularly(
            "x = sample_inputs(t, i)",
            order=-2,
            name="input_synapses_run_regularly_load",
            **self.every_sample,
        )
        return input_synapses

    def _readout(self) -> tuple[NeuronGroup, Synapses]:
        net = self.net
        latch = during("window_start - 1", "window_start - 1")
        error = output_error(self.plasticity.loss)
        # brian2genn: one event per group; the readout's spike latches the output error and,
        # at the update step, applies the readout bias's update
        readout = NeuronGroup(
            net.n_classes,
            "o : 1\nd : 1\nlabel : 1\npartition : 1\nerr : 1\nlr : 1",
            threshold=f"({latch} + {UPDATE}) > 0",
            reset=f"err += {latch} * ({error} - err)\n{sgd_step('d', f'{UPDATE} * lr', 'err')}",
            namespace=self.namespace,
            name="readout",
        )
        readout.partition = float(net.n_classes)
        readout.run_regularly(
            "label = sample_labels(t, i)\nlr = learning_rates(t)",
            order=-1,
            name="readout_run_regularly_sample_start",
            **self.every_sample,
        )
        softmax_sum = Synapses(
            readout,
            readout,
            "partition_post = exp(o_pre + d_pre) : 1 (summed)",
            namespace=self.namespace,
            name="softmax_sum",
        )
        softmax_sum.connect()
        return readout, softmax_sum

    def _readout_pair(self, last: NeuronGroup, readout: NeuronGroup) -> tuple[Synapses, Synapses]:
        net = self.net
        rate = free_rate("count")
        readout_synapses = Synapses(
            last,
            readout,
            "w : 1\ncount : 1\n"
            f"o_post = {readout_drive('w', 'spike_count_pre / rate_normaliser')} : 1 (summed)",
            on_pre=self._counted_update("w", "post", readout_weight_gradient("err_post", rate)),
            namespace=self.namespace,
            name="readout_synapses",
        )
        pre, post = all_to_all(net.layer_sizes[-1], net.n_classes)
        readout_synapses.connect(i=pre, j=post)
        readout_fixed = self._back_weights(net.readout_weights)
        # brian2genn: one summed variable per Synapses, onto its postsynaptic group, so the
        # error drive g of the last layer is summed by a transposed copy
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
            namespace=self.namespace,
            name="readout_back",
        )
        pre, post = all_to_all(net.n_classes, net.layer_sizes[-1])
        readout_back.connect(i=pre, j=post)
        if readout_fixed is not None:
            readout_back.w_back = matrix_to_synapses(np.ascontiguousarray(readout_fixed.T))
        return readout_synapses, readout_back

    # ------------------------------------------------------------------ the whole network
    def define(self, values: dict[str, FloatArray]) -> Network:
        """Create every object for the per-sample tables ``values``, assign the network's
        learned parameters and run every sample of the tables."""
        net = self.net
        tables = {
            name: TimedArray(table, dt=self.sample_duration, name=name)
            for name, table in values.items()
        }
        self.namespace = {
            **spide_namespace(net, self.protocol, self.layout["free_steps"]),
            "step_dt": net.dt,
            **self.layout,
            **tables,
        }
        stimulus = self._stimulus()
        layers = [self._layer(k) for k in range(net.n_layers)]
        input_synapses = self._input_synapses(stimulus, layers[0])
        forward, backward = [], []
        for k, weights in enumerate(net.forward_weights):
            pair = self._loop_pair(layers[k], layers[k + 1], weights, f"forward_{k + 1}")
            forward.append(pair[0])
            backward.append(pair[1])
        feedback, feedback_back = self._loop_pair(
            layers[-1], layers[0], net.feedback_weights, "feedback"
        )
        readout, softmax_sum = self._readout()
        readout_synapses, readout_back = self._readout_pair(layers[-1], readout)
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
        assign_arrays(
            network, learned_arrays(net, transpose=self.plasticity.feedback == "transpose")
        )
        network.schedule = list(GENN_SCHEDULE)
        network.run(len(values["real_samples"]) * self.sample_duration, namespace={})
        return network
