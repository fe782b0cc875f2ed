"""Measurements, figures and the run report, checked against independent computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.analysis import measures as analysis
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.cli.main import main
from fbsnn_brian.io.datasets import load_digits


def record(network: FeedbackNetwork, duration_tau: float, n: int = 3) -> xr.Dataset:
    inputs = load_digits().inputs[:n]
    protocol = Protocol([FreePhase(duration=duration_tau * ms)])
    return simulate(network, protocol, inputs=inputs, device="numpy").to_xarray()


@pytest.fixture(scope="module")
def network() -> FeedbackNetwork:
    return FeedbackNetwork(n_inputs=64, layer_sizes=[30, 20], n_classes=10, seed=1)


@pytest.fixture(scope="module")
def recording(network: FeedbackNetwork) -> xr.Dataset:
    return record(network, 40)


def test_running_rates_end_at_the_recorded_rates(
    recording: xr.Dataset, network: FeedbackNetwork
) -> None:
    for layer, offset in ((1, 0), (2, 30)):
        running = analysis.running_rates(recording, 1, layer=layer)
        size = network.layer_sizes[layer - 1]
        recorded = recording["rate"].sel(phase_name="free").values[1, offset : offset + size]
        np.testing.assert_allclose(running.values[-1], recorded)
        assert running["time_tau"].values[-1] == pytest.approx(40.0)


def test_equilibrium_error_shrinks_with_the_phase_length(network: FeedbackNetwork) -> None:
    short = analysis.equilibrium_error(record(network, 20), network).values
    long = analysis.equilibrium_error(record(network, 200), network).values
    assert np.all(long < short) and np.all(long < 0.005)


def test_time_to_equilibrium_follows_epsilon(
    recording: xr.Dataset, network: FeedbackNetwork
) -> None:
    loose = analysis.time_to_equilibrium(recording, network, 0, epsilon=0.1)
    tight = analysis.time_to_equilibrium(recording, network, 0, epsilon=0.02)
    assert 0 < loose <= tight <= 40
    assert math.isnan(analysis.time_to_equilibrium(recording, network, 0, epsilon=1e-9))


def test_firing_rates_and_synaptic_operations_agree_with_the_rates(
    recording: xr.Dataset, network: FeedbackNetwork
) -> None:
    rate = recording["rate"].sel(phase_name="free").values
    rates = analysis.firing_rates(recording)
    assert float(rates.sel(population="layer_1", phase_name="free")) == pytest.approx(
        rate[:, :30].mean()
    )
    # spikes = rate x 40 tau; layer 1 projects to 20 neurons, layer 2 back to 30
    spikes_1 = rate[:, :30].sum() * 40
    spikes_2 = rate[:, 30:].sum() * 40
    nonzero = np.count_nonzero(recording["inputs"].values)
    expected = (spikes_1 * 20 + spikes_2 * 30 + nonzero * 30) / 3
    result = analysis.synaptic_operations(recording, network)
    assert result["synaptic_operations_per_sample"] == pytest.approx(expected)
    assert result["energy_per_sample_nj"] == pytest.approx(expected * 0.9 / 1000)


def test_perturbed_phase_operations_count_error_events_through_the_transpose(
    network: FeedbackNetwork,
) -> None:
    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

    digits = load_digits()
    protocol = Protocol(
        [FreePhase(duration=40 * ms), PerturbedPhase(duration=60 * ms)],
        plasticity=SPIDEPlasticity(scale=4),
    )
    recording = (
        TrainingSimulation(network, protocol, device="numpy")
        .record(digits.inputs[:2], digits.labels[:2])
        .to_xarray()
    )
    by_phase = analysis.synaptic_operations(recording, network)["operations_per_sample_by_phase"]
    rate = recording["rate"].sel(phase_name="perturbed")
    roles = recording["unit_population"].values
    # an error event of layer 1 (30 units) reaches the 20 feedback synapses from layer 2; one
    # of layer 2 reaches the 30 synapses from layer 1 (events = rate x 60 tau)
    events_1 = sum(
        rate.values[:, roles == f"layer_1_{e}"].sum() for e in ("error_up", "error_down")
    )
    events_2 = sum(
        rate.values[:, roles == f"layer_2_{e}"].sum() for e in ("error_up", "error_down")
    )
    expected = (events_1 * 60 * 20 + events_2 * 60 * 30) / 2
    assert expected > 0
    assert by_phase["perturbed"] == pytest.approx(expected)


def test_rule_memory_does_not_depend_on_time(network: FeedbackNetwork) -> None:
    memory = analysis.rule_memory(network, momentum=True)
    assert memory["bytes_per_synapse"] == 16
    assert memory["total_bytes"] == 16 * network.n_weights + 48 * 50
    assert memory["grows_with_phase_length"] is False


def test_a_recording_of_another_network_is_refused(recording: xr.Dataset) -> None:
    other = FeedbackNetwork(n_inputs=64, layer_sizes=[30], n_classes=10)
    with pytest.raises(ValidationError, match="the recording is of a 64-"):
        analysis.equilibrium_error(recording, other)
    with pytest.raises(ValidationError, match="has no population 'layer_9'"):
        analysis.population_spikes(recording, 0, "layer_9")


def test_report_of_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", "--train-size", "60", "--test-size", "30", "--layers", "12", "--epochs", "2"]
    assert main([*argv, "--device", "numpy", "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(out), "--json"]) == 0
    capsys.readouterr()
    report = out / "report"
    for name in ("learning_curves.png", "raster.png", "convergence.png", "report.md"):
        assert (report / name).stat().st_size > 1000
    text = (report / "report.md").read_text()
    assert "test accuracy:" in text and "pJ per operation" in text
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a finished run directory" in capsys.readouterr().err
