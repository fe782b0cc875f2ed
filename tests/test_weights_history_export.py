"""Weights and training history round-trip losslessly through netCDF and zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from brian2 import ms, second

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, Trainer, ValidationError
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.io.netcdf import describe_dataset, read_dataset, write_dataset
from fbsnn_brian.io.weights import weights_from_xarray, weights_to_xarray
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_weights_round_trip_and_rebuild_the_network(tmp_path: Path, suffix: str) -> None:
    network = FeedbackNetwork(
        n_inputs=6, layer_sizes=[5, 4], n_classes=3, seed=7, neuron="lif", tau_m=5 * ms
    )
    dataset = weights_to_xarray(network)
    assert dataset["forward_weights_0"].dims == ("post_layer_2", "pre_layer_1")
    assert dataset["feedback_weights"].dims == ("post_layer_1", "pre_layer_2")
    loaded = read_dataset(write_dataset(dataset, tmp_path / f"weights{suffix}"))
    xr.testing.assert_identical(loaded, dataset)
    rebuilt = weights_from_xarray(loaded)
    assert rebuilt.config() == network.config()
    for name, value in network.weight_arrays().items():
        np.testing.assert_array_equal(rebuilt.weight_arrays()[name], value)


def test_a_single_layer_keeps_distinct_pre_and_post_dimensions() -> None:
    dataset = weights_to_xarray(FeedbackNetwork(n_inputs=3, layer_sizes=[4], n_classes=2))
    assert dataset["feedback_weights"].dims == ("post_layer_1", "pre_layer_1")


def test_a_dataset_that_is_not_a_weights_export_is_refused() -> None:
    with pytest.raises(ValidationError, match="is not a weights export"):
        weights_from_xarray(xr.Dataset())
    dataset = weights_to_xarray(FeedbackNetwork(n_inputs=3, layer_sizes=[4], n_classes=2))
    with pytest.raises(ValidationError, match="missing readout_bias"):
        weights_from_xarray(dataset.drop_vars("readout_bias"))


# UDUNITS strings the exports may use (seconds, per second, dimensionless)
UDUNITS = {"1", "s", "s-1"}


def assert_described(dataset: xr.Dataset) -> None:
    """CF Conventions set; a long_name on every variable; units only from UDUNITS."""
    assert dataset.attrs["Conventions"] == "CF-1.10"
    for name, variable in dataset.variables.items():
        assert str(variable.attrs.get("long_name", "")).strip(), name
        if "units" in variable.attrs:
            assert variable.attrs["units"] in UDUNITS, (name, variable.attrs["units"])


@pytest.fixture(scope="module")
def trained() -> tuple[FeedbackNetwork, xr.Dataset]:
    digits = load_digits()
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    protocol = Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=10 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05),
    )
    history = Trainer(network, protocol, device="numpy", chunk_size=8, progress=False).fit(
        digits.inputs[:8], digits.labels[:8], epochs=2
    )  # no validation: test_accuracy is NaN, which must survive too
    return network, history


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_training_history_round_trips(
    trained: tuple[FeedbackNetwork, xr.Dataset], tmp_path: Path, suffix: str
) -> None:
    _, history = trained
    assert np.all(np.isnan(history["test_accuracy"].values))
    loaded = read_dataset(write_dataset(history, tmp_path / f"history{suffix}"))
    # what is written is the history with its CF description filled in
    xr.testing.assert_identical(loaded, describe_dataset(history))
    for name in history.variables:
        np.testing.assert_array_equal(loaded[name].values, history[name].values)


def test_the_written_history_describes_every_variable(
    trained: tuple[FeedbackNetwork, xr.Dataset], tmp_path: Path
) -> None:
    network, history = trained
    loaded = read_dataset(write_dataset(history, tmp_path / "history.nc"))
    assert_described(loaded)
    assert set(loaded.data_vars) >= {"train_accuracy", "test_accuracy", "forward_rate"}
    for name in ("train_accuracy", "test_accuracy"):
        assert loaded[name].attrs["units"] == "1"
        assert "fraction of" in loaded[name].attrs["long_name"]
        assert "correctly classified" in loaded[name].attrs["long_name"]
    # rates in spikes per tau: dimensionless, with tau in seconds beside them
    for name in ("forward_rate", "backward_rate"):
        assert loaded[name].attrs["units"] == "1"
        assert loaded[name].attrs["tau_s"] == pytest.approx(float(network.tau / second))
    assert loaded["samples_per_s"].attrs["units"] == "s-1"
    assert loaded["wall_time_s"].attrs["units"] == "s"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_the_written_weights_describe_every_variable(tmp_path: Path, suffix: str) -> None:
    network = FeedbackNetwork(n_inputs=4, layer_sizes=[3, 3, 2], n_classes=2, seed=1)
    loaded = read_dataset(write_dataset(weights_to_xarray(network), tmp_path / f"w{suffix}"))
    assert_described(loaded)
    assert loaded["forward_weights_1"].attrs["long_name"] == (
        "forward weights W from layer 2 onto layer 3"
    )
    assert loaded["biases_2"].attrs["long_name"] == "biases b of layer 3"


def test_the_vocabulary_describes_every_sweep_and_comparison_variable() -> None:
    from fbsnn_brian.experiments.sweep import MEASURES

    shape = (2, 1)
    sweep = xr.Dataset(
        {
            **{name: (("condition", "seed"), np.zeros(shape)) for name in MEASURES},
            "status": (("condition", "seed"), np.full(shape, "ok")),
            "error": (("condition", "seed"), np.full(shape, "")),
        },
        coords={"condition": ["a", "b"], "seed": [0]},
        attrs={"tau_s": 1e-3},
    )
    assert_described(describe_dataset(sweep))
    assert describe_dataset(sweep)["mean_forward_rate"].attrs["tau_s"] == 1e-3
    # the variables of fbsnn_brian.experiments.comparison.compare_rules
    names = (
        "test_accuracy",
        "train_accuracy",
        "samples_per_s",
        "cosine_vs_ide",
        "local",
        "weight_transport",
        "memory_bytes_per_sample",
        "memory_bytes_per_sample_double_phase",
        "free_phase_tau",
        "wall_time_s",
        "summary",
    )
    comparison = xr.Dataset(
        {name: ("rule", np.zeros(2)) for name in names}, coords={"rule": ["spide", "ide"]}
    )
    assert_described(describe_dataset(comparison))
