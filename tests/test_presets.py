"""Training presets: names, keys, and agreement with the committed selection results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.presets import PRESETS, default_preset, preset_settings
from fbsnn_brian.experiments.runs import DEFAULTS

RESULTS = Path(__file__).resolve().parent.parent / "analysis" / "results"


def test_unknown_preset_names_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as error:
        preset_settings("cifar")
    message = str(error.value)
    assert "--preset" in message and "'cifar'" in message
    for name in PRESETS:
        assert repr(name) in message


def test_preset_settings_is_a_copy() -> None:
    settings = preset_settings("digits")
    settings["layers"].append(7)
    assert PRESETS["digits"]["layers"] == preset_settings("digits")["layers"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_keys_are_run_settings(name: str) -> None:
    assert set(PRESETS[name]) <= set(DEFAULTS)


def test_default_preset() -> None:
    assert default_preset("digits", 64) == "digits"
    assert default_preset("idx:/data/mnist", 784) == "mnist"
    assert default_preset("idx:/data/small", 196) == "generic"
    assert default_preset("npz:/data/mnist.npz", 784) == "generic"
    assert default_preset("npz:/data/wine.npz", 13) == "generic"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_the_selected_settings(name: str) -> None:
    result = json.loads((RESULTS / f"presets_{name}.json").read_text())
    assert result["complete"]
    assert result["preset"] == name
    assert result["chosen"] == PRESETS[name]
