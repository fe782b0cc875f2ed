"""Brian2 equation templates of the toolkit's neurons and synapses.

This is the only module (with :mod:`fbsnn_brian.build`) that writes Brian2 equation strings.
All membrane variables are dimensionless, in units of the threshold scale; every time
constant is a Brian2 quantity supplied through the namespace of the group.

Forward neuron (ALGORITHM.md, section 2), IF::

    dv/dt = (I_input + b) / tau                       (+ instantaneous synaptic jumps v += w)

LIF adds ``- v / tau_m``. A spike is emitted when ``v >= v_threshold`` and the neuron is not
refractory (``t - t_last_spike >= refractory``); the reset subtracts ``theta`` and integration
continues during the refractory period, so no charge is lost and the stationary IF rate is
exactly ``clip(z / theta, 0, 1)`` per ``tau`` for a refractory period of ``tau``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NeuronTemplate", "drive_group_equations", "forward_neuron", "input_neuron"]


@dataclass(frozen=True)
class NeuronTemplate:
    """Strings that define one NeuronGroup: model, threshold, reset, sample-start code."""

    model: str
    threshold: str | None
    reset: str | None
    sample_start: str
    method: str


def forward_neuron(*, neuron: str, current_input: bool, gated_by_phase: bool) -> NeuronTemplate:
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
    """
    drive = "(I_input + b)" if current_input else "b"
    leak = "-v / tau_m + " if neuron == "lif" else ""
    model = f"""
    dv/dt = {leak}{drive} / tau : 1
    b : 1
    spike_count : 1
    t_last_spike : second
    """
    if current_input:
        model += "I_input : 1 (linked)\n"
    threshold = "v >= v_threshold and t - t_last_spike >= refractory - 0.5 * dt"
    if gated_by_phase:
        threshold += " and (int(t / dt + 0.5) % sample_steps) < free_steps"
    reset = "v -= theta\nt_last_spike = t\nspike_count += 1"
    sample_start = "v = 0\nspike_count = 0\nt_last_spike = t - refractory"
    return NeuronTemplate(
        model=model,
        threshold=threshold,
        reset=reset,
        sample_start=sample_start,
        method="exact" if neuron == "lif" else "euler",
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
