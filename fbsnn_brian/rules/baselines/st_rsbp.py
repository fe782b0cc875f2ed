"""ST-RSBP: spike-train level recurrent backpropagation (Zhang & Li, NeurIPS 2019).

ST-RSBP never differentiates a membrane trace. It relates every neuron's spike COUNT to the
spike trains it receives through the S-PSP e_ij, the total post-synaptic potential that
train j has contributed to neuron i when i fires, and differentiates that count model.

Count model (BASELINES.md, section 1). With o_i the count of neuron i, z_i = F x + b its
constant drive and V the charge one spike consumes::

    V o_i  ~  sum_j W_ij e_ij  +  z_i e_i0                                        (1)

summed over every synapse into i: forward, feedback or recurrent. e_i0 is the S-PSP of the
drive, treated as a current that enters the membrane directly (as ``(I_input + b) / tau`` in
the toolkit's equations, not through the synaptic filter).

* ``reset='rest'`` (the paper's neuron): the membrane restarts from 0 at the end of each
  refractory period r after a spike, so at each spike time t_f it holds exactly V_th = the
  potential accumulated since r. A pre spike at t_j >= r contributes eps(t_f - t_j); one at
  t_j < r survives only as synaptic current, exp(-(r - t_j)/tau_syn) eps(t_f - r) (nothing for
  an instantaneous synapse: the clamp absorbs it); pre spikes after i's last spike are not
  counted. Summing over i's spikes gives (1) with V = V_th.
* ``reset='subtract'`` (the toolkit's default): nothing is cut, each spike removes theta and
  charge is kept, so (1) is the charge balance at the end of the window with V = theta:
  e_ij = sum_tj eps(T - t_j), e_i0 = the potential of a unit drive after T, and the left
  side is theta times the reset-weighted count c_i = sum_f exp(-(T - t_f)/tau_m) (= o_i for
  IF). The error of (1) is the final membrane v_i(T), at most about max(V_th, theta - V_th)
  for a neuron that is neither inhibited below its reset nor saturated. For LIF the gradient
  uses c_i = kappa_i o_i with kappa_i = c_i / o_i read from the recording (as spike-based BP
  corrects its derivative for the leak), i.e. V_i = theta kappa_i.

eps is the PSP of a unit-weight spike, :func:`~fbsnn_brian.rules.baselines.psp_kernel`.

Gradient. Linearising (1) around the recorded counts, with P_ij = e_ij / o_j (e is
proportional to the pre count) and S_ij = de_ij/do_i (the cut makes e depend on the post
count; taken from a Monte Carlo table, see :func:`correction_table`), every active neuron's
row reads M o = (terms in W, z) with::

    M_ii = V_i - sum_j W_ij S_ij - z_i S_i0,    M_ij = -W_ij P_ij   (i != j)

and ``M^T lambda = dL/do`` gives dL/dW_ij = lambda_i e_ij, dL/dz_i = lambda_i e_i0. This is the
exact gradient of the linearised count model (checked against finite differences of
:meth:`CountModel.solve` in the tests). A neuron that is silent or fires at every refractory
period (0 < o_i < max count fails) is inactive: its count does not respond to its input, so
its row is the identity and it passes no error (IDE's gate m).

Adaptations, and what they change relative to the paper:

* Continuous time: S-PSPs are computed from exact spike times with the closed-form kernel
  instead of 1 ms steps; the correction table is rebuilt for this toolkit's constants and
  window (the paper's table is for tau_m = 64 ms, tau_s = 8 ms, 400-700 ms windows) with
  uniform random trains conditioned on the counts and the refractory period.
* Feedback networks: the paper trains recurrent "reservoir" layers with one linear solve per
  layer; here the whole loop (every layer, the forward chain and W^fb) is one block and the
  FULL matrix M is solved (the authors' code uses only diag(M) for the weight gradient), so
  for the ideal network (IF, subtractive reset, instantaneous synapse) the result equals the
  exact IDE gradient at the recorded rates.
* Subtractive reset: no cut, so (1) is the charge balance at T and the correction S = 0.
* Clamp semantics: for ``reset='rest'`` with an instantaneous synapse a jump arriving during
  the clamp is lost, as in Brian2, which makes every write to an ``(unless refractory)``
  variable (``v_post += w`` included) conditional on the neuron not being refractory.
* Loss: softmax cross-entropy (or MSE) on the readout of the rates instead of the paper's
  margin loss on output counts; dL/do^N = C^T dL/dscores / T.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import NumericalError, ValidationError
from fbsnn_brian.reference import Gradients, LossKind, RateModel
from fbsnn_brian.rules.baselines.spike_trains import (
    FloatArray,
    IntArray,
    LayerArrays,
    NeuronConstants,
    SampleSpikes,
    _assemble,
    _check_recording,
    _drive_kernel,
    _drives,
    _group_sum,
    _offsets,
    _prepare,
    _weighted_bincount,
    psp_kernel,
)
from fbsnn_brian.validation import (
    check_finite_array,
    check_positive_float,
    check_positive_int,
    describe,
)

__all__ = [
    "CorrectionTable",
    "CountModel",
    "correction_table",
    "count_model",
    "st_rsbp_gradients",
]

BoolArrays = tuple[NDArray[np.bool_], ...]
# Pairs of (post spike, pre spike) evaluated at once when S-PSPs are summed: bounds memory.
_PAIRS_PER_BLOCK = 1 << 20


def _cut_contributions(
    post: FloatArray, resets: FloatArray, pre: FloatArray, neuron: NeuronConstants
) -> FloatArray:
    """S-PSP terms of (post spike, pre spike) pairs under the reset-to-rest cut (broadcasts)."""
    precedes = pre < post
    direct = np.where(precedes & (pre >= resets), psp_kernel(post - pre, neuron=neuron), 0.0)
    if neuron.tau_syn == 0:
        return np.asarray(direct, dtype=np.float64)
    carried_current = np.exp(-np.maximum(resets - pre, 0.0) / neuron.tau_syn)
    carried = carried_current * psp_kernel(post - resets, neuron=neuron)
    return np.asarray(direct + np.where(precedes & (pre < resets), carried, 0.0), dtype=np.float64)


def _reset_times(
    times: FloatArray, neurons: IntArray, neuron: NeuronConstants
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Post spikes sorted by (neuron, time) with the end r of the clamp before each."""
    order = np.lexsort((times, neurons))
    t, i = times[order], neurons[order]
    resets = np.zeros_like(t)
    same = i[1:] == i[:-1]
    resets[1:][same] = t[:-1][same] + neuron.refractory
    return t, i, resets


