"""SpikeRecording export: the data model, and lossless netCDF / zarr round trips."""

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
    describe_dataset,
    load_recording,
    read_dataset,
    write_dataset,
)
from fbsnn_brian.build.free_run import simulate


@pytest.fixture(scope="module")
def dataset() -> xr.Dataset:
    from brian2.devices.device import set_device

    set_device("runtime")
    net = FeedbackNetwork(
        n_inputs=64, layer_sizes=[12, 8], n_classes=10, seed=0, input_coding="spikes"
    )
    from fbsnn_brian.io.datasets import load_digits

    inputs = load_digits().inputs[:3]
    recording = simulate(
        net, Protocol([FreePhase(duration=20 * ms)]), inputs=inputs, device="numpy"
    )
    return recording.to_xarray()


def test_spikes_are_a_flat_event_list_with_time_in_seconds(dataset: xr.Dataset) -> None:
    assert dataset["time"].dims == ("spike",)
    assert dataset["time"].attrs["units"] == "s"
    assert dataset["time"].dtype == np.float64
    for name in ("neuron", "population", "sample", "phase"):
        assert dataset[name].dims == ("spike",)
    meanings = dataset["population"].attrs["flag_meanings"].split()
    assert meanings == ["input", "layer_1", "layer_2"]
    # each spike lies inside its sample's window of 20 ms
    offset = dataset["time"].values - dataset["sample"].values * 0.020
    assert offset.min() >= 0 and offset.max() < 0.020
    # events are sorted by time
    assert np.all(np.diff(dataset["time"].values) >= 0)


def test_rates_equal_spike_counts_per_sample_divided_by_the_phase_length(
    dataset: xr.Dataset,
) -> None:
    rate = dataset["rate"]
    assert rate.dims == ("sample_index", "phase_name", "unit")
    counts = np.zeros(rate.shape)
    codes = dataset["population"].values
    offsets = {"input": 0, "layer_1": 64, "layer_2": 76}
    names = dataset["population"].attrs["flag_meanings"].split()
    for code, neuron, sample in zip(
        codes, dataset["neuron"].values, dataset["sample"].values, strict=True
    ):
        counts[sample, 0, offsets[names[code]] + neuron] += 1
    np.testing.assert_allclose(rate.values, counts / 20.0)  # T = 20 tau
    assert list(np.unique(dataset["unit_population"].values)) == names


def test_provenance_attributes_are_plain(dataset: xr.Dataset) -> None:
    for key in (
        "toolkit_version",
        "brian2_version",
        "device",
        "dt_s",
        "tau_s",
        "seed",
        "protocol",
        "network",
    ):
        assert key in dataset.attrs
    for value in dataset.attrs.values():
        assert isinstance(value, (str, int, float, np.integer, np.floating))


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_is_lossless(dataset: xr.Dataset, tmp_path: Path, suffix: str) -> None:
    path = write_dataset(dataset, tmp_path / f"recording{suffix}")
    loaded = read_dataset(path)
    xr.testing.assert_identical(loaded, dataset)
    for name in dataset.variables:
        assert loaded[name].dtype.kind == dataset[name].dtype.kind
    assert [p.name for p in tmp_path.iterdir()] == [f"recording{suffix}"]  # no temporary left


def test_plain_to_netcdf_works_as_in_the_quickstart(dataset: xr.Dataset, tmp_path: Path) -> None:
    dataset.to_netcdf(tmp_path / "free.nc")
    with xr.open_dataset(tmp_path / "free.nc") as loaded:
        np.testing.assert_array_equal(loaded["time"].values, dataset["time"].values)


def test_write_refuses_unknown_formats(dataset: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"path must end in '.nc' \(netCDF\) or '.zarr'"):
        write_dataset(dataset, tmp_path / "out.csv")
    with pytest.raises(ValidationError, match="does not exist"):
        read_dataset(tmp_path / "missing.nc")


# UDUNITS strings the exports may use (seconds, per second, dimensionless)
UDUNITS = {"1", "s", "s-1"}


@pytest.fixture(scope="module")
def labelled() -> SpikeRecording:
    net = FeedbackNetwork(
        n_inputs=6, layer_sizes=[5, 3], n_classes=3, seed=2, input_coding="spikes"
    )
    inputs = np.linspace(0.2, 0.9, 18).reshape(3, 6)
    recording = simulate(net, Protocol([FreePhase(duration=8 * ms)]), inputs=inputs, device="numpy")
    return recording.with_samples(labels=[2, 0, 1], positions=[7, 3, 11])


