"""Measurements on the toolkit's xarray outputs (spike recordings, weights, histories).

Every function takes the Datasets the toolkit writes (:meth:`SpikeRecording.to_xarray`,
:func:`fbsnn_brian.io.weights.weights_to_xarray`) plus, where the exact fixed point is needed, the
network, and returns plain numbers or DataArrays. Rates are in spikes per tau.

Energy. A synaptic operation (one spike or error event delivered to one synapse) is counted as
one accumulate; ``ENERGY_PER_SYNAPTIC_OPERATION_PJ`` = 0.9 pJ is the energy of a 32-bit
floating-point addition in 45 nm CMOS (M. Horowitz, "Computing's energy problem (and what we can
do about it)", ISSCC 2014), the figure most SNN papers use for an accumulate. It is a proxy for
comparing conditions, not a hardware prediction.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian import reference as ref
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = [
    "ENERGY_PER_SYNAPTIC_OPERATION_PJ",
    "equilibrium_error",
    "firing_rates",
    "population_spikes",
    "rule_memory",
    "running_rates",
    "synaptic_operations",
    "time_to_equilibrium",
]

ENERGY_PER_SYNAPTIC_OPERATION_PJ = 0.9


def population_spikes(
    recording: xr.Dataset, sample: int, population: str
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(neuron indices, times in tau since the sample's start) of one population's spikes."""
    names = list(recording["population"].attrs["flag_meanings"].split())
    name = population
    if name not in names:
        raise ValidationError(
            f"analysis: the recording has no population {name!r}; it has {', '.join(names)}."
        )
    code = names.index(name)
    chosen = (recording["population"].values == code) & (recording["sample"].values == sample)
    tau = float(recording.attrs["tau_s"])
    start = sample * float(recording.attrs["sample_duration_s"])
    times = (recording["time"].values[chosen] - start) / tau
    return recording["neuron"].values[chosen], times


def running_rates(recording: xr.Dataset, sample: int, *, layer: int = 1) -> xr.DataArray:
    """Running-average rate of every neuron of a layer over the free phase of one sample.

    Returns a DataArray (``time_tau``, ``neuron``): spikes up to and including each time step,
    divided by the elapsed time in tau.
    """
    neurons, times = population_spikes(recording, sample, f"layer_{layer}")
    dt = float(recording.attrs["dt_s"]) / float(recording.attrs["tau_s"])
    duration = float(recording.attrs["sample_duration_s"]) / float(recording.attrs["tau_s"])
    n_steps = round(duration / dt)
    size = int(np.sum(recording["unit_population"].values == f"layer_{layer}"))
    counts = np.zeros((n_steps, size))
    steps = np.clip(np.rint(times / dt).astype(int) - 1, 0, n_steps - 1)
    np.add.at(counts, (steps, neurons), 1.0)
    elapsed = dt * np.arange(1, n_steps + 1)
    return xr.DataArray(
        np.cumsum(counts, axis=0) / elapsed[:, None],
        dims=("time_tau", "neuron"),
        coords={"time_tau": elapsed},
        attrs={"units": "1/tau", "long_name": f"running-average rate of layer_{layer}"},
    )


def _fixed_point(recording: xr.Dataset, network: FeedbackNetwork, sample: int) -> NDArray[Any]:
    x = recording["inputs"].values[sample]
    return np.concatenate(ref.fixed_point(network.rate_model(), x))


def equilibrium_error(recording: xr.Dataset, network: FeedbackNetwork) -> xr.DataArray:
    """Mean |a - a*| over all neurons, per sample, of the free-phase rates vs the fixed point."""
    _check_network(recording, network)
    free = recording["rate"].sel(phase_name="free").values
    errors = [
        float(np.mean(np.abs(free[k] - _fixed_point(recording, network, k))))
        for k in range(len(free))
    ]
    return xr.DataArray(errors, dims=("sample_index",), attrs={"units": "1/tau"})


def time_to_equilibrium(
    recording: xr.Dataset,
    network: FeedbackNetwork,
    sample: int,
    *,
    epsilon: float = 0.05,
    layer: int = 1,
) -> float:
    """First time (in tau) after which the running rates stay within ``epsilon`` of a*.

    The criterion is the mean absolute deviation over the layer's neurons; NaN if it is not
    met by the end of the free phase.
    """
    _check_network(recording, network)
    rates = running_rates(recording, sample, layer=layer)
    sizes = network.layer_sizes
    offset = int(sum(sizes[: layer - 1]))
    target = _fixed_point(recording, network, sample)[offset : offset + sizes[layer - 1]]
    deviation = np.mean(np.abs(rates.values - target[None, :]), axis=1)
    outside = np.nonzero(deviation > epsilon)[0]
    if len(outside) == 0:
        return float(rates["time_tau"].values[0])
    if outside[-1] == len(deviation) - 1:
        return float("nan")
    return float(rates["time_tau"].values[outside[-1] + 1])


