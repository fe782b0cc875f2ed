"""``fbsnn compare``: regimes, seeds, the paired interval, memory per sample, bad input.

Tiny networks (64-16-10) on a few dozen digits, numpy device: the tests check what the
comparison measures and writes, not how well the rules learn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError, reference
from fbsnn_brian.analysis.statistics import mean_sd, paired_interval
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.cli.main import main
from fbsnn_brian.experiments.comparison import compare_rules, comparison_table
from fbsnn_brian.experiments.regimes import ALGEBRAICALLY_IDE, REGIMES, rule_regime
from fbsnn_brian.experiments.rule_memory import rule_memory_per_sample
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.io.netcdf import read_dataset
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.baselines.st_rsbp import correction_table
from fbsnn_brian.rules.learning_rules import RULES, neuron_constants, rule_from_name


def template() -> FeedbackNetwork:
    return FeedbackNetwork(n_inputs=64, layer_sizes=[16], n_classes=10, seed=0)


def protocol(free_tau: float = 20.0) -> Protocol:
    return Protocol(
        [FreePhase(duration=free_tau * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4),
    )


def st_rsbp_and_ide(regime: str, free_tau: float) -> tuple[np.ndarray, np.ndarray]:
    """ST-RSBP's and IDE's gradient of one digit's recorded free phase on the regime's network."""
    digits = load_digits()
    x, y = digits.inputs[3], int(digits.labels[3])
    network = rule_regime(regime, "st_rsbp").network(template(), seed=2)
    recording = simulate(
        network, Protocol([FreePhase(duration=free_tau * ms)]), inputs=x[None, :], device="numpy"
    )
    spikes = SampleSpikes.from_recording(recording, 0)
    assert sum(int(c.sum()) for c in spikes.counts()) > 0  # a silent network proves nothing
    ours = rule_from_name("st_rsbp").gradients(network, spikes, x, y)
    rates = spikes.rates()
    ide = reference.ide_gradients_at_rates(
        network.rate_model(),
        x,
        rates,
        y,
        gates=reference.gates_from_rates(rates, ceiling=network.max_rate),
    )
    return ours.parameter_vector(), ide.parameter_vector()


def test_st_rsbp_is_ide_on_the_ideal_network() -> None:
    # the claim behind algebraically_ide: on the ideal network the count model is the rate
    # model; the two solves differ only by rounding (1e-9 of the gradient's scale)
    ours, ide = st_rsbp_and_ide("ideal", 20.0)
    np.testing.assert_allclose(ours, ide, rtol=1e-9, atol=1e-9 * np.abs(ide).max())


def test_st_rsbp_is_not_ide_in_its_papers_regime() -> None:
    # LIF, exponential synapses and the reset to rest (with its de/do correction): the update
    # departs from IDE's. 20 tau instead of the regime's 100 keeps the Monte Carlo table small;
    # the departure comes from the neuron, not the window. Measured: about 10-20 % of the
    # gradient's norm; 2 % is far above rounding and far below what was measured.
    ours, ide = st_rsbp_and_ide("paper", 20.0)
    assert np.linalg.norm(ours - ide) > 0.02 * np.linalg.norm(ide)
    # its own mechanism is in use: the S-PSP now depends on the postsynaptic count
    network = rule_regime("paper", "st_rsbp").network(template(), seed=2)
    table = correction_table(neuron_constants(network), 20.0)
    assert np.abs(table.psp_slope).max() > 0
    assert not rule_regime("paper", "st_rsbp").algebraically_ide
    assert rule_regime("ideal", "st_rsbp").algebraically_ide


def test_every_regime_gives_every_rule_the_same_initial_weights() -> None:
    ideal = rule_regime("ideal", "spide").network(template(), seed=4)
    for regime in REGIMES:
        for name in RULES:
            network = rule_regime(regime, name).network(template(), seed=4)
            for key, weights in ideal.weight_arrays().items():
                np.testing.assert_array_equal(network.weight_arrays()[key], weights)
    paper = {name: rule_regime("paper", name) for name in RULES}
    assert (paper["st_rsbp"].neuron, paper["st_rsbp"].reset) == ("lif", "rest")
    assert paper["st_rsbp"].synapse == "exponential"
    assert paper["spike_bp"].neuron == "lif" and paper["na"].neuron == "lif"
    ideal_network = rule_regime("ideal", "spike_bp").describe()
    assert paper["spide"].describe() == paper["ide"].describe() == ideal_network
    # the flags follow the table of reasons, and only IDE and (ideal) ST-RSBP are flagged
    flagged = {(r, n) for r in REGIMES for n in RULES if rule_regime(r, n).algebraically_ide}
    assert (
        flagged
        == set(ALGEBRAICALLY_IDE)
        == {
            ("ideal", "ide"),
            ("ideal", "st_rsbp"),
            ("paper", "ide"),
        }
    )


def test_every_regime_keeps_the_loop_gain_below_one_at_its_steepest_slope() -> None:
    # a reset to rest consumes V_th per spike: at the template's V_th = theta / 2 the slope
    # 1 / V_th doubles the loop gain of the initial weights (0.5 x 2 = 1, no unique fixed point)
    for regime in REGIMES:
        for name in RULES:
            network = rule_regime(regime, name).network(template(), seed=4)
            charge = neuron_constants(network).charge_per_spike
            assert np.linalg.norm(network.feedback_weights, 2) / charge < 1, (regime, name)


def test_memory_grows_with_the_phase_for_recorded_rules_and_not_for_spide() -> None:
    # recorded rules hold the raster (and NA and ST-RSBP histories or spike pairs), which
    # grow with T; SPIDE's state variables are per neuron
    digits = load_digits()
    network = template()
    x, y = digits.inputs[0], int(digits.labels[0])
    memory = {
        name: [
            rule_memory_per_sample(rule_from_name(name), network, protocol(tau), x, y)
            for tau in (8.0, 16.0)
        ]
        for name in RULES
    }
    assert memory["spide"][0] == memory["spide"][1]
    # per layer neuron 10 float64s: v, u_err, the spike, weighted and error counts, the last
    # spike and error times, the phase flag, and (first and last layer) the input current
    # and the readout's error g; per readout unit 4: o, label, partition, output error
    assert memory["spide"][0] == 16 * 10 * 8 + 10 * 4 * 8
    for name in ("ide", "st_rsbp", "na", "spike_bp"):
        assert memory[name][1] > memory[name][0], name


def test_compare_rules_on_the_ideal_network(tmp_path: Path) -> None:
    digits = load_digits()
    result = compare_rules(
        template(),
        protocol(),
        (digits.inputs[:48], digits.labels[:48]),
        (digits.inputs[1700:1740], digits.labels[1700:1740]),
        epochs=1,
        seeds=[0],
        free_tau={"na": 8},
        device="numpy",
        alignment_samples=3,
        directions=0,
    )
    assert list(result["rule"].values) == ["spide", "ide", "st_rsbp", "na", "spike_bp"]
    assert result["cosine_vs_ide"].dims == ("rule", "seed", "state")
    assert list(result["state"].values) == ["initial", "trained"]
    # IDE is the reference itself, and ST-RSBP equals it on the ideal network (1e-9: rounding)
    for name in ("ide", "st_rsbp"):
        np.testing.assert_allclose(result["cosine_vs_ide"].sel(rule=name), 1.0, atol=1e-9)
        assert bool(result["algebraically_ide"].sel(rule=name))
    assert not bool(result["algebraically_ide"].sel(rule="spike_bp"))
    assert float(result["free_phase_tau"].sel(rule="na")) == 8
    assert bool(result["local"].sel(rule="spide")) and not bool(result["local"].sel(rule="na"))
    # one seed: a mean, no sd and no interval
    assert np.isnan(float(result["test_accuracy_sd"].sel(rule="ide")))
    assert np.isnan(float(result["test_accuracy_difference_to_spide_low"].sel(rule="ide")))
    table = comparison_table(result)
    assert table.splitlines()[0].startswith("| rule | test accuracy (%) |")
    assert sum(line.startswith("| ") for line in table.splitlines()) == 6
    assert "ideal regime" in table


@pytest.mark.slow  # ten trainings and twenty alignments on numpy: about 1.5 min on 2 cores
def test_compare_command_writes_seeds_and_paired_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fits: list[Any] = []
    evaluations: list[int] = []
    fit, evaluate = Trainer.fit, Trainer.evaluate

    def spied_fit(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        fits.append(kwargs.get("validation"))
        return fit(self, *args, **kwargs)

    def spied_evaluate(self: Trainer, inputs: Any, labels: Any) -> Any:
        evaluations.append(len(inputs))
        return evaluate(self, inputs, labels)

    monkeypatch.setattr(Trainer, "fit", spied_fit)
    monkeypatch.setattr(Trainer, "evaluate", spied_evaluate)
    out = tmp_path / "compare"
    code = main(
        [
            "compare",
            "--dataset",
            "digits",
            "--regime",
            "paper",
            "--seeds",
            "2",
            "--seed",
            "3",
            "--epochs",
            "1",
            "--train-size",
            "32",
            "--test-size",
            "20",
            "--layers",
            "16",
            "--device",
            "numpy",
            "--st-rsbp-free",
            "20",
            "--na-free",
            "8",
            "--alignment-samples",
            "2",
            "--directions",
            "0",
            "--out",
            str(out),
            "--no-progress",
            "--json",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    # the test set is evaluated once per (rule, seed), after training without validation
    assert fits == [None] * 10
    assert evaluations == [20] * 10
    result = read_dataset(out / "compare.nc")
    assert result.attrs["regime"] == "paper" and printed["seeds"] == [3, 4]
    assert list(result["seed"].values) == [3, 4]
    assert result["test_accuracy"].dims == ("rule", "seed")
    accuracy = result["test_accuracy"]
    for name in result["rule"].values:
        interval = paired_interval(accuracy.sel(rule=name), accuracy.sel(rule="spide"))
        for suffix, key in (("", "difference"), ("_low", "low"), ("_high", "high")):
            stored = float(result[f"test_accuracy_difference_to_spide{suffix}"].sel(rule=name))
            assert stored == pytest.approx(interval[key], abs=1e-12)
            assert printed["test_accuracy_difference_to_spide"][name][key] == pytest.approx(
                interval[key], abs=1e-12
            )
        mean, sd = mean_sd(accuracy.sel(rule=name))
        assert float(result["test_accuracy_mean"].sel(rule=name)) == pytest.approx(mean)
        assert float(result["test_accuracy_sd"].sel(rule=name)) == pytest.approx(sd)
    # ST-RSBP in its paper's regime is no longer IDE; IDE stays IDE
    assert not bool(result["algebraically_ide"].sel(rule="st_rsbp"))
    assert bool(result["algebraically_ide"].sel(rule="ide"))
    assert "reset to rest" in str(result["rule_network"].sel(rule="st_rsbp").values)
    assert float(result["free_phase_tau"].sel(rule="st_rsbp")) == 20
    for name in result.variables:
        assert result[name].attrs.get("long_name"), name
    table = (out / "compare.md").read_text()
    assert "paper regime" in table and " ± " in table


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "0"], "--seeds must be an integer >= 1, got '0'"),
        (["--seeds", "two"], "--seeds must be an integer >= 1, got 'two'"),
        (["--seed", "-1"], "--seed must be an integer >= 0, got '-1'"),
        (["--regime", "foo"], "argument --regime: invalid choice: 'foo'"),
    ],
)
def test_bad_compare_flags_are_refused_by_name(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_rules_refuses_bad_seeds_and_regimes() -> None:
    digits = load_digits()
    data = (digits.inputs[:4], digits.labels[:4])
    for seeds, message in (
        ([], "seeds must be a non-empty sequence"),
        ([0, 0], "seeds must be distinct"),
        ([0, -2], "every seed must be a non-negative integer, got -2"),
    ):
        with pytest.raises(ValidationError, match=message):
            compare_rules(template(), protocol(), data, data, epochs=1, seeds=seeds)
    with pytest.raises(
        ValidationError,
        match="compare_rules: regime must be one of 'ideal', 'paper', got 'biology'",
    ):
        compare_rules(template(), protocol(), data, data, epochs=1, regime="biology")


def test_alignment_against_the_ground_truth_of_the_rules_network() -> None:
    """One (rule, state): the cosines with the measured model and the finite differences."""
    from fbsnn_brian.experiments.comparison import alignment_measures
    from fbsnn_brian.experiments.regimes import rule_regime

    digits = load_digits()
    rule = rule_from_name("spike_bp")
    network = rule_regime("paper", "spike_bp").network(template(), seed=0)
    inputs, labels = digits.inputs[:3], digits.labels[:3]
    measured = alignment_measures(
        rule,
        network,
        protocol(),
        inputs,
        labels,
        "numpy",
        directions=3,
        ground_truth_device="runtime",
    )
    assert set(measured) == {
        "cosine_vs_ide",
        "cosine_vs_measured_ide",
        "cosine_vs_finite_difference",
        "measured_ide_vs_finite_difference",
    }
    assert all(-1.0 <= value <= 1.0 for value in measured.values())
    skipped = alignment_measures(rule, network, protocol(), inputs, labels, "numpy", directions=0)
    assert skipped["cosine_vs_ide"] == pytest.approx(measured["cosine_vs_ide"])
    assert np.isnan(skipped["cosine_vs_measured_ide"])
