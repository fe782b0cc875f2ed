"""TOML training configurations: every problem is reported with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from fbsnn_brian import ValidationError
from fbsnn_brian.cli.main import main
from fbsnn_brian.experiments.run_file import SECTIONS, load_run_file
from fbsnn_brian.experiments.runs import DEFAULTS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_the_tables_cover_every_setting_once() -> None:
    keys = [key for table in SECTIONS.values() for key in table]
    assert sorted(keys) == sorted(DEFAULTS)


def test_a_valid_file_gives_flat_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[data]\ndataset = "digits"\ntest_size = 100\n[network]\nlayers = [20, 10]\n'
        "max_feedback_gain = 1\n[protocol]\nfree_tau = 20\n[training]\nlearning_rate = 0.1\n",
    )
    settings = load_run_file(path)
    assert settings == {
        "dataset": "digits",
        "test_size": 100,
        "layers": [20, 10],
        "max_feedback_gain": 1.0,
        "free_tau": 20.0,
        "learning_rate": 0.1,
    }
    assert isinstance(settings["free_tau"], float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[trainng]\nepochs = 3\n", "unknown table [trainng]; allowed: [data], [network], "),
        ("[trainng]\nepochs = 3\n", "Did you mean 'training'?"),
        ("[training]\nepoch = 3\n", "[training].epoch is not a known setting; allowed in"),
        ("[training]\nepoch = 3\n", "Did you mean 'epochs'?"),
        ('[training]\nepochs = "3"\n', "[training].epochs must be an integer, got '3'"),
        ("[training]\nepochs = 3.5\n", "[training].epochs must be an integer, got 3.5"),
        ("[training]\nepochs = true\n", "[training].epochs must be an integer, got True"),
        ('[training]\nlearning_rate = "fast"\n', "learning_rate must be a number, got 'fast'"),
        ("[network]\nlayers = 128\n", "[network].layers must be a list of integers, got 128"),
        ("[network]\nlayers = []\n", "[network].layers must be a list of integers, got []"),
        ("[network]\nlayers = [1.5]\n", "must be a list of integers, got [1.5]"),
        ("[data]\ndataset = 7\n", "[data].dataset must be a string, got 7"),
        ("data = 3\n", "[data] must be a table of settings, got 3"),
        ("[training\nepochs = 3\n", "is not valid TOML"),
    ],
)
def test_bad_files_are_reported_with_the_key_path(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_run_file(write(tmp_path, text))
    assert message in str(info.value)
    assert str(tmp_path / "run.toml") in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="run file: no file at"):
        load_run_file(tmp_path / "none.toml")


def test_the_command_reports_a_bad_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[training]\nlearnig_rate = 0.1\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "[training].learnig_rate is not a known setting" in err
    assert "Did you mean 'learning_rate'?" in err and "Traceback" not in err


def test_options_on_the_command_line_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fbsnn_brian.experiments.runs

    captured: dict[str, object] = {}

    def fake_train_run(config: dict[str, object], *args: object, **kwargs: object) -> None:
        captured.update(config)
        raise ValidationError("stopped before training")

    monkeypatch.setattr(fbsnn_brian.experiments.runs, "train_run", fake_train_run)
    path = write(tmp_path, "[training]\nepochs = 3\nlearning_rate = 0.2\n")
    assert main(["train", "--config", str(path), "--lr", "0.05"]) == 2
    assert captured == {"epochs": 3, "learning_rate": 0.05}