def firing_rates(recording: xr.Dataset) -> xr.DataArray:
    """Mean rate per population and phase (averaged over samples and neurons)."""
    rate = recording["rate"]
    populations = [str(p) for p in np.unique(recording["unit_population"].values)]
    values = np.array(
        [
            [
                float(
                    rate.sel(phase_name=phase)
                    .values[:, recording["unit_population"].values == p]
                    .mean()
                )
                for phase in rate["phase_name"].values
            ]
            for p in populations
        ]
    )
    return xr.DataArray(
        values,
        dims=("population", "phase_name"),
        coords={"population": populations, "phase_name": rate["phase_name"].values},
        attrs={"units": "1/tau"},
    )


def synaptic_operations(recording: xr.Dataset, network: FeedbackNetwork) -> dict[str, Any]:
    """Synaptic operations per sample in each phase and their energy estimate.

    Every spike of a layer is delivered to all its outgoing synapses: the next layer's (or,
    from the last layer, the feedback matrix's) and, for the current input of layer 1, one
    event per nonzero input component to its ``n_1`` synapses (counted in the first phase).
    An error event of layer l (populations ``layer_l_error_up`` / ``_down`` of a recording of
    both phases) travels backward through the transposed weights to every synapse arriving at
    layer l from a spiking layer: ``n_(l-1)`` synapses, plus ``n_N`` feedback synapses for
    layer 1.

    Returns
    -------
    dict
        ``synaptic_operations_per_sample`` (all phases), ``operations_per_sample_by_phase``
        (phase name -> operations), ``energy_per_sample_nj`` and ``energy_per_operation_pj``.
    """
    _check_network(recording, network)
    names = recording["population"].attrs["flag_meanings"].split()
    codes = recording["population"].values
    phase_codes = recording["phase"].values
    phases = [str(p) for p in recording["phase_name"].values]
    n_samples = recording.sizes["sample_index"]
    sizes = network.layer_sizes
    fan_out = {f"layer_{k + 1}": sizes[k + 1] for k in range(network.n_layers - 1)}
    last = f"layer_{network.n_layers}"
    fan_out[last] = fan_out.get(last, 0) + sizes[0]
    for k in range(network.n_layers):
        fan_in = (sizes[k - 1] if k > 0 else 0) + (sizes[-1] if k == 0 else 0)
        for event in ("error_up", "error_down"):
            fan_out[f"layer_{k + 1}_{event}"] = fan_in
    by_phase = {}
    for index, phase in enumerate(phases):
        in_phase = phase_codes == index
        spikes = sum(
            float(np.sum(in_phase & (codes == names.index(name)))) * fan_out.get(name, 0)
            for name in names
        )
        if index == 0:
            spikes += float(np.count_nonzero(recording["inputs"].values)) * sizes[0]
        by_phase[phase] = spikes / n_samples
    operations = float(sum(by_phase.values()))
    return {
        "synaptic_operations_per_sample": operations,
        "operations_per_sample_by_phase": by_phase,
        "energy_per_sample_nj": operations * ENERGY_PER_SYNAPTIC_OPERATION_PJ / 1000.0,
        "energy_per_operation_pj": ENERGY_PER_SYNAPTIC_OPERATION_PJ,
    }


def rule_memory(network: FeedbackNetwork, *, momentum: bool = False) -> dict[str, Any]:
    """Memory SPIDE needs, per synapse and per neuron (float64), independent of the phase length.

    Per synapse: the weight (shared by the forward and backward pathways), plus a velocity with
    momentum. Per neuron: the forward membrane, the error-unit membrane, the spike count and the
    error-event count (the two rates), and the time of the last spike and error event
    (refractoriness). Nothing grows with T_f or T_b: rates are counts, not spike trains.
    """
    per_synapse = 8 * (2 if momentum else 1)
    per_neuron = 8 * 6
    n_synapses = network.n_weights
    return {
        "bytes_per_synapse": per_synapse,
        "bytes_per_neuron": per_neuron,
        "total_bytes": per_synapse * n_synapses + per_neuron * network.n_neurons,
        "grows_with_phase_length": False,
    }


def _check_network(recording: xr.Dataset, network: FeedbackNetwork) -> None:
    recorded = json.loads(str(recording.attrs.get("network", "{}")))
    if (
        recorded.get("layer_sizes") != list(network.layer_sizes)
        or recorded.get("n_inputs") != network.n_inputs
    ):
        raise ValidationError(
            f"analysis: the recording is of a {recorded.get('n_inputs')}-"
            f"{recorded.get('layer_sizes')} network, not of {network!r}."
        )
