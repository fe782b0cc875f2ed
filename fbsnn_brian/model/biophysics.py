"""Biophysics: the switches that make a FeedbackNetwork more (or less) biologically realistic.

The ideal network of docs/algorithm.rst (IF neurons, instantaneous synapses, no delay, no noise,
weights of either sign on every neuron) is what :class:`Biophysics` gives with its defaults.
Each field moves one step away from it, so that a sweep can measure what that step does to the
fixed point and to learning. The neuron model itself (IF or LIF with ``tau_m``) and the
refractory period stay fields of :class:`~fbsnn_brian.FeedbackNetwork`.

Equations (membrane ``v`` dimensionless, in units of the threshold scale; ``tau`` is the
network's rate unit; the synaptic input of a spike of weight ``w`` is written for one synapse):

``synapse='instantaneous'`` (default)
    ``v += w`` at the spike.
``synapse='exponential'`` (current-based)
    ``dI_syn/dt = -I_syn / tau_syn``, ``I_syn += w`` at the spike, and ``v`` integrates
    ``I_syn / tau_syn``. A spike still delivers a total charge ``w``, so an IF network keeps
    the fixed point of the instantaneous one; only the timing is smoothed.
``synapse='conductance'``
    Excitatory (``w > 0``) and inhibitory (``w < 0``) conductances ``g_exc``, ``g_inh`` decay
    with ``tau_syn`` and jump by ``|w|``; ``v`` integrates
    ``(g_exc (E_exc - v) / E_exc + g_inh (v - E_inh) / E_inh) / tau_syn``. At ``v = 0`` this is
    the current-based synapse; elsewhere the driving force scales the input (excitation
    weakens as ``v`` nears ``E_exc``, inhibition shunts).
``reset='subtract'`` (default)
    ``v -= theta`` at a spike, integration continues during the refractory period.
``reset='rest'``
    ``v = 0`` at a spike and ``v`` is clamped during the refractory period (the reset of
    ST-RSBP and of most biophysical models): charge arriving then is lost, so the rate falls
    below ``z / theta``.
``delay``, ``delay_spread``
    Axonal transmission delay of every spike and error event between layers: homogeneous
    ``delay``, or drawn per synapse uniformly in ``delay +- delay_spread`` (heterogeneous).
``noise_sigma``, ``noise_tau``
    Membrane noise. White (``noise_tau`` None): ``dv/dt += noise_sigma * xi / sqrt(tau)``, so
    ``v`` diffuses with standard deviation ``noise_sigma`` per ``tau``. Ornstein-Uhlenbeck
    (``noise_tau`` a time): a current ``I_noise`` with stationary standard deviation
    ``noise_sigma`` (threshold units per ``tau``) and correlation time ``noise_tau`` enters
    ``dv/dt`` as ``I_noise / tau``.
``excitatory_fraction`` (Dale's law)
    The first ``round(f n_l)`` neurons of every layer are excitatory, the rest inhibitory;
    every weight leaving a layer neuron (forward and feedback) has that neuron's sign. The
    plasticity is applied as projected gradient descent: after every update a weight that
    would change sign is set to zero. Input weights F (the input is a current, not a
    population) and the readout (a decoder, not a synapse onto neurons) are not constrained.

Examples
--------
>>> from brian2 import ms
>>> Biophysics(synapse="exponential", tau_syn=2 * ms).synapse
'exponential'
>>> Biophysics().is_ideal()
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import Quantity, ms, second

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import check_choice, check_positive_float, describe

__all__ = ["RESETS", "SYNAPSE_MODELS", "Biophysics"]

SYNAPSE_MODELS = ("instantaneous", "exponential", "conductance")
RESETS = ("subtract", "rest")


def _time(name: str, value: Any, *, allow_zero: bool) -> Quantity:
    if not isinstance(value, Quantity) or value.dim != second.dim or value.size != 1:
        raise ValidationError(
            f"Biophysics: {name} must be a Brian2 time quantity such as 2*ms, got "
            f"{describe(value)}."
        )
    seconds = float(value / second)
    if not np.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"Biophysics: {name} must be a finite time {bound}, got {value!r}.")
    return value


@dataclass(frozen=True)
class Biophysics:
    """Biophysical switches of a :class:`~fbsnn_brian.FeedbackNetwork` (see the module doc).

    Parameters
    ----------
    synapse : {'instantaneous', 'exponential', 'conductance'}
        Synapse model of the connections between layers (input weights F always act as a
        constant current).
    tau_syn : Quantity
        Synaptic time constant of the exponential and conductance synapses (default 1 ms).
    e_excitatory, e_inhibitory : float
        Reversal potentials of the conductance synapse, dimensionless in units of the
        threshold scale relative to rest (defaults 4 and -2: above threshold and below the
        lowest membrane value of the subtractive reset, ``v_threshold - theta``).
    reset : {'subtract', 'rest'}
        Reset by subtraction of theta (default), or to rest with the membrane clamped during
        the refractory period.
    delay, delay_spread : Quantity
        Transmission delay between layers and the half-width of its uniform spread across
        synapses (both default 0 ms; multiples of dt).
    noise_sigma : float
        Amplitude of the membrane noise (dimensionless, threshold units; 0 = off).
    noise_tau : Quantity, optional
        Correlation time of Ornstein-Uhlenbeck noise; None gives white noise.
    excitatory_fraction : float, optional
        Dale's law with this fraction of excitatory neurons per layer (in (0, 1]); None
        leaves weight signs free.
    """

    synapse: str = "instantaneous"
    tau_syn: Quantity = field(default_factory=lambda: 1 * ms)
    e_excitatory: float = 4.0
    e_inhibitory: float = -2.0
    reset: str = "subtract"
    delay: Quantity = field(default_factory=lambda: 0 * ms)
    delay_spread: Quantity = field(default_factory=lambda: 0 * ms)
    noise_sigma: float = 0.0
    noise_tau: Quantity | None = None
    excitatory_fraction: float | None = None

    def __post_init__(self) -> None:
        owner = "Biophysics"
        check_choice(owner, "synapse", self.synapse, SYNAPSE_MODELS)
        check_choice(owner, "reset", self.reset, RESETS)
        _time("tau_syn", self.tau_syn, allow_zero=False)
        _time("delay", self.delay, allow_zero=True)
        _time("delay_spread", self.delay_spread, allow_zero=True)
        if self.delay_spread > self.delay:
            raise ValidationError(
                f"Biophysics: delay_spread must not exceed delay (delays are never negative), "
                f"got delay_spread = {self.delay_spread!r} with delay = {self.delay!r}."
            )
        excitatory = check_positive_float(owner, "e_excitatory", self.e_excitatory)
        inhibitory = self.e_inhibitory
        if (
            isinstance(inhibitory, bool)
            or not isinstance(inhibitory, (int, float))
            or not np.isfinite(inhibitory)
            or inhibitory >= 0
        ):
            raise ValidationError(
                f"Biophysics: e_inhibitory must be a finite negative number (threshold units "
                f"relative to rest), got {describe(inhibitory)}."
            )
        object.__setattr__(self, "e_excitatory", excitatory)
        object.__setattr__(self, "e_inhibitory", float(inhibitory))
        sigma = check_positive_float(owner, "noise_sigma", self.noise_sigma, allow_zero=True)
        object.__setattr__(self, "noise_sigma", sigma)
        if self.noise_tau is not None:
            _time("noise_tau", self.noise_tau, allow_zero=False)
        if self.excitatory_fraction is not None:
            fraction = check_positive_float(owner, "excitatory_fraction", self.excitatory_fraction)
            if fraction > 1:
                raise ValidationError(
                    f"Biophysics: excitatory_fraction must be in (0, 1] or None, got "
                    f"{self.excitatory_fraction!r}."
                )
            object.__setattr__(self, "excitatory_fraction", fraction)

    @property
    def has_delays(self) -> bool:
        """Whether spikes between layers are delayed."""
        return bool(self.delay > 0 * ms)

    @property
    def has_noise(self) -> bool:
        """Whether the membranes receive noise."""
        return self.noise_sigma > 0

    def is_ideal(self) -> bool:
        """Whether every switch is at the ideal network's setting."""
        return self == Biophysics()

    def synapse_delays(self, n_synapses: int, rng: np.random.Generator) -> Quantity:
        """Per-synapse delays: ``delay`` plus a uniform draw in ``+- delay_spread``.

        The draw is rounded to whole multiples of the smallest representable step by the
        caller (Brian2 rounds a delay to dt); here it is a plain uniform draw.
        """
        spread = float(self.delay_spread / second)
        offsets = rng.uniform(-spread, spread, size=n_synapses) if spread > 0 else 0.0
        return (float(self.delay / second) + offsets) * second

    def excitatory_mask(self, size: int) -> np.ndarray:
        """Boolean mask of the excitatory neurons of a layer of ``size`` (all True without Dale)."""
        if self.excitatory_fraction is None:
            return np.ones(size, dtype=bool)
        n_excitatory = max(1, round(self.excitatory_fraction * size))
        mask = np.zeros(size, dtype=bool)
        mask[:n_excitatory] = True
        return mask

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (times in seconds)."""
        return {
            "synapse": self.synapse,
            "tau_syn_s": float(self.tau_syn / second),
            "e_excitatory": self.e_excitatory,
            "e_inhibitory": self.e_inhibitory,
            "reset": self.reset,
            "delay_s": float(self.delay / second),
            "delay_spread_s": float(self.delay_spread / second),
            "noise_sigma": self.noise_sigma,
            "noise_tau_s": None if self.noise_tau is None else float(self.noise_tau / second),
            "excitatory_fraction": self.excitatory_fraction,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Biophysics:
        """Inverse of :meth:`config`."""
        try:
            noise_tau = config["noise_tau_s"]
            return cls(
                synapse=config["synapse"],
                tau_syn=config["tau_syn_s"] * second,
                e_excitatory=config["e_excitatory"],
                e_inhibitory=config["e_inhibitory"],
                reset=config["reset"],
                delay=config["delay_s"] * second,
                delay_spread=config["delay_spread_s"] * second,
                noise_sigma=config["noise_sigma"],
                noise_tau=None if noise_tau is None else noise_tau * second,
                excitatory_fraction=config["excitatory_fraction"],
            )
        except (KeyError, TypeError) as error:
            raise ValidationError(
                f"Biophysics.from_config: incomplete or malformed configuration ({error!r})."
            ) from None
