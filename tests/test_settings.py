"""The typed settings object is the one place a run's defaults, flags and run-file keys live."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from fbsnn_brian import ValidationError
from fbsnn_brian.cli import parsers, run_commands
from fbsnn_brian.cli.parsers import build_parser
from fbsnn_brian.experiments import alignment_check, run_data, runs
from fbsnn_brian.experiments.presets import PRESETS
from fbsnn_brian.experiments.run_file import SECTIONS, settings_from_tables
from fbsnn_brian.experiments.settings import (
    ALIGNMENT_SETTINGS,
    GROUPS,
    RunSettings,
    check_value,
    default_values,
    preset_values,
    reported_settings,
    setting_fields,
    shown_default,
)
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.model.network import FeedbackNetwork

PACKAGE = Path(__file__).resolve().parents[1] / "fbsnn_brian"

# options of other subcommands that share a flag of fbsnn train but not its default, and why
OTHER_DEFAULTS = {
    ("equilibrium", "--layers"): "one layer of 100: the equilibrium check's network",
    ("equilibrium", "--device"): "runtime: the check compares a Brian2 simulation",
    ("gradient", "--layers"): "one layer of 64: the gradient check's network",
    ("gradient", "--device"): "numpy: the reference simulation of the check",
    ("compare", "--epochs"): "10: the comparison trains every rule and seed",
    ("compare", "--chunk-size"): "16: the recorded rules' mini-batch",
    ("sweep", "--workers"): "the LocalCluster's processes, not the workers of one run",
    ("build", "--layers"): "256: the MNIST network a build is timed on",
    ("build", "--classes"): "10: a build has no data set to count classes in",
    ("build", "--chunk-size"): "200: SPIDE's chunk, which a build compiles",
}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by its last name (``train``, ``alignment``...)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update(subparsers(sub))
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_the_settings_are_the_49_fields_of_the_four_tables() -> None:
    fields = setting_fields()
    assert len(fields) == 49
    assert [table for table, *_ in fields.values()] == [
        table for table, keys in SECTIONS.items() for _ in keys
    ]
    assert list(SECTIONS) == ["data", "network", "protocol", "training"]
    assert all(meta.group in GROUPS for _, _, meta in fields.values())
    flags = [meta.flag for _, _, meta in fields.values()]
    assert len(set(flags)) == len(flags)
    assert runs.DEFAULTS == default_values() == RunSettings().values()


def test_the_typed_object_round_trips_through_its_flat_values() -> None:
    settings = RunSettings.from_values({"learning_rate": 0.1, "layers": [8, 4], "free_tau": 20.0})
    assert settings.training.learning_rate == 0.1
    assert settings.network.layers == [8, 4]
    assert settings.protocol.free_tau == 20.0
    assert RunSettings.from_values(settings.values()) == settings
    # the defaults' list is not shared between objects
    RunSettings().network.layers.append(5)
    assert RunSettings().network.layers == [128]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.training.learning_rate = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match=r"train_run: unknown configuration keys \['lr'\]"):
        RunSettings.from_values({"lr": 0.1}, owner="train_run")
    # a saved config.json with a key of an earlier version still loads
    assert RunSettings.from_saved({"epochs": 3, "retired": 1}).training.epochs == 3


def test_the_train_options_are_the_settings_with_their_help_and_default() -> None:
    train = subparsers(build_parser())["train"]
    found = options(train)
    args = train.parse_args([])
    for name, (_, _, meta) in setting_fields().items():
        action = found[meta.flag]
        assert action.dest == name
        # None: the option leaves the setting to --config, the preset or the default
        assert action.default is None and getattr(args, name) is None
        assert meta.help in (action.help or "")
        if not meta.switch:
            assert f"(default: {shown_default(name)})" in (action.help or "")
        if meta.choices is not None:
            assert action.metavar == "{" + ",".join(meta.choices()) + "}"
    settings = {action.dest for action in train._actions if action.dest in setting_fields()}
    assert settings == set(setting_fields())
    assert "--lr" in found and found["--lr"].dest == "learning_rate"


def test_the_help_lists_the_settings_in_their_groups() -> None:
    train = subparsers(build_parser())["train"]
    text = train.format_help()
    for group in GROUPS:
        assert f"\n{group}:\n" in text
    titles = {group.title: group for group in train._action_groups}
    biophysics = {action.dest for action in titles["biophysics"]._group_actions}
    output = {action.dest for action in titles["output"]._group_actions}
    assert {"alignment_directions", "out", "resume", "json"} <= output
    assert {"tau_m", "synapse", "noise_sigma"} <= biophysics
    assert "in units of tau" in found_help(train, "--tau-syn")


def found_help(parser: argparse.ArgumentParser, flag: str) -> str:
    return options(parser)[flag].help or ""


def test_the_report_lists_the_settings_marked_for_it() -> None:
    assert reported_settings() == tuple(
        name for name, (_, _, meta) in setting_fields().items() if meta.report
    )
    assert set(reported_settings()) <= set(default_values())


def test_shown_defaults_name_the_settings_values() -> None:
    assert shown_default("tau_m") == "20.0"
    assert shown_default("layers").startswith("the preset's, digits 128, mnist 256")
    assert "digits 0.08" in shown_default("learning_rate")
    assert shown_default("train_size") == "seeded split"


def test_the_alignment_options_are_its_settings() -> None:
    alignment = subparsers(build_parser())["alignment"]
    found = options(alignment)
    for name in ALIGNMENT_SETTINGS:
        _, _, meta = setting_fields()[name]
        assert found[meta.flag].dest == name and found[meta.flag].default is None
    # what the check cannot use is not offered
    assert "--epochs" not in found and "--lr" not in found and "--workers" not in found
    assert {"scale", "feedback", "free_tau", "device", "dataset", "layers"} <= set(
        ALIGNMENT_SETTINGS
    )


def test_other_subcommands_share_the_settings_defaults() -> None:
    """An option named like a setting takes its default, or a documented different one."""
    flags = {meta.flag: name for name, (_, _, meta) in setting_fields().items()}
    defaults = default_values()
    differing = set()
    for command, parser in subparsers(build_parser()).items():
        if command in ("train", "alignment"):
            continue
        for flag, action in options(parser).items():
            if flag not in flags or action.default is None:
                continue
            if action.default != defaults[flags[flag]]:
                differing.add((command, flag))
    assert differing == set(OTHER_DEFAULTS)


def test_no_default_of_a_setting_is_written_in_the_parsers() -> None:
    """The parsers read a shared default from the settings instead of writing it again."""
    flags = {meta.flag: name for name, (_, _, meta) in setting_fields().items()}
    defaults = default_values()
    written = []
    tree = ast.parse(inspect.getsource(parsers))
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument"):
            continue
        flag = next((a.value for a in call.args if isinstance(a, ast.Constant)), None)
        for keyword in call.keywords:
            if keyword.arg == "default" and flag in flags:
                try:
                    value = ast.literal_eval(keyword.value)
                except ValueError:
                    continue  # read from the settings
                if value == defaults[flags[flag]]:
                    written.append(f"{flag} = {value!r} (line {call.lineno})")
    assert written == []


def test_the_run_file_schema_is_derived_from_the_fields() -> None:
    hints = {
        "dataset": "str",
        "train_size": "int",
        "layers": "int_list",
        "learning_rate": "float",
        "cpu_only": "bool",
        "scheduler": "str",
        "sync_every": "int",
    }
    flat = {key: kind for table in SECTIONS.values() for key, kind in table.items()}
    assert {key: flat[key] for key in hints} == hints
    assert SECTIONS["protocol"] == {"free_tau": "float", "perturbed_tau": "float"}
    assert settings_from_tables({"training": {"epochs": 2}}, "here") == {"epochs": 2}
    with pytest.raises(ValidationError, match=r"here: \[training\]\.cpu_only must be true or"):
        settings_from_tables({"training": {"cpu_only": 1}}, "here")
    with pytest.raises(ValidationError, match=r"\[network\]\.dt must be a number, got 'x'"):
        settings_from_tables({"network": {"dt": "x"}}, "here")
    with pytest.raises(ValidationError, match=r"\[data\]\.lr is not a known setting"):
        settings_from_tables({"data": {"lr": 1}}, "here")
    assert check_value("x", "tau_m", 3) == 3.0 and isinstance(check_value("x", "tau_m", 3), float)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_value_is_a_setting_of_its_type(name: str) -> None:
    values = preset_values(name)
    assert values == PRESETS[name]
    assert RunSettings.from_values(values).values().items() >= values.items()


def test_a_preset_with_a_foreign_key_or_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PRESETS, "broken", {"lr": 0.1})
    with pytest.raises(ValidationError, match="preset 'broken': 'lr' is not a setting"):
        preset_values("broken")
    monkeypatch.setitem(PRESETS, "broken", {"epochs": 2.5})
    with pytest.raises(ValidationError, match="preset 'broken': epochs must be an integer"):
        preset_values("broken")
    with pytest.raises(ValidationError, match="--preset must be one of"):
        preset_values("cifar")


def test_the_settings_defaults_are_the_models_defaults() -> None:
    """Where the model has a default for the same parameter, the settings repeat no other."""
    settings = RunSettings()
    network = runs.network_from_settings(settings, 64, 10)
    model = FeedbackNetwork(n_inputs=64, layer_sizes=settings.network.layers, n_classes=10)
    assert network.config() == model.config()
    assert network.biophysics.config() == Biophysics().config()


def test_resolution_order_defaults_preset_given() -> None:
    train = run_data.split_dataset("digits", train_size=None, test_size=None, split_seed=0)[0]
    settings = runs.resolve_settings({"epochs": 2, "momentum": None}, train)
    assert settings.data.preset == "digits"
    assert settings.training.learning_rate == PRESETS["digits"]["learning_rate"]
    assert settings.training.epochs == 2
    assert settings.training.momentum == RunSettings().training.momentum
    with pytest.raises(ValidationError, match=r"unknown configuration keys \['learning_rates'\]"):
        runs.resolve_settings({"learning_rates": None}, train)


def test_config_json_holds_every_setting_once(tmp_path: Path) -> None:
    """What train_run writes is the flat view; an earlier run's file reads back unchanged."""
    values = RunSettings.from_values({"epochs": 2}).values()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    assert RunSettings.from_saved(json.loads(path.read_text())).values() == values