def _layer_psps(
    post: tuple[FloatArray, IntArray, int],
    pre: tuple[FloatArray, IntArray, int],
    duration: float,
    neuron: NeuronConstants,
) -> FloatArray:
    """S-PSP matrix e (n_post, n_pre) of one connection."""
    (post_times, post_neurons, n_post), (pre_times, pre_neurons, n_pre) = post, pre
    if neuron.reset == "subtract":
        per_pre = _weighted_bincount(
            pre_neurons,
            weights=psp_kernel(duration - pre_times, neuron=neuron),
            minlength=n_pre,
        )
        return np.repeat(per_pre[None, :], n_post, axis=0)
    t, i, resets = _reset_times(post_times, post_neurons, neuron)
    pre_order = np.argsort(pre_neurons, kind="stable")
    pre_t, pre_i = pre_times[pre_order], pre_neurons[pre_order]
    psps = np.zeros((n_post, n_pre))
    block = max(1, _PAIRS_PER_BLOCK // max(1, pre_t.size))
    for start in range(0, t.size if pre_t.size else 0, block):
        stop = start + block
        pairs = _cut_contributions(
            t[start:stop, None], resets[start:stop, None], pre_t[None, :], neuron
        )
        per_pre = _group_sum(pairs, pre_i, n_pre, axis=1)
        psps += _group_sum(per_pre, i[start:stop], n_post, axis=0)
    return psps


def _drive_psps(
    times: FloatArray, neurons: IntArray, size: int, duration: float, neuron: NeuronConstants
) -> FloatArray:
    if neuron.reset == "subtract":
        return np.full(size, float(_drive_kernel(np.array(duration), neuron)))
    t, i, resets = _reset_times(times, neurons, neuron)
    return _weighted_bincount(i, weights=_drive_kernel(t - resets, neuron), minlength=size)


# ------------------------------------------------------------------------ correction table


@dataclass(frozen=True, eq=False)
class CorrectionTable:
    """Monte Carlo S-PSP means and their slopes de/do_i, by postsynaptic count.

    Built by :func:`correction_table`. The S-PSP is additive over presynaptic spikes and the
    random presynaptic spikes are independent and uniform, so the mean S-PSP of n_pre
    presynaptic spikes is exactly n_pre times the per-spike mean tabulated here: the paper's
    "polynomial in o_i per pre count" is n_pre times one polynomial.

    Attributes
    ----------
    neuron : NeuronConstants
    duration : float
        Window T in units of tau.
    counts : ndarray of int
        Postsynaptic counts 0 .. max count.
    mean_psp, mean_drive_psp : ndarray
        Mean S-PSP of one presynaptic spike and of a unit drive, per count (NaN at 0).
    psp_slope, drive_slope : ndarray
        Derivative in o_i of the fitted polynomials at each count (0 at count 0, and
        identically 0 for the subtractive reset, whose S-PSP does not depend on o_i).
    """

    neuron: NeuronConstants
    duration: float
    counts: IntArray
    mean_psp: FloatArray
    mean_drive_psp: FloatArray
    psp_slope: FloatArray
    drive_slope: FloatArray

    def slopes(self, post_counts: Any) -> tuple[FloatArray, FloatArray]:
        """(de/do_i per presynaptic spike, de_0/do_i) at the given postsynaptic counts."""
        index = np.clip(np.rint(np.asarray(post_counts)).astype(np.int64), 0, self.counts[-1])
        return self.psp_slope[index], self.drive_slope[index]


@functools.lru_cache(maxsize=16)
def _build_table(
    neuron: NeuronConstants, duration: float, n_trains: int, degree: int, seed: int
) -> CorrectionTable:
    rng = np.random.default_rng(seed)
    max_count = neuron.max_count(duration)
    counts = np.arange(max_count + 1)
    mean_psp = np.full(max_count + 1, np.nan)
    mean_drive = np.full(max_count + 1, np.nan)
    pre_per_train = 8
    for count in counts[1:]:
        # o spike times with gaps >= refractory: sorted uniforms on the shortened window.
        span = duration - (count - 1) * neuron.refractory
        post = np.sort(rng.uniform(0.0, span, size=(n_trains, count)), axis=1)
        post += np.arange(count) * neuron.refractory
        resets = np.zeros_like(post)
        resets[:, 1:] = post[:, :-1] + neuron.refractory
        pre = rng.uniform(0.0, duration, size=(n_trains, 1, pre_per_train))
        if neuron.reset == "subtract":
            per_spike = psp_kernel(duration - pre, neuron=neuron)
            drive = np.full(n_trains, float(_drive_kernel(np.array(duration), neuron)))
        else:
            per_spike = _cut_contributions(post[:, :, None], resets[:, :, None], pre, neuron)
            drive = _drive_kernel(post - resets, neuron).sum(axis=1)
        mean_psp[count] = float(per_spike.sum(axis=1).mean())
        mean_drive[count] = float(drive.mean())
    psp_slope = np.zeros(max_count + 1)
    drive_slope = np.zeros(max_count + 1)
    used_degree = min(degree, max_count - 1)
    if neuron.reset == "rest" and used_degree >= 1:
        observed = counts[1:].astype(np.float64)
        for means, slope in ((mean_psp, psp_slope), (mean_drive, drive_slope)):
            fitted = np.polynomial.Polynomial.fit(observed, means[1:], used_degree)
            slope[1:] = fitted.deriv()(observed)
    arrays = (counts, mean_psp, mean_drive, psp_slope, drive_slope)
    for array in arrays:
        array.setflags(write=False)
    return CorrectionTable(neuron, duration, *arrays)


def correction_table(
    neuron: NeuronConstants,
    duration: float,
    *,
    n_trains: int = 4000,
    degree: int = 3,
    seed: int = 0,
) -> CorrectionTable:
    """The de/do_i correction table for these constants and this window (cached).

    For each postsynaptic count o = 1 .. max count, ``n_trains`` random postsynaptic trains
    (o spike times uniform on [0, T) with gaps of at least the refractory period) are drawn
    with 8 uniform presynaptic spikes each; the mean S-PSP per presynaptic spike and the mean
    drive S-PSP are computed with the same cut rule as the recorded S-PSPs (so the table has
    their normalisation), a polynomial of degree ``degree`` in o is fitted to each, and its
    derivative is the slope de/do_i. Results are cached per argument set.

    Parameters
    ----------
    neuron : NeuronConstants
    duration : float
        Window T in units of tau.
    n_trains : int, default 4000
        Random postsynaptic trains per count.
    degree : int, default 3
        Degree of the fitted polynomial (lowered to max count - 1 when needed).
    seed : int, default 0
        Seed of the Monte Carlo draw.

    Examples
    --------
    >>> table = correction_table(NeuronConstants(reset="rest"), 4.0, n_trains=200)
    >>> table.counts
    array([0, 1, 2, 3, 4])
    >>> table.psp_slope.shape
    (5,)
    """
    owner = "correction_table"
    if not isinstance(neuron, NeuronConstants):
        raise ValidationError(f"{owner}: neuron must be a NeuronConstants, got {describe(neuron)}.")
    window = check_positive_float(owner, "duration", duration)
    n_trains = check_positive_int(owner, "n_trains", n_trains)
    degree = check_positive_int(owner, "degree", degree)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"{owner}: seed must be an integer >= 0, got {describe(seed)}.")
    return _build_table(neuron, float(window), n_trains, degree, int(seed))


