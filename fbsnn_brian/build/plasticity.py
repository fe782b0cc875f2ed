"""SPIDE in Brian2 terms: the update of every parameter and the error units, written once.

Every training build writes its plasticity and error-unit code with these functions: the
runtime / cpp_standalone build (:mod:`fbsnn_brian.build.training_network`), where the gate,
the error rate and the free-phase rate are subexpressions of the layer groups, and the
brian2genn build (:mod:`fbsnn_brian.build.devices.genn_training_network`), which passes them
as inline expressions and synaptic counters. Each function takes the Brian2 names (or
expressions) of its operands, so a build only says where the values live.

The rule (docs/algorithm.rst, section "The local update"): for a weight ``w`` from a
presynaptic neuron of free-phase rate ``a`` to a postsynaptic neuron of gate ``m`` and
perturbed-phase error rate ``beta``::

    dL/dw = m beta a / (s theta) + lambda w

``m = [0 < spike_count < max_count]`` (the neuron was neither silent nor at the clamp),
``beta = error_count delta / T_b`` (events of the ternary error unit per tau), ``s`` the
perturbation scale and ``lambda`` the weight decay. Biases take ``m beta / (s theta)``, the
readout weights ``(p - y) a + lambda w`` and the readout biases ``p - y``, where ``p - y`` is
the output error of the loss (:func:`output_error`).
"""

from __future__ import annotations

from typing import Any

from brian2 import second

from fbsnn_brian.build.neurons import neuron_namespace
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol

__all__ = [
    "ERROR_DRIVE",
    "ERROR_REFRACTORY",
    "bias_gradient",
    "error_feedback",
    "error_jump",
    "error_rate",
    "free_rate",
    "optimizer_update",
    "output_error",
    "readout_drive",
    "readout_weight_gradient",
    "sgd_step",
    "spide_gate",
    "spide_namespace",
    "weight_gradient",
]

#: Drive of the last layer's error units by the readout's error ``g = C^T (p - y)``.
ERROR_DRIVE = "scale * g / tau"

#: The error unit is past its refractory period of one tau (half a step of slack).
ERROR_REFRACTORY = "t - t_last_error >= tau - 0.5 * dt"


def spide_namespace(
    network: FeedbackNetwork, protocol: Protocol, free_steps: int
) -> dict[str, Any]:
    """Constants of a SPIDE training build: neuron, phases, error units and plasticity.

    Shared by every training build, so that all compute with the same values.
    """
    free = protocol.free_phase.duration
    perturbed = protocol.perturbed_phase
    plasticity = protocol.plasticity
    assert perturbed is not None and plasticity is not None
    return {
        **neuron_namespace(network),
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


def spide_gate(spike_count: str) -> str:
    """The gate ``m``: 1 if the free-phase spike count is above 0 and below the clamp."""
    return f"int({spike_count} > 0) * int({spike_count} < max_count)"


def error_rate(error_count: str) -> str:
    """``beta``: the error unit's net events per tau of the perturbed phase."""
    return f"({error_count} * delta / backward_tau)"


def free_rate(count: str) -> str:
    """The free-phase rate (per tau) of a spike count (or a weighted count)."""
    return f"({count} / rate_normaliser)"


def bias_gradient(gate: str, beta: str) -> str:
    """Gradient of a layer bias: ``m beta / (s theta)``."""
    return f"{gate} * {beta} / (scale * theta)"


def weight_gradient(gate: str, beta: str, rate: str, weight: str = "w") -> str:
    """Gradient of an input, forward or feedback weight: ``m beta a / (s theta) + lambda w``."""
    return f"{gate} * {beta} * {rate} / (scale * theta) + weight_decay * {weight}"


def readout_weight_gradient(error: str, rate: str, weight: str = "w") -> str:
    """Gradient of a readout weight: ``(p - y) a + lambda w``."""
    return f"{error} * {rate} + weight_decay * {weight}"


def readout_drive(weight: str, rate: str) -> str:
    """One readout synapse's share of the class score ``o = C a``."""
    return f"{weight} * {rate}"


def output_error(loss: str) -> str:
    """``p - y`` of the loss, from the class score ``o + d``, the label and the softmax sum."""
    if loss == "cross_entropy":
        return "exp(o + d) / partition - label"
    return "o + d - label"


def error_feedback(weight: str, error: str) -> str:
    """One readout synapse's share of the last layer's error drive ``g = C^T (p - y)``."""
    return f"{weight} * {error}"


def error_jump(weight: str) -> str:
    """Jump of an error unit's membrane per error event arriving through ``weight``."""
    return f"{weight} * delta / theta"


def sgd_step(variable: str, learning_rate: str, gradient: str) -> str:
    """Plain gradient step: ``x -= eta * gradient``."""
    return f"{variable} -= {learning_rate} * ({gradient})"


def optimizer_update(variable: str, gradient: str, *, batch_size: int, momentum: float) -> str:
    """String code of one parameter's update at a sample boundary (TimedArray tables).

    The learning-rate table ``learning_rates`` is zero at boundaries without a real sample,
    so nothing changes there. Plain online SGD: ``x -= eta * gradient``. With ``batch_size``
    B > 1 the gradients of B samples are summed in ``x_accum`` and their mean is applied where
    the ``apply_updates`` table is 1 (after every B-th sample and the last of an epoch). With
    momentum mu, a velocity ``x_velocity`` takes ``mu * velocity + step`` at every applied
    update and the parameter moves by ``-eta * velocity``.
    """
    real = "int(learning_rates(t) > 0)"
    if batch_size == 1:
        if momentum == 0:
            return sgd_step(variable, "learning_rates(t)", gradient)
        step, gate, code = f"({gradient})", real, ""
    else:
        step, gate = f"{variable}_accum / batch_size", "apply_updates(t)"
        code = f"{variable}_accum += {real} * ({gradient})\n"
    if momentum == 0:
        code += f"{variable} -= {gate} * learning_rates(t) * {step}"
    else:
        code += (
            f"{variable}_velocity += {gate} * ((momentum - 1) * {variable}_velocity + {step})\n"
            f"{variable} -= {gate} * learning_rates(t) * {variable}_velocity"
        )
    if batch_size > 1:
        code += f"\n{variable}_accum *= 1 - apply_updates(t)"
    return code
