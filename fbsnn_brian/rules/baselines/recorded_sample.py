"""One recorded sample as the three baselines see it: checks, output error, gradient assembly.

ST-RSBP, NA and spike-based BP (:mod:`fbsnn_brian.rules.baselines`) follow the same steps
around their own core:

1. check that the rate model, the recorded spikes, the input and the neuron constants describe
   one recorded sample (:func:`check_recording`);
2. form the output error of the recorded counts: dL/do at the readout of the recorded rates
   a^N = o^N / T, and from it dL/d(count^N) = C^T dL/do / T (:func:`prepare_sample`, which
   returns a :class:`RecordedSample`);
3. compute, with the rule's own method, a gradient for every connection and a gradient
   dL/dz^l for the constant drive of every layer;
4. assemble these into a :class:`~fbsnn_brian.reference.Gradients` comparable with the exact
   IDE gradient (:func:`assemble_baseline_gradients`).

Two array helpers sum quantities over spike events: :func:`weighted_bincount` (per neuron)
and :func:`group_sum` (per group of sorted labels, along one axis).

Units as in :mod:`fbsnn_brian.rules.baselines.spike_trains`: times in units of tau,
membrane quantities in threshold units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.reference import Gradients, RateModel, readout_error
from fbsnn_brian.reference.ide import LOSS_KINDS
from fbsnn_brian.rules.baselines.spike_trains import (
    FloatArray,
    IntArray,
    LayerArrays,
    NeuronConstants,
    SampleSpikes,
)
from fbsnn_brian.validation import check_choice, check_finite_array, describe

__all__ = [
    "RecordedSample",
    "assemble_baseline_gradients",
    "check_recording",
    "group_sum",
    "layer_drives",
    "prepare_sample",
    "weighted_bincount",
]


@dataclass(frozen=True)
class RecordedSample:
    """Checked inputs of one baseline call and the output error of its recorded counts.

    Built by :func:`prepare_sample`.

    Attributes
    ----------
    x : ndarray, shape (n_inputs,)
        The sample's input.
    label : int
        Its class label.
    score_error : ndarray, shape (n_classes,)
        dL/do at the readout of the recorded rates.
    count_error : ndarray, shape (n_N,)
        dL/d(count^N) = C^T dL/do / T: the error of the last layer's spike counts.
    rates : tuple of ndarray
        The recorded rates count / T of every layer, in spikes per tau.
    """

    x: FloatArray
    label: int
    score_error: FloatArray  # dL/do at the readout
    count_error: FloatArray  # dL/d(count^N) = C^T dL/do / T
    rates: LayerArrays


def check_recording(
    owner: str, model: RateModel, spikes: SampleSpikes, x: Any, neuron: Any
) -> FloatArray:
    """Check that model, spikes, input and constants describe one recorded sample.

    Parameters
    ----------
    owner : str
        Name of the calling function, used in the error message.
    model : RateModel
        The network whose free phase produced ``spikes``.
    spikes : SampleSpikes
        Its free-phase spikes; their layer sizes must be the model's.
    x : array_like, shape (n_inputs,)
        The sample's input.
    neuron : NeuronConstants
        Constants of the recorded neurons; ``theta`` must equal ``model.theta`` (one network).

    Returns
    -------
    ndarray of float64, shape (n_inputs,)
        The checked input.

    Raises
    ------
    ValidationError
        If an argument has the wrong type, the layer sizes or theta disagree, or ``x`` is not
        a finite vector of the model's input size.
    """
    if not isinstance(model, RateModel):
        raise ValidationError(f"{owner}: model must be a RateModel, got {describe(model)}.")
    if not isinstance(spikes, SampleSpikes):
        raise ValidationError(f"{owner}: spikes must be a SampleSpikes, got {describe(spikes)}.")
    if not isinstance(neuron, NeuronConstants):
        raise ValidationError(f"{owner}: neuron must be a NeuronConstants, got {describe(neuron)}.")
    if spikes.layer_sizes != model.layer_sizes:
        raise ValidationError(
            f"{owner}: spikes.layer_sizes must match the model's layer sizes "
            f"{model.layer_sizes}, got {spikes.layer_sizes}."
        )
    if not math.isclose(neuron.theta, model.theta, rel_tol=1e-12):
        raise ValidationError(
            f"{owner}: neuron.theta must equal model.theta = {model.theta:g} (one network), got "
            f"{neuron.theta:g}."
        )
    return check_finite_array(owner, "x", x, ndim=1, shape=(model.n_inputs,))


def prepare_sample(
    owner: str,
    model: RateModel,
    spikes: SampleSpikes,
    x: Any,
    y: Any,
    neuron: Any,
    kind: Any,
) -> RecordedSample:
    """Validate the common arguments and form the output error of the recorded counts.

    Parameters
    ----------
    owner : str
        Name of the calling function, used in the error message.
    model : RateModel
        The network whose free phase produced ``spikes``.
    spikes : SampleSpikes
        Its free-phase spikes for input ``x``.
    x : array_like, shape (n_inputs,)
        The sample's input.
    y : int
        Class label, in ``[0, model.n_classes - 1]``.
    neuron : NeuronConstants
        Constants of the recorded neurons.
    kind : {'cross_entropy', 'mse'}
        Loss on the readout of the recorded rates.

    Returns
    -------
    RecordedSample
        The checked input and label, dL/do, dL/d(count^N) and the recorded rates.

    Raises
    ------
    ValidationError
        If :func:`check_recording` refuses the arguments, ``kind`` is not a loss kind or ``y``
        is not a class label of the model.
    """
    sample = check_recording(owner, model, spikes, x, neuron)
    check_choice(owner, "kind", kind, LOSS_KINDS)
    if isinstance(y, bool) or not isinstance(y, (int, np.integer)) or not 0 <= y < model.n_classes:
        raise ValidationError(
            f"{owner}: y must be an integer class label in [0, {model.n_classes - 1}], got "
            f"{describe(y)}."
        )
    rates = spikes.rates()
    score_error = readout_error(model, rates[-1], int(y), kind=kind)
    count_error = model.readout_weights.T @ score_error / spikes.duration
    return RecordedSample(sample, int(y), score_error, count_error, rates)


def weighted_bincount(indices: IntArray, weights: FloatArray, minlength: int) -> FloatArray:
    """``np.bincount`` with weights, always float64 (numpy returns int64 for empty input).

    Parameters
    ----------
    indices : ndarray of int64
        Bin (neuron) index of every event.
    weights : ndarray of float64
        Weight of every event.
    minlength : int
        Number of bins at least (the layer size).

    Returns
    -------
    ndarray of float64, shape (minlength,)
        The sum of the weights of every bin.

    Examples
    --------
    >>> import numpy as np
    >>> weighted_bincount(np.array([0, 2, 0]), np.array([1.0, 2.0, 3.0]), 3)
    array([4., 0., 2.])
    """
    return np.bincount(indices, weights=weights, minlength=minlength).astype(np.float64)


def group_sum(values: FloatArray, groups: IntArray, n_groups: int, axis: int) -> FloatArray:
    """Sum the slices of ``values`` along ``axis`` that share a (sorted) group label.

    Parameters
    ----------
    values : ndarray
        The values to sum.
    groups : ndarray of int64
        Group label of every slice along ``axis``, sorted (equal labels are adjacent).
    n_groups : int
        Number of groups; groups without a slice sum to 0.
    axis : int
        The axis along which slices are grouped.

    Returns
    -------
    ndarray
        ``values`` with ``axis`` replaced by one sum per group.

    Examples
    --------
    >>> import numpy as np
    >>> group_sum(np.array([[1.0, 2.0, 3.0]]), np.array([0, 0, 2]), 3, axis=1)
    array([[3., 0., 3.]])
    """
    shape = list(values.shape)
    shape[axis] = n_groups
    total = np.zeros(shape)
    if groups.size:
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        sums = np.add.reduceat(values, starts, axis=axis)
        index: list[Any] = [slice(None)] * values.ndim
        index[axis] = groups[starts]
        total[tuple(index)] = sums
    return total


def layer_drives(model: RateModel, x: FloatArray) -> LayerArrays:
    """Constant drive z^l of every layer: F x + b^1 for layer 1, b^l for the others.

    Parameters
    ----------
    model : RateModel
        The network.
    x : ndarray, shape (n_inputs,)
        The sample's input (already checked).

    Returns
    -------
    tuple of ndarray
        z^l of every layer, in threshold units per tau.
    """
    return (model.input_weights @ x + model.biases[0], *model.biases[1:])


def assemble_baseline_gradients(
    model: RateModel,
    sample: RecordedSample,
    connection_gradients: Sequence[FloatArray],
    drive_gradients: LayerArrays,
    gates: LayerArrays,
) -> Gradients:
    """Gradients from per-connection weight gradients and per-layer dL/dz (drive) gradients.

    ``connection_gradients`` follow :meth:`RateModel.connections` (feedback first). The input
    weights' gradient is dL/dz^1 x^T and the biases' is dL/dz^l. ``adjoint`` is reported as
    theta dL/db, the quantity that equals IDE's m beta for the ideal network.

    Parameters
    ----------
    model : RateModel
        The network (supplies theta).
    sample : RecordedSample
        The sample, from :func:`prepare_sample`.
    connection_gradients : sequence of ndarray
        dL/dW of every connection, in the order of :meth:`RateModel.connections`.
    drive_gradients : tuple of ndarray
        dL/dz^l of every layer.
    gates : tuple of ndarray
        The rule's gates (which neurons pass an error), per layer.

    Returns
    -------
    Gradients
        dL/dparameter for every parameter, comparable with the exact IDE gradient.
    """
    return Gradients(
        input_weights=drive_gradients[0][:, None] * sample.x[None, :],
        forward_weights=tuple(connection_gradients[1:]),
        feedback_weights=connection_gradients[0],
        biases=drive_gradients,
        readout_weights=sample.score_error[:, None] * sample.rates[-1][None, :],
        readout_bias=sample.score_error,
        adjoint=tuple(model.theta * gradient for gradient in drive_gradients),
        gates=gates,
        rates=sample.rates,
    )
