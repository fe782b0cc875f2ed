"""The device registry carries what differs between devices; no other module compares a name.

Outside ``build/devices/`` no module may decide anything by comparing a device's name or kind:
it asks the registry entry (:class:`~fbsnn_brian.build.devices.registry.Device`) or its engines
(:func:`~fbsnn_brian.build.devices.engines.engines_of`) instead.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fbsnn_brian.build.devices.engines import Brian2Engines, GeNNEngines, engines_of
from fbsnn_brian.build.devices.genn_engines import GeNNEvaluation, GeNNTrainingSimulation
from fbsnn_brian.build.devices.registry import (
    GROUND_TRUTH_DEVICES,
    REGISTRY,
    device_names,
)
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.errors import DeviceError, ValidationError
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.model.protocol import FreePhase, Protocol
from fbsnn_brian.rules.learning_rules import RULES

PACKAGE = Path(__file__).resolve().parents[1] / "fbsnn_brian"
DEVICES_FOLDER = PACKAGE / "build" / "devices"

#: Every string a device decision could compare: the registry's names and the kinds.
DEVICE_WORDS = frozenset(REGISTRY) | {"runtime", "standalone", "genn"}

_COMPARING = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _device_operand(node: ast.expr) -> str | None:
    """What makes ``node`` a device operand of a comparison (None: nothing)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return repr(node.value) if node.value in DEVICE_WORDS else None
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for element in node.elts:
            found = _device_operand(element)
            if found is not None:
                return found
        return None
    if isinstance(node, ast.Attribute) and node.attr == "kind":
        return f".kind of {ast.unparse(node.value)}"
    return None