# ---------------------------------------------------------------------------- count model


@dataclass(frozen=True, eq=False)
class CountModel:
    """The linearised ST-RSBP count model (1) of one recorded sample.

    Built by :func:`count_model`. Per-connection fields follow
    :meth:`RateModel.connections` (feedback first); per-layer fields run over layers 1..N.

    Attributes
    ----------
    neuron : NeuronConstants
    duration : float
    counts : tuple of ndarray
        Recorded spike counts o^l.
    effective_counts : tuple of ndarray
        Left side of (1) divided by V: o (reset to rest) or the reset-weighted count c
        (subtractive reset; equal to o for IF).
    psps, psp_slopes : tuple of ndarray, shape (n_post, n_pre)
        e_ij and S_ij = de_ij/do_i per connection.
    drive_psps, drive_slopes : tuple of ndarray
        e_i0 and de_i0/do_i per layer.
    thresholds : tuple of ndarray
        V_i of (1): V_th, or theta c_i / o_i (subtractive reset).
    active : tuple of ndarray of bool
        0 < o_i < max count.
    residuals : tuple of ndarray
        V_i o_i - (right side of (1)) at the recorded parameters, kept constant by
        :meth:`solve` so that the recorded counts solve the linearised model exactly.
    """

    neuron: NeuronConstants
    duration: float
    counts: LayerArrays
    effective_counts: LayerArrays
    psps: tuple[FloatArray, ...]
    psp_slopes: tuple[FloatArray, ...]
    drive_psps: LayerArrays
    drive_slopes: LayerArrays
    thresholds: LayerArrays
    active: BoolArrays
    residuals: LayerArrays

    def charge(self, model: RateModel, x: Any) -> LayerArrays:
        """Right side of (1): sum_j W_ij e_ij + z_i e_i0, per layer."""
        drives = _drives(model, _checked_x("CountModel.charge", model, x))
        charges = [drive * e0 for drive, e0 in zip(drives, self.drive_psps, strict=True)]
        for (post, _, weights), psps in zip(model.connections(), self.psps, strict=True):
            charges[post] = charges[post] + np.sum(weights * psps, axis=1)
        return tuple(charges)

    def predicted_counts(self, model: RateModel, x: Any) -> LayerArrays:
        """Counts predicted by (1): charge / V (V_th or theta); compare ``effective_counts``."""
        return tuple(c / self.neuron.charge_per_spike for c in self.charge(model, x))

    def solve(self, model: RateModel, x: Any) -> LayerArrays:
        """Counts of the linearised model (1) for (possibly changed) parameters.

        Solves V_i o_i = sum_j W_ij (P_ij o_j + S_ij (o_i - o*_i)) + z_i (e_i0 + S_i0 (o_i -
        o*_i)) + residual_i for active neurons, o_i = o*_i for inactive ones, where o* are the
        recorded counts. :func:`st_rsbp_gradients` is the exact gradient of this map.
        """
        drives = _drives(model, _checked_x("CountModel.solve", model, x))
        system, self_terms = _system(self, model, drives)
        recorded = np.concatenate(self.counts)
        active = np.concatenate(self.active)
        drive_charge = np.concatenate(
            [z * e0 for z, e0 in zip(drives, self.drive_psps, strict=True)]
        )
        rhs = drive_charge + np.concatenate(self.residuals) - self_terms * recorded
        rhs = np.where(active, rhs, recorded)
        solution = _solve(system, rhs, "CountModel.solve")
        offsets = _offsets(model.layer_sizes)
        return tuple(solution[offsets[k] : offsets[k + 1]] for k in range(model.n_layers))


