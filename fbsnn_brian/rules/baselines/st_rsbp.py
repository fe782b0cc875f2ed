"""ST-RSBP: spike-train level recurrent backpropagation (Zhang & Li, NeurIPS 2019).

ST-RSBP never differentiates a membrane trace. It relates every neuron's spike COUNT to the
spike trains it receives through the S-PSP e_ij, the total post-synaptic potential that
train j has contributed to neuron i when i fires, and differentiates that count model.

Count model (docs/baselines.rst, section "ST-RSBP"). With o_i the count of neuron i,
z_i = F x + b its constant drive and V the charge one spike consumes::

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

eps is the PSP of a unit-weight spike, :func:`~fbsnn_brian.rules.baselines.psp_kernel`. The
S-PSPs and the correction table live in :mod:`fbsnn_brian.rules.baselines.s_psps`; this
module builds the count model from them and differentiates it.

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

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import NumericalError, ValidationError
from fbsnn_brian.reference import Gradients, LossKind, RateModel
from fbsnn_brian.reference.equilibrium import layer_offsets
from fbsnn_brian.rules.baselines.recorded_sample import (
    assemble_baseline_gradients,
    check_recording,
    layer_drives,
    prepare_sample,
    weighted_bincount,
)
from fbsnn_brian.rules.baselines.s_psps import (
    CorrectionTable,
    connection_psps,
    correction_table,
    drive_psps_of_layer,
)
from fbsnn_brian.rules.baselines.spike_trains import (
    FloatArray,
    LayerArrays,
    NeuronConstants,
    SampleSpikes,
)
from fbsnn_brian.validation import (
    check_finite_array,
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
        drives = layer_drives(model, _checked_x("CountModel.charge", model, x))
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
        drives = layer_drives(model, _checked_x("CountModel.solve", model, x))
        system, self_terms = _system(self, model, drives)
        recorded = np.concatenate(self.counts)
        active = np.concatenate(self.active)
        drive_charge = np.concatenate(
            [z * e0 for z, e0 in zip(drives, self.drive_psps, strict=True)]
        )
        rhs = drive_charge + np.concatenate(self.residuals) - self_terms * recorded
        rhs = np.where(active, rhs, recorded)
        solution = _solve(system, rhs, "CountModel.solve")
        offsets = layer_offsets(model.layer_sizes)
        return tuple(solution[offsets[k] : offsets[k + 1]] for k in range(model.n_layers))


def _checked_x(owner: str, model: RateModel, x: Any) -> FloatArray:
    return check_finite_array(owner, "x", x, ndim=1, shape=(model.n_inputs,))


def _system(
    count: CountModel, model: RateModel, drives: LayerArrays
) -> tuple[FloatArray, FloatArray]:
    """Matrix M of the linearised model (identity rows for inactive neurons) and the
    self-coupling sum_j W_ij S_ij + z_i S_i0 of every neuron."""
    offsets = layer_offsets(model.layer_sizes)
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
    >>> model = RateModel(
    ...     input_weights=np.array([[1.0]]), forward_weights=(),
    ...     feedback_weights=np.array([[0.5]]), biases=(np.zeros(1),),
    ...     readout_weights=np.eye(1), readout_bias=np.zeros(1),
    ... )
    >>> spikes = SampleSpikes(
    ...     times=(np.array([1.0, 3.0]),), neurons=(np.array([0, 0]),),
    ...     layer_sizes=(1,), duration=4.0,
    ... )
    >>> counts = count_model(model, spikes, np.array([0.75]), neuron=NeuronConstants())
    >>> counts.predicted_counts(model, np.array([0.75]))  # (0.5 * 2 + 0.75 * 4) / theta
    (array([2.]),)
    """
    owner = "count_model"
    x = check_recording(owner, model, spikes, x, neuron)
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
        connection_psps(layers[post], layers[pre], spikes.duration, neuron)
        for post, pre, _ in model.connections()
    )
    slope_pairs = [table.slopes(c) for c in counts]
    psp_slopes = tuple(
        slope_pairs[post][0][:, None] * counts[pre][None, :] for post, pre, _ in model.connections()
    )
    drive_psps = tuple(
        drive_psps_of_layer(times, neurons, size, spikes.duration, neuron)
        for times, neurons, size in layers
    )
    if neuron.reset == "subtract":
        effective = tuple(
            weighted_bincount(
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
    sample = prepare_sample(owner, model, spikes, x, y, neuron, kind)
    counts = count_model(model, spikes, sample.x, neuron=neuron, table=table)
    system, _ = _system(counts, model, layer_drives(model, sample.x))
    offsets = layer_offsets(model.layer_sizes)
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
    return assemble_baseline_gradients(model, sample, connection_gradients, drive_gradients, gates)
