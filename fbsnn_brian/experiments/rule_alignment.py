"""How well a learning rule's update aligns with the exact gradients, at one network state.

:func:`rule_alignment` compares each sample's update of a rule with the exact IDE gradient of
the ideal rate model at the same free-phase rates (recorded rules: from the recorded spikes;
SPIDE: its in-simulation update). :func:`alignment_measures` adds the comparison of the
rule's update, averaged over the samples, with the ground truth of the network the rule runs
on (:func:`fbsnn_brian.experiments.alignment.ground_truth`: the measured rate model's IDE
gradient and finite differences of the simulated loss). Every cosine is taken over the hidden
parameters (F, W, W_fb, b): the readout's update is the same exact outer product for every
rule, so it is left out.

:func:`fbsnn_brian.experiments.comparison.compare_rules` measures these at the initial and
at the trained weights of every rule and seed; ``fbsnn train`` measures them for one run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian import reference
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.experiments.alignment import (
    alignment_cosines,
    ground_truth,
    hidden_cosine,
    hidden_vector,
)
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.learning_rules import LearningRule

__all__ = ["FINITE_DIFFERENCE_TAU", "alignment_measures", "rule_alignment"]

FloatArray = NDArray[np.float64]

#: Free phase (in tau) of each finite-difference evaluation of the ground truth.
FINITE_DIFFERENCE_TAU = 300.0


def rule_alignment(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    inputs: FloatArray,
    labels: NDArray[np.int64],
    *,
    device: str = "numpy",
) -> dict[str, Any]:
    """Per-sample cosine of a rule's update with the exact IDE gradient at the same rates.

    Recorded rules: the rule's gradient of each sample's recorded free phase against
    :func:`~fbsnn_brian.reference.ide_gradients_at_rates` at that sample's rates. SPIDE: the
    in-simulation update (:func:`fbsnn_brian.experiments.checks.gradient_alignment`).

    Parameters
    ----------
    rule : LearningRule
        The rule whose update is measured.
    network : FeedbackNetwork
        The network the rule runs on, at the weights to measure; not changed.
    protocol : Protocol
        Its free phase is simulated (recorded rules) or the whole protocol runs (SPIDE).
    inputs : ndarray, shape (n_samples, n_inputs)
        The samples.
    labels : ndarray of int64, shape (n_samples,)
        Their class labels.
    device : str
        Device of the free-phase simulation (a key of the device registry).

    Returns
    -------
    dict
        ``cosine_vs_ide`` (mean over the samples with a finite cosine),
        ``per_sample_cosine_vs_ide``, ``n_samples`` and ``mean_hidden_update`` (the rule's
        update of the hidden parameters, averaged over the samples).
    """
    if rule.in_simulation:
        from fbsnn_brian.experiments.checks import gradient_alignment

        return gradient_alignment(network, protocol, inputs, labels, device=device)
    recording = simulate(network, Protocol([protocol.free_phase]), inputs=inputs, device=device)
    model = network.rate_model()
    cosines, updates = [], []
    for k in range(len(inputs)):
        spikes = SampleSpikes.from_recording(recording, k)
        estimate = rule.gradients(network, spikes, inputs[k], int(labels[k]))
        updates.append(hidden_vector(estimate, model.n_layers))
        rates = spikes.rates()
        exact = reference.ide_gradients_at_rates(
            model,
            inputs[k],
            rates,
            int(labels[k]),
            gates=reference.gates_from_rates(rates, ceiling=network.max_rate),
        )
        cosines.append(hidden_cosine(estimate, exact))
    finite = [c for c in cosines if np.isfinite(c)]
    return {
        "cosine_vs_ide": float(np.mean(finite)) if finite else float("nan"),
        "per_sample_cosine_vs_ide": cosines,
        "n_samples": len(cosines),
        "mean_hidden_update": np.mean(updates, axis=0),
    }


def alignment_measures(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    inputs: FloatArray,
    labels: NDArray[np.int64],
    device: str,
    *,
    directions: int = 16,
    ground_truth_device: str = "cpp_standalone",
) -> dict[str, float]:
    """Every alignment measure of one (rule, seed, state): the one place that computes them.

    Each key becomes a variable over (``rule``, ``seed``, ``state``) of the comparison (it
    needs an entry in :data:`fbsnn_brian.io.netcdf.VOCABULARY`).

    Parameters
    ----------
    rule, network, protocol, inputs, labels, device
        As for :func:`rule_alignment`.
    directions : int, default 16
        Random directions of the finite differences of the ground truth (0: the ideal IDE's
        cosine only).
    ground_truth_device : str, default 'cpp_standalone'
        Device of the finite-difference simulations of the ground truth.

    Returns
    -------
    dict of str to float
        ``cosine_vs_ide``: mean over the samples of the cosine between the rule's update and
        the exact IDE gradient of the ideal rate model at the same free-phase rates, over the
        hidden parameters (:func:`rule_alignment`). Against the ground truth of the network
        the rule runs on (:func:`fbsnn_brian.experiments.alignment.ground_truth`, ``directions``
        random directions of finite differences over a free phase of 300 tau on
        ``ground_truth_device``), the rule's update averaged over the samples:
        ``cosine_vs_measured_ide``, ``cosine_vs_finite_difference`` and
        ``measured_ide_vs_finite_difference`` (NaN with ``directions`` 0).
    """
    ideal = rule_alignment(rule, network, protocol, inputs, labels, device=device)
    result = {"cosine_vs_ide": float(ideal["cosine_vs_ide"])}
    names = (
        "cosine_vs_measured_ide",
        "cosine_vs_finite_difference",
        "measured_ide_vs_finite_difference",
    )
    if directions == 0:
        return {**result, **dict.fromkeys(names, float("nan"))}
    truth = ground_truth(
        network,
        protocol,
        inputs,
        labels,
        n_directions=directions,
        duration_tau=FINITE_DIFFERENCE_TAU,
        device=ground_truth_device,
        seed=0,
    )
    cosines = alignment_cosines(ideal["mean_hidden_update"], truth)
    return {**result, **{name: float(cosines[name]) for name in names}}
