"""Build layer of learning: free phase, perturbed phase and SPIDE plasticity in ONE Brian2 run.

Every sample of a chunk runs ``free_steps`` steps of the free phase, then ``backward_steps``
steps of the perturbed phase; at the first step of the next sample the plasticity is applied
from the two stages' counters (string code, ``run_regularly`` at ``when='start'``), then the
membranes and counters are reset and the next input and label are loaded. The run lasts one
step longer than the chunk so that the last sample's update is applied too. Nothing runs in
Python during a chunk, so the same objects run in runtime mode and in cpp_standalone.

Each forward layer group carries, per neuron, the forward membrane ``v`` and the error-unit
membrane ``u_err`` (``e`` of ALGORITHM.md; ``e`` is a constant in Brian2). Forward spikes are the
``spike`` event; the ternary error unit emits the custom events ``error_up`` (+delta) and
``error_down`` (-delta). One Synapses object per weight matrix carries the weight once: its
``on_pre`` pathway delivers forward spikes (``v_post += w``) and its two ``on_post`` pathways
deliver the post unit's error events backward through the same weight
(``u_err_pre += w sigma / theta``; a unit whose forward partner has gate m = 0 emits no
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

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import (
    Clock,
    EventMonitor,
    Network,
    NeuronGroup,
    SpikeMonitor,
    Synapses,
    TimedArray,
    second,
)
from numpy.typing import NDArray

from fbsnn_brian.build.devices import registry as devices
from fbsnn_brian.build.devices import standalone
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.build.free_run import (
    RunArg,
    SynapticDelays,
    all_to_all,
    matrix_to_synapses,
    network_key,
    synapses_to_matrix,
    weight_run_args,
    whole_steps,
)
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.recording import SpikeRecording
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.build.neurons import (
    biophysics_namespace,
    integration_method,
    membrane_equations,
    refractory_argument,
    refractory_start,
    spike_reset,
    synaptic_on_pre,
    synaptic_state_reset,
)
from fbsnn_brian.model.protocol import Protocol

__all__ = ["ChunkStatistics", "TrainingSimulation", "drop_inputs", "spide_namespace"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

_STEP_IN_SAMPLE = "(int(t / dt + 0.5) % sample_steps)"


@dataclass(frozen=True)
class ChunkStatistics:
    """Summary of one trained chunk (read after the run).

    Rates are averages over the chunk's real samples and all forward neurons, in events per
    tau: ``forward_rate`` of the free phase's spikes, ``backward_rate`` of the error units'
    events (both signs) in the perturbed phase. ``layer_forward_rates`` holds the free-phase
    rate of each layer separately (averaged over its neurons and the chunk's samples).
    """

    n_samples: int
    wall_time_s: float
    forward_rate: float
    backward_rate: float
    layer_forward_rates: tuple[float, ...] = ()


@dataclass
class _Objects:
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


def _layer_model(*, neuron: str, first: bool, last: bool, biophysics: Biophysics) -> str:
    drive = "(I_input + b)" if first else "b"
    model = membrane_equations(neuron=neuron, drive=drive, biophysics=biophysics)
    model += """
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
    rate = weighted_count / rate_normaliser : 1
    gate = int(spike_count > 0) * int(spike_count < max_count) : 1
    beta = error_count * delta / backward_tau : 1
    in_backward : 1
    """
    if first:
        model += "I_input : 1\n"
    if last:
        model += "du_err/dt = in_backward * scale * g / tau : 1\ng : 1\n"
    else:
        model += "u_err : 1\n"
    return model


def spide_namespace(
    network: FeedbackNetwork, protocol: Protocol, free_steps: int
) -> dict[str, Any]:
    """Constants of a SPIDE training build: neuron, phases, error units and plasticity.

    Shared by :class:`TrainingSimulation` and the GeNN build
    (:mod:`fbsnn_brian.build.devices.genn_training`), so that both compute with the same values.
    """
    free = protocol.free_phase.duration
    perturbed = protocol.perturbed_phase
    plasticity = protocol.plasticity
    assert perturbed is not None and plasticity is not None
    return {
        "tau": network.tau,
        "tau_m": network.tau_m,
        "v_threshold": network.v_threshold,
        "theta": network.theta,
        "refractory": network.refractory,
        "rate_normaliser": network.rate_normaliser(free),
        # spike count of a neuron firing at the clamp (one spike per refractory period)
        "max_count": (
            float(free / network.refractory)
            if network.refractory > 0 * second
            else float(free_steps + 1)
        ),
        "backward_tau": float(perturbed.duration / network.tau),
        "v_b": perturbed.threshold,
        "delta": perturbed.event_size,
        "scale": plasticity.scale,
        "weight_decay": plasticity.weight_decay,
    }


def drop_inputs(inputs: FloatArray, probability: float, rng: np.random.Generator) -> FloatArray:
    """Input dropout: a fresh mask per sample, kept components scaled by ``1 / (1 - p)``."""
    if probability == 0:
        return inputs
    keep = rng.random(inputs.shape) >= probability
    return np.asarray(inputs * keep / (1.0 - probability), dtype=np.float64)


class TrainingSimulation:
    """SPIDE training of a FeedbackNetwork on chunks of samples, built once for a device.

    Parameters
    ----------
    network : FeedbackNetwork
        Its weights are read before and written back after every chunk.
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a :class:`SPIDEPlasticity`.
    device : {'runtime', 'numpy', 'cython', 'cpp_standalone'}
        cpp_standalone compiles once and reruns the binary with ``run_args``.
    chunk_size : int
        Samples per Brian2 run (cpp_standalone pads the last chunk with samples whose
        learning rate is zero).
    directory : str, optional
        cpp_standalone project directory, kept (default: the build cache, see
        :mod:`fbsnn_brian.build.devices.standalone`).
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        device: str = "cpp_standalone",
        chunk_size: int = 100,
        directory: str | None = None,
    ) -> None:
        owner = "TrainingSimulation"
        self.device = devices.check_device(owner, device)
        perturbed = protocol.perturbed_phase
        if perturbed is None or protocol.plasticity is None:
            raise ValidationError(
                f"{owner}: protocol must have a PerturbedPhase and a SPIDEPlasticity, "
                f"got {protocol!r}."
            )
        if network.input_coding != "current":
            raise ValidationError(
                f"{owner}: training supports input_coding='current' for now, got "
                f"{network.input_coding!r}."
            )
        self.network = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.perturbed = perturbed
        self.chunk_size = chunk_size
        self.directory = directory
        self.free_steps = whole_steps(
            owner, "FreePhase.duration", protocol.free_phase.duration, network.dt
        )
        self.backward_steps = whole_steps(
            owner, "PerturbedPhase.duration", perturbed.duration, network.dt
        )
        self.sample_steps = self.free_steps + self.backward_steps
        self.sample_duration = self.sample_steps * network.dt
        self._compiled: tuple[standalone.StandaloneBuild, _Objects] | None = None
        self._optimizer_state: dict[str, FloatArray] = {}
        # input dropout masks are drawn here, not in the simulation, so that a chunk's
        # result does not depend on the device's random number generator
        self._dropout_rng = np.random.default_rng([network.seed, 7])
        self.compile_time_s = 0.0
        self.build_cache_hit = False  # whether the last build reused a compiled binary
        self._record = False

    # ------------------------------------------------------------------ definition
    def _update(self, variable: str, gradient: str) -> str:
        """String code of one parameter's update at a sample boundary.

        The learning-rate table is zero at boundaries without a real sample, so nothing
        changes there. Plain online SGD: ``x -= eta * gradient``. With ``batch_size`` B > 1
        the gradients of B samples are summed in ``x_accum`` and their mean is applied where
        the ``apply_updates`` table is 1 (after every B-th sample and the last of an epoch).
        With momentum mu, a velocity ``x_velocity`` takes ``mu * velocity + step`` at every
        applied update and the parameter moves by ``-eta * velocity``.
        """
        real = "int(learning_rates(t) > 0)"
        if self.plasticity.batch_size == 1:
            step, gate, code = f"({gradient})", real, ""
        else:
            step, gate = f"{variable}_accum / batch_size", "apply_updates(t)"
            code = f"{variable}_accum += {real} * ({gradient})\n"
        if self.plasticity.momentum == 0:
            scale = (
                "learning_rates(t)"
                if self.plasticity.batch_size == 1
                else f"{gate} * learning_rates(t)"
            )
            code += f"{variable} -= {scale} * {step}"
        else:
            code += (
                f"{variable}_velocity += {gate} * ((momentum - 1) * {variable}_velocity + {step})\n"
                f"{variable} -= {gate} * learning_rates(t) * {variable}_velocity"
            )
        if self.plasticity.batch_size > 1:
            code += f"\n{variable}_accum *= 1 - apply_updates(t)"
        return code

    def _state_suffixes(self) -> list[str]:
        suffixes = ["velocity"] if self.plasticity.momentum > 0 else []
        return suffixes + (["accum"] if self.plasticity.batch_size > 1 else [])

    def _state_views(self, objects: _Objects) -> list[tuple[str, Any, tuple[int, ...]]]:
        """(label, state variable view, shape) of every optimizer state variable in use."""
        sizes = self.network.layer_sizes
        n_inputs, n_classes = self.network.n_inputs, self.network.n_classes
        owners: list[tuple[str, Any, str, tuple[int, ...]]] = [
            ("input_synapses", objects.input_synapses, "w", (n_inputs * sizes[0],))
        ]
        owners += [
            (f"forward_{k + 1}", synapses, "w", (sizes[k] * sizes[k + 1],))
            for k, synapses in enumerate(objects.forward_synapses)
        ]
        owners += [
            ("feedback", objects.feedback_synapses, "w", (sizes[-1] * sizes[0],)),
            ("readout_synapses", objects.readout_synapses, "w", (sizes[-1] * n_classes,)),
            ("readout", objects.readout, "d", (n_classes,)),
        ]
        owners += [
            (f"layer_{k + 1}", group, "b", (sizes[k],)) for k, group in enumerate(objects.layers)
        ]
        return [
            (f"{name}.{variable}_{suffix}", getattr(owner, f"{variable}_{suffix}"), shape)
            for name, owner, variable, shape in owners
            for suffix in self._state_suffixes()
        ]

    def _namespace(self, tables: dict[str, TimedArray]) -> dict[str, Any]:
        net = self.network
        return {
            **spide_namespace(net, self.protocol, self.free_steps),
            "sample_steps": self.sample_steps,
            "free_steps": self.free_steps,
            "free_tau": float(self.protocol.free_phase.duration / net.tau),
            **biophysics_namespace(net.biophysics),
            "momentum": self.plasticity.momentum,
            "batch_size": self.plasticity.batch_size,
            **tables,
        }

    def _define(
        self,
        inputs: FloatArray,
        labels: FloatArray,
        learning_rates: FloatArray,
        real_samples: FloatArray,
        apply_updates: FloatArray,
    ) -> _Objects:
        net = self.network
        n_samples = len(inputs)
        clock = standalone.step_clock(net.dt)
        tables = {
            "sample_inputs": TimedArray(inputs, dt=self.sample_duration, name="sample_inputs"),
            "sample_labels": TimedArray(labels, dt=self.sample_duration, name="sample_labels"),
            "learning_rates": TimedArray(
                learning_rates, dt=self.sample_duration, name="learning_rates"
            ),
            "real_samples": TimedArray(real_samples, dt=self.sample_duration, name="real_samples"),
            "apply_updates": TimedArray(
                apply_updates, dt=self.sample_duration, name="apply_updates"
            ),
        }
        namespace = self._namespace(tables)
        # One explicitly named clock for everything done once per sample: every object of the
        # build has a fixed name, so a second build of the same configuration in the same
        # process generates the same code and finds its compiled binary in the build cache.
        sample_clock = Clock(dt=self.sample_duration, name="sample_clock")
        every_sample = {"clock": sample_clock, "when": "start"}

        # The input path runs once per sample: the stimulus group and its synapses tick on a
        # clock of one sample's length, so nothing of it is evaluated at the other steps.
        stimulus = NeuronGroup(
            net.n_inputs,
            "x : 1",
            threshold="x > 0",  # a zero input adds nothing: no event, no synaptic work
            reset="",
            clock=sample_clock,
            namespace=namespace,
            name="stimulus",
        )
        stimulus.thresholder["spike"].when = "before_groups"
        stimulus.run_regularly("x = sample_inputs(t, i)", order=-5, name="stimulus_load")

        # The phase flag and the readout change only at phase boundaries; this clock ticks at
        # every common multiple of the two phase lengths, so both boundaries are ticks.
        readout_steps = math.gcd(self.free_steps, self.sample_steps)
        readout_clock = Clock(dt=readout_steps * net.dt, name="readout_clock")

        layers: list[NeuronGroup] = []
        n_layers = net.n_layers
        # weight of a spike in the rate estimate (FeedbackNetwork.rate_estimate)
        spike_weight = (
            "1"
            if net.rate_estimate == "average"
            else f"exp(-(free_steps - {_STEP_IN_SAMPLE}) * dt / tau_m)"
        )
        for k, size in enumerate(net.layer_sizes):
            first, last = k == 0, k == n_layers - 1
            # an error unit is silent while its forward partner's gate m is 0: its events
            # would be multiplied by m on every synapse anyway, so this changes no update and
            # saves the synaptic work (and the backward pathway need not read m_post)
            not_refractory_error = "gate > 0.5 and t - t_last_error >= tau - 0.5 * dt"
            group = NeuronGroup(
                size,
                _layer_model(neuron=net.neuron, first=first, last=last, biophysics=net.biophysics),
                threshold=(
                    "v >= v_threshold and t - t_last_spike >= refractory - 0.5 * dt "
                    "and in_backward < 0.5"
                ),
                reset=(
                    f"{spike_reset(net.biophysics)}\nt_last_spike = t\nspike_count += 1\n"
                    f"weighted_count += {spike_weight}\n"
                    "spikes_total += real_samples(t)"
                ),
                refractory=refractory_argument(net.biophysics, net.refractory),
                events={
                    "error_up": f"u_err >= v_b and in_backward > 0.5 and {not_refractory_error}",
                    "error_down": f"u_err <= -v_b and in_backward > 0.5 and {not_refractory_error}",
                },
                # ideal network: exponential Euler is exact here (v is linear with constant
                # coefficients within a step and u_err has a constant derivative, which
                # Brian2's 'exact' refuses); for IF both are constant-derivative and Euler is
                # exact too (see neurons.integration_method for the other switches)
                method=integration_method(net.neuron, net.biophysics),
                clock=clock,
                namespace=namespace,
                name=f"layer_{k + 1}",
            )
            counted = "t_last_error = t\nevents_total += real_samples(t)"
            group.run_on_event("error_up", f"u_err -= delta\nerror_count += 1\n{counted}")
            group.run_on_event("error_down", f"u_err += delta\nerror_count -= 1\n{counted}")
            group.run_regularly(
                self._update("b", "gate * beta / (scale * theta)"),
                order=-10,
                name=f"layer_{k + 1}_plasticity",
                **every_sample,
            )
            reset = (
                "v = 0\nu_err = 0\nspike_count = 0\nweighted_count = 0\nerror_count = 0\n"
                "t_last_spike = t - refractory\nt_last_error = t - tau"
            )
            if first:
                reset += "\nI_input = 0"
            synaptic = synaptic_state_reset(net.biophysics)
            if synaptic:
                reset += "\n" + synaptic
            reset += refractory_start(net.biophysics)
            group.run_regularly(reset, order=-5, name=f"layer_{k + 1}_sample_start", **every_sample)
            # a stored flag, not a function of t: the LIF layers integrate exactly
            group.run_regularly(
                f"in_backward = int({_STEP_IN_SAMPLE} >= free_steps)",
                clock=readout_clock,
                when="start",
                order=-20,
                name=f"layer_{k + 1}_phase",
            )
            group.b = net.biases[k]
            group.t_last_spike = -net.refractory
            group.t_last_error = -net.tau
            layers.append(group)

        input_synapses = Synapses(
            stimulus,
            layers[0],
            "w : 1\nw_velocity : 1\nw_accum : 1",
            on_pre="I_input_post += w * x_pre",
            clock=sample_clock,
            namespace=namespace,
            name="input_synapses",
        )
        input_synapses.pre.when = "before_groups"
        input_synapses.pre.order = 1
        pre, post = all_to_all(net.n_inputs, net.layer_sizes[0])
        input_synapses.connect(i=pre, j=post)
        input_synapses.w = matrix_to_synapses(net.input_weights)
        input_synapses.run_regularly(
            self._update("w", "gate_post * beta_post * x_pre / (scale * theta) + weight_decay * w"),
            order=-10,
            name="input_synapses_plasticity",
            **every_sample,
        )

        transport = self.plasticity.feedback == "transpose"
        back = "w" if transport else "w_back"
        rng = np.random.default_rng(net.seed + 1)

        def random_feedback(weights: FloatArray) -> FloatArray:
            # fixed random backward weights with the forward matrix's shape and spread
            return rng.standard_normal(weights.shape) * float(np.std(weights))

        on_pre = synaptic_on_pre(net.biophysics)
        delays = SynapticDelays(net)
        pathways = ["forward", "backward_up", "backward_down"]
        dale = net.biophysics.excitatory_fraction is not None

        def loop_synapses(
            source: NeuronGroup,
            target: NeuronGroup,
            weights: FloatArray,
            name: str,
            pre_layer: int,
        ) -> Synapses:
            synapses = Synapses(
                source,
                target,
                "w : 1\nw_velocity : 1\nw_accum : 1"
                + ("" if transport else "\nw_back : 1 (constant)")
                + ("\nw_sign : 1 (constant)" if dale else ""),
                on_pre={"forward": on_pre},
                on_post={
                    "backward_up": f"u_err_pre += {back} * delta / theta",
                    "backward_down": f"u_err_pre -= {back} * delta / theta",
                },
                on_event={
                    "forward": "spike",
                    "backward_up": "error_up",
                    "backward_down": "error_down",
                },
                delay=delays.homogeneous(pathways),
                clock=clock,
                namespace=namespace,
                name=name,
            )
            pre, post = all_to_all(len(source), len(target))
            synapses.connect(i=pre, j=post)
            synapses.w = matrix_to_synapses(weights)
            delays.set_heterogeneous(synapses, pathways)
            if not transport:
                synapses.w_back = matrix_to_synapses(random_feedback(weights))
            update = self._update(
                "w", "gate_post * beta_post * rate_pre / (scale * theta) + weight_decay * w"
            )
            if dale:
                # projected gradient descent: a weight that would change sign stops at zero
                synapses.w_sign = net.presynaptic_signs(pre_layer)[pre]
                update += "\nw = w_sign * clip(w_sign * w, 0, inf)"
            synapses.run_regularly(update, order=-10, name=f"{name}_plasticity", **every_sample)
            return synapses

        forward = [
            loop_synapses(layers[k], layers[k + 1], weights, f"forward_{k + 1}", k)
            for k, weights in enumerate(net.forward_weights)
        ]
        feedback = loop_synapses(
            layers[-1], layers[0], net.feedback_weights, "feedback", n_layers - 1
        )

        error_code = (
            "output_error = exp(o + d) / partition - label"
            if self.plasticity.loss == "cross_entropy"
            else "output_error = o + d - label"
        )
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
            clock=readout_clock,
            namespace=namespace,
            name="readout",
        )
        # softmax denominator: every readout unit sums exp(o + d) over all of them
        normaliser_synapses = Synapses(
            readout,
            readout,
            "partition_post = exp(o_pre + d_pre) : 1 (summed)",
            clock=readout_clock,
            name="softmax_sum",
        )
        normaliser_synapses.connect()
        readout.d = net.readout_bias
        readout.partition = float(net.n_classes)  # valid softmax before the first summation
        # stored once per readout tick (not a subexpression, which every synapse of the g
        # summation would re-evaluate, exp included)
        readout.run_regularly(
            error_code,
            when="groups",
            order=-28,
            name="readout_error",
        )
        readout.run_regularly(
            self._update("d", "output_error"),
            order=-9,
            name="readout_plasticity",
            **every_sample,
        )
        readout.run_regularly(
            "label = sample_labels(t, i)", order=-5, name="readout_load", **every_sample
        )
        readout_synapses = Synapses(
            layers[-1],
            readout,
            f"""
            w : 1
            w_velocity : 1
            w_accum : 1
            {"" if transport else "w_back : 1 (constant)"}
            o_post = w * rate_pre : 1 (summed)
            g_pre = {back} * output_error_post : 1 (summed)
            """,
            clock=readout_clock,
            namespace=namespace,
            name="readout_synapses",
        )
        pre, post = all_to_all(net.layer_sizes[-1], net.n_classes)
        readout_synapses.connect(i=pre, j=post)
        # o, the softmax denominator, the output error, then g, all before the layers integrate
        readout_synapses.summed_updaters["o_post"].order = -30
        normaliser_synapses.summed_updaters["partition_post"].order = -29
        error_sum = readout_synapses.summed_updaters["g_pre"]
        error_sum.order = -27
        # Brian2 runs a summed variable on its target's clock (here every step); g changes
        # only with the readout, so it is summed on the readout's clock instead.
        error_sum._clock = readout_clock
        readout_synapses.w = matrix_to_synapses(net.readout_weights)
        if not transport:
            readout_synapses.w_back = matrix_to_synapses(random_feedback(net.readout_weights))
        readout_synapses.run_regularly(
            self._update("w", "output_error_post * rate_pre + weight_decay * w"),
            order=-10,
            name="readout_synapses_plasticity",
            **every_sample,
        )

        monitors: dict[str, Any] = {}
        if self._record:
            for k, group in enumerate(layers):
                name = f"layer_{k + 1}"
                monitors[name] = SpikeMonitor(group, record=True, name=f"spikes_{name}")
                for event in ("error_up", "error_down"):
                    monitors[f"{name}_{event}"] = EventMonitor(
                        group, event, record=True, name=f"{event}_{name}"
                    )
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
        objects = _Objects(
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
        # optimizer state carried over from the previous chunk (cpp_standalone: run_args)
        for label, view, _ in self._state_views(objects):
            if label in self._optimizer_state:
                view[:] = self._optimizer_state[label]
        # one extra step: the update of the last sample happens at the next sample boundary
        with devices.per_sample_input_path():
            network.run(n_samples * self.sample_duration + net.dt, namespace={})
        return objects

    # ------------------------------------------------------------------ weights in and out
    def _weight_entries(self, objects: _Objects) -> list[RunArg]:
        net = self.network
        readout_shape = (net.layer_sizes[-1] * net.n_classes,)
        return [
            *weight_run_args(
                net,
                input_synapses=objects.input_synapses,
                forward_synapses=objects.forward_synapses,
                feedback_synapses=objects.feedback_synapses,
                layers=objects.layers,
            ),
            (
                objects.readout_synapses.w,
                "readout_synapses.w",
                matrix_to_synapses(net.readout_weights),
                readout_shape,
            ),
            (objects.readout.d, "readout.d", net.readout_bias.copy(), (net.n_classes,)),
        ]

    def _optimizer_state_entries(self, objects: _Objects) -> list[RunArg]:
        """run_args of the optimizer state: velocities and gradient sums (may be empty)."""
        entries: list[RunArg] = []
        for label, view, shape in self._state_views(objects):
            entries.append((view, label, self._optimizer_state.get(label, np.zeros(shape)), shape))
        return entries

    def _read_weights(self, objects: _Objects) -> None:
        net = self.network
        sizes = net.layer_sizes
        net.input_weights = synapses_to_matrix(objects.input_synapses.w[:], sizes[0], net.n_inputs)
        net.forward_weights = [
            synapses_to_matrix(s.w[:], sizes[k + 1], sizes[k])
            for k, s in enumerate(objects.forward_synapses)
        ]
        net.readout_weights = synapses_to_matrix(
            objects.readout_synapses.w[:], net.n_classes, sizes[-1]
        )
        net.readout_bias = np.asarray(objects.readout.d[:], dtype=np.float64)
        net.biases = [np.asarray(g.b[:], dtype=np.float64) for g in objects.layers]
        feedback = synapses_to_matrix(objects.feedback_synapses.w[:], sizes[0], sizes[-1])
        net.set_learned_feedback(feedback, max_gain=self.plasticity.max_feedback_gain)

    def _compile(self) -> tuple[Any, _Objects]:
        if self._compiled is None:
            size = self.chunk_size
            net = self.network
            plasticity = self.plasticity.describe()
            for runtime_value in ("learning_rate", "input_dropout"):  # not in the code
                plasticity.pop(runtime_value)
            key = standalone.build_key(
                "training",
                {
                    "network": network_key(
                        net, random_feedback=self.plasticity.feedback == "random"
                    ),
                    "phases": self.protocol.describe()["phases"],
                    "plasticity": plasticity,
                    "chunk_size": size,
                },
            )
            build, objects = self._build(key=key, directory=self.directory)
            self.compile_time_s, self.build_cache_hit = build.compile_time_s, build.cache_hit
            self._compiled = (build, objects)
        return self._compiled

    def _build(
        self, *, key: str | None, directory: str | None, target: str = "cpp_standalone"
    ) -> tuple[standalone.StandaloneBuild, _Objects]:
        size, net = self.chunk_size, self.network
        return standalone.compile_standalone(
            lambda: self._define(
                np.zeros((size, net.n_inputs)),
                np.zeros((size, net.n_classes)),
                np.zeros(size + 1),
                np.zeros(size),
                np.zeros(size + 1),
            ),
            network_of=lambda objects: objects.network,
            key=key,
            directory=directory,
            owner=self,
            target=target,
            what="the training simulation",
        )

    def generate(
        self, directory: str, *, target: str = "cpp_standalone"
    ) -> standalone.StandaloneBuild:
        """Generate and compile the training project in ``directory`` without running it.

        Parameters
        ----------
        directory : str
            Project directory (kept).
        target : {'cpp_standalone', 'cuda_standalone'}
            cuda_standalone needs brian2cuda and nvcc (no GPU: see
            :func:`fbsnn_brian.build.devices.standalone.configure_cuda`).
        """
        build, _ = self._build(key=None, directory=directory, target=target)
        return build

    @property
    def optimizer_state(self) -> dict[str, FloatArray]:
        """Copies of the optimizer state carried between chunks (velocities, batch sums)."""
        return {label: value.copy() for label, value in self._optimizer_state.items()}

    @optimizer_state.setter
    def optimizer_state(self, state: dict[str, FloatArray]) -> None:
        self._optimizer_state = {label: np.array(value) for label, value in state.items()}

    @property
    def dropout_generator(self) -> np.random.Generator:
        """The generator of the input dropout masks (its state belongs in a checkpoint)."""
        return self._dropout_rng

    def _drop_inputs(self, inputs: FloatArray) -> FloatArray:
        return drop_inputs(inputs, self.plasticity.input_dropout, self._dropout_rng)

    def train_chunk(
        self,
        inputs: FloatArray,
        labels: NDArray[np.int64],
        learning_rate: float | FloatArray,
        apply_after: NDArray[np.bool_] | None = None,
    ) -> ChunkStatistics:
        """Present ``inputs`` once, in order, applying the SPIDE update after every sample.

        Parameters
        ----------
        inputs : ndarray, shape (n_samples, n_inputs)
            Validated inputs in [0, 1]; at most ``chunk_size`` samples on cpp_standalone.
        labels : ndarray of int, shape (n_samples,)
        learning_rate : float or ndarray of shape (n_samples,)
            eta per sample (a schedule may change it between samples).
        apply_after : ndarray of bool, shape (n_samples,), optional
            With ``batch_size`` > 1: whether the summed gradients are applied after each
            sample (default: after the last sample of the chunk and every ``batch_size``-th).
        """
        net = self.network
        net.check_invariants()
        n_samples = len(inputs)
        rates = np.broadcast_to(np.asarray(learning_rate, dtype=np.float64), (n_samples,))
        start = time.perf_counter()
        size = self.chunk_size if self.device == "cpp_standalone" else n_samples
        if n_samples > size:
            raise ValidationError(
                f"TrainingSimulation.train_chunk: at most chunk_size = {size} samples per chunk, "
                f"got {n_samples}."
            )
        padded_inputs = np.zeros((size, net.n_inputs))
        padded_inputs[:n_samples] = self._drop_inputs(np.asarray(inputs, dtype=np.float64))
        onehot = np.zeros((size, net.n_classes))
        onehot[np.arange(n_samples), labels] = 1.0
        # entry k is applied at the start of sample k, i.e. to the update of sample k - 1
        schedule = np.zeros(size + 1)
        schedule[1 : n_samples + 1] = rates
        real = np.zeros(size)
        real[:n_samples] = 1.0
        if apply_after is None:
            positions = np.arange(1, n_samples + 1)
            apply_after = (positions % self.plasticity.batch_size == 0) | (positions == n_samples)
        applied = np.zeros(size + 1)
        applied[1 : n_samples + 1] = np.asarray(apply_after, dtype=np.float64)
        if self.device == "cpp_standalone":
            build, objects = self._compile()
            entries = [
                (objects.sample_inputs, "sample_inputs", padded_inputs, (size, net.n_inputs)),
                (objects.sample_labels, "sample_labels", onehot, (size, net.n_classes)),
                (objects.learning_rates, "learning_rates", schedule, (size + 1,)),
                (objects.real_samples, "real_samples", real, (size,)),
                *(
                    [(objects.apply_updates, "apply_updates", applied, (size + 1,))]
                    if self.plasticity.batch_size > 1
                    else []
                ),
                *self._weight_entries(objects),
                *self._optimizer_state_entries(objects),
            ]
            devices.check_run_args([(label, value, shape) for _, label, value, shape in entries])
            build.run({key: value for key, _, value, _ in entries})
        else:
            with devices.runtime_target(self.device):
                objects = self._define(padded_inputs, onehot, schedule, real, applied)
        self._read_weights(objects)
        if self._state_suffixes():
            for label, view, _ in self._state_views(objects):
                self._optimizer_state[label] = np.asarray(view[:], dtype=np.float64).copy()
        layer_spikes = [float(np.sum(group.spikes_total[:])) for group in objects.layers]
        events = sum(float(np.sum(group.events_total[:])) for group in objects.layers)
        per_sample_neuron = n_samples * net.n_neurons
        free_tau = float(self.protocol.free_phase.duration / net.tau)
        return ChunkStatistics(
            n_samples=n_samples,
            wall_time_s=time.perf_counter() - start,
            forward_rate=sum(layer_spikes) / per_sample_neuron / free_tau,
            backward_rate=events / per_sample_neuron / float(self.perturbed.duration / net.tau),
            layer_forward_rates=tuple(
                spikes / (n_samples * size) / free_tau
                for spikes, size in zip(layer_spikes, net.layer_sizes, strict=True)
            ),
        )

    def record(self, inputs: FloatArray, labels: NDArray[np.int64]) -> SpikeRecording:
        """Both phases of some samples, every spike and error event, without learning.

        The samples run through the training network (runtime mode with the numpy target,
        whatever the simulation's device) with a learning rate of zero, so the network is
        not changed. Populations: ``layer_l`` (forward spikes) and ``layer_l_error_up`` /
        ``layer_l_error_down`` (the error units' +delta and -delta events); phases ``free``
        and ``perturbed``, with rates per phase in events per tau.
        """
        from fbsnn_brian.io.recording import Population

        net = self.network
        batch = net.check_inputs(inputs, owner="TrainingSimulation.record")
        n_samples = len(batch)
        onehot = np.zeros((n_samples, net.n_classes))
        onehot[np.arange(n_samples), np.asarray(labels, dtype=np.int64)] = 1.0
        start = time.perf_counter()
        self._record = True
        try:
            with devices.runtime_target("numpy"):
                objects = self._define(
                    batch,
                    onehot,
                    np.zeros(n_samples + 1),
                    np.ones(n_samples),
                    np.zeros(n_samples + 1),
                )
        finally:
            self._record = False
        assert objects.monitors is not None
        populations = []
        for k, size in enumerate(net.layer_sizes):
            name = f"layer_{k + 1}"
            populations.append(Population(name=name, size=size, layer=k + 1, role="forward"))
            for event in ("error_up", "error_down"):
                populations.append(
                    Population(name=f"{name}_{event}", size=size, layer=k + 1, role=event)
                )
        dt_s = float(net.dt / second)
        sample_s = float(self.sample_duration / second)
        phase_s = (self.free_steps * dt_s, (self.sample_steps - self.free_steps) * dt_s)
        tau_s = float(net.tau / second)
        events = {}
        rates = {}
        for population in populations:
            monitor = objects.monitors[population.name]
            times = np.asarray(monitor.t[:] / second, dtype=np.float64)
            indices = np.asarray(monitor.i[:], dtype=np.int64)
            keep = times < n_samples * sample_s - 0.25 * dt_s  # the run's extra update step
            times, indices = times[keep], indices[keep]
            steps = np.rint(times / dt_s).astype(np.int64)
            samples = steps // self.sample_steps
            phases = (steps % self.sample_steps >= self.free_steps).astype(np.int64)
            counts = np.zeros((n_samples, 2, population.size))
            np.add.at(counts, (samples, phases, indices), 1.0)
            rates[population.name] = counts / (np.array(phase_s) / tau_s)[None, :, None]
            events[population.name] = [(indices, times, samples)]
        return SpikeRecording.from_chunks(
            network=net,
            protocol=self.protocol,
            populations=populations,
            events=events,
            rates=rates,
            inputs=batch,
            phase_durations_s=phase_s,
            sample_duration_s=sample_s,
            device="numpy",
            wall_time_s=time.perf_counter() - start,
        )