def _checked_x(owner: str, model: RateModel, x: Any) -> FloatArray:
    return check_finite_array(owner, "x", x, ndim=1, shape=(model.n_inputs,))


def _system(
    count: CountModel, model: RateModel, drives: LayerArrays
) -> tuple[FloatArray, FloatArray]:
    """Matrix M of the linearised model (identity rows for inactive neurons) and the
    self-coupling sum_j W_ij S_ij + z_i S_i0 of every neuron."""
    offsets = _offsets(model.layer_sizes)
    system = np.zeros((offsets[-1], offsets[-1]))
    self_terms = np.concatenate([z * s for z, s in zip(drives, count.drive_slopes, strict=True)])
    for (post, pre, weights), psps, slopes in zip(
        model.connections(), count.psps, count.psp_slopes, strict=True
    ):
        pre_counts = count.counts[pre]
        per_spike = np.divide(
            psps, pre_counts[None, :], out=np.zeros_like(psps), where=pre_counts[None, :] > 0
        )
        rows = slice(offsets[post], offsets[post + 1])
        system[rows, offsets[pre] : offsets[pre + 1]] -= weights * per_spike
        self_terms[rows] += np.sum(weights * slopes, axis=1)
    system[np.diag_indices_from(system)] += np.concatenate(count.thresholds) - self_terms
    active = np.concatenate(count.active)
    system[~active] = 0.0
    system[~active, ~active] = 1.0
    return system, self_terms


