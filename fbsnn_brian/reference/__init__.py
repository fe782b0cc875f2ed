"""Numpy reference of the rate model, IDE gradients and discrete-time SPIDE.

This module is the ground truth the Brian2 simulations are checked against. It has no
Brian2 import: everything here is plain linear algebra on firing rates, plus a
discrete-time (one step = one time unit tau) simulation of the integrate-and-fire
forward phase and of the ternary error units of the SPIDE backward phase.

Mapping between the paper symbols and the names used in code (see ALGORITHM.md):

==========  =========================================  ============================
symbol      meaning                                    name in code
==========  =========================================  ============================
x           input vector of one sample                 ``x``
F           input weights onto layer 1                 ``RateModel.input_weights``
W^(l+1)     weights from layer l to layer l+1          ``RateModel.forward_weights``
W^fb        feedback weights from layer N to layer 1   ``RateModel.feedback_weights``
b^l         bias current of layer l                    ``RateModel.biases``
C, d        linear readout o = C a^N + d               ``readout_weights``, ``readout_bias``
theta       reset step, phi(z) = clip(z/theta, 0, 1)   ``RateModel.theta``
z^l         preactivation (input current) of layer l   :func:`preactivations`
a^l         firing rate, spikes per tau                ``rates``
m^l         gate 1[0 < z^l/theta < 1]                  ``gates``
g           dL/da^N                                    :func:`output_error`
beta^l      adjoint (IDE) or error-unit rate (SPIDE)   ``adjoint``, ``beta``
==========  =========================================  ============================

The equilibrium is

    a^1 = phi(W^fb a^N + F x + b^1),    a^(l+1) = phi(W^(l+1) a^l + b^(l+1)),

and with D^l = diag(m^l) / theta the IDE adjoint solves the linear system

    beta^N = g + (W^fb)^T D^1 beta^1,    beta^l = (W^(l+1))^T D^(l+1) beta^(l+1)  (l < N),

(for one layer: beta = g + W^T D beta), which is solved exactly with
:func:`numpy.linalg.solve`. Every parameter gradient is then a local outer product of the
post-synaptic ``D beta`` and the pre-synaptic rate.

Discrete-time conventions: :func:`simulate_if` starts membranes at 0 with threshold
``v_th`` and subtractive reset theta, and by default every layer integrates the spikes of
the previous step; :func:`spide_adjoint` returns the raw signed event rate, which
approximates ``scale`` times the IDE adjoint; :func:`spide_update` divides by ``scale``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import NumericalError, ValidationError
from fbsnn_brian.validation import (
    check_choice,
    check_finite_array,
    check_positive_float,
    check_positive_int,
    describe,
)

__all__ = [
    "Gradients",
    "LossKind",
    "RateModel",
    "UpdateOrder",
    "cosine_similarity",
    "fixed_point",
    "fixed_point_batch",
    "gates_from_preactivations",
    "gates_from_rates",
    "ide_gradients",
    "ide_gradients_at_rates",
    "ide_gradients_batch",
    "loss",
    "output_error",
    "preactivations",
    "readout",
    "readout_error",
    "simulate_if",
    "spectral_loop_gain",
    "spide_adjoint",
    "spide_gradients",
    "spide_update",
]

FloatArray = NDArray[np.float64]
LayerArrays = tuple[FloatArray, ...]
LossKind = Literal["cross_entropy", "mse"]
UpdateOrder = Literal["simultaneous", "sequential"]

_LOSS_KINDS = ("cross_entropy", "mse")
_UPDATE_ORDERS = ("simultaneous", "sequential")
# Threshold on the fixed-point iteration's step below which the active set is usually
# settled, so one exact linear solve ("polish") can replace the remaining iterations.
_POLISH_BELOW_CHANGE = 1e-8


def _frozen_copy(array: FloatArray) -> FloatArray:
    copy = np.array(array, dtype=np.float64, copy=True)
    copy.setflags(write=False)
    return copy


@dataclass(frozen=True, eq=False)
class RateModel:
    """Rate-level parameters of a feedback network (all float64 arrays).

    Layers are numbered 1..N in the math and 0..N-1 in the tuples. Arrays are copied
    and made read-only on construction, so a model never changes after it is built
    (which is what allows :attr:`loop_gain` to be cached). Equality is identity
    (``eq=False``): element-wise array comparison has no single truth value.

    Parameters
    ----------
    input_weights : ndarray, shape (n_1, n_inputs)
        F, the input weights onto layer 1.
    forward_weights : tuple of ndarray
        W^(l+1), shape (n_(l+1), n_l), for l = 1..N-1; empty for a single layer.
    feedback_weights : ndarray, shape (n_1, n_N)
        W^fb, from the last layer back to layer 1 (for one layer a recurrent
        matrix of shape (n_1, n_1)).
    biases : tuple of ndarray
        b^l, shape (n_l,), one per layer.
    readout_weights : ndarray, shape (n_classes, n_N)
        C of the readout o = C a^N + d.
    readout_bias : ndarray, shape (n_classes,)
        d of the readout.
    theta : float, default 2.0
        Reset step of the IF neuron in units of the threshold scale; the rate curve
        is phi(z) = clip(z / theta, 0, 1) in spikes per tau.

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
    >>> model.layer_sizes, model.n_inputs, model.n_classes
    ((2,), 1, 2)
    """

    input_weights: FloatArray
    forward_weights: LayerArrays
    feedback_weights: FloatArray
    biases: LayerArrays
    readout_weights: FloatArray
    readout_bias: FloatArray
    theta: float = 2.0

    def __post_init__(self) -> None:
        owner = "RateModel"
        theta = check_positive_float(owner, "theta", self.theta)
        input_weights = check_finite_array(owner, "input_weights", self.input_weights, ndim=2)
        if not isinstance(self.forward_weights, (tuple, list)):
            raise ValidationError(
                f"{owner}: forward_weights must be a tuple of 2-D arrays (empty for one "
                f"layer), got {describe(self.forward_weights)}."
            )
        sizes = [input_weights.shape[0]]
        forward: list[FloatArray] = []
        for index, weights in enumerate(self.forward_weights):
            name = f"forward_weights[{index}]"
            array = check_finite_array(owner, name, weights, ndim=2, shape=(None, sizes[-1]))
            forward.append(array)
            sizes.append(array.shape[0])
        n_last = sizes[-1]
        feedback = check_finite_array(
            owner, "feedback_weights", self.feedback_weights, ndim=2, shape=(sizes[0], n_last)
        )
        biases = _check_layer_vectors(owner, "biases", tuple(sizes), self.biases)
        readout_weights = check_finite_array(
            owner, "readout_weights", self.readout_weights, ndim=2, shape=(None, n_last)
        )
        readout_bias = check_finite_array(
            owner,
            "readout_bias",
            self.readout_bias,
            ndim=1,
            shape=(readout_weights.shape[0],),
        )
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "input_weights", _frozen_copy(input_weights))
        object.__setattr__(self, "forward_weights", tuple(_frozen_copy(w) for w in forward))
        object.__setattr__(self, "feedback_weights", _frozen_copy(feedback))
        object.__setattr__(self, "biases", tuple(_frozen_copy(b) for b in biases))
        object.__setattr__(self, "readout_weights", _frozen_copy(readout_weights))
        object.__setattr__(self, "readout_bias", _frozen_copy(readout_bias))

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Number of neurons n_l of each layer, from layer 1 to layer N."""
        return tuple(int(bias.shape[0]) for bias in self.biases)

    @property
    def n_layers(self) -> int:
        """Number N of spiking layers."""
        return len(self.biases)

    @property
    def n_inputs(self) -> int:
        """Length of the input vector x."""
        return int(self.input_weights.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of readout units (classes)."""
        return int(self.readout_weights.shape[0])

    @cached_property
    def loop_gain(self) -> float:
        """Upper bound of the loop's contraction factor, see :func:`spectral_loop_gain`."""
        gain = float(np.linalg.norm(self.feedback_weights, 2))
        for weights in self.forward_weights:
            gain *= float(np.linalg.norm(weights, 2))
        return gain / self.theta**self.n_layers

    def connections(self) -> tuple[tuple[int, int, FloatArray], ...]:
        """Every weight matrix between layers as ``(post_layer, pre_layer, weights)``.

        Layer indices are 0-based; the feedback connection comes first as
        ``(0, n_layers - 1, feedback_weights)``, then ``(l + 1, l, forward_weights[l])``.
        """
        feedback = ((0, self.n_layers - 1, self.feedback_weights),)
        forward = tuple(
            (index + 1, index, weights) for index, weights in enumerate(self.forward_weights)
        )
        return feedback + forward


@dataclass(frozen=True, eq=False)
class Gradients:
    """Gradient of the loss with respect to every parameter of a :class:`RateModel`.

    Parameter fields mirror :class:`RateModel`. The diagnostic fields hold, per layer,
    the adjoint beta^l, the gates m^l and the rates a^l the gradient was built from
    (for a batch: stacked, shape (n_samples, n_l), while parameter fields are means).
    For a SPIDE estimate, ``adjoint`` is the error-unit rate divided by the scale s, so it
    is directly comparable with the IDE adjoint.
    """

    input_weights: FloatArray
    forward_weights: LayerArrays
    feedback_weights: FloatArray
    biases: LayerArrays
    readout_weights: FloatArray
    readout_bias: FloatArray
    adjoint: LayerArrays = field(default=())
    gates: LayerArrays = field(default=())
    rates: LayerArrays = field(default=())

    def parameter_vector(self) -> FloatArray:
        """All parameter gradients flattened into one vector.

        Order: input weights, forward weights, feedback weights, biases, readout weights,
        readout bias (each row-major), the same for every :class:`Gradients`.
        """
        parts = [
            self.input_weights,
            *self.forward_weights,
            self.feedback_weights,
            *self.biases,
            self.readout_weights,
            self.readout_bias,
        ]
        return np.concatenate([np.ravel(part) for part in parts])


def cosine_similarity(first: Gradients, second: Gradients) -> float:
    """Cosine of the angle between two gradients' parameter vectors.

    Raises
    ------
    ValidationError
        If the vectors differ in length or either one is zero.
    """
    first_vector = first.parameter_vector()
    second_vector = second.parameter_vector()
    if first_vector.shape != second_vector.shape:
        raise ValidationError(
            f"cosine_similarity: the gradients must belong to the same architecture, got "
            f"{first_vector.size} and {second_vector.size} parameters."
        )
    norms = float(np.linalg.norm(first_vector) * np.linalg.norm(second_vector))
    if norms == 0.0:
        raise ValidationError("cosine_similarity: one of the gradients is exactly zero.")
    return float(first_vector @ second_vector) / norms


def spectral_loop_gain(model: RateModel) -> float:
    """Upper bound of the contraction factor of the network's feedback loop.

    For one layer this is ``||W^fb||_2 / theta``. For N layers the loop maps a^N to
    itself through W^fb and every W^(l+1), each followed by phi whose Lipschitz constant
    is 1/theta, so the loop's gain is at most
    ``||W^fb||_2 * prod_l ||W^(l+1)||_2 / theta^N``. Below 1 the fixed point exists, is
    unique and the plain iteration converges to it; at or above 1 nothing is guaranteed
    (the bound is not tight, so such a network may still converge).
    """
    return model.loop_gain


def _check_sample(owner: str, model: RateModel, x: Any) -> FloatArray:
    return check_finite_array(owner, "x", x, ndim=1, shape=(model.n_inputs,))


def _check_label(owner: str, model: RateModel, y: Any) -> int:
    if (
        isinstance(y, bool)
        or not isinstance(y, (int, np.integer))
        or not 0 <= int(y) < model.n_classes
    ):
        raise ValidationError(
            f"{owner}: y must be an integer class label in [0, {model.n_classes - 1}], "
            f"got {describe(y)}."
        )
    return int(y)


def _check_layer_vectors(
    owner: str, name: str, sizes: tuple[int, ...], vectors: Any
) -> LayerArrays:
    if not isinstance(vectors, (tuple, list)) or len(vectors) != len(sizes):
        got = f"{len(vectors)} vectors" if isinstance(vectors, (tuple, list)) else None
        raise ValidationError(
            f"{owner}: {name} must be a tuple with one vector per layer ({len(sizes)} "
            f"layers of sizes {sizes}), got {got or describe(vectors)}."
        )
    return tuple(
        check_finite_array(owner, f"{name}[{index}]", vector, ndim=1, shape=(size,))
        for index, (vector, size) in enumerate(zip(vectors, sizes, strict=True))
    )


def _clip_rate(preactivation: FloatArray, theta: float) -> FloatArray:
    return np.clip(preactivation / theta, 0.0, 1.0)


def _sweep(model: RateModel, input_current: FloatArray, last_rates: FloatArray) -> LayerArrays:
    """One pass of the fixed-point map, layer by layer starting from a^N."""
    rates = [_clip_rate(model.feedback_weights @ last_rates + input_current, model.theta)]
    for weights, bias in zip(model.forward_weights, model.biases[1:], strict=True):
        rates.append(_clip_rate(weights @ rates[-1] + bias, model.theta))
    return tuple(rates)


def _preactivations(model: RateModel, input_current: FloatArray, rates: LayerArrays) -> LayerArrays:
    currents = [model.feedback_weights @ rates[-1] + input_current]
    for weights, bias, pre_rates in zip(
        model.forward_weights, model.biases[1:], rates[:-1], strict=True
    ):
        currents.append(weights @ pre_rates + bias)
    return tuple(currents)


def _offsets(sizes: tuple[int, ...]) -> list[int]:
    return [0, *np.cumsum(sizes).tolist()]


def _polish(model: RateModel, input_current: FloatArray, rates: LayerArrays) -> LayerArrays:
    """Solve the equilibrium exactly, assuming the active set of ``rates`` is right.

    With the gates fixed, a^l = D^l z^l + 1[z^l >= theta] is linear in the rates, so the
    whole network is one linear system (I - M) a = c over the stacked rates.
    """
    theta = model.theta
    sizes = model.layer_sizes
    offsets = _offsets(sizes)
    currents = _preactivations(model, input_current, rates)
    n_total = offsets[-1]
    system = np.eye(n_total)
    constant = np.zeros(n_total)
    for layer, current in enumerate(currents):
        active = (current > 0.0) & (current < theta)
        rows = slice(offsets[layer], offsets[layer + 1])
        layer_input = input_current if layer == 0 else model.biases[layer]
        constant[rows] = np.where(active, layer_input / theta, (current >= theta).astype(float))
    for post, pre, weights in model.connections():
        active = (currents[post] > 0.0) & (currents[post] < theta)
        rows = slice(offsets[post], offsets[post + 1])
        columns = slice(offsets[pre], offsets[pre + 1])
        system[rows, columns] -= weights * (active / theta)[:, None]
    solution = np.asarray(np.linalg.solve(system, constant), dtype=np.float64)
    return tuple(solution[offsets[layer] : offsets[layer + 1]] for layer in range(len(sizes)))


def _residual(model: RateModel, input_current: FloatArray, rates: LayerArrays) -> float:
    currents = _preactivations(model, input_current, rates)
    return max(
        float(np.max(np.abs(rate - _clip_rate(current, model.theta))))
        for rate, current in zip(rates, currents, strict=True)
    )


def _fixed_point(
    model: RateModel, x: FloatArray, *, tol: float, max_iter: int, require_contraction: bool
) -> LayerArrays:
    owner = "fixed_point"
    if require_contraction and model.loop_gain >= 1.0:
        raise ValidationError(
            f"{owner}: the feedback loop is not a contraction: its spectral loop gain "
            f"||W^fb||_2 * prod ||W^l||_2 / theta^N is {model.loop_gain:.6g}, must be < 1. "
            "Scale down feedback_weights (or the forward weights), or pass "
            "require_contraction=False to try anyway."
        )
    input_current = model.input_weights @ x + model.biases[0]
    rates: LayerArrays = tuple(np.zeros(size) for size in model.layer_sizes)
    # Roundoff floor of the residual, so that a tiny tol cannot make an exact solve fail.
    roundoff = 16.0 * float(np.finfo(np.float64).eps)
    tried_gates: bytes | None = None
    change = np.inf
    for _ in range(max_iter):
        new_rates = _sweep(model, input_current, rates[-1])
        change = max(
            float(np.max(np.abs(new - old))) for new, old in zip(new_rates, rates, strict=True)
        )
        rates = new_rates
        if change <= max(tol, _POLISH_BELOW_CHANGE):
            currents = _preactivations(model, input_current, rates)
            gates = np.concatenate([(c > 0.0) & (c < model.theta) for c in currents]).tobytes()
            if gates != tried_gates or change <= tol:
                tried_gates = gates
                try:
                    polished = _polish(model, input_current, rates)
                except np.linalg.LinAlgError:
                    polished = None
                if polished is not None:
                    scale = 1.0 + max(float(np.max(np.abs(c))) for c in currents) / model.theta
                    if _residual(model, input_current, polished) <= max(tol, roundoff * scale):
                        return polished
        if change <= tol:
            return rates
    raise ValidationError(
        f"{owner}: the rate iteration did not converge in max_iter={max_iter} iterations "
        f"(last change {change:.3g}, tol {tol:.3g}); the spectral loop gain of the network "
        f"is {model.loop_gain:.6g} (a gain < 1 guarantees convergence)."
    )


def fixed_point(
    model: RateModel,
    x: Any,
    *,
    tol: float = 1e-13,
    max_iter: int = 10_000,
    require_contraction: bool = True,
) -> LayerArrays:
    """Equilibrium firing rates a^l of every layer for one input sample.

    Iterates a^1 = phi(W^fb a^N + F x + b^1), a^(l+1) = phi(W^(l+1) a^l + b^(l+1)) layer by
    layer; once the step falls below 1e-8 (or ``tol``), the active set is frozen and the
    equilibrium is solved exactly as one linear system, which is accepted when its residual
    max |a - phi(z(a))| is below ``tol`` (or the roundoff floor).

    Parameters
    ----------
    model : RateModel
        The network.
    x : array_like, shape (n_inputs,)
        The input of the sample (constant current or input rate).
    tol : float, default 1e-13
        Required max-norm residual of the equilibrium equation, in spikes per tau.
    max_iter : int, default 10000
        Maximal number of sweeps through the layers.
    require_contraction : bool, default True
        Refuse networks whose :func:`spectral_loop_gain` is >= 1.

    Returns
    -------
    tuple of ndarray
        a^l, shape (n_l,), rates in spikes per tau (between 0 and 1).

    Raises
    ------
    ValidationError
        If ``x`` is not a finite vector of length n_inputs, if the loop is not a
        contraction, or if the iteration does not converge (the message gives the gain).

    Examples
    --------
    >>> import numpy as np
    >>> model = RateModel(
    ...     input_weights=np.array([[1.0], [0.5]]),
    ...     forward_weights=(),
    ...     feedback_weights=np.array([[0.0, 1.0], [0.0, 0.0]]),
    ...     biases=(np.zeros(2),),
    ...     readout_weights=np.eye(2),
    ...     readout_bias=np.zeros(2),
    ... )
    >>> fixed_point(model, np.array([1.0]))
    (array([0.625, 0.25 ]),)
    """
    sample = _check_sample("fixed_point", model, x)
    check_positive_float("fixed_point", "tol", tol)
    max_iter = check_positive_int("fixed_point", "max_iter", max_iter)
    return _fixed_point(
        model, sample, tol=tol, max_iter=max_iter, require_contraction=require_contraction
    )


def _check_batch(owner: str, model: RateModel, X: Any) -> FloatArray:
    return check_finite_array(owner, "X", X, ndim=2, shape=(None, model.n_inputs))


def fixed_point_batch(
    model: RateModel, X: Any, *, require_contraction: bool = True
) -> list[FloatArray]:
    """Equilibrium rates of many samples (see :func:`fixed_point`).

    Parameters
    ----------
    model : RateModel
        The network.
    X : array_like, shape (n_samples, n_inputs)
        One input per row.
    require_contraction : bool, default True
        Refuse networks whose :func:`spectral_loop_gain` is >= 1.

    Returns
    -------
    list of ndarray
        One array per layer, shape (n_samples, n_l).
    """
    inputs = _check_batch("fixed_point_batch", model, X)
    per_sample = [
        _fixed_point(
            model, sample, tol=1e-13, max_iter=10_000, require_contraction=require_contraction
        )
        for sample in inputs
    ]
    return [np.stack([rates[layer] for rates in per_sample]) for layer in range(model.n_layers)]


def preactivations(model: RateModel, x: Any, rates: Any) -> LayerArrays:
    """Input currents z^l of every layer given the rates of all layers.

    z^1 = W^fb a^N + F x + b^1 and z^(l+1) = W^(l+1) a^l + b^(l+1), in units of the
    threshold scale per tau (phi(z) = clip(z / theta, 0, 1)).
    """
    sample = _check_sample("preactivations", model, x)
    layer_rates = _check_layer_vectors("preactivations", "rates", model.layer_sizes, rates)
    return _preactivations(model, model.input_weights @ sample + model.biases[0], layer_rates)


def gates_from_preactivations(model: RateModel, currents: LayerArrays) -> LayerArrays:
    """Gates m^l = 1[0 < z^l / theta < 1] (strict) as float arrays of 0 and 1."""
    return tuple(((c > 0.0) & (c < model.theta)).astype(np.float64) for c in currents)


def gates_from_rates(rates: LayerArrays) -> LayerArrays:
    """Gates m^l = 1[0 < a^l < 1] (strict) from measured rates, as SPIDE uses them.

    A neuron that is silent or fires at every step passes no error. Any spike counts: a
    neuron silent at equilibrium that fired once during the onset transient has rate
    1/T > 0 and is gated on, which makes SPIDE deviate from IDE (it does not vanish as
    T grows, since the rate stays positive).
    """
    return tuple(((rate > 0.0) & (rate < 1.0)).astype(np.float64) for rate in rates)


def readout(model: RateModel, rates_last: Any) -> FloatArray:
    """Class scores o = C a^N + d of the non-spiking linear readout."""
    last = check_finite_array(
        "readout", "rates_last", rates_last, ndim=1, shape=(model.layer_sizes[-1],)
    )
    return model.readout_weights @ last + model.readout_bias


def _softmax(scores: FloatArray) -> FloatArray:
    shifted = np.exp(scores - np.max(scores))
    return np.asarray(shifted / np.sum(shifted), dtype=np.float64)


def _score_error(scores: FloatArray, label: int, kind: str) -> FloatArray:
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
    check_choice(owner, "kind", kind, _LOSS_KINDS)
    label = _check_label(owner, model, y)
    return _score_error(readout(model, rates_last), label, kind)


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
    check_choice(owner, "kind", kind, _LOSS_KINDS)
    sample = _check_sample(owner, model, x)
    label = _check_label(owner, model, y)
    rates = _fixed_point(
        model, sample, tol=1e-13, max_iter=10_000, require_contraction=require_contraction
    )
    return _loss_from_scores(model.readout_weights @ rates[-1] + model.readout_bias, label, kind)


def _outer(post: FloatArray, pre: FloatArray) -> FloatArray:
    return post[:, None] * pre[None, :]


def _assemble(
    model: RateModel,
    sample: FloatArray,
    rates: LayerArrays,
    gates: LayerArrays,
    adjoint: LayerArrays,
    score_error: FloatArray,
) -> Gradients:
    """Local outer products: post-synaptic D^l beta^l times pre-synaptic rate."""
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
    offsets = _offsets(sizes)
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
    rates = _fixed_point(
        model, sample, tol=1e-13, max_iter=10_000, require_contraction=require_contraction
    )
    input_current = model.input_weights @ sample + model.biases[0]
    gates = gates_from_preactivations(model, _preactivations(model, input_current, rates))
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
    score_error = _score_error(scores, label, kind)
    adjoint = _solve_adjoint(model, gates, model.readout_weights.T @ score_error)
    return _assemble(model, sample, rates, gates, adjoint, score_error)


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
    check_choice(owner, "kind", kind, _LOSS_KINDS)
    sample = _check_sample(owner, model, x)
    label = _check_label(owner, model, y)
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
    sample = _check_sample(owner, model, x)
    label = _check_label(owner, model, y)
    layer_rates = _check_layer_vectors(owner, "rates", model.layer_sizes, tuple(rates))
    layer_gates = (
        gates_from_rates(layer_rates)
        if gates is None
        else _check_layer_vectors(owner, "gates", model.layer_sizes, tuple(gates))
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
    check_choice(owner, "kind", kind, _LOSS_KINDS)
    inputs = _check_batch(owner, model, X)
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


def simulate_if(
    model: RateModel,
    x: Any,
    *,
    n_steps: int,
    v_th: float = 1.0,
    update_order: UpdateOrder = "simultaneous",
) -> LayerArrays:
    """Discrete-time integrate-and-fire free phase; one step is one time unit tau.

    Every membrane starts at v = 0. At each step layer l integrates its current,
    v^1 += F x + b^1 + W^fb s^N and v^(l+1) += W^(l+1) s^l + b^(l+1), then spikes
    s^l = 1[v^l >= v_th] and resets by subtraction, v^l -= theta s^l. At most one spike per
    step is the refractory period tau; charge above threshold is kept. With v_th = 1 and
    theta = 2 (SPIDE's modified reset) the count rounds instead of flooring z/theta * n_steps.

    Parameters
    ----------
    model : RateModel
        The network (theta is the reset step).
    x : array_like, shape (n_inputs,)
        Constant input of the sample.
    n_steps : int
        Length T_f of the phase in steps of tau.
    v_th : float, default 1.0
        Firing threshold.
    update_order : {'simultaneous', 'sequential'}, default 'simultaneous'
        ``'simultaneous'``: every layer integrates the spikes all layers emitted at the
        previous step (as in Brian2 with zero synaptic delay). ``'sequential'``: layers are
        updated in order 1..N, layer l+1 integrating the spikes layer l emitted in the same
        step; only the feedback W^fb carries last step's spikes (as in the IDE authors'
        code). Both are identical for one layer and converge to the same rates.

    Returns
    -------
    tuple of ndarray
        Rates a^l = spike count / n_steps, per layer.
    """
    owner = "simulate_if"
    sample = _check_sample(owner, model, x)
    n_steps = check_positive_int(owner, "n_steps", n_steps)
    v_th = check_positive_float(owner, "v_th", v_th)
    check_choice(owner, "update_order", update_order, _UPDATE_ORDERS)
    constant_current = [model.input_weights @ sample + model.biases[0], *model.biases[1:]]
    incoming: list[list[tuple[int, FloatArray]]] = [[] for _ in range(model.n_layers)]
    for post, pre, weights in model.connections():
        incoming[post].append((pre, weights))
    membranes = [np.zeros(size) for size in model.layer_sizes]
    spikes = [np.zeros(size) for size in model.layer_sizes]
    counts = [np.zeros(size) for size in model.layer_sizes]
    for _ in range(n_steps):
        # Sequential order reads the list being updated, so layer l+1 sees this step's s^l.
        source = spikes if update_order == "sequential" else list(spikes)
        for layer in range(model.n_layers):
            membranes[layer] += constant_current[layer]
            for pre, weights in incoming[layer]:
                membranes[layer] += weights @ source[pre]
            fired = (membranes[layer] >= v_th).astype(np.float64)
            membranes[layer] -= model.theta * fired
            spikes[layer] = fired
            counts[layer] += fired
    return tuple(count / n_steps for count in counts)


def spide_adjoint(
    model: RateModel,
    rates: Any,
    g: Any,
    *,
    n_steps: int,
    scale: float = 1.0,
    v_b: float = 0.5,
    delta: float = 1.0,
    gates: Any = None,
    update_order: UpdateOrder = "simultaneous",
) -> LayerArrays:
    """Discrete-time SPIDE backward phase with ternary error units.

    Each forward neuron i of layer l has an error unit with membrane e (starting at 0).
    At each step, e^N += s g, and every unit integrates the events of the units it projects
    to, through the transposed forward weights and their gates:
    e^pre += (1/theta) W^T (m^post * sigma^post) for every connection (W^fb from layer N
    to 1 and W^(l+1) from l to l+1). Then sigma = +delta if e >= v_b, -delta if e <= -v_b,
    else 0, and e -= sigma.

    The reset equals the emitted event (with the defaults v_b = 0.5, delta = 1 this is
    ALGORITHM.md's "reset by 2 V_b"). That is the generalisation that conserves charge: the
    mean of sigma equals the mean drive for any v_b and delta, so the stationary rates
    solve beta = s g + J^T beta, the IDE adjoint equation for s g, until |beta| reaches
    delta (at most one event per step).

    Parameters
    ----------
    model : RateModel
        The network.
    rates : tuple of ndarray
        Free-phase rates a^l (used for the gates when ``gates`` is None).
    g : array_like, shape (n_N,)
        dL/da^N (see :func:`output_error`), applied as the constant current s g.
    n_steps : int
        Length T_b of the phase in steps of tau.
    scale : float, default 1.0
        The scale s of the error current.
    v_b : float, default 0.5
        Event threshold of the error units.
    delta : float, default 1.0
        Magnitude of one event and of the reset.
    gates : tuple of ndarray, optional
        m^l per layer; by default ``gates_from_rates(rates)``, i.e. 1[0 < a < 1].
    update_order : {'simultaneous', 'sequential'}, default 'simultaneous'
        As in :func:`simulate_if`, in the backward direction: ``'sequential'`` updates
        layers N..1, layer l reading the events layer l+1 emitted in the same step, and the
        path through W^fb carries last step's events.

    Returns
    -------
    tuple of ndarray
        beta^l = (sum of signed events) / n_steps per layer: the raw event rate, in units
        of delta per tau, NOT divided by the scale. It approximates s times the IDE adjoint
        (clipped to [-delta, delta]); divide by ``scale`` to compare with the adjoint, as
        :func:`spide_update` does.
    """
    owner = "spide_adjoint"
    layer_rates = _check_layer_vectors(owner, "rates", model.layer_sizes, rates)
    last_error = check_finite_array(owner, "g", g, ndim=1, shape=(model.layer_sizes[-1],))
    n_steps = check_positive_int(owner, "n_steps", n_steps)
    scale = check_positive_float(owner, "scale", scale)
    v_b = check_positive_float(owner, "v_b", v_b)
    delta = check_positive_float(owner, "delta", delta)
    check_choice(owner, "update_order", update_order, _UPDATE_ORDERS)
    layer_gates = (
        gates_from_rates(layer_rates)
        if gates is None
        else _check_layer_vectors(owner, "gates", model.layer_sizes, gates)
    )
    # incoming[pre]: (post, (1/theta) W^T diag(m^post)), the backward messages into pre.
    incoming: list[list[tuple[int, FloatArray]]] = [[] for _ in range(model.n_layers)]
    for post, pre, weights in model.connections():
        incoming[pre].append((post, weights.T * (layer_gates[post] / model.theta)[None, :]))
    last = model.n_layers - 1
    membranes = [np.zeros(size) for size in model.layer_sizes]
    events = [np.zeros(size) for size in model.layer_sizes]
    totals = [np.zeros(size) for size in model.layer_sizes]
    for _ in range(n_steps):
        source = events if update_order == "sequential" else list(events)
        for layer in reversed(range(model.n_layers)):
            if layer == last:
                membranes[layer] += scale * last_error
            for post, transposed in incoming[layer]:
                membranes[layer] += transposed @ source[post]
            emitted = np.where(
                membranes[layer] >= v_b, delta, np.where(membranes[layer] <= -v_b, -delta, 0.0)
            )
            membranes[layer] -= emitted
            events[layer] = emitted
            totals[layer] += emitted
    return tuple(total / n_steps for total in totals)


def spide_update(
    model: RateModel,
    x: Any,
    rates: Any,
    beta: Any,
    readout_probs_minus_target: Any,
    *,
    scale: float = 1.0,
    gates: Any = None,
) -> Gradients:
    """SPIDE's local plasticity written as a gradient estimate (the update without -eta).

    From the free-phase rates a (pre-synaptic) and the backward-phase event rates beta
    (post-synaptic): dW_ij = (1/s)(1/theta) m_i beta_i a_j for every connection (and x_j
    for F), db_i = (1/s)(1/theta) m_i beta_i, and for the readout dC = outer(p - y, a^N),
    dd = p - y. The plasticity step is ``-eta`` times this.

    Parameters
    ----------
    model : RateModel
        The network.
    x : array_like, shape (n_inputs,)
        Input of the sample (constant current or measured input rate).
    rates : tuple of ndarray
        Free-phase rates a^l.
    beta : tuple of ndarray
        Backward-phase event rates, as returned by :func:`spide_adjoint` (not divided by s).
    readout_probs_minus_target : array_like, shape (n_classes,)
        dL/do: softmax(o) - onehot(y) for cross-entropy (see :func:`readout_error`).
    scale : float, default 1.0
        The scale s used in the backward phase.
    gates : tuple of ndarray, optional
        m^l; by default 1[0 < a^l < 1].

    Returns
    -------
    Gradients
        The estimate; its ``adjoint`` is beta / s.
    """
    owner = "spide_update"
    sample = _check_sample(owner, model, x)
    layer_rates = _check_layer_vectors(owner, "rates", model.layer_sizes, rates)
    event_rates = _check_layer_vectors(owner, "beta", model.layer_sizes, beta)
    score_error = check_finite_array(
        owner,
        "readout_probs_minus_target",
        readout_probs_minus_target,
        ndim=1,
        shape=(model.n_classes,),
    )
    scale = check_positive_float(owner, "scale", scale)
    layer_gates = (
        gates_from_rates(layer_rates)
        if gates is None
        else _check_layer_vectors(owner, "gates", model.layer_sizes, gates)
    )
    adjoint = tuple(rate / scale for rate in event_rates)
    return _assemble(model, sample, layer_rates, layer_gates, adjoint, score_error)


def spide_gradients(
    model: RateModel,
    x: Any,
    y: Any,
    *,
    n_steps_free: int,
    n_steps_backward: int,
    scale: float = 1.0,
    kind: LossKind = "cross_entropy",
    v_th: float = 1.0,
    v_b: float = 0.5,
    delta: float = 1.0,
    update_order: UpdateOrder = "simultaneous",
) -> Gradients:
    """Whole discrete-time SPIDE pipeline for one sample, as a gradient estimate.

    Runs :func:`simulate_if` for ``n_steps_free`` steps, forms dL/do and g from the measured
    rates, runs :func:`spide_adjoint` for ``n_steps_backward`` steps and returns
    :func:`spide_update`. Every step is done by spikes except the readout, which is
    non-spiking in the papers too.
    """
    owner = "spide_gradients"
    check_choice(owner, "kind", kind, _LOSS_KINDS)
    label = _check_label(owner, model, y)
    rates = simulate_if(model, x, n_steps=n_steps_free, v_th=v_th, update_order=update_order)
    score_error = _score_error(model.readout_weights @ rates[-1] + model.readout_bias, label, kind)
    beta = spide_adjoint(
        model,
        rates,
        model.readout_weights.T @ score_error,
        n_steps=n_steps_backward,
        scale=scale,
        v_b=v_b,
        delta=delta,
        update_order=update_order,
    )
    return spide_update(model, x, rates, beta, score_error, scale=scale)
