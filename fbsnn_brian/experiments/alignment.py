"""Ground-truth gradients of the simulated network, and a rule's alignment with them.

SPIDE's update approximates the gradient of the loss of the ideal IF network. Comparing it
with that same ideal model's IDE gradient cannot show what a leak, a synapse model, a long
refractory period, noise or delays do to learning. This module measures the gradient of the
loss of the network that is actually simulated, in two independent ways that check each other:

* **Measured rate model.** The neuron configuration's transfer function is measured by
  simulating isolated neurons (:func:`fbsnn_brian.experiments.transfer.measure_transfer`), one
  per layer, each with membrane noise of the variance of that layer's synaptic input
  fluctuations in the simulated free phase (:func:`input_fluctuations`, the diffusion
  approximation); the fixed point of that rate model and its exact IDE gradient, with the
  measured slope in place of the clamp's gate, follow
  (:func:`fbsnn_brian.reference.measured_ide_gradients`).
* **Finite differences of the spiking network.** The loss of the simulated free phase (the
  readout of the measured rates, averaged over the samples) is differenced centrally along
  ``k`` random unit directions in hidden-parameter space, with a long phase so that the rate
  resolution ``1 / T`` is far below the rate change of a step, and the same random numbers
  (noise seed) for every evaluation. The simulation is built once and rerun with the weights
  passed in (``run_args`` on cpp_standalone).

Alignment is measured on the hidden parameters only (F, W, W_fb, b): the readout's update is
the same exact outer product for every rule and would dominate a cosine over all parameters.
Against the finite differences the cosine is that of the ``k`` directional derivatives (the
update's projections on the directions against the differences), an unbiased estimate of the
full cosine whose spread shrinks as ``1 / sqrt(k)``.

The keys of :func:`alignment_cosines`:

* ``cosine_vs_ideal_ide``: against the ideal IF model's IDE gradient at the simulated rates,
  with the gate at the actual clamp (``0 < a < tau / t_ref``);
* ``cosine_vs_measured_ide``: against the measured rate model's IDE gradient;
* ``cosine_vs_finite_difference``: against the finite differences;
* ``measured_ide_vs_finite_difference``: how well the two ground truths agree.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian import reference
from fbsnn_brian.build.free_run import FreeRunSimulation, simulate
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.checks import parameter_arrays, spike_computed_updates, vector_cosine
from fbsnn_brian.experiments.transfer import measure_transfer
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import FreePhase, Protocol

__all__ = [
    "GroundTruth",
    "admissible_step",
    "alignment_cosines",
    "ground_truth",
    "hidden_cosine",
    "hidden_vector",
    "input_fluctuations",
    "measure_alignment",
    "random_directions",
]

FloatArray = NDArray[np.float64]


def hidden_vector(parts: Any, n_layers: int) -> FloatArray:
    """F, W^2..W^N, W^fb and b^1..b^N of a Gradients or RateModel, as one flat vector."""
    if isinstance(parts, reference.Gradients):
        arrays = [
            parts.input_weights,
            *parts.forward_weights,
            parts.feedback_weights,
            *parts.biases,
        ]
    else:
        arrays = parameter_arrays(parts)[: 2 * n_layers + 1]
    return np.concatenate([np.ravel(array) for array in arrays])


def hidden_cosine(first: reference.Gradients, second: reference.Gradients) -> float:
    """Cosine of two gradients over the hidden parameters F, W, W_fb and b.

    The readout's gradient is the same for every rule (the readout does not spike) and would
    dominate a cosine over every parameter.
    """
    n_layers = len(first.biases)
    return vector_cosine(hidden_vector(first, n_layers), hidden_vector(second, n_layers))


def _hidden_arrays(network: FeedbackNetwork, vector: FloatArray) -> dict[str, FloatArray]:
    """Weight arrays of ``network`` with the hidden parameters replaced by ``vector``."""
    arrays = {name: np.array(value) for name, value in network.weight_arrays().items()}
    names = [
        "input_weights",
        *[f"forward_weights_{k}" for k in range(network.n_layers - 1)],
        "feedback_weights",
        *[f"biases_{k}" for k in range(network.n_layers)],
    ]
    offset = 0
    for name in names:
        size = arrays[name].size
        arrays[name] = vector[offset : offset + size].reshape(arrays[name].shape)
        offset += size
    return arrays


def input_fluctuations(
    network: FeedbackNetwork, rates: Any, inputs: FloatArray
) -> tuple[float, ...]:
    """Per layer, the RMS amplitude of the synaptic input fluctuations (white-noise units).

    A presynaptic neuron j firing at rate ``a_j`` (spikes per tau) through weight ``w_ij``
    adds variance ``w_ij^2 a_j`` per tau to neuron i's input; the sum over j, averaged over
    the layer's neurons and the samples, is the layer's ``sigma^2``. Layer 1 receives the
    feedback from the last layer (and the input spikes with ``input_coding='spikes'``), layer
    l + 1 the spikes of layer l.

    Parameters
    ----------
    network : FeedbackNetwork
    rates : sequence of ndarray, each (n_samples, n_l)
        Simulated rates of every layer.
    inputs : ndarray, shape (n_samples, n_inputs)
    """
    layers = [np.atleast_2d(np.asarray(layer, dtype=np.float64)) for layer in rates]
    variances = [layers[-1] @ (network.feedback_weights**2).T]
    if network.input_coding == "spikes":
        variances[0] = variances[0] + inputs @ (network.input_weights**2).T
    for k, weights in enumerate(network.forward_weights):
        variances.append(layers[k] @ (weights**2).T)
    return tuple(float(np.sqrt(variance.mean())) for variance in variances)


@dataclass(frozen=True)
class GroundTruth:
    """Reference gradients of the mean loss over a set of samples (hidden parameters).

    Attributes
    ----------
    ideal_ide, measured_ide : ndarray, shape (n_hidden,)
        Mean IDE gradient of the ideal model (at the simulated rates, gate at the clamp) and
        of the measured rate model.
    input_sigma : tuple of float
        Per layer, the input fluctuations the measured transfer functions include.
    directions : ndarray, shape (k, n_hidden)
        Unit directions of the finite differences.
    finite_differences : ndarray, shape (k,)
        Central differences of the simulated mean loss along them.
    step : float
        Length of the step along a direction (hidden-parameter norm): ``relative_step`` times
        the norm of the hidden parameters, halved until every perturbed network is valid.
    loss : float
        Simulated mean loss at the weights.
    wall_time_s : float
        Time the measurement took.
    """

    ideal_ide: FloatArray
    measured_ide: FloatArray
    input_sigma: tuple[float, ...]
    directions: FloatArray
    finite_differences: FloatArray
    step: float
    loss: float
    wall_time_s: float


def _simulated_loss(
    simulation: FreeRunSimulation, inputs: FloatArray, labels: NDArray[np.int64]
) -> float:
    """Mean cross-entropy of the readout of the simulated last-layer rates."""
    network = simulation.network
    last = simulation.run(inputs).layer_rates()[-1]
    scores = last @ network.readout_weights.T + network.readout_bias
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def random_directions(
    network: FeedbackNetwork, base: FloatArray, k: int, rng: np.random.Generator
) -> FloatArray:
    """``k`` random unit directions; with Dale's law, each entry scaled by its weight.

    Parameters
    ----------
    network : FeedbackNetwork
        The network whose hidden parameters are perturbed (its biophysics say whether Dale's
        law holds).
    base : ndarray
        The hidden parameters as one vector (:func:`hidden_vector`).
    k : int
        Number of directions.
    rng : numpy.random.Generator
        Source of the random numbers.

    Returns
    -------
    ndarray, shape (k, base.size)
        One unit direction per row. Without Dale's law they are Gaussian; with it every
        entry is a uniform number in [-1, 1) times the parameter, so a step smaller than 1
        keeps every weight's sign.
    """
    raw = rng.standard_normal((k, base.size))
    if network.biophysics.excitatory_fraction is not None:
        # a step along (w_i r_i) keeps every weight's sign while |step r_i| < 1
        raw = rng.uniform(-1.0, 1.0, (k, base.size)) * base[None, :]
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    return np.asarray(raw / norms, dtype=np.float64)


def admissible_step(
    network: FeedbackNetwork, base: FloatArray, directions: FloatArray, step: float
) -> float:
    """The step, halved until every perturbed network is valid (loop gain < 1, Dale's signs).

    A trained network's loop gain sits at its cap, so a step along a direction that grows
    W_fb can leave the contraction the fixed point needs; the network refuses such weights.

    Parameters
    ----------
    network : FeedbackNetwork
        The network; its weights are restored before returning.
    base : ndarray
        The hidden parameters as one vector (:func:`hidden_vector`).
    directions : ndarray, shape (k, base.size)
        The directions of the finite differences (:func:`random_directions`).
    step : float
        The step to try first.

    Returns
    -------
    float
        The largest step ``step / 2**n`` (n < 30) for which ``base +- step * direction`` is a
        valid network for every direction.

    Raises
    ------
    ValidationError
        If no such step is found.
    """
    original = {name: np.array(value) for name, value in network.weight_arrays().items()}
    try:
        for _ in range(30):
            try:
                for direction in directions:
                    for sign in (1.0, -1.0):
                        network.set_weight_arrays(
                            _hidden_arrays(network, base + sign * step * direction)
                        )
                return step
            except ValidationError:
                step /= 2
    finally:
        network.set_weight_arrays(original)
    raise ValidationError(
        "ground_truth: no finite-difference step keeps the perturbed networks valid (loop gain "
        "< 1); the network's loop gain is at 1."
    )


def _finite_differences(
    network: FeedbackNetwork,
    inputs: FloatArray,
    labels: NDArray[np.int64],
    *,
    n_directions: int,
    duration_tau: float,
    relative_step: float,
    device: str,
    seed: int,
) -> tuple[FloatArray, FloatArray, float, float]:
    work = copy.deepcopy(network)
    base = hidden_vector(work.rate_model(), work.n_layers)
    directions = random_directions(work, base, n_directions, np.random.default_rng([seed, 23]))
    step = relative_step * float(np.linalg.norm(base))
    if network.biophysics.excitatory_fraction is not None:
        step = min(step, 0.5 / float(np.max(np.abs(directions) / np.abs(base).clip(1e-300))))
    step = admissible_step(work, base, directions, step)
    simulation = FreeRunSimulation(
        work,
        Protocol([FreePhase(duration=duration_tau * network.tau)]),
        device=device,
        chunk_size=len(inputs),
        record_spikes=False,
        noise_seed=seed if network.biophysics.has_noise else None,
    )
    original = {name: np.array(value) for name, value in work.weight_arrays().items()}
    differences = np.empty(n_directions)
    try:
        centre = _simulated_loss(simulation, inputs, labels)
        for k, direction in enumerate(directions):
            losses = []
            for sign in (1.0, -1.0):
                work.set_weight_arrays(_hidden_arrays(work, base + sign * step * direction))
                losses.append(_simulated_loss(simulation, inputs, labels))
            differences[k] = (losses[0] - losses[1]) / (2 * step)
    finally:
        work.set_weight_arrays(original)
    return directions, differences, step, centre


def ground_truth(
    network: FeedbackNetwork,
    protocol: Protocol,
    inputs: Any,
    labels: Any,
    *,
    n_directions: int = 32,
    duration_tau: float = 1000.0,
    relative_step: float = 0.1,
    device: str = "cpp_standalone",
    seed: int = 0,
    transfer: Any = None,
    transfer_duration_tau: float = 2000.0,
    fluctuations: bool = True,
) -> GroundTruth:
    """The three reference gradients of the mean loss over ``inputs`` (see the module doc).

    Parameters
    ----------
    network : FeedbackNetwork
        Not changed.
    protocol : Protocol
        Its free phase gives the rates of the ideal reference.
    inputs : array_like, shape (n_samples, n_inputs)
        The training samples on which the loss is measured.
    labels : array_like of int, shape (n_samples,)
        Their class labels.
    n_directions : int
        Random directions of the finite differences.
    duration_tau : float
        Free phase of each finite-difference evaluation, in tau (rate resolution 1 / T).
    relative_step : float
        Step along a unit direction, relative to the norm of the hidden parameters.
    device : str
        Brian2 device of the finite differences (cpp_standalone: built once).
    seed : int
        Seed of the directions and of the noise (common random numbers).
    transfer : TransferFunction or sequence of TransferFunction, optional
        The measured transfer function, one for all layers or one per layer (default: one per
        layer, measured now with the layer's :func:`input_fluctuations`, cached).
    transfer_duration_tau : float
        Simulated time per current of the transfer functions measured here, in tau.
    fluctuations : bool
        Measure the transfer functions with each layer's input fluctuations (default); False:
        with constant input only (to see what the fluctuations change).
    """
    owner = "ground_truth"
    batch = network.check_inputs(inputs, owner=owner)
    targets = np.asarray(labels, dtype=np.int64)
    if targets.shape != (len(batch),):
        raise ValidationError(f"{owner}: labels must have one entry per sample.")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions < 2:
        raise ValidationError(
            f"{owner}: --directions must be an integer >= 2, got {n_directions!r}."
        )
    if not 0 < relative_step < 1:
        raise ValidationError(f"{owner}: --step must be in (0, 1), got {relative_step!r}.")
    start = time.perf_counter()
    model = network.rate_model()
    free = simulate(network, Protocol([protocol.free_phase]), inputs=batch, device="runtime")
    sigmas = input_fluctuations(network, free.layer_rates(), batch)
    if not fluctuations:
        sigmas = (0.0,) * network.n_layers
    if transfer is None:
        transfer = tuple(
            measure_transfer(
                network,
                duration_tau=transfer_duration_tau,
                device="runtime",
                noise_seed=seed,
                input_sigma=sigma,
            )
            for sigma in sigmas
        )
    ideal, measured = [], []
    for k in range(len(batch)):
        rates = tuple(layer[k] for layer in free.layer_rates())
        gates = reference.gates_from_rates(rates, ceiling=network.max_rate)
        at_rates = reference.ide_gradients_at_rates(
            model, batch[k], rates, int(targets[k]), gates=gates
        )
        ideal.append(hidden_vector(at_rates, network.n_layers))
        exact = reference.measured_ide_gradients(model, batch[k], int(targets[k]), transfer)
        measured.append(hidden_vector(exact, network.n_layers))
    directions, differences, step, centre = _finite_differences(
        network,
        batch,
        targets,
        n_directions=n_directions,
        duration_tau=duration_tau,
        relative_step=relative_step,
        device=device,
        seed=seed,
    )
    return GroundTruth(
        ideal_ide=np.mean(ideal, axis=0),
        measured_ide=np.mean(measured, axis=0),
        input_sigma=sigmas,
        directions=directions,
        finite_differences=differences,
        step=step,
        loss=centre,
        wall_time_s=time.perf_counter() - start,
    )


def alignment_cosines(update: FloatArray, truth: GroundTruth) -> dict[str, float]:
    """Cosines of a mean gradient estimate (hidden parameters) with the ground truths.

    Parameters
    ----------
    update : ndarray, shape (n_hidden,)
        The rule's gradient estimate (minus its weight change per unit learning rate),
        averaged over the same samples as ``truth``, in :func:`hidden_vector`'s order.
    truth : GroundTruth
    """
    if update.shape != truth.measured_ide.shape:
        raise ValidationError(
            f"alignment_cosines: the update has {update.size} hidden parameters, the ground "
            f"truth {truth.measured_ide.size}."
        )
    return {
        "cosine_vs_ideal_ide": vector_cosine(update, truth.ideal_ide),
        "cosine_vs_measured_ide": vector_cosine(update, truth.measured_ide),
        "cosine_vs_finite_difference": vector_cosine(
            truth.directions @ update, truth.finite_differences
        ),
        "measured_ide_vs_finite_difference": vector_cosine(
            truth.directions @ truth.measured_ide, truth.finite_differences
        ),
        "n_directions": len(truth.directions),
    }


def measure_alignment(
    network: FeedbackNetwork,
    protocol: Protocol,
    inputs: Any,
    labels: Any,
    *,
    state: str = "initial",
    device: str = "cpp_standalone",
    **options: Any,
) -> dict[str, Any]:
    """SPIDE's in-simulation update against the three ground truths (hidden parameters).

    Parameters
    ----------
    network, protocol, inputs, labels
        As in :func:`ground_truth`; the protocol's SPIDEPlasticity (scale, feedback) computes
        the update (:func:`fbsnn_brian.experiments.checks.spike_computed_updates`).
    state : str
        A label for the weights measured (``'initial'`` or ``'trained'``), returned as
        ``state``.
    device : str
        Brian2 device of the update and of the finite differences.
    **options
        Passed to :func:`ground_truth`.

    Returns
    -------
    dict
        The keys of :func:`alignment_cosines`, ``state``, ``n_samples``, ``step``, ``loss`` and
        ``wall_time_s``.
    """
    batch = network.check_inputs(inputs, owner="measure_alignment")
    targets = np.asarray(labels, dtype=np.int64)
    start = time.perf_counter()
    truth = ground_truth(network, protocol, batch, targets, device=device, **options)
    updates = spike_computed_updates(network, protocol, batch, targets, device)
    n_hidden = truth.measured_ide.size
    update = np.mean([u[:n_hidden] for u in updates], axis=0)
    return {
        **alignment_cosines(update, truth),
        "state": state,
        "n_samples": len(batch),
        "step": truth.step,
        "loss": truth.loss,
        "input_sigma": list(truth.input_sigma),
        "wall_time_s": time.perf_counter() - start,
    }
