"""GeNN (brian2genn) build of SPIDE training: same updates as TrainingSimulation, errors, GeNN.

The GeNN training network is first checked on Brian2's runtime device (no brian2genn needed):
with brian2genn's schedule it must compute the same weights as
:class:`~fbsnn_brian.build.training.TrainingSimulation`. The tests marked ``genn`` need
brian2genn (its own environment: Brian2 < 2.6, numpy < 2); those that build and run also need
GeNN 4.x (``GENN_PATH``), CPU-only is enough:
``GENN_PATH=... python -m pytest tests/test_genn_training.py -m genn``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import DeviceError, FeedbackNetwork, FreePhase, Protocol, ValidationError
from fbsnn_brian.build.devices.genn_training import GeNNTraining
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

needs_brian2genn = pytest.mark.skipif(
    importlib.util.find_spec("brian2genn") is None, reason="brian2genn is not installed"
)
needs_genn = pytest.mark.skipif(
    not os.environ.get("GENN_PATH"), reason="GeNN is not installed (GENN_PATH is unset)"
)


def protocol(**plasticity: object) -> Protocol:
    settings: dict[str, object] = {"learning_rate": 0.05, "scale": 4.0, "weight_decay": 1e-3}
    settings.update(plasticity)
    return Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(**settings),  # type: ignore[arg-type]
    )


def network(layers: list[int], neuron: str = "if", **options: object) -> FeedbackNetwork:
    return FeedbackNetwork(
        n_inputs=64,
        layer_sizes=layers,
        n_classes=10,
        seed=3,
        neuron=neuron,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("layers", "neuron", "plasticity"),
    [
        ([12], "if", {}),
        ([10, 8], "lif", {"feedback": "random"}),
        ([12], "if", {"loss": "mse", "scale": 20.0}),
    ],
)
def test_genn_training_network_learns_exactly_what_training_simulation_learns(
    layers: list[int],
    neuron: str,
    plasticity: dict[str, object],
    digits_inputs: np.ndarray,
    digits_labels: np.ndarray,
) -> None:
    # Same samples, same learning rates (one per sample), same starting weights: the GeNN
    # restatement (run here on runtime with brian2genn's schedule) must reproduce the
    # online SPIDE updates of the reference build up to floating-point rounding.
    inputs, labels = digits_inputs[:8], digits_labels[:8]
    rates = np.linspace(0.02, 0.06, 8)
    schedule = protocol(**plasticity)
    reference, restated, start = (network(layers, neuron) for _ in range(3))

    stats = TrainingSimulation(reference, schedule, device="numpy", chunk_size=8).train_chunk(
        inputs, labels, rates
    )
    result = GeNNTraining(restated, schedule).run_on_runtime(inputs, labels, rates)

    moved = 0.0
    for name, expected in reference.weight_arrays().items():
        got = restated.weight_arrays()[name]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)
        moved = max(moved, float(np.max(np.abs(expected - start.weight_arrays()[name]))))
    assert moved > 1e-3  # the samples did change the network
    assert result.n_samples == 8
    assert result.forward_rate == pytest.approx(stats.forward_rate, rel=1e-12)
    assert result.backward_rate == pytest.approx(stats.backward_rate, rel=1e-12)
    assert result.layer_forward_rates == pytest.approx(stats.layer_forward_rates, rel=1e-12)
    assert result.transport_mismatch == 0.0


def test_sample_layout_adds_four_steps_to_the_two_phases() -> None:
    training = GeNNTraining(network([6]), protocol())
    assert (training.free_steps, training.backward_steps) == (120, 400)
    assert training.window_start == 122  # the readout settles in two steps
    assert training.update_step == 522
    assert training.sample_steps == 524


@pytest.mark.parametrize(
    ("options", "plasticity", "setting"),
    [
        ({"rate_estimate": "exponential", "neuron": "lif"}, {}, "network.rate_estimate"),
        ({"input_coding": "spikes"}, {}, "network.input_coding"),
        ({}, {"momentum": 0.9}, "plasticity.momentum"),
        ({}, {"batch_size": 4}, "plasticity.batch_size"),
        ({}, {"input_dropout": 0.2}, "plasticity.input_dropout"),
        ({"biophysics": Biophysics(excitatory_fraction=0.8)}, {}, "excitatory_fraction"),
        ({"biophysics": Biophysics(reset="rest")}, {}, "biophysics.reset"),
    ],
)
def test_unsupported_settings_are_refused_by_name(
    options: dict[str, object], plasticity: dict[str, object], setting: str
) -> None:
    neuron = str(options.pop("neuron", "if"))
    with pytest.raises(ValidationError, match=setting) as error:
        GeNNTraining(network([6], neuron, **options), protocol(**plasticity))
    assert "GeNNTraining" in str(error.value)


def test_protocol_without_perturbed_phase_is_refused() -> None:
    with pytest.raises(ValidationError, match="PerturbedPhase and a SPIDEPlasticity"):
        GeNNTraining(network([6]), Protocol([FreePhase(duration=30 * ms)]))


def test_bad_labels_and_learning_rates_are_refused_before_building(
    digits_inputs: np.ndarray,
) -> None:
    training = GeNNTraining(network([6]), protocol())
    inputs = digits_inputs[:3]
    with pytest.raises(ValidationError, match=r"labels must be integers in \[0, 10\)"):
        training.run_on_runtime(inputs, np.array([0, 1, 10]), 0.01)
    with pytest.raises(ValidationError, match="shape \\(3,\\)"):
        training.run_on_runtime(inputs, np.array([0, 1]), 0.01)
    with pytest.raises(ValidationError, match="learning_rate must be finite and >= 0"):
        training.run_on_runtime(inputs, np.array([0, 1, 2]), -0.1)


def test_trainer_on_genn_refuses_other_rules_and_keeps_spide() -> None:
    with pytest.raises(ValidationError, match="device 'genn' trains with SPIDE only"):
        Trainer(network([6]), protocol(), device="genn", rule="ide", progress=False)
    trainer = Trainer(network([6]), protocol(), device="genn", use_gpu=False, progress=False)
    assert trainer.device == "genn" and trainer.use_gpu is False


@pytest.mark.skipif(
    importlib.util.find_spec("brian2genn") is not None, reason="brian2genn is installed"
)
def test_run_without_brian2genn_names_what_to_install(
    digits_inputs: np.ndarray, digits_labels: np.ndarray
) -> None:
    training = GeNNTraining(network([6]), protocol())
    with pytest.raises(DeviceError, match="brian2genn"):
        training.run(digits_inputs[:2], digits_labels[:2], 0.01, use_GPU=False)


# ---------------------------------------------------------------------- brian2genn and GeNN
@pytest.mark.genn
@needs_brian2genn
def test_generate_writes_the_training_project_without_genn(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    digits_inputs: np.ndarray,
    digits_labels: np.ndarray,
) -> None:
    monkeypatch.delenv("GENN_PATH", raising=False)
    training = GeNNTraining(network([12, 8]), protocol())
    project = training.generate(digits_inputs[:3], digits_labels[:3], 0.01, tmp_path / "p")
    model = (project / "magicnetwork_model.cpp").read_text()
    for population in ("stimulus", "layer_1", "layer_2", "readout"):
        assert f'addNeuronPopulation<{population}NEURON>("{population}"' in model
    for synapses in (
        "input_synapses",
        "forward_1",
        "forward_1_back",
        "feedback",
        "feedback_back",
        "readout_synapses",
        "readout_back",
        "softmax_sum",
    ):
        assert f'"{synapses}", SynapseMatrixType::' in model
    # every host-side sample start survived (brian2genn drops a run_regularly whose name
    # lacks '_run_regularly')
    engine = (project / "engine.cpp").read_text()
    for operation in ("layer_1", "layer_2", "readout", "input_synapses"):
        assert f"{operation}_run_regularly" in engine


@pytest.mark.genn
@needs_brian2genn
@needs_genn
def test_genn_training_reproduces_the_runtime_definition(
    tmp_path: Path, digits_inputs: np.ndarray, digits_labels: np.ndarray
) -> None:
    inputs, labels = digits_inputs[:12], digits_labels[:12]
    schedule = protocol()
    on_genn, on_runtime, start = (network([12, 8], "lif") for _ in range(3))

    genn_result = GeNNTraining(on_genn, schedule).run(
        inputs, labels, 0.05, directory=tmp_path / "train", use_GPU=False
    )
    runtime_result = GeNNTraining(on_runtime, schedule).run_on_runtime(inputs, labels, 0.05)

    for name, expected in on_runtime.weight_arrays().items():
        got = on_genn.weight_arrays()[name]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)
        assert np.max(np.abs(expected - start.weight_arrays()[name])) > 1e-4, name
    assert genn_result.forward_rate == runtime_result.forward_rate
    assert genn_result.backward_rate == runtime_result.backward_rate
    assert genn_result.transport_mismatch == 0.0
    assert genn_result.device == "genn (CPU)"
    assert 0 < genn_result.simulation_time_s < genn_result.build_time_s


@pytest.mark.genn
@needs_brian2genn
@needs_genn
def test_a_compiled_genn_project_reruns_chunk_after_chunk(
    tmp_path: Path, digits_inputs: np.ndarray, digits_labels: np.ndarray
) -> None:
    from fbsnn_brian.build.devices.genn_engines import GeNNTrainingSimulation

    schedule = protocol()
    on_genn, reference = network([12, 8]), network([12, 8])
    genn = GeNNTrainingSimulation(
        on_genn, schedule, chunk_size=6, use_GPU=False, directory=str(tmp_path / "p")
    )
    numpy = TrainingSimulation(reference, schedule, device="numpy", chunk_size=6)
    for first, last in [(0, 6), (6, 12), (12, 16)]:  # the last chunk is padded
        rates = np.linspace(0.02, 0.05, last - first)
        chunk = (digits_inputs[first:last], digits_labels[first:last], rates)
        got, expected = genn.train_chunk(*chunk), numpy.train_chunk(*chunk)
        assert got.forward_rate == pytest.approx(expected.forward_rate, rel=1e-12)
        assert got.backward_rate == pytest.approx(expected.backward_rate, rel=1e-12)
        for name, weights in reference.weight_arrays().items():
            np.testing.assert_allclose(
                on_genn.weight_arrays()[name], weights, rtol=0, atol=1e-12, err_msg=name
            )
    assert genn.last_result is not None and genn.last_result.n_samples == 4
    # the reruns did not build again: a rerun takes a fraction of the build
    assert genn.last_result.build_time_s < 0.5 * genn.compile_time_s


def test_rerun_refuses_more_samples_than_the_build_holds(
    digits_inputs: np.ndarray, digits_labels: np.ndarray, tmp_path: Path
) -> None:
    from fbsnn_brian.build.devices.genn_training import GeNNBinary

    training = GeNNTraining(network([6]), protocol())
    binary = GeNNBinary(
        project=tmp_path, run_duration=1.0, size=2, gpu=False, inputs={}, outputs={}
    )
    with pytest.raises(ValidationError, match="at most 2 samples per run of this build, got 3"):
        training.rerun(binary, digits_inputs[:3], digits_labels[:3], 0.01)


@pytest.mark.genn
@needs_brian2genn
@needs_genn
def test_trainer_on_genn_equals_trainer_on_runtime_epoch_by_epoch(
    digits_inputs: np.ndarray, digits_labels: np.ndarray
) -> None:
    # Two epochs (shuffled, cosine schedule, three chunks each: the GeNN project is built
    # once and rerun, the feedback cap applied after every chunk; one GeNN evaluation build
    # per epoch) against the same Trainer on Brian2's runtime device.
    data = (digits_inputs[:120], digits_labels[:120])
    validation = (digits_inputs[-80:], digits_labels[-80:])
    schedule = protocol(learning_rate=0.04)
    nets = {device: network([16]) for device in ("genn", "numpy")}
    histories = {
        device: Trainer(
            net,
            schedule,
            device=device,
            use_gpu=False,
            schedule="cosine",
            chunk_size=50,  # chunks of 50, 50 and 20: one GeNN build, then reruns
            progress=False,
        ).fit(*data, epochs=2, validation=validation)
        for device, net in nets.items()
    }

    for name, expected in nets["numpy"].weight_arrays().items():
        np.testing.assert_allclose(
            nets["genn"].weight_arrays()[name], expected, rtol=0, atol=1e-12, err_msg=name
        )
    for record in ("train_accuracy", "test_accuracy", "forward_rate", "backward_rate"):
        np.testing.assert_allclose(
            histories["genn"][record].values, histories["numpy"][record].values, rtol=1e-12
        )
    assert histories["genn"].attrs["device"] == "genn"
    assert histories["genn"]["test_accuracy"].values[-1] > 0.2  # it learned (chance: 0.1)


@pytest.mark.genn
@needs_brian2genn
@needs_genn
def test_fbsnn_train_on_genn_cpu_only_writes_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fbsnn_brian.cli.main import main

    out = tmp_path / "run"
    arguments = ["train", "--device", "genn", "--cpu-only", "--layers", "12", "--epochs", "1"]
    arguments += ["--train-size", "60", "--test-size", "40", "--out", str(out)]
    code = main([*arguments, "--no-progress", "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["config"]["device"] == "genn" and metrics["config"]["cpu_only"] is True
    assert metrics["n_train"] == 60 and 0 <= metrics["test_accuracy"] <= 1
    for name in ("history.nc", "weights.npz", "metrics.json", "learning_recording.nc"):
        assert (out / name).is_file(), name
