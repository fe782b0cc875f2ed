"""FeedbackNetwork: validation, weights, contraction."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, mV

from fbsnn_brian import FeedbackNetwork, ValidationError
from fbsnn_brian.reference import fixed_point


def make(**overrides: object) -> FeedbackNetwork:
    kwargs: dict[str, object] = {"n_inputs": 8, "layer_sizes": [6], "n_classes": 3, "seed": 0}
    kwargs.update(overrides)
    return FeedbackNetwork(**kwargs)  # type: ignore[arg-type]


def test_defaults_follow_the_design() -> None:
    net = make()
    assert net.v_threshold == 1.0 and net.theta == 2.0
    assert net.tau == 1 * ms and net.dt == 0.25 * ms and net.refractory == 1 * ms
    assert net.input_coding == "current" and net.neuron == "if"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_inputs": 0}, "n_inputs must be a positive integer, got 0"),
        ({"layer_sizes": []}, "layer_sizes must name at least one layer"),
        ({"layer_sizes": [4, -1]}, "layer_sizes[1] must be a positive integer, got -1"),
        ({"layer_sizes": 5}, "layer_sizes must be a sequence of positive integers"),
        ({"n_classes": 2.5}, "n_classes must be a positive integer, got 2.5"),
        ({"neuron": "lfi"}, "neuron must be one of 'if', 'lif', got 'lfi'. Did you mean 'lif'?"),
        ({"input_coding": "rate"}, "input_coding must be one of 'current', 'spikes'"),
        ({"tau": 1.0}, "tau must be a Brian2 time quantity such as 1*ms, got 1.0"),
        ({"tau": 1 * mV}, "tau must be a Brian2 time quantity"),
        ({"dt": 0.5 * ms}, "dt must be at most tau/4"),
        ({"dt": 0.3 * ms, "tau": 1.4 * ms}, "must divide tau"),
        ({"refractory": -1 * ms}, "refractory must be a finite time >= 0"),
        ({"theta": 0}, "theta must be a finite number > 0, got 0"),
        ({"feedback_gain": 1.2}, "feedback_gain must be in (0, 1)"),
        ({"seed": -3}, "seed must be a non-negative integer, got -3"),
    ],
)
def test_bad_configuration_is_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**overrides)
    assert message in str(info.value)
    assert str(info.value).startswith("FeedbackNetwork:")


def test_initial_loop_is_a_contraction_for_one_and_three_layers() -> None:
    for sizes in ([20], [12, 9, 7]):
        net = make(layer_sizes=sizes, feedback_gain=0.4)
        assert net.loop_gain() == pytest.approx(0.4, rel=1e-12)
        one = [np.linalg.norm(net.feedback_weights, 2) / net.theta]
        one += [np.linalg.norm(w, 2) / net.theta for w in net.forward_weights]
        assert net.loop_gain() == pytest.approx(float(np.prod(one)))


def test_weights_are_numpy_arrays_the_user_can_set() -> None:
    net = make()
    new_input = np.ones((6, 8)) * 0.1
    net.input_weights = new_input
    np.testing.assert_array_equal(net.input_weights, new_input)
    new_input[0, 0] = 5.0  # the network keeps its own copy
    assert net.input_weights[0, 0] == 0.1
    with pytest.raises(
        ValidationError, match=r"input_weights must have shape \(6, 8\), got \(8, 6\)"
    ):
        net.input_weights = np.ones((8, 6))
    with pytest.raises(ValidationError, match="readout_bias must contain only finite values"):
        net.readout_bias = np.array([0.0, np.nan, 1.0])


def test_contraction_check_rejects_a_feedback_matrix_with_gain_at_least_one() -> None:
    net = make()
    recurrent = np.eye(6) * 2.0  # ||W||_2 / theta = 1 exactly
    with pytest.raises(ValidationError) as info:
        net.feedback_weights = recurrent
    assert "loop gain ||W_fb||_2 / theta = 1" in str(info.value)
    assert "must be < 1" in str(info.value)


def test_restrict_feedback_restores_the_contraction() -> None:
    net = make(layer_sizes=[10])
    net._feedback_weights = net.feedback_weights * 5  # as a plasticity update might
    assert net.loop_gain() > 1
    factor = net.restrict_feedback(max_gain=0.9)
    assert factor < 1
    assert net.loop_gain() == pytest.approx(0.9)
    assert net.restrict_feedback(max_gain=0.95) == 1.0


def test_rate_model_fixed_point_is_non_trivial(digits_inputs: np.ndarray) -> None:
    # The initialisation must put a good share of neurons inside the clamp's linear range,
    # otherwise the equilibrium checks below would test nothing.
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[100], n_classes=10, seed=0)
    rates = fixed_point(net.rate_model(), digits_inputs[0])[0]
    inside = np.mean((rates > 0) & (rates < 1))
    assert inside > 0.2


def test_inputs_are_validated() -> None:
    net = make()
    with pytest.raises(ValidationError, match=r"inputs must have shape \('any', 8\), got \(3, 7\)"):
        net.check_inputs(np.zeros((3, 7)))
    with pytest.raises(ValidationError, match="inputs must contain only finite values, got 1 NaN"):
        bad = np.zeros((2, 8))
        bad[1, 3] = np.nan
        net.check_inputs(bad)
    with pytest.raises(ValidationError, match=r"inputs must lie in \[0, 1\]"):
        net.check_inputs(np.full((2, 8), 3.0))


def test_absurd_sizes_and_malformed_layer_lists_are_named() -> None:
    with pytest.raises(ValidationError, match=r"would have 2e\+12 weights; at most 2e\+08"):
        FeedbackNetwork(n_inputs=10**6, layer_sizes=[10**6], n_classes=10)
    net = FeedbackNetwork(n_inputs=4, layer_sizes=[3, 2], n_classes=2)
    with pytest.raises(ValidationError, match="biases must be a list of 2 vectors, got None"):
        net.biases = None  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="forward_weights must be a list of 1 matrices"):
        net.forward_weights = np.float64(3.0)  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="must be a real-valued array"):
        net.input_weights = np.ones((3, 4)) * 1j
