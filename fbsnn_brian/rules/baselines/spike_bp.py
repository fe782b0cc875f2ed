"""Spike-based backpropagation with a leak-corrected derivative (Lee et al., 2020).

The method treats each spiking neuron as a unit whose output is its spike count and whose
activation is its total input charge divided by the charge one spike consumes. Its
derivative is read from the neuron's own raster (docs/baselines.rst, section "Spike-based
BP"). On a grid of ``bin_width`` (default tau) with M steps, for neuron j with spike count gamma_j
and leaky count A_j = sum over its spikes of lambda^(M - 1 - m_k) (m_k the step of spike k)::

    f'_j = (1 / V) (1 + ln(lambda) A_j / gamma_j)   if gamma_j > 0, else 0

with lambda = exp(-bin_width / tau_m) (lambda = 1 for IF, so f' = 1 / V) and V the charge per
spike (:attr:`NeuronConstants.charge_per_spike`). Errors propagate as in a rate network::

    delta^l = (W^(l+1))^T delta^(l+1) * f'^l,    dL/dW^l = delta^l X^(l-1)^T

with X the presynaptic spike counts (the constant drive z = F x + b counts as the charge z T,
so dL/dF = delta^1 (T x)^T and dL/db^l = T delta^l). With ``count_until_last_spike=True`` a
presynaptic spike (or drive) counts only up to the postsynaptic neuron's last spike, as in
the authors' code: later input cannot have contributed to its count.

Size of the leak correction: ln(lambda) = -bin_width / tau_m exactly, and A_j / gamma_j lies
in [lambda^(M-1), 1], so the correction lowers f' by the fraction (bin_width / tau_m) A/gamma,
at most bin_width / tau_m: 1% for the paper's lambda = 0.99, 5% for tau_m = 20 tau on a grid
of tau (a biological 20 ms with 1 ms steps), 20% for tau_m = 5 tau. The maximum needs all
spikes at the end of the window. For a neuron firing regularly through it, A/gamma is about
(tau_m / T)(1 - exp(-T / tau_m)), so the correction is about (bin_width / T)(1 - exp(-T /
tau_m)): of order bin_width / T, almost independent of tau_m. Measured on a 64-100 LIF network
(digits, T = 30 tau, bin = tau; active neurons of 20 samples): mean 2.7% (max 5.0%) for
tau_m = 20 tau, 3.3% (max 8.2%) for 10 tau, 3.7% (max 16%) for 5 tau.

Adaptations, and what they change relative to the paper:

* Continuous time: the recorded spikes are binned on the grid only to form A_j (and the
  until-last-spike counts); lambda = exp(-bin_width / tau_m) is the leak of one grid step.
* Charge per spike: the paper's V_th is the charge a spike removes under its reset to zero.
  With the toolkit's subtractive reset a spike removes theta, so V = theta there (V = V_th
  for ``reset='rest'``); with V = V_th the gradient would be theta / V_th = 2 times too large
  per layer and the layers' relative scale would change with depth.
* Feedback networks (not in the paper): stacking every layer into one vector, the error
  equation delta = f' * (W^T delta + dL/do) has the feedback matrix W^fb in its W, so it is
  solved as one linear system delta = (I - diag(f') W^T)^(-1) (f' * dL/do) over all layers
  (the fixed point of backprop around the loop). The series converges when the loop gain
  with slopes f' is below 1, which the network's contraction condition ensures when
  f' <= 1/theta (subtractive reset); with the reset to rest (f' up to 1/V_th) it may not,
  and the direct solve still gives the fixed point unless I - diag(f') W^T is singular.
* Loss: softmax cross-entropy (or MSE) on the readout of the rates a^N = count / T instead
  of the squared error on an output integrator; dL/do^N = C^T dL/dscores / T.

For the IF neuron with subtractive reset and no saturated neuron this is exactly the IDE
gradient at the recorded rates (f' = 1 / theta on the active neurons); the two differ where
a neuron fires at every step (IDE gates it, spike-based BP does not) and with a leak.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fbsnn_brian.errors import NumericalError, ValidationError
from fbsnn_brian.reference import Gradients, LossKind, RateModel
from fbsnn_brian.reference.equilibrium import layer_offsets
from fbsnn_brian.rules.baselines.recorded_sample import assemble_baseline_gradients, prepare_sample
from fbsnn_brian.rules.baselines.spike_trains import (
    FloatArray,
    IntArray,
    LayerArrays,
    NeuronConstants,
    SampleSpikes,
)
from fbsnn_brian.validation import check_positive_float, describe

__all__ = ["leak_corrected_derivatives", "spike_bp_gradients"]


def leak_corrected_derivatives(
    spikes: SampleSpikes, *, neuron: NeuronConstants, bin_width: float = 1.0
) -> LayerArrays:
    """f' = (1/V)(1 + ln(lambda) A / gamma) of every neuron (0 for a silent one), per layer.

    Parameters
    ----------
    spikes : SampleSpikes
        The recorded free phase.
    neuron : NeuronConstants
        Supplies tau_m (lambda) and the charge per spike V.
    bin_width : float, default 1.0
        Grid step in units of tau; must divide the window.

    Examples
    --------
    >>> import numpy as np
    >>> spikes = SampleSpikes(
    ...     times=(np.array([1.0, 3.0]),), neurons=(np.array([0, 0]),),
    ...     layer_sizes=(2,), duration=4.0,
    ... )
    >>> leak_corrected_derivatives(spikes, neuron=NeuronConstants())  # IF: 1 / theta
    (array([0.5, 0. ]),)
    >>> lif = NeuronConstants(tau_m=10.0)
    >>> # lambda = exp(-0.1); spikes at steps 1 and 3 of 4: A = lambda^2 + 1
    >>> float(leak_corrected_derivatives(spikes, neuron=lif)[0][0].round(4))
    0.4545
    """
    owner = "leak_corrected_derivatives"
    if not isinstance(spikes, SampleSpikes):
        raise ValidationError(f"{owner}: spikes must be a SampleSpikes, got {describe(spikes)}.")
    if not isinstance(neuron, NeuronConstants):
        raise ValidationError(f"{owner}: neuron must be a NeuronConstants, got {describe(neuron)}.")
    width = check_positive_float(owner, "bin_width", bin_width)
    return _derivatives(spikes, neuron, width)


def _derivatives(spikes: SampleSpikes, neuron: NeuronConstants, width: float) -> LayerArrays:
    n_steps = spikes.grid_steps(width)
    log_leak = -width * neuron.leak_rate
    weights = np.exp(log_leak * (n_steps - 1 - np.arange(n_steps)))
    slopes = []
    for binned in spikes.binned(width):
        counts = binned.sum(axis=0)
        leaky = weights @ binned
        ratio = np.divide(leaky, counts, out=np.zeros_like(leaky), where=counts > 0)
        slope = (1.0 + log_leak * ratio) / neuron.charge_per_spike
        slopes.append(np.where(counts > 0, slope, 0.0))
    return tuple(slopes)


def _last_steps(binned: FloatArray) -> IntArray:
    """Grid step of each neuron's last spike (-1 if silent)."""
    steps = np.arange(binned.shape[0])[:, None]
    return np.asarray(np.where(binned > 0, steps, -1).max(axis=0), dtype=np.int64)


