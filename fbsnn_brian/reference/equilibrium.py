"""Equilibrium rates of the rate model: the fixed point, preactivations and gates.

The equilibrium a^1 = phi(W^fb a^N + F x + b^1), a^(l+1) = phi(W^(l+1) a^l + b^(l+1)) is
iterated layer by layer and then solved exactly as one linear system once the active set
is settled (see :func:`fixed_point`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.reference.rate_model import (
    FloatArray,
    LayerArrays,
    RateModel,
    check_batch,
    check_layer_vectors,
    check_sample,
)
from fbsnn_brian.validation import check_positive_float, check_positive_int

__all__ = [
    "fixed_point",
    "fixed_point_batch",
    "gates_from_preactivations",
    "gates_from_rates",
    "layer_offsets",
    "layer_preactivations",
    "preactivations",
    "solve_fixed_point",
]

# Threshold on the fixed-point iteration's step below which the active set is usually
# settled, so one exact linear solve ("polish") can replace the remaining iterations.
_POLISH_BELOW_CHANGE = 1e-8


def _clip_rate(preactivation: FloatArray, theta: float) -> FloatArray:
    return np.clip(preactivation / theta, 0.0, 1.0)


def _sweep(model: RateModel, input_current: FloatArray, last_rates: FloatArray) -> LayerArrays:
    """One pass of the fixed-point map, layer by layer starting from a^N."""
    rates = [_clip_rate(model.feedback_weights @ last_rates + input_current, model.theta)]
    for weights, bias in zip(model.forward_weights, model.biases[1:], strict=True):
        rates.append(_clip_rate(weights @ rates[-1] + bias, model.theta))
    return tuple(rates)


def layer_preactivations(
    model: RateModel, input_current: FloatArray, rates: LayerArrays
) -> LayerArrays:
    """Preactivations z^l of every layer for given rates and a given input current.

    z^1 = W^fb a^N + (F x + b^1) and z^(l+1) = W^(l+1) a^l + b^(l+1). Unlike
    :func:`preactivations` nothing is checked and the input current ``F x + b^1`` is passed
    in, so the fixed-point solvers can reuse it across iterations.

    Parameters
    ----------
    model : RateModel
        The network.
    input_current : ndarray, shape (n_1,)
        The constant drive F x + b^1 of layer 1.
    rates : tuple of ndarray
        Rates a^l of every layer.

    Returns
    -------
    tuple of ndarray
        z^l of every layer.
    """
    currents = [model.feedback_weights @ rates[-1] + input_current]
    for weights, bias, pre_rates in zip(
        model.forward_weights, model.biases[1:], rates[:-1], strict=True
    ):
        currents.append(weights @ pre_rates + bias)
    return tuple(currents)


def layer_offsets(sizes: Sequence[int]) -> list[int]:
    """Start index of every layer in the stacked vector of all layers, plus the total.

    Parameters
    ----------
    sizes : sequence of int
        Number of neurons of every layer.

    Returns
    -------
    list of int
        ``[0, n_1, n_1 + n_2, ..., n_1 + ... + n_N]``: layer l occupies
        ``offsets[l] : offsets[l + 1]``.

    Examples
    --------
    >>> layer_offsets((3, 2))
    [0, 3, 5]
    """
    return [0, *np.cumsum(sizes).tolist()]


def _polish(model: RateModel, input_current: FloatArray, rates: LayerArrays) -> LayerArrays:
    """Solve the equilibrium exactly, assuming the active set of ``rates`` is right.

    With the gates fixed, a^l = D^l z^l + 1[z^l >= theta] is linear in the rates, so the
    whole network is one linear system (I - M) a = c over the stacked rates.
    """
    theta = model.theta
    sizes = model.layer_sizes
    offsets = layer_offsets(sizes)
    currents = layer_preactivations(model, input_current, rates)
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
    currents = layer_preactivations(model, input_current, rates)
    return max(
        float(np.max(np.abs(rate - _clip_rate(current, model.theta))))
        for rate, current in zip(rates, currents, strict=True)
    )


def solve_fixed_point(
    model: RateModel, x: FloatArray, *, tol: float, max_iter: int, require_contraction: bool
) -> LayerArrays:
    """Equilibrium rates of one already checked sample (the solver behind :func:`fixed_point`).

    Iterates the fixed-point map layer by layer from zero rates; once the change falls below
    ``max(tol, 1e-8)`` and the active set looks settled, one exact linear solve replaces the
    remaining iterations (kept only if its residual is below ``tol``, up to roundoff).

    Parameters
    ----------
    model : RateModel
        The network.
    x : ndarray, shape (n_inputs,)
        The input, already checked (see :func:`~fbsnn_brian.reference.rate_model.check_sample`).
    tol : float
        Convergence tolerance on the largest change of a rate between two sweeps.
    max_iter : int
        Most sweeps before giving up.
    require_contraction : bool
        Refuse a network whose spectral loop gain is not below 1.

    Returns
    -------
    tuple of ndarray
        The equilibrium rates a^l of every layer.

    Raises
    ------
    ValidationError
        If the loop is not a contraction (with ``require_contraction``) or the iteration does
        not converge within ``max_iter`` sweeps.
    """
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
            currents = layer_preactivations(model, input_current, rates)
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
    sample = check_sample("fixed_point", model, x)
    check_positive_float("fixed_point", "tol", tol)
    max_iter = check_positive_int("fixed_point", "max_iter", max_iter)
    return solve_fixed_point(
        model, sample, tol=tol, max_iter=max_iter, require_contraction=require_contraction
    )


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
    inputs = check_batch("fixed_point_batch", model, X)
    per_sample = [
        solve_fixed_point(
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
    sample = check_sample("preactivations", model, x)
    layer_rates = check_layer_vectors("preactivations", "rates", model.layer_sizes, rates)
    return layer_preactivations(model, model.input_weights @ sample + model.biases[0], layer_rates)


def gates_from_preactivations(model: RateModel, currents: LayerArrays) -> LayerArrays:
    """Gates m^l = 1[0 < z^l / theta < 1] (strict) as float arrays of 0 and 1."""
    return tuple(((c > 0.0) & (c < model.theta)).astype(np.float64) for c in currents)


def gates_from_rates(rates: LayerArrays, ceiling: float = 1.0) -> LayerArrays:
    """Gates m^l = 1[0 < a^l < ceiling] (strict) from measured rates, as SPIDE uses them.

    ``ceiling`` is the most a neuron can fire, in spikes per tau: 1 for the ideal network's
    refractory period of one tau, ``tau / t_ref`` in general (SPIDE's in-simulation gate
    compares the spike count with ``T_f / t_ref``). A rate within a relative 1e-9 of it counts
    as saturated.

    A neuron that is silent or fires at every step passes no error. Any spike counts: a
    neuron silent at equilibrium that fired once during the onset transient has rate
    1/T > 0 and is gated on, which makes SPIDE deviate from IDE (it does not vanish as
    T grows, since the rate stays positive).
    """
    bound = ceiling * (1.0 - 1e-9)
    return tuple(((rate > 0.0) & (rate < bound)).astype(np.float64) for rate in rates)
