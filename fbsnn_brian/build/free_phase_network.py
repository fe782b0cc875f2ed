"""The Brian2 objects of the free phase: ONE definition for every device.

:class:`FreePhaseNetwork` defines the network that
:class:`~fbsnn_brian.build.free_run.FreeRunSimulation` runs on runtime and cpp_standalone and
:class:`~fbsnn_brian.build.devices.genn_free_run.GeNNFreeRun` runs on brian2genn. It carries
no device flag: where devices differ, it asks its
:class:`~fbsnn_brian.build.device_rules.DeviceRules` (Brian2's own rules by default;
brian2genn's are
:class:`~fbsnn_brian.build.devices.genn_rules.GeNNRules`, each override naming the rule that
forces it). The neuron equations come from :mod:`fbsnn_brian.build.neurons`.

Object layout (names are the Brian2 object names):

* ``stimulus``: one neuron per input feature holding ``x`` (spiking at rate ``x`` per tau
  with ``input_coding='spikes'``);
* current coding: with Brian2's rules, ``drive`` holds layer 1's input current ``F x``, a
  summed variable on a clock whose step is one sample, so that ``F x`` is computed once per
  sample; layer 1 reads it through a linked variable. With brian2genn's rules ``F x`` is a
  summed variable ``I_drive`` of layer 1 itself;
* ``layer_1`` .. ``layer_N``: the spiking layers; ``forward_l`` connects layer l to l+1 and
  ``feedback`` connects layer N to layer 1 (a recurrent matrix for one layer); each spike adds
  its weight to the target membrane.

Synapses are created all-to-all in pre-major order, so the synaptic weight vector of a
(post, pre) matrix ``W`` is ``W.T.ravel()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import Network, NeuronGroup, SpikeMonitor, Synapses, TimedArray, second
from numpy.typing import NDArray

from fbsnn_brian.build.device_rules import DeviceRules, assign_arrays
from fbsnn_brian.build.neurons import (
    NeuronTemplate,
    forward_neuron,
    input_neuron,
    neuron_namespace,
    refractory_argument,
    synaptic_on_pre,
)
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = [
    "FreePhaseNetwork",
    "FreePhaseObjects",
    "SynapticDelays",
    "all_to_all",
    "free_phase_arrays",
    "matrix_to_synapses",
    "synapses_to_matrix",
    "whole_steps",
]


def matrix_to_synapses(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Synaptic weight vector (pre-major order) of a (post, pre) matrix."""
    return np.ascontiguousarray(matrix.T).ravel()


def synapses_to_matrix(
    weights: NDArray[np.float64], n_post: int, n_pre: int
) -> NDArray[np.float64]:
    """Inverse of :func:`matrix_to_synapses`."""
    return np.asarray(weights, dtype=np.float64).reshape(n_pre, n_post).T.copy()


def whole_steps(owner: str, name: str, duration: Any, dt: Any) -> int:
    """Number of integration steps in ``duration``; refuse a duration that dt does not divide."""
    ratio = float(duration / dt)
    steps = round(ratio)
    if steps < 1 or abs(ratio - steps) > 1e-9:
        raise ValidationError(
            f"{owner}: {name} = {duration!r} must be a whole, positive number of integration "
            f"steps of dt = {dt!r} (got {ratio:.6g} steps)."
        )
    return steps


