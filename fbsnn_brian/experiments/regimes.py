"""The regimes of ``fbsnn compare``: which network each learning rule trains on.

A regime gives every rule a :class:`RuleRegime`: the neuron model, synapse, reset and
refractory period of the network it trains on, and the length of its free phase. Every rule's
network has the comparison's architecture (inputs, layers, classes), threshold, ``theta``,
``tau`` and ``dt``, and its seed, so its initial weights are the same in every regime
(:meth:`FeedbackNetwork._initialise_weights <fbsnn_brian.FeedbackNetwork>` draws them from the
seed, the sizes, ``theta`` and the feedback gain only).

``'ideal'``
    Every rule on the ideal network (IF, subtractive reset, instantaneous synapses, refractory
    period ``tau``). There ST-RSBP's count model IS the rate model, so its update is IDE's
    (see :data:`ALGEBRAICALLY_IDE` for each rule's reason).
``'paper'``
    Each baseline in the regime of its own paper (docs/baselines.rst, section "Paper
    regimes"), translated to the toolkit's time unit ``tau`` (one step, 1 ms, of the discrete-time
    papers):

    * ST-RSBP (Zhang & Li 2019): LIF ``tau_m = 64 tau``, exponential synapses
      ``tau_syn = 8 tau``, reset to rest with a refractory period of ``2 tau``, a window of
      ``100 tau`` (the paper's are 400-700 ms; 100 tau is the design's lower bound). The
      reset to rest cuts the S-PSPs at every postsynaptic spike, so the rule uses its
      Monte Carlo de/do correction table
      (:func:`~fbsnn_brian.rules.baselines.st_rsbp.correction_table`), and the leak and the
      synaptic filter enter the S-PSP kernel: its update is no longer IDE's.
    * Spike-based BP (Lee et al. 2020): LIF with a leak of ``lambda = 0.99`` per step of
      ``tau`` (``tau_m = -tau / ln 0.99``, about ``99.5 tau``), reset to rest, at most one
      spike per step (refractory ``tau``); the rule's leak-corrected derivative and
      ``V = V_th`` (:mod:`fbsnn_brian.rules.baselines.spike_bp`).
    * NA (Yang, Zhang & Li 2021): LIF ``tau_m = 5`` steps, synaptic traces ``tau_s = 2``
      steps (exponential synapses), reset to rest, one spike per step, on the grid of one
      step per ``tau`` with the authors' bounded Lorentzian distance factor and a short free
      phase (``fbsnn compare --na-free``, 10 tau), the configuration the README documents for
      it: the plain ``1 / (V_th - u)`` factor diverges around a feedback loop.
    * SPIDE and IDE on the ideal network, as in ``'ideal'``.

    A reset to rest consumes ``v_threshold`` of charge per spike (and the refractory clamp
    more), the subtractive reset ``theta``. So a reset-to-rest network of this regime fires at
    ``v_threshold = theta``: its slope ``1 / V_th`` is at most the ideal network's
    ``1 / theta``, its loop gain below the ideal network's bound, and its initial weights
    those of every regime. With the template's ``v_threshold`` (``theta / 2``) every slope
    doubles, the initial loop gain with it (0.5 becomes 1), and the fixed point is no longer
    unique; spike-based BP then solves its error loop with slopes ``1 / V_th``, near singular,
    and trained to chance: ``fbsnn compare --rules spike_bp --regime paper --seeds 1 --epochs 2
    --directions 0`` measured 13.8 % training accuracy with ``V_th = theta / 2``, 94.8 % with
    ``V_th = theta`` (``analysis/results/spike_bp_paper_threshold/``).

Examples
--------
>>> from fbsnn_brian import FeedbackNetwork
>>> template = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
>>> paper = rule_regime("paper", "st_rsbp")
>>> network = paper.network(template, seed=1)
>>> network.neuron, network.biophysics.reset, network.biophysics.synapse
('lif', 'rest', 'exponential')
>>> ideal = rule_regime("ideal", "st_rsbp").network(template, seed=1)
>>> bool((network.input_weights == ideal.input_weights).all())
True
>>> rule_regime("ideal", "st_rsbp").algebraically_ide, paper.algebraically_ide
(True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.rules.learning_rules import RULES
from fbsnn_brian.validation import check_choice, describe

__all__ = ["ALGEBRAICALLY_IDE", "REGIMES", "RuleRegime", "rule_regime"]

#: The regimes of ``fbsnn compare --regime``.
REGIMES = ("ideal", "paper")

#: (regime, rule) pairs whose update is algebraically the exact IDE gradient at the recorded
#: rates, and why. Every other pair differs from it (tests/test_compare.py checks both claims
#: for ST-RSBP on a sample).
ALGEBRAICALLY_IDE: dict[tuple[str, str], str] = {
    ("ideal", "ide"): "ExactIDE.gradients is ide_gradients_at_rates at the recorded rates",
    ("paper", "ide"): "IDE trains on the ideal network in both regimes",
    ("ideal", "st_rsbp"): (
        "IF, subtractive reset, instantaneous synapse: the S-PSP of every presynaptic spike "
        "is 1 wherever it falls (nothing is cut, the correction S is 0) and V = theta, so the "
        "count model theta o = W o + z T is the rate model and its one linear solve is IDE's "
        "adjoint"
    ),
}

# Spike-based BP's leak of 0.99 per step of tau, as a membrane time constant in tau.
_SPIKE_BP_TAU_M = -1.0 / math.log(0.99)


@dataclass(frozen=True)
class RuleRegime:
    """The network one rule trains on, relative to the comparison's template network.

    Times are dimensionless, in units of the template's ``tau``.

    Parameters
    ----------
    neuron : {'if', 'lif'}
    tau_m : float, optional
        Membrane time constant of the LIF, in tau (None for IF).
    refractory : float
        Refractory period in tau (1: at most one spike per tau, the ideal clamp).
    synapse : {'instantaneous', 'exponential'}
    tau_syn : float, optional
        Synaptic time constant of the exponential synapse, in tau.
    reset : {'subtract', 'rest'}
    free_tau : float, optional
        The rule's free phase in tau; None: the comparison's protocol's.
    algebraically_ide : bool
        Whether the rule's update is algebraically the exact IDE gradient at the recorded
        rates on this network (:data:`ALGEBRAICALLY_IDE`).
    """

    neuron: str = "if"
    tau_m: float | None = None
    refractory: float = 1.0
    synapse: str = "instantaneous"
    tau_syn: float | None = None
    reset: str = "subtract"
    free_tau: float | None = None
    algebraically_ide: bool = False

    def network(self, template: FeedbackNetwork, *, seed: int) -> FeedbackNetwork:
        """A fresh network of this regime with the template's architecture and ``seed``.

        Only the template's sizes, ``v_threshold`` (``theta`` with a reset to rest, see the
        module docstring), ``theta``, ``tau``, ``dt``, input coding and feedback gain are used;
        the seed alone sets the initial weights.
        """
        tau = template.tau
        biophysics = Biophysics(
            synapse=self.synapse,
            reset=self.reset,
            **({} if self.tau_syn is None else {"tau_syn": self.tau_syn * tau}),
        )
        return FeedbackNetwork(
            n_inputs=template.n_inputs,
            layer_sizes=template.layer_sizes,
            n_classes=template.n_classes,
            neuron=self.neuron,
            tau_m=None if self.tau_m is None else self.tau_m * tau,
            v_threshold=template.theta if self.reset == "rest" else template.v_threshold,
            theta=template.theta,
            tau=tau,
            dt=template.dt,
            refractory=self.refractory * tau,
            input_coding=template.input_coding,
            feedback_gain=template.feedback_gain,
            seed=seed,
            biophysics=biophysics,
        )

    def describe(self) -> str:
        """One line naming the network, e.g. ``'LIF tau_m=64 tau, exponential synapse ...'``."""
        parts = ["IF" if self.neuron == "if" else f"LIF tau_m={self.tau_m:.3g} tau"]
        parts.append(
            "instantaneous synapse"
            if self.synapse == "instantaneous"
            else f"{self.synapse} synapse tau_syn={self.tau_syn:.3g} tau"
        )
        parts.append(
            "subtractive reset" if self.reset == "subtract" else "reset to rest at V_th = theta"
        )
        parts.append(f"refractory {self.refractory:g} tau")
        return ", ".join(parts)


_IDEAL = RuleRegime()

_PAPER: dict[str, RuleRegime] = {
    "st_rsbp": RuleRegime(
        neuron="lif",
        tau_m=64.0,
        refractory=2.0,
        synapse="exponential",
        tau_syn=8.0,
        reset="rest",
        free_tau=100.0,
    ),
    "spike_bp": RuleRegime(neuron="lif", tau_m=_SPIKE_BP_TAU_M, reset="rest"),
    "na": RuleRegime(neuron="lif", tau_m=5.0, synapse="exponential", tau_syn=2.0, reset="rest"),
}


def rule_regime(regime: str, rule: str) -> RuleRegime:
    """The :class:`RuleRegime` of ``rule`` (a name of :data:`RULES`) in ``regime``.

    Raises
    ------
    ValidationError
        If ``regime`` is not one of :data:`REGIMES` or ``rule`` is not a rule's name.
    """
    check_choice("rule_regime", "regime", regime, REGIMES)
    if rule not in RULES:
        raise ValidationError(
            f"rule_regime: rule must be one of {', '.join(repr(n) for n in sorted(RULES))}, "
            f"got {describe(rule)}."
        )
    base = _PAPER.get(rule, _IDEAL) if regime == "paper" else _IDEAL
    return RuleRegime(**{**base.__dict__, "algebraically_ide": (regime, rule) in ALGEBRAICALLY_IDE})
