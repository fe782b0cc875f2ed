"""The free phase in Brian2 reaches the reference fixed point.

The fixed point and the neurons that realise it are described in docs/algorithm.rst, sections
"The network and its fixed point" and "Neurons that realise the clamp".

Bounds are the acceptance criteria of the core issue: with T the free-phase length in units of
tau, a rate measured by counting spikes has a quantisation error of order 1/(2T) (modified
reset) plus the transient before the loop settles, so the mean error must fall as T grows.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.reference import fixed_point_batch

N_SAMPLES = 5


def free_rates(
    net: FeedbackNetwork,
    inputs: np.ndarray,
    duration_tau: float,
    device: str = "numpy",
    **kw: object,
) -> list[np.ndarray]:
    protocol = Protocol([FreePhase(duration=duration_tau * net.tau)])
    recording = simulate(net, protocol, inputs=inputs, device=device, **kw)  # type: ignore[arg-type]
    return recording.layer_rates()


def errors(net: FeedbackNetwork, inputs: np.ndarray, rates: list[np.ndarray]) -> np.ndarray:
    reference = fixed_point_batch(net.rate_model(), inputs)
    return np.concatenate([np.abs(a - r).ravel() for a, r in zip(rates, reference, strict=True)])


@pytest.fixture(scope="module")
def single_layer() -> FeedbackNetwork:
    return FeedbackNetwork(n_inputs=64, layer_sizes=[100], n_classes=10, seed=0)


def test_single_layer_meets_the_bounds_and_error_shrinks_with_duration(
    single_layer: FeedbackNetwork, digits_inputs: np.ndarray
) -> None:
    inputs = digits_inputs[:N_SAMPLES]
    mean_errors = []
    for duration in (10, 30, 100, 300):
        err = errors(single_layer, inputs, free_rates(single_layer, inputs, duration))
        mean_errors.append(err.mean())
        if duration == 30:
            assert err.mean() <= 0.02
        if duration == 300:
            assert err.mean() <= 0.003
            assert err.max() <= 0.02
    # strictly decreasing over a decade and a half of durations
    assert all(later < earlier for earlier, later in itertools.pairwise(mean_errors))


def test_three_layers_with_feedback_meet_the_bounds(digits_inputs: np.ndarray) -> None:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[60, 40, 30], n_classes=10, seed=1)
    inputs = digits_inputs[:N_SAMPLES]
    rates = free_rates(net, inputs, 300)
    err = errors(net, inputs, rates)
    assert err.mean() <= 0.003
    assert err.max() <= 0.02
    # every layer must carry signal, or the bound would be met trivially
    for layer in rates:
        assert 0.02 < layer.mean() < 0.98


def test_rates_saturate_at_one_spike_per_refractory_period(digits_inputs: np.ndarray) -> None:
    # A large bias drives every neuron far above theta: the clamp at 1 is the refractory cap.
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[10], n_classes=2, seed=0)
    net.biases = [np.full(10, 10.0)]
    (rates,) = free_rates(net, digits_inputs[:2], 40)
    np.testing.assert_allclose(rates, 1.0)


def test_spiking_input_coding_reaches_the_same_fixed_point(digits_inputs: np.ndarray) -> None:
    net = FeedbackNetwork(
        n_inputs=64, layer_sizes=[50], n_classes=10, seed=2, input_coding="spikes"
    )
    inputs = digits_inputs[:3]
    recording = simulate(
        net, Protocol([FreePhase(duration=300 * ms)]), inputs=inputs, device="numpy"
    )
    # input neurons fire at x per tau, counted with rounding: error <= 1/(2T)
    assert np.abs(recording.rates_of("input") - inputs).max() <= 1 / 600 + 1e-12
    err = errors(net, inputs, recording.layer_rates())
    assert err.mean() <= 0.003


def test_lif_rates_fall_below_the_if_clamp(digits_inputs: np.ndarray) -> None:
    # With a leak the membrane loses charge, so the rate of every active neuron is at most
    # the IF rate; with tau_m = 5 tau the loss must be visible on average.
    kwargs = {"n_inputs": 64, "layer_sizes": [40], "n_classes": 10, "seed": 3}
    inputs = digits_inputs[:3]
    (if_rates,) = free_rates(FeedbackNetwork(**kwargs), inputs, 100)  # type: ignore[arg-type]
    lif = FeedbackNetwork(neuron="lif", tau_m=5 * ms, **kwargs)  # type: ignore[arg-type]
    (lif_rates,) = free_rates(lif, inputs, 100)
    assert lif_rates.mean() < if_rates.mean() - 0.01


def test_one_run_holds_every_sample_and_samples_do_not_leak(
    single_layer: FeedbackNetwork, digits_inputs: np.ndarray
) -> None:
    # Sample order must not matter: membranes and counters are reset at each boundary.
    inputs = digits_inputs[:4]
    forward = free_rates(single_layer, inputs, 30)[0]
    backward = free_rates(single_layer, inputs[::-1].copy(), 30)[0]
    np.testing.assert_array_equal(forward, backward[::-1])
    # chunking into several runs gives the same rates as one run
    chunked = free_rates(single_layer, inputs, 30, chunk_size=3)[0]
    np.testing.assert_array_equal(forward, chunked)


@pytest.mark.slow
def test_cython_target_matches_numpy(digits_inputs: np.ndarray) -> None:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[30], n_classes=10, seed=4)
    inputs = digits_inputs[:3]
    numpy_rates = free_rates(net, inputs, 30, device="numpy")[0]
    cython_rates = free_rates(net, inputs, 30, device="cython")[0]
    assert np.abs(numpy_rates - cython_rates).max() <= 1 / 30


@pytest.mark.standalone
def test_cpp_standalone_agrees_with_runtime_and_reuses_its_binary(
    single_layer: FeedbackNetwork, digits_inputs: np.ndarray, tmp_path: object
) -> None:
    from fbsnn_brian.build.free_run import FreeRunSimulation

    inputs = digits_inputs[:5]
    protocol = Protocol([FreePhase(duration=30 * ms)])
    runtime = simulate(single_layer, protocol, inputs=inputs, device="numpy").layer_rates()[0]
    simulation = FreeRunSimulation(
        single_layer, protocol, device="cpp_standalone", chunk_size=2, directory=str(tmp_path)
    )
    compiled = simulation.run(inputs).layer_rates()[0]  # 3 chunks, the last one padded
    assert np.abs(runtime - compiled).max() <= 1 / 30
    # new weights through run_args, no recompilation: the rates follow the weights
    compile_time = simulation.compile_time_s
    original = single_layer.input_weights.copy()
    try:
        single_layer.input_weights = original * 0.5
        halved = simulation.run(inputs).layer_rates()[0]
        expected = simulate(single_layer, protocol, inputs=inputs, device="numpy").layer_rates()[0]
    finally:
        single_layer.input_weights = original
    assert simulation.compile_time_s == compile_time
    assert np.abs(halved - expected).max() <= 1 / 30
    assert np.abs(halved - compiled).max() > 0.05


def test_bad_protocol_input_is_named(
    single_layer: FeedbackNetwork, digits_inputs: np.ndarray
) -> None:
    protocol = Protocol([FreePhase(duration=30 * ms)])
    with pytest.raises(ValidationError, match=r"simulate: inputs must have shape \('any', 64\)"):
        simulate(single_layer, protocol, inputs=digits_inputs[:2, :10])
    bad = digits_inputs[:2].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValidationError, match="inputs must contain only finite values"):
        simulate(single_layer, protocol, inputs=bad)
    with pytest.raises(ValidationError, match="device must be one of .* got 'gpu'"):
        simulate(single_layer, protocol, inputs=digits_inputs[:2], device="gpu")
    with pytest.raises(ValidationError, match="chunk_size must be a positive integer, got 0"):
        simulate(single_layer, protocol, inputs=digits_inputs[:2], chunk_size=0)
    with pytest.raises(ValidationError, match="duration must be a Brian2 time quantity"):
        FreePhase(duration=30)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="duration must be a positive, finite time"):
        FreePhase(duration=-5 * ms)
    with pytest.raises(ValidationError, match="whole, positive number of integration steps"):
        protocol_odd = Protocol([FreePhase(duration=30.1 * ms)])
        simulate(single_layer, protocol_odd, inputs=digits_inputs[:2])
    with pytest.raises(ValidationError, match="Protocol: phases must be a non-empty list"):
        Protocol([])
