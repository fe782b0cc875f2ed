"""GeNN (brian2genn) build of the free phase: generation, equivalence with runtime, errors.

Every test needs brian2genn (its own environment: Brian2 < 2.6, numpy < 2) and is skipped
without it; the tests that build and run also need GeNN 4.x (``GENN_PATH``), CPU-only is
enough. Run them with ``pytest tests/test_genn.py -m genn`` in that environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms, prefs, second
from brian2.devices.device import get_device

from fbsnn_brian import (
    DeviceError,
    FeedbackNetwork,
    FreePhase,
    Protocol,
    SpikeRecording,
    ValidationError,
)
from fbsnn_brian.build.devices.genn_device import GENN_SCHEDULE
from fbsnn_brian.build.devices.genn_free_run import GeNNFreeRun
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.model.biophysics import Biophysics

pytest.importorskip("brian2genn")

pytestmark = pytest.mark.genn

needs_genn = pytest.mark.skipif(
    not os.environ.get("GENN_PATH"), reason="GeNN is not installed (GENN_PATH is unset)"
)

FREE_PHASE = Protocol([FreePhase(duration=30 * ms)])  # T_f = 30 tau (tau = 1 ms)


def small_network(*, input_coding: str = "current", neuron: str = "if") -> FeedbackNetwork:
    """64-[30,20]-10: two layers, so forward and feedback Synapses are both exercised."""
    return FeedbackNetwork(
        n_inputs=64,
        layer_sizes=[30, 20],
        n_classes=10,
        seed=1,
        input_coding=input_coding,
        neuron=neuron,
    )


def spike_events(recording: SpikeRecording, population: str, dt_s: float) -> set[tuple[int, int]]:
    """(step, neuron) of every spike of a population."""
    times = recording.spike_times[population]
    neurons = recording.spike_neurons[population]
    return set(zip(np.rint(times / dt_s).astype(int).tolist(), neurons.tolist(), strict=True))


def assert_brian2_is_back_to_runtime(schedule_before: object) -> None:
    assert type(get_device()).__name__ == "RuntimeDevice"
    assert prefs["core.network.default_schedule"] == schedule_before


def test_generate_writes_the_genn_project_without_genn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_inputs: np.ndarray
) -> None:
    monkeypatch.delenv("GENN_PATH", raising=False)  # generation must not need GeNN
    schedule_before = prefs["core.network.default_schedule"]
    free_run = GeNNFreeRun(small_network(), FREE_PHASE)

    project = free_run.generate(digits_inputs[:3], tmp_path / "project")

    for name in ("magicnetwork_model.cpp", "main.cpp", "engine.cpp", "Makefile"):
        assert (project / name).is_file(), name
    model = (project / "magicnetwork_model.cpp").read_text()
    for population in ("stimulus", "layer_1", "layer_2"):
        assert f'addNeuronPopulation<{population}NEURON>("{population}"' in model
    for synapses in ("input_synapses", "forward_1", "feedback"):
        assert f'"{synapses}", SynapseMatrixType::' in model
    # F x reaches layer 1 through the summed variable, not through GeNN's Isyn
    assert "$(I_drive) = $(inSyn)" in model
    # the sample-start resets are host operations of the engine (a dropped one is silent)
    engine = (project / "engine.cpp").read_text()
    for group in ("stimulus", "layer_1", "layer_2"):
        assert f"run_regularly operation: {group}_run_regularly_sample_start" in engine
    assert not (project / "main").exists()  # nothing was compiled
    assert free_run.generate_time_s > 0
    assert_brian2_is_back_to_runtime(schedule_before)


@needs_genn
@pytest.mark.parametrize(("input_coding", "neuron"), [("current", "if"), ("spikes", "lif")])
def test_genn_reproduces_the_runtime_free_phase_spike_for_spike(
    tmp_path: Path, digits_inputs: np.ndarray, input_coding: str, neuron: str
) -> None:
    network = small_network(input_coding=input_coding, neuron=neuron)
    inputs = digits_inputs[:3]
    schedule_before = prefs["core.network.default_schedule"]
    free_run = GeNNFreeRun(network, FREE_PHASE)

    on_genn = free_run.run(inputs, directory=tmp_path / "project")
    assert_brian2_is_back_to_runtime(schedule_before)
    mirror = free_run.run_on_runtime(inputs)  # same definition, brian2genn's schedule
    runtime = FreeRunSimulation(network, FREE_PHASE, device="numpy").run(inputs)

    # Tolerance: none. All three run in float64 and integrate the same values at every step
    # (module docstring of fbsnn_brian.build.devices.genn_free_run: the drive F x arrives in the
    # same step, and
    # the gated on_pre makes brian2genn's schedule deliver exactly the spikes that Brian2's
    # default schedule delivers). What may differ is only the association of the additions
    # into v (GeNN sums a step's synaptic input in a buffer before adding it, Brian2 adds
    # each weight): rounding of order 1e-16, which changes a spike only if a membrane lands
    # within that distance of the threshold. With these fixed weights and inputs none does,
    # so any difference is a change of the simulated model, not noise.
    dt_s = float(network.dt / second)
    assert [p.name for p in on_genn.populations] == [p.name for p in runtime.populations]
    for population in runtime.rates:
        genn_spikes = spike_events(on_genn, population, dt_s)
        assert genn_spikes == spike_events(mirror, population, dt_s), population
        assert genn_spikes == spike_events(runtime, population, dt_s), population
        np.testing.assert_array_equal(on_genn.rates[population], runtime.rates[population])
    assert sum(len(times) for times in runtime.spike_times.values()) > 500  # not silent
    np.testing.assert_array_equal(on_genn.readout, runtime.readout)
    dataset = on_genn.to_xarray()
    assert dataset.attrs["device"] == "genn"
    np.testing.assert_array_equal(dataset["rate"].values, runtime.to_xarray()["rate"].values)
    assert free_run.build_time_s > free_run.simulation_time_s > 0


@needs_genn
def test_a_compiled_free_phase_reruns_with_new_inputs_and_weights(
    tmp_path: Path, digits_inputs: np.ndarray
) -> None:
    network = small_network()
    free_run = GeNNFreeRun(network, FREE_PHASE)
    _, binary = free_run.build(digits_inputs[:5], directory=tmp_path / "project")
    network.input_weights = network.input_weights * 1.3  # new weights, same build
    network.biases = [b + 0.05 for b in network.biases]

    rerun = free_run.rerun(binary, digits_inputs[10:13])  # fewer samples: padded
    expected = FreeRunSimulation(network, FREE_PHASE, device="numpy").run(digits_inputs[10:13])

    dt_s = float(network.dt / second)
    for population in expected.rates:
        assert spike_events(rerun, population, dt_s) == spike_events(expected, population, dt_s), (
            population
        )
    np.testing.assert_array_equal(rerun.readout, expected.readout)
    with pytest.raises(ValidationError, match="at most 5 samples per run of this build"):
        free_run.rerun(binary, digits_inputs[:6])


@needs_genn
def test_two_genn_builds_in_one_process(tmp_path: Path, digits_inputs: np.ndarray) -> None:
    """brian2genn allows one run per build: each call resets the device for the next."""
    free_run = GeNNFreeRun(small_network(), FREE_PHASE, record_spikes=False)
    first = free_run.run(digits_inputs[:2], directory=tmp_path / "first")
    second = free_run.run(digits_inputs[1:3])  # a temporary directory, removed afterwards
    np.testing.assert_array_equal(first.rates["layer_2"][1], second.rates["layer_2"][0])
    assert len(first.spike_times["layer_1"]) == 0  # record_spikes=False keeps rates only
    assert first.rates["layer_1"].sum() > 0


def test_missing_genn_path_gives_one_clear_device_error(
    monkeypatch: pytest.MonkeyPatch, digits_inputs: np.ndarray
) -> None:
    monkeypatch.delenv("GENN_PATH", raising=False)
    monkeypatch.setitem(prefs, "devices.genn.path", None)
    free_run = GeNNFreeRun(small_network(), FREE_PHASE)
    with pytest.raises(DeviceError) as error:
        free_run.run(digits_inputs[:1])
    message = str(error.value)
    assert message.startswith("GeNNFreeRun.run: cannot build with GeNN: GENN_PATH is not set.")
    for hint in ("brian2genn 1.7", "brian2<2.6", "numpy<2", "GeNN 4.x", "GENN_PATH"):
        assert hint in message
    assert type(get_device()).__name__ == "RuntimeDevice"  # nothing was started


def test_genn_path_without_genn_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_inputs: np.ndarray
) -> None:
    monkeypatch.setenv("GENN_PATH", str(tmp_path))
    monkeypatch.setitem(prefs, "devices.genn.path", None)
    with pytest.raises(DeviceError, match=r"holds no bin/genn-buildmodel\.sh.*GeNN 4\.x"):
        GeNNFreeRun(small_network(), FREE_PHASE).run(digits_inputs[:1])


@pytest.mark.parametrize(
    ("biophysics", "setting"),
    [
        (Biophysics(synapse="exponential"), "biophysics.synapse = 'exponential'"),
        (Biophysics(reset="rest"), "biophysics.reset = 'rest'"),
        (Biophysics(delay=1 * ms), "biophysics.delay = 1. * msecond"),
        (Biophysics(noise_sigma=0.1), "biophysics.noise_sigma = 0.1"),
    ],
)
def test_non_ideal_biophysics_is_refused_by_name(biophysics: Biophysics, setting: str) -> None:
    network = FeedbackNetwork(
        n_inputs=4, layer_sizes=[3], n_classes=2, biophysics=biophysics, seed=0
    )
    with pytest.raises(ValidationError, match="not supported on GeNN") as error:
        GeNNFreeRun(network, FREE_PHASE)
    assert setting in str(error.value)


def test_dales_law_is_accepted() -> None:
    """Dale's law only constrains the weights' signs, which the network enforces."""
    network = FeedbackNetwork(
        n_inputs=4,
        layer_sizes=[3],
        n_classes=2,
        biophysics=Biophysics(excitatory_fraction=0.8),
        seed=0,
    )
    assert GeNNFreeRun(network, FREE_PHASE).sample_steps == 120


def test_genn_schedule_is_the_one_brian2genn_forces() -> None:
    from brian2genn.device import GeNNDevice

    assert tuple(GeNNDevice().network_schedule) == GENN_SCHEDULE
