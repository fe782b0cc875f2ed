"""Figures from the toolkit's xarray outputs (matplotlib, the ``plot`` extra).

Each function draws one figure, saves it to ``path`` (any format matplotlib knows, chosen by
the suffix) and returns the Figure, so that a notebook can restyle it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from fbsnn_brian import analysis
from fbsnn_brian import reference as ref
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model import FeedbackNetwork

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
    """Raster of every population's spikes in one sample (time in tau since its start)."""
    plt = _pyplot()
    names = recording["population"].attrs["flag_meanings"].split()
    figure, axes = plt.subplots(figsize=(7, 4))
    offset = 0
    for name in names:
        neurons, times = analysis.population_spikes(recording, sample, name)
        axes.scatter(times, neurons + offset, s=2, label=name)
        offset += int(np.sum(recording["unit_population"].values == name))
    axes.set_xlabel("time since sample onset (tau)")
    axes.set_ylabel("neuron")
    axes.set_title(f"spikes of sample {sample}")
    axes.legend(loc="upper right", markerscale=4)
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
    """Accuracy and sparsity per condition of a sweep (mean and standard deviation over seeds)."""
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

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
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
    for axes in (left, right):
        axes.set_xticks(positions)
        axes.set_xticklabels(conditions, rotation=20, ha="right")
    return _save(figure, path)
