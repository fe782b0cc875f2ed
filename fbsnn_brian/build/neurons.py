"""Brian2 equation templates of the toolkit's neurons and synapses.

This is the only module (with :mod:`fbsnn_brian.build.free_run`) that writes Brian2 equation strings.
All membrane variables are dimensionless, in units of the threshold scale; every time
constant is a Brian2 quantity supplied through the namespace of the group.

Forward neuron (ALGORITHM.md, section 2), IF::

    dv/dt = (I_input + b) / tau                       (+ instantaneous synaptic jumps v += w)

LIF adds ``- v / tau_m``. A spike is emitted when ``v >= v_threshold`` and the neuron is not
refractory (``t - t_last_spike >= refractory``); the reset subtracts ``theta`` and integration
continues during the refractory period, so no charge is lost and the stationary IF rate is
exactly ``clip(z / theta, 0, 1)`` per ``tau`` for a refractory period of ``tau`` (for a
refractory period ``t_ref`` the clamp becomes ``tau / t_ref``).

The biophysical switches of :class:`~fbsnn_brian.model.biophysics.Biophysics` add terms to this
equation (synaptic currents or conductances, noise), change the reset, and clamp the membrane
during the refractory period for ``reset='rest'``; their equations are written here once and
used by both build modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fbsnn_brian.model.biophysics import Biophysics

__all__ = [
    "NeuronTemplate",
    "biophysics_namespace",
    "drive_group_equations",
    "forward_neuron",
    "input_neuron",
    "integration_method",
    "membrane_equations",
    "refractory_argument",
    "refractory_start",
    "spike_reset",
    "synaptic_on_pre",
    "synaptic_state_reset",
]

_IDEAL = Biophysics()


def membrane_equations(*, neuron: str, drive: str, biophysics: Biophysics = _IDEAL) -> str:
    """Model lines of the membrane ``v`` and of the synaptic and noise state it integrates.

    ``drive`` is the constant input in threshold units per ``tau`` (e.g. ``"(I_input + b)"``).
    """
    leak = "-v / tau_m + " if neuron == "lif" else ""
    terms = f"{leak}{drive} / tau"
    state = ""
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

    The ideal IF membrane has a constant derivative between spikes (Euler is exact) and the
    ideal LIF one is linear with constant coefficients (exponential Euler is exact). With a
    synaptic current, Euler is used: its geometric decay of ``I_syn`` delivers exactly the
    charge ``w`` of each spike on the grid (exponential Euler would deliver
    ``w h / (1 - exp(-h))`` with ``h = dt / tau_syn``, 13 % more at ``h = 1/4``), and noise
    needs a stochastic method (Euler-Maruyama).
    """
    if biophysics.synapse != "instantaneous" or biophysics.has_noise:
        return "euler"
    return "exponential_euler" if neuron == "lif" else "euler"


def synaptic_on_pre(biophysics: Biophysics = _IDEAL) -> str:
    """``on_pre`` code of a spike of weight ``w`` onto a layer neuron."""
    if biophysics.synapse == "exponential":
        return "I_syn_post += w"
    if biophysics.synapse == "conductance":
        return "g_exc_post += w * int(w > 0)\ng_inh_post -= w * int(w < 0)"
    return "v_post += w"


def synaptic_state_reset(biophysics: Biophysics = _IDEAL) -> str:
    """Code run at every sample start that clears the synaptic state (empty if none)."""
    if biophysics.synapse == "exponential":
        return "I_syn = 0"
    if biophysics.synapse == "conductance":
        return "g_exc = 0\ng_inh = 0"
    return ""


def spike_reset(biophysics: Biophysics = _IDEAL) -> str:
    """Membrane reset at a spike: subtract theta, or back to rest."""
    return "v = 0" if biophysics.reset == "rest" else "v -= theta"


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
) -> NeuronTemplate:
    """Template of a forward (free-phase) spiking neuron.

    Parameters
    ----------
    neuron : {'if', 'lif'}
        Neuron model.
    current_input : bool
        If True the neuron reads the constant input current ``I_input`` (F x), linked to a
        per-sample drive group (layer 1 with current input coding).
    gated_by_phase : bool
        If True, spikes are emitted only during the free phase (the first ``free_steps`` steps
        of each sample); the namespace must define ``free_steps`` and ``sample_steps``.
    biophysics : Biophysics
        Synapse model, reset, noise (the namespace must hold :func:`biophysics_namespace`).
    """
    drive = "(I_input + b)" if current_input else "b"
    model = membrane_equations(neuron=neuron, drive=drive, biophysics=biophysics)
    model += """
    b : 1
    spike_count : 1
    t_last_spike : second
    """
    if current_input:
        model += "I_input : 1 (linked)\n"
    threshold = "v >= v_threshold and t - t_last_spike >= refractory - 0.5 * dt"
    if gated_by_phase:
        threshold += " and (int(t / dt + 0.5) % sample_steps) < free_steps"
    reset = f"{spike_reset(biophysics)}\nt_last_spike = t\nspike_count += 1"
    sample_start = "v = 0\nspike_count = 0\nt_last_spike = t - refractory"
    synaptic = synaptic_state_reset(biophysics)
    if synaptic:
        sample_start += "\n" + synaptic
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
