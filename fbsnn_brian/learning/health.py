"""Numerical health of a training run, checked after every chunk."""

from __future__ import annotations

import math

import numpy as np

from fbsnn_brian.build.training import ChunkStatistics
from fbsnn_brian.errors import NumericalError
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.plasticity import SPIDEPlasticity

__all__ = ["SATURATED_FRACTION", "check_health"]

# a layer whose mean free-phase rate reaches this fraction of one spike per refractory period
# fires at the clamp everywhere
SATURATED_FRACTION = 0.999


def check_health(
    network: FeedbackNetwork, plasticity: SPIDEPlasticity, epoch: int, stats: ChunkStatistics
) -> None:
    """Stop on NaN/inf weights, a silent or saturated layer, or a loop gain >= 1.

    Raised before the chunk's checkpoint is written, so the checkpoint on disk is the
    last good state.
    """
    where = f"during epoch {epoch + 1}"
    if not all(np.all(np.isfinite(w)) for w in network.weight_arrays().values()):
        raise NumericalError(
            f"Trainer: weights became NaN or infinite {where}; lower the learning rate "
            f"({plasticity.learning_rate}) or the scale ({plasticity.scale})."
        )
    refractory = float(network.refractory / network.tau)
    ceiling = 1.0 / refractory if refractory > 0 else math.inf  # spikes per tau
    for k, rate in enumerate(stats.layer_forward_rates):
        if rate == 0:
            raise NumericalError(
                f"Trainer: layer {k + 1} did not spike for a whole chunk of "
                f"{stats.n_samples} samples {where}; no error can reach its synapses. "
                "Lower the learning rate or the weight decay, or initialise with larger "
                "input weights or positive biases."
            )
        if rate >= SATURATED_FRACTION * ceiling:
            raise NumericalError(
                f"Trainer: every neuron of layer {k + 1} fired at the maximum rate for a "
                f"whole chunk {where} (mean rate {rate:.3f} per tau); the gate 1[0 < a < 1] "
                "is closed everywhere. Lower the learning rate or the input weights."
            )
    gain = network.loop_gain()
    if not gain < 1:
        raise NumericalError(
            f"Trainer: the feedback loop gain is {gain:.3f} {where}, so the loop is no longer "
            "a contraction; lower max_feedback_gain or the learning rate."
        )
