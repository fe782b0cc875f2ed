"""The no-feedback condition: W_fb = 0 and never learned, while every other weight learns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.experiments.runs import network_from_settings, train_run
from fbsnn_brian.experiments.settings import RunSettings
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

# a tiny split of the digits: 40 samples train, 20 test, a 64-8-10 network
TINY = {
    "dataset": "digits",
    "train_size": 40,
    "test_size": 20,
    "layers": [8],
    "free_tau": 10.0,
    "perturbed_tau": 10.0,
    "epochs": 1,
    "shift": 0,
    "chunk_size": 20,
    "no_feedback": True,
}


def changed_weights(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> set[str]:
    return {name for name, array in before.items() if not np.array_equal(array, after[name])}


def initial_network() -> FeedbackNetwork:
    network = network_from_settings(RunSettings.from_values(TINY), 64, 10)
    return network


def protocol(*, learn_feedback: bool) -> Protocol:
    return Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=10 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0, learn_feedback=learn_feedback),
    )


def test_a_frozen_loop_stays_zero_inside_the_simulation_and_a_learned_one_does_not() -> None:
    # The same chunk from W_fb = 0: with learn_feedback the rule grows W_fb (so the check below
    # can fail), without it W_fb is exactly zero after every sample while the rest learns.
    digits = load_digits()
    inputs, labels = digits.inputs[:4], digits.labels[:4]
    results = {}
    for learn in (True, False):
        network = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
        network.feedback_weights = np.zeros((8, 8))
        before = {k: np.array(v) for k, v in network.weight_arrays().items()}
        TrainingSimulation(network, protocol(learn_feedback=learn), device="numpy").train_chunk(
            inputs, labels, 0.05
        )
        results[learn] = changed_weights(before, network.weight_arrays())
    assert "feedback_weights" in results[True]
    assert results[False] == set(results[True]) - {"feedback_weights"}
    assert {"input_weights", "readout_weights", "biases_0"} <= results[False]


@pytest.mark.parametrize(
    "device", ["numpy", pytest.param("cpp_standalone", marks=pytest.mark.standalone)]
)
def test_one_epoch_without_feedback_keeps_w_fb_exactly_zero(tmp_path: Path, device: str) -> None:
    metrics = train_run({**TINY, "device": device}, tmp_path / "run", progress=False)
    trained = FeedbackNetwork.load(tmp_path / "run" / "weights.npz")
    assert np.array_equal(trained.feedback_weights, np.zeros((8, 8)))
    assert metrics["loop_gain"] == 0.0
    before = {k: np.array(v) for k, v in initial_network().weight_arrays().items()}
    assert "feedback_weights" in before and np.any(before["feedback_weights"] != 0)
    changed = changed_weights(before, trained.weight_arrays())
    assert changed == set(before)  # W_fb too: from its initial values to zero
    assert metrics["config"]["no_feedback"] is True
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["no_feedback"] is True


def test_a_recorded_rule_keeps_the_frozen_loop_too() -> None:
    # the recorded rules update once per chunk; the Trainer undoes the W_fb part of it
    digits = load_digits()
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    network.feedback_weights = np.zeros((8, 8))
    before = {k: np.array(v) for k, v in network.weight_arrays().items()}
    trainer = Trainer(
        network,
        protocol(learn_feedback=False),
        rule="ide",
        device="numpy",
        chunk_size=8,
        progress=False,
    )
    trainer.fit(digits.inputs[:16], digits.labels[:16], epochs=1)
    assert np.array_equal(network.feedback_weights, np.zeros((8, 8)))
    assert {"input_weights", "readout_weights"} <= changed_weights(before, network.weight_arrays())


def test_the_setting_reaches_the_rule_the_cli_and_run_files(tmp_path: Path) -> None:
    from fbsnn_brian.cli.parsers import build_parser
    from fbsnn_brian.experiments.run_file import load_run_file

    # the description lists the option only when it is off: older build keys stay valid
    assert "learn_feedback" not in SPIDEPlasticity().describe()
    assert SPIDEPlasticity(learn_feedback=False).describe()["learn_feedback"] is False
    with pytest.raises(ValidationError, match="learn_feedback must be True or False, got 0"):
        SPIDEPlasticity(learn_feedback=0)  # type: ignore[arg-type]
    assert build_parser().parse_args(["train", "--no-feedback"]).no_feedback is True
    assert build_parser().parse_args(["train"]).no_feedback is None
    path = tmp_path / "run.toml"
    path.write_text("[training]\nno_feedback = true\n")
    assert load_run_file(path) == {"no_feedback": True}
    path.write_text("[training]\nno_feedback = 1\n")
    with pytest.raises(ValidationError, match=r"\[training\].no_feedback must be true or false"):
        load_run_file(path)
