"""Weights and training history round-trip losslessly through netCDF and zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, Trainer, ValidationError
from fbsnn_brian.datasets import load_digits
from fbsnn_brian.export import read_dataset, write_dataset
from fbsnn_brian.learning import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.weights import weights_from_xarray, weights_to_xarray


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


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_training_history_round_trips(tmp_path: Path, suffix: str) -> None:
    digits = load_digits()
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    protocol = Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=10 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05),
    )
    history = Trainer(network, protocol, device="numpy", chunk_size=8, progress=False).fit(
        digits.inputs[:8], digits.labels[:8], epochs=2
    )  # no validation: test_accuracy is NaN, which must survive too
    assert np.all(np.isnan(history["test_accuracy"].values))
    loaded = read_dataset(write_dataset(history, tmp_path / f"history{suffix}"))
    xr.testing.assert_identical(loaded, history)
