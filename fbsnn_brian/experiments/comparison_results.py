"""The results of ``fbsnn compare``: network states, summaries over seeds, the Markdown table.

:func:`fbsnn_brian.experiments.comparison.compare_rules` returns an xarray Dataset over
``rule``, ``seed`` and ``state`` (:data:`STATES`). :func:`with_summaries` adds, per rule, the
mean and sample sd of the test accuracy over the seeds and the paired 95 % t interval of its
difference to the accuracy of :data:`REFERENCE_RULE` with the same seed
(:mod:`fbsnn_brian.analysis.statistics`). :func:`comparison_table` prints such a Dataset as a
Markdown table, one row per rule, with notes that say what each column measures; it also
re-renders a Dataset read back from disk (``analysis/comparison_table.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from fbsnn_brian.analysis.statistics import (
    format_interval,
    format_mean_sd,
    mean_sd,
    paired_interval,
)

__all__ = ["REFERENCE_RULE", "STATES", "comparison_table", "with_summaries"]

#: The network states at which the alignment is measured.
STATES = ("initial", "trained")

#: The rule every other rule's test accuracy is compared with, seed by seed.
REFERENCE_RULE = "spide"

#: The cosines of the table: with the ideal IDE at the same rates, and with the ground truth.
_COSINES = (
    "cosine_vs_ide",
    "cosine_vs_measured_ide",
    "cosine_vs_finite_difference",
    "measured_ide_vs_finite_difference",
)


def with_summaries(result: xr.Dataset) -> xr.Dataset:
    """Add each rule's mean and sd of the test accuracy over seeds and its paired interval.

    Parameters
    ----------
    result : xarray.Dataset
        The comparison's Dataset, with ``test_accuracy`` over ``rule`` and ``seed``.

    Returns
    -------
    xarray.Dataset
        ``result`` with, over ``rule``: ``test_accuracy_mean``, ``test_accuracy_sd`` (sample
        sd over the seeds) and ``test_accuracy_difference_to_spide`` with its ``_low`` and
        ``_high`` paired 95 % t interval against :data:`REFERENCE_RULE` (NaN when that rule
        was not compared).
    """
    accuracy = result["test_accuracy"]
    names = [str(name) for name in result["rule"].values]
    summaries: dict[str, list[float]] = {}
    for name in names:
        mean, sd = mean_sd(accuracy.sel(rule=name).values)
        interval = (
            paired_interval(
                accuracy.sel(rule=name).values, accuracy.sel(rule=REFERENCE_RULE).values
            )
            if REFERENCE_RULE in names
            else {"difference": np.nan, "low": np.nan, "high": np.nan}
        )
        for key, value in (
            ("test_accuracy_mean", mean),
            ("test_accuracy_sd", sd),
            ("test_accuracy_difference_to_spide", interval["difference"]),
            ("test_accuracy_difference_to_spide_low", interval["low"]),
            ("test_accuracy_difference_to_spide_high", interval["high"]),
        ):
            summaries.setdefault(key, []).append(float(value))
    return result.assign({key: ("rule", np.asarray(v)) for key, v in summaries.items()})


def _kib(value: Any) -> str:
    return f"{float(value) / 1024:.1f} KiB"


def comparison_table(result: xr.Dataset) -> str:
    """Markdown table of :func:`compare_rules`' Dataset, one row per rule.

    Accuracies are mean ± sd over the seeds in %, the difference to SPIDE is the mean
    per-seed difference in percentage points with its paired 95 % t interval, and the
    samples/s and cosines (initial / trained) are mean ± sd over the seeds.
    """
    header = (
        "| rule | test accuracy (%) | difference to SPIDE (pp, 95 % interval) | "
        "training samples/s | cosine with ideal IDE | cosine with measured IDE | "
        "cosine with finite differences | measured IDE vs finite differences | "
        "algebraically IDE | local | weight transport | memory per sample (T_f) | "
        "memory per sample (2 T_f) |"
    )
    rows = [header, "|" + "---|" * 13]
    for name in result["rule"].values:
        entry = result.sel(rule=name)
        difference = {
            key: float(entry[f"test_accuracy_difference_to_spide{suffix}"])
            for key, suffix in (("difference", ""), ("low", "_low"), ("high", "_high"))
        }
        compared = (
            "reference"
            if name == REFERENCE_RULE
            else "n/a"
            if np.isnan(difference["difference"])
            else format_interval(difference, scale=100)
        )
        cosines = [
            " / ".join(
                "n/a"
                if not np.isfinite(entry[measure].sel(state=state).values).any()
                else format_mean_sd(entry[measure].sel(state=state).values, digits=3)
                for state in STATES
            )
            for measure in _COSINES
        ]
        rows.append(
            f"| {name} | {format_mean_sd(entry['test_accuracy'].values, scale=100)} | "
            f"{compared} | {format_mean_sd(entry['samples_per_s'].values, digits=0)} | "
            + "".join(f"{cell} | " for cell in cosines)
            + " | ".join(
                "yes" if bool(entry[key]) else "no"
                for key in ("algebraically_ide", "local", "weight_transport")
            )
            + f" | {_kib(entry['memory_bytes_per_sample'])} | "
            f"{_kib(entry['memory_bytes_per_sample_double_phase'])} |"
        )
    return "\n".join(rows) + "\n" + _table_notes(result)


def _table_notes(result: xr.Dataset) -> str:
    """The notes under the table: data, seeds, what each column measures, each rule's network."""
    seeds = [int(seed) for seed in result["seed"].values]
    epochs = int(result.attrs["epochs"])
    networks = "; ".join(
        f"{name}: {entry} (free phase {float(tau):g} tau)"
        for name, entry, tau in zip(
            result["rule"].values,
            result["rule_network"].values,
            result["free_phase_tau"].values,
            strict=True,
        )
    )
    return (
        f"\n{result.attrs['regime']} regime. {int(result.attrs['n_train'])} training and "
        f"{int(result.attrs['n_test'])} test samples, {epochs} epoch{'' if epochs == 1 else 's'}, "
        f"seeds {', '.join(map(str, seeds))} (the same initial weights and shuffling for every "
        "rule); the test set is evaluated once, after training. Networks: "
        f"{networks}. Cosines over the hidden parameters, each as initial / trained weights, "
        f"on {int(result.attrs['alignment_samples'])} training samples: with the exact IDE "
        "gradient of the ideal rate model at the same rates (mean over the samples), and, for "
        "the rule's update averaged over the samples, with the ground truth of the network the "
        "rule runs on (fbsnn_brian.experiments.alignment: the measured rate model's IDE "
        "gradient and finite differences of the simulated loss), and how the two ground "
        "truths agree. Memory per sample: bytes of one sample's state while the rule forms "
        "its update (recorded rules: the raster and the peak of their numpy work; SPIDE: its "
        "per-sample state variables in the Brian2 training network), on the first seed's "
        "initial network.\n"
    )