def test_every_variable_is_described_by_the_cf_conventions(labelled: SpikeRecording) -> None:
    dataset = labelled.to_xarray()
    assert dataset.attrs["Conventions"] == "CF-1.10"
    assert {"time", "rate", "label", "sample_position", "unit_role"} <= set(dataset.variables)
    for name, variable in dataset.variables.items():
        assert str(variable.attrs.get("long_name", "")).strip(), name
        if "units" in variable.attrs:
            assert variable.attrs["units"] in UDUNITS, (name, variable.attrs["units"])
    # spikes per tau: dimensionless, with tau in seconds beside them
    assert dataset["rate"].attrs["units"] == "1"
    assert dataset["rate"].attrs["tau_s"] == dataset.attrs["tau_s"]
    assert dataset["phase_duration"].attrs["units"] == "s"
    assert "units" not in dataset["population"].attrs  # a flag variable has none


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_written_recording_loads_back_with_its_labels_and_positions(
    labelled: SpikeRecording, tmp_path: Path, suffix: str
) -> None:
    dataset = labelled.to_xarray()
    assert dataset.sizes["spike"] > 0
    loaded = load_recording(write_dataset(dataset, tmp_path / f"recording{suffix}"))
    np.testing.assert_array_equal(loaded.labels, [2, 0, 1])
    np.testing.assert_array_equal(loaded.sample_positions, [7, 3, 11])
    assert loaded.populations == labelled.populations
    assert loaded.phase_names == labelled.phase_names
    for population in labelled.spike_times:
        order = np.argsort(labelled.spike_times[population], kind="stable")
        np.testing.assert_array_equal(
            loaded.spike_times[population], labelled.spike_times[population][order]
        )
        np.testing.assert_array_equal(
            loaded.spike_neurons[population], labelled.spike_neurons[population][order]
        )
        np.testing.assert_array_equal(
            loaded.spike_samples[population], labelled.spike_samples[population][order]
        )
        np.testing.assert_array_equal(loaded.rates[population], labelled.rates[population])
    np.testing.assert_array_equal(loaded.readout, labelled.readout)
    assert loaded.attrs == labelled.attrs
    xr.testing.assert_identical(loaded.to_xarray(), dataset)


def test_a_recording_without_labels_has_no_label_variables(dataset: xr.Dataset) -> None:
    assert "label" not in dataset.variables and "sample_position" not in dataset.variables
    assert SpikeRecording.from_xarray(dataset).labels is None


def test_with_samples_checks_and_copies(labelled: SpikeRecording) -> None:
    relabelled = labelled.with_samples(labels=[1, 1, 1])
    np.testing.assert_array_equal(relabelled.labels, [1, 1, 1])
    np.testing.assert_array_equal(relabelled.sample_positions, [7, 3, 11])
    np.testing.assert_array_equal(labelled.labels, [2, 0, 1])  # the original is unchanged
    with pytest.raises(ValidationError, match=r"labels must hold one non-negative integer"):
        labelled.with_samples(labels=[0, 1])
    with pytest.raises(ValidationError, match=r"sample_positions must hold .* dtype float64"):
        labelled.with_samples(positions=[0.0, 1.0, 2.0])


def test_write_refuses_an_undescribed_variable_and_units_outside_udunits(tmp_path: Path) -> None:
    undescribed = xr.Dataset({"mystery": ("x", [1.0, 2.0])})
    with pytest.raises(
        ValidationError, match=r"write_dataset: variable 'mystery' has no long_name"
    ):
        write_dataset(undescribed, tmp_path / "mystery.nc")
    per_tau = xr.Dataset({"speed": ("x", [1.0], {"long_name": "speed", "units": "1/tau"})})
    with pytest.raises(ValidationError, match=r"variable 'speed' has units '1/tau'; allowed"):
        write_dataset(per_tau, tmp_path / "speed.nc")
    assert list(tmp_path.iterdir()) == []
    # described by hand, it is written, with Conventions added and the input left alone
    described = xr.Dataset({"mystery": ("x", [1.0, 2.0], {"long_name": "a described value"})})
    loaded = read_dataset(write_dataset(described, tmp_path / "described.nc"))
    assert loaded.attrs["Conventions"] == "CF-1.10"
    assert "Conventions" not in described.attrs


def test_the_vocabulary_replaces_old_units(tmp_path: Path) -> None:
    old = xr.Dataset(
        {"forward_rate": ("epoch", [0.1], {"units": "1/tau"})},
        coords={"epoch": [1]},
        attrs={"tau_s": 0.002},
    )
    described = describe_dataset(old)
    assert described["forward_rate"].attrs["units"] == "1"
    assert described["forward_rate"].attrs["tau_s"] == 0.002
    assert old["forward_rate"].attrs == {"units": "1/tau"}
    xr.testing.assert_identical(describe_dataset(described), described)


def test_load_recording_refuses_other_datasets(tmp_path: Path) -> None:
    path = write_dataset(
        xr.Dataset({"loop_gain": ("epoch", [0.5])}, coords={"epoch": [1]}), tmp_path / "h.nc"
    )
    with pytest.raises(ValidationError, match="is not a spike recording"):
        load_recording(path)
