"""The SPIDE paper's claims, as measured in a sweep (``analysis/claims_table.py``).

:func:`claims_table` turns the Dataset of :func:`fbsnn_brian.experiments.sweep.run_sweep` into a
Markdown table with one row per claim and one column per condition, each cell holding the
measured evidence (mean ± standard deviation over the seeds that finished, by
:mod:`fbsnn_brian.analysis.statistics`):

* *spike-only computation*: test accuracy reached with spikes in both phases (the readout
  o = C a + d is the only non-spiking part, as in the paper);
* *the condition's cost*: the test-accuracy difference of every condition to the reference
  condition (the sweep's first) with its paired 95 % t interval over the seeds at which both
  finished (:func:`fbsnn_brian.experiments.sweep.condition_summary`);
* *locality*: whether the backward path reuses the forward weights (weight transport) or is
  fixed and random, and whether the feedback loop W_fb is learned or removed (``no_feedback``:
  zero and frozen);
* *memory independent of time*: bytes per synapse and per neuron the rule keeps, which do not
  depend on the phase lengths (:func:`fbsnn_brian.analysis.measures.rule_memory`);
* *few time steps*: tau and simulation steps (of the condition's ``dt``) per sample;
* *sparse firing*: mean spikes per neuron and tau in the free phase and error events in the
  perturbed phase (1 is the ceiling);
* the loop gain of the trained feedback, which says how much of the network is recurrent.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from fbsnn_brian.analysis.measures import rule_memory
from fbsnn_brian.analysis.statistics import format_interval, format_mean_sd
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.runs import DEFAULTS, network_from_settings
from fbsnn_brian.experiments.settings import RunSettings
from fbsnn_brian.experiments.sweep import condition_summary

__all__ = ["claims_table"]


def _mean_sd(values: Any, scale: float = 1.0, digits: int = 2) -> str:
    """``'mean ± sd'`` over the finite values (the seeds that finished), else ``'failed'``."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return "failed"
    return format_mean_sd(finite, scale=scale, digits=digits)


def _differences(sweep: xr.Dataset) -> list[str]:
    """Each condition's paired test-accuracy difference to the reference, in points."""
    summary = condition_summary(sweep)
    cells = []
    for k, condition in enumerate(summary["condition"].values):
        row = summary.sel(condition=condition)
        if k == 0:
            cells.append("reference")
        elif int(row["n_paired_seeds"]) == 0:
            cells.append("failed")
        else:
            interval = {
                "difference": float(row["test_accuracy_difference"]),
                "low": float(row["test_accuracy_difference_low"]),
                "high": float(row["test_accuracy_difference_high"]),
            }
            cells.append(format_interval(interval, scale=100.0))
    return cells


def claims_table(sweep: xr.Dataset) -> str:
    """Markdown table of the claims (rows) against the sweep's conditions (columns)."""
    base = {**DEFAULTS, **json.loads(str(sweep.attrs["base"]))}
    overrides = json.loads(str(sweep.attrs["conditions"]))
    conditions = [str(c) for c in sweep["condition"].values]
    reference = conditions[0]

    def cell(condition: str, measure: str, scale: float = 1.0, digits: int = 2) -> str:
        return _mean_sd(sweep[measure].sel(condition=condition).values, scale, digits)

    settings_of = {c: {**base, **overrides[c]} for c in conditions}
    rows: dict[str, list[str]] = {
        "spike-only computation: test accuracy (%)": [
            cell(c, "test_accuracy", 100.0) for c in conditions
        ],
        f"test accuracy change vs {reference}, paired 95 % interval (points)": _differences(sweep),
        "locality: backward weights": [
            "random, fixed" if settings_of[c]["feedback"] == "random" else "transpose"
            for c in conditions
        ],
        "feedback loop W_fb": [
            "zero, frozen" if settings_of[c].get("no_feedback") else "learned" for c in conditions
        ],
    }
    for measure, text in (
        ("gradient_cosine_vs_ide", "the ideal IF model's IDE gradient"),
        ("gradient_cosine_vs_measured_ide", "the measured rate model's IDE gradient"),
        ("gradient_cosine_vs_finite_difference", "finite differences of the simulated network"),
    ):
        if measure in sweep and bool(np.isfinite(sweep[measure]).any()):
            rows[f"learning signal: cosine of the update with {text} (trained)"] = [
                cell(c, measure, digits=3) for c in conditions
            ]
    memory, steps = [], []
    for c in conditions:
        settings = settings_of[c]
        # bytes per synapse and per neuron do not depend on the input and class counts
        try:
            network = network_from_settings(RunSettings.from_values(settings), 64, 10)
        except ValidationError:
            memory.append("failed")  # the condition's settings are invalid
        else:
            usage = rule_memory(network, momentum=float(settings["momentum"]) > 0)
            memory.append(
                f"{usage['bytes_per_synapse']} B/synapse, {usage['bytes_per_neuron']} B/neuron"
            )
        total_tau = float(settings["free_tau"]) + float(settings["perturbed_tau"])
        steps.append(f"{total_tau:.0f} tau = {round(total_tau / float(settings['dt']))} steps")
    rows["memory independent of time"] = memory
    rows["few time steps (per sample)"] = steps
    rows["sparse firing: free phase (spikes / neuron / tau)"] = [
        cell(c, "mean_forward_rate", digits=3) for c in conditions
    ]
    rows["sparse firing: perturbed phase (events / neuron / tau)"] = [
        cell(c, "mean_backward_rate", digits=3) for c in conditions
    ]
    rows["loop gain of the trained feedback"] = [cell(c, "loop_gain", digits=3) for c in conditions]
    seeds = [str(int(s)) for s in sweep["seed"].values]
    failed = int((sweep["status"] == "failed").sum())
    header = "| claim | " + " | ".join(conditions) + " |"
    rule = "|---|" + "---|" * len(conditions)
    lines = [header, rule] + [f"| {claim} | " + " | ".join(v) + " |" for claim, v in rows.items()]
    notes = (
        f"\nMean ± standard deviation over the seeds that finished of seeds {', '.join(seeds)}; "
        f"{failed} failed runs. Changes vs {reference}: mean of the per-seed differences with "
        "the paired 95 % t interval over the seeds at which both finished (none with one seed)."
    )
    return "\n".join(lines) + "\n" + notes + "\n"
