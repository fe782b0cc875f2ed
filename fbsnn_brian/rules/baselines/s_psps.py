"""S-PSPs of ST-RSBP and their Monte Carlo correction table.

The S-PSP e_ij is the total postsynaptic potential that spike train j has contributed to
neuron i when i fires; e_i0 is the same for the neuron's constant drive z_i = F x + b. They
are the coefficients of the ST-RSBP count model (:mod:`fbsnn_brian.rules.baselines.st_rsbp`;
docs/baselines.rst, section 'ST-RSBP')::

    V o_i  ~  sum_j W_ij e_ij  +  z_i e_i0

How much of a presynaptic spike counts depends on the reset:

* ``reset='rest'``: the membrane restarts from 0 at the end of each refractory period after a
  spike, so only what arrived since then (or survives as synaptic current) counts
  (:func:`cut_contributions`); e therefore depends on the postsynaptic count o_i, and its slope
  de/do_i comes from :func:`correction_table`;
* ``reset='subtract'``: nothing is cut, e_ij = sum_tj eps(T - t_j) and the slope is 0.

eps is the PSP of a unit-weight spike (:func:`~fbsnn_brian.rules.baselines.psp_kernel`) and
the drive's kernel is :func:`~fbsnn_brian.rules.baselines.spike_trains.drive_kernel`. Times are
in units of tau, potentials in threshold units.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.rules.baselines.recorded_sample import group_sum, weighted_bincount
from fbsnn_brian.rules.baselines.spike_trains import (
    FloatArray,
    IntArray,
    NeuronConstants,
    drive_kernel,
    psp_kernel,
)
from fbsnn_brian.validation import check_positive_float, check_positive_int, describe

__all__ = [
    "CorrectionTable",
    "connection_psps",
    "correction_table",
    "cut_contributions",
    "drive_psps_of_layer",
]

# Pairs of (post spike, pre spike) evaluated at once when S-PSPs are summed: bounds memory.
_PAIRS_PER_BLOCK = 1 << 20


def cut_contributions(
    post: FloatArray, resets: FloatArray, pre: FloatArray, neuron: NeuronConstants
) -> FloatArray:
    """S-PSP terms of (post spike, pre spike) pairs under the reset-to-rest cut (broadcasts).

    A pre spike at t_j before the post spike t_f and after the end r of the clamp that
    precedes it contributes eps(t_f - t_j); one before r survives only as synaptic current,
    exp(-(r - t_j)/tau_syn) eps(t_f - r), and nothing for an instantaneous synapse (the clamp
    absorbs the jump). Pre spikes at or after t_f contribute nothing.

    Parameters
    ----------
    post : ndarray
        Post spike times t_f, in units of tau.
    resets : ndarray
        End r of the clamp before each post spike (0 for a neuron's first spike); broadcasts
        with ``post``.
    pre : ndarray
        Pre spike times t_j; broadcasts with ``post``.
    neuron : NeuronConstants
        Supplies the PSP kernel's constants and tau_syn.

    Returns
    -------
    ndarray
        The contribution of every (post, pre) pair, in threshold units.
    """
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


def connection_psps(
    post: tuple[FloatArray, IntArray, int],
    pre: tuple[FloatArray, IntArray, int],
    duration: float,
    neuron: NeuronConstants,
) -> FloatArray:
    """S-PSP matrix e (n_post, n_pre) of one connection.

    For the subtractive reset nothing is cut: e_ij = sum over j's spikes of eps(T - t_j), the
    same for every post neuron. For the reset to rest the pairs are summed with
    :func:`cut_contributions`, in blocks of at most about 2^20 pairs to bound memory.

    Parameters
    ----------
    post, pre : tuple of (ndarray, ndarray, int)
        Spike times, neuron indices and layer size of the post- and presynaptic layers.
    duration : float
        Window T in units of tau.
    neuron : NeuronConstants
        Constants of the recorded neurons.

    Returns
    -------
    ndarray, shape (n_post, n_pre)
        e_ij of every synapse.
    """
    (post_times, post_neurons, n_post), (pre_times, pre_neurons, n_pre) = post, pre
    if neuron.reset == "subtract":
        per_pre = weighted_bincount(
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
        pairs = cut_contributions(
            t[start:stop, None], resets[start:stop, None], pre_t[None, :], neuron
        )
        per_pre = group_sum(pairs, pre_i, n_pre, axis=1)
        psps += group_sum(per_pre, i[start:stop], n_post, axis=0)
    return psps


def drive_psps_of_layer(
    times: FloatArray, neurons: IntArray, size: int, duration: float, neuron: NeuronConstants
) -> FloatArray:
    """S-PSP e_i0 of the constant drive of every neuron of one layer.

    The subtractive reset keeps all charge, so e_i0 is the potential a unit drive builds in T;
    for the reset to rest it is the sum, over the neuron's spikes, of the potential built
    since the end of the clamp before each spike.

    Parameters
    ----------
    times, neurons : ndarray
        Spike times (units of tau) and neuron indices of the layer.
    size : int
        Number of neurons of the layer.
    duration : float
        Window T in units of tau.
    neuron : NeuronConstants
        Constants of the recorded neurons.

    Returns
    -------
    ndarray, shape (size,)
        e_i0 of every neuron, in threshold units.
    """
    if neuron.reset == "subtract":
        return np.full(size, float(drive_kernel(np.array(duration), neuron)))
    t, i, resets = _reset_times(times, neurons, neuron)
    return weighted_bincount(i, weights=drive_kernel(t - resets, neuron), minlength=size)


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
            drive = np.full(n_trains, float(drive_kernel(np.array(duration), neuron)))
        else:
            per_spike = cut_contributions(post[:, :, None], resets[:, :, None], pre, neuron)
            drive = drive_kernel(post - resets, neuron).sum(axis=1)
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
