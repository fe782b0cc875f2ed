"""Brian2 equations of the toolkit's neurons: written once, used by every build.

This module is the one place that states a neuron model in Brian2 terms. The free-phase and
training builds for runtime and cpp_standalone (:mod:`fbsnn_brian.build.free_run`,
:mod:`fbsnn_brian.build.training_network`) and the brian2genn restatements
(:mod:`fbsnn_brian.build.devices.genn_training_network`) all take their membrane equation,
threshold, spike reset, sample-start code, integration method and namespace constants from
here. All membrane variables are dimensionless, in units of the threshold scale; every time
constant is a Brian2 quantity supplied through the namespace of the group.

Forward neuron (docs/algorithm.rst, section "Neurons that realise the clamp"), IF::

    dv/dt = (I_input + b) / tau                       (+ instantaneous synaptic jumps v += w)

LIF adds ``- v / tau_m``. A spike is emitted when ``v >= v_threshold`` and the neuron is not
refractory (``t - t_last_spike >= refractory``); the reset subtracts ``theta`` and integration
continues during the refractory period, so no charge is lost and the stationary IF rate is
exactly ``clip(z / theta, 0, 1)`` per ``tau`` for a refractory period of ``tau`` (for a
refractory period ``t_ref`` the clamp becomes ``tau / t_ref``).

Adding a neuron model is one entry of :data:`NEURON_EQUATIONS` (a :class:`NeuronEquations`:
its terms of ``dv/dt``, its own state variables, their change at a spike and at a sample
start, its constants and its exact integration method), plus its name in
:data:`fbsnn_brian.model.network.NEURON_MODELS` and its parameters on the network.

The biophysical switches of :class:`~fbsnn_brian.model.biophysics.Biophysics` add terms to this
equation (synaptic currents or conductances, noise), change the reset, and clamp the membrane
during the refractory period for ``reset='rest'``; their equations are written here once too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = [
    "FORWARD_REFRACTORY",
    "NEURON_EQUATIONS",
    "NeuronEquations",
    "NeuronTemplate",
    "biophysics_namespace",
    "drive_group_equations",
    "forward_neuron",
    "forward_threshold",
    "input_neuron",
    "integration_method",
    "membrane_equations",
    "neuron_equations",
    "neuron_namespace",
    "neuron_sample_start",
    "refractory_argument",
    "refractory_start",
    "spike_code",
    "spike_reset",
    "synaptic_on_pre",
    "synaptic_state_reset",
]

_IDEAL = Biophysics()

#: The forward neuron is past its refractory period (half a step of slack for rounding).
FORWARD_REFRACTORY = "t - t_last_spike >= refractory - 0.5 * dt"


def _no_constants(network: FeedbackNetwork) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class NeuronEquations:
    """One neuron model in Brian2 terms, as every build of the toolkit uses it.

    Parameters
    ----------
    leak : str
        Terms of ``dv/dt`` (per unit of time) added before the drive ``drive / tau``, e.g.
        ``"-v / tau_m"``; empty for none.
    state : str
        Model lines of the model's own state variables (each ending in a newline).
    on_spike : tuple of (str, str)
        ``(variable, increment)`` of each own state variable at a forward spike (the
        membrane's own reset is :func:`spike_reset`).
    sample_start : tuple of (str, str)
        ``(variable, value)`` of each own state variable at every sample start.
    constants : callable
        The namespace entries the lines above read, from the network.
    method : str
        Brian2 integration method, exact for the ideal network (instantaneous synapses, no
        noise); :func:`integration_method` falls back to Euler otherwise.
    threshold : str
        Spike condition on the membrane (the refractory test is added by the builds).
    """

    leak: str = ""
    state: str = ""
    on_spike: tuple[tuple[str, str], ...] = ()
    sample_start: tuple[tuple[str, str], ...] = ()
    constants: Callable[[FeedbackNetwork], dict[str, Any]] = field(default=_no_constants)
    method: str = "euler"
    threshold: str = "v >= v_threshold"


#: The neuron models of the build layer, by the name ``FeedbackNetwork(neuron=...)`` takes.
#: IF: constant derivative between spikes, so Euler is exact. LIF: linear with constant
#: coefficients, so exponential Euler is exact. Adaptive LIF: spike-frequency adaptation by a
#: current ``w_a`` (in units of the drive) that decays with ``tau_a`` and grows by ``b_a`` at
#: every spike; linear between spikes, so exponential Euler is exact.
NEURON_EQUATIONS: dict[str, NeuronEquations] = {
    "if": NeuronEquations(),
    "lif": NeuronEquations(leak="-v / tau_m", method="exponential_euler"),
    "alif": NeuronEquations(
        leak="-v / tau_m - w_a / tau",
        state="dw_a/dt = -w_a / tau_a : 1\n",
        on_spike=(("w_a", "b_a"),),
        sample_start=(("w_a", "0"),),
        constants=lambda network: {"tau_a": network.tau_a, "b_a": network.b_a},
        method="exponential_euler",
    ),
}


def neuron_equations(neuron: str) -> NeuronEquations:
    """The :class:`NeuronEquations` of a neuron model name."""
    try:
        return NEURON_EQUATIONS[neuron]
    except KeyError:
        raise ValidationError(
            f"neuron = {neuron!r} has no equations in fbsnn_brian.build.neurons "
            f"(allowed: {sorted(NEURON_EQUATIONS)})."
        ) from None


def neuron_namespace(network: FeedbackNetwork) -> dict[str, Any]:
    """Constants the neuron equations of ``network`` read (Brian2 namespace entries).

    Every build starts its namespace from this one: the time scale, the membrane constants,
    the neuron model's own constants and those of the biophysics.
    """
    return {
        "tau": network.tau,
        "tau_m": network.tau_m,  # also read by the exponential rate estimate
        "v_threshold": network.v_threshold,
        "theta": network.theta,
        "refractory": network.refractory,
        **neuron_equations(network.neuron).constants(network),
        **biophysics_namespace(network.biophysics),
    }


def membrane_equations(*, neuron: str, drive: str, biophysics: Biophysics = _IDEAL) -> str:
    """Model lines of the membrane ``v`` and of the model, synaptic and noise state.

    ``drive`` is the constant input in threshold units per ``tau`` (e.g. ``"(I_input + b)"``).
    """
    model = neuron_equations(neuron)
    leak = f"{model.leak} + " if model.leak else ""
    terms = f"{leak}{drive} / tau"
    state = model.state
    if biophysics.synapse == "exponential":
        terms += " + I_syn / tau_syn"
        state += "dI_syn/dt = -I_syn / tau_syn : 1\n"
    elif biophysics.synapse == "conductance":
        terms += " + (g_exc * (e_exc - v) / e_exc + g_inh * (v - e_inh) / e_inh) / tau_syn"
        state += "dg_exc/dt = -g_exc / tau_syn : 1\ndg_inh/dt = -g_inh / tau_syn : 1\n"
    if biophysics.has_noise:
        if biophysics.noise_tau is None:
            terms += " + noise_sigma * xi * tau ** -0.5"
        else:
            terms += " + I_noise / tau"
            state += (
                "dI_noise/dt = -I_noise / noise_tau + noise_sigma * sqrt(2 / noise_tau) * xi : 1\n"
            )
    clamp = " (unless refractory)" if biophysics.reset == "rest" else ""
    return f"dv/dt = {terms} : 1{clamp}\n{state}"


def integration_method(neuron: str, biophysics: Biophysics = _IDEAL) -> str:
    """Brian2 integration method for :func:`membrane_equations`.

    The ideal network uses the model's exact method (:attr:`NeuronEquations.method`). With a
    synaptic current, Euler is used: its geometric decay of ``I_syn`` delivers exactly the
    charge ``w`` of each spike on the grid (exponential Euler would deliver
    ``w h / (1 - exp(-h))`` with ``h = dt / tau_syn``, 13 % more at ``h = 1/4``), and noise
    needs a stochastic method (Euler-Maruyama).
    """
    if biophysics.synapse != "instantaneous" or biophysics.has_noise:
        return "euler"
    return neuron_equations(neuron).method


def forward_threshold(neuron: str) -> list[str]:
    """The conditions of a forward spike (joined by each build: ``and``, or products)."""
    return [neuron_equations(neuron).threshold, FORWARD_REFRACTORY]


def spike_reset(biophysics: Biophysics = _IDEAL, gate: str = "") -> str:
    """Membrane reset at a spike: subtract theta, or back to rest.

    With ``gate`` (a 0/1 expression) the subtraction is multiplied by it; only the
    subtractive reset can be gated.
    """
    if biophysics.reset == "rest":
        if gate:
            raise ValidationError("spike_reset: the reset to rest cannot be gated.")
        return "v = 0"
    return f"v -= theta * {gate}" if gate else "v -= theta"


def spike_code(neuron: str, biophysics: Biophysics = _IDEAL, gate: str = "") -> str:
    """Code of a forward spike on the neuron's own state: membrane reset, model increments.

    ``gate`` (a 0/1 expression) multiplies every change, for builds whose spike event also
    serves other purposes.
    """
    lines = [spike_reset(biophysics, gate)]
    for variable, increment in neuron_equations(neuron).on_spike:
        lines.append(
            f"{variable} += {increment} * {gate}" if gate else f"{variable} += {increment}"
        )
    return "\n".join(lines)


def neuron_sample_start(neuron: str, biophysics: Biophysics = _IDEAL) -> list[str]:
    """Sample-start lines of the neuron's own state: membrane, model and synaptic state."""
    lines = ["v = 0"]
    lines += [f"{variable} = {value}" for variable, value in neuron_equations(neuron).sample_start]
    synaptic = synaptic_state_reset(biophysics)
    if synaptic:
        lines += synaptic.split("\n")
    return lines


def synaptic_on_pre(biophysics: Biophysics = _IDEAL, weight: str = "w") -> str:
    """``on_pre`` code of a spike of weight ``w`` onto a layer neuron.

    ``weight`` is the delivered amount (``w``, or ``w`` times a 0/1 delivery gate).
    """
    if biophysics.synapse == "exponential":
        return f"I_syn_post += {weight}"
    if biophysics.synapse == "conductance":
        return f"g_exc_post += {weight} * int(w > 0)\ng_inh_post -= {weight} * int(w < 0)"
    return f"v_post += {weight}"


def synaptic_state_reset(biophysics: Biophysics = _IDEAL) -> str:
    """Code run at every sample start that clears the synaptic state (empty if none)."""
    if biophysics.synapse == "exponential":
        return "I_syn = 0"
    if biophysics.synapse == "conductance":
        return "g_exc = 0\ng_inh = 0"
    return ""


def biophysics_namespace(biophysics: Biophysics = _IDEAL) -> dict[str, Any]:
    """Constants the equations above read (Brian2 namespace entries)."""
    namespace: dict[str, Any] = {
        "tau_syn": biophysics.tau_syn,
        "e_exc": biophysics.e_excitatory,
        "e_inh": biophysics.e_inhibitory,
        "noise_sigma": biophysics.noise_sigma,
    }
    if biophysics.noise_tau is not None:
        namespace["noise_tau"] = biophysics.noise_tau
    return namespace


def refractory_argument(biophysics: Biophysics, refractory: Any) -> Any:
    """``refractory=`` of the NeuronGroup: the period for the clamped reset, else False."""
    return refractory if biophysics.reset == "rest" else False


def refractory_start(biophysics: Biophysics) -> str:
    """Sample-start code that ends a clamp carried over from the previous sample."""
    return "\nlastspike = t - 2 * refractory" if biophysics.reset == "rest" else ""


@dataclass(frozen=True)
class NeuronTemplate:
    """Strings that define one NeuronGroup: model, threshold, reset, sample-start code."""

    model: str
    threshold: str | None
    reset: str | None
    sample_start: str
    method: str


def forward_neuron(
    *,
    neuron: str,
    current_input: bool,
    gated_by_phase: bool,
    biophysics: Biophysics = _IDEAL,
    input_variable: str = "I_input",
    linked_input: bool = True,
) -> NeuronTemplate:
    """Template of a forward (free-phase) spiking neuron.

    Parameters
    ----------
    neuron : {'if', 'lif'}
        Neuron model (a key of :data:`NEURON_EQUATIONS`).
    current_input : bool
        If True the neuron reads the constant input current ``input_variable`` (F x), linked
        to a per-sample drive group (layer 1 with current input coding).
    gated_by_phase : bool
        If True, spikes are emitted only during the free phase (the first ``free_steps`` steps
        of each sample); the namespace must define ``free_steps`` and ``sample_steps``.
    biophysics : Biophysics
        Synapse model, reset, noise (the namespace must hold :func:`neuron_namespace`).
    input_variable : str
        Name of the input current.
    linked_input : bool
        Whether the input current is a linked variable (else a plain one, which a summed
        variable of the input synapses sets).
    """
    drive = f"({input_variable} + b)" if current_input else "b"
    model = membrane_equations(neuron=neuron, drive=drive, biophysics=biophysics)
    model += """
    b : 1
    spike_count : 1
    t_last_spike : second
    """
    if current_input:
        model += f"{input_variable} : 1{' (linked)' if linked_input else ''}\n"
    threshold = " and ".join(forward_threshold(neuron))
    if gated_by_phase:
        threshold += " and (int(t / dt + 0.5) % sample_steps) < free_steps"
    reset = f"{spike_code(neuron, biophysics)}\nt_last_spike = t\nspike_count += 1"
    sample_start = "\n".join(
        [
            *neuron_sample_start(neuron, biophysics),
            "spike_count = 0",
            "t_last_spike = t - refractory",
        ]
    )
    sample_start += refractory_start(biophysics)
    return NeuronTemplate(
        model=model,
        threshold=threshold,
        reset=reset,
        sample_start=sample_start,
        method=integration_method(neuron, biophysics),
    )


def input_neuron(*, spiking: bool, gated_by_phase: bool) -> NeuronTemplate:
    """Template of an input neuron holding the sample's value ``x`` in [0, 1].

    With ``spiking`` the neuron integrates ``x`` (``dv/dt = x / tau``), fires at ``v >= 1``
    and subtracts 1, so its rate is ``x`` spikes per ``tau``; it starts at ``v = 1/2`` so that
    its spike count rounds rather than floors (as the modified reset does for the layers).
    Without ``spiking`` it only holds ``x`` for the current-coded drive.
    """
    if not spiking:
        return NeuronTemplate(
            model="x : 1\n",
            threshold=None,
            reset=None,
            sample_start="x = sample_inputs(t, i)",
            method="euler",
        )
    threshold = "v >= 1"
    if gated_by_phase:
        threshold += " and (int(t / dt + 0.5) % sample_steps) < free_steps"
    return NeuronTemplate(
        model="dv/dt = x / tau : 1\nx : 1\nspike_count : 1\n",
        threshold=threshold,
        reset="v -= 1\nspike_count += 1",
        sample_start="x = sample_inputs(t, i)\nv = 0.5\nspike_count = 0",
        method="euler",
    )


def drive_group_equations() -> str:
    """Model of the per-sample drive group that holds F x for layer 1 (current coding).

    The group lives on a clock whose step is one sample, so the summed variable
    ``I = sum_j F_ij x_j`` is computed once per sample instead of once per step.
    """
    return "I : 1\n"
