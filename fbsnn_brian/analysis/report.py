"""``fbsnn report RUN_DIR``: figures and a short Markdown report of a training run.

Reads the files ``fbsnn train`` wrote (metrics.json, history.nc, recording.nc, weights.nc) and
writes into ``RUN_DIR/report/``: ``learning_curves.png``, ``raster.png`` (first recorded test
sample), ``raster_both_phases.png`` (forward spikes and error events of a test sample across
the free and perturbed phases, when the run recorded them), ``convergence.png`` (its running
rates against the exact fixed point) and
``report.md`` (configuration, accuracy, firing rates, equilibrium error and time to
equilibrium, synaptic operations and the energy estimate, the memory the rule needs, the loop
gain).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from fbsnn_brian.analysis import measures as analysis
from fbsnn_brian.analysis import plotting
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.netcdf import read_dataset
from fbsnn_brian.io.weights import weights_from_xarray

__all__ = ["write_report"]

_NEEDED = ("metrics.json", "history.nc", "recording.nc", "weights.nc")


def write_report(
    run_dir: str | os.PathLike[str], *, settings: Collection[str] | None = None
) -> dict[str, Any]:
    """Write ``RUN_DIR/report/`` and return the numbers it reports.

    ``settings`` names the settings of the run's configuration that the report lists (``fbsnn
    report``: those :func:`fbsnn_brian.experiments.settings.reported_settings` marks); default:
    every key of the run's ``config.json``.
    """
    directory = Path(run_dir)
    missing = [name for name in _NEEDED if not (directory / name).is_file()]
    if missing:
        raise ValidationError(
            f"fbsnn report: {str(run_dir)!r} is not a finished run directory (missing "
            f"{', '.join(missing)}); give the --out directory of `fbsnn train`."
        )
    metrics = json.loads((directory / "metrics.json").read_text())
    history = read_dataset(directory / "history.nc")
    recording = read_dataset(directory / "recording.nc")
    network = weights_from_xarray(read_dataset(directory / "weights.nc"))
    out = directory / "report"
    out.mkdir(exist_ok=True)

    plotting.plot_learning_curves(history, out / "learning_curves.png")
    plotting.plot_raster(recording, out / "raster.png", sample=0)
    plotting.plot_rate_convergence(recording, network, out / "convergence.png", sample=0)
    both_phases = directory / "learning_recording.nc"
    perturbed_rates: dict[str, float] = {}
    perturbed_operations = math.nan
    if both_phases.is_file():
        learning = read_dataset(both_phases)
        plotting.plot_raster(learning, out / "raster_both_phases.png", sample=0)
        learning_rates = analysis.firing_rates(learning)
        perturbed_rates = {
            str(p): float(learning_rates.sel(population=p, phase_name="perturbed"))
            for p in learning_rates["population"].values
            if "error" in str(p)
        }
        by_phase = analysis.synaptic_operations(learning, network)["operations_per_sample_by_phase"]
        perturbed_operations = by_phase["perturbed"]

    errors = analysis.equilibrium_error(recording, network).values
    times = [
        analysis.time_to_equilibrium(recording, network, k, epsilon=0.05)
        for k in range(recording.sizes["sample_index"])
    ]
    rates = analysis.firing_rates(recording)
    operations = analysis.synaptic_operations(recording, network)
    momentum = float(metrics["config"].get("momentum", 0.0)) > 0
    memory = analysis.rule_memory(network, momentum=momentum)
    numbers: dict[str, Any] = {
        "test_accuracy": metrics["test_accuracy"],
        "train_accuracy": metrics["train_accuracy"],
        "samples_per_s": metrics["samples_per_s"],
        "mean_equilibrium_error": float(np.mean(errors)),
        "mean_time_to_equilibrium_tau": (
            float(np.nanmean(times)) if not all(math.isnan(t) for t in times) else math.nan
        ),
        "free_phase_rate_per_population": {
            str(p): float(rates.sel(population=p, phase_name="free"))
            for p in rates["population"].values
        },
        "last_epoch_forward_rate": float(history["forward_rate"].values[-1]),
        "last_epoch_backward_rate": float(history["backward_rate"].values[-1]),
        **operations,
        **{f"memory_{k}": v for k, v in memory.items()},
        "loop_gain": network.loop_gain(),
        "perturbed_phase_event_rate_per_population": perturbed_rates,
        "perturbed_phase_operations_per_sample": perturbed_operations,
        **{
            key: metrics.get(key, math.nan)
            for key in (
                "gradient_cosine_vs_ide",
                "gradient_cosine_vs_measured_ide",
                "gradient_cosine_vs_finite_difference",
                "gradient_measured_ide_vs_finite_difference",
            )
        },
    }
    (out / "report.md").write_text(_markdown(metrics, numbers, settings))
    numbers["report_dir"] = str(out)
    return numbers


def _markdown(
    metrics: dict[str, Any], numbers: dict[str, Any], settings: Collection[str] | None
) -> str:
    config = metrics["config"]
    rows = "\n".join(
        f"| {key} | {value} |"
        for key, value in sorted(config.items())
        if settings is None or key in settings
    )
    population_rates = ", ".join(
        f"{name} {rate:.3f}" for name, rate in numbers["free_phase_rate_per_population"].items()
    )
    perturbed = (
        ", ".join(
            f"{name} {rate:.3f}"
            for name, rate in numbers["perturbed_phase_event_rate_per_population"].items()
        )
        or "not recorded"
    )
    both_phases = (
        "\n![both phases](raster_both_phases.png)\n"
        if numbers["perturbed_phase_event_rate_per_population"]
        else ""
    )
    return f"""# Training run report