def _solve(system: FloatArray, rhs: FloatArray, owner: str) -> FloatArray:
    try:
        return np.asarray(np.linalg.solve(system, rhs), dtype=np.float64)
    except np.linalg.LinAlgError:
        raise NumericalError(
            f"{owner}: the linearised count model is singular for this sample (a neuron's "
            "self-coupling through the S-PSP correction cancels its threshold)."
        ) from None


def count_model(
    model: RateModel,
    spikes: SampleSpikes,
    x: Any,
    *,
    neuron: NeuronConstants,
    table: CorrectionTable | None = None,
) -> CountModel:
    """S-PSPs, slopes and thresholds of the ST-RSBP count model of one recorded sample.

    Parameters
    ----------
    model : RateModel
        The network whose free phase produced ``spikes``.
    spikes : SampleSpikes
        Its free-phase spikes for input ``x``.
    x : array_like, shape (n_inputs,)
        The sample's input.
    neuron : NeuronConstants
        Constants of the recorded neurons (``theta`` must equal ``model.theta``).
    table : CorrectionTable, optional
        Default: ``correction_table(neuron, spikes.duration)``.

    Returns
    -------
    CountModel

    Examples
    --------
    >>> import numpy as np
    >>> from fbsnn_brian.reference import RateModel
    >>> model = RateModel(input_weights=np.array([[1.0]]), forward_weights=(),
    ...     feedback_weights=np.array([[0.5]]), biases=(np.zeros(1),),
    ...     readout_weights=np.eye(1), readout_bias=np.zeros(1))
    >>> spikes = SampleSpikes(times=(np.array([1.0, 3.0]),), neurons=(np.array([0, 0]),),
    ...     layer_sizes=(1,), duration=4.0)
    >>> counts = count_model(model, spikes, np.array([0.75]), neuron=NeuronConstants())
    >>> counts.predicted_counts(model, np.array([0.75]))  # (0.5 * 2 + 0.75 * 4) / theta
    (array([2.]),)
    """
    owner = "count_model"
    x = _check_recording(owner, model, spikes, x, neuron)
    if table is None:
        table = correction_table(neuron, spikes.duration)
    elif (
        not isinstance(table, CorrectionTable)
        or table.neuron != neuron
        or not np.isclose(table.duration, spikes.duration)
    ):
        raise ValidationError(
            f"{owner}: table must be a CorrectionTable built for these neuron constants and "
            f"the window T = {spikes.duration:g}, got {describe(table)}."
        )
    counts = tuple(c.astype(np.float64) for c in spikes.counts())
    layers = list(zip(spikes.times, spikes.neurons, spikes.layer_sizes, strict=True))
    psps = tuple(
        _layer_psps(layers[post], layers[pre], spikes.duration, neuron)
        for post, pre, _ in model.connections()
    )
    slope_pairs = [table.slopes(c) for c in counts]
    psp_slopes = tuple(
        slope_pairs[post][0][:, None] * counts[pre][None, :] for post, pre, _ in model.connections()
    )
    drive_psps = tuple(
        _drive_psps(times, neurons, size, spikes.duration, neuron)
        for times, neurons, size in layers
    )
    if neuron.reset == "subtract":
        effective = tuple(
            _weighted_bincount(
                neurons,
                weights=np.exp(-neuron.leak_rate * (spikes.duration - times)),
                minlength=size,
            )
            for times, neurons, size in layers
        )
        thresholds = tuple(
            neuron.theta * np.divide(c, o, out=np.ones_like(o), where=o > 0)
            for c, o in zip(effective, counts, strict=True)
        )
    else:
        effective = counts
        thresholds = tuple(np.full(o.shape, neuron.v_threshold) for o in counts)
    max_count = neuron.max_count(spikes.duration)
    partial = CountModel(
        neuron=neuron,
        duration=spikes.duration,
        counts=counts,
        effective_counts=effective,
        psps=psps,
        psp_slopes=psp_slopes,
        drive_psps=drive_psps,
        drive_slopes=tuple(pair[1] for pair in slope_pairs),
        thresholds=thresholds,
        active=tuple((o > 0) & (o < max_count) for o in counts),
        residuals=tuple(np.zeros_like(o) for o in counts),
    )
    charges = partial.charge(model, x)
    residuals = tuple(v * o - c for v, o, c in zip(thresholds, counts, charges, strict=True))
    return CountModel(**{**partial.__dict__, "residuals": residuals})


