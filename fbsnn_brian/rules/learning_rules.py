"""Learning rules: SPIDE, exact IDE and the three baselines behind one interface.

``Trainer(network, protocol, rule=...)`` and ``fbsnn train --rule NAME`` accept any rule here.

* :class:`SPIDE` runs inside the simulation (free phase, perturbed phase and plasticity in one
  Brian2 run, :mod:`fbsnn_brian.build.training`), one update per sample.
* The other rules cannot run inside the simulation: the toolkit records a free-phase chunk
  (every spike of every sample), each rule computes its gradient of every sample from the
  recorded spikes in numpy (:mod:`fbsnn_brian.rules.baselines`), and the chunk's mean gradient is
  applied between chunks through the same weight path as SPIDE's (validated setters, Dale's
  projection, the feedback gain cap); see :mod:`fbsnn_brian.learning.recorded`.

Each rule states whether it is local (every synapse's update reads only quantities of its
pre- and postsynaptic neurons) and whether it needs weight transport (the backward pass reads
the forward weights), the two plausibility properties :func:`fbsnn_brian.experiments.comparison`
tabulates.

Examples
--------
>>> rule_from_name("st_rsbp").local
False
>>> sorted(RULES)
['ide', 'na', 'spide', 'spike_bp', 'st_rsbp']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian import reference
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.rules.baselines import (
    NeuronConstants,
    SampleSpikes,
    na_gradients,
    spike_bp_gradients,
    st_rsbp_gradients,
)
from fbsnn_brian.validation import check_choice, check_positive_float, describe

if TYPE_CHECKING:
    from fbsnn_brian.model.network import FeedbackNetwork

__all__ = [
    "RULES",
    "SPIDE",
    "ExactIDE",
    "LearningRule",
    "NeighbourhoodAggregation",
    "STRSBP",
    "SpikeBasedBP",
    "neuron_constants",
    "rule_from_name",
]

FloatArray = NDArray[np.float64]

_DENOMINATORS = ("lorentzian", "plain")


def neuron_constants(network: FeedbackNetwork) -> NeuronConstants:
    """The network's membrane constants in units of tau, as the baselines take them.

    A conductance synapse is described by its time constant only (the baselines model
    current-based synapses); the driving force it adds is part of what they do not know.
    """
    tau = network.tau
    biophysics = network.biophysics
    return NeuronConstants(
        v_threshold=network.v_threshold,
        theta=network.theta,
        tau_m=float(network.tau_m / tau) if network.leaky else math.inf,
        tau_syn=(0.0 if biophysics.synapse == "instantaneous" else float(biophysics.tau_syn / tau)),
        refractory=float(network.refractory / tau),
        reset=biophysics.reset,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class LearningRule:
    """A learning rule: its name, its plausibility properties and its gradient of a sample.

    Subclasses set ``name``, ``local``, ``weight_transport`` and implement :meth:`gradients`
    (the rule's estimate of dL/dparameters from one sample's recorded free-phase spikes).
    """

    name: ClassVar[str] = ""
    local: ClassVar[bool] = False
    weight_transport: ClassVar[bool] = True
    in_simulation: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def gradients(
        self, network: FeedbackNetwork, spikes: SampleSpikes, x: FloatArray, y: int
    ) -> reference.Gradients:
        """The rule's gradient estimate of one sample (every parameter of the network)."""
        raise NotImplementedError(f"{type(self).__name__} computes its update in the simulation.")

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (name, properties and settings)."""
        settings = {key: getattr(self, key) for key in self.__dataclass_fields__}
        return {
            "rule": self.name,
            "local": self.local,
            "weight_transport": self.weight_transport,
            **settings,
        }


@dataclass(frozen=True)
class SPIDE(LearningRule):
    """SPIDE: ternary error units in a perturbed phase and a local two-factor update.

    Runs inside the simulation; its settings are the protocol's SPIDEPlasticity. Local, and
    with ``feedback='transpose'`` it sends the error through the forward weights themselves
    (weight transport); ``feedback='random'`` removes that.
    """

    name: ClassVar[str] = "spide"
    local: ClassVar[bool] = True
    weight_transport: ClassVar[bool] = True
    in_simulation: ClassVar[bool] = True
    summary: ClassVar[str] = "spiking perturbed phase, local pre rate x post error rate"


@dataclass(frozen=True)
class ExactIDE(LearningRule):
    """IDE's exact implicit gradient at the recorded free-phase rates (numpy linear solve).

    Not a plausible rule: the adjoint is a global linear solve through the transposed
    weights. It is the reference every other rule is measured against.
    """

    name: ClassVar[str] = "ide"
    local: ClassVar[bool] = False
    weight_transport: ClassVar[bool] = True
    summary: ClassVar[str] = "exact implicit gradient at the recorded rates"

    def gradients(
        self, network: FeedbackNetwork, spikes: SampleSpikes, x: FloatArray, y: int
    ) -> reference.Gradients:
        rates = spikes.rates()
        gates = reference.gates_from_rates(rates, ceiling=network.max_rate)  # the actual clamp
        return reference.ide_gradients_at_rates(network.rate_model(), x, rates, y, gates=gates)


@dataclass(frozen=True)
class STRSBP(LearningRule):
    """ST-RSBP (Zhang & Li 2019): spike-train-level PSPs and one linear solve per sample.

    See :mod:`fbsnn_brian.rules.baselines.st_rsbp` for what was adapted to continuous time and to
    the feedback loop.
    """

    name: ClassVar[str] = "st_rsbp"
    local: ClassVar[bool] = False
    weight_transport: ClassVar[bool] = True
    summary: ClassVar[str] = "S-PSP count model, loop solved as one linear system"

    def gradients(
        self, network: FeedbackNetwork, spikes: SampleSpikes, x: FloatArray, y: int
    ) -> reference.Gradients:
        return st_rsbp_gradients(
            network.rate_model(), spikes, x, y, neuron=neuron_constants(network)
        )


@dataclass(frozen=True)
class NeighbourhoodAggregation(LearningRule):
    """NA (Yang, Zhang & Li 2021): one-spike-flip neighbours re-simulated on a grid.

    Parameters
    ----------
    bin_width : float
        Grid step in units of tau (default 1: the free phase of T_f tau has T_f steps; the
        cost grows as T_f squared, so keep the free phase short).
    denominator : {'lorentzian', 'plain'}
        Distance term of the aggregation. The plain form ``1 / (V_th - u)`` multiplies the
        error by up to ``1 / min_distance`` at every grid step of the backward sweep; around
        a feedback loop the product diverges (measured: a gradient norm growing about 4x
        per step, 1e10 times IDE's at T = 30 tau, cosine with IDE about 0), so this rule uses
        the authors' bounded Lorentzian factor by default and keeps the plain form as an
        option (:mod:`fbsnn_brian.rules.baselines.neighbourhood`).
    """

    name: ClassVar[str] = "na"
    local: ClassVar[bool] = False
    weight_transport: ClassVar[bool] = True
    summary: ClassVar[str] = "one-flip neighbours re-simulated per neuron and step"
    bin_width: float = 1.0
    denominator: str = "lorentzian"

    def __post_init__(self) -> None:
        check_positive_float("NeighbourhoodAggregation", "bin_width", self.bin_width)
        check_choice("NeighbourhoodAggregation", "denominator", self.denominator, _DENOMINATORS)

    def gradients(
        self, network: FeedbackNetwork, spikes: SampleSpikes, x: FloatArray, y: int
    ) -> reference.Gradients:
        return na_gradients(
            network.rate_model(),
            spikes,
            x,
            y,
            neuron=neuron_constants(network),
            bin_width=self.bin_width,
            denominator=self.denominator,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class SpikeBasedBP(LearningRule):
    """Spike-based BP with the leak-corrected derivative (Lee et al. 2020).

    Parameters
    ----------
    bin_width : float
        Grid step in units of tau on which the leaky count is taken (default 1).
    count_until_last_spike : bool
        Count presynaptic spikes only up to the postsynaptic neuron's last spike.
    """

    name: ClassVar[str] = "spike_bp"
    local: ClassVar[bool] = False
    weight_transport: ClassVar[bool] = True
    summary: ClassVar[str] = "raster-only reverse sweep, leak-corrected derivative"
    bin_width: float = 1.0
    count_until_last_spike: bool = False

    def __post_init__(self) -> None:
        check_positive_float("SpikeBasedBP", "bin_width", self.bin_width)

    def gradients(
        self, network: FeedbackNetwork, spikes: SampleSpikes, x: FloatArray, y: int
    ) -> reference.Gradients:
        return spike_bp_gradients(
            network.rate_model(),
            spikes,
            x,
            y,
            neuron=neuron_constants(network),
            bin_width=self.bin_width,
            count_until_last_spike=self.count_until_last_spike,
        )


RULES: dict[str, type[LearningRule]] = {
    rule.name: rule for rule in (SPIDE, ExactIDE, STRSBP, NeighbourhoodAggregation, SpikeBasedBP)
}


def rule_from_name(name: Any) -> LearningRule:
    """The rule called ``name`` with its default settings (``fbsnn train --rule NAME``)."""
    if not isinstance(name, str) or name not in RULES:
        raise ValidationError(
            f"rule must be one of {', '.join(repr(n) for n in sorted(RULES))}, got "
            f"{describe(name)}."
        )
    return RULES[name]()
