"""Figures from the toolkit's xarray outputs (matplotlib, the ``plot`` extra).

Each function draws one figure, saves it to ``path`` (any format matplotlib knows, chosen by
the suffix) and returns the Figure, so that a notebook can restyle it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import xarray as xr

from fbsnn_brian import reference as ref
from fbsnn_brian.analysis import measures as analysis
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = ["plot_conditions", "plot_learning_curves", "plot_raster", "plot_rate_convergence"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValidationError(
            "plotting needs matplotlib: pip install 'fbsnn_brian[plot]'."
        ) from None
    return plt


def _save(figure: Any, path: str | os.PathLike[str]) -> Any:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return figure


def plot_raster(recording: xr.Dataset, path: str | os.PathLike[str], *, sample: int = 0) -> Any:
    """Raster of every population's spikes in one sample (time in tau since its start).

    A recording of both phases (:meth:`TrainingSimulation.record
    <fbsnn_brian.build.training.TrainingSimulation.record>`) shows the forward spikes of the
    free phase and the error units' +delta and -delta events of the perturbed phase, with the
    phase boundary marked.
    """
    plt = _pyplot()
    names = recording["population"].attrs["flag_meanings"].split()
    figure, axes = plt.subplots(figsize=(8, 4.5))
    offset = 0
    for name in names:
        neurons, times = analysis.population_spikes(recording, sample, name)
        axes.scatter(times, neurons + offset, s=2, label=name)
        offset += int(np.sum(recording["unit_population"].values == name))
    phases = [str(p) for p in recording["phase_name"].values]
    if len(phases) > 1:
        tau_s = float(recording.attrs["tau_s"])
        durations = json.loads(str(recording.attrs["protocol"]))["phases"]
        bounds = np.cumsum([phase["duration_s"] / tau_s for phase in durations])
        starts = np.concatenate([[0.0], bounds[:-1]])
        for start, end, phase in zip(starts, bounds, phases, strict=True):
            if start > 0:
                axes.axvline(start, color="black", linestyle="--", linewidth=0.8)
            axes.text((start + end) / 2, offset * 1.02, f"{phase} phase", ha="center")
    axes.set_xlabel("time since sample onset (tau)")
    axes.set_ylabel("neuron")
    axes.set_title(f"spikes and events of sample {sample}", pad=18)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=4)
    figure.tight_layout()
    return _save(figure, path)


def plot_rate_convergence(
    recording: xr.Dataset,
    network: FeedbackNetwork,
    path: str | os.PathLike[str],
    *,
    sample: int = 0,
    layer: int = 1,
) -> Any:
    """Mean |running rate - a*| of a layer over the free phase, on log axes."""
    plt = _pyplot()
    rates = analysis.running_rates(recording, sample, layer=layer)
    offset = int(sum(network.layer_sizes[: layer - 1]))
    size = network.layer_sizes[layer - 1]
    inputs = recording["inputs"].values[sample]
    fixed = np.concatenate(ref.fixed_point(network.rate_model(), inputs))
    target = fixed[offset : offset + size]
    deviation = np.mean(np.abs(rates.values - target[None, :]), axis=1)
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.loglog(rates["time_tau"].values, deviation, label="simulation")
    times = rates["time_tau"].values
    axes.loglog(times, 0.5 / times, "--", label="1/(2T) quantisation")
    axes.set_xlabel("time (tau)")
    axes.set_ylabel(f"mean |a(t) - a*|, layer {layer}")
    axes.set_title(f"convergence to the fixed point, sample {sample}")
    axes.legend()
    return _save(figure, path)


def plot_learning_curves(history: xr.Dataset, path: str | os.PathLike[str]) -> Any:
    """Training and test accuracy per epoch, and the mean firing rates of both phases."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = history["epoch"].values
    left.plot(epochs, 100 * history["train_accuracy"].values, label="train")
    if not np.all(np.isnan(history["test_accuracy"].values)):
        left.plot(epochs, 100 * history["test_accuracy"].values, label="test")
    left.set_xlabel("epoch")
    left.set_ylabel("accuracy (%)")
    left.legend()
    right.plot(epochs, history["forward_rate"].values, label="free phase (spikes)")
    right.plot(epochs, history["backward_rate"].values, label="perturbed phase (error events)")
    right.set_xlabel("epoch")
    right.set_ylabel("mean rate (1/tau)")
    right.legend()
    return _save(figure, path)


def plot_conditions(sweep: xr.Dataset, path: str | os.PathLike[str]) -> Any:
    """Accuracy, sparsity and gradient alignment per condition of a sweep.

    Bars are means over seeds with their standard deviation. The alignment panel (the cosine
    of each condition's spike-computed update with the exact IDE gradient) is drawn when the
    sweep measured it.
    """
    plt = _pyplot()
    conditions = [str(c) for c in sweep["condition"].values]
    positions = np.arange(len(conditions))

    def stats(measure: str) -> tuple[Any, Any]:
        values = sweep[measure].values
        counts = np.sum(np.isfinite(values), axis=1)
        pairs = list(zip(values, counts, strict=True))
        means = np.array([np.nanmean(v) if n else np.nan for v, n in pairs])
        spreads = np.array([np.nanstd(v, ddof=1) if n > 1 else 0.0 for v, n in pairs])
        return means, spreads

    aligned = "gradient_cosine_vs_ide" in sweep
    figure, panels = plt.subplots(1, 3 if aligned else 2, figsize=(15 if aligned else 10, 4.8))
    left, right = panels[0], panels[1]
    accuracy, spread = stats("test_accuracy")
    left.bar(positions, 100 * accuracy, yerr=100 * spread, capsize=3)
    left.set_ylabel("test accuracy (%)")
    finite = accuracy[np.isfinite(accuracy)]
    if finite.size:
        left.set_ylim(max(0.0, 100 * finite.min() - 10), 100)
    width = 0.4
    forward, forward_spread = stats("mean_forward_rate")
    backward, backward_spread = stats("mean_backward_rate")
    right.bar(positions - width / 2, forward, width, yerr=forward_spread, capsize=3, label="free")
    right.bar(
        positions + width / 2, backward, width, yerr=backward_spread, capsize=3, label="perturbed"
    )
    right.set_ylabel("mean rate (events / neuron / tau)")
    right.legend()
    if aligned:
        cosine, cosine_spread = stats("gradient_cosine_vs_ide")
        panels[2].bar(positions, cosine, yerr=cosine_spread, capsize=3, color="tab:green")
        panels[2].set_ylabel("cosine(update, exact IDE gradient)")
        panels[2].set_ylim(
            min(0.0, float(np.nanmin(cosine)) - 0.05) if np.isfinite(cosine).any() else 0.0, 1.0
        )
    for axes in panels:
        axes.set_xticks(positions)
        axes.set_xticklabels(conditions, rotation=45, ha="right", fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
