"""Ground truth of the simulated network: measured transfer, measured IDE, finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import reference
from fbsnn_brian.cli.main import main
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.alignment import (
    alignment_cosines,
    ground_truth,
    hidden_vector,
    input_fluctuations,
)
from fbsnn_brian.experiments.checks import vector_cosine
from fbsnn_brian.experiments.transfer import measure_transfer, with_input_noise
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import FreePhase, Protocol

GRID = np.round(np.linspace(-0.5, 3.0, 36), 6)


def _network(**options: object) -> FeedbackNetwork:
    return FeedbackNetwork(n_inputs=64, layer_sizes=[12], n_classes=10, seed=1, **options)


def test_ideal_table_gives_the_clamp_models_ide_gradient() -> None:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[16, 8], n_classes=10, seed=0)
    model = network.rate_model()
    digits = load_digits()
    z = np.linspace(-3.0, 6.0, 901)
    table = reference.TransferFunction(z, np.clip(z / model.theta, 0.0, 1.0), slope_window=0.005)
    for k in range(3):
        expected = reference.ide_gradients(model, digits.inputs[k], int(digits.labels[k]))
        got = reference.measured_ide_gradients(
            model, digits.inputs[k], int(digits.labels[k]), table
        )
        assert np.allclose(got.parameter_vector(), expected.parameter_vector(), atol=1e-8)


def test_transfer_of_if_neurons_is_the_clamp_at_the_refractory_ceiling() -> None:
    for refractory, ceiling in ((1 * ms, 1.0), (2 * ms, 0.5)):
        network = _network(refractory=refractory)
        table = measure_transfer(
            network, currents=GRID, duration_tau=200, device="numpy", cache=False
        )
        expected = np.clip(GRID / network.theta, 0.0, ceiling)
        assert np.max(np.abs(table.rates - expected)) <= 1.0 / 200 + 1e-12


def test_transfer_of_a_leaky_neuron_starts_at_its_threshold_current() -> None:
    # v settles at z tau_m / tau: no spike below z = v_threshold tau / tau_m = 0.5
    table = measure_transfer(
        _network(neuron="lif", tau_m=2 * ms),
        currents=GRID,
        duration_tau=200,
        device="numpy",
        cache=False,
    )
    assert np.all(table.rates[GRID < 0.45] == 0)
    assert np.all(table.rates[GRID > 0.6] > 0)
    # and input fluctuations let it fire below that current
    noisy = measure_transfer(
        _network(neuron="lif", tau_m=2 * ms),
        currents=GRID,
        duration_tau=200,
        device="numpy",
        input_sigma=0.3,
        cache=False,
    )
    assert noisy.rates[np.searchsorted(GRID, 0.4)] > 0


def test_input_noise_joins_the_configurations_noise() -> None:
    white = with_input_noise(_network(), 0.3)
    assert white.biophysics.noise_sigma == pytest.approx(0.3)
    assert white.biophysics.noise_tau is None
    from fbsnn_brian.model.biophysics import Biophysics

    filtered = with_input_noise(
        _network(biophysics=Biophysics(synapse="exponential", tau_syn=2 * ms)), 0.3
    )
    # same diffusion: sigma_OU^2 = sigma^2 tau / (2 tau_syn)
    assert filtered.biophysics.noise_sigma == pytest.approx(0.3 * np.sqrt(1 / 4))
    assert float(filtered.biophysics.noise_tau / ms) == pytest.approx(2.0)
    with pytest.raises(ValidationError, match="input_sigma"):
        with_input_noise(_network(), -1.0)


def test_input_fluctuations_sum_squared_weights_times_rates() -> None:
    network = FeedbackNetwork(n_inputs=3, layer_sizes=[2, 2], n_classes=2, seed=0)
    rates = [np.array([[0.5, 0.0]]), np.array([[0.25, 1.0]])]
    sigma = input_fluctuations(network, rates, np.zeros((1, 3)))
    fb, fw = network.feedback_weights, network.forward_weights[0]
    first = (fb[0, 0] ** 2 * 0.25 + fb[0, 1] ** 2) + (fb[1, 0] ** 2 * 0.25 + fb[1, 1] ** 2)
    second = fw[0, 0] ** 2 * 0.5 + fw[1, 0] ** 2 * 0.5
    assert sigma == pytest.approx((np.sqrt(first / 2), np.sqrt(second / 2)))


def test_the_two_ground_truths_agree_on_the_ideal_network() -> None:
    """Finite differences of the spiking network and the measured model's exact gradient."""
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[24], n_classes=10, seed=0)
    digits = load_digits()
    protocol = Protocol([FreePhase(duration=30 * ms)])
    truth = ground_truth(
        network,
        protocol,
        digits.inputs[:6],
        digits.labels[:6],
        n_directions=12,
        duration_tau=400.0,
        device="cpp_standalone",
        transfer_duration_tau=400.0,
    )
    projected = truth.directions @ truth.measured_ide
    assert vector_cosine(projected, truth.finite_differences) >= 0.9
    # a random update does not align: the measure can fail
    noise = np.random.default_rng(0).standard_normal(truth.measured_ide.size)
    cosines = alignment_cosines(noise, truth)
    assert abs(cosines["cosine_vs_measured_ide"]) < 0.2
    assert cosines["n_directions"] == 12
    assert hidden_vector(network.rate_model(), 1).size == truth.measured_ide.size


