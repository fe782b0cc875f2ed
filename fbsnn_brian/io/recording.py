"""SpikeRecording: every spike and average rate of a protocol run, exported to xarray.

Data model (docs/architecture.rst, section "Data model: xarray"):

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

The CF vocabulary and the netCDF / zarr files are those of :mod:`fbsnn_brian.io.netcdf`,
whose names are also importable from here.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.netcdf import (
    CONVENTIONS,
    UNITS,
    VOCABULARY,
    Term,
    describe_dataset,
    read_dataset,
    write_dataset,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "CONVENTIONS",
    "UNITS",
    "VOCABULARY",
    "Population",
    "SpikeRecording",
    "Term",
    "describe_dataset",
    "load_recording",
    "read_dataset",
    "write_dataset",
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

    Built by :func:`fbsnn_brian.simulate`; :meth:`to_xarray` gives the exported Dataset.

    Attributes
    ----------
    populations : tuple of Population
    spike_times : dict of str to ndarray
        Spike times in seconds from the start of the run, per population.
    spike_neurons, spike_samples : dict of str to ndarray
        Neuron index within the population and sample index of each spike.
    rates : dict of str to ndarray, shape (n_samples, n_phases, size)
        Average rate of each neuron per sample and phase, in spikes per tau.
    labels : ndarray of int64, shape (n_samples,), or None
        True class of each sample, if given.
    sample_positions : ndarray of int64, shape (n_samples,), or None
        Position of each sample in the data set it was drawn from (e.g. the test split), if
        given.
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
        labels: Any = None,
        sample_positions: Any = None,
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
        self.labels = self._per_sample("labels", labels)
        self.sample_positions = self._per_sample("sample_positions", sample_positions)

    def _per_sample(self, name: str, values: Any) -> NDArray[np.int64] | None:
        """``values`` as one non-negative integer per sample (None stays None)."""
        if values is None:
            return None
        array = np.asarray(values)
        if (
            array.shape != (self.n_samples,)
            or not np.issubdtype(array.dtype, np.integer)
            or (array.size and array.min() < 0)
        ):
            raise ValidationError(
                f"SpikeRecording: {name} must hold one non-negative integer per sample "
                f"({self.n_samples}), got an array of shape {array.shape} and dtype "
                f"{array.dtype}."
            )
        return array.astype(np.int64)

    def with_samples(self, *, labels: Any = None, positions: Any = None) -> SpikeRecording:
        """A copy of this recording that knows its samples' labels and positions.

        Parameters
        ----------
        labels : array_like of int, shape (n_samples,), optional
            True class of each sample (kept from this recording if not given).
        positions : array_like of int, shape (n_samples,), optional
            Position of each sample in the data set it was drawn from, e.g.
            ``np.arange(5)`` for ``test.inputs[:5]`` (kept if not given).

        Returns
        -------
        SpikeRecording
            Written by :meth:`to_xarray` as the variables ``label`` and ``sample_position``
            along ``sample_index``.

        Raises
        ------
        ValidationError
            If either is not one non-negative integer per sample.
        """
        result = copy.copy(self)
        if labels is not None:
            result.labels = self._per_sample("labels", labels)
        if positions is not None:
            result.sample_positions = self._per_sample("sample_positions", positions)
        return result

    @classmethod
    def from_xarray(cls, dataset: xr.Dataset) -> SpikeRecording:
        """Rebuild a recording from the Dataset of :meth:`to_xarray` (or one read from disk).

        Spikes come back per population in time order; ``to_xarray`` of the result equals
        the Dataset (with :func:`describe_dataset` applied).

        Raises
        ------
        ValidationError
            If the Dataset lacks a variable or attribute of a spike recording.
        """
        needed = (
            "time",
            "neuron",
            "population",
            "sample",
            "rate",
            "inputs",
            "readout",
            "phase_name",
            "phase_duration",
            "population_name",
            "unit_population",
            "unit_layer",
            "unit_index",
            "unit_role",
        )
        missing = [name for name in needed if name not in dataset.variables]
        if missing or "sample_duration_s" not in dataset.attrs:
            raise ValidationError(
                "SpikeRecording.from_xarray: the Dataset is not a spike recording (missing "
                f"{missing or ['attribute sample_duration_s']})."
            )
        names = [str(n) for n in dataset["population_name"].values]
        unit_population = dataset["unit_population"].values.astype(str)
        populations = []
        for name in names:
            chosen = unit_population == name
            layers = np.unique(dataset["unit_layer"].values[chosen])
            roles = np.unique(dataset["unit_role"].values[chosen].astype(str))
            populations.append(Population(name, int(chosen.sum()), int(layers[0]), str(roles[0])))
        codes = dataset["population"].values
        order = np.argsort(dataset["time"].values, kind="stable")
        rate = dataset["rate"].values
        attrs = {
            str(key): value.item() if isinstance(value, np.generic) else value
            for key, value in dataset.attrs.items()
            if key not in ("sample_duration_s", "Conventions")
        }
        return cls(
            populations=populations,
            spike_times={
                n: dataset["time"].values[order][codes[order] == k].astype(np.float64)
                for k, n in enumerate(names)
            },
            spike_neurons={
                n: dataset["neuron"].values[order][codes[order] == k].astype(np.int64)
                for k, n in enumerate(names)
            },
            spike_samples={
                n: dataset["sample"].values[order][codes[order] == k].astype(np.int64)
                for k, n in enumerate(names)
            },
            rates={n: rate[:, :, unit_population == n] for n in names},
            inputs=dataset["inputs"].values,
            readout=dataset["readout"].values,
            phase_names=[str(p) for p in dataset["phase_name"].values],
            phase_durations_s=[float(d) for d in dataset["phase_duration"].values],
            sample_duration_s=float(dataset.attrs["sample_duration_s"]),
            attrs=attrs,
            labels=dataset["label"].values if "label" in dataset.variables else None,
            sample_positions=(
                dataset["sample_position"].values
                if "sample_position" in dataset.variables
                else None
            ),
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
        """This recording as a ``neo.Block`` (see :func:`fbsnn_brian.io.interop.to_neo`)."""
        from fbsnn_brian.io.interop import to_neo

        return to_neo(self.to_xarray())

    def to_nwb(self, path: str | os.PathLike[str]) -> Path:
        """Write this recording to an NWB file (see :func:`fbsnn_brian.io.interop.to_nwb`)."""
        from fbsnn_brian.io.interop import to_nwb

        return to_nwb(self.to_xarray(), path)

    def to_xarray(self) -> xr.Dataset:
        """Export spikes, rates, inputs and readout as one :class:`xarray.Dataset`.

        With labels and sample positions (:meth:`with_samples`) as ``label`` and
        ``sample_position``; described by :func:`describe_dataset` (CF ``Conventions``,
        ``long_name`` and UDUNITS ``units``; the rates in spikes per tau carry ``tau_s``).
        """
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
        data_vars: dict[str, Any] = {
            "time": ("spike", times[order]),
            "neuron": ("spike", neurons[order]),
            "population": ("spike", codes[order], pop_flags),
            "sample": ("spike", samples[order]),
            "phase": ("spike", self._phase_of(times[order]), phase_flags),
            "rate": (("sample_index", "phase_name", "unit"), rate),
            "inputs": (("sample_index", "feature"), self.inputs),
            "readout": (("sample_index", "class"), self.readout),
        }
        if self.labels is not None:
            data_vars["label"] = ("sample_index", self.labels)
        if self.sample_positions is not None:
            data_vars["sample_position"] = ("sample_index", self.sample_positions)
        coords = {
            "sample_index": ("sample_index", np.arange(self.n_samples, dtype=np.int64)),
            "phase_name": ("phase_name", np.array(self.phase_names, dtype=str)),
            "phase_duration": ("phase_name", np.array(self.phase_durations_s)),
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
        dataset = xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)
        return describe_dataset(dataset, where="SpikeRecording.to_xarray")


def load_recording(path: str | os.PathLike[str]) -> SpikeRecording:
    """Read a spike recording written by :func:`write_dataset` (``.nc`` or ``.zarr``).

    The inverse of ``write_dataset(recording.to_xarray(), path)``: spikes, rates, inputs,
    readout, labels, sample positions and provenance come back, and
    :meth:`~SpikeRecording.to_neo` and :meth:`~SpikeRecording.to_nwb` work on the result.

    Raises
    ------
    ValidationError
        If ``path`` does not exist or does not hold a spike recording.
    """
    return SpikeRecording.from_xarray(read_dataset(path))