## Configuration

| setting | value |
|---|---|
{rows}

## Accuracy

- test accuracy: {100 * numbers["test_accuracy"]:.2f} % ({metrics["n_test"]} samples)
- training accuracy: {100 * numbers["train_accuracy"]:.2f} % ({metrics["n_train"]} samples)
- training speed: {numbers["samples_per_s"]:.1f} samples/s

![learning curves](learning_curves.png)

## Firing and equilibrium (free phase of the recorded test samples)

- mean rate per population: {population_rates} spikes per tau
- mean rates in the last epoch: free phase {numbers["last_epoch_forward_rate"]:.3f}, perturbed
  phase (error events) {numbers["last_epoch_backward_rate"]:.3f} per tau
- mean |a - a*| against the exact fixed point: {numbers["mean_equilibrium_error"]:.4f}
- time until the running rates of layer 1 stay within 0.05 of a*:
  {numbers["mean_time_to_equilibrium_tau"]:.1f} tau (mean over samples)
- loop gain ||W_fb||_2 / theta (product bound): {numbers["loop_gain"]:.3f}

![raster](raster.png)
![convergence](convergence.png)

## Learning signal

- cosine of the spike-computed update with the exact IDE gradient at the same rates (hidden
  parameters, mean over test samples): {numbers["gradient_cosine_vs_ide"]:.4f}
- against the ground truth of the simulated network (mean update; NaN unless the run was
  trained with `alignment_directions` > 0): measured rate model's IDE
  {numbers["gradient_cosine_vs_measured_ide"]:.4f}, finite differences
  {numbers["gradient_cosine_vs_finite_difference"]:.4f} (the two ground truths agree at
  {numbers["gradient_measured_ide_vs_finite_difference"]:.4f})
- error events in the perturbed phase per population: {perturbed} per tau
{both_phases}

## Cost

- synaptic operations per sample, free phase: {numbers["synaptic_operations_per_sample"]:.0f};
  perturbed phase (error events through the transposed weights, recorded test samples):
  {numbers["perturbed_phase_operations_per_sample"]:.0f}
- energy estimate: {numbers["energy_per_sample_nj"]:.2f} nJ per sample at
  {numbers["energy_per_operation_pj"]} pJ per operation (32-bit add, 45 nm; Horowitz, ISSCC 2014)
- memory the rule needs: {numbers["memory_bytes_per_synapse"]} bytes per synapse,
  {numbers["memory_bytes_per_neuron"]} bytes per neuron, {numbers["memory_total_bytes"]} bytes in
  all; it does not grow with the phase lengths
"""
