"""Protocol pieces of learning: the perturbed phase and the SPIDE plasticity rule.

docs/algorithm.rst, section "SPIDE: free and perturbed phases". After the free phase has
produced rates ``a`` and gates ``m = 1[0 < a < 1]``, the perturbed phase runs one ternary error unit
per forward neuron::

    de_i/dt = [ s * g_i (last layer only) + (1/theta) * sum_k W_ki m_k sigma_k(t) ] / tau

where ``sigma_k = +delta`` when ``e_k >= v_b`` and ``-delta`` when ``e_k <= -v_b`` (at most one
event per tau), after which ``e_k -= sigma_k``. The signed event rate ``beta`` estimates
``s`` times the IDE adjoint (clipped to ``[-delta, delta]``). SPIDE's local rule then changes
every synapse by ``-(eta / s) (1/theta) m_post beta_post a_pre`` and the readout by
``-eta (p - y) a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brian2 import Quantity, second

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import (
    check_choice,
    check_duration,
    check_positive_float,
    check_positive_int,
)

__all__ = ["FEEDBACK_PATHS", "LOSSES", "PerturbedPhase", "SPIDEPlasticity"]

LOSSES = ("cross_entropy", "mse")
FEEDBACK_PATHS = ("transpose", "random")


@dataclass(frozen=True)
class PerturbedPhase:
    """The perturbed (backward) phase: ternary error units carry the output error backward.

    Parameters
    ----------
    duration : Quantity
        Length of the phase (e.g. ``100 * ms``); ``beta = signed events / (duration / tau)``.
    threshold : float
        Error-unit threshold V_b (default 0.5, dimensionless).
    event_size : float
        Event magnitude Delta (default 1); the unit subtracts its event, so the reset is
        ``2 V_b`` at the defaults.

    Examples
    --------
    >>> from brian2 import ms
    >>> PerturbedPhase(duration=100 * ms).threshold
    0.5
    """

    duration: Quantity
    threshold: float = 0.5
    event_size: float = 1.0
    name = "perturbed"

    def __post_init__(self) -> None:
        check_duration("PerturbedPhase", "duration", self.duration)
        check_positive_float("PerturbedPhase", "threshold", self.threshold)
        check_positive_float("PerturbedPhase", "event_size", self.event_size)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description of the phase (times in seconds)."""
        return {
            "phase": self.name,
            "duration_s": float(self.duration / second),
            "threshold": self.threshold,
            "event_size": self.event_size,
        }


