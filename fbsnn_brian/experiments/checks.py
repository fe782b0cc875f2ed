"""Numerical self-checks of the Brian2 simulations against the numpy reference.

``gradient_alignment``: the same comparison for any network and protocol (any biophysics,
either backward path), as a training run measures it on its trained network.
``check_equilibrium``: distance of simulated free-phase rates to the reference fixed point.
``check_gradient``: the SPIDE update computed by spikes inside the simulation, compared with the
exact IDE gradient at the same simulated rates, with the exact IDE gradient at the equilibrium,
and with central finite differences of the equilibrium loss.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian import reference
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.errors import ValidationError

__all__ = [
    "check_equilibrium",
    "check_gradient",
    "gradient_alignment",
    "parameter_arrays",
    "spike_computed_updates",
    "vector_cosine",
]

FloatArray = NDArray[np.float64]

# learning rate of a gradient estimate: weights of order 0.1-1 keep ~12 significant digits
# of an update of 1e-3 times the gradient
_ESTIMATE_STEP = 1e-3


def _digits(owner: str, n_inputs: int, n_samples: int) -> tuple[FloatArray, NDArray[np.int64]]:
    from fbsnn_brian.io.datasets import load_digits

    digits = load_digits()
    if not 1 <= n_inputs <= digits.n_features:
        raise ValidationError(
            f"{owner}: --inputs must be between 1 and {digits.n_features} (the digits' pixels), "
            f"got {n_inputs}."
        )
    if not 1 <= n_samples <= digits.n_samples:
        raise ValidationError(
            f"{owner}: --samples must be between 1 and {digits.n_samples}, got {n_samples}."
        )
    return digits.inputs[:n_samples, :n_inputs], digits.labels[:n_samples]


def _positive(owner: str, name: str, value: float) -> None:
    if not np.isfinite(value) or value <= 0:
        raise ValidationError(f"{owner}: {name} must be a positive number of tau, got {value}.")


def check_equilibrium(
    *,
    layer_sizes: Sequence[int] = (100,),
    n_inputs: int = 64,
    duration_tau: float = 30.0,
    n_samples: int = 5,
    seed: int = 0,
    device: str = "runtime",
    neuron: str = "if",
) -> dict[str, Any]:
    """Distance between simulated free-phase rates and the reference fixed point.

    A random contraction network (seeded) sees the first ``n_samples`` digits (the first
    ``n_inputs`` of their 64 pixel features) for ``duration_tau`` units of tau.

    Returns
    -------
    dict
        ``mean_abs_error``, ``max_abs_error`` (over all neurons and samples),
        ``active_mean_abs_error`` (over the neurons whose fixed-point rate is above zero:
        ``n_active`` of ``n_rates`` neuron-sample pairs; silent neurons are trivially right and
        dilute the mean), ``duration_tau``, ``n_neurons``, ``n_samples``, ``device``,
        ``wall_time_s`` and the per-layer mean errors.
    """
    from brian2 import ms

    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    owner = "fbsnn check equilibrium"
    inputs, _ = _digits(owner, n_inputs, n_samples)
    _positive(owner, "--duration", duration_tau)
    network = FeedbackNetwork(
        n_inputs=n_inputs, layer_sizes=list(layer_sizes), n_classes=10, neuron=neuron, seed=seed
    )
    protocol = Protocol([FreePhase(duration=duration_tau * network.tau)])
    start = time.perf_counter()
    recording = simulate(network, protocol, inputs=inputs, device=device)
    wall = time.perf_counter() - start
    exact = reference.fixed_point_batch(network.rate_model(), inputs)
    errors = [
        np.abs(simulated - rates)
        for simulated, rates in zip(recording.layer_rates(), exact, strict=True)
    ]
    everything = np.concatenate([e.ravel() for e in errors])
    # neurons silent at the fixed point are trivially right: the active ones show the error
    active = np.concatenate([(rates > 0).ravel() for rates in exact])
    return {
        "mean_abs_error": float(everything.mean()),
        "max_abs_error": float(everything.max()),
        "active_mean_abs_error": float(everything[active].mean()) if active.any() else None,
        "n_active": int(active.sum()),
        "n_rates": int(active.size),
        "layer_mean_abs_error": [float(e.mean()) for e in errors],
        "mean_rate": float(np.concatenate([r.ravel() for r in recording.layer_rates()]).mean()),
        "duration_tau": float(duration_tau),
        "duration_ms": float(duration_tau * network.tau / ms),
        "n_neurons": network.n_neurons,
        "layer_sizes": list(network.layer_sizes),
        "n_samples": int(n_samples),
        "loop_gain": network.loop_gain(),
        "device": device,
        "wall_time_s": wall,
    }


def vector_cosine(first: FloatArray, second: FloatArray) -> float:
    """Cosine of the angle between two vectors (NaN if either is zero)."""
    norm = float(np.linalg.norm(first) * np.linalg.norm(second))
    return float(first @ second / norm) if norm > 0 else float("nan")


def _finite_differences(
    model: reference.RateModel,
    x: FloatArray,
    label: int,
    coordinates: NDArray[np.int64],
    epsilon: float = 1e-6,
) -> FloatArray:
    """Central differences of the equilibrium loss along chosen parameter coordinates."""
    shapes = [
        ("input_weights", model.input_weights.shape),
        *[(f"forward_weights.{k}", w.shape) for k, w in enumerate(model.forward_weights)],
        ("feedback_weights", model.feedback_weights.shape),
        *[(f"biases.{k}", b.shape) for k, b in enumerate(model.biases)],
        ("readout_weights", model.readout_weights.shape),
        ("readout_bias", model.readout_bias.shape),
    ]
    sizes = [int(np.prod(shape)) for _, shape in shapes]

    def model_from(vector: FloatArray) -> reference.RateModel:
        parts: dict[str, Any] = {}
        offset = 0
        for (name, shape), size in zip(shapes, sizes, strict=True):
            parts[name] = vector[offset : offset + size].reshape(shape)
            offset += size
        return reference.RateModel(
            input_weights=parts["input_weights"],
            forward_weights=tuple(parts[f"forward_weights.{k}"] for k in range(model.n_layers - 1)),
            feedback_weights=parts["feedback_weights"],
            biases=tuple(parts[f"biases.{k}"] for k in range(model.n_layers)),
            readout_weights=parts["readout_weights"],
            readout_bias=parts["readout_bias"],
            theta=model.theta,
        )

    base = np.concatenate([np.ravel(parts) for parts in parameter_arrays(model)])
    result = np.empty(len(coordinates))
    for position, index in enumerate(coordinates):
        plus, minus = base.copy(), base.copy()
        plus[index] += epsilon
        minus[index] -= epsilon
        result[position] = (
            reference.loss(model_from(plus), x, label) - reference.loss(model_from(minus), x, label)
        ) / (2 * epsilon)
    return result


def parameter_arrays(model: reference.RateModel) -> list[FloatArray]:
    """Every parameter array of a rate model, in the order of its gradient vector.

    Parameters
    ----------
    model : RateModel
        The model.

    Returns
    -------
    list of ndarray
        F, every W^(l+1), W^fb, every b^l, C and d: the arrays themselves (not copies), so
        a caller can perturb one entry in place.
    """
    return [
        model.input_weights,
        *model.forward_weights,
        model.feedback_weights,
        *model.biases,
        model.readout_weights,
        model.readout_bias,
    ]


def spike_computed_updates(
    network: Any, protocol: Any, inputs: FloatArray, labels: NDArray[np.int64], device: str
) -> list[FloatArray]:
    """Minus the weight change of one training sample, per sample, on fresh network copies.

    The protocol's rule is applied with a small learning rate (divided out again), no weight
    decay and no momentum or batching, so the change is the rule's gradient estimate itself;
    the step is small so that the sign projection of Dale's law (if on) only acts on weights
    at zero.
    """
    from dataclasses import replace

    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.model.protocol import Protocol

    plasticity = replace(
        protocol.plasticity,
        learning_rate=_ESTIMATE_STEP,
        weight_decay=0.0,
        momentum=0.0,
        batch_size=1,
        input_dropout=0.0,
        max_feedback_gain=0.999,
    )
    single = Protocol(list(protocol.phases), plasticity=plasticity)
    before = parameter_arrays(network.rate_model())
    updates = []
    for k in range(len(inputs)):
        trained = copy.deepcopy(network)
        TrainingSimulation(trained, single, device=device, chunk_size=1).train_chunk(
            inputs[k : k + 1], labels[k : k + 1], _ESTIMATE_STEP
        )
        after = parameter_arrays(trained.rate_model())
        change = [np.ravel(old - new) for old, new in zip(before, after, strict=True)]
        updates.append(np.concatenate(change) / _ESTIMATE_STEP)
    return updates


def gradient_alignment(
    network: Any,
    protocol: Any,
    inputs: Any,
    labels: Any,
    *,
    device: str = "numpy",
) -> dict[str, Any]:
    """Cosine between the spike-computed update and the exact IDE gradient, per sample.

    The network's own free phase (with its biophysics) gives the rates; the exact IDE
    gradient of the ideal rate model (docs/algorithm.rst, section "IDE: the implicit
    gradient") is evaluated at those rates.
    The cosine is taken over the hidden parameters (F, W, W_fb, b), the part the perturbed
    phase computes. A LIF leak, noise or a backward path without weight transport lowers it:
    this is how a plausibility condition's learning signal is compared with the exact one.

    Parameters
    ----------
    network : FeedbackNetwork
        Not changed (each sample trains a copy).
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity.
    inputs : array_like, shape (n_samples, n_inputs)
    labels : array_like of int, shape (n_samples,)
    device : str
        Brian2 device of the simulations (runtime targets are fastest for a few samples).

    Returns
    -------
    dict
        ``cosine_vs_ide`` (mean over the samples with a finite cosine: a sample without error
        events has a zero update), ``per_sample_cosine_vs_ide``, ``n_samples`` and
        ``mean_hidden_update`` (the update's hidden parameters, averaged over the samples).
    """
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    batch = network.check_inputs(inputs, owner="gradient_alignment")
    targets = np.asarray(labels, dtype=np.int64)
    updates = spike_computed_updates(network, protocol, batch, targets, device)
    free = simulate(
        network,
        Protocol([FreePhase(duration=protocol.free_phase.duration)]),
        inputs=batch,
        device=device,
    )
    model = network.rate_model()
    n_hidden = sum(part.size for part in parameter_arrays(model)[: 2 * model.n_layers + 1])
    cosines = []
    for k, update in enumerate(updates):
        rates = tuple(layer[k] for layer in free.layer_rates())
        # the gate follows the actual clamp, tau / t_ref (not the ideal network's 1)
        gates = reference.gates_from_rates(rates, ceiling=network.max_rate)
        exact = reference.ide_gradients_at_rates(
            model, batch[k], rates, int(targets[k]), gates=gates
        )
        cosines.append(vector_cosine(update[:n_hidden], exact.parameter_vector()[:n_hidden]))
    # a sample whose update is zero (no error event: it is learned) has no cosine
    finite = [c for c in cosines if np.isfinite(c)]
    return {
        "cosine_vs_ide": float(np.mean(finite)) if finite else float("nan"),
        "per_sample_cosine_vs_ide": [float(c) for c in cosines],
        "n_samples": len(cosines),
        "mean_hidden_update": np.mean([update[:n_hidden] for update in updates], axis=0),
    }


def check_gradient(
    *,
    layer_sizes: Sequence[int] = (64,),
    free_tau: float = 30.0,
    perturbed_tau: float = 100.0,
    scale: float = 4.0,
    n_samples: int = 3,
    n_coordinates: int = 200,
    seed: int = 0,
    device: str = "numpy",
) -> dict[str, Any]:
    """Compare the in-simulation SPIDE update with the exact IDE gradient.

    For each of the first ``n_samples`` digits, a fresh copy of a random network (seeded)
    runs the free phase, the perturbed phase and the plasticity with learning rate 1 in one
    Brian2 run; minus the weight change is the spike-computed gradient estimate. It is compared
    (cosine over all learned parameters) with

    * ``cosine_vs_ide``: the exact IDE gradient at the same simulated rates and gates, i.e. the
      error of the spiking backward phase alone;
    * ``cosine_vs_ide_equilibrium``: the exact IDE gradient at the exact fixed point;
    * ``cosine_vs_finite_difference``: central finite differences (eps = 1e-6) of the
      equilibrium loss on ``n_coordinates`` random parameter coordinates.

    The cosines are taken over the hidden parameters (F, W, W_fb, b), the part computed by
    the spiking perturbed phase; ``cosine_vs_ide_all_parameters`` adds the readout. Values
    are means over samples.
    """
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    owner = "fbsnn check gradient"
    _positive(owner, "--free", free_tau)
    _positive(owner, "--perturbed", perturbed_tau)
    inputs, labels = _digits(owner, 64, n_samples)
    template = FeedbackNetwork(n_inputs=64, layer_sizes=list(layer_sizes), n_classes=10, seed=seed)
    protocol = Protocol(
        [
            FreePhase(duration=free_tau * template.tau),
            PerturbedPhase(duration=perturbed_tau * template.tau),
        ],
        plasticity=SPIDEPlasticity(learning_rate=1.0, scale=scale, max_feedback_gain=0.999),
    )
    free_rates = simulate(
        template,
        Protocol([FreePhase(duration=free_tau * template.tau)]),
        inputs=inputs,
        device=device,
    )
    rng = np.random.default_rng(seed)
    before = template.rate_model()
    # The readout update (p - y) a needs no error unit and is exact given the rates; it is
    # also the largest part of the gradient, so it is left out of the cosines: they measure
    # what the spiking perturbed phase computes (F, W, W_fb, b).
    n_hidden = sum(part.size for part in parameter_arrays(before)[: 2 * before.n_layers + 1])
    coordinates = rng.choice(n_hidden, size=min(n_coordinates, n_hidden), replace=False)
    cosines: dict[str, list[float]] = {
        "ide": [],
        "equilibrium": [],
        "fd": [],
        "fd_ide": [],
        "all": [],
    }
    start = time.perf_counter()
    updates = spike_computed_updates(template, protocol, inputs, labels, device)
    for k, estimate in enumerate(updates):
        simulated = tuple(layer[k] for layer in free_rates.layer_rates())
        label = int(labels[k])
        at_rates = reference.ide_gradients_at_rates(before, inputs[k], simulated, label)
        exact = reference.ide_gradients(before, inputs[k], label).parameter_vector()
        finite = _finite_differences(before, inputs[k], label, coordinates)
        hidden = slice(0, n_hidden)
        cosines["ide"].append(vector_cosine(estimate[hidden], at_rates.parameter_vector()[hidden]))
        cosines["all"].append(vector_cosine(estimate, at_rates.parameter_vector()))
        cosines["equilibrium"].append(vector_cosine(estimate[hidden], exact[hidden]))
        cosines["fd"].append(vector_cosine(estimate[coordinates], finite))
        cosines["fd_ide"].append(vector_cosine(exact[coordinates], finite))
    return {
        "cosine_vs_ide": float(np.mean(cosines["ide"])),
        "cosine_vs_ide_equilibrium": float(np.mean(cosines["equilibrium"])),
        "cosine_vs_finite_difference": float(np.mean(cosines["fd"])),
        "cosine_ide_vs_finite_difference": float(np.mean(cosines["fd_ide"])),
        "cosine_vs_ide_all_parameters": float(np.mean(cosines["all"])),
        "per_sample_cosine_vs_ide": [float(c) for c in cosines["ide"]],
        "n_samples": int(n_samples),
        "n_finite_difference_coordinates": len(coordinates),
        "free_duration_tau": float(free_tau),
        "perturbed_duration_tau": float(perturbed_tau),
        "scale": float(scale),
        "layer_sizes": list(template.layer_sizes),
        "device": device,
        "wall_time_s": time.perf_counter() - start,
    }
