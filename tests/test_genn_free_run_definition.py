"""The GeNN free-phase network, run on Brian2's runtime device, equals the runtime build.

:class:`~fbsnn_brian.build.devices.genn_free_run.GeNNFreeRun` restates the free phase within
brian2genn's rules (one clock, a summed drive instead of a linked one, brian2genn's schedule
with gated deliveries). :meth:`GeNNFreeRun.run_on_runtime` runs exactly that definition on the
runtime device, so these tests need neither brian2genn nor GeNN and belong to the main suite:
they catch a change to the shared definition that makes the GeNN network compute something else.
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, second

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, SpikeRecording
from fbsnn_brian.build.devices.genn_free_run import GeNNFreeRun
from fbsnn_brian.build.free_run import FreeRunSimulation

FREE_PHASE = Protocol([FreePhase(duration=20 * ms)])  # T_f = 20 tau (tau = 1 ms)


def spike_events(recording: SpikeRecording, population: str, dt_s: float) -> set[tuple[int, int]]:
    """(step, neuron) of every spike of a population."""
    times = recording.spike_times[population]
    neurons = recording.spike_neurons[population]
    return set(zip(np.rint(times / dt_s).astype(int).tolist(), neurons.tolist(), strict=True))


@pytest.mark.parametrize(("input_coding", "neuron"), [("current", "if"), ("spikes", "lif")])
def test_genn_free_phase_definition_equals_the_runtime_build_spike_for_spike(
    digits_inputs: np.ndarray, input_coding: str, neuron: str
) -> None:
    # two layers, so the forward and the feedback Synapses are both exercised
    network = FeedbackNetwork(
        n_inputs=64,
        layer_sizes=[12, 8],
        n_classes=10,
        seed=1,
        input_coding=input_coding,
        neuron=neuron,
    )
    inputs = digits_inputs[:3]

    restated = GeNNFreeRun(network, FREE_PHASE).run_on_runtime(inputs)
    runtime = FreeRunSimulation(network, FREE_PHASE, device="numpy").run(inputs)

    # Tolerance: none. Both run in float64 and integrate the same values at every step: the
    # drive F x arrives in the same step, and the gated on_pre makes brian2genn's schedule
    # deliver exactly the spikes that Brian2's default schedule delivers (module docstring of
    # fbsnn_brian.build.devices.genn_free_run). Only the association of two additions into v
    # may differ (rounding of order 1e-16), which moves a spike only if a membrane lands within
    # that distance of the threshold; with these fixed weights and inputs none does.
    dt_s = float(network.dt / second)
    assert [p.name for p in restated.populations] == [p.name for p in runtime.populations]
    for population in runtime.rates:
        assert spike_events(restated, population, dt_s) == spike_events(
            runtime, population, dt_s
        ), population
        np.testing.assert_array_equal(restated.rates[population], runtime.rates[population])
    assert sum(len(times) for times in runtime.spike_times.values()) > 100  # not silent
    np.testing.assert_array_equal(restated.readout, runtime.readout)
    assert restated.to_xarray().attrs["device"] == "numpy (brian2genn schedule)"
