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
        (
            {"neuron": "lfi"},
            "neuron must be one of 'if', 'lif', 'alif', got 'lfi'. Did you mean 'lif'?",
        ),
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


# --- read-only weights ------------------------------------------------------------------------

WEIGHT_PROPERTIES = (
    "input_weights",
    "feedback_weights",
    "readout_weights",
    "readout_bias",
)


@pytest.mark.parametrize("name", WEIGHT_PROPERTIES)
def test_an_in_place_edit_of_a_weight_property_raises(name: str) -> None:
    net = make(layer_sizes=[6, 5])
    before = getattr(net, name).copy()
    with pytest.raises(ValueError, match="read-only"):
        getattr(net, name)[:] = 10
    with pytest.raises(ValueError, match="read-only"):
        getattr(net, name)[...] *= 3
    with pytest.raises(ValueError, match="WRITEABLE"):
        getattr(net, name).flags.writeable = True
    np.testing.assert_array_equal(getattr(net, name), before)


def test_the_feedback_edit_that_made_a_loop_gain_of_40_is_refused() -> None:
    net = make()
    with pytest.raises(ValueError, match="read-only"):
        net.feedback_weights[:] = 10
    assert net.loop_gain() == pytest.approx(0.5)
    net.check_invariants()


def test_per_layer_arrays_and_weight_arrays_are_read_only() -> None:
    net = make(layer_sizes=[6, 5, 4])
    with pytest.raises(ValueError, match="read-only"):
        net.forward_weights[1][0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        net.biases[2] += 1.0
    before = {name: array.copy() for name, array in net.weight_arrays().items()}
    for array in net.weight_arrays().values():
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0.5
    for name, array in net.weight_arrays().items():
        np.testing.assert_array_equal(array, before[name])
    # copies are ordinary arrays: edit one and set it back through the setter
    scaled = net.feedback_weights.copy()
    scaled *= 0.5
    net.feedback_weights = scaled
    assert net.loop_gain() == pytest.approx(0.25)
    assert not net.feedback_weights.flags.writeable


def test_setter_with_a_bad_loop_gain_names_the_parameter_and_the_value() -> None:
    net = make()
    before = net.feedback_weights.copy()
    with pytest.raises(ValidationError) as info:
        net.feedback_weights = np.full((6, 6), 10.0)
    message = str(info.value)
    assert message.startswith("FeedbackNetwork: feedback_weights")
    assert "= 30, which must be < 1" in message  # ||10 * ones(6, 6)||_2 / theta = 60 / 2
    np.testing.assert_array_equal(net.feedback_weights, before)


def test_setters_keep_dales_signs() -> None:
    from fbsnn_brian.model.biophysics import Biophysics

    net = make(layer_sizes=[6, 4], biophysics=Biophysics(excitatory_fraction=0.5))
    flipped = -np.asarray(net.forward_weights[0])
    with pytest.raises(ValidationError, match=r"forward_weights\[0\] breaks Dale's law"):
        net.forward_weights = [flipped]
    with pytest.raises(ValidationError, match="feedback_weights breaks Dale's law"):
        net.feedback_weights = -net.feedback_weights
    net.check_invariants()


def test_set_weight_arrays_is_all_or_nothing() -> None:
    net = make(layer_sizes=[6, 5])
    before = {name: array.copy() for name, array in net.weight_arrays().items()}
    arrays = {**before, "input_weights": np.zeros((6, 8))}
    arrays["feedback_weights"] = np.full((6, 5), 10.0)  # loop gain far above 1
    with pytest.raises(ValidationError, match="feedback_weights make the feedback loop gain"):
        net.set_weight_arrays(arrays)
    for name, array in net.weight_arrays().items():
        np.testing.assert_array_equal(array, before[name])
    with pytest.raises(ValidationError, match="set_weight_arrays: missing biases_1"):
        net.set_weight_arrays({k: v for k, v in before.items() if k != "biases_1"})


def test_set_learned_weights_caps_the_loop_gain() -> None:
    net = make(layer_sizes=[6, 5])
    arrays = {name: array.copy() for name, array in net.weight_arrays().items()}
    arrays["forward_weights_0"] = 20 * arrays["forward_weights_0"]
    with pytest.raises(ValidationError, match="loop gain"):
        net.set_weight_arrays(arrays)  # the old feedback with the grown forward matrix
    net.set_learned_weights(arrays, max_gain=0.9)
    assert net.loop_gain() == pytest.approx(0.9)
    np.testing.assert_array_equal(net.forward_weights[0], arrays["forward_weights_0"])
    with pytest.raises(ValidationError, match=r"max_gain must be a number in \(0, 1\), got 1.5"):
        net.set_learned_weights(arrays, max_gain=1.5)
    with pytest.raises(ValidationError, match=r"max_gain must be a number in \(0, 1\)"):
        net.set_learned_feedback(arrays["feedback_weights"], max_gain=0)


def test_check_invariants_finds_what_bypassed_the_setters() -> None:
    net = make(layer_sizes=[6, 5])
    net.check_invariants()
    # forward weights that raise the loop gain pass their setter but not the check
    net.forward_weights = [10 * np.asarray(net.forward_weights[0])]
    with pytest.raises(ValidationError, match=r"check_invariants: the feedback loop gain .* = 5"):
        net.check_invariants()
    net.restrict_feedback()
    net.check_invariants()
    net._readout_bias = np.zeros(4)  # only private code can do this
    with pytest.raises(ValidationError, match=r"readout_bias must have shape \(3,\), got \(4,\)"):
        net.check_invariants()


def test_the_package_trains_with_read_only_weights() -> None:
    from fbsnn_brian.io.datasets import load_digits
    from fbsnn_brian.learning.trainer import Trainer
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    before = {name: array.copy() for name, array in net.weight_arrays().items()}
    protocol = Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=20 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0, max_feedback_gain=0.9),
    )
    trainer = Trainer(net, protocol, device="numpy", chunk_size=4, progress=False)
    trainer.fit(digits.inputs[:4], digits.labels[:4], epochs=1)
    after = net.weight_arrays()
    assert any(not np.array_equal(after[name], before[name]) for name in before)
    assert not any(array.flags.writeable for array in after.values())
    net.check_invariants()
