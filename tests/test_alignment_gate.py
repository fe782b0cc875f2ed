"""The reference gate follows the actual clamp: a neuron at tau / t_ref passes no error."""

from __future__ import annotations

import numpy as np
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.experiments.checks import gradient_alignment
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.reference import gates_from_rates


def test_gates_close_at_the_ceiling_given() -> None:
    rates = (np.array([0.0, 0.25, 0.5, 0.5 - 1e-3, 1.0]),)
    np.testing.assert_array_equal(gates_from_rates(rates)[0], [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(gates_from_rates(rates, ceiling=0.5)[0], [0, 1, 0, 1, 0])


def test_a_long_refractory_period_keeps_spide_aligned_with_the_exact_gradient(
    digits_inputs: np.ndarray, digits_labels: np.ndarray
) -> None:
    # t_ref = 2 tau halves the clamp: saturated neurons fire at 0.5 per tau. SPIDE's own gate
    # (count < T_f / t_ref) shuts them; the reference must too. With the ideal network's gate
    # (a < 1) they pass error in the reference only, and the cosine falls to about 0.7-0.8.
    network = FeedbackNetwork(
        n_inputs=64, layer_sizes=[32], n_classes=10, refractory=2 * ms, seed=0
    )
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.04),
    )
    result = gradient_alignment(network, protocol, digits_inputs[:3], digits_labels[:3])
    assert result["cosine_vs_ide"] > 0.97, result
