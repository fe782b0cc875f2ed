"""NA: backpropagated neighbourhood aggregation (Yang, Zhang & Li, ICML 2021).

NA estimates dL/d(input) of a spiking neuron at each time step by a finite difference over
its nearest "neighbour" outputs: flip the spike decision at step m, re-simulate the neuron
alone with the same input, and divide the resulting change of the loss by the input change
that the flip requires (docs/baselines.rst, section "NA")::

    delta[m] = e . (s_flipped - s) / (V_th - u[m])

with u[m] the membrane at m before the decision, s the neuron's output spikes on the grid and
e the error arriving at them. The sign is kept: adding a spike (u < V_th) needs a positive
input change, removing one (u >= V_th) a negative one. Ordinary backprop through the weights
follows, per grid step: dL/dW_ij = sum_m delta_i[m] a_j[m] and e_j[m] = sum_i W_ij delta_i[m].

The grid model (:func:`grid_model`). NA is a discrete-time method; the recorded free phase is
continuous, so it is put on a grid of width ``bin_width`` (default tau, "one step"):

* a_j[m]: the presynaptic trace, a[m] = kappa a[m-1] + (1 - kappa) s_j[m] with the recorded
  spike counts s_j[m] of step m and kappa = exp(-bin_width / tau_syn) (kappa = 0, a = s, for
  the instantaneous synapse); one spike delivers a total charge of 1 as in continuous time;
* I_i[m] = c z_i + sum_j W_ij a_j[m] (+ sum_k W^fb_ik a^N_k[m - 1] for layer 1): the input
  charge of step m, with z_i = F x + b the constant drive and c = bin_width (IF) or
  tau_m (1 - lambda) (LIF, the exact integral of a constant over one step);
* u[m] = lambda u[m-1] + I[m] with lambda = exp(-bin_width / tau_m) (1 for IF), a spike when
  u[m] >= V_th and the neuron is not refractory, then u -= theta ('subtract') or u = 0
  ('rest'). A spike at step m makes steps m+1 .. m+k-1 refractory, k = ceil(refractory /
  bin_width) (none for refractory = bin_width); for 'rest' the membrane is held at 0 and the
  input of those steps is lost. The re-simulation after a flip uses exactly this rule.

The grid model runs on the reconstructed input, so its spike decisions may differ from the
recorded ones where the membrane passes near threshold inside a step; the recorded spikes
enter only as presynaptic input and through the loss (the counts of the last layer).

Output error. The loss is on the readout of the rates a^N = count / T, so the last layer's
spikes receive e = C^T dL/dscores / T at every step. A hidden neuron's spike at step t
changes its trace at t' >= t by (1 - kappa) kappa^(t' - t), so its error per spike is the
filtered future error of its trace, e_s[t] = (1 - kappa) sum_{t' >= t} kappa^(t' - t) e_a[t'].

Feedback loops (our adaptation; the paper has none). The loop W^fb carries the last layer's
trace of step m - 1 into layer 1 at step m (a loop delay of one grid step; the recorded
network has none, which is the approximation). Then delta^l[m] needs only errors at steps
>= m, and those need delta at steps >= m: one sweep backwards in time, layers N .. 1 at each
step, collects every recurrent path through the loop into e (delta^1[m + 1] reaches the last
layer through (W^fb)^T before delta^N[m] is formed). This is backprop through time of the
grid model with NA's flip-based derivative.

What to expect (measured against IDE at the recorded rates on the hidden parameters F, W, W_fb
and b, whose gradient IDE computes and NA estimates; digits 0-19, IF, T = 30 tau; see the
tests). For an IF neuron with subtractive reset and a constant error per spike, a flip at m
acts like adding (or removing) the charge |V_th - u[m]|, which changes the final count by one
exactly when it carries the final membrane v(T) across a count boundary (adding a spike:
when u[m] <= v(T)). Averaged over the membrane's range the estimate per step is 1/theta, the
IDE slope: NA is unbiased for active neurons, but each neuron's sum scales with a random
factor set by its v(T), and near-silent neurons (gated to zero by IDE) get sizeable
gradients. In a network without feedback the cosine with IDE was 0.17-0.75 (mean 0.53, every
sample positive) for one layer of 20 neurons, and -0.60 to 0.64 (mean -0.02, half the
samples negative) for two layers (16-12), where the heavy tails of 1/(V_th - u) multiply. In
a LOOP the plain form is unstable: every step of the backward sweep can multiply the error by
up to 1/min_distance, and the gradient norm grew about 2x per grid step (9e9 times IDE's in
the median after 30 steps, one layer of 20 neurons, loop gain 0.5; 2e23 times for 16-12).
The Lorentzian factor (bounded by 1) and the time-accumulated error keep it bounded, and then
align on average, not on every sample: for one layer of 20 with the loop, cosines 0.21-0.89
(mean 0.58) and 0.20-0.78 (mean 0.48); for 16-12 with the loop, the Lorentzian form gave
-0.38 to 0.88 (mean 0.27, 3 of 20 samples negative) and the accumulated error -0.27 to 0.64
(mean 0.33, 1 of 20 negative). A cosine over every parameter hides this: the readout
gradient, identical in both, dominates the norm, and the mean over every parameter was 0.90
for the one layer without feedback and 0.88 for the Lorentzian form on 16-12.

Denominator guard. |V_th - u| below ``min_distance`` is replaced by ``min_distance``
(sign kept). Without it a membrane that lands on the threshold exactly (common on a grid with
rational inputs) gives an infinite estimate. The authors' simple clipping of
1/(V_th - u) to [-10, 10] is ``min_distance=0.1``.

Heuristics of the authors' code, off by default (our reading: descriptions of that code name a
"clipped cubic denominator", the public code we read has the clipping above and a Lorentzian
factor):

* ``denominator='lorentzian'``: sign * w / ((u - V_th)^2 + w) with w = 0.2 V_th^2 instead of
  1 / (V_th - u); bounded and smooth;
* ``accumulate_error=True``: e . (s_flipped - s) is replaced by the net change of the spike
  count times the mean error over the rest of the window (a time-accumulated error that
  ignores where in the window the flip moves spikes);
* ``rescale_layers=True``: each layer's deltas are multiplied by
  1.2 log(mean|delta^N| / (mean|delta^l| + 1e-5) + 1.02), cumulatively from the last layer
  down, after the sweep (the authors rescale during their layer-by-layer backward pass,
  which has no counterpart in a sweep through time with a loop).

Cost and memory: O(n M^2) per layer for the re-simulations (M grid steps), and the per-step
membrane and current histories, O(n M) memory: keep M short (5-30 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.reference import Gradients, LossKind, RateModel
from fbsnn_brian.rules.baselines.recorded_sample import (
    assemble_baseline_gradients,
    check_recording,
    layer_drives,
    prepare_sample,
)
from fbsnn_brian.rules.baselines.spike_trains import (
    FloatArray,
    LayerArrays,
    NeuronConstants,
    SampleSpikes,
)
from fbsnn_brian.validation import check_choice, check_positive_float, describe

__all__ = ["DenominatorKind", "GridRecord", "grid_model", "na_gradients"]

DenominatorKind = Literal["plain", "lorentzian"]
_DENOMINATORS = ("plain", "lorentzian")
# Width of the authors' Lorentzian distance factor, in units of V_th^2.
_LORENTZIAN_WIDTH = 0.2
_TIME_SLACK = 1e-9


@dataclass(frozen=True, eq=False)
class GridRecord:
    """The grid model of one recorded sample (see the module docstring).

    Every field is a tuple over layers of (n_steps, n_l) arrays.

    Attributes
    ----------
    bin_width : float
        Grid step in units of tau.
    spikes : tuple of ndarray
        Recorded spike counts per step.
    traces : tuple of ndarray
        Presynaptic traces a[m] of the recorded spikes.
    currents : tuple of ndarray
        Reconstructed input charge I[m] per step.
    membranes : tuple of ndarray
        Grid-model membrane u[m] before the spike decision.
    grid_spikes : tuple of ndarray
        The grid model's own spike decisions (0 or 1).
    refractory : tuple of ndarray of bool
        Steps at which the grid model cannot spike (no flip is possible there).
    flips : tuple of ndarray, shape (n_steps, n_steps, n_l)
        flips[m, t] = s_flipped[t] - s[t] when the decision at step m is flipped.
    """

    bin_width: float
    spikes: LayerArrays
    traces: LayerArrays
    currents: LayerArrays
    membranes: LayerArrays
    grid_spikes: LayerArrays
    refractory: tuple[NDArray[np.bool_], ...]
    flips: LayerArrays


def _traces(spikes: FloatArray, kappa: float) -> FloatArray:
    traces = np.zeros_like(spikes)
    previous = np.zeros(spikes.shape[1])
    for step, counts in enumerate(spikes):
        previous = kappa * previous + (1.0 - kappa) * counts
        traces[step] = previous
    return traces


def _simulate(
    currents: FloatArray, neuron: NeuronConstants, bin_width: float
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_], FloatArray]:
    """Run the grid model and all its one-flip neighbours at once.

    Scenario m < n_steps flips the decision at step m; scenario n_steps is the unflipped run.
    Returns the unflipped membranes, spikes and refractory steps, and the spike differences
    (n_steps flips, n_steps steps, n).
    """
    n_steps, size = currents.shape
    leak = neuron.grid_leak(bin_width)
    refractory_steps = max(1, math.ceil(neuron.refractory / bin_width - _TIME_SLACK))
    scenarios = n_steps + 1
    membrane = np.zeros((scenarios, size))
    cooldown = np.zeros((scenarios, size), dtype=np.int64)
    outputs = np.zeros((scenarios, n_steps, size))
    membranes = np.zeros((n_steps, size))
    blocked = np.zeros((n_steps, size), dtype=bool)
    for step in range(n_steps):
        refractory = cooldown > 0
        integrated = leak * membrane + currents[step]
        membrane = np.where(refractory, 0.0, integrated) if neuron.reset == "rest" else integrated
        decision = (membrane >= neuron.v_threshold) & ~refractory
        decision[step] = ~decision[step] & ~refractory[step]
        membranes[step] = membrane[-1]
        blocked[step] = refractory[-1]
        outputs[:, step] = decision
        if neuron.reset == "rest":
            membrane = np.where(decision, 0.0, membrane)
        else:
            membrane = membrane - neuron.theta * decision
        cooldown = np.where(decision, refractory_steps - 1, np.maximum(cooldown - 1, 0))
    return membranes, outputs[-1], blocked, outputs[:-1] - outputs[-1][None]


def grid_model(
    model: RateModel,
    spikes: SampleSpikes,
    x: Any,
    *,
    neuron: NeuronConstants,
    bin_width: float = 1.0,
) -> GridRecord:
    """Reconstruct currents and membranes of one recorded sample on NA's time grid.

    Parameters
    ----------
    model : RateModel
        The network whose free phase produced ``spikes``.
    spikes : SampleSpikes
        Its free-phase spikes for input ``x``.
    x : array_like, shape (n_inputs,)
        The sample's input.
    neuron : NeuronConstants
        Constants of the recorded neurons.
    bin_width : float, default 1.0
        Grid step in units of tau; must divide the window.

    Returns
    -------
    GridRecord

    Examples
    --------
    >>> import numpy as np
    >>> from fbsnn_brian.reference import RateModel
    >>> model = RateModel(
    ...     input_weights=np.array([[1.0]]), forward_weights=(),
    ...     feedback_weights=np.zeros((1, 1)), biases=(np.zeros(1),),
    ...     readout_weights=np.eye(1), readout_bias=np.zeros(1),
    ... )
    >>> spikes = SampleSpikes(
    ...     times=(np.array([1.5]),), neurons=(np.array([0]),), layer_sizes=(1,), duration=4.0
    ... )
    >>> record = grid_model(model, spikes, np.array([0.6]), neuron=NeuronConstants())
    >>> record.membranes[0][:, 0].round(2)  # 0.6, 1.2 -> spike, -0.8 + 0.6, ...
    array([ 0.6,  1.2, -0.2,  0.4])
    >>> record.grid_spikes[0][:, 0]
    array([0., 1., 0., 0.])
    """
    owner = "grid_model"
    x = check_recording(owner, model, spikes, x, neuron)
    return _grid_model(owner, model, spikes, x, neuron, bin_width)


def _grid_model(
    owner: str,
    model: RateModel,
    spikes: SampleSpikes,
    x: FloatArray,
    neuron: NeuronConstants,
    bin_width: Any,
) -> GridRecord:
    width = check_positive_float(owner, "bin_width", bin_width)
    binned = spikes.binned(width)
    kappa = neuron.synaptic_decay(width)
    traces = tuple(_traces(counts, kappa) for counts in binned)
    drive_charge = neuron.drive_per_bin(width)
    drives = layer_drives(model, x)
    currents = [
        np.broadcast_to(drive_charge * z, counts.shape).copy()
        for z, counts in zip(drives, binned, strict=True)
    ]
    for post, pre, weights in model.connections():
        incoming = traces[pre] @ weights.T
        if post == 0:  # the loop: last step's trace of layer N reaches layer 1
            currents[post][1:] += incoming[:-1]
        else:
            currents[post] += incoming
    runs = [_simulate(current, neuron, width) for current in currents]
    return GridRecord(
        bin_width=width,
        spikes=binned,
        traces=traces,
        currents=tuple(currents),
        membranes=tuple(run[0] for run in runs),
        grid_spikes=tuple(run[1] for run in runs),
        refractory=tuple(run[2] for run in runs),
        flips=tuple(run[3] for run in runs),
    )


def _inverse_distances(
    record: GridRecord, neuron: NeuronConstants, denominator: str, min_distance: float
) -> LayerArrays:
    """1 / (V_th - u[m]) per step (0 where no flip is possible), or the Lorentzian factor."""
    factors = []
    for membranes, fired, blocked in zip(
        record.membranes, record.grid_spikes, record.refractory, strict=True
    ):
        distance = neuron.v_threshold - membranes
        sign = np.where(fired > 0, -1.0, 1.0)
        if denominator == "plain":
            factor = sign / np.maximum(np.abs(distance), min_distance)
        else:
            width = _LORENTZIAN_WIDTH * neuron.v_threshold**2
            factor = sign * width / (distance**2 + width)
        factors.append(np.where(blocked, 0.0, factor))
    return tuple(factors)


def _sweep(
    model: RateModel,
    record: GridRecord,
    factors: LayerArrays,
    count_error: FloatArray,
    kappa: float,
    accumulate_error: bool,
) -> LayerArrays:
    """Deltas of every layer and step, backwards in time (see the module docstring)."""
    n_steps = record.spikes[0].shape[0]
    last = model.n_layers - 1
    deltas = [np.zeros((n_steps + 1, size)) for size in model.layer_sizes]
    filtered = [np.zeros((n_steps + 1, size)) for size in model.layer_sizes]
    spike_errors = [np.zeros((n_steps, size)) for size in model.layer_sizes]
    outgoing: list[list[tuple[int, FloatArray, int]]] = [[] for _ in model.layer_sizes]
    for post, pre, weights in model.connections():
        outgoing[pre].append((post, weights, 1 if post == 0 else 0))
    for step in reversed(range(n_steps)):
        for layer in reversed(range(model.n_layers)):
            trace_error = np.zeros(model.layer_sizes[layer])
            for post, weights, delay in outgoing[layer]:
                trace_error += weights.T @ deltas[post][step + delay]
            filtered[layer][step] = trace_error + kappa * filtered[layer][step + 1]
            spike_errors[layer][step] = (1.0 - kappa) * filtered[layer][step]
            if layer == last:
                spike_errors[layer][step] += count_error
            future = spike_errors[layer][step:]
            changes = record.flips[layer][step, step:]
            if accumulate_error:
                projection = future.mean(axis=0) * changes.sum(axis=0)
            else:
                projection = np.sum(future * changes, axis=0)
            deltas[layer][step] = projection * factors[layer][step]
    return tuple(delta[:n_steps] for delta in deltas)


def _rescale(deltas: LayerArrays) -> LayerArrays:
    """The authors' per-layer rescaling, cumulative from the last layer down."""
    scaled = list(deltas)
    cumulative = 1.0
    reference: float | None = None
    for layer in reversed(range(len(deltas))):
        current = cumulative * deltas[layer]
        mean = float(np.mean(np.abs(current)))
        factor = 1.2 * math.log(
            (reference if reference is not None else mean) / (mean + 1e-5) + 1.02
        )
        scaled[layer] = factor * current
        cumulative *= factor
        if reference is None:
            reference = float(np.mean(np.abs(scaled[layer])))
    return tuple(scaled)


