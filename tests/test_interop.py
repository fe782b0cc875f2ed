"""Neo and NWB exports keep every spike time exactly; Elephant runs on the Neo output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from brian2 import ms

from fbsnn_brian import (
    FeedbackNetwork,
    FreePhase,
    Protocol,
    SpikeRecording,
    ValidationError,
    load_recording,
    write_dataset,
)
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.io.datasets import load_digits

neo = pytest.importorskip("neo")
pynwb = pytest.importorskip("pynwb")


@pytest.fixture(scope="module")
def recording() -> xr.Dataset:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[12, 6], n_classes=10, seed=3)
    protocol = Protocol([FreePhase(duration=15 * ms)])
    return simulate(network, protocol, inputs=load_digits().inputs[:3], device="numpy").to_xarray()


def test_the_recording_methods_delegate(tmp_path: Path) -> None:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[4], n_classes=10, seed=3)
    protocol = Protocol([FreePhase(duration=5 * ms)])
    spikes = simulate(network, protocol, inputs=load_digits().inputs[:1], device="numpy")
    assert len(spikes.to_neo().segments) == 1
    assert spikes.to_nwb(tmp_path / "one.nwb").is_file()


def spikes_of(recording: xr.Dataset, population: str, neuron: int) -> np.ndarray:
    names = recording["population"].attrs["flag_meanings"].split()
    chosen = (recording["population"].values == names.index(population)) & (
        recording["neuron"].values == neuron
    )
    return np.sort(recording["time"].values[chosen])


def test_neo_block_holds_every_spike(recording: xr.Dataset) -> None:
    import quantities as pq
    from elephant.statistics import mean_firing_rate

    from fbsnn_brian.io.interop import to_neo

    block = to_neo(recording)
    assert len(block.segments) == 3  # one per sample (one phase recorded)
    assert all(len(segment.spiketrains) == 18 for segment in block.segments)
    total = 0
    for population, size in (("layer_1", 12), ("layer_2", 6)):
        for neuron in range(size):
            times = np.concatenate(
                [
                    train.times.rescale(pq.s).magnitude
                    for segment in block.segments
                    for train in segment.spiketrains
                    if train.annotations["population"] == population
                    and train.annotations["neuron"] == neuron
                ]
            )
            np.testing.assert_array_equal(times, spikes_of(recording, population, neuron))
            total += len(times)
    assert total == recording.sizes["spike"]
    # Elephant's statistics run directly on the SpikeTrains
    train = block.segments[1].spiketrains[0]
    rate = mean_firing_rate(train).rescale(1 / pq.s).magnitude
    assert rate == pytest.approx(len(train) / 0.015)
    sample, neuron = 1, 0
    expected = recording["rate"].sel(phase_name="free").values[sample, neuron] / 1e-3  # per tau
    assert rate == pytest.approx(expected)


def test_nwb_units_table_round_trips(recording: xr.Dataset, tmp_path: Path) -> None:
    from fbsnn_brian.io.interop import to_nwb

    path = to_nwb(recording, tmp_path / "spikes.nwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        units = io.read().units.to_dataframe()
    assert len(units) == 18
    for _, row in units.iterrows():
        np.testing.assert_array_equal(
            np.asarray(row["spike_times"]), spikes_of(recording, row["population"], row["neuron"])
        )
    assert [p.name for p in tmp_path.iterdir()] == ["spikes.nwb"]
    with pytest.raises(ValidationError, match="path must end in '.nwb'"):
        to_nwb(recording, tmp_path / "spikes.h5")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> SpikeRecording:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[6, 4], n_classes=10, seed=3)
    digits = load_digits()
    spikes = simulate(
        network, Protocol([FreePhase(duration=10 * ms)]), inputs=digits.inputs[4:6], device="numpy"
    )
    labelled = spikes.with_samples(labels=digits.labels[4:6], positions=[4, 5])
    path = write_dataset(labelled.to_xarray(), tmp_path_factory.mktemp("rec") / "rec.nc")
    return load_recording(path)


def test_a_loaded_recording_exports_to_neo_with_labels(loaded: SpikeRecording) -> None:
    block = loaded.to_neo()
    assert [segment.annotations["sample_position"] for segment in block.segments] == [4, 5]
    expected = [int(v) for v in load_digits().labels[4:6]]
    assert [segment.annotations["label"] for segment in block.segments] == expected
    total = sum(len(train) for segment in block.segments for train in segment.spiketrains)
    assert total == sum(len(times) for times in loaded.spike_times.values()) > 0


def test_a_loaded_recording_writes_nwb_that_passes_nwbinspector(
    loaded: SpikeRecording, tmp_path: Path
) -> None:
    nwbinspector = pytest.importorskip("nwbinspector")
    path = loaded.to_nwb(tmp_path / "loaded.nwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        trials = nwbfile.trials.to_dataframe()
        assert nwbfile.units.resolution == pytest.approx(float(loaded.attrs["dt_s"]))
    assert list(trials["sample_position"]) == [4, 5]
    assert list(trials["label"]) == [int(v) for v in load_digits().labels[4:6]]
    np.testing.assert_allclose(trials["stop_time"] - trials["start_time"], 0.010)
    serious = {
        nwbinspector.Importance.CRITICAL,
        nwbinspector.Importance.BEST_PRACTICE_VIOLATION,
    }
    found = [
        (message.check_function_name, message.message)
        for message in nwbinspector.inspect_nwbfile(nwbfile_path=path)
        if message is not None and message.importance in serious
    ]
    # a simulated network has no subject (species, age, sex), so none is invented
    assert found == [("check_subject_exists", "Subject is missing.")]
