"""SpikeRecording: every spike and average rate of a protocol run, exported to xarray.

Data model (ARCHITECTURE.md, "Data model: xarray"):

* spikes: a flat event list along dimension ``spike`` with ``time`` (float64, seconds, from the
  start of the run), ``neuron`` (index within its population), ``population``, ``sample`` and
  ``phase``. ``population`` and ``phase`` are small integer codes whose meanings are stored
  CF-style in the ``flag_values`` / ``flag_meanings`` attributes (and as the ``population`` /
  ``phase`` coordinates), which round-trips through netCDF and zarr alike;
* rates: ``rate`` (sample_index, phase_name, unit), where ``unit`` runs over every neuron of every
  population, with coordinates ``unit_population``, ``unit_layer``, ``unit_index`` and
  ``unit_role``; rates are in spikes per ``tau`` (attribute ``units = "1/tau"``);
* ``inputs`` (sample_index, feature) and ``readout`` (sample_index, class): the readout
  ``C a + d`` of the last layer's free-phase rates;
* attributes: provenance (toolkit and Brian2 versions, device, dt, tau, the network and the
  protocol as JSON strings). Attributes are strings or numbers only.

The rate dimensions are ``sample_index`` and ``phase_name`` rather than ``sample`` and
``phase`` because those two names are taken by the spike variables.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError

if TYPE_CHECKING:
    from fbsnn_brian.model import FeedbackNetwork
    from fbsnn_brian.protocol import Protocol

__all__ = ["Population", "SpikeRecording", "read_dataset", "write_dataset"]

EventChunks = Mapping[
    str, Sequence[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]]
]


@dataclass(frozen=True)
class Population:
    """A group of neurons in the simulation: its name, size, layer (0 = input) and role."""

    name: str
    size: int
    layer: int
    role: str


class SpikeRecording:
    """Spikes and average rates of one protocol run.

    Built by :meth:`fbsnn_brian.Protocol.run`; :meth:`to_xarray` gives the exported Dataset.

    Attributes
    ----------
    populations : tuple of Population
    spike_times : dict of str to ndarray
        Spike times in seconds from the start of the run, per population.
    spike_neurons, spike_samples : dict of str to ndarray
        Neuron index within the population and sample index of each spike.
    rates : dict of str to ndarray, shape (n_samples, n_phases, size)
        Average rate of each neuron per sample and phase, in spikes per tau.
    """

    def __init__(
        self,
        *,
        populations: Sequence[Population],
        spike_times: Mapping[str, NDArray[np.float64]],
        spike_neurons: Mapping[str, NDArray[np.int64]],
        spike_samples: Mapping[str, NDArray[np.int64]],
        rates: Mapping[str, NDArray[np.float64]],
        inputs: NDArray[np.float64],
        readout: NDArray[np.float64],
        phase_names: Sequence[str],
        phase_durations_s: Sequence[float],
        sample_duration_s: float,
        attrs: Mapping[str, str | int | float],
    ) -> None:
        self.populations = tuple(populations)
        self.spike_times = dict(spike_times)
        self.spike_neurons = dict(spike_neurons)
        self.spike_samples = dict(spike_samples)
        self.rates = dict(rates)
        self.inputs = inputs
        self.readout = readout
        self.phase_names = tuple(phase_names)
        self.phase_durations_s = tuple(phase_durations_s)
        self.sample_duration_s = float(sample_duration_s)
        self.attrs = dict(attrs)

    @classmethod
    def from_chunks(
        cls,
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
        """Assemble a recording from per-chunk spike arrays (used by the build layer)."""
        from brian2 import __version__ as brian2_version

        from fbsnn_brian import __version__

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
            "rate_units": "1/tau",
        }
        return cls(
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

    @property
    def n_samples(self) -> int:
        """Number of samples simulated."""
        return int(self.inputs.shape[0])

    def rates_of(self, population: str, phase: str = "free") -> NDArray[np.float64]:
        """Average rates (n_samples, size) of one population in one phase."""
        if population not in self.rates:
            raise ValidationError(
                f"SpikeRecording.rates_of: population must be one of {sorted(self.rates)}, "
                f"got {population!r}."
            )
        if phase not in self.phase_names:
            raise ValidationError(
                f"SpikeRecording.rates_of: phase must be one of {list(self.phase_names)}, "
                f"got {phase!r}."
            )
        return self.rates[population][:, self.phase_names.index(phase), :]

    def layer_rates(self, phase: str = "free") -> list[NDArray[np.float64]]:
        """Rates of the forward layers in order, each (n_samples, n_l)."""
        return [self.rates_of(p.name, phase) for p in self.populations if p.role == "forward"]

    def _phase_of(self, times: NDArray[np.float64]) -> NDArray[np.int8]:
        offset = np.mod(times, self.sample_duration_s)
        bounds = np.cumsum(self.phase_durations_s)[:-1]
        return np.searchsorted(bounds, offset, side="right").astype(np.int8)

    def to_neo(self) -> Any:
        """This recording as a ``neo.Block`` (see :func:`fbsnn_brian.interop.to_neo`)."""
        from fbsnn_brian.interop import to_neo

        return to_neo(self.to_xarray())

    def to_nwb(self, path: str | os.PathLike[str]) -> Path:
        """Write this recording to an NWB file (see :func:`fbsnn_brian.interop.to_nwb`)."""
        from fbsnn_brian.interop import to_nwb

        return to_nwb(self.to_xarray(), path)

    def to_xarray(self) -> xr.Dataset:
        """Export spikes, rates, inputs and readout as one :class:`xarray.Dataset`."""
        pop_names = [p.name for p in self.populations]
        times = np.concatenate([self.spike_times[n] for n in pop_names])
        neurons = np.concatenate([self.spike_neurons[n] for n in pop_names])
        samples = np.concatenate([self.spike_samples[n] for n in pop_names])
        codes = np.concatenate(
            [np.full(len(self.spike_times[n]), k, dtype=np.int8) for k, n in enumerate(pop_names)]
        )
        order = np.lexsort((neurons, codes, times))
        pop_flags = {
            "flag_values": np.arange(len(pop_names), dtype=np.int8),
            "flag_meanings": " ".join(pop_names),
        }
        phase_flags = {
            "flag_values": np.arange(len(self.phase_names), dtype=np.int8),
            "flag_meanings": " ".join(self.phase_names),
        }
        unit_population = np.concatenate([[p.name] * p.size for p in self.populations]).astype(str)
        rate = np.concatenate([self.rates[n] for n in pop_names], axis=2)
        data_vars = {
            "time": (
                "spike",
                times[order],
                {"units": "s", "long_name": "spike time from the start of the run"},
            ),
            "neuron": (
                "spike",
                neurons[order],
                {"long_name": "neuron index within its population"},
            ),
            "population": ("spike", codes[order], {"long_name": "population code", **pop_flags}),
            "sample": ("spike", samples[order], {"long_name": "sample index"}),
            "phase": (
                "spike",
                self._phase_of(times[order]),
                {"long_name": "phase code", **phase_flags},
            ),
            "rate": (
                ("sample_index", "phase_name", "unit"),
                rate,
                {"units": "1/tau", "long_name": "average firing rate in spikes per tau"},
            ),
            "inputs": (
                ("sample_index", "feature"),
                self.inputs,
                {"long_name": "input values in [0, 1]"},
            ),
            "readout": (
                ("sample_index", "class"),
                self.readout,
                {"long_name": "readout C a + d of the free phase"},
            ),
        }
        coords = {
            "sample_index": ("sample_index", np.arange(self.n_samples, dtype=np.int64)),
            "phase_name": ("phase_name", np.array(self.phase_names, dtype=str)),
            "phase_duration": ("phase_name", np.array(self.phase_durations_s), {"units": "s"}),
            "population_name": ("population_code", np.array(pop_names, dtype=str)),
            "unit_population": ("unit", unit_population),
            "unit_layer": (
                "unit",
                np.concatenate([[p.layer] * p.size for p in self.populations]).astype(np.int64),
            ),
            "unit_index": (
                "unit",
                np.concatenate([np.arange(p.size) for p in self.populations]).astype(np.int64),
            ),
            "unit_role": (
                "unit",
                np.concatenate([[p.role] * p.size for p in self.populations]).astype(str),
            ),
        }
        attrs = dict(self.attrs)
        attrs["sample_duration_s"] = self.sample_duration_s
        return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


def write_dataset(dataset: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a Dataset to netCDF (``.nc``) or zarr (``.zarr``) without leaving a partial file.

    The data go to a temporary name in the same directory first and are renamed into place
    only when complete, so an interrupted write never leaves a half-written file under
    ``path``.
    """
    target = Path(path)
    suffix = target.suffix
    if suffix not in (".nc", ".zarr"):
        raise ValidationError(
            f"write_dataset: path must end in '.nc' (netCDF) or '.zarr', got {str(path)!r}."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    os.unlink(temporary)
    try:
        if suffix == ".nc":
            dataset.to_netcdf(temporary, engine="h5netcdf")
            with open(temporary, "rb") as stream:
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        else:
            import shutil

            # zarr format 2 specifies fixed-width unicode arrays; format 3 does not (yet)
            dataset.to_zarr(temporary, mode="w", zarr_format=2, consolidated=True)
            if target.exists():
                shutil.rmtree(target)
            os.replace(temporary, target)
    finally:
        if os.path.isdir(temporary):
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.exists(temporary):
            os.unlink(temporary)
    return target


def read_dataset(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a Dataset written by :func:`write_dataset` fully into memory."""
    target = Path(path)
    if not target.exists():
        raise ValidationError(f"read_dataset: path {str(path)!r} does not exist.")
    if target.suffix == ".zarr":
        dataset: xr.Dataset = xr.open_zarr(target).load()
    else:
        with xr.open_dataset(target, engine="h5netcdf") as stored:
            dataset = stored.load()
    # netCDF stores a one-element attribute array as a scalar; CF flag values are a list
    for variable in dataset.variables.values():
        if "flag_values" in variable.attrs:
            variable.attrs["flag_values"] = np.atleast_1d(variable.attrs["flag_values"])
    return dataset