def _presynaptic_counts(binned: LayerArrays, post: int, pre: int, until_last: bool) -> FloatArray:
    """X_ij, the spikes of pre neuron j counted for post neuron i, of one connection."""
    n_post, n_pre = binned[post].shape[1], binned[pre].shape[1]
    if not until_last:
        return np.repeat(binned[pre].sum(axis=0)[None, :], n_post, axis=0)
    # cumulative[m] = spikes at steps <= m; a silent post neuron gets no count (its delta is 0)
    cumulative = np.vstack([np.zeros((1, n_pre)), np.cumsum(binned[pre], axis=0)])
    return np.asarray(cumulative[_last_steps(binned[post]) + 1], dtype=np.float64)


def spike_bp_gradients(
    model: RateModel,
    spikes: SampleSpikes,
    x: Any,
    y: Any,
    *,
    neuron: NeuronConstants,
    bin_width: float = 1.0,
    count_until_last_spike: bool = False,
    kind: LossKind = "cross_entropy",
) -> Gradients:
    """Spike-based BP gradient of one recorded sample, the loop solved as a fixed point.

    Parameters
    ----------
    model : RateModel
        The network whose free phase produced ``spikes``.
    spikes : SampleSpikes
        Its free-phase spikes for input ``x``.
    x : array_like, shape (n_inputs,)
        The sample's input.
    y : int
        Class label.
    neuron : NeuronConstants
        Constants of the recorded neurons.
    bin_width : float, default 1.0
        Grid step in units of tau for the leaky count; must divide the window.
    count_until_last_spike : bool, default False
        Count presynaptic spikes and drive only up to each postsynaptic neuron's last spike.
    kind : {'cross_entropy', 'mse'}, default 'cross_entropy'
        Loss on the readout of the recorded rates.

    Returns
    -------
    Gradients
        ``gates`` are 1 for neurons that fired; ``adjoint`` is theta dL/db.

    Examples
    --------
    >>> import numpy as np
    >>> from fbsnn_brian.reference import RateModel, ide_gradients_at_rates
    >>> model = RateModel(
    ...     input_weights=np.array([[1.0]]), forward_weights=(),
    ...     feedback_weights=np.array([[0.5]]), biases=(np.zeros(1),),
    ...     readout_weights=np.array([[1.0], [-1.0]]), readout_bias=np.zeros(2),
    ... )
    >>> spikes = SampleSpikes(
    ...     times=(np.array([1.0, 3.0]),), neurons=(np.array([0, 0]),),
    ...     layer_sizes=(1,), duration=4.0,
    ... )
    >>> x = np.array([0.75])
    >>> ours = spike_bp_gradients(model, spikes, x, 1, neuron=NeuronConstants())
    >>> ide = ide_gradients_at_rates(model, x, spikes.rates(), 1)
    >>> bool(np.allclose(ours.parameter_vector(), ide.parameter_vector()))
    True
    """
    owner = "spike_bp_gradients"
    sample = prepare_sample(owner, model, spikes, x, y, neuron, kind)
    width = check_positive_float(owner, "bin_width", bin_width)
    if not isinstance(count_until_last_spike, bool):
        raise ValidationError(
            f"{owner}: count_until_last_spike must be True or False, got "
            f"{describe(count_until_last_spike)}."
        )
    slopes = _derivatives(spikes, neuron, width)
    offsets = layer_offsets(model.layer_sizes)
    stacked_slopes = np.concatenate(slopes)
    system = np.eye(offsets[-1])
    for post, pre, weights in model.connections():
        rows = slice(offsets[pre], offsets[pre + 1])
        columns = slice(offsets[post], offsets[post + 1])
        system[rows, columns] -= stacked_slopes[rows, None] * weights.T
    rhs = np.zeros(offsets[-1])
    rhs[offsets[-2] :] = sample.count_error
    try:
        stacked = np.linalg.solve(system, stacked_slopes * rhs)
    except np.linalg.LinAlgError:
        raise NumericalError(
            f"{owner}: I - diag(f') W^T is singular for this sample (the feedback loop has "
            "gain 1 at the recorded slopes)."
        ) from None
    deltas = tuple(stacked[offsets[k] : offsets[k + 1]] for k in range(model.n_layers))
    binned = spikes.binned(width)
    connection_gradients = [
        deltas[post][:, None] * _presynaptic_counts(binned, post, pre, count_until_last_spike)
        for post, pre, _ in model.connections()
    ]
    if count_until_last_spike:
        windows = tuple((_last_steps(counts) + 1) * width for counts in binned)
    else:
        windows = tuple(np.full(size, spikes.duration) for size in model.layer_sizes)
    drive_gradients = tuple(delta * window for delta, window in zip(deltas, windows, strict=True))
    gates = tuple((counts.sum(axis=0) > 0).astype(np.float64) for counts in binned)
    return assemble_baseline_gradients(model, sample, connection_gradients, drive_gradients, gates)
