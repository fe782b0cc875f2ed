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
    ValidationError,
    read_dataset,
    write_dataset,
)


@pytest.fixture(scope="module")
def dataset() -> xr.Dataset:
    from brian2.devices.device import set_device

    set_device("runtime")
    net = FeedbackNetwork(
        n_inputs=64, layer_sizes=[12, 8], n_classes=10, seed=0, input_coding="spikes"
    )
    from fbsnn_brian.datasets import load_digits

    inputs = load_digits().inputs[:3]
    recording = Protocol([FreePhase(duration=20 * ms)]).run(net, inputs=inputs, device="numpy")
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
