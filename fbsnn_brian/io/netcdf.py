"""The CF vocabulary of the toolkit's xarray Datasets, and their netCDF and zarr files.

Every Dataset the toolkit writes describes itself by the CF conventions: the global attribute
``Conventions`` is :data:`CONVENTIONS`, and every variable has the ``long_name`` and UDUNITS
``units`` (:data:`UNITS`) that :data:`VOCABULARY` gives its name (:func:`describe_dataset`).
:func:`write_dataset` writes such a Dataset to netCDF (``.nc``) or zarr (``.zarr``) without
leaving a partial file, and :func:`read_dataset` reads it back into memory.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from fbsnn_brian.errors import ValidationError

__all__ = [
    "CONVENTIONS",
    "UNITS",
    "VOCABULARY",
    "Term",
    "describe_dataset",
    "read_dataset",
    "write_dataset",
]

#: Value of the global ``Conventions`` attribute of every Dataset the toolkit writes.
CONVENTIONS = "CF-1.10"


#: The UDUNITS strings a variable's ``units`` may take (seconds, per second, dimensionless).
UNITS = ("1", "s", "s-1")


class Term(NamedTuple):
    """Description of one variable name: its CF ``long_name`` and ``units``.

    ``units`` is None for variables without a unit (indices, codes, names). ``per_tau`` marks
    quantities counted per ``tau`` (rates times ``tau``, durations over ``tau``): they get the
    attribute ``tau_s`` (``tau`` in seconds) wherever the Dataset states ``tau``.
    """

    long_name: str
    units: str | None = None
    per_tau: bool = False


_PER_TAU = "per tau (the rate times tau; divide by the attribute tau_s for Hz)"


#: long_name and units of every variable name the toolkit writes.
VOCABULARY: dict[str, Term] = {
    # spike recordings (SpikeRecording.to_xarray)
    "time": Term("spike time from the start of the run", "s"),
    "neuron": Term("index of the spiking neuron within its population"),
    "population": Term("population of the spiking neuron (code)"),
    "sample": Term("index of the sample during which the neuron spiked"),
    "phase": Term("phase in which the neuron spiked (code)"),
    "rate": Term(f"average firing rate in spikes {_PER_TAU}", "1", per_tau=True),
    "inputs": Term("input value of the feature, in [0, 1]", "1"),
    "readout": Term("readout C a + d of the last layer's free-phase rates", "1"),
    "label": Term("true class label of the sample"),
    "sample_position": Term("position of the sample in the data set it was drawn from"),
    "sample_index": Term("index of the sample in this recording"),
    "phase_name": Term("name of the protocol phase"),
    "phase_duration": Term("duration of the protocol phase", "s"),
    "population_name": Term("name of the population with this code"),
    "unit_population": Term("population of the neuron"),
    "unit_layer": Term("layer of the neuron (0: input)"),
    "unit_index": Term("index of the neuron within its population"),
    "unit_role": Term("role of the neuron's population"),
    # weights (fbsnn_brian.io.weights.weights_to_xarray), in units of the threshold scale
    "input_weights": Term("input weights F onto layer 1", "1"),
    "feedback_weights": Term("feedback weights W_fb from the last layer onto layer 1", "1"),
    "readout_weights": Term("readout weights C from the last layer", "1"),
    "readout_bias": Term("readout bias d", "1"),
    # training history (Trainer.fit), one value per epoch
    "epoch": Term("training epoch (from 1)"),
    "train_accuracy": Term("fraction of training samples correctly classified", "1"),
    "test_accuracy": Term("fraction of test samples correctly classified", "1"),
    "learning_rate": Term("mean learning rate", "1"),
    "samples_per_s": Term("training samples per second of wall-clock time", "s-1"),
    "wall_time_s": Term("wall-clock time", "s"),
    "forward_rate": Term(
        f"mean firing rate of the forward neurons in the free phase, in spikes {_PER_TAU}",
        "1",
        per_tau=True,
    ),
    "backward_rate": Term(
        f"mean event rate of the error units in the perturbed phase, in events {_PER_TAU}",
        "1",
        per_tau=True,
    ),
    "loop_gain": Term("gain of the feedback loop (a contraction below 1)", "1"),
    # sweeps (fbsnn_brian.experiments.sweep.run_sweep), one value per condition and seed
    "condition": Term("name of the sweep condition"),
    "seed": Term("random seed of the run"),
    "mean_forward_rate": Term(
        f"mean over epochs of the free-phase firing rate, in spikes {_PER_TAU}", "1", per_tau=True
    ),
    "mean_backward_rate": Term(
        f"mean over epochs of the error units' event rate, in events {_PER_TAU}",
        "1",
        per_tau=True,
    ),
    "gradient_cosine_vs_ide": Term(
        "cosine between the rule's update and the exact IDE gradient", "1"
    ),
    "gradient_cosine_vs_measured_ide": Term(
        "cosine between the rule's update and the measured rate model's IDE gradient", "1"
    ),
    "gradient_cosine_vs_finite_difference": Term(
        "cosine between the rule's update and finite differences of the simulated loss", "1"
    ),
    "gradient_measured_ide_vs_finite_difference": Term(
        "cosine between the measured rate model's IDE gradient and the finite differences", "1"
    ),
    "status": Term("outcome of the run (ok or failed)"),
    # per condition of a sweep (fbsnn_brian.experiments.sweep.condition_summary), with
    # test_accuracy_mean and test_accuracy_sd
    "test_accuracy_difference": Term(
        "mean over paired seeds of the test accuracy minus the reference condition's", "1"
    ),
    "test_accuracy_difference_low": Term(
        "lower end of the paired t interval of the test accuracy difference to the reference "
        "condition",
        "1",
    ),
    "test_accuracy_difference_high": Term(
        "upper end of the paired t interval of the test accuracy difference to the reference "
        "condition",
        "1",
    ),
    "n_paired_seeds": Term(
        "number of seeds at which both the condition and the reference condition finished"
    ),
    "error": Term("error of a failed run (empty if it succeeded)"),
    # rule comparisons (fbsnn_brian.experiments.comparison.compare_rules), over rule, seed and
    # the network state of the alignment
    "rule": Term("learning rule"),
    "state": Term("network state at which the alignment was measured (initial or trained)"),
    "cosine_vs_ide": Term("cosine between the rule's update and the exact IDE gradient", "1"),
    "cosine_vs_measured_ide": Term(
        "cosine between the rule's update and the measured rate model's IDE gradient", "1"
    ),
    "cosine_vs_finite_difference": Term(
        "cosine between the rule's update and finite differences of the simulated loss", "1"
    ),
    "measured_ide_vs_finite_difference": Term(
        "cosine between the measured rate model's IDE gradient and the finite differences", "1"
    ),
    "local": Term("whether the rule uses only information local to each synapse"),
    "weight_transport": Term("whether the rule needs the transpose of the forward weights"),
    "algebraically_ide": Term(
        "whether the rule's update is algebraically the exact IDE gradient in this regime"
    ),
    "memory_bytes_per_sample": Term(
        "bytes of one sample's state while the rule forms its update, free phase of T_f", "1"
    ),
    "memory_bytes_per_sample_double_phase": Term(
        "bytes of one sample's state while the rule forms its update, free phase of 2 T_f", "1"
    ),
    "free_phase_tau": Term(
        "duration of the free phase in units of tau (multiply by the attribute tau_s for seconds)",
        "1",
        per_tau=True,
    ),
    "rule_network": Term("the network the rule trains on in this regime"),
    "test_accuracy_mean": Term("mean over seeds of the fraction of test samples correct", "1"),
    "test_accuracy_sd": Term(
        "sample standard deviation over seeds of the fraction of test samples correct", "1"
    ),
    "test_accuracy_difference_to_spide": Term(
        "mean over seeds of the test accuracy minus SPIDE's with the same seed", "1"
    ),
    "test_accuracy_difference_to_spide_low": Term(
        "lower bound of the paired 95 % t interval of the test accuracy minus SPIDE's", "1"
    ),
    "test_accuracy_difference_to_spide_high": Term(
        "upper bound of the paired 95 % t interval of the test accuracy minus SPIDE's", "1"
    ),
    "summary": Term("summary of the learning rule"),
}


# numbered variable names of weights_to_xarray: forward_weights_k and biases_k
_FORWARD_WEIGHTS = re.compile(r"forward_weights_(\d+)")
_BIASES = re.compile(r"biases_(\d+)")


def _term(name: str) -> Term | None:
    if name in VOCABULARY:
        return VOCABULARY[name]
    match = _FORWARD_WEIGHTS.fullmatch(name)
    if match:
        k = int(match.group(1))
        return Term(f"forward weights W from layer {k + 1} onto layer {k + 2}", "1")
    match = _BIASES.fullmatch(name)
    if match:
        return Term(f"biases b of layer {int(match.group(1)) + 1}", "1")
    return None


def _tau_s(dataset: xr.Dataset) -> float | None:
    """``tau`` in seconds as the Dataset states it (attribute, or the network's JSON)."""
    if "tau_s" in dataset.attrs:
        return float(dataset.attrs["tau_s"])
    try:
        return float(json.loads(str(dataset.attrs["network"]))["tau_s"])
    except (KeyError, ValueError, TypeError):
        return None


def describe_dataset(dataset: xr.Dataset, *, where: str = "describe_dataset") -> xr.Dataset:
    """A copy of ``dataset`` that describes itself by the CF conventions.

    Sets the global attribute ``Conventions`` to :data:`CONVENTIONS`; gives every variable
    (data variable or coordinate) whose name is in :data:`VOCABULARY` (or is
    ``forward_weights_k`` / ``biases_k``) the table's ``long_name`` and ``units``, replacing any
    the variable had (the table is authoritative for its names), and gives per-tau quantities
    the attribute ``tau_s`` where the Dataset states ``tau``. Other attributes (CF flags) are
    kept. Variables not in the table keep their own attributes. Applying it twice changes
    nothing.

    Parameters
    ----------
    dataset : xarray.Dataset
    where : str
        Name of the caller, for the error message.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ValidationError
        If a variable ends up without a ``long_name``, or with ``units`` that are not among
        :data:`UNITS`; the message names the variable.
    """
    described = dataset.copy(deep=False)
    tau_s = _tau_s(dataset)
    for name in list(described.variables):
        variable = described.variables[name]
        attrs = dict(variable.attrs)
        term = _term(str(name))
        if term is not None:
            attrs["long_name"] = term.long_name
            if term.units is None:
                attrs.pop("units", None)
            else:
                attrs["units"] = term.units
            if term.per_tau and tau_s is not None:
                attrs["tau_s"] = tau_s
        variable.attrs = attrs
        if not str(attrs.get("long_name", "")).strip():
            raise ValidationError(
                f"{where}: variable {str(name)!r} has no long_name; give it "
                "attrs['long_name'] (or add its name to fbsnn_brian.io.recording.VOCABULARY) so "
                "that "
                "nothing is written undescribed."
            )
        if "units" in attrs and attrs["units"] not in UNITS:
            raise ValidationError(
                f"{where}: variable {str(name)!r} has units {attrs['units']!r}; allowed: "
                f"{', '.join(repr(u) for u in UNITS)} (UDUNITS strings; dimensionless is '1')."
            )
    described.attrs = {**dataset.attrs, "Conventions": CONVENTIONS}
    return described


def write_dataset(dataset: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a Dataset to netCDF (``.nc``) or zarr (``.zarr``) without leaving a partial file.

    The data go to a temporary name in the same directory first and are renamed into place
    only when complete, so an interrupted write never leaves a half-written file under
    ``path``. What is written is :func:`describe_dataset` of ``dataset``: CF ``Conventions``
    and the vocabulary's ``long_name`` / ``units``.

    Raises
    ------
    ValidationError
        If the path has another suffix, or a variable has no ``long_name`` (none given and its
        name is not in :data:`VOCABULARY`) or has units outside :data:`UNITS`.
    """
    target = Path(path)
    suffix = target.suffix
    if suffix not in (".nc", ".zarr"):
        raise ValidationError(
            f"write_dataset: path must end in '.nc' (netCDF) or '.zarr', got {str(path)!r}."
        )
    dataset = describe_dataset(dataset, where="write_dataset")
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
