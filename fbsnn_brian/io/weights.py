"""Weights as xarray: every matrix a DataArray with named post and pre dimensions.

``weights_to_xarray(network)`` gives one Dataset:

* ``input_weights`` (``post_layer_1``, ``pre_input``): F;
* ``forward_weights_k`` (``post_layer_{k+2}``, ``pre_layer_{k+1}``): W^(k+2);
* ``feedback_weights`` (``post_layer_1``, ``pre_layer_N``): W^fb;
* ``biases_k`` (``post_layer_{k+1}``): b^(k+1);
* ``readout_weights`` (``post_readout``, ``pre_layer_N``) and ``readout_bias`` (``post_readout``);

with the network's configuration (JSON), the toolkit version and the loop gain as attributes,
and CF ``long_name`` / ``units`` (``"1"``: weights are in units of the threshold scale) from
:data:`fbsnn_brian.io.recording.VOCABULARY`. It round-trips through
:func:`~fbsnn_brian.io.recording.write_dataset` (netCDF or zarr), and :func:`weights_from_xarray`
rebuilds an identical network.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.netcdf import describe_dataset
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = ["weights_from_xarray", "weights_to_xarray"]


def _dimensions(network: FeedbackNetwork) -> dict[str, tuple[str, ...]]:
    last = f"layer_{network.n_layers}"
    dims: dict[str, tuple[str, ...]] = {
        "input_weights": ("post_layer_1", "pre_input"),
        "feedback_weights": ("post_layer_1", f"pre_{last}"),
        "readout_weights": ("post_readout", f"pre_{last}"),
        "readout_bias": ("post_readout",),
    }
    for k in range(network.n_layers - 1):
        dims[f"forward_weights_{k}"] = (f"post_layer_{k + 2}", f"pre_layer_{k + 1}")
    for k in range(network.n_layers):
        dims[f"biases_{k}"] = (f"post_layer_{k + 1}",)
    return dims


def weights_to_xarray(network: FeedbackNetwork) -> xr.Dataset:
    """Every weight and bias of ``network`` as a Dataset (see the module docstring)."""
    from fbsnn_brian.version import __version__

    dims = _dimensions(network)
    arrays = network.weight_arrays()
    dataset = xr.Dataset(
        {name: (dims[name], np.array(value)) for name, value in arrays.items()},
        attrs={
            "title": "fbsnn_brian network weights",
            "toolkit_version": __version__,
            "network": network.config_json(),
            "loop_gain": network.loop_gain(),
        },
    )
    return describe_dataset(dataset, where="weights_to_xarray")


def weights_from_xarray(dataset: xr.Dataset) -> FeedbackNetwork:
    """Rebuild the network written by :func:`weights_to_xarray`.

    Raises
    ------
    ValidationError
        If the Dataset lacks the configuration or a weight, or a weight has the wrong shape.
    """
    try:
        config = json.loads(str(dataset.attrs["network"]))
    except (KeyError, ValueError) as error:
        raise ValidationError(
            f"weights_from_xarray: the Dataset is not a weights export (attribute 'network' "
            f"missing or not JSON: {error!r})."
        ) from None
    network = FeedbackNetwork.from_config(config)
    network.set_weight_arrays({str(name): dataset[name].values for name in dataset.data_vars})
    return network