@pytest.mark.parametrize(
    "function",
    [
        runs.network_from_settings,
        runs.protocol_from_settings,
        runs.trainer_from_settings,
        runs.fit_of,
        runs.resolve_settings,
        runs.resolve_run,
        runs.train_run,
        runs.evaluate_run,
        run_data.run_datasets,
        alignment_check.check_alignment,
        run_commands.run_config,
        run_commands.run_train,
        run_commands.run_check_alignment,
    ],
)
def test_the_functions_assembling_a_run_name_their_types(function: object) -> None:
    annotations = inspect.get_annotations(function)  # type: ignore[arg-type]
    assert "return" in annotations
    assert all("Any" not in str(hint) for hint in annotations.values())


def test_a_run_file_of_every_default_reads_back_as_the_defaults(tmp_path: Path) -> None:
    """Each table's keys and types, as the run file reads them, are the fields'."""
    from fbsnn_brian.experiments.run_file import load_run_file

    lines = []
    for table, keys in SECTIONS.items():
        lines.append(f"[{table}]")
        for key in keys:
            value = default_values()[key]
            if value is not None:  # TOML has no null: a None default is left out
                lines.append(f"{key} = {json.dumps(value)}")
    path = tmp_path / "defaults.toml"
    path.write_text("\n".join(lines) + "\n")
    read = load_run_file(path)
    assert RunSettings.from_values(read) == RunSettings()
    assert all(type(read[key]) is type(default_values()[key]) for key in read)