def na_gradients(
    model: RateModel,
    spikes: SampleSpikes,
    x: Any,
    y: Any,
    *,
    neuron: NeuronConstants,
    bin_width: float = 1.0,
    kind: LossKind = "cross_entropy",
    min_distance: float = 0.01,
    denominator: DenominatorKind = "plain",
    accumulate_error: bool = False,
    rescale_layers: bool = False,
) -> Gradients:
    """NA gradient estimate of one recorded sample (plain form by default).

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
        Constants of the recorded neurons (the grid model uses them).
    bin_width : float, default 1.0
        Grid step in units of tau; must divide the window.
    kind : {'cross_entropy', 'mse'}, default 'cross_entropy'
        Loss on the readout of the recorded rates.
    min_distance : float, default 0.01
        Guard of the plain denominator (threshold units).
    denominator : {'plain', 'lorentzian'}, default 'plain'
        1 / (V_th - u), or the authors' Lorentzian factor.
    accumulate_error : bool, default False
        Use the time-accumulated error heuristic.
    rescale_layers : bool, default False
        Apply the authors' per-layer gradient rescaling.

    Returns
    -------
    Gradients
        ``adjoint`` is theta dL/db; ``gates`` are all ones (NA passes error through every
        neuron that could flip).

    Examples
    --------
    >>> import numpy as np
    >>> from fbsnn_brian.reference import RateModel
    >>> model = RateModel(
    ...     input_weights=np.array([[1.0]]), forward_weights=(),
    ...     feedback_weights=np.zeros((1, 1)), biases=(np.zeros(1),),
    ...     readout_weights=np.array([[4.0], [0.0]]), readout_bias=np.zeros(2),
    ... )
    >>> spikes = SampleSpikes(
    ...     times=(np.array([1.5]),), neurons=(np.array([0]),), layer_sizes=(1,), duration=4.0
    ... )
    >>> gradients = na_gradients(
    ...     model, spikes, np.array([0.6]), 1, neuron=NeuronConstants(), kind="mse"
    ... )
    >>> # scores (1, 0), dL/dscores = (1, -1), e = C^T (1, -1) / T = 1 per spike; only the
    >>> # flips at steps 2 and 3
    >>> # change the count (+1), at distances 1.2 and 0.6: dL/db = 1/1.2 + 1/0.6 = 2.5
    >>> gradients.biases[0].round(6)
    array([2.5])
    """
    owner = "na_gradients"
    sample = prepare_sample(owner, model, spikes, x, y, neuron, kind)
    min_distance = check_positive_float(owner, "min_distance", min_distance)
    check_choice(owner, "denominator", denominator, _DENOMINATORS)
    for name, flag in (("accumulate_error", accumulate_error), ("rescale_layers", rescale_layers)):
        if not isinstance(flag, bool):
            raise ValidationError(f"{owner}: {name} must be True or False, got {describe(flag)}.")
    record = _grid_model(owner, model, spikes, sample.x, neuron, bin_width)
    factors = _inverse_distances(record, neuron, denominator, min_distance)
    kappa = neuron.synaptic_decay(record.bin_width)
    deltas = _sweep(model, record, factors, sample.count_error, kappa, accumulate_error)
    if rescale_layers:
        deltas = _rescale(deltas)
    connection_gradients = []
    for post, pre, _ in model.connections():
        if post == 0:
            connection_gradients.append(deltas[0][1:].T @ record.traces[pre][:-1])
        else:
            connection_gradients.append(deltas[post].T @ record.traces[pre])
    drive_charge = neuron.drive_per_bin(record.bin_width)
    drive_gradients = tuple(drive_charge * delta.sum(axis=0) for delta in deltas)
    gates = tuple(np.ones(size) for size in model.layer_sizes)
    return assemble_baseline_gradients(model, sample, connection_gradients, drive_gradients, gates)
