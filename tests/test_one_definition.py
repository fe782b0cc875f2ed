"""One network definition for every device: the definitions know no device, devices adapt them.

The free-phase and training networks are defined once (``build/free_phase_network.py``,
``build/training_network.py``); what devices express differently is realised by rules objects
(``build/device_rules.py``, ``build/training_rules.py``), and a device module under
``build/devices/`` overrides only what its device forbids. These tests hold the structure:
the definitions import nothing from ``build/devices/`` and name no device in their code, and
brian2genn's rules override only constructs that the shared rules declare.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from fbsnn_brian.build.device_rules import DeviceRules
from fbsnn_brian.build.devices.genn_rules import GeNNRules
from fbsnn_brian.build.devices.genn_training_network import GeNNTrainingRules
from fbsnn_brian.build.free_phase_network import FreePhaseNetwork
from fbsnn_brian.build.training_network import TrainingNetwork
from fbsnn_brian.build.training_rules import TrainingRules

BUILD = Path(__file__).resolve().parents[1] / "fbsnn_brian" / "build"

#: The modules that define networks and their shared pieces.
DEFINITIONS = [
    "device_rules.py",
    "free_phase_network.py",
    "neurons.py",
    "plasticity.py",
    "training_network.py",
    "training_rules.py",
]

DEVICE_WORDS = ("genn", "cuda", "standalone")


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def device_mentions(source: str) -> list[str]:
    """Imports of build/devices and device names in the code (docstrings and comments aside)."""
    tree = ast.parse(source)
    docstrings = docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("fbsnn_brian.build.devices") or (
                node.module == "fbsnn_brian.build" and any(a.name == "devices" for a in node.names)
            ):
                found.append(f"line {node.lineno}: imports {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fbsnn_brian.build.devices"):
                    found.append(f"line {node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and any(w in node.value.lower() for w in DEVICE_WORDS):
                found.append(f"line {node.lineno}: string {node.value!r}")
        elif isinstance(node, ast.Name | ast.arg | ast.Attribute):
            name = (
                node.id
                if isinstance(node, ast.Name)
                else (node.arg if isinstance(node, ast.arg) else node.attr)
            )
            if any(w in name.lower() for w in DEVICE_WORDS):
                found.append(f"line {node.lineno}: name {name!r}")
    return found


def test_the_definitions_import_no_device_and_name_none() -> None:
    problems = {
        name: device_mentions((BUILD / name).read_text())
        for name in DEFINITIONS
        if device_mentions((BUILD / name).read_text())
    }
    assert problems == {}


def test_the_check_sees_a_device_flag() -> None:
    # the check itself: a definition with a device flag or a device import is caught
    flagged = "def define(self, genn: bool) -> None:\n    if genn:\n        pass\n"
    assert device_mentions(flagged)
    assert device_mentions("from fbsnn_brian.build.devices import standalone\n")
    assert device_mentions('x = "cpp_standalone"\n')
    assert not device_mentions('def f() -> None:\n    """Runs on cpp_standalone."""\n')


def test_the_definitions_take_rules_not_a_device() -> None:
    for definition in (FreePhaseNetwork, TrainingNetwork):
        parameters = inspect.signature(definition).parameters
        assert "rules" in parameters
        assert not any(w in name for name in parameters for w in DEVICE_WORDS)


def test_genn_overrides_only_constructs_the_shared_rules_declare() -> None:
    for rules, shared in ((GeNNRules, DeviceRules), (GeNNTrainingRules, TrainingRules)):
        own = {
            name
            for name, value in vars(rules).items()
            if callable(value) and not name.startswith("__")
        }
        declared = {name for name in dir(shared) if not name.startswith("__")}
        private_helpers = {name for name in own if name.startswith("_")}
        assert own - private_helpers <= declared, own - private_helpers - declared
