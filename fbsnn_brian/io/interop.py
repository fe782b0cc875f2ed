"""Spike recordings for the analysis ecosystem: Neo (and so Elephant) and NWB.

Both take the Dataset of :meth:`SpikeRecording.to_xarray` (or one read back from disk) and
keep every spike time exactly (seconds, float64, on the recording's own time axis, where sample
k starts at k times the sample duration).

* :func:`to_neo` returns a ``neo.Block`` with one Segment per (sample, phase) and in it one
  SpikeTrain per neuron, in seconds, from the phase's start to its end, annotated with
  ``population``, ``neuron``, ``layer`` and ``role``; Elephant's statistics run on it directly.
  Segments are annotated with the sample's ``label`` and ``sample_position`` where the
  recording has them. Needs the ``neo`` extra.
* :func:`to_nwb` writes an NWB file whose Units table holds one row per neuron with all its
  spike times and the columns ``population``, ``neuron``, ``layer`` and ``role`` (resolution:
  the simulation's time step), and whose trials table holds one trial per sample (its window
  on the time axis, ``sample_index``, and ``label`` and ``sample_position`` where the recording
  has them). Needs the ``nwb`` extra. The file passes nwbinspector except for its check that a
  subject exists: a simulated network has no subject, so none is invented.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from fbsnn_brian.errors import ValidationError

__all__ = ["to_neo", "to_nwb"]


def _import(module: str, extra: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ValidationError(
            f"this export needs {module}: pip install 'fbsnn_brian[{extra}]'."
        ) from None


def _units(recording: xr.Dataset) -> list[tuple[str, int, int, str]]:
    """(population, neuron index, layer, role) of every recorded unit, in unit order."""
    return [
        (str(p), int(i), int(layer), str(role))
        for p, i, layer, role in zip(
            recording["unit_population"].values,
            recording["unit_index"].values,
            recording["unit_layer"].values,
            recording["unit_role"].values,
            strict=True,
        )
    ]


def _spikes_by_unit(recording: xr.Dataset) -> dict[tuple[str, int], tuple[Any, Any, Any]]:
    """(population, neuron) -> (times, samples, phase codes) of its spikes, in time order."""
    names = recording["population"].attrs["flag_meanings"].split()
    populations = np.array(names)[recording["population"].values]
    order = np.argsort(recording["time"].values, kind="stable")
    result: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
    for name, index, _, _ in _units(recording):
        chosen = order[(populations[order] == name) & (recording["neuron"].values[order] == index)]
        result[(name, index)] = (
            recording["time"].values[chosen],
            recording["sample"].values[chosen],
            recording["phase"].values[chosen],
        )
    return result


def to_neo(recording: xr.Dataset) -> Any:
    """A ``neo.Block``: one Segment per (sample, phase), one SpikeTrain per neuron in each."""
    neo = _import("neo", "neo")
    pq = _import("quantities", "neo")
    sample_s = float(recording.attrs["sample_duration_s"])
    phases = [str(p) for p in recording["phase_name"].values]
    durations = [float(d) for d in recording["phase_duration"].values]
    phase_codes = recording["phase"].attrs["flag_meanings"].split()
    spikes = _spikes_by_unit(recording)
    block = neo.Block(name="fbsnn_brian spike recording", **_annotations(recording))
    for sample in recording["sample_index"].values:
        offset = float(sample) * sample_s
        for phase, duration in zip(phases, durations, strict=True):
            segment = neo.Segment(name=f"sample {int(sample)}, {phase} phase")
            segment.annotate(
                sample=int(sample), phase=phase, **_sample_annotations(recording, sample)
            )
            code = phase_codes.index(phase)
            for population, index, layer, role in _units(recording):
                times, samples, codes = spikes[(population, index)]
                chosen = (samples == sample) & (codes == code)
                train = neo.SpikeTrain(
                    times[chosen] * pq.s,
                    t_start=offset * pq.s,
                    t_stop=(offset + duration) * pq.s,
                    name=f"{population}[{index}]",
                )
                train.annotate(population=population, neuron=index, layer=layer, role=role)
                segment.spiketrains.append(train)
            block.segments.append(segment)
            offset += duration
    return block


def to_nwb(recording: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write an NWB file whose Units table holds every neuron's spike times; return the path."""
    pynwb = _import("pynwb", "nwb")
    target = Path(path)
    if target.suffix != ".nwb":
        raise ValidationError(f"to_nwb: path must end in '.nwb', got {str(path)!r}.")
    nwbfile = pynwb.NWBFile(
        session_description="fbsnn_brian spike recording",
        identifier=f"fbsnn_brian-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}",
        session_start_time=datetime.now(UTC),
        experiment_description=(
            "Brian2 simulation of a feedback spiking neural network (fbsnn_brian): each sample "
            "runs the protocol's phases in turn; spike times in seconds from the start of the run."
        ),
        keywords=["spiking neural network", "feedback network", "simulation", "Brian2"],
        notes=str(recording.attrs.get("protocol", "")),
    )
    resolution = float(recording.attrs["dt_s"]) if "dt_s" in recording.attrs else -1.0
    nwbfile.units = _import("pynwb.misc", "nwb").Units(
        name="units",
        description="every simulated neuron with all its spike times",
        resolution=resolution,  # spikes lie on the time grid of the simulation step (-1: unknown)
    )
    for column, description in (
        ("population", "population (group) of the neuron"),
        ("neuron", "index of the neuron in its population"),
        ("layer", "layer number (0: input)"),
        ("role", "role of the population"),
    ):
        nwbfile.add_unit_column(name=column, description=description)
    spikes = _spikes_by_unit(recording)
    for population, index, layer, role in _units(recording):
        nwbfile.add_unit(
            spike_times=spikes[(population, index)][0],
            population=population,
            neuron=index,
            layer=layer,
            role=role,
        )
    _add_trials(nwbfile, recording)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.tmp.nwb")
    with pynwb.NWBHDF5IO(str(temporary), "w") as io:
        io.write(nwbfile)
    os.replace(temporary, target)
    return target


def _annotations(recording: xr.Dataset) -> dict[str, Any]:
    keys = ("toolkit_version", "brian2_version", "device", "dt_s", "tau_s", "seed", "network")
    return {key: recording.attrs[key] for key in keys if key in recording.attrs}


def _sample_annotations(recording: xr.Dataset, sample: Any) -> dict[str, int]:
    """``label`` and ``sample_position`` of one sample, where the recording has them."""
    return {
        name: int(recording[name].values[int(sample)])
        for name in ("label", "sample_position")
        if name in recording.variables
    }


def _add_trials(nwbfile: Any, recording: xr.Dataset) -> None:
    """One trial per sample: its window on the time axis, index, label and position."""
    sample_s = float(recording.attrs["sample_duration_s"])
    columns = {
        "sample_index": "index of the sample in the recording",
        "label": "true class label of the sample",
        "sample_position": "position of the sample in the data set it was drawn from",
    }
    present = [name for name in columns if name in recording.variables]
    for name in present:
        nwbfile.add_trial_column(name=name, description=columns[name])
    for sample in recording["sample_index"].values:
        nwbfile.add_trial(
            start_time=float(sample) * sample_s,
            stop_time=(float(sample) + 1) * sample_s,
            **{name: int(recording[name].values[int(sample)]) for name in present},
        )
