"""A build's spike arrays turned into a :class:`~fbsnn_brian.io.recording.SpikeRecording`.

The recording itself is plain data (:mod:`fbsnn_brian.io.recording`); this is where the build
layer adds what it knows: the network and protocol as provenance, the readout of the last
layer's rates, and the Brian2 version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from brian2 import __version__ as brian2_version
from numpy.typing import NDArray

from fbsnn_brian.io.recording import Population, SpikeRecording
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.version import __version__

__all__ = ["EventChunks", "recording_from_chunks"]

#: Per population, one (neuron indices, spike times in s, sample indices) triple per chunk.
EventChunks = Mapping[
    str, Sequence[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]]
]


def recording_from_chunks(
    *,
    network: FeedbackNetwork,
    protocol: Protocol,
    populations: Sequence[Population],
    events: EventChunks,
    rates: Mapping[str, NDArray[np.float64]],
    inputs: NDArray[np.float64],
    phase_durations_s: Sequence[float],
    sample_duration_s: float,
    device: str,
    wall_time_s: float,
) -> SpikeRecording:
    """Assemble a :class:`SpikeRecording` (plain data) from a build's per-chunk spike arrays."""

    def join(name: str, position: int, dtype: type) -> NDArray[Any]:
        parts = [chunk[position] for chunk in events.get(name, [])]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    names = [pop.name for pop in populations]
    last = rates[[pop.name for pop in populations if pop.role == "forward"][-1]][:, 0, :]
    readout = last @ network.readout_weights.T + network.readout_bias
    attrs: dict[str, str | int | float] = {
        "title": "fbsnn_brian spike recording",
        "toolkit": "fbsnn_brian",
        "toolkit_version": __version__,
        "brian2_version": str(brian2_version),
        "device": device,
        "dt_s": float(network.config()["dt_s"]),
        "tau_s": float(network.config()["tau_s"]),
        "seed": network.seed,
        "network": network.config_json(),
        "protocol": protocol.to_json(),
        "wall_time_s": float(wall_time_s),
    }
    return SpikeRecording(
        populations=populations,
        spike_times={n: join(n, 1, np.float64) for n in names},
        spike_neurons={n: join(n, 0, np.int64) for n in names},
        spike_samples={n: join(n, 2, np.int64) for n in names},
        rates=rates,
        inputs=inputs,
        readout=readout,
        phase_names=protocol.phase_names,
        phase_durations_s=phase_durations_s,
        sample_duration_s=sample_duration_s,
        attrs=attrs,
    )