def st_rsbp_gradients(
    model: RateModel,
    spikes: SampleSpikes,
    x: Any,
    y: Any,
    *,
    neuron: NeuronConstants,
    table: CorrectionTable | None = None,
    kind: LossKind = "cross_entropy",
) -> Gradients:
    """ST-RSBP gradient of one recorded sample, the whole feedback loop solved as one block.

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
    table : CorrectionTable, optional
        Default: ``correction_table(neuron, spikes.duration)`` (cached).
    kind : {'cross_entropy', 'mse'}, default 'cross_entropy'
        Loss on the readout of the recorded rates a^N = o^N / T.

    Returns
    -------
    Gradients
        dL/dparameter for every parameter; ``gates`` are the active neurons, ``adjoint``
        is theta dL/db (IDE's m beta for the ideal network).

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
    >>> ours = st_rsbp_gradients(model, spikes, x, 1, neuron=NeuronConstants())
    >>> ide = ide_gradients_at_rates(model, x, spikes.rates(), 1)
    >>> bool(np.allclose(ours.parameter_vector(), ide.parameter_vector()))
    True
    """
    owner = "st_rsbp_gradients"
    sample = _prepare(owner, model, spikes, x, y, neuron, kind)
    counts = count_model(model, spikes, sample.x, neuron=neuron, table=table)
    system, _ = _system(counts, model, _drives(model, sample.x))
    offsets = _offsets(model.layer_sizes)
    rhs = np.zeros(offsets[-1])
    rhs[offsets[-2] :] = sample.count_error
    multipliers = _solve(system.T, rhs, owner) * np.concatenate(counts.active)
    per_layer = tuple(multipliers[offsets[k] : offsets[k + 1]] for k in range(model.n_layers))
    connection_gradients = [
        per_layer[post][:, None] * psps
        for (post, _, _), psps in zip(model.connections(), counts.psps, strict=True)
    ]
    drive_gradients = tuple(m * e0 for m, e0 in zip(per_layer, counts.drive_psps, strict=True))
    gates = tuple(a.astype(np.float64) for a in counts.active)
    return _assemble(model, sample, connection_gradients, drive_gradients, gates)