def device_comparisons(source: str) -> list[str]:
    """Every comparison (==, !=, in, not in, match case) of a device name or kind in ``source``.

    Returns ``'line N: the comparison (why)'`` for each.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, _COMPARING) for op in node.ops):
            for operand in (node.left, *node.comparators):
                why = _device_operand(operand)
                if why is not None:
                    found.append(f"line {node.lineno}: {ast.unparse(node)} ({why})")
                    break
        elif isinstance(node, ast.MatchValue):
            why = _device_operand(node.value)
            if why is not None:
                found.append(f"line {node.lineno}: case {ast.unparse(node.value)} ({why})")
    return found


def test_the_check_finds_every_form_of_device_comparison() -> None:
    branches = [
        'if device.kind == "genn": pass',
        "if spec.kind != other: pass",
        'where = "cpp_standalone" if settings["device"] == "cpp_standalone" else "runtime"',
        'x = name in ("cpp_standalone", "runtime")',
        'x = name not in ["numpy", "cython"]',
        'x = "cuda_standalone" in names',
        'x = {"standalone", "other"} == kinds',
        'match device:\n    case "genn":\n        pass',
    ]
    for branch in branches:
        assert device_comparisons(branch), branch
    allowed = [
        'def f(device: str = "cpp_standalone") -> None: ...',
        'simulate(net, device="numpy")',
        'x = settings["device"]',
        'x = name == "spide"',
        'x = REGISTRY["genn"].ground_truth',
        "x = spec.kind",
    ]
    for line in allowed:
        assert device_comparisons(line) == [], line


def test_no_module_outside_the_devices_compares_a_device_name_or_kind() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)} {comparison}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if DEVICES_FOLDER not in path.parents
        for comparison in device_comparisons(path.read_text())
    ]
    assert found == [], "ask the device registry instead:\n" + "\n".join(found)


# ---------------------------------------------------------------------- the entries' behaviour
def test_every_entry_names_a_ground_truth_device_that_runs_it_itself() -> None:
    assert set(GROUND_TRUTH_DEVICES) == {"runtime", "cpp_standalone"}
    for device in REGISTRY.values():
        truth = REGISTRY[device.ground_truth]
        assert truth.simulate and truth.runs_ground_truth, device.name
    # runtime devices compute it on runtime (nothing to compile), compiled ones on one binary
    assert [name for name in REGISTRY if REGISTRY[name].ground_truth == "runtime"] == [
        "runtime",
        "numpy",
        "cython",
    ]
    assert not REGISTRY["genn"].runs_ground_truth and REGISTRY["cpp_standalone"].runs_ground_truth


def test_genn_refuses_by_name_the_rules_and_options_it_does_not_train() -> None:
    genn = REGISTRY["genn"]
    genn.check_training("Trainer", rule="spide", learn_feedback=True)
    with pytest.raises(
        ValidationError, match="device 'genn' trains with SPIDE only, got rule 'ide'"
    ):
        genn.check_training("Trainer", rule="ide", learn_feedback=True)
    with pytest.raises(
        ValidationError, match=r"'genn' learns every weight.*runs on runtime, numpy"
    ):
        genn.check_training("Trainer", rule="spide", learn_feedback=False)
    for name in device_names("train"):
        if name != "genn":
            for rule in RULES:
                REGISTRY[name].check_training("Trainer", rule=rule, learn_feedback=False)


def _network() -> FeedbackNetwork:
    return FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)


def _protocol(network: FeedbackNetwork) -> Protocol:
    return Protocol(
        [FreePhase(duration=5 * network.tau), PerturbedPhase(duration=5 * network.tau)],
        plasticity=SPIDEPlasticity(),
    )


def test_every_entry_builds_its_own_training_engine_and_evaluator() -> None:
    network = _network()
    protocol = _protocol(network)
    free = Protocol([protocol.free_phase])

    def built(name: str) -> tuple[object, object, object]:
        engines = engines_of(REGISTRY[name])
        assert engines.device is REGISTRY[name]
        training = engines.training(network, protocol, chunk_size=3, directory=None, use_gpu=False)
        evaluation = engines.evaluation(network, free, chunk_size=3, directory=None, use_gpu=False)
        return engines, training, evaluation

    for name in ("runtime", "numpy", "cython", "cpp_standalone"):
        engines, training, evaluation = built(name)
        assert isinstance(engines, Brian2Engines)
        assert isinstance(training, TrainingSimulation) and training.device == name
        assert isinstance(evaluation, FreeRunSimulation) and evaluation.device == name
    engines, training, evaluation = built("genn")
    assert isinstance(engines, GeNNEngines)
    assert isinstance(training, GeNNTrainingSimulation) and training.use_GPU is False
    assert isinstance(evaluation, GeNNEvaluation) and evaluation.use_GPU is False


@pytest.mark.skipif(importlib.util.find_spec("brian2genn") is not None, reason="has brian2genn")
def test_the_trainer_trains_and_evaluates_with_the_engines_of_its_device() -> None:
    network = _network()
    inputs, labels = np.full((2, 4), 0.5), np.array([0, 1])
    trainer = Trainer(network, _protocol(network), device="genn", use_gpu=False, progress=False)
    # the GeNN engines: both build a GeNN project first, and say what is missing here
    with pytest.raises(DeviceError, match="brian2genn"):
        trainer.predict(inputs)
    with pytest.raises(DeviceError, match="brian2genn"):
        trainer.fit(inputs, labels, epochs=1)
    trainer = Trainer(network, _protocol(network), device="numpy", progress=False)
    assert trainer.predict(inputs).shape == (2,)


@pytest.mark.skipif(importlib.util.find_spec("brian2cuda") is not None, reason="has brian2cuda")
def test_a_device_without_its_install_names_what_it_needs() -> None:
    network = _network()
    with pytest.raises(DeviceError, match="needs brian2cuda") as error:
        Trainer(network, _protocol(network), device="cuda_standalone", progress=False)
    assert REGISTRY["cuda_standalone"].needs.split()[0] in str(error.value)


@pytest.mark.skipif(importlib.util.find_spec("brian2genn") is not None, reason="has brian2genn")
def test_genn_build_without_brian2genn_names_what_it_needs(tmp_path: Path) -> None:
    network = _network()
    engines = engines_of(REGISTRY["genn"])
    with pytest.raises(DeviceError, match="brian2genn 1.7") as error:
        engines.generate(
            network, _protocol(network), samples=2, directory=str(tmp_path), compute_capability=None
        )
    assert REGISTRY["genn"].needs.split(" (")[0] in str(error.value)
