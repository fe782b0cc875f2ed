"""ST-RSBP: S-PSPs, the count model, its table and its gradient.

The method is described in docs/baselines.rst, section "ST-RSBP".

Tolerances of 1e-13 to 1e-9 compare two evaluations of the same closed form or two solves of
the same linear system: they cover floating-point rounding only (a few dozen operations, or
an LU solve of a well-conditioned system of about ten unknowns). Every other tolerance is
justified where it is used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.experiments.alignment import hidden_cosine
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.reference import (
    RateModel,
    ide_gradients_at_rates,
)
from fbsnn_brian.rules.baselines import (
    NeuronConstants,
    SampleSpikes,
    correction_table,
    count_model,
    psp_kernel,
    st_rsbp_gradients,
)

INPUTS = np.array([[0.9, 0.1, 0.6, 0.3, 0.8], [0.2, 0.7, 0.4, 1.0, 0.5], [0.6, 0.6, 0.0, 0.2, 0.9]])
LABELS = (0, 2, 1)


def model_with(model: RateModel, vector: np.ndarray) -> RateModel:
    """A copy of ``model`` whose parameters are ``vector`` (Gradients.parameter_vector order)."""
    shapes = [
        model.input_weights.shape,
        *(w.shape for w in model.forward_weights),
        model.feedback_weights.shape,
        *(b.shape for b in model.biases),
        model.readout_weights.shape,
        model.readout_bias.shape,
    ]
    parts, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        parts.append(vector[start : start + size].reshape(shape))
        start += size
    n_forward, n_layers = len(model.forward_weights), model.n_layers
    return RateModel(
        input_weights=parts[0],
        forward_weights=tuple(parts[1 : 1 + n_forward]),
        feedback_weights=parts[1 + n_forward],
        biases=tuple(parts[2 + n_forward : 2 + n_forward + n_layers]),
        readout_weights=parts[-2],
        readout_bias=parts[-1],
        theta=model.theta,
    )


def flat_parameters(model: RateModel) -> np.ndarray:
    parts = [
        model.input_weights,
        *model.forward_weights,
        model.feedback_weights,
        *model.biases,
        model.readout_weights,
        model.readout_bias,
    ]
    return np.concatenate([np.ravel(p) for p in parts])


def cross_entropy(scores: np.ndarray, label: int) -> float:
    shifted = scores - scores.max()
    return float(np.log(np.exp(shifted).sum()) - shifted[label])


def record(net: FeedbackNetwork, duration_tau: float) -> list[SampleSpikes]:
    protocol = Protocol([FreePhase(duration=duration_tau * net.tau)])
    recording = simulate(net, protocol, inputs=INPUTS, device="numpy")
    return [SampleSpikes.from_recording(recording, k) for k in range(len(INPUTS))]


REST_LIF = NeuronConstants(tau_m=5.0, tau_syn=2.0, reset="rest")


def rest_network(dt_fraction: int) -> FeedbackNetwork:
    biophysics = Biophysics(synapse="exponential", tau_syn=2 * ms, reset="rest")
    return FeedbackNetwork(
        n_inputs=5,
        layer_sizes=[5, 4],
        n_classes=3,
        seed=0,
        neuron="lif",
        tau_m=5 * ms,
        dt=1 * ms / dt_fraction,
        biophysics=biophysics,
    )


@pytest.fixture(scope="module")
def rest_recordings() -> dict[int, tuple[RateModel, list[SampleSpikes]]]:
    """LIF, exponential synapse, reset to rest (the paper's neuron), at two integration steps."""
    runs = {}
    for fraction in (16, 64):
        net = rest_network(fraction)
        runs[fraction] = (net.rate_model(), record(net, 20))
    return runs


@pytest.fixture(scope="module")
def ideal_recording() -> tuple[RateModel, list[SampleSpikes]]:
    """The ideal network of docs/algorithm.rst: IF, subtractive reset, instantaneous synapses."""
    net = FeedbackNetwork(n_inputs=5, layer_sizes=[6, 4], n_classes=3, seed=2)
    return net.rate_model(), record(net, 30)


# ----------------------------------------------------------------------------- S-PSP


def test_psp_kernel_matches_its_closed_form_and_limits() -> None:
    lags = np.array([-1.0, 0.0, 0.5, 2.0, 7.0])
    # general case: tau_m / (tau_m - tau_s) (exp(-s/tau_m) - exp(-s/tau_s)), 0 before the spike
    s = np.maximum(lags, 0)
    general = 5.0 / 3.0 * (np.exp(-s / 5.0) - np.exp(-s / 2.0)) * (lags >= 0)
    np.testing.assert_allclose(
        psp_kernel(lags, neuron=NeuronConstants(tau_m=5.0, tau_syn=2.0)), general, rtol=1e-13
    )
    # instantaneous synapse: a jump of 1 that leaks with tau_m (IF: never)
    np.testing.assert_allclose(
        psp_kernel(lags, neuron=NeuronConstants(tau_m=5.0)), np.exp(-s / 5.0) * (lags >= 0)
    )
    np.testing.assert_array_equal(psp_kernel(lags, neuron=NeuronConstants()), [0, 1, 1, 1, 1])
    # IF with a synapse: the charge arrives as 1 - exp(-s/tau_s)
    np.testing.assert_allclose(
        psp_kernel(lags, neuron=NeuronConstants(tau_syn=2.0)), 1 - np.exp(-s / 2.0), rtol=1e-13
    )
    # tau_m = tau_s: the alpha function (s/tau) exp(-s/tau), and continuous on both sides
    alpha = s / 2.0 * np.exp(-s / 2.0)
    equal = NeuronConstants(tau_m=2.0, tau_syn=2.0)
    np.testing.assert_allclose(psp_kernel(lags, neuron=equal), alpha, rtol=1e-12)
    for tau_m in (2.0 - 1e-7, 2.0 + 1e-7):
        nearby = psp_kernel(lags, neuron=NeuronConstants(tau_m=tau_m, tau_syn=2.0))
        # the kernel moves by O(1e-7) when tau_m moves by 1e-7
        np.testing.assert_allclose(nearby, alpha, atol=1e-6)


def one_post_one_pre(
    neuron: NeuronConstants, duration: float = 8.0
) -> tuple[RateModel, SampleSpikes]:
    """Neuron 0 fires at 2 and 5, neuron 1 (its presynaptic partner) at 1, 2.5, 4 and 6."""
    model = RateModel(
        input_weights=np.ones((2, 1)),
        forward_weights=(),
        feedback_weights=np.array([[0.0, 0.3], [0.0, 0.0]]),
        biases=(np.zeros(2),),
        readout_weights=np.eye(2),
        readout_bias=np.zeros(2),
        theta=neuron.theta,
    )
    spikes = SampleSpikes(
        times=(np.array([2.0, 5.0, 1.0, 2.5, 4.0, 6.0]),),
        neurons=(np.array([0, 0, 1, 1, 1, 1]),),
        layer_sizes=(2,),
        duration=duration,
    )
    return model, spikes


def test_rest_mode_spsp_by_hand() -> None:
    # LIF (tau_m = 2), instantaneous synapse, refractory 1: neuron 0 integrates from r = 0 up to
    # its spike at 2, is clamped on [2, 3), then integrates from r = 3 up to its spike at 5.
    # Pre spike 1 -> spike 2: exp(-1/2). Pre 2.5 falls in the clamp: lost. Pre 4 -> spike 5:
    # exp(-1/2). Pre 6 follows the last spike: not counted.
    lif = NeuronConstants(tau_m=2.0, reset="rest")
    model, spikes = one_post_one_pre(lif)
    counts = count_model(model, spikes, np.zeros(1), neuron=lif)
    assert counts.psps[0][0, 1] == pytest.approx(2 * math.exp(-0.5), rel=1e-13)
    # the drive builds tau_m (1 - exp(-2/tau_m)) over each of the two 2-tau integration windows
    assert counts.drive_psps[0][0] == pytest.approx(2 * 2.0 * (1 - math.exp(-1.0)), rel=1e-13)
    # IF with tau_syn = 1: direct terms 1 - exp(-1) for (1 -> 2) and (4 -> 5); the current of the
    # spikes at 1 and 2.5 outlives the clamp: exp(-(3 - t)) (1 - exp(-(5 - 3))) each
    synaptic = NeuronConstants(tau_syn=1.0, reset="rest")
    model, spikes = one_post_one_pre(synaptic)
    counts = count_model(model, spikes, np.zeros(1), neuron=synaptic)
    carried = (math.exp(-2.0) + math.exp(-0.5)) * (1 - math.exp(-2.0))
    expected = 2 * (1 - math.exp(-1.0)) + carried
    assert counts.psps[0][0, 1] == pytest.approx(expected, rel=1e-13)
    assert counts.drive_psps[0][0] == pytest.approx(2.0 + 2.0, rel=1e-13)
    # neuron 1 gets no input from neuron 0 (its weight is zero, but the S-PSP is still formed)
    # and V_th o = sum W e + z e0 uses V_th for the reset to rest
    np.testing.assert_array_equal(counts.thresholds[0], [1.0, 1.0])


def test_subtract_mode_spsp_by_hand() -> None:
    # No cut: each pre spike contributes its PSP at the end of the window T = 8, the drive its
    # potential after T, and the left side is theta times sum_f exp(-(T - t_f)/tau_m).
    lif = NeuronConstants(tau_m=4.0)
    model, spikes = one_post_one_pre(lif)
    counts = count_model(model, spikes, np.zeros(1), neuron=lif)
    expected_psp = sum(math.exp(-(8.0 - t) / 4.0) for t in (1.0, 2.5, 4.0, 6.0))
    assert counts.psps[0][0, 1] == pytest.approx(expected_psp, rel=1e-13)
    assert counts.psps[0][1, 1] == pytest.approx(expected_psp, rel=1e-13)  # independent of post
    assert counts.drive_psps[0][0] == pytest.approx(4.0 * (1 - math.exp(-2.0)), rel=1e-13)
    leaky_count = math.exp(-6.0 / 4.0) + math.exp(-3.0 / 4.0)
    assert counts.effective_counts[0][0] == pytest.approx(leaky_count, rel=1e-13)
    assert counts.thresholds[0][0] == pytest.approx(2.0 * leaky_count / 2.0, rel=1e-13)
    # no cut, so the S-PSP does not depend on the post count: no correction
    assert not np.any(counts.psp_slopes[0]) and not np.any(counts.drive_slopes[0])


# ----------------------------------------------------------------------- correction table


def test_correction_table_matches_the_closed_form_for_if_and_rest() -> None:
    # IF, instantaneous synapse, reset to rest, refractory 1, T = 10: a uniform pre spike counts
    # (1) iff it falls in an integration window [r_f, t_f). With o post spikes drawn as sorted
    # uniforms u on [0, L), L = T - (o - 1), plus (k - 1) refractory periods, the windows cover
    # u_(o) in total, E u_(o) = L o / (o + 1). So mean S-PSP per pre spike = L o / ((o + 1) T)
    # and the drive's mean S-PSP is T times that.
    duration, n_trains = 10.0, 4000
    table = correction_table(NeuronConstants(reset="rest"), duration, n_trains=n_trains)
    counts = np.arange(1, 11)
    exact = (duration - (counts - 1)) * counts / ((counts + 1) * duration)
    # Per train the per-spike mean lies in [0, 1] and the drive S-PSP in [0, T]: standard
    # errors are at most 0.5 / sqrt(n) and T / (2 sqrt(n)); 5 of them bound the Monte Carlo
    # error with probability > 1 - 1e-6.
    np.testing.assert_allclose(table.mean_psp[1:], exact, atol=5 * 0.5 / math.sqrt(n_trains))
    np.testing.assert_allclose(
        table.mean_drive_psp[1:], duration * exact, atol=5 * duration / 2 / math.sqrt(n_trains)
    )
    # the exact curve rises for small o and falls for large o; the fitted slope must too
    assert table.psp_slope[1] > 0 and table.psp_slope[10] < 0
    assert table.drive_slope[1] > 0 and table.drive_slope[10] < 0
    # cached: the same arguments give the same object
    assert correction_table(NeuronConstants(reset="rest"), duration, n_trains=n_trains) is table
    # subtractive reset: nothing is cut, the S-PSP ignores the post count, all slopes vanish
    subtract = correction_table(NeuronConstants(tau_m=5.0), duration, n_trains=200)
    assert not np.any(subtract.psp_slope) and not np.any(subtract.drive_slope)


# ---------------------------------------------------------------------- count model


def test_count_model_holds_on_a_brian2_rest_network_and_converges_with_dt(
    rest_recordings: dict[int, tuple[RateModel, list[SampleSpikes]]],
) -> None:
    # With the reset to rest the membrane equals V_th exactly at each crossing in continuous
    # time, so V_th o = sum_j W_ij e_ij + z_i e_i0 is an identity; on Brian2's grid the only
    # errors are the overshoot past V_th (at most one step's rise) and the Euler timing of the
    # synaptic current, both first order in dt.
    total_error = {}
    for fraction, (model, samples) in rest_recordings.items():
        errors = []
        for x, spikes in zip(INPUTS, samples, strict=True):
            counts = count_model(model, spikes, x, neuron=REST_LIF)
            predicted = counts.predicted_counts(model, x)
            for layer_predicted, actual in zip(predicted, counts.effective_counts, strict=True):
                errors.append(layer_predicted - actual)
                if fraction == 64:
                    # the membrane rises by at most ~2 threshold units per tau here (drive plus
                    # synaptic current), so each spike overshoots by <= 2 dt = 0.03 V_th;
                    # allow 0.05 per spike for the Euler timing errors of the same order
                    assert np.all(np.abs(layer_predicted - actual) <= 0.05 * actual + 1e-9)
        total_error[fraction] = float(np.sum(np.abs(np.concatenate(errors))))
    assert sum(len(s.times[0]) for s in rest_recordings[64][1]) > 30  # the network does fire
    # first order: a 4 times smaller step must cut the error by clearly more than 2
    assert total_error[64] < total_error[16] / 2.5


def test_count_model_bounds_on_a_brian2_ideal_network() -> None:
    # IF, subtractive reset, instantaneous synapses, NON-NEGATIVE weights and drives: after a
    # spike v >= V_th - theta and inputs only raise it, so the final membrane v(T) of a neuron
    # that fired is in [V_th - theta, V_th + (input during one refractory period and step)].
    # The count model's error is exactly v(T) / theta (charge balance at T).
    net = FeedbackNetwork(n_inputs=5, layer_sizes=[4, 3], n_classes=3, seed=4)
    net.input_weights = np.abs(net.input_weights) * 0.6
    net.forward_weights = [np.abs(w) * 0.3 for w in net.forward_weights]
    net.feedback_weights = np.abs(net.feedback_weights) * 0.3
    net.biases = [np.zeros(4), np.zeros(3)]
    model, samples = net.rate_model(), record(net, 30)
    neuron = NeuronConstants()
    checked = 0
    for x, spikes in zip(INPUTS, samples, strict=True):
        counts = count_model(model, spikes, x, neuron=neuron)
        drives = (model.input_weights @ x + model.biases[0], *model.biases[1:])
        incoming = [np.zeros(n) for n in model.layer_sizes]
        for post, _, weights in model.connections():
            incoming[post] = incoming[post] + weights.sum(axis=1)
        predicted = counts.predicted_counts(model, x)
        for layer in range(model.n_layers):
            fired = counts.counts[layer] > 0
            # one refractory period (1 tau) plus one step (tau/4) of drive, one spike of every
            # presynaptic neuron per refractory period plus one in the crossing step
            overshoot = 1.25 * drives[layer] + 2 * incoming[layer]
            error = (predicted[layer] - counts.effective_counts[layer])[fired]
            assert np.all(error >= (1.0 - 2.0) / 2.0 - 1e-9)
            assert np.all(error <= ((1.0 + overshoot) / 2.0)[fired] + 1e-9)
            checked += int(fired.sum())
    assert checked >= 10  # enough firing neurons for the check to mean something


# ------------------------------------------------------------------------- gradient


def test_ideal_network_gradient_equals_ide_at_the_recorded_rates(
    ideal_recording: tuple[RateModel, list[SampleSpikes]],
) -> None:
    # IF + subtractive reset + instantaneous synapse: e_ij = o_j (= T a_j), e_i0 = T, V = theta,
    # no correction, so M = theta I - W on the active set and M^T lambda = g / T; with
    # beta = theta T lambda this is IDE's (I - W^T D) beta = g, and lambda_i e_ij =
    # (1/theta) beta_i a_j. The active set 0 < o < T/refractory is IDE's gate 0 < a < 1.
    model, samples = ideal_recording
    neuron = NeuronConstants()
    for x, y, spikes in zip(INPUTS, LABELS, samples, strict=True):
        ours = st_rsbp_gradients(model, spikes, x, y, neuron=neuron)
        ide = ide_gradients_at_rates(model, x, spikes.rates(), y)
        # both solve the same linear system; only rounding differs
        np.testing.assert_allclose(
            ours.parameter_vector(), ide.parameter_vector(), rtol=1e-9, atol=1e-12
        )
        for ours_gate, ide_gate in zip(ours.gates, ide.gates, strict=True):
            np.testing.assert_array_equal(ours_gate, ide_gate)


def test_gradient_is_the_exact_gradient_of_the_linearised_count_model(
    rest_recordings: dict[int, tuple[RateModel, list[SampleSpikes]]],
) -> None:
    model, samples = rest_recordings[16]
    x, y, spikes = INPUTS[0], LABELS[0], samples[0]
    counts = count_model(model, spikes, x, neuron=REST_LIF)
    # the reset to rest makes the correction table matter: the check must exercise it
    assert any(np.any(np.abs(s) > 1e-3) for s in counts.psp_slopes)

    def loss(parameters: np.ndarray) -> float:
        perturbed = model_with(model, parameters)
        solved = counts.solve(perturbed, x)
        rates = solved[-1] / spikes.duration
        return cross_entropy(perturbed.readout_weights @ rates + perturbed.readout_bias, y)

    analytic = st_rsbp_gradients(model, spikes, x, y, neuron=REST_LIF).parameter_vector()
    base = flat_parameters(model)
    # the recorded counts solve the linearised model at the recorded parameters
    for solved, recorded in zip(counts.solve(model, x), counts.counts, strict=True):
        np.testing.assert_allclose(solved, recorded, rtol=0, atol=1e-9)
    step = 1e-6
    numeric = np.zeros_like(base)
    for index in range(base.size):
        shift = np.zeros_like(base)
        shift[index] = step
        numeric[index] = (loss(base + shift) - loss(base - shift)) / (2 * step)
    # The map is smooth (rational in the parameters): central differences err by O(step^2)
    # times third derivatives plus roundoff eps / step ~ 1e-10; 1e-7 of the largest entry
    # leaves a wide margin while any wrong term (e.g. a missing correction) is >= 1e-3.
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-7 * np.abs(analytic).max())


