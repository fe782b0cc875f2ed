"""Readout, loss and the exact IDE adjoint and gradients of the rate model.

With D^l = diag(m^l) / theta the adjoint solves beta^N = g + (W^fb)^T D^1 beta^1,
beta^l = (W^(l+1))^T D^(l+1) beta^(l+1) (l < N) exactly with :func:`numpy.linalg.solve`;
every parameter gradient is then a local outer product of the post-synaptic ``D beta`` and
the pre-synaptic rate.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal

import numpy as np

from fbsnn_brian.errors import NumericalError, ValidationError
from fbsnn_brian.reference.equilibrium import (
    gates_from_preactivations,
    gates_from_rates,
    layer_offsets,
    layer_preactivations,
    solve_fixed_point,
)
from fbsnn_brian.reference.rate_model import (
    FloatArray,
    Gradients,
    LayerArrays,
    RateModel,
    check_batch,
    check_label,
    check_layer_vectors,
    check_sample,
)
from fbsnn_brian.validation import check_choice, check_finite_array, describe

__all__ = [
    "LOSS_KINDS",
    "LossKind",
    "assemble_gradients",
    "error_of_scores",
    "ide_gradients",
    "ide_gradients_at_rates",
    "ide_gradients_batch",
    "loss",
    "output_error",
    "readout",
    "readout_error",
]

LossKind = Literal["cross_entropy", "mse"]
#: The loss kinds a ``kind`` argument accepts (the values of :data:`LossKind`).
LOSS_KINDS = ("cross_entropy", "mse")


def readout(model: RateModel, rates_last: Any) -> FloatArray:
    """Class scores o = C a^N + d of the non-spiking linear readout."""
    last = check_finite_array(
        "readout", "rates_last", rates_last, ndim=1, shape=(model.layer_sizes[-1],)
    )
    return model.readout_weights @ last + model.readout_bias


def _softmax(scores: FloatArray) -> FloatArray:
    shifted = np.exp(scores - np.max(scores))
    return np.asarray(shifted / np.sum(shifted), dtype=np.float64)


def error_of_scores(scores: FloatArray, label: int, kind: str) -> FloatArray:
    """Derivative dL/do of the loss with respect to the class scores o.

    Parameters
    ----------
    scores : ndarray, shape (n_classes,)
        Class scores o = C a^N + d.
    label : int
        The correct class (already checked).
    kind : {'cross_entropy', 'mse'}
        The loss (already checked): softmax cross-entropy gives softmax(o) - e_y, the squared
        error 1/2 ||o - e_y||^2 gives o - e_y.

    Returns
    -------
    ndarray, shape (n_classes,)
        dL/do.

    Examples
    --------
    >>> import numpy as np
    >>> error_of_scores(np.array([1.0, 0.0]), 1, "mse")
    array([ 1., -1.])
    """
    target = np.zeros_like(scores)
    target[label] = 1.0
    if kind == "cross_entropy":
        return _softmax(scores) - target
    return scores - target


def _loss_from_scores(scores: FloatArray, label: int, kind: str) -> float:
    if kind == "cross_entropy":
        peak = float(np.max(scores))
        log_normaliser = peak + float(np.log(np.sum(np.exp(scores - peak))))
        return log_normaliser - float(scores[label])
    target = np.zeros_like(scores)
    target[label] = 1.0
    return 0.5 * float(np.sum((scores - target) ** 2))


def readout_error(
    model: RateModel, rates_last: Any, y: Any, *, kind: LossKind = "cross_entropy"
) -> FloatArray:
    """dL/do at the readout: softmax(o) - onehot(y) (cross-entropy) or o - onehot(y) (MSE).

    This is also the SPIDE readout update signal "p - y" (without the learning rate).
    """
    owner = "readout_error"
    check_choice(owner, "kind", kind, LOSS_KINDS)
    label = check_label(owner, model, y)
    return error_of_scores(readout(model, rates_last), label, kind)


def output_error(
    model: RateModel, rates_last: Any, y: Any, *, kind: LossKind = "cross_entropy"
) -> FloatArray:
    """g = dL/da^N = C^T dL/do, the error current of the last layer.

    For cross-entropy g = C^T (softmax(o) - onehot(y)); for MSE g = C^T (o - onehot(y)).
    """
    return model.readout_weights.T @ readout_error(model, rates_last, y, kind=kind)


def loss(
    model: RateModel,
    x: Any,
    y: Any,
    *,
    kind: LossKind = "cross_entropy",
    require_contraction: bool = True,
) -> float:
    """Loss of one sample at the equilibrium.

    Parameters
    ----------
    model : RateModel
        The network.
    x : array_like, shape (n_inputs,)
        Input of the sample.
    y : int
        Class label in [0, n_classes).
    kind : {'cross_entropy', 'mse'}
        ``'cross_entropy'``: -log softmax(o)_y. ``'mse'``: 0.5 * ||o - onehot(y)||^2 on the
        readout scores o = C a^N + d (no mean over classes, so dL/do = o - onehot(y)).
    require_contraction : bool, default True
        Refuse networks whose :func:`spectral_loop_gain` is >= 1.
    """
    owner = "loss"
    check_choice(owner, "kind", kind, LOSS_KINDS)
    sample = check_sample(owner, model, x)
    label = check_label(owner, model, y)
    rates = solve_fixed_point(
        model, sample, tol=1e-13, max_iter=10_000, require_contraction=require_contraction
    )
    return _loss_from_scores(model.readout_weights @ rates[-1] + model.readout_bias, label, kind)


def _outer(post: FloatArray, pre: FloatArray) -> FloatArray:
    return post[:, None] * pre[None, :]


def assemble_gradients(
    model: RateModel,
    sample: FloatArray,
    rates: LayerArrays,
    gates: LayerArrays,
    adjoint: LayerArrays,
    score_error: FloatArray,
) -> Gradients:
    """Gradients as local outer products: post-synaptic D^l beta^l times pre-synaptic rate.

    Parameters
    ----------
    model : RateModel
        The network (supplies theta and the connections).
    sample : ndarray, shape (n_inputs,)
        The input x, pre-synaptic to the input weights.
    rates : tuple of ndarray
        Rates a^l of every layer.
    gates : tuple of ndarray
        Gates m^l of every layer.
    adjoint : tuple of ndarray
        Adjoint beta^l of every layer (IDE) or its spike estimate (SPIDE).
    score_error : ndarray, shape (n_classes,)
        dL/do at the readout (see :func:`error_of_scores`).

    Returns
    -------
    Gradients
        dL/dparameter for every parameter, with ``adjoint``, ``gates`` and ``rates`` kept.
    """
    gated = tuple(m * beta / model.theta for m, beta in zip(gates, adjoint, strict=True))
    return Gradients(
        input_weights=_outer(gated[0], sample),
        forward_weights=tuple(
            _outer(gated[layer + 1], rates[layer]) for layer in range(model.n_layers - 1)
        ),
        feedback_weights=_outer(gated[0], rates[-1]),
        biases=gated,
        readout_weights=_outer(score_error, rates[-1]),
        readout_bias=score_error,
        adjoint=adjoint,
        gates=gates,
        rates=rates,
    )


def _solve_adjoint(model: RateModel, gates: LayerArrays, last_error: FloatArray) -> LayerArrays:
    """Solve beta = g e_N + J^T beta exactly on the stacked layers."""
    sizes = model.layer_sizes
    offsets = layer_offsets(sizes)
    system = np.eye(offsets[-1])
    for post, pre, weights in model.connections():
        rows = slice(offsets[pre], offsets[pre + 1])
        columns = slice(offsets[post], offsets[post + 1])
        system[rows, columns] -= weights.T * (gates[post] / model.theta)[None, :]
    right_hand_side = np.zeros(offsets[-1])
    right_hand_side[offsets[-2] :] = last_error
    try:
        solution = np.asarray(np.linalg.solve(system, right_hand_side), dtype=np.float64)
    except np.linalg.LinAlgError:
        raise NumericalError(
            "ide_gradients: the adjoint system I - J^T is singular at this equilibrium "
            f"(spectral loop gain {model.loop_gain:.6g})."
        ) from None
    return tuple(solution[offsets[layer] : offsets[layer + 1]] for layer in range(len(sizes)))


def _ide_gradients(
    model: RateModel, sample: FloatArray, label: int, kind: str, require_contraction: bool
) -> Gradients:
    rates = solve_fixed_point(
        model, sample, tol=1e-13, max_iter=10_000, require_contraction=require_contraction
    )
    input_current = model.input_weights @ sample + model.biases[0]
    gates = gates_from_preactivations(model, layer_preactivations(model, input_current, rates))
    return _gradients_at(model, sample, rates, gates, label, kind)


def _gradients_at(
    model: RateModel,
    sample: FloatArray,
    rates: LayerArrays,
    gates: LayerArrays,
    label: int,
    kind: str,
) -> Gradients:
    """Exact adjoint and local gradients at given rates and gates."""
    scores = model.readout_weights @ rates[-1] + model.readout_bias
    score_error = error_of_scores(scores, label, kind)
    adjoint = _solve_adjoint(model, gates, model.readout_weights.T @ score_error)
    return assemble_gradients(model, sample, rates, gates, adjoint, score_error)


def ide_gradients(
    model: RateModel,
    x: Any,
    y: Any,
    *,
    kind: LossKind = "cross_entropy",
    require_contraction: bool = True,
) -> Gradients:
    """Exact gradient of :func:`loss` by implicit differentiation at the equilibrium.

    The adjoint solves beta^N = g + (W^fb)^T D^1 beta^1, beta^l = (W^(l+1))^T D^(l+1)
    beta^(l+1) with D^l = diag(m^l) / theta, as one linear system of all layers
    (:func:`numpy.linalg.solve`, never a damped iteration). Then dL/dW^(l+1) =
    outer(D^(l+1) beta^(l+1), a^l), dL/dW^fb = outer(D^1 beta^1, a^N),
    dL/dF = outer(D^1 beta^1, x), dL/db^l = D^l beta^l, dL/dC = outer(dL/do, a^N),
    dL/dd = dL/do.

    Parameters
    ----------
    model, x, y, kind, require_contraction
        As in :func:`loss`.

    Returns
    -------
    Gradients
        With the exact adjoint, the gates and the equilibrium rates attached.

    Examples
    --------
    >>> import numpy as np
    >>> model = RateModel(
    ...     input_weights=np.array([[1.0], [0.5]]),
    ...     forward_weights=(),
    ...     feedback_weights=np.zeros((2, 2)),
    ...     biases=(np.zeros(2),),
    ...     readout_weights=np.eye(2),
    ...     readout_bias=np.zeros(2),
    ... )
    >>> gradients = ide_gradients(model, np.array([1.0]), 0, kind="mse")
    >>> gradients.biases[0]
    array([-0.25 ,  0.125])
    """
    owner = "ide_gradients"
    check_choice(owner, "kind", kind, LOSS_KINDS)
    sample = check_sample(owner, model, x)
    label = check_label(owner, model, y)
    return _ide_gradients(model, sample, label, kind, require_contraction)


def ide_gradients_at_rates(
    model: RateModel,
    x: Any,
    rates: Any,
    y: Any,
    *,
    kind: LossKind = "cross_entropy",
    gates: Any = None,
) -> Gradients:
    """The exact IDE gradient evaluated at given (e.g. simulated) rates instead of a*.

    The adjoint ``beta = (I - J^T)^(-1) g`` is solved exactly with the Jacobian built from
    ``gates`` (by default ``1[0 < a < 1]`` of the given rates, SPIDE's gate) and the output
    error ``g`` of the given last-layer rates. This isolates the error of the spiking
    backward phase from the error of the free phase: a spike-computed update is compared
    with this gradient "at the same rates".

    Parameters
    ----------
    model : RateModel
    x : array_like, shape (n_inputs,)
    rates : sequence of ndarray
        Rates a^l per layer.
    y : int
        Class label.
    kind : {'cross_entropy', 'mse'}
    gates : sequence of ndarray, optional
        m^l per layer.
    """
    owner = "ide_gradients_at_rates"
    sample = check_sample(owner, model, x)
    label = check_label(owner, model, y)
    layer_rates = check_layer_vectors(owner, "rates", model.layer_sizes, tuple(rates))
    layer_gates = (
        gates_from_rates(layer_rates)
        if gates is None
        else check_layer_vectors(owner, "gates", model.layer_sizes, tuple(gates))
    )
    return _gradients_at(model, sample, layer_rates, layer_gates, label, kind)


def ide_gradients_batch(
    model: RateModel,
    X: Any,
    y: Any,
    *,
    kind: LossKind = "cross_entropy",
    require_contraction: bool = True,
) -> Gradients:
    """Mean of :func:`ide_gradients` over a batch.

    Parameter fields are means over the samples; ``adjoint``, ``gates`` and ``rates`` are
    stacked per layer with shape (n_samples, n_l).

    Parameters
    ----------
    X : array_like, shape (n_samples, n_inputs)
        One input per row.
    y : array_like of int, shape (n_samples,)
        Class labels.
    """
    owner = "ide_gradients_batch"
    check_choice(owner, "kind", kind, LOSS_KINDS)
    inputs = check_batch(owner, model, X)
    labels = np.asarray(y)
    if (
        labels.shape != (inputs.shape[0],)
        or not np.issubdtype(labels.dtype, np.integer)
        or np.any((labels < 0) | (labels >= model.n_classes))
    ):
        raise ValidationError(
            f"{owner}: y must be an integer array of shape ({inputs.shape[0]},) with labels "
            f"in [0, {model.n_classes - 1}], got {describe(labels)}."
        )
    per_sample = [
        _ide_gradients(model, sample, int(label), kind, require_contraction)
        for sample, label in zip(inputs, labels, strict=True)
    ]
    combined: dict[str, Any] = {}
    for name in (item.name for item in fields(Gradients)):
        # Parameters are averaged; the per-layer diagnostics are stacked per sample.
        reduce = np.stack if name in ("adjoint", "gates", "rates") else _mean
        values = [getattr(gradients, name) for gradients in per_sample]
        if isinstance(values[0], tuple):
            combined[name] = tuple(reduce(list(layer)) for layer in zip(*values, strict=True))
        else:
            combined[name] = reduce(values)
    return Gradients(**combined)


def _mean(values: list[FloatArray]) -> FloatArray:
    return np.asarray(np.mean(np.stack(values), axis=0), dtype=np.float64)
