"""NA: the grid model, its flips, the backward sweep and its estimate.

The method is described in docs/baselines.rst, section "NA".

Tolerances of 1e-12 to 1e-10 compare hand-computed or loop-by-loop values with the module's:
they cover floating-point rounding only (the LIF case goes through exp and log of
tau_m = 1/ln 2, and the sweeps sum a few hundred products). The behavioural tests compare NA
with IDE on the hidden parameters only (F, W, W_fb, b): the readout gradient is the same for
both and would dominate a cosine over every parameter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.experiments.alignment import hidden_cosine, hidden_vector
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.reference import RateModel, ide_gradients_at_rates
from fbsnn_brian.rules.baselines import NeuronConstants, SampleSpikes, grid_model, na_gradients

# digits whose free phase the behavioural tests record (a numpy simulation of 30 tau each)
N_SAMPLES = 20


def single_neuron(readout: float = 4.0) -> RateModel:
    """One neuron driven by F x (F = 1), no recurrence; two classes read out as (C a, 0)."""
    return RateModel(
        input_weights=np.array([[1.0]]),
        forward_weights=(),
        feedback_weights=np.zeros((1, 1)),
        biases=(np.zeros(1),),
        readout_weights=np.array([[readout], [0.0]]),
        readout_bias=np.zeros(2),
    )


def spikes_at(steps: list[int], n_steps: int) -> SampleSpikes:
    """One neuron firing in the middle of the given grid steps (bin width 1)."""
    return SampleSpikes(
        times=(np.array(steps, dtype=float) + 0.5,),
        neurons=(np.zeros(len(steps), dtype=np.int64),),
        layer_sizes=(1,),
        duration=float(n_steps),
    )


def test_if_subtract_flips_by_hand() -> None:
    # Drive 0.6 per step, V_th = 1, theta = 2: u = 0.6, 1.2 (spike, -> -0.8), -0.2, 0.4.
    model = single_neuron()
    record = grid_model(model, spikes_at([1], 4), np.array([0.6]), neuron=NeuronConstants())
    np.testing.assert_allclose(record.membranes[0][:, 0], [0.6, 1.2, -0.2, 0.4], atol=1e-12)
    np.testing.assert_array_equal(record.grid_spikes[0][:, 0], [0, 1, 0, 0])
    # flip 0: spike at 0 (u -> -1.4), then -0.8, -0.2, 0.4: the spike at 1 is gone
    # flip 1: no spike at 1 (u stays 1.2), 1.8 -> spike at 2, then 0.4
    # flip 2: extra spike at 2 (u -> -2.2), then -1.6; flip 3: extra spike at 3
    expected = [[1, -1, 0, 0], [0, -1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(record.flips[0][:, :, 0], expected)
    # MSE with label 1: scores (4 * 1/4, 0) = (1, 0), dL/dscores = (1, -1), so every spike of the
    # neuron carries e = C^T (1, -1) / T = 4 / 4 = 1. Flips 0 and 1 leave the count unchanged;
    # flips 2 and 3 add a spike at distances V_th - u = 1.2 and 0.6:
    # delta = (0, 0, 1/1.2, 1/0.6), and dL/db = (bin width) * sum(delta).
    gradients = na_gradients(
        model, spikes_at([1], 4), np.array([0.6]), 1, neuron=NeuronConstants(), kind="mse"
    )
    expected_bias = 1 / 1.2 + 1 / 0.6
    np.testing.assert_allclose(gradients.biases[0], [expected_bias], rtol=1e-12)
    np.testing.assert_allclose(gradients.input_weights, [[0.6 * expected_bias]], rtol=1e-12)
    # the recurrent weight sees last step's trace: the recorded spike at 1 meets delta at 2
    np.testing.assert_allclose(gradients.feedback_weights, [[1 / 1.2]], rtol=1e-12)
    # a constant error in time makes the time-accumulated heuristic identical to the plain form
    accumulated = na_gradients(
        model,
        spikes_at([1], 4),
        np.array([0.6]),
        1,
        neuron=NeuronConstants(),
        kind="mse",
        accumulate_error=True,
    )
    np.testing.assert_allclose(accumulated.parameter_vector(), gradients.parameter_vector())
    # one layer: the rescaling factor is 1.2 log(mean / (mean + 1e-5) + 1.02)
    rescaled = na_gradients(
        model,
        spikes_at([1], 4),
        np.array([0.6]),
        1,
        neuron=NeuronConstants(),
        kind="mse",
        rescale_layers=True,
    )
    mean = (1 / 1.2 + 1 / 0.6) / 4
    factor = 1.2 * math.log(mean / (mean + 1e-5) + 1.02)
    np.testing.assert_allclose(rescaled.biases[0], [factor * expected_bias], rtol=1e-12)


def test_lif_rest_flips_by_hand() -> None:
    # lambda = 1/2 per step, reset to rest, input charge 0.6 per step (drive z = 0.6 / c with
    # c = tau_m (1 - lambda)): u = 0.6, 0.9, 1.05 (spike, -> 0), 0.6, 0.9.
    tau_m = 1 / math.log(2)
    neuron = NeuronConstants(tau_m=tau_m, reset="rest")
    drive = 0.6 / (tau_m * 0.5)
    model = single_neuron()
    record = grid_model(model, spikes_at([2], 5), np.array([drive]), neuron=neuron)
    np.testing.assert_allclose(record.membranes[0][:, 0], [0.6, 0.9, 1.05, 0.6, 0.9], atol=1e-12)
    # flip 0: 0 | 0.6, 0.9, 1.05 (spike) | 0.6        -> spikes (1, 0, 0, 1, 0)
    # flip 1: 0.6, 0 | 0.6, 0.9, 1.05 (spike)         -> spikes (0, 1, 0, 0, 1)
    # flip 2: 1.05 kept, 1.125 (spike at 3), 0.6      -> spikes (0, 0, 0, 1, 0)
    # flips 3, 4: one extra spike each, nothing else changes
    expected = [
        [1, 0, -1, 1, 0],
        [0, 1, -1, 0, 1],
        [0, 0, -1, 1, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ]
    np.testing.assert_array_equal(record.flips[0][:, :, 0], expected)
    # e = C^T (1, -1) / T = 5 / 5 = 1 per spike; net count changes (1, 1, 0, 1, 1) over the
    # distances V_th - u = (0.4, 0.1, -0.05, 0.4, 0.1): delta = (2.5, 10, 0, 2.5, 10)
    gradients = na_gradients(
        single_neuron(5.0), spikes_at([2], 5), np.array([drive]), 1, neuron=neuron, kind="mse"
    )
    np.testing.assert_allclose(gradients.biases[0], [(0.5 * tau_m) * 25.0], rtol=1e-10)
    # a refractory period of two steps clamps step 3 at 0 after the spike at 2: no flip there
    slow = NeuronConstants(tau_m=tau_m, reset="rest", refractory=2.0)
    record = grid_model(model, spikes_at([2], 5), np.array([drive]), neuron=slow)
    np.testing.assert_allclose(record.membranes[0][:, 0], [0.6, 0.9, 1.05, 0.0, 0.6], atol=1e-12)
    np.testing.assert_array_equal(record.refractory[0][:, 0], [False, False, False, True, False])
    np.testing.assert_array_equal(record.flips[0][3, :, 0], [0, 0, 0, 0, 0])


def simulate_grid_network(
    model: RateModel, x: np.ndarray, neuron: NeuronConstants, n_steps: int
) -> SampleSpikes:
    """Independent simulation of the grid rule: layers in order, the loop one step late."""
    kappa, leak = neuron.synaptic_decay(1.0), neuron.grid_leak(1.0)
    refractory_steps = math.ceil(neuron.refractory)
    sizes = model.layer_sizes
    membranes = [np.zeros(n) for n in sizes]
    traces = [np.zeros(n) for n in sizes]
    cooldown = [np.zeros(n, dtype=int) for n in sizes]
    previous_last_trace = np.zeros(sizes[-1])
    times: list[list[float]] = [[] for _ in sizes]
    neurons: list[list[int]] = [[] for _ in sizes]
    for step in range(n_steps):
        for layer in range(len(sizes)):
            if layer == 0:
                current = neuron.drive_per_bin(1.0) * (model.input_weights @ x + model.biases[0])
                current = current + model.feedback_weights @ previous_last_trace
            else:
                current = neuron.drive_per_bin(1.0) * model.biases[layer]
                current = current + model.forward_weights[layer - 1] @ traces[layer - 1]
            blocked = cooldown[layer] > 0
            membranes[layer] = leak * membranes[layer] + current
            if neuron.reset == "rest":
                membranes[layer][blocked] = 0.0
            fired = (membranes[layer] >= neuron.v_threshold) & ~blocked
            if neuron.reset == "rest":
                membranes[layer][fired] = 0.0
            else:
                membranes[layer][fired] -= neuron.theta
            cooldown[layer] = np.where(
                fired, refractory_steps - 1, np.maximum(cooldown[layer] - 1, 0)
            )
            traces[layer] = kappa * traces[layer] + (1 - kappa) * fired
            for index in np.flatnonzero(fired):
                times[layer].append(step + 0.25)
                neurons[layer].append(int(index))
        previous_last_trace = traces[-1].copy()
    return SampleSpikes(
        times=tuple(np.array(t) for t in times),
        neurons=tuple(np.array(i, dtype=np.int64) for i in neurons),
        layer_sizes=sizes,
        duration=float(n_steps),
    )


def random_model(seed: int, sizes: tuple[int, ...], n_inputs: int = 3) -> RateModel:
    rng = np.random.default_rng(seed)
    chain = (n_inputs, *sizes)
    return RateModel(
        input_weights=rng.uniform(0.2, 1.0, (sizes[0], n_inputs)),
        forward_weights=tuple(
            rng.normal(0.4, 0.5, (chain[k + 2], chain[k + 1])) for k in range(len(sizes) - 1)
        ),
        feedback_weights=rng.normal(0.0, 0.4, (sizes[0], sizes[-1])),
        biases=tuple(rng.normal(0.0, 0.1, n) for n in sizes),
        readout_weights=rng.normal(0.0, 1.0, (3, sizes[-1])),
        readout_bias=np.zeros(3),
    )


@pytest.mark.parametrize(
    "neuron",
    [
        NeuronConstants(),
        NeuronConstants(tau_m=4.0, tau_syn=1.5, reset="rest", refractory=2.0),
    ],
)
def test_grid_model_reproduces_spikes_generated_by_the_grid_rule(neuron: NeuronConstants) -> None:
    # If the recorded spikes come from the grid rule itself (loop one step late), the
    # reconstructed currents and membranes must give back exactly the same spike decisions.
    model = random_model(3, (4, 3))
    x = np.array([0.7, 0.3, 0.9])
    spikes = simulate_grid_network(model, x, neuron, n_steps=12)
    assert sum(t.size for t in spikes.times) >= 8  # the network does something
    record = grid_model(model, spikes, x, neuron=neuron)
    for grid, recorded in zip(record.grid_spikes, record.spikes, strict=True):
        np.testing.assert_array_equal(grid, recorded)


def loop_by_loop_deltas(
    model: RateModel,
    record: object,
    neuron: NeuronConstants,
    count_error: np.ndarray,
    min_distance: float,
) -> list[np.ndarray]:
    """The plain NA deltas from the documented sums, one neuron and one step at a time."""
    flips, membranes = record.flips, record.membranes  # type: ignore[attr-defined]
    fired_steps, blocked = record.grid_spikes, record.refractory  # type: ignore[attr-defined]
    n_steps, n_layers = flips[0].shape[0], model.n_layers
    kappa = neuron.synaptic_decay(1.0)
    deltas = [np.zeros((n_steps, n)) for n in model.layer_sizes]
    for m in reversed(range(n_steps)):
        for layer in reversed(range(n_layers)):
            for i in range(model.layer_sizes[layer]):
                projection = 0.0
                for t in range(m, n_steps):
                    # error on the spike s_i[t]: the loss (last layer) plus the error of the
                    # trace at t2 >= t, which carries (1 - kappa) kappa^(t2 - t) of that spike
                    spike_error = count_error[i] if layer == n_layers - 1 else 0.0
                    for t2 in range(t, n_steps):
                        for post, pre, weights in model.connections():
                            delay = 1 if post == 0 else 0
                            if pre == layer and t2 + delay < n_steps:
                                trace_error = float(weights[:, i] @ deltas[post][t2 + delay])
                                spike_error += (1 - kappa) * kappa ** (t2 - t) * trace_error
                    projection += spike_error * flips[layer][m, t, i]
                if blocked[layer][m, i]:
                    continue
                distance = neuron.v_threshold - membranes[layer][m, i]
                sign = -1.0 if fired_steps[layer][m, i] else 1.0
                deltas[layer][m, i] = projection * sign / max(abs(distance), min_distance)
    return deltas


def test_backward_sweep_matches_the_loop_by_loop_sums() -> None:
    neuron = NeuronConstants(tau_m=4.0, tau_syn=1.5)
    model = random_model(5, (3, 2))
    x = np.array([0.4, 0.8, 0.6])
    rng = np.random.default_rng(7)
    spikes = SampleSpikes(
        times=(rng.uniform(0, 6, 9), rng.uniform(0, 6, 5)),
        neurons=(rng.integers(0, 3, 9), rng.integers(0, 2, 5)),
        layer_sizes=(3, 2),
        duration=6.0,
    )
    y, min_distance = 2, 0.1
    gradients = na_gradients(model, spikes, x, y, neuron=neuron, min_distance=min_distance)
    record = grid_model(model, spikes, x, neuron=neuron)
    scores = model.readout_weights @ spikes.rates()[-1] + model.readout_bias
    probabilities = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    count_error = model.readout_weights.T @ (probabilities - np.eye(3)[y]) / 6.0
    deltas = loop_by_loop_deltas(model, record, neuron, count_error, min_distance)
    assert all(np.any(delta != 0) for delta in deltas)
    traces = record.traces
    np.testing.assert_allclose(gradients.forward_weights[0], deltas[1].T @ traces[0], rtol=1e-10)
    np.testing.assert_allclose(
        gradients.feedback_weights, deltas[0][1:].T @ traces[1][:-1], rtol=1e-10
    )
    drive = neuron.drive_per_bin(1.0)
    np.testing.assert_allclose(gradients.biases[1], drive * deltas[1].sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(
        gradients.input_weights, drive * np.outer(deltas[0].sum(axis=0), x), rtol=1e-10
    )


# -------------------------------------------------------------------------- behaviour


def record_digits(
    net: FeedbackNetwork,
) -> tuple[RateModel, np.ndarray, np.ndarray, list[SampleSpikes]]:
    digits = load_digits()
    inputs, labels = digits.inputs[:N_SAMPLES], digits.labels[:N_SAMPLES]
    recording = simulate(
        net, Protocol([FreePhase(duration=30 * ms)]), inputs=inputs, device="numpy"
    )
    samples = [SampleSpikes.from_recording(recording, k) for k in range(N_SAMPLES)]
    return net.rate_model(), inputs, labels, samples


def test_plain_na_points_downhill_in_a_layer_without_feedback() -> None:
    # One layer, no loop, IF with subtractive reset: the error on each spike is the constant
    # e_i = g_i / T. Adding a spike (V_th - u > 0) can change the count only by 0 or +1 and
    # removing one (V_th - u < 0) by 0 or -1, so every delta_i[m] has the sign of e_i: the bias
    # gradient of every neuron IDE does not gate has IDE's sign or is 0 (an exact property).
    # For the whole gradient: per step, 1[u <= v(T)] / (V_th - u) averages to 1/theta over the
    # membrane's range, so NA is unbiased for active neurons but its per-neuron sum scales with
    # a random factor (ln 2/(V_th - v(T))), and near-silent neurons get gradients IDE gates
    # away: a positive but imperfect alignment. Measured on these 20 digits (hidden
    # parameters): every cosine positive (0.17 to 0.75), mean 0.53, sample sd 0.15. The mean
    # must stay above 0.4, about four standard errors (0.15 / sqrt(20) = 0.034) below the
    # measured mean; a sign or scale error per layer drops it to about 0, as the two-layer
    # network without the one-layer sign argument shows (mean -0.02, half the samples
    # negative).
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[20], n_classes=10, seed=0)
    net.feedback_weights = np.zeros((20, 20))
    model, inputs, labels, samples = record_digits(net)
    neuron = NeuronConstants()
    cosines = []
    for x, y, spikes in zip(inputs, labels, samples, strict=True):
        ours = na_gradients(model, spikes, x, int(y), neuron=neuron)
        ide = ide_gradients_at_rates(model, x, spikes.rates(), int(y))
        active = ide.gates[0] > 0
        same_sign = np.sign(ours.biases[0][active]) * np.sign(ide.biases[0][active])
        assert np.all(same_sign >= 0)
        cosines.append(hidden_cosine(ours, ide))
    assert min(cosines) > 0
    assert np.mean(cosines) > 0.4


def test_lorentzian_na_aligns_with_ide_on_average_in_a_feedback_network() -> None:
    # With the loop the plain form is unstable (each step of the backward sweep can multiply the
    # error by up to 1/min_distance; see the module docstring), so the feedback network is
    # checked with the authors' bounded Lorentzian factor (<= 1), which keeps the sweep bounded
    # (its hidden-parameter norm is 6 % of IDE's here in the median, 22 % at most, where the
    # plain form's is 1e23 times IDE's in the median). Its direction is
    # NOT a descent direction on every sample: on these 20 digits the hidden-parameter cosines
    # range from -0.38 to 0.88 (3 of 20 negative; the first six are 0.13, -0.38, -0.25, 0.14,
    # 0.32, 0.33), mean 0.27. What holds is alignment on average: the mean cosine exceeds
    # two standard errors of the mean (a one-sided test at about 2.5 %), and most samples
    # (more than two thirds) point downhill.
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[16, 12], n_classes=10, seed=1)
    model, inputs, labels, samples = record_digits(net)
    neuron = NeuronConstants()
    cosines, norm_ratios = [], []
    for x, y, spikes in zip(inputs, labels, samples, strict=True):
        ours = na_gradients(model, spikes, x, int(y), neuron=neuron, denominator="lorentzian")
        ide = ide_gradients_at_rates(model, x, spikes.rates(), int(y))
        cosines.append(hidden_cosine(ours, ide))
        n_layers = len(ours.biases)
        norm_ratios.append(
            np.linalg.norm(hidden_vector(ours, n_layers))
            / np.linalg.norm(hidden_vector(ide, n_layers))
        )
    values = np.asarray(cosines)
    standard_error = values.std(ddof=1) / np.sqrt(values.size)
    assert values.mean() > 2 * standard_error
    assert np.sum(values > 0) > 2 * values.size / 3
    # bounded: below IDE's norm on every sample, where the plain form exceeds it by 1e16 or more
    assert max(norm_ratios) < 1


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bin_width": 3.0}, "bin_width must divide the duration T = 4 tau"),
        ({"bin_width": -1.0}, "na_gradients: bin_width must be a finite number > 0, got -1.0"),
        ({"min_distance": 0.0}, "na_gradients: min_distance must be a finite number > 0, got 0.0"),
        ({"denominator": "cubic"}, "denominator must be one of 'plain', 'lorentzian', got 'cubic'"),
        ({"accumulate_error": 1}, "accumulate_error must be True or False, got 1"),
        ({"rescale_layers": "yes"}, "rescale_layers must be True or False, got 'yes'"),
        ({"y": -1}, "na_gradients: y must be an integer class label in [0, 1], got -1"),
    ],
)
def test_na_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"y": 1, "neuron": NeuronConstants()}
    arguments.update(kwargs)
    with pytest.raises(ValidationError) as error:
        na_gradients(single_neuron(), spikes_at([1], 4), np.array([0.6]), **arguments)  # type: ignore[arg-type]
    assert message in str(error.value)
