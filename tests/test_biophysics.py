"""Biophysical switches: each one changes the dynamics the way its equations say.

Rates are counted over a phase of T tau, so a rate has a quantisation error of at most
1/(2T) (modified reset) or 1/T (reset to rest); bounds below are built from these.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.io.recording import SpikeRecording
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.reference import fixed_point_batch


def run(net: FeedbackNetwork, inputs: np.ndarray, duration_tau: float) -> SpikeRecording:
    protocol = Protocol([FreePhase(duration=duration_tau * net.tau)])
    return simulate(net, protocol, inputs=inputs, device="numpy")


def two_layers(biophysics: Biophysics | None = None, **kwargs: object) -> FeedbackNetwork:
    return FeedbackNetwork(
        n_inputs=64,
        layer_sizes=[30, 20],
        n_classes=10,
        seed=4,
        biophysics=biophysics,
        **kwargs,  # type: ignore[arg-type]
    )


def first_spike(recording: SpikeRecording, population: str) -> float:
    """Time of the first spike of a population in the first sample, in seconds."""
    times = recording.spike_times[population][recording.spike_samples[population] == 0]
    return float(times.min())


def isolated_neurons(size: int, bias: float, biophysics: Biophysics) -> FeedbackNetwork:
    """A layer of identical, unconnected neurons driven by the bias alone."""
    net = FeedbackNetwork(
        n_inputs=1, layer_sizes=[size], n_classes=2, seed=0, biophysics=biophysics
    )
    net.input_weights = np.zeros((size, 1))
    net.feedback_weights = np.zeros((size, size))
    net.biases = [np.full(size, bias)]
    return net


def test_exponential_synapse_keeps_the_fixed_point_and_delays_the_response(
    digits_inputs: np.ndarray,
) -> None:
    inputs = digits_inputs[:3]
    duration = 300
    ideal, smooth = two_layers(), two_layers(Biophysics(synapse="exponential", tau_syn=2 * ms))
    reference = fixed_point_batch(ideal.rate_model(), inputs)
    smooth_recording = run(smooth, inputs, duration)
    # each spike still delivers the charge w (Euler's geometric decay sums to exactly w), so
    # the rates reach the fixed point: within the quantisation 1/(2T) plus the charge still in
    # flight at the end, about tau_syn / T of a rate <= 1 (a charge off by the 13 % of
    # exponential Euler would put rates near 0.3 off by about 0.04)
    for rates, expected in zip(smooth_recording.layer_rates(), reference, strict=True):
        assert np.abs(rates - expected).mean() <= 1 / (2 * duration) + 2 / duration
    # ... but the charge arrives over tau_syn: layer 2, driven only by layer 1, fires later
    ideal_recording = run(ideal, inputs, duration)
    assert first_spike(smooth_recording, "layer_2") > first_spike(ideal_recording, "layer_2")
    assert first_spike(smooth_recording, "layer_1") == first_spike(ideal_recording, "layer_1")


def test_conductance_synapse_tends_to_the_current_synapse_and_weakens_near_reversal(
    digits_inputs: np.ndarray,
) -> None:
    inputs = digits_inputs[:3]
    current = run(two_layers(Biophysics(synapse="exponential")), inputs, 60).layer_rates()
    # far reversal potentials: the driving force is 1 everywhere, the two models coincide
    far = Biophysics(synapse="conductance", e_excitatory=1e9, e_inhibitory=-1e9)
    far_rates = run(two_layers(far), inputs, 60).layer_rates()
    for first, second in zip(current, far_rates, strict=True):
        np.testing.assert_allclose(first, second, atol=1e-12)
    # an excitatory reversal potential at threshold: excitation fades as v rises (with the
    # reset to rest v stays in [0, 1), so the mean driving force is well below 1), and the
    # excitation-driven rate of layer 2 must fall
    near = Biophysics(synapse="conductance", e_excitatory=1.0, reset="rest")
    near_current = Biophysics(synapse="exponential", reset="rest")
    near_rates = run(two_layers(near), inputs, 60).layer_rates()[1]
    current_rest = run(two_layers(near_current), inputs, 60).layer_rates()[1]
    assert near_rates.mean() < 0.8 * current_rest.mean()


def test_homogeneous_delay_shifts_the_first_spike_of_the_next_layer(
    digits_inputs: np.ndarray,
) -> None:
    inputs = digits_inputs[:2]
    ideal = run(two_layers(), inputs, 30)
    delayed = run(two_layers(Biophysics(delay=3 * ms)), inputs, 30)
    # layer 1 fires first, before any feedback has arrived: unchanged
    assert first_spike(delayed, "layer_1") == first_spike(ideal, "layer_1")
    # layer 2 (bias 0) integrates nothing until layer 1's spikes arrive: its whole input
    # history, and so its first spike, moves by exactly the delay (up to float rounding)
    shift = first_spike(delayed, "layer_2") - first_spike(ideal, "layer_2")
    assert shift == pytest.approx(3e-3, abs=1e-9)


def test_heterogeneous_delays_shift_within_their_spread_and_keep_the_fixed_point(
    digits_inputs: np.ndarray,
) -> None:
    inputs = digits_inputs[:3]
    duration = 200
    ideal = two_layers()
    ideal_recording = run(ideal, inputs, duration)
    net = two_layers(Biophysics(delay=3 * ms, delay_spread=2 * ms))
    recording = run(net, inputs, duration)
    shift = first_spike(recording, "layer_2") - first_spike(ideal_recording, "layer_2")
    assert 1e-3 - 1e-9 <= shift <= 5e-3 + 1e-9
    # a delay only postpones charge: the rates still reach the fixed point; the loop settles
    # later, which costs at most the delay's share of the phase (5 tau of 200) on top of 1/(2T)
    reference = fixed_point_batch(ideal.rate_model(), inputs)
    for rates, expected in zip(recording.layer_rates(), reference, strict=True):
        assert np.abs(rates - expected).mean() <= 1 / (2 * duration) + 5 / duration


@pytest.mark.parametrize("refractory_tau", [0.5, 2.0])
def test_refractory_period_sets_the_clamp(refractory_tau: float) -> None:
    # a bias far above theta saturates every neuron: one spike per refractory period, so
    # the clamp of the fixed point is tau / t_ref instead of 1
    biophysics = Biophysics()
    net = isolated_neurons(5, 20.0, biophysics)
    net = FeedbackNetwork.from_config({**net.config(), "refractory_s": refractory_tau * 1e-3})
    net.input_weights = np.zeros((5, 1))
    net.feedback_weights = np.zeros((5, 5))
    net.biases = [np.full(5, 20.0)]
    (rates,) = run(net, np.zeros((2, 1)), 40).layer_rates()
    np.testing.assert_allclose(rates, 1 / refractory_tau)


def test_reset_to_rest_loses_the_charge_of_the_refractory_clamp() -> None:
    # bias z = 0.5 per tau, dt = tau/4: 8 steps from rest to threshold, then the membrane is
    # clamped for t_ref = tau; one period is 1/z + 1 = 3 tau, so the rate is 1/3 per tau
    # (the subtractive reset would give z / theta = 0.25). Allowed error: one count in T,
    # plus one step (tau/4) either way per period for where the clamp ends on the grid.
    duration = 60
    rest = isolated_neurons(4, 0.5, Biophysics(reset="rest"))
    (rates,) = run(rest, np.zeros((1, 1)), duration).layer_rates()
    assert np.all(rates >= 1 / 3.25 - 1 / duration)
    assert np.all(rates <= 1 / 2.75 + 1 / duration)
    subtract = isolated_neurons(4, 0.5, Biophysics())
    (ideal_rates,) = run(subtract, np.zeros((1, 1)), duration).layer_rates()
    np.testing.assert_allclose(ideal_rates, 0.25, atol=1 / (2 * duration))


def test_white_noise_spreads_the_rates_by_its_amplitude() -> None:
    # Unconnected IF neurons with bias z: the count is (z T + W_T - v_T) / theta with W_T the
    # integrated noise, N(0, sigma^2 T / tau). So the mean rate stays z / theta and the spread
    # across neurons is sigma / (theta sqrt(T/tau)) = 0.05 here; the end membrane v_T adds a
    # uniform error of width theta (std 1/(sqrt(12) T) = 0.003). With 400 neurons the sample
    # std is within 10 % of its value with probability > 0.99 (relative sd 1/sqrt(2n) = 3.5 %).
    sigma, duration, size = 1.0, 100, 400
    net = isolated_neurons(size, 0.8, Biophysics(noise_sigma=sigma))
    (rates,) = run(net, np.zeros((1, 1)), duration).layer_rates()
    expected = math.hypot(sigma / (2 * math.sqrt(duration)), 1 / (math.sqrt(12) * duration))
    assert rates.std() == pytest.approx(expected, rel=0.1)
    # the mean moves by at most 4 standard errors
    assert abs(rates.mean() - 0.4) <= 4 * expected / math.sqrt(size)


def test_ornstein_uhlenbeck_noise_has_the_variance_of_its_integral() -> None:
    # I_noise starts at 0 and relaxes with noise_tau; its integral over T has variance
    # 2 sigma^2 tn (T - 2 tn (1 - e^(-T/tn)) + tn/2 (1 - e^(-2T/tn))) (times in tau units),
    # which divided by theta^2 T^2 is the variance of the rate (plus the v_T term as above).
    sigma, noise_tau, duration, size = 0.5, 2.0, 100, 400
    net = isolated_neurons(size, 0.8, Biophysics(noise_sigma=sigma, noise_tau=noise_tau * ms))
    (rates,) = run(net, np.zeros((1, 1)), duration).layer_rates()
    decay = math.exp(-duration / noise_tau)
    integral_variance = (
        2
        * sigma**2
        * noise_tau
        * (
            duration
            - 2 * noise_tau * (1 - decay)
            + noise_tau / 2 * (1 - math.exp(-2 * duration / noise_tau))
        )
    )
    expected = math.sqrt(integral_variance / (2 * duration) ** 2 + 1 / (12 * duration**2))
    assert rates.std() == pytest.approx(expected, rel=0.1)


def test_dale_law_signs_hold_at_initialisation_and_are_enforced() -> None:
    net = two_layers(Biophysics(excitatory_fraction=0.75))
    signs = net.presynaptic_signs(0)
    assert int((signs > 0).sum()) == round(0.75 * 30)
    assert np.all(net.forward_weights[0] * signs[None, :] >= 0)
    assert np.all(net.feedback_weights * net.presynaptic_signs(1)[None, :] >= 0)
    # inhibitory columns are scaled up so that the expected input is balanced
    weights = net.forward_weights[0]
    assert abs(weights.sum()) < 0.2 * np.abs(weights).sum()
    flipped = net.forward_weights[0].copy()
    flipped[0, 0] = -abs(flipped[0, 0]) - 0.1  # neuron 0 of layer 1 is excitatory
    with pytest.raises(ValidationError, match="forward_weights\\[0\\] breaks Dale's law in 1"):
        net.forward_weights = [flipped]


def test_dale_law_holds_after_training(digits_inputs: np.ndarray) -> None:
    from fbsnn_brian.io.datasets import load_digits

    data = load_digits()
    net = FeedbackNetwork(
        n_inputs=64,
        layer_sizes=[24],
        n_classes=10,
        seed=0,
        biophysics=Biophysics(excitatory_fraction=0.8),
    )
    before = net.feedback_weights.copy()
    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        # a large step makes sign flips likely without the projection
        plasticity=SPIDEPlasticity(learning_rate=0.5, scale=4),
    )
    Trainer(net, protocol, device="numpy", progress=False, chunk_size=40).fit(
        data.inputs[:40], data.labels[:40], epochs=1
    )
    signs = net.presynaptic_signs(0)
    assert not np.array_equal(net.feedback_weights, before)
    assert np.all(net.feedback_weights * signs[None, :] >= 0)
    # the projection put some weights exactly at zero (they would have crossed)
    assert np.any(net.feedback_weights == 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"synapse": "alpha"}, "synapse must be one of 'instantaneous', 'exponential'"),
        ({"tau_syn": 2.0}, "tau_syn must be a Brian2 time quantity such as 2*ms, got 2.0"),
        ({"delay": -1 * ms}, "delay must be a finite time >= 0"),
        ({"delay": 1 * ms, "delay_spread": 2 * ms}, "delay_spread must not exceed delay"),
        ({"e_inhibitory": 1.0}, "e_inhibitory must be a finite negative number"),
        ({"noise_sigma": -0.1}, "noise_sigma"),
        ({"excitatory_fraction": 1.5}, "excitatory_fraction must be in (0, 1] or None, got 1.5"),
        ({"reset": "zero"}, "reset must be one of 'subtract', 'rest'"),
    ],
)
def test_bad_switches_are_refused_with_their_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Biophysics(**kwargs)  # type: ignore[arg-type]


def test_switches_that_do_not_fit_the_time_grid_are_refused() -> None:
    with pytest.raises(ValidationError, match="must divide biophysics.delay"):
        two_layers(Biophysics(delay=0.1 * ms))
    with pytest.raises(ValidationError, match="tau_syn must be at least dt"):
        two_layers(Biophysics(synapse="exponential", tau_syn=0.1 * ms))
    with pytest.raises(ValidationError, match="reset='rest' clamps the membrane"):
        two_layers(Biophysics(reset="rest"), refractory=0 * ms)


def test_switches_survive_save_and_load(tmp_path: object) -> None:
    from pathlib import Path

    bio = Biophysics(synapse="conductance", delay=1 * ms, noise_sigma=0.1, noise_tau=3 * ms)
    net = two_layers(bio)
    path = net.save(Path(str(tmp_path)) / "net.npz")
    assert FeedbackNetwork.load(path).biophysics == bio


@pytest.mark.standalone
def test_cpp_standalone_runs_the_switches_as_runtime_does(tmp_path: object) -> None:
    # Deterministic switches (exponential synapses, heterogeneous delays, reset to rest,
    # Dale's law) train to the same weights in the compiled binary as in runtime mode.
    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.io.datasets import load_digits

    digits = load_digits()
    inputs, labels = digits.inputs[:4], digits.labels[:4]
    biophysics = Biophysics(
        synapse="exponential",
        tau_syn=2 * ms,
        delay=1 * ms,
        delay_spread=0.5 * ms,
        reset="rest",
        excitatory_fraction=0.8,
    )
    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0),
    )

    def network() -> FeedbackNetwork:
        return FeedbackNetwork(
            n_inputs=64, layer_sizes=[12, 8], n_classes=10, seed=2, biophysics=biophysics
        )

    runtime, compiled = network(), network()
    apply_after = np.ones(4, dtype=bool)
    TrainingSimulation(runtime, protocol, device="numpy").train_chunk(
        inputs, labels, 0.05, apply_after
    )
    TrainingSimulation(
        compiled, protocol, device="cpp_standalone", chunk_size=4, directory=str(tmp_path)
    ).train_chunk(inputs, labels, 0.05, apply_after)
    for name in ("input_weights", "feedback_weights", "readout_weights"):
        np.testing.assert_allclose(getattr(compiled, name), getattr(runtime, name), atol=1e-9)
    np.testing.assert_allclose(compiled.forward_weights[0], runtime.forward_weights[0], atol=1e-9)
    assert np.abs(compiled.feedback_weights - network().feedback_weights).max() > 1e-4

    # noise is drawn by the binary's own generator: identical neurons spread out
    noisy = isolated_neurons(50, 0.8, Biophysics(noise_sigma=1.0))
    protocol = Protocol([FreePhase(duration=100 * ms)])
    (rates,) = simulate(
        noisy, protocol, inputs=np.zeros((1, 1)), device="cpp_standalone"
    ).layer_rates()
    # expected spread 0.05 (see the white-noise test); a quarter of it rules out "no noise"
    assert rates.std() > 0.0125


def test_exponential_rate_estimate_weights_recent_spikes(digits_inputs: np.ndarray) -> None:
    # A regular train reads its rate under both estimates (the weights' normaliser is the
    # integral of the kernel): an isolated IF neuron with z = 0.5 fires every 4 tau.
    duration, tau_m = 40, 10.0
    regular = isolated_neurons(3, 0.5, Biophysics())
    weighted = FeedbackNetwork.from_config(
        {**regular.config(), "rate_estimate": "exponential", "tau_m_s": tau_m * 1e-3}
    )
    weighted.set_weight_arrays(regular.weight_arrays())
    (average,) = run(regular, np.zeros((1, 1)), duration).layer_rates()
    (exponential,) = run(weighted, np.zeros((1, 1)), duration).layer_rates()
    np.testing.assert_allclose(average, 0.25, atol=1 / (2 * duration))
    # a spike train sampled every 4 tau against the kernel's integral: the discrete sum of
    # exp(-(T - t_k)/tau_m) over the 10 spikes, computed here from their times
    recording = run(weighted, np.zeros((1, 1)), duration)
    times = recording.spike_times["layer_1"][recording.spike_neurons["layer_1"] == 0] / 1e-3
    expected = np.exp(-(duration - times) / tau_m).sum() / (tau_m * -np.expm1(-duration / tau_m))
    np.testing.assert_allclose(exponential[0, 0], expected, rtol=1e-12)
    assert abs(exponential[0, 0] - 0.25) < 0.05  # still the rate, within the phase of the train
    # the estimate decides the readout and the learning signal too: a LIF network trains
    lif = FeedbackNetwork(
        n_inputs=64,
        layer_sizes=[16],
        n_classes=10,
        neuron="lif",
        tau_m=10 * ms,
        rate_estimate="exponential",
        seed=0,
    )
    with pytest.raises(ValidationError, match="rate_estimate must be one of 'average'"):
        FeedbackNetwork(n_inputs=4, layer_sizes=[4], n_classes=2, rate_estimate="ema")
    from fbsnn_brian.io.datasets import load_digits

    data = load_digits()
    before = lif.input_weights.copy()
    protocol = Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4),
    )
    Trainer(lif, protocol, device="numpy", progress=False).fit(
        data.inputs[:10], data.labels[:10], epochs=1
    )
    assert np.abs(lif.input_weights - before).max() > 1e-4
