"""Learning rules behind one interface: Trainer(rule=...), the recorded-rule chunk, compare."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.cli.main import main
from fbsnn_brian.experiments.comparison import rule_alignment
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.learning.recorded import RecordedRuleSimulation, gradient_arrays
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.learning_rules import RULES, ExactIDE, rule_from_name


def protocol(learning_rate: float = 0.1, momentum: float = 0.0) -> Protocol:
    return Protocol(
        [FreePhase(duration=20 * ms), PerturbedPhase(duration=40 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=learning_rate, scale=4, momentum=momentum),
    )


def test_a_recorded_chunk_applies_the_mean_of_the_rules_gradients() -> None:
    # The update of a chunk is -eta times the mean of the rule's per-sample gradients on the
    # spikes recorded with the weights before the update (no decay, no momentum).
    digits = load_digits()
    inputs, labels = digits.inputs[:4], digits.labels[:4]
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[16, 8], n_classes=10, seed=1)
    before = copy.deepcopy(net)
    rule = rule_from_name("spike_bp")
    simulation = RecordedRuleSimulation(net, protocol(0.05), rule, device="numpy", chunk_size=4)
    simulation.train_chunk(inputs, labels, 0.05)
    recording = simulate(
        before, Protocol([FreePhase(duration=20 * ms)]), inputs=inputs, device="numpy"
    )
    expected: dict[str, np.ndarray] = {}
    for k in range(4):
        spikes = SampleSpikes.from_recording(recording, k)
        for name, value in gradient_arrays(
            rule.gradients(before, spikes, inputs[k], int(labels[k]))
        ).items():
            expected[name] = expected.get(name, 0) + value / 4
    after = net.weight_arrays()
    for name, weights in before.weight_arrays().items():
        if name == "feedback_weights":
            continue  # rescaled by the gain cap afterwards
        np.testing.assert_allclose(after[name], weights - 0.05 * expected[name], atol=1e-12)
    assert np.abs(after["input_weights"] - before.input_weights).max() > 1e-4


@pytest.mark.standalone
@pytest.mark.parametrize("name", ["ide", "st_rsbp", "spike_bp"])
def test_recorded_rules_learn_digits_inside_the_toolkit(name: str) -> None:
    # 600 training digits, 3 epochs of mini-batches of 16: each gradient-like rule must be
    # far above chance (10 %) on held-out digits; 60 % leaves room for seed variation while
    # a rule with a wrong sign or a lost gradient stays near chance. The three rules share
    # one compiled free-phase build (same network and chunk size).
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[32], n_classes=10, seed=0)
    trainer = Trainer(
        net,
        protocol(0.1, 0.9),
        device="cpp_standalone",
        chunk_size=16,
        progress=False,
        rule=name,
    )
    history = trainer.fit(
        digits.inputs[:600],
        digits.labels[:600],
        epochs=3,
        validation=(digits.inputs[1500:1800], digits.labels[1500:1800]),
    )
    assert history["test_accuracy"].values[-1] > 0.6
    assert history.attrs["rule"] == name


def test_exact_ide_rule_is_the_reference_at_the_recorded_rates() -> None:
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[16], n_classes=10, seed=0)
    alignment = rule_alignment(ExactIDE(), net, protocol(), digits.inputs[:3], digits.labels[:3])
    np.testing.assert_allclose(alignment["per_sample_cosine_vs_ide"], 1.0, atol=1e-12)


def test_rules_are_refused_by_name_with_the_allowed_list() -> None:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    with pytest.raises(ValidationError, match="rule must be one of 'ide', 'na', 'spide'"):
        Trainer(net, protocol(), device="numpy", rule="backprop")
    with pytest.raises(ValidationError, match="rule must be a LearningRule or a rule name"):
        Trainer(net, protocol(), device="numpy", rule=3)  # type: ignore[arg-type]
    assert sorted(RULES) == ["ide", "na", "spide", "spike_bp", "st_rsbp"]
    assert rule_from_name("spide").local and not rule_from_name("ide").local


def test_train_command_takes_a_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--rule",
            "spike_bp",
            "--layers",
            "8",
            "--epochs",
            "1",
            "--train-size",
            "64",
            "--test-size",
            "32",
            "--free",
            "10",
            "--device",
            "numpy",
            "--no-progress",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["rule"] == "spike_bp"
    assert -1.0 <= metrics["gradient_cosine_vs_ide"] <= 1.0
    capsys.readouterr()
    assert main(["train", "--rule", "bp", "--device", "numpy", "--out", str(tmp_path / "x")]) == 2
    assert "rule must be one of" in capsys.readouterr().err