@dataclass(frozen=True)
class SPIDEPlasticity:
    """SPIDE's local plasticity rule, applied at the end of every sample.

    Parameters
    ----------
    learning_rate : float
        eta (> 0), the step of plain online SGD.
    scale : float
        s (> 0): the output error enters the last layer's error units as ``s * g``. For
        online learning choose ``s`` so that ``|beta|`` lies between ``delta tau / T_b`` and
        ``delta`` (docs/algorithm.rst, section "Calibration for online learning": s = 4, eta = 0.01
        for one sample at a time).
    loss : {'cross_entropy', 'mse'}
        Loss on the readout ``o = C a + d``.
    weight_decay : float
        L2 penalty lambda >= 0 on every weight (not the biases): each update adds
        ``-eta * lambda * w`` (default 0).
    momentum : float
        Momentum mu in [0, 1) of SGD (default 0): every parameter keeps a velocity
        ``mu * velocity + gradient`` and moves by ``-eta * velocity``. The velocities are
        carried from chunk to chunk.
    batch_size : int
        B >= 1 (default 1, online learning): the gradients of B consecutive samples are summed
        inside the simulation and their mean is applied after the B-th sample (and after the
        last sample of an epoch).
    feedback : {'transpose', 'random'}
        Weights of the backward path: ``'transpose'`` sends the error through the forward
        weights themselves (one shared variable, the exact rule); ``'random'`` through fixed
        random matrices of the same shape and spread (no weight transport, as in feedback
        alignment), also for the readout's ``C^T``.
    max_feedback_gain : float
        After each chunk of samples the feedback weights are rescaled so that the loop gain
        stays at most this value (< 1), keeping the loop a contraction.
    learn_feedback : bool
        Whether the rule learns the feedback weights W_fb (default True). False keeps them at
        their value through training: the synapses of the loop get no update inside the
        simulation (only the loop-gain cap above may still scale non-zero ones down when the
        forward weights grow). With W_fb = 0 this removes the feedback loop for good (the
        ``no_feedback`` run setting of :mod:`fbsnn_brian.experiments.runs`), which shows what
        the loop adds. Implemented for SPIDE inside the simulation and for the recorded rules
        of the Trainer, on the devices of :data:`fbsnn_brian.build.devices.registry.REGISTRY`
        whose entry keeps feedback weights fixed (``Device.frozen_feedback``); the Trainer
        refuses it elsewhere, naming those devices.
    input_dropout : float
        Probability p in [0, 1) (default 0) that an input component is silenced for a whole
        training sample; the others are scaled by ``1 / (1 - p)`` so that the expected input
        current is unchanged. A regulariser used during training only: evaluation and the
        free-run build always see the whole input.

    Examples
    --------
    >>> SPIDEPlasticity(learning_rate=0.01, scale=4).loss
    'cross_entropy'
    """

    learning_rate: float = 0.01
    scale: float = 4.0
    loss: str = "cross_entropy"
    weight_decay: float = 0.0
    momentum: float = 0.0
    batch_size: int = 1
    feedback: str = "transpose"
    max_feedback_gain: float = 0.9
    input_dropout: float = 0.0
    learn_feedback: bool = True

    def __post_init__(self) -> None:
        check_positive_float("SPIDEPlasticity", "learning_rate", self.learning_rate)
        check_positive_float("SPIDEPlasticity", "scale", self.scale)
        check_choice("SPIDEPlasticity", "loss", self.loss, LOSSES)
        check_positive_float("SPIDEPlasticity", "weight_decay", self.weight_decay, allow_zero=True)
        check_choice("SPIDEPlasticity", "feedback", self.feedback, FEEDBACK_PATHS)
        check_positive_int("SPIDEPlasticity", "batch_size", self.batch_size)
        momentum = check_positive_float(
            "SPIDEPlasticity", "momentum", self.momentum, allow_zero=True
        )
        if momentum >= 1:
            raise ValidationError(
                f"SPIDEPlasticity: momentum must be in [0, 1), got {self.momentum!r}."
            )
        gain = check_positive_float("SPIDEPlasticity", "max_feedback_gain", self.max_feedback_gain)
        if gain >= 1:
            raise ValidationError(
                "SPIDEPlasticity: max_feedback_gain must be in (0, 1) to keep the feedback loop a "
                f"contraction, got {self.max_feedback_gain!r}."
            )
        if not isinstance(self.learn_feedback, bool):
            raise ValidationError(
                "SPIDEPlasticity: learn_feedback must be True or False, got "
                f"{self.learn_feedback!r}."
            )
        dropout = check_positive_float(
            "SPIDEPlasticity", "input_dropout", self.input_dropout, allow_zero=True
        )
        if dropout >= 1:
            raise ValidationError(
                f"SPIDEPlasticity: input_dropout must be in [0, 1), got {self.input_dropout!r}."
            )

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description of the rule.

        ``learn_feedback`` is listed only when False, so that the description of a rule that
        learns every weight (and with it the build keys and checkpoint fingerprints made from
        it) is the same as before the option existed.
        """
        frozen = {} if self.learn_feedback else {"learn_feedback": False}
        return {
            "rule": "spide",
            "learning_rate": self.learning_rate,
            "scale": self.scale,
            "loss": self.loss,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "batch_size": self.batch_size,
            "feedback": self.feedback,
            "max_feedback_gain": self.max_feedback_gain,
            "input_dropout": self.input_dropout,
            **frozen,
        }
