"""Adaptive LIF (``neuron="alif"``): spike-frequency adaptation on every build.

The ground truth is an independent numpy integration of the model's equations, written here
from its definition (not from the build layer's strings):

    dv/dt   = -v / tau_m - w_a / tau + (F x + b) / tau
    dw_a/dt = -w_a / tau_a;   at a spike: v -= theta, w_a += b_a

with the toolkit's spike rule (``v >= v_threshold`` outside the refractory period, integration
continuing during it).
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, second

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, simulate
from fbsnn_brian.build.devices.genn_free_run import GeNNFreeRun
from fbsnn_brian.build.devices.genn_training import GeNNTraining
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def isolated(neuron: str = "alif", **options: object) -> FeedbackNetwork:
    """One neuron driven by a constant current (input weight 1, no feedback, no bias)."""
    network = FeedbackNetwork(
        n_inputs=1,
        layer_sizes=[1],
        n_classes=2,
        neuron=neuron,
        seed=0,
        **options,  # type: ignore[arg-type]
    )
    network.set_weight_arrays(
        {
            **network.weight_arrays(),
            "input_weights": np.ones((1, 1)),
            "feedback_weights": np.zeros((1, 1)),
            "biases_0": np.zeros(1),
        }
    )
    return network


def numpy_spike_steps(network: FeedbackNetwork, drive: float, steps: int) -> list[int]:
    """Spike steps of one ALIF neuron under a constant drive, integrated exactly per step."""
    dt = float(network.dt / second)
    tau, tau_m, tau_a = (float(q / second) for q in (network.tau, network.tau_m, network.tau_a))
    refractory = float(network.refractory / second)
    v, w_a, last, spikes = 0.0, 0.0, -np.inf, []
    for step in range(steps):
        t = step * dt
        # threshold and reset at the start of the step, as Brian2's default schedule orders it
        # after the state update of the previous step
        if v >= network.v_threshold and t - last >= refractory - 0.5 * dt:
            v -= network.theta
            w_a += network.b_a
            last = t
            spikes.append(step)
        # exact update over dt with w_a held at its start value (the coupled system is solved
        # variable by variable, the way exponential Euler treats it)
        source = (drive - w_a) / tau
        decay = np.exp(-dt / tau_m)
        v = v * decay + source * tau_m * (1 - decay)
        w_a *= np.exp(-dt / tau_a)
    return spikes


def test_alif_with_no_increment_is_the_lif() -> None:
    inputs = np.array([[0.8], [0.3]])
    protocol = Protocol([FreePhase(duration=40 * ms)])
    alif = simulate(isolated("alif", b_a=0.0), protocol, inputs=inputs, device="numpy")
    lif = simulate(isolated("lif"), protocol, inputs=inputs, device="numpy")
    np.testing.assert_array_equal(alif.spike_times["layer_1"], lif.spike_times["layer_1"])
    assert len(lif.spike_times["layer_1"]) > 10


def test_adaptation_slows_a_constantly_driven_neuron_as_the_numpy_model_predicts() -> None:
    network = isolated("alif", b_a=0.2, tau_a=20 * ms)
    duration = 60  # tau
    recording = simulate(
        network, Protocol([FreePhase(duration=duration * ms)]), inputs=[[1.0]], device="numpy"
    )
    dt_s = float(network.dt / second)
    simulated = np.rint(recording.spike_times["layer_1"] / dt_s).astype(int)
    expected = numpy_spike_steps(network, drive=1.0, steps=round(duration * 1e-3 / dt_s))
    # spike-frequency adaptation: the intervals lengthen (the LIF's stay constant)
    intervals = np.diff(simulated)
    assert intervals[-1] > 2 * intervals[0]
    assert np.all(np.diff(intervals) >= 0)
    # same spikes as the independent integration (a spike may move by one step where Brian2's
    # and numpy's roundings put a membrane on different sides of the threshold)
    assert len(simulated) == len(expected)
    assert np.max(np.abs(simulated - np.asarray(expected))) <= 1


def test_alif_parameters_are_checked_and_saved(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="b_a must be a finite number >= 0"):
        FeedbackNetwork(n_inputs=2, layer_sizes=[3], n_classes=2, neuron="alif", b_a=-1.0)
    with pytest.raises(ValidationError, match="tau_a"):
        FeedbackNetwork(n_inputs=2, layer_sizes=[3], n_classes=2, neuron="alif", tau_a=-1 * ms)
    network = FeedbackNetwork(
        n_inputs=2, layer_sizes=[3], n_classes=2, neuron="alif", tau_a=7 * ms, b_a=0.3
    )
    network.save(tmp_path / "alif.npz")
    loaded = FeedbackNetwork.load(tmp_path / "alif.npz")
    assert loaded.neuron == "alif" and loaded.b_a == 0.3
    assert float(loaded.tau_a / ms) == pytest.approx(7.0)
    # the other models' configurations do not carry the adaptation constants
    assert "b_a" not in FeedbackNetwork(n_inputs=2, layer_sizes=[3], n_classes=2).config()


def test_genn_free_phase_definition_runs_the_alif_as_the_runtime_build(
    digits_inputs: np.ndarray,
) -> None:
    network = FeedbackNetwork(
        n_inputs=64, layer_sizes=[12, 8], n_classes=10, neuron="alif", b_a=0.2, seed=1
    )
    protocol = Protocol([FreePhase(duration=20 * ms)])
    restated = GeNNFreeRun(network, protocol).run_on_runtime(digits_inputs[:3])
    runtime = simulate(network, protocol, inputs=digits_inputs[:3], device="numpy")
    for population in runtime.rates:
        np.testing.assert_array_equal(restated.rates[population], runtime.rates[population])
    assert sum(len(times) for times in runtime.spike_times.values()) > 50


def test_genn_training_definition_learns_what_training_simulation_learns_with_alif(
    digits_inputs: np.ndarray, digits_labels: np.ndarray
) -> None:
    def network() -> FeedbackNetwork:
        return FeedbackNetwork(
            n_inputs=64, layer_sizes=[12], n_classes=10, neuron="alif", b_a=0.1, seed=3
        )

    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.04),
    )
    inputs, labels, rates = digits_inputs[:6], digits_labels[:6], np.full(6, 0.04)
    reference, restated, start = network(), network(), network()
    TrainingSimulation(reference, protocol, device="numpy", chunk_size=6).train_chunk(
        inputs, labels, rates
    )
    GeNNTraining(restated, protocol).run_on_runtime(inputs, labels, rates)
    moved = 0.0
    for name, expected in reference.weight_arrays().items():
        np.testing.assert_allclose(
            restated.weight_arrays()[name], expected, rtol=0, atol=1e-12, err_msg=name
        )
        moved = max(moved, float(np.max(np.abs(expected - start.weight_arrays()[name]))))
    assert moved > 1e-3