def all_to_all(n_pre: int, n_post: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pre and post indices of all-to-all synapses in pre-major order."""
    return np.repeat(np.arange(n_pre), n_post), np.tile(np.arange(n_post), n_pre)


def free_phase_arrays(network: FeedbackNetwork) -> dict[str, NDArray[np.float64]]:
    """The weights and biases a free-phase build assigns, by ``object.variable``.

    Weights are flat in the synapses' order (pre-major); the GeNN training build
    (:mod:`fbsnn_brian.build.devices.genn_training`) uses the same object names.
    """
    arrays = {"input_synapses.w": matrix_to_synapses(network.input_weights)}
    for k, weights in enumerate(network.forward_weights):
        arrays[f"forward_{k + 1}.w"] = matrix_to_synapses(weights)
    arrays["feedback.w"] = matrix_to_synapses(network.feedback_weights)
    for k, biases in enumerate(network.biases):
        arrays[f"layer_{k + 1}.b"] = np.asarray(biases, dtype=np.float64)
    return arrays


class SynapticDelays:
    """Transmission delays of a network's connections between layers (its Biophysics).

    Homogeneous delays are passed to the Synapses constructor (one scalar per pathway);
    heterogeneous ones are drawn once per synapse from a generator seeded by the network's
    seed, in the order the connections are built, so every build of a network gets the same
    delays.
    """

    def __init__(self, network: FeedbackNetwork) -> None:
        self.biophysics = network.biophysics
        self.dt = network.dt
        self._rng = np.random.default_rng([network.seed, 11])

    def homogeneous(self, pathways: list[str]) -> Any:
        """``delay=`` argument of a Synapses with these pathways (None without delays)."""
        if not self.biophysics.has_delays or self.biophysics.delay_spread > 0 * second:
            return None  # no delay, or per-synapse delays set after connect()
        if pathways == ["pre"]:
            return self.biophysics.delay
        return {pathway: self.biophysics.delay for pathway in pathways}

    def set_heterogeneous(self, synapses: Synapses, pathways: list[str]) -> None:
        """Draw and set per-synapse delays, rounded to dt (no-op without a spread)."""
        if self.biophysics.delay_spread <= 0 * second:
            return
        draw = self.biophysics.synapse_delays(len(synapses), self._rng)
        steps = np.rint(np.asarray(draw / self.dt))
        for pathway in pathways:
            getattr(synapses, pathway).delay = steps * self.dt


@dataclass
class FreePhaseObjects:
    """The Brian2 objects of one defined free phase."""

    network: Network
    sample_inputs: TimedArray
    layers: list[NeuronGroup]
    stimulus: NeuronGroup
    input_synapses: Synapses
    forward_synapses: list[Synapses]
    feedback_synapses: Synapses
    monitors: dict[str, SpikeMonitor] = field(default_factory=dict)


class FreePhaseNetwork:
    """Defines the free phase of a chunk of samples for one device (module docstring).

    Parameters
    ----------
    network : FeedbackNetwork
        Its current weights and biases are assigned.
    sample_steps, free_steps : int
        Steps of one sample and of its free phase.
    population_names : list of str
        Names of the recorded populations: ``'input'`` (spike coding only), then the layers.
    rules : DeviceRules, optional
        How the device realises the constructs that devices express differently (Brian2's
        own rules by default).
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        *,
        sample_steps: int,
        free_steps: int,
        population_names: list[str],
        rules: DeviceRules | None = None,
    ) -> None:
        self.net = network
        self.sample_steps = sample_steps
        self.free_steps = free_steps
        self.sample_duration = sample_steps * network.dt
        self.population_names = population_names
        self.rules = DeviceRules() if rules is None else rules
        self.spiking_input = network.input_coding == "spikes"
        self.namespace: dict[str, Any] = {}
        self.clock: Any = None
        self.sample_clock: Any = None

    # ------------------------------------------------------------------ parts
    def _group(
        self, template: NeuronTemplate, size: int, name: str, refractory: Any = False
    ) -> Any:
        return NeuronGroup(
            size,
            template.model,
            threshold=template.threshold,
            reset=template.reset,
            method=template.method,
            refractory=refractory,
            clock=self.clock,
            namespace=self.namespace,
            name=name,
        )

    def _stimulus(self) -> NeuronGroup:
        template = input_neuron(spiking=self.spiking_input, gated_by_phase=self._gated)
        stimulus = self._group(template, self.net.n_inputs, "stimulus")
        stimulus.run_regularly(
            template.sample_start, when="start", order=-2, **self._sample_start("stimulus")
        )
        return stimulus

    def _sample_start(self, owner: str) -> dict[str, Any]:
        """``run_regularly`` arguments of ``owner``'s operation at every sample start."""
        return self.rules.sample_start(owner, self.sample_clock, self.sample_duration)

    @property
    def _gated(self) -> bool:
        return self.sample_steps != self.free_steps

    def _layer(self, k: int) -> NeuronGroup:
        net = self.net
        current_input = k == 0 and not self.spiking_input
        carrier = self.rules.current_input()
        template = forward_neuron(
            neuron=net.neuron,
            current_input=current_input,
            gated_by_phase=self._gated,
            biophysics=net.biophysics,
            input_variable=carrier.variable,
            linked_input=carrier.linked,
        )
        group = self._group(
            template,
            net.layer_sizes[k],
            f"layer_{k + 1}",
            refractory_argument(net.biophysics, net.refractory),
        )
        group.t_last_spike = -net.refractory
        group.run_regularly(
            template.sample_start,
            when="start",
            order=-1,
            **self._sample_start(f"layer_{k + 1}"),
        )
        return group

    def _input_path(
        self, stimulus: NeuronGroup, first: NeuronGroup
    ) -> tuple[Synapses, list[NeuronGroup]]:
        """The input synapses, and the groups the device's input path needs."""
        extra: list[NeuronGroup] = []
        if self.spiking_input:
            synapses = Synapses(
                stimulus,
                first,
                "w : 1",
                on_pre=f"v_post += {self.rules.delivered('w')}",
                clock=self.clock,
                namespace=self.namespace,
                name="input_synapses",
            )
        else:
            synapses, extra = self.rules.current_input_path(
                stimulus, first, sample_clock=self.sample_clock, namespace=self.namespace
            )
        pre, post = all_to_all(self.net.n_inputs, self.net.layer_sizes[0])
        synapses.connect(i=pre, j=post)
        return synapses, extra

    def _loop_synapses(
        self, source: NeuronGroup, target: NeuronGroup, name: str, delays: SynapticDelays
    ) -> Synapses:
        synapses = Synapses(
            source,
            target,
            "w : 1",
            on_pre=synaptic_on_pre(self.net.biophysics, weight=self.rules.delivered("w")),
            delay=delays.homogeneous(["pre"]),
            clock=self.clock,
            namespace=self.namespace,
            name=name,
        )
        pre, post = all_to_all(len(source), len(target))
        synapses.connect(i=pre, j=post)
        delays.set_heterogeneous(synapses, ["pre"])
        return synapses

    # ------------------------------------------------------------------ the whole network
    def define(self, inputs: NDArray[np.float64], n_samples: int) -> FreePhaseObjects:
        """Create every object, assign the network's weights and run ``n_samples`` samples."""
        net = self.net
        sample_inputs = TimedArray(inputs, dt=self.sample_duration, name="sample_inputs")
        self.namespace = {
            **neuron_namespace(net),
            "sample_steps": self.sample_steps,
            "free_steps": self.free_steps,
            "sample_inputs": sample_inputs,
        }
        self.clock = self.rules.step_clock(net.dt)
        self.sample_clock = self.rules.sample_clock(self.sample_duration)
        stimulus = self._stimulus()
        layers = [self._layer(k) for k in range(net.n_layers)]
        input_synapses, extra = self._input_path(stimulus, layers[0])
        delays = SynapticDelays(net)
        forward = [
            self._loop_synapses(layers[k], layers[k + 1], f"forward_{k + 1}", delays)
            for k in range(len(net.forward_weights))
        ]
        feedback = self._loop_synapses(layers[-1], layers[0], "feedback", delays)
        groups = ([stimulus] if self.spiking_input else []) + layers
        monitors = {
            name: SpikeMonitor(group, record=True, name=f"spikes_{name}")
            for name, group in zip(self.population_names, groups, strict=True)
        }
        network = Network(
            stimulus,
            *layers,
            *extra,
            input_synapses,
            *forward,
            feedback,
            *monitors.values(),
            name="free_run",
        )
        assign_arrays(network, free_phase_arrays(net))
        self.rules.finish(network)
        network.run(n_samples * self.sample_duration, namespace={})
        return FreePhaseObjects(
            network=network,
            sample_inputs=sample_inputs,
            layers=layers,
            stimulus=stimulus,
            input_synapses=input_synapses,
            forward_synapses=forward,
            feedback_synapses=feedback,
            monitors=monitors,
        )
