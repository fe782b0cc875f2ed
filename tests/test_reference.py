"""Tests of the numpy reference: equilibrium, IDE gradients and discrete-time SPIDE.

Every expected number comes either from docs/algorithm.rst, section "Test vector" (an independent
derivation) or from an independent computation in the test itself (central finite
differences of the loss, the equilibrium equation), never from an earlier run.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.reference import (
    Gradients,
    LossKind,
    RateModel,
    cosine_similarity,
    fixed_point,
    fixed_point_batch,
    ide_gradients,
    ide_gradients_batch,
    loss,
    output_error,
    preactivations,
    readout_error,
    simulate_if,
    spectral_loop_gain,
    spide_adjoint,
    spide_gradients,
    spide_update,
)

# --- docs/algorithm.rst, section "Test vector" ------------------------------------------

TEST_VECTOR_X = np.array([0.8, -0.3, 0.5])
TEST_VECTOR_LABEL = 1


@pytest.fixture
def test_vector_model() -> RateModel:
    return RateModel(
        input_weights=np.array(
            [
                [0.126, -0.132, 0.640],
                [0.105, -0.536, 0.362],
                [1.304, 0.947, -0.704],
                [-1.265, -0.623, 0.041],
            ]
        ),
        forward_weights=(),
        feedback_weights=np.array(
            [
                [-0.320, -0.186, 0.242, 0.614],
                [-0.076, 0.804, -0.392, 0.207],
                [0.532, 0.055, -0.438, -0.543],
                [-0.269, 0.130, -0.594, -0.123],
            ]
        ),
        biases=(np.array([-0.198, 0.434, 0.126, 0.280]),),
        readout_weights=np.array([[-0.159, 0.541, 0.215, 0.355], [-0.654, -0.130, 0.784, 1.493]]),
        readout_bias=np.zeros(2),
        theta=2.0,
    )


def test_test_vector_equilibrium_and_adjoint(test_vector_model: RateModel) -> None:
    model = test_vector_model
    (rates,) = fixed_point(model, TEST_VECTOR_X)
    # The document prints 3 decimals, so its rounding error is at most 5e-4; 1e-3 allows
    # for that plus the last digit of its own computation.
    np.testing.assert_allclose(rates, [0.089, 0.631, 0.252, 0.0], atol=1e-3)
    gradients = ide_gradients(model, TEST_VECTOR_X, TEST_VECTOR_LABEL)
    np.testing.assert_array_equal(gradients.gates[0], [1.0, 1.0, 1.0, 0.0])
    g = output_error(model, rates, TEST_VECTOR_LABEL)
    np.testing.assert_allclose(g, [0.287, 0.389, -0.330, -0.660], atol=1e-3)
    np.testing.assert_allclose(gradients.adjoint[0], [0.146, 0.612, -0.355, -0.456], atol=1e-3)
    # The adjoint must solve its defining equation beta = g + (1/theta) W^T diag(m) beta
    # to roundoff: it comes from one linear solve of a 4x4 well-conditioned system.
    (beta,) = gradients.adjoint
    jacobian_t = model.feedback_weights.T * (gradients.gates[0] / model.theta)[None, :]
    np.testing.assert_allclose(beta, g + jacobian_t @ beta, atol=1e-14)


def test_test_vector_discrete_if_rates(test_vector_model: RateModel) -> None:
    rates = simulate_if(test_vector_model, TEST_VECTOR_X, n_steps=30)
    # Spike counts are integers; the document's (0.100, 0.633, 0.267, 0) is 3, 19, 8 and 0
    # spikes out of 30, so the counts must match exactly.
    np.testing.assert_array_equal(np.round(rates[0] * 30), [3, 19, 8, 0])
    np.testing.assert_allclose(rates[0] * 30, np.round(rates[0] * 30), atol=1e-12)


def test_test_vector_spiking_adjoint(test_vector_model: RateModel) -> None:
    model = test_vector_model
    rates = fixed_point(model, TEST_VECTOR_X)
    g = output_error(model, rates[-1], TEST_VECTOR_LABEL)
    exact = ide_gradients(model, TEST_VECTOR_X, TEST_VECTOR_LABEL).adjoint[0]
    (beta,) = spide_adjoint(model, rates, g, n_steps=250, scale=1.0)
    # docs/algorithm.rst, "Test vector": within ~0.01 after 250 steps (membranes are bounded by V_b
    # + |drive|, so each rate is off by O(1/250), amplified by (I - J^T)^-1).
    np.testing.assert_allclose(beta, exact, atol=0.01)


def test_test_vector_spide_update_aligns_with_ide(test_vector_model: RateModel) -> None:
    model = test_vector_model
    exact = ide_gradients(model, TEST_VECTOR_X, TEST_VECTOR_LABEL)
    estimate = spide_gradients(
        model, TEST_VECTOR_X, TEST_VECTOR_LABEL, n_steps_free=250, n_steps_backward=250
    )
    # docs/algorithm.rst ("Test vector") claims > 0.999 for dL/dW; the whole parameter
    # vector is held to 0.99.
    assert _cosine(estimate.feedback_weights, exact.feedback_weights) > 0.999
    assert cosine_similarity(estimate, exact) > 0.99


# --- random networks ---------------------------------------------------------------------


def random_model(
    seed: int,
    *,
    n_inputs: int,
    layer_sizes: tuple[int, ...],
    n_classes: int,
    loop_gain: float,
    theta: float = 2.0,
) -> tuple[RateModel, np.ndarray[Any, np.dtype[np.float64]]]:
    """A network whose feedback is rescaled to a given spectral loop gain, and an input."""
    rng = np.random.default_rng(seed)
    forward = tuple(
        rng.normal(0.0, 2.0 / np.sqrt(n_pre), (n_post, n_pre))
        for n_pre, n_post in pairwise(layer_sizes)
    )
    feedback = rng.normal(size=(layer_sizes[0], layer_sizes[-1]))
    forward_gain = float(np.prod([np.linalg.norm(w, 2) for w in forward]))
    feedback *= loop_gain * theta ** len(layer_sizes) / (np.linalg.norm(feedback, 2) * forward_gain)
    model = RateModel(
        input_weights=rng.normal(0.0, 2.0 / np.sqrt(n_inputs), (layer_sizes[0], n_inputs)),
        forward_weights=forward,
        feedback_weights=feedback,
        biases=tuple(rng.uniform(-0.5, 1.5, size) * theta / 2 for size in layer_sizes),
        readout_weights=rng.normal(size=(n_classes, layer_sizes[-1])),
        readout_bias=rng.normal(0.0, 0.5, n_classes),
        theta=theta,
    )
    return model, rng.normal(size=n_inputs)


# Seeds picked so that each network has active, silent and saturated neurons at its
# equilibrium (asserted below), so the gates are exercised.
NETWORKS = {
    "one_layer": dict(seed=4, n_inputs=4, layer_sizes=(6,), n_classes=3, loop_gain=0.8),
    "three_layers": dict(seed=1, n_inputs=4, layer_sizes=(6, 5, 4), n_classes=3, loop_gain=0.8),
}
FINITE_DIFFERENCE_STEP = 1e-6


def _cosine(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]) -> float:
    return float(
        np.ravel(first) @ np.ravel(second) / (np.linalg.norm(first) * np.linalg.norm(second))
    )


def _parameter_fields(model: RateModel) -> list[tuple[str, int | None]]:
    """(field, index in the tuple or None) for every parameter array of ``model``."""
    fields: list[tuple[str, int | None]] = [("input_weights", None)]
    fields += [("forward_weights", i) for i in range(model.n_layers - 1)]
    fields += [("feedback_weights", None)]
    fields += [("biases", i) for i in range(model.n_layers)]
    fields += [("readout_weights", None), ("readout_bias", None)]
    return fields


def _get(container: Any, name: str, index: int | None) -> np.ndarray[Any, Any]:
    value = getattr(container, name)
    return np.asarray(value if index is None else value[index])


def _with_parameter(
    model: RateModel, name: str, index: int | None, value: np.ndarray[Any, Any]
) -> RateModel:
    changes: dict[str, Any] = {name: value}
    if index is not None:
        values = list(getattr(model, name))
        values[index] = value
        changes[name] = tuple(values)
    return replace(model, **changes)


def _finite_difference(
    model: RateModel, x: np.ndarray[Any, Any], label: int, kind: LossKind, name: str, index: Any
) -> np.ndarray[Any, Any]:
    base = _get(model, name, index)
    gradient = np.zeros_like(base)
    for position in np.ndindex(base.shape):
        losses = []
        for sign in (1.0, -1.0):
            perturbed = base.copy()
            perturbed[position] += sign * FINITE_DIFFERENCE_STEP
            losses.append(loss(_with_parameter(model, name, index, perturbed), x, label, kind=kind))
        gradient[position] = (losses[0] - losses[1]) / (2 * FINITE_DIFFERENCE_STEP)
    return gradient


@pytest.mark.parametrize("kind", ["cross_entropy", "mse"])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_ide_gradients_match_finite_differences(network: str, kind: LossKind) -> None:
    model, x = random_model(**NETWORKS[network])  # type: ignore[arg-type]
    label = 2
    rates = fixed_point(model, x)
    currents = np.concatenate(preactivations(model, x, rates))
    # phi has kinks at z = 0 and z = theta; the loss is smooth only if no preactivation is
    # near one. A step of 1e-6 in one parameter moves z by at most ~1e-5 here (|x|, rates
    # and |(I - J)^-1| are O(1)), far below this margin.
    margin = np.min(np.minimum(np.abs(currents), np.abs(currents - model.theta)))
    assert margin > 1e-2
    assert np.any(currents <= 0) and np.any(currents >= model.theta)
    assert np.any((currents > 0) & (currents < model.theta))

    gradients = ide_gradients(model, x, label, kind=kind)
    for name, index in _parameter_fields(model):
        exact = _get(gradients, name, index)
        numeric = _finite_difference(model, x, label, kind, name, index)
        # Central differences: truncation ~ step^2 = 1e-12, roundoff ~ 1e-16 / step = 1e-10
        # (the fixed point is solved to roundoff), so 1e-5 leaves a wide margin.
        assert np.linalg.norm(exact) > 1e-3, (name, index)
        relative_error = np.linalg.norm(numeric - exact) / np.linalg.norm(exact)
        assert relative_error < 1e-5, (name, index, relative_error)


@pytest.mark.parametrize("update_order", ["simultaneous", "sequential"])
def test_spide_update_aligns_with_ide_on_three_layers(update_order: Any) -> None:
    model, x = random_model(**NETWORKS["three_layers"])  # type: ignore[arg-type]
    label = 0
    exact = ide_gradients(model, x, label)
    # Keep every error unit out of saturation: |s * beta| <= delta / 2.
    scale = 0.5 / max(float(np.max(np.abs(beta))) for beta in exact.adjoint)
    estimate = spide_gradients(
        model,
        x,
        label,
        n_steps_free=2000,
        n_steps_backward=2000,
        scale=scale,
        update_order=update_order,
    )
    # Quantisation errors of the rates are O(1/2000); 0.99 is the brief's alignment bar.
    assert cosine_similarity(estimate, exact) > 0.99
    np.testing.assert_array_equal(np.concatenate(estimate.gates), np.concatenate(exact.gates))


def test_spide_adjoint_scale_and_event_size() -> None:
    model, x = random_model(**NETWORKS["three_layers"])  # type: ignore[arg-type]
    exact = ide_gradients(model, x, 1)
    rates = exact.rates
    g = output_error(model, rates[-1], 1)
    peak = max(float(np.max(np.abs(beta))) for beta in exact.adjoint)
    n_steps = 4000
    for scale, v_b, delta in [(0.4 / peak, 0.5, 1.0), (0.2 / peak, 0.25, 0.5)]:
        beta = spide_adjoint(model, rates, g, n_steps=n_steps, scale=scale, v_b=v_b, delta=delta)
        # Unsaturated: the event rate is s times the adjoint, up to O(delta / n_steps)
        # quantisation amplified by the loop (bounded by 1 / (1 - loop gain) = 5).
        for measured, adjoint in zip(beta, exact.adjoint, strict=True):
            np.testing.assert_allclose(measured, scale * adjoint, atol=10 * delta / n_steps * 5)
    # Far too large a scale: every unit fires at most one event of size delta per step.
    saturated = spide_adjoint(model, rates, g, n_steps=200, scale=100 / peak)
    assert max(float(np.max(np.abs(beta))) for beta in saturated) == 1.0


def test_spide_update_divides_by_scale(test_vector_model: RateModel) -> None:
    model = test_vector_model
    rates = fixed_point(model, TEST_VECTOR_X)
    score_error = readout_error(model, rates[-1], TEST_VECTOR_LABEL)
    beta = (np.array([0.2, -0.4, 0.6, 0.8]),)
    update = spide_update(model, TEST_VECTOR_X, rates, beta, score_error, scale=4.0)
    expected_gated = np.array([0.2, -0.4, 0.6, 0.0]) / 4.0 / model.theta
    np.testing.assert_allclose(update.biases[0], expected_gated)
    np.testing.assert_allclose(update.feedback_weights, np.outer(expected_gated, rates[0]))
    np.testing.assert_allclose(update.input_weights, np.outer(expected_gated, TEST_VECTOR_X))
    np.testing.assert_allclose(update.readout_weights, np.outer(score_error, rates[0]))
    np.testing.assert_allclose(update.adjoint[0], beta[0] / 4.0)


def test_if_rates_approach_fixed_point_for_both_update_orders() -> None:
    model, x = random_model(**NETWORKS["three_layers"])  # type: ignore[arg-type]
    exact = np.concatenate(fixed_point(model, x))
    for update_order in ("simultaneous", "sequential"):
        rates = np.concatenate(simulate_if(model, x, n_steps=3000, update_order=update_order))
        # Rounding of the counts gives O(1/3000) per layer, amplified by the loop.
        np.testing.assert_allclose(rates, exact, atol=5e-3)


def test_batch_functions_agree_with_single_samples() -> None:
    model, _ = random_model(**NETWORKS["three_layers"])  # type: ignore[arg-type]
    inputs = np.random.default_rng(0).normal(size=(5, model.n_inputs))
    labels = np.array([0, 1, 2, 1, 0])
    batch = ide_gradients_batch(model, inputs, labels, kind="mse")
    singles = [
        ide_gradients(model, x, int(y), kind="mse") for x, y in zip(inputs, labels, strict=True)
    ]
    mean_vector = np.mean([grad.parameter_vector() for grad in singles], axis=0)
    np.testing.assert_allclose(batch.parameter_vector(), mean_vector, rtol=1e-12, atol=1e-15)
    assert [a.shape for a in batch.adjoint] == [(5, 6), (5, 5), (5, 4)]
    stacked_rates = fixed_point_batch(model, inputs)
    for layer in range(model.n_layers):
        np.testing.assert_array_equal(stacked_rates[layer], batch.rates[layer])


# --- equilibrium -------------------------------------------------------------------------


def _residual(model: RateModel, x: np.ndarray[Any, Any]) -> float:
    rates = fixed_point(model, x)
    currents = preactivations(model, x, rates)
    return max(
        float(np.max(np.abs(rate - np.clip(current / model.theta, 0, 1))))
        for rate, current in zip(rates, currents, strict=True)
    )


@pytest.mark.parametrize("layer_sizes", [(5, 7), (6, 5, 4), (3, 8, 2, 5)])
def test_fixed_point_solves_equation_for_multilayer_networks(
    layer_sizes: tuple[int, ...],
) -> None:
    # Gain 0.95 converges slowly by iteration alone; the exact solve must still reach 1e-12.
    model, x = random_model(7, n_inputs=3, layer_sizes=layer_sizes, n_classes=2, loop_gain=0.95)
    assert _residual(model, x) <= 1e-12


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    layer_sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    loop_gain=st.floats(0.0, 0.99),
    theta=st.floats(0.5, 4.0),
)
def test_fixed_point_residual_property(
    seed: int, layer_sizes: tuple[int, ...], loop_gain: float, theta: float
) -> None:
    model, x = random_model(
        seed, n_inputs=3, layer_sizes=layer_sizes, n_classes=2, loop_gain=loop_gain, theta=theta
    )
    assert spectral_loop_gain(model) < 1.0
    # Exact linear solve on the active set: residual at roundoff (rates lie in [0, 1]).
    assert _residual(model, x) <= 1e-12


def test_spectral_loop_gain_multiplies_norms() -> None:
    model, _ = random_model(**NETWORKS["three_layers"])  # type: ignore[arg-type]
    norms = [np.linalg.norm(w, 2) for w in (model.feedback_weights, *model.forward_weights)]
    assert spectral_loop_gain(model) == pytest.approx(np.prod(norms) / model.theta**3, rel=1e-12)
    assert spectral_loop_gain(model) == pytest.approx(0.8, rel=1e-12)


def test_non_contracting_loop_is_refused(test_vector_model: RateModel) -> None:
    model = replace(test_vector_model, feedback_weights=3.0 * np.eye(4))
    with pytest.raises(ValidationError, match=r"not a contraction.*spectral loop gain.* is 1\.5"):
        fixed_point(model, TEST_VECTOR_X)
    with pytest.raises(ValidationError, match=r"spectral loop gain"):
        loss(model, TEST_VECTOR_X, 0)


def test_divergent_iteration_reports_gain() -> None:
    # One neuron inhibiting itself with slope -3 around its fixed point: the plain
    # iteration jumps between 0 and 1 forever.
    model = RateModel(
        input_weights=np.array([[1.0]]),
        forward_weights=(),
        feedback_weights=np.array([[-6.0]]),
        biases=(np.array([2.0]),),
        readout_weights=np.array([[1.0]]),
        readout_bias=np.zeros(1),
    )
    with pytest.raises(ValidationError, match=r"did not converge.*spectral loop gain.* is 3"):
        fixed_point(model, np.array([1.0]), require_contraction=False, max_iter=200)


# --- input validation --------------------------------------------------------------------


def test_wrong_input_shape_is_refused(test_vector_model: RateModel) -> None:
    with pytest.raises(ValidationError, match=r"fixed_point: x must have shape \(3,\), got \(4,\)"):
        fixed_point(test_vector_model, np.zeros(4))
    with pytest.raises(ValidationError, match=r"ide_gradients: x must be a 1-D array"):
        ide_gradients(test_vector_model, np.zeros((1, 3)), 0)


def test_nan_input_is_refused(test_vector_model: RateModel) -> None:
    with pytest.raises(ValidationError, match=r"x must contain only finite values, got 1 NaN"):
        simulate_if(test_vector_model, np.array([0.1, np.nan, 0.2]), n_steps=10)


def test_bad_label_and_kind_are_refused(test_vector_model: RateModel) -> None:
    with pytest.raises(ValidationError, match=r"y must be an integer class label in \[0, 1\]"):
        loss(test_vector_model, TEST_VECTOR_X, 2)
    with pytest.raises(ValidationError, match=r"kind must be one of .*Did you mean 'mse'"):
        loss(test_vector_model, TEST_VECTOR_X, 0, kind="mes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [
        (
            "feedback_weights",
            np.zeros((4, 3)),
            r"RateModel: feedback_weights must have shape \(4, 4\), got \(4, 3\)",
        ),
        (
            "readout_weights",
            np.zeros((2, 5)),
            r"RateModel: readout_weights must have shape \('any', 4\), got \(2, 5\)",
        ),
        (
            "readout_bias",
            np.zeros(3),
            r"RateModel: readout_bias must have shape \(2,\), got \(3,\)",
        ),
        (
            "biases",
            (np.zeros(4), np.zeros(4)),
            r"RateModel: biases must be a tuple with one vector per layer \(1 layers",
        ),
        ("biases", (np.zeros(5),), r"RateModel: biases\[0\] must have shape \(4,\), got \(5,\)"),
        ("theta", 0.0, r"RateModel: theta must be a finite number > 0, got 0\.0"),
        ("input_weights", np.full((4, 3), np.nan), r"input_weights must contain only finite"),
    ],
)
def test_mismatched_model_shapes_are_refused(
    test_vector_model: RateModel, field_name: str, value: Any, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        replace(test_vector_model, **{field_name: value})


def test_mismatched_forward_weights_are_refused() -> None:
    model, _ = random_model(**NETWORKS["three_layers"])  # type: ignore[arg-type]
    with pytest.raises(
        ValidationError,
        match=r"RateModel: forward_weights\[1\] must have shape \('any', 5\), got \(4, 3\)",
    ):
        replace(model, forward_weights=(model.forward_weights[0], np.zeros((4, 3))))


def test_model_arrays_are_read_only(test_vector_model: RateModel) -> None:
    with pytest.raises(ValueError, match="read-only"):
        test_vector_model.feedback_weights[0, 0] = 1.0


def test_gradients_of_different_architectures_do_not_compare(
    test_vector_model: RateModel,
) -> None:
    model, x = random_model(**NETWORKS["one_layer"])  # type: ignore[arg-type]
    first: Gradients = ide_gradients(model, x, 0)
    second = ide_gradients(test_vector_model, TEST_VECTOR_X, 0)
    with pytest.raises(ValidationError, match="same architecture"):
        cosine_similarity(first, second)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    layer_sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    loop_gain=st.floats(0.0, 0.9),
    kind=st.sampled_from(["cross_entropy", "mse"]),
)
def test_ide_gradients_property(
    seed: int, layer_sizes: tuple[int, ...], loop_gain: float, kind: LossKind
) -> None:
    # For random small networks, every gradient entry of one parameter (chosen by the seed)
    # matches central finite differences wherever the loss is smooth (no preactivation within
    # 1e-2 of a kink of phi).
    model, x = random_model(
        seed, n_inputs=3, layer_sizes=layer_sizes, n_classes=2, loop_gain=loop_gain
    )
    rates = fixed_point(model, x)
    currents = np.concatenate(preactivations(model, x, rates))
    margin = np.min(np.minimum(np.abs(currents), np.abs(currents - model.theta)))
    assume(margin > 1e-2)
    gradients = ide_gradients(model, x, 1, kind=kind)
    fields = _parameter_fields(model)
    name, index = fields[seed % len(fields)]
    exact = _get(gradients, name, index)
    numeric = _finite_difference(model, x, 1, kind, name, index)
    scale = max(float(np.linalg.norm(exact)), 1e-3)
    assert float(np.linalg.norm(numeric - exact)) / scale < 1e-5, (name, index)
