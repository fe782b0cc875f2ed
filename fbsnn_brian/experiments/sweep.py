"""Sweeps: conditions x seeds as independent training runs on Dask (``fbsnn sweep FILE``).

A sweep file is a run file (:mod:`fbsnn_brian.experiments.run_file`) with a ``[sweep]`` table::

    [data]
    dataset = "digits"
    [training]
    epochs = 5

    [sweep]
    seeds = [0, 1, 2]                  # default [0, 1, 2]; fbsnn sweep --seeds N: 0 .. N-1
    [[sweep.conditions]]
    name = "ideal"                     # the base settings unchanged; the reference condition
    [[sweep.conditions]]
    name = "lif"
    neuron = "lif"                     # any field of fbsnn_brian.experiments.settings.RunSettings
    [[sweep.conditions]]
    name = "no_weight_transport"
    feedback = "random"

Every (condition, seed) pair is one :func:`fbsnn_brian.experiments.runs.train_run` task on a
dask.distributed cluster: a LocalCluster of worker processes by default, or the scheduler at
``scheduler`` (``tcp://host:port``). A task that fails is retried once; if it fails again its
error is recorded in the result instead of ending the sweep. The result is one xarray Dataset
over (``condition``, ``seed``) with the accuracy, speed, firing rates and loop gain of each run,
a ``status`` (``ok`` / ``failed``) and the ``error`` text, and per condition the test
accuracy's mean and standard deviation over the seeds that finished and the paired 95 %
interval of its difference to the reference condition (the file's first), paired seed by
seed (:func:`condition_summary`). It is described by the CF conventions
(:func:`fbsnn_brian.io.recording.describe_dataset`: accuracies are fractions, rates in spikes per
tau with ``tau_s``); it round-trips through netCDF and zarr. Builds of the compiled devices
are shared through the build cache, which is safe for concurrent processes
(:mod:`fbsnn_brian.build.devices.standalone`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from fbsnn_brian.analysis.statistics import mean_sd, paired_interval
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.run_file import SECTIONS, read_toml, settings_from_tables

# Imported with this module (Brian2 included), not inside the task: a Dask worker unpickles the
# task in its main thread but runs it in another, and Brian2 installs a SIGINT handler when it
# is first imported, which only the main thread may do.
from fbsnn_brian.experiments.runs import train_run
from fbsnn_brian.io.netcdf import describe_dataset
from fbsnn_brian.validation import describe

__all__ = ["DEFAULT_SEEDS", "MEASURES", "condition_summary", "load_sweep_file", "run_sweep"]

#: Seeds of a sweep file that names none.
DEFAULT_SEEDS = (0, 1, 2)

#: Confidence level of the paired intervals of :func:`condition_summary`.
INTERVAL_LEVEL = 0.95

# metrics of each run kept in the sweep Dataset
MEASURES = (
    "test_accuracy",
    "train_accuracy",
    "samples_per_s",
    "mean_forward_rate",
    "mean_backward_rate",
    "loop_gain",
    "gradient_cosine_vs_ide",
    "gradient_cosine_vs_measured_ide",
    "gradient_cosine_vs_finite_difference",
    "gradient_measured_ide_vs_finite_difference",
    "wall_time_s",
)

_SETTINGS = {key: kind for table in SECTIONS.values() for key, kind in table.items()}


def load_sweep_file(path: str | os.PathLike[str], *, n_seeds: int | None = None) -> dict[str, Any]:
    """Read a sweep file: ``{'base': settings, 'conditions': {name: overrides}, 'seeds': [...]}``.

    Parameters
    ----------
    path : path
        The TOML sweep file.
    n_seeds : int, optional
        Run seeds 0 .. n_seeds - 1 instead of the file's ``[sweep] seeds`` (default: the
        file's, or :data:`DEFAULT_SEEDS` when it names none).

    Raises
    ------
    ValidationError
        For any problem of the run-file part, a missing or malformed ``[sweep]`` table, an
        unknown setting in a condition or a duplicated condition name (each with its key path),
        or an ``n_seeds`` that is not a positive integer.
    """
    if n_seeds is not None and (
        isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1
    ):
        raise ValidationError(
            f"load_sweep_file: n_seeds (fbsnn sweep --seeds) must be a positive integer, got "
            f"{describe(n_seeds)}."
        )
    document = read_toml(path, "sweep file")
    where = f"sweep file {str(path)!r}"
    sweep = document.pop("sweep", None)
    if not isinstance(sweep, dict):
        raise ValidationError(f"{where}: needs a [sweep] table with seeds and conditions.")
    base = settings_from_tables(document, where)
    seeds = sweep.get("seeds", list(DEFAULT_SEEDS))
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValidationError(
            f"{where}: [sweep].seeds must be a list of distinct non-negative integers, got "
            f"{describe(seeds)}."
        )
    conditions: dict[str, dict[str, Any]] = {}
    entries = sweep.get("conditions", [{"name": "base"}])
    if not isinstance(entries, list) or not entries:
        raise ValidationError(f"{where}: [[sweep.conditions]] must list at least one condition.")
    for k, entry in enumerate(entries):
        path_k = f"{where}: [[sweep.conditions]] #{k + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValidationError(f"{path_k} needs a name (a string), got {describe(entry)}.")
        name = entry["name"]
        if name in conditions:
            raise ValidationError(f"{path_k}: the name {name!r} is used twice.")
        overrides = {key: value for key, value in entry.items() if key != "name"}
        unknown = sorted(set(overrides) - set(_SETTINGS) - {"seed"})
        if unknown:
            raise ValidationError(
                f"{path_k} ({name!r}): unknown settings {unknown}; allowed: "
                f"{', '.join(sorted(_SETTINGS))}."
            )
        conditions[name] = overrides
    if n_seeds is not None:
        seeds = list(range(n_seeds))
    return {"base": base, "conditions": conditions, "seeds": seeds}


def _train_task(config: dict[str, Any]) -> dict[str, Any]:
    """One run on a worker, in a temporary run directory; returns its metrics."""
    with tempfile.TemporaryDirectory(prefix="fbsnn_sweep_run_") as directory:
        metrics = train_run(config, Path(directory) / "run", progress=False)
    return {key: metrics[key] for key in MEASURES if key in metrics}


def condition_summary(sweep: xr.Dataset, measure: str = "test_accuracy") -> xr.Dataset:
    """Per condition: mean and sd of ``measure``, and its paired interval to the reference.

    The reference condition is the first one of the sweep. Means and standard deviations
    (:func:`~fbsnn_brian.analysis.statistics.mean_sd`) are over the seeds at which the
    condition finished (NaN if none did); the difference to the reference and its
    :data:`INTERVAL_LEVEL` paired t interval
    (:func:`~fbsnn_brian.analysis.statistics.paired_interval`) are over the seeds at which both
    finished (interval NaN with fewer than two such seeds).

    Parameters
    ----------
    sweep : xarray.Dataset
        Over (``condition``, ``seed``), as :func:`run_sweep` returns it.
    measure : str
        The variable summarised (default ``test_accuracy``).

    Returns
    -------
    xarray.Dataset
        Over ``condition``: ``{measure}_mean``, ``{measure}_sd``, ``{measure}_difference``,
        ``{measure}_difference_low``, ``{measure}_difference_high`` and ``n_paired_seeds``;
        attributes ``reference_condition`` and ``interval_level``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> sweep = xr.Dataset(
    ...     {"test_accuracy": (("condition", "seed"), [[0.9, 0.92, 0.91], [0.8, np.nan, 0.85]])},
    ...     coords={"condition": ["ideal", "lif"], "seed": [0, 1, 2]},
    ... )
    >>> summary = condition_summary(sweep)
    >>> [round(float(v), 3) for v in summary["test_accuracy_difference"].values]
    [0.0, -0.08]
    >>> summary["n_paired_seeds"].values.tolist()
    [3, 2]
    """
    values = np.asarray(sweep[measure].values, dtype=np.float64)
    reference = values[0]
    rows = []
    for row in values:
        finished = np.isfinite(row)
        paired = finished & np.isfinite(reference)
        mean, sd = mean_sd(row[finished]) if finished.any() else (np.nan, np.nan)
        interval = (
            paired_interval(row[paired], reference[paired], level=INTERVAL_LEVEL)
            if paired.any()
            else {"difference": np.nan, "low": np.nan, "high": np.nan, "n_seeds": 0}
        )
        rows.append(
            (
                mean,
                sd,
                interval["difference"],
                interval["low"],
                interval["high"],
                interval["n_seeds"],
            )
        )
    columns = list(zip(*rows, strict=True))
    names = ("mean", "sd", "difference", "difference_low", "difference_high")
    data: dict[str, Any] = {
        f"{measure}_{name}": ("condition", np.asarray(column, dtype=np.float64))
        for name, column in zip(names, columns, strict=False)
    }
    data["n_paired_seeds"] = ("condition", np.asarray(columns[-1], dtype=np.int64))
    return xr.Dataset(
        data,
        coords={"condition": sweep["condition"].values},
        attrs={
            "reference_condition": str(sweep["condition"].values[0]),
            "interval_level": INTERVAL_LEVEL,
        },
    )


def run_sweep(
    spec: dict[str, Any], *, scheduler: str | None = None, n_workers: int = 2
) -> xr.Dataset:
    """Run every (condition, seed) of a sweep spec (:func:`load_sweep_file`) on Dask.

    Parameters
    ----------
    spec : dict
        ``base`` settings, ``conditions`` (name -> overrides) and ``seeds``.
    scheduler : str, optional
        Address of a running dask scheduler; by default a LocalCluster is started.
    n_workers : int
        Worker processes of the LocalCluster (one thread each).
    """
    from dask.distributed import Client, LocalCluster, wait

    names = list(spec["conditions"])
    seeds = list(spec["seeds"])
    configs = {
        (name, seed): {**spec["base"], **spec["conditions"][name], "seed": seed}
        for name in names
        for seed in seeds
    }
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else scheduler)
    try:
        futures = {
            key: client.submit(_train_task, config, retries=1, pure=False)
            for key, config in configs.items()
        }
        wait(list(futures.values()))
        results = {}
        for key, future in futures.items():
            if future.status == "finished":
                results[key] = (future.result(), "ok", "")
            else:
                error = future.exception()
                results[key] = ({}, "failed", f"{type(error).__name__}: {error}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    shape = (len(names), len(seeds))
    data: dict[str, Any] = {}
    for measure in MEASURES:
        values = np.full(shape, np.nan)
        for (name, seed), (metrics, _, _) in results.items():
            if measure in metrics:
                values[names.index(name), seeds.index(seed)] = metrics[measure]
        data[measure] = (("condition", "seed"), values)
    status = np.empty(shape, dtype=object)
    error = np.empty(shape, dtype=object)
    for (name, seed), (_, state, message) in results.items():
        status[names.index(name), seeds.index(seed)] = state
        error[names.index(name), seeds.index(seed)] = message
    data["status"] = (("condition", "seed"), status.astype(str))
    data["error"] = (("condition", "seed"), error.astype(str))
    result = xr.Dataset(data, coords={"condition": names, "seed": seeds})
    summary = condition_summary(result)
    result = result.merge(summary, combine_attrs="drop")
    result.attrs.update(
        {
            "title": "fbsnn_brian sweep",
            "base": json.dumps(spec["base"], sort_keys=True),
            "conditions": json.dumps(spec["conditions"], sort_keys=True),
            "scheduler": scheduler or "LocalCluster",
            # fbsnn_brian.experiments.runs.network_from_settings builds every run's network with
            # tau = 1 ms
            "tau_s": 1e-3,
            **summary.attrs,
        }
    )
    return describe_dataset(result, where="run_sweep")
