"""The rate-level network and the gradient container of the numpy reference.

:class:`RateModel` holds the parameters of a feedback network (input, forward, feedback
and readout weights, biases, reset step theta) as read-only float64 arrays;
:class:`Gradients` holds a gradient with respect to each of them. The ``_check_*`` helpers
validate samples, labels and per-layer vectors for the other reference modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import check_finite_array, check_positive_float, describe

__all__ = [
    "Gradients",
    "RateModel",
    "check_batch",
    "check_label",
    "check_layer_vectors",
    "check_sample",
    "cosine_similarity",
    "spectral_loop_gain",
]

FloatArray = NDArray[np.float64]
LayerArrays = tuple[FloatArray, ...]


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
        biases = check_layer_vectors(owner, "biases", tuple(sizes), self.biases)
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


def check_sample(owner: str, model: RateModel, x: Any) -> FloatArray:
    """Check one input sample against the model and return it as a float array.

    Parameters
    ----------
    owner : str
        Name of the calling function, used in the error message.
    model : RateModel
        The model whose input size the sample must have.
    x : array_like, shape (n_inputs,)
        The input vector of one sample.

    Returns
    -------
    ndarray of float64, shape (n_inputs,)
        The checked sample.

    Raises
    ------
    ValidationError
        If ``x`` is not a finite 1-D array of length ``model.n_inputs``.
    """
    return check_finite_array(owner, "x", x, ndim=1, shape=(model.n_inputs,))


def check_label(owner: str, model: RateModel, y: Any) -> int:
    """Check one class label against the model's number of classes.

    Parameters
    ----------
    owner : str
        Name of the calling function, used in the error message.
    model : RateModel
        The model whose readout defines the classes.
    y : int
        Class label, an integer in ``[0, model.n_classes - 1]`` (``bool`` is refused).

    Returns
    -------
    int
        The label as a plain ``int``.

    Raises
    ------
    ValidationError
        If ``y`` is not an integer class label of the model.
    """
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


def check_layer_vectors(owner: str, name: str, sizes: tuple[int, ...], vectors: Any) -> LayerArrays:
    """Check a per-layer sequence of vectors (rates, gates, adjoints) against the layer sizes.

    Parameters
    ----------
    owner : str
        Name of the calling function, used in the error message.
    name : str
        Name of the argument, used in the error message.
    sizes : tuple of int
        Number of neurons of every layer.
    vectors : tuple or list of array_like
        One finite 1-D vector per layer, of the layer's size.

    Returns
    -------
    tuple of ndarray of float64
        The checked vectors, one per layer.

    Raises
    ------
    ValidationError
        If the number of vectors or the shape of one of them does not match ``sizes``, or a
        value is not finite.
    """
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


def check_batch(owner: str, model: RateModel, X: Any) -> FloatArray:
    """Check a batch of input samples against the model and return it as a float array.

    Parameters
    ----------
    owner : str
        Name of the calling function, used in the error message.
    model : RateModel
        The model whose input size every sample must have.
    X : array_like, shape (n_samples, n_inputs)
        One input vector per row.

    Returns
    -------
    ndarray of float64, shape (n_samples, n_inputs)
        The checked batch.

    Raises
    ------
    ValidationError
        If ``X`` is not a finite 2-D array with ``model.n_inputs`` columns.
    """
    return check_finite_array(owner, "X", X, ndim=2, shape=(None, model.n_inputs))
