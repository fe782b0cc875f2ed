"""SPIDE learning inside one Brian2 run: the update follows the exact IDE gradient."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian import reference as ref
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def cosine(first: np.ndarray, second: np.ndarray) -> float:
    return float(first.ravel() @ second.ravel() / np.linalg.norm(first) / np.linalg.norm(second))


def spide_update_of_one_sample(
    layer_sizes: list[int],
    backward_tau: int,
    scale: float,
    seed: int,
    loss: str = "cross_entropy",
    feedback: str = "transpose",
) -> tuple[ref.RateModel, ref.RateModel, np.ndarray, int]:
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=layer_sizes, n_classes=10, seed=seed)
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=backward_tau * ms)],
        plasticity=SPIDEPlasticity(
            learning_rate=1.0, scale=scale, max_feedback_gain=0.99, loss=loss, feedback=feedback
        ),
    )
    before = net.rate_model()
    TrainingSimulation(net, protocol, device="numpy").train_chunk(
        digits.inputs[seed : seed + 1], digits.labels[seed : seed + 1], 1.0
    )
    return before, net.rate_model(), digits.inputs[seed], int(digits.labels[seed])


def free_rates(layer_sizes: list[int], x: np.ndarray) -> tuple[np.ndarray, ...]:
    recording = simulate(
        FeedbackNetwork(n_inputs=64, layer_sizes=layer_sizes, n_classes=10, seed=0),
        Protocol([FreePhase(duration=30 * ms)]),
        inputs=x[None, :],
        device="numpy",
    )
    return tuple(layer[0] for layer in recording.layer_rates())


@pytest.mark.parametrize(
    ("layer_sizes", "loss"), [([40], "cross_entropy"), ([30, 20], "cross_entropy"), ([40], "mse")]
)
def test_spike_computed_update_matches_ide_at_the_same_rates(
    layer_sizes: list[int], loss: str
) -> None:
    # learning rate 1: the weight change is minus the spike-based gradient estimate
    before, after, x, label = spide_update_of_one_sample(layer_sizes, 300, 0.5, seed=0, loss=loss)
    simulated = free_rates(layer_sizes, x)
    exact = ref.ide_gradients_at_rates(before, x, simulated, label, kind=loss)  # type: ignore[arg-type]
    estimate_input = before.input_weights - after.input_weights
    estimate_feedback = before.feedback_weights - after.feedback_weights
    # beta is quantised to delta / T_b = 1/300 per unit; 0.99 leaves room for that alone
    assert cosine(estimate_input, exact.input_weights) > 0.99
    assert cosine(estimate_feedback, exact.feedback_weights) > 0.99
    # and its size: the cosine cannot see a wrong factor such as 1 / (s theta); the same
    # quantisation of beta bounds the relative error of the norm (measured below 2 %)
    pairs = [(estimate_input, exact.input_weights), (estimate_feedback, exact.feedback_weights)]
    for estimate, gradient in pairs:
        assert np.linalg.norm(estimate) == pytest.approx(np.linalg.norm(gradient), rel=0.05)
    for k, weights in enumerate(before.forward_weights):
        assert cosine(weights - after.forward_weights[k], exact.forward_weights[k]) > 0.99
    # the readout rule is exact given the rates: (p - y) a
    np.testing.assert_allclose(
        before.readout_bias - after.readout_bias, exact.readout_bias, atol=1e-12
    )
    np.testing.assert_allclose(
        before.readout_weights - after.readout_weights, exact.readout_weights, atol=1e-12
    )


def test_random_feedback_uses_no_weight_transport() -> None:
    # With fixed random backward weights the update is no longer the gradient: it must differ
    # clearly from the exact IDE direction, while the readout update (p - y) a stays exact.
    before, after, x, label = spide_update_of_one_sample([40], 300, 0.5, seed=0, feedback="random")
    exact = ref.ide_gradients_at_rates(before, x, free_rates([40], x), label)
    change = before.input_weights - after.input_weights
    assert abs(cosine(change, exact.input_weights)) < 0.9
    np.testing.assert_allclose(
        before.readout_bias - after.readout_bias, exact.readout_bias, atol=1e-12
    )
    with pytest.raises(ValidationError, match="feedback must be one of 'transpose', 'random'"):
        SPIDEPlasticity(feedback="transposed")


def test_training_needs_a_perturbed_phase_and_a_rule() -> None:
    net = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
    with pytest.raises(
        ValidationError, match="protocol must have a PerturbedPhase and a SPIDEPlasticity"
    ):
        TrainingSimulation(net, Protocol([FreePhase(duration=10 * ms)]))
    with pytest.raises(ValidationError, match="plasticity needs a PerturbedPhase"):
        Protocol([FreePhase(duration=10 * ms)], plasticity=SPIDEPlasticity())
    with pytest.raises(
        ValidationError, match=r"phases must be \[FreePhase\] or \[FreePhase, PerturbedPhase\]"
    ):
        Protocol([PerturbedPhase(duration=10 * ms), FreePhase(duration=10 * ms)])
    with pytest.raises(ValidationError, match="max_feedback_gain must be in"):
        SPIDEPlasticity(max_feedback_gain=1.5)
    with pytest.raises(
        ValidationError, match="loss must be one of 'cross_entropy', 'mse', got 'ce'"
    ):
        SPIDEPlasticity(loss="ce")


def test_momentum_state_is_carried_from_chunk_to_chunk() -> None:
    # two samples in one run and the same two samples in two runs must end with the same
    # weights: the velocities leave the first run and enter the second
    digits = load_digits()
    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0, momentum=0.8),
    )
    whole = FeedbackNetwork(n_inputs=64, layer_sizes=[20], n_classes=10, seed=1)
    split = FeedbackNetwork(n_inputs=64, layer_sizes=[20], n_classes=10, seed=1)
    inputs, labels = digits.inputs[:2], digits.labels[:2]
    TrainingSimulation(whole, protocol, device="numpy").train_chunk(inputs, labels, 0.05)
    simulation = TrainingSimulation(split, protocol, device="numpy")
    simulation.train_chunk(inputs[:1], labels[:1], 0.05)
    simulation.train_chunk(inputs[1:], labels[1:], 0.05)
    np.testing.assert_allclose(split.input_weights, whole.input_weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(split.readout_weights, whole.readout_weights, rtol=0, atol=1e-12)
    # and momentum changed something compared with plain SGD
    plain = FeedbackNetwork(n_inputs=64, layer_sizes=[20], n_classes=10, seed=1)
    sgd = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0),
    )
    TrainingSimulation(plain, sgd, device="numpy").train_chunk(inputs, labels, 0.05)
    assert np.abs(plain.readout_weights - whole.readout_weights).max() > 1e-6
    with pytest.raises(ValidationError, match=r"momentum must be in \[0, 1\), got 1.0"):
        SPIDEPlasticity(momentum=1.0)


def test_a_mini_batch_applies_the_mean_of_its_samples_gradients() -> None:
    # Batch of 2 with plain SGD: the change equals the mean of the two single-sample updates
    # computed from the same starting weights (both samples see the initial weights).
    digits = load_digits()
    inputs, labels = digits.inputs[:2], digits.labels[:2]

    def protocol(batch_size: int) -> Protocol:
        return Protocol(
            [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
            plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0, batch_size=batch_size),
        )

    def fresh() -> FeedbackNetwork:
        return FeedbackNetwork(n_inputs=64, layer_sizes=[20], n_classes=10, seed=1)

    batched = fresh()
    simulation = TrainingSimulation(batched, protocol(2), device="numpy")
    simulation.train_chunk(inputs[:1], labels[:1], 0.05, np.array([False]))  # carried over
    simulation.train_chunk(inputs[1:], labels[1:], 0.05, np.array([True]))
    changes = []
    for k in range(2):
        single = fresh()
        TrainingSimulation(single, protocol(1), device="numpy").train_chunk(
            inputs[k : k + 1], labels[k : k + 1], 0.05
        )
        changes.append(single.input_weights - fresh().input_weights)
    expected = fresh().input_weights + 0.5 * (changes[0] + changes[1])
    np.testing.assert_allclose(batched.input_weights, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValidationError, match="batch_size must be a positive integer, got 0"):
        SPIDEPlasticity(batch_size=0)


@pytest.mark.standalone
def test_cpp_standalone_training_matches_runtime_with_optimizer_state(tmp_path: object) -> None:
    # Padding of the last chunk, mini-batch sums and momentum carried between chunks through
    # run_args: the compiled binary must end where the runtime simulation ends.
    digits = load_digits()
    inputs, labels = digits.inputs[:5], digits.labels[:5]
    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0, batch_size=2, momentum=0.5),
    )
    runtime = FeedbackNetwork(n_inputs=64, layer_sizes=[12, 8], n_classes=10, seed=2)
    compiled = FeedbackNetwork(n_inputs=64, layer_sizes=[12, 8], n_classes=10, seed=2)
    apply_after = np.array([False, True, False, True, True])
    TrainingSimulation(runtime, protocol, device="numpy").train_chunk(
        inputs, labels, 0.05, apply_after
    )
    simulation = TrainingSimulation(
        compiled, protocol, device="cpp_standalone", chunk_size=2, directory=str(tmp_path)
    )
    for first in range(0, 5, 2):
        chosen = slice(first, first + 2)
        simulation.train_chunk(inputs[chosen], labels[chosen], 0.05, apply_after[chosen])
    for name in ("input_weights", "feedback_weights", "readout_weights", "readout_bias"):
        np.testing.assert_allclose(getattr(compiled, name), getattr(runtime, name), atol=1e-9)
    np.testing.assert_allclose(compiled.forward_weights[0], runtime.forward_weights[0], atol=1e-9)
    assert (
        np.abs(
            compiled.input_weights
            - FeedbackNetwork(n_inputs=64, layer_sizes=[12, 8], n_classes=10, seed=2).input_weights
        ).max()
        > 1e-4
    )  # it did learn


def test_input_dropout_silences_a_fraction_and_keeps_the_mean_input() -> None:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    protocol = Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=10 * ms)],
        plasticity=SPIDEPlasticity(input_dropout=0.25),
    )
    dropped = TrainingSimulation(net, protocol, device="numpy")._drop_inputs(
        np.full((500, 64), 0.6)
    )
    silenced = float(np.mean(dropped == 0))
    assert abs(silenced - 0.25) < 0.01  # 32000 draws: the standard error is 0.0024
    np.testing.assert_allclose(dropped[dropped > 0], 0.6 / 0.75)
    assert abs(float(dropped.mean()) - 0.6) < 0.01
    with pytest.raises(ValidationError, match=r"input_dropout must be in \[0, 1\), got 1.0"):
        SPIDEPlasticity(input_dropout=1.0)


def test_lif_layers_train_inside_the_simulation() -> None:
    # LIF integrates exactly (method 'exact'); the phase flag is a stored variable, so the
    # error units' equation is constant over a step and training runs and learns.
    from fbsnn_brian import Trainer

    digits = load_digits()
    net = FeedbackNetwork(
        n_inputs=64, layer_sizes=[24], n_classes=10, seed=0, neuron="lif", tau_m=20 * ms
    )
    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0),
    )
    trainer = Trainer(net, protocol, device="numpy", chunk_size=100, progress=False)
    inputs, labels = digits.inputs[:100], digits.labels[:100]
    before = trainer.evaluate(inputs, labels)["accuracy"]
    history = trainer.fit(inputs, labels, epochs=3)
    assert before < 0.3  # chance is 0.1
    assert float(history["train_accuracy"].values[-1]) > 0.6


def test_recording_both_phases_shows_error_events_that_carry_the_adjoint() -> None:
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[30, 20], n_classes=10, seed=0)
    scale = 4.0
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(scale=scale),
    )
    before = net.rate_model()
    inputs, labels = digits.inputs[:2], digits.labels[:2]
    recording = TrainingSimulation(net, protocol, device="numpy").record(inputs, labels)
    # recording does not learn
    np.testing.assert_array_equal(net.input_weights, before.input_weights)
    assert recording.phase_names == ("free", "perturbed")
    # forward spikes only in the free phase, error events only in the perturbed phase
    assert recording.rates_of("layer_1", "perturbed").max() == 0
    assert recording.rates_of("layer_1", "free").mean() > 0
    for event in ("error_up", "error_down"):
        assert recording.rates_of(f"layer_1_{event}", "free").max() == 0
    # The signed event rate of each error unit estimates s times the IDE adjoint at the
    # simulated rates (docs/algorithm.rst, section "Error units"), for neurons whose gate is
    # open. Over T_b = 100 tau a unit's rate is quantised to 0.01 per tau against adjoints of order
    # 0.1, so the direction must agree closely.
    for k in range(2):
        rates = tuple(layer[k] for layer in recording.layer_rates())
        exact = ref.ide_gradients_at_rates(before, inputs[k], rates, int(labels[k]))
        for layer in range(2):
            name = f"layer_{layer + 1}"
            signed = (
                recording.rates_of(f"{name}_error_up", "perturbed")[k]
                - recording.rates_of(f"{name}_error_down", "perturbed")[k]
            )
            gated = exact.gates[layer] > 0
            expected = np.clip(scale * exact.adjoint[layer][gated], -1, 1)
            assert cosine(signed[gated], expected) > 0.95
            assert np.all(signed[~gated] == 0)  # a closed gate silences the error unit
