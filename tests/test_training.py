"""Trainer, run directories and the train / evaluate / check gradient commands."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, NumericalError, Protocol, ValidationError
from fbsnn_brian import reference as ref
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.cli.main import main
from fbsnn_brian.experiments.checks import check_gradient
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def spide_protocol(learning_rate: float = 0.01, backward_tau: float = 100) -> Protocol:
    return Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=backward_tau * ms)],
        plasticity=SPIDEPlasticity(learning_rate=learning_rate, scale=4.0, max_feedback_gain=0.99),
    )


def test_gradient_check_is_closer_to_ide_with_a_longer_perturbed_phase() -> None:
    short = check_gradient(layer_sizes=[40], perturbed_tau=100, n_samples=2, n_coordinates=60)
    long = check_gradient(layer_sizes=[40], perturbed_tau=300, n_samples=2, n_coordinates=60)
    # issue criterion: >= 0.95 at T_b = 100 tau and higher at 300 tau
    assert short["cosine_vs_ide"] >= 0.95
    assert long["cosine_vs_ide"] > short["cosine_vs_ide"]
    # the reference gradient itself agrees with finite differences (eps = 1e-6)
    assert short["cosine_ide_vs_finite_difference"] > 0.99999
    assert short["cosine_vs_finite_difference"] > 0.9


def test_backward_path_uses_the_updated_forward_weights() -> None:
    # Forward and backward share one Synapses variable: after an update of W, the next
    # sample's error must travel through the NEW transpose, not the initial one.
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[30, 20], n_classes=10, seed=5)
    initial = net.rate_model()
    TrainingSimulation(net, spide_protocol(learning_rate=0.5), device="numpy").train_chunk(
        digits.inputs[:1], digits.labels[:1], 0.5
    )
    after_first = net.rate_model()
    protocol = spide_protocol(learning_rate=1.0, backward_tau=300)
    TrainingSimulation(net, protocol, device="numpy").train_chunk(
        digits.inputs[1:2], digits.labels[1:2], 1.0
    )
    rates = simulate(
        _with_weights(net, after_first),
        Protocol([FreePhase(duration=30 * ms)]),
        inputs=digits.inputs[1:2],
        device="numpy",
    )
    simulated = tuple(layer[0] for layer in rates.layer_rates())
    x, label = digits.inputs[1], int(digits.labels[1])
    change = (after_first.input_weights - net.input_weights).ravel()

    def cosine(model: ref.RateModel) -> float:
        exact = ref.ide_gradients_at_rates(model, x, simulated, label).input_weights.ravel()
        return float(change @ exact / np.linalg.norm(change) / np.linalg.norm(exact))

    assert cosine(after_first) > 0.99
    assert cosine(after_first) > cosine(initial)


def _with_weights(template: FeedbackNetwork, model: ref.RateModel) -> FeedbackNetwork:
    copy = FeedbackNetwork(
        n_inputs=template.n_inputs,
        layer_sizes=list(template.layer_sizes),
        n_classes=template.n_classes,
        seed=template.seed,
    )
    copy.input_weights = model.input_weights
    copy.forward_weights = list(model.forward_weights)
    copy.biases = list(model.biases)
    copy.readout_weights = model.readout_weights
    copy.readout_bias = model.readout_bias
    copy.feedback_weights = model.feedback_weights
    return copy


def test_trainer_validates_its_input() -> None:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[10], n_classes=10, seed=0)
    trainer = Trainer(net, spide_protocol(), device="numpy", progress=False)
    inputs = load_digits().inputs[:4]
    with pytest.raises(
        ValidationError, match=r"labels must lie in \[0, 10\), got values in \[0, 12\]"
    ):
        trainer.fit(inputs, np.array([0, 1, 2, 12]), epochs=1)
    with pytest.raises(ValidationError, match=r"labels must be an integer array of shape \(4,\)"):
        trainer.fit(inputs, np.array([0.0, 1.0, 2.0, 3.0]), epochs=1)
    with pytest.raises(ValidationError, match="epochs must be a positive integer, got 0"):
        trainer.fit(inputs, np.array([0, 1, 2, 3]), epochs=0)
    with pytest.raises(ValidationError, match="schedule must be one of 'constant', 'cosine'"):
        Trainer(net, spide_protocol(), schedule="linear")
    with pytest.raises(ValidationError, match="protocol must have a PerturbedPhase"):
        Trainer(net, Protocol([FreePhase(duration=30 * ms)]))


def test_weights_file_round_trips(tmp_path: Path) -> None:
    net = FeedbackNetwork(
        n_inputs=6, layer_sizes=[5, 4], n_classes=3, seed=7, neuron="lif", tau_m=5 * ms
    )
    loaded = FeedbackNetwork.load(net.save(tmp_path / "weights.npz"))
    assert loaded.config() == net.config()
    for name in ("input_weights", "feedback_weights", "readout_weights", "readout_bias"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(net, name))
    for mine, theirs in zip(
        net.forward_weights + net.biases, loaded.forward_weights + loaded.biases, strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValidationError, match="no weights file at"):
        FeedbackNetwork.load(tmp_path / "missing.npz")


@pytest.mark.standalone
def test_trainer_learns_digits_and_the_commands_write_and_read_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    status = main(
        [
            "train", "--train-size", "800", "--test-size", "300", "--layers", "40", "--epochs", "2",
            "--out", str(out), "--no-progress", "--json",
        ]
    )  # fmt: skip
    assert status == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "samples_per_s",
        "wall_time_s",
        "mean_forward_rate",
        "mean_backward_rate",
    ):
        assert key in metrics
    # chance is 10%: two online epochs over 800 digits must lift held-out accuracy far above it
    assert metrics["test_accuracy"] > 0.7
    assert metrics["loop_gain"] <= 0.9 + 1e-9  # the norm restriction keeps the loop a contraction
    for name in ("weights.npz", "weights.nc", "history.nc", "recording.nc"):
        assert (out / name).is_file()
    # evaluate reads the run back and reproduces the final test accuracy exactly
    status = main(["evaluate", str(out), "--json"])
    assert status == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["test_accuracy"] == metrics["test_accuracy"]
    assert np.sum(evaluation["confusion_matrix"]) == 300
    # a finished run resumed from its last checkpoint trains nothing and keeps its history
    weights = (out / "weights.npz").read_bytes()
    # the cosine schedule depends on the number of epochs: a run with it cannot be extended
    assert main(["train", "--resume", str(out), "--no-progress", "--epochs", "9"]) == 2
    assert "only a run with the constant schedule can be extended" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--no-progress", "--lr", "0.1"]) == 2
    assert "--lr cannot change it" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["train_accuracy_per_epoch"] == metrics["train_accuracy_per_epoch"]
    assert resumed["test_accuracy"] == metrics["test_accuracy"]
    assert resumed["config"]["epochs"] == 2
    with np.load(out / "weights.npz") as after, np.load(io.BytesIO(weights)) as before:
        for name in before.files:
            np.testing.assert_array_equal(after[name], before[name])


def test_evaluate_refuses_a_directory_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is not a run directory (no metrics.json)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("bias", "message"),
    [(-5.0, "layer 1 did not spike for a whole chunk"), (5.0, "every neuron of layer 1 fired")],
)
def test_a_silent_or_saturated_layer_stops_training_before_its_checkpoint(
    tmp_path: Path, bias: float, message: str
) -> None:
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[8], n_classes=10, seed=0)
    net.biases = [np.full(8, bias)]
    trainer = Trainer(net, spide_protocol(), device="numpy", chunk_size=4, progress=False)
    with pytest.raises(NumericalError, match=message):
        trainer.fit(digits.inputs[:8], digits.labels[:8], epochs=1, checkpoint=tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()  # the failed chunk was not checkpointed