def test_check_alignment_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alignment", "--samples", "0"]) == 2
    assert "--samples must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["check", "alignment", "--directions", "1"]) == 2
    assert "--directions must be an integer >= 2, got 1" in capsys.readouterr().err
    assert main(["check", "alignment", "--run", "nowhere"]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["check", "alignment", "--run", "nowhere", "--neuron", "lif"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_check_alignment_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "check",
            "alignment",
            "--layers",
            "12",
            "--samples",
            "3",
            "--directions",
            "4",
            "--duration",
            "100",
            "--transfer-duration",
            "100",
            "--device",
            "runtime",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "cosine_vs_ideal_ide",
        "cosine_vs_measured_ide",
        "cosine_vs_finite_difference",
        "measured_ide_vs_finite_difference",
        "n_directions",
        "state",
    ):
        assert key in result
    assert result["state"] == "initial" and result["n_directions"] == 4


def test_a_run_measures_its_trained_state_against_the_ground_truth(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    out = f"{tmp_path}/run"
    flags = ["--layers", "12", "--epochs", "1", "--train-size", "60", "--test-size", "20"]
    run = ["--device", "numpy", "--alignment-directions", "2", "--no-progress", "--json"]
    code = main(["train", *flags, *run, "--out", out])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in (
        "gradient_cosine_vs_measured_ide",
        "gradient_cosine_vs_finite_difference",
        "gradient_measured_ide_vs_finite_difference",
    ):
        assert -1.0 <= metrics[key] <= 1.0, key


def test_the_step_is_halved_until_the_perturbed_loops_contract() -> None:
    """A loop at its gain cap: a full step along W_fb would break the contraction."""
    from fbsnn_brian.experiments.alignment import admissible_step, random_directions

    network = FeedbackNetwork(n_inputs=8, layer_sizes=[6], n_classes=3, feedback_gain=0.95, seed=0)
    base = hidden_vector(network.rate_model(), 1)
    directions = random_directions(network, base, 4, np.random.default_rng(0))
    large = 0.5 * float(np.linalg.norm(base))
    with pytest.raises(ValidationError, match="loop gain"):
        network.set_weight_arrays(
            {
                **{name: np.array(value) for name, value in network.weight_arrays().items()},
                "feedback_weights": network.feedback_weights * 1.2,
            }
        )
    step = admissible_step(network, base, directions, large)
    assert 0 < step < large
    assert network.loop_gain() == pytest.approx(0.95)  # the network is left as it was
