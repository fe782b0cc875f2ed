"""Discrete-time SPIDE: the integrate-and-fire free phase and the ternary error units.

One step is one time unit tau. :func:`simulate_if` starts membranes at 0 with threshold
``v_th`` and subtractive reset theta, and by default every layer integrates the spikes of
the previous step; :func:`spide_adjoint` returns the raw signed event rate, which
approximates ``scale`` times the IDE adjoint; :func:`spide_update` divides by ``scale``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from fbsnn_brian.reference.equilibrium import gates_from_rates
from fbsnn_brian.reference.ide import LOSS_KINDS, LossKind, assemble_gradients, error_of_scores
from fbsnn_brian.reference.rate_model import (
    FloatArray,
    Gradients,
    LayerArrays,
    RateModel,
    check_label,
    check_layer_vectors,
    check_sample,
)
from fbsnn_brian.validation import (
    check_choice,
    check_finite_array,
    check_positive_float,
    check_positive_int,
)

__all__ = ["UpdateOrder", "simulate_if", "spide_adjoint", "spide_gradients", "spide_update"]

UpdateOrder = Literal["simultaneous", "sequential"]
_UPDATE_ORDERS = ("simultaneous", "sequential")


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
    sample = check_sample(owner, model, x)
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
    the "reset by 2 v_b" of docs/algorithm.rst, section "Error units"). That is the
    generalisation that conserves charge: the mean of sigma equals the mean drive for any v_b and
    delta, so the stationary rates solve beta = s g + J^T beta, the IDE adjoint equation for s g,
    until |beta| reaches delta (at most one event per step).

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
    layer_rates = check_layer_vectors(owner, "rates", model.layer_sizes, rates)
    last_error = check_finite_array(owner, "g", g, ndim=1, shape=(model.layer_sizes[-1],))
    n_steps = check_positive_int(owner, "n_steps", n_steps)
    scale = check_positive_float(owner, "scale", scale)
    v_b = check_positive_float(owner, "v_b", v_b)
    delta = check_positive_float(owner, "delta", delta)
    check_choice(owner, "update_order", update_order, _UPDATE_ORDERS)
    layer_gates = (
        gates_from_rates(layer_rates)
        if gates is None
        else check_layer_vectors(owner, "gates", model.layer_sizes, gates)
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
    sample = check_sample(owner, model, x)
    layer_rates = check_layer_vectors(owner, "rates", model.layer_sizes, rates)
    event_rates = check_layer_vectors(owner, "beta", model.layer_sizes, beta)
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
        else check_layer_vectors(owner, "gates", model.layer_sizes, gates)
    )
    adjoint = tuple(rate / scale for rate in event_rates)
    return assemble_gradients(model, sample, layer_rates, layer_gates, adjoint, score_error)


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
    check_choice(owner, "kind", kind, LOSS_KINDS)
    label = check_label(owner, model, y)
    rates = simulate_if(model, x, n_steps=n_steps_free, v_th=v_th, update_order=update_order)
    score_error = error_of_scores(
        model.readout_weights @ rates[-1] + model.readout_bias, label, kind
    )
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
