"""NeuronConstants and SampleSpikes: the shared inputs of the baseline learning rules.

Tolerances of 1e-15 to 1e-12 relative compare two evaluations of the same closed form (or a
time converted from seconds to units of tau): they cover floating-point rounding only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.rules.baselines import NeuronConstants, SampleSpikes


def test_constants_derived_quantities_by_hand() -> None:
    lif = NeuronConstants(tau_m=20.0, tau_syn=2.0, reset="rest", v_threshold=1.5)
    # one grid step of tau: lambda = exp(-1/20), a constant unit drive adds tau_m (1 - lambda)
    assert lif.grid_leak(1.0) == pytest.approx(math.exp(-0.05), rel=1e-15)
    assert lif.drive_per_bin(1.0) == pytest.approx(20.0 * (1.0 - math.exp(-0.05)), rel=1e-14)
    assert lif.synaptic_decay(1.0) == pytest.approx(math.exp(-0.5), rel=1e-15)
    # reset to rest: a spike consumes V_th; subtractive reset: theta
    assert lif.charge_per_spike == 1.5
    assert NeuronConstants().charge_per_spike == 2.0
    # IF: no leak, the drive adds exactly the bin width; no synaptic filter
    ideal = NeuronConstants()
    assert (ideal.grid_leak(0.5), ideal.drive_per_bin(0.5), ideal.synaptic_decay(0.5)) == (
        1.0,
        0.5,
        0.0,
    )
    # one spike per refractory period: 30 in 30 tau, 15 with a period of 2 tau
    assert ideal.max_count(30.0) == 30
    assert NeuronConstants(refractory=2.0).max_count(30.0) == 15


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reset": "hard"}, "NeuronConstants: reset must be one of 'subtract', 'rest', got 'hard'"),
        ({"reset": "Rest"}, "Did you mean 'rest'?"),
        ({"tau_m": 0.0}, "tau_m must be a finite number > 0 (units of tau) or math.inf"),
        ({"tau_m": -math.inf}, "tau_m must be a finite number > 0"),
        ({"tau_syn": -1.0}, "tau_syn must be a finite number >= 0, got -1.0"),
        ({"refractory": 0.0}, "refractory must be a finite number > 0, got 0.0"),
        ({"theta": math.nan}, "theta must be a finite number > 0, got nan"),
    ],
)
def test_constants_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        NeuronConstants(**kwargs)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_sample_spikes_counts_rates_and_bins_by_hand() -> None:
    spikes = SampleSpikes(
        times=(np.array([2.5, 0.0, 1.0, 3.999]), np.array([], dtype=float)),
        neurons=(np.array([1, 0, 1, 0]), np.array([], dtype=int)),
        layer_sizes=(2, 3),
        duration=4.0,
    )
    # sorted by time on construction
    np.testing.assert_array_equal(spikes.times[0], [0.0, 1.0, 2.5, 3.999])
    np.testing.assert_array_equal(spikes.neurons[0], [0, 1, 1, 0])
    counts = spikes.counts()
    np.testing.assert_array_equal(counts[0], [2, 2])
    np.testing.assert_array_equal(counts[1], [0, 0, 0])
    np.testing.assert_array_equal(spikes.rates()[0], [0.5, 0.5])
    # bins [0, 2) and [2, 4): neuron 0 fires once in each, neuron 1 once in each
    np.testing.assert_array_equal(spikes.binned(2.0)[0], [[1, 1], [1, 1]])
    # bins of width 1: the spike at 1.0 opens bin 1 (bins are closed on the left)
    np.testing.assert_array_equal(spikes.binned(1.0)[0], [[1, 0], [0, 1], [0, 1], [1, 0]])
    assert spikes.binned(1.0)[1].shape == (4, 3)
    with pytest.raises(ValidationError) as error:
        spikes.binned(3.0)
    assert "bin_width must divide the duration T = 4 tau into a whole number of steps" in str(
        error.value
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"times": (np.array([4.0]),)}, "times[0] must lie in [0, duration) = [0, 4)"),
        (
            {"neurons": (np.array([2]),)},
            "neurons[0] must be indices in [0, 1], got values in [2, 2]",
        ),
        ({"neurons": (np.array([0.5]),)}, "neurons[0] must hold integer neuron indices"),
        ({"layer_sizes": (0,)}, "layer_sizes must be a non-empty tuple of positive integers"),
        ({"times": (np.array([1.0]), np.array([2.0]))}, "times must be a tuple with one array"),
        ({"duration": -1.0}, "SampleSpikes: duration must be a finite number > 0, got -1.0"),
    ],
)
def test_sample_spikes_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "times": (np.array([1.0]),),
        "neurons": (np.array([0]),),
        "layer_sizes": (2,),
        "duration": 4.0,
    }
    arguments.update(kwargs)
    with pytest.raises(ValidationError) as error:
        SampleSpikes(**arguments)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_from_recording_gives_the_recorded_rates_in_units_of_tau() -> None:
    # tau = 2 ms: spike times must be divided by 2 ms, not by 1 ms
    net = FeedbackNetwork(n_inputs=3, layer_sizes=[4, 2], n_classes=2, seed=1, tau=2 * ms)
    inputs = np.array([[0.9, 0.2, 0.5], [0.1, 1.0, 0.7]])
    recording = simulate(
        net, Protocol([FreePhase(duration=40 * ms)]), inputs=inputs, device="numpy"
    )
    for sample in range(2):
        spikes = SampleSpikes.from_recording(recording, sample)
        assert spikes.duration == pytest.approx(20.0, rel=1e-12)
        assert spikes.layer_sizes == (4, 2)
        for rates, recorded in zip(spikes.rates(), recording.layer_rates(), strict=True):
            np.testing.assert_allclose(rates, recorded[sample], rtol=0, atol=1e-12)
        for times in spikes.times:
            assert times.size == 0 or (times.min() >= 0 and times.max() < 20.0)
    # the second sample's spikes are counted from its own start
    first = SampleSpikes.from_recording(recording, 1, layer_populations=["layer_1"])
    assert first.layer_sizes == (4,)
    with pytest.raises(ValidationError) as error:
        SampleSpikes.from_recording(recording, 2)
    assert "sample must be an integer index in [0, 1], got 2" in str(error.value)
    with pytest.raises(ValidationError) as error:
        SampleSpikes.from_recording(recording, 0, layer_populations=["layer_9"])
    assert "layer_populations must name populations of the recording" in str(error.value)
    # a wrong time unit puts spikes outside the window: the counts no longer match the rates
    with pytest.raises(ValidationError) as error:
        SampleSpikes.from_recording(recording, 0, tau=4 * ms)
    assert "the spike events of population 'layer_1' in sample 0 do not match" in str(error.value)