def test_leaky_network_gradient_aligns_with_ide(
    rest_recordings: dict[int, tuple[RateModel, list[SampleSpikes]]],
) -> None:
    # Behavioural check on a network where ST-RSBP and IDE differ: the LIF membrane (tau_m =
    # 5 tau) loses charge, the reset to rest and clamp lose more, and IDE differentiates the
    # IF clamp model instead. Both are gradients of count models of the same network whose
    # per-neuron gains differ by tens of percent, not in sign, so on the hidden parameters they
    # must agree well within 45 degrees (cosine > 0.7; measured 0.82, 0.86 and 0.82 on the
    # three inputs); a sign error in any layer or in the loop would break it.
    model, samples = rest_recordings[16]
    for x, y, spikes in zip(INPUTS, LABELS, samples, strict=True):
        ours = st_rsbp_gradients(model, spikes, x, y, neuron=REST_LIF)
        ide = ide_gradients_at_rates(model, x, spikes.rates(), y)
        assert hidden_cosine(ours, ide) > 0.7


# ------------------------------------------------------------------------- validation


def test_st_rsbp_refuses_inconsistent_inputs(
    ideal_recording: tuple[RateModel, list[SampleSpikes]],
) -> None:
    model, samples = ideal_recording
    spikes, x = samples[0], INPUTS[0]
    neuron = NeuronConstants()
    cases = [
        (
            {
                "spikes": SampleSpikes(
                    times=(spikes.times[0],),
                    neurons=(spikes.neurons[0],),
                    layer_sizes=(6,),
                    duration=spikes.duration,
                )
            },
            "st_rsbp_gradients: spikes.layer_sizes must match the model's layer sizes (6, 4), "
            "got (6,)",
        ),
        ({"neuron": NeuronConstants(theta=1.0)}, "neuron.theta must equal model.theta = 2"),
        ({"neuron": {"theta": 2.0}}, "neuron must be a NeuronConstants, got {'theta': 2.0}"),
        ({"y": 3}, "y must be an integer class label in [0, 2], got 3"),
        ({"x": np.zeros(4)}, "x must have shape (5,), got (4,)"),
        ({"kind": "hinge"}, "kind must be one of 'cross_entropy', 'mse', got 'hinge'"),
        (
            {"table": correction_table(NeuronConstants(reset="rest"), 30.0, n_trains=50)},
            "table must be a CorrectionTable built for these neuron constants and the window "
            "T = 30",
        ),
    ]
    for override, message in cases:
        arguments: dict[str, object] = {"spikes": spikes, "x": x, "y": 0, "neuron": neuron}
        arguments.update(override)
        with pytest.raises(ValidationError) as error:
            st_rsbp_gradients(model, **arguments)  # type: ignore[arg-type]
        assert message in str(error.value)
    with pytest.raises(ValidationError) as error:
        correction_table(neuron, 30.0, degree=0)
    assert "correction_table: degree must be a positive integer, got 0" in str(error.value)
