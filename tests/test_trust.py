"""Runs a user can trust: interruption, protected run directories, data-fitting defaults, CLI."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fbsnn_brian.cli.main import main
from fbsnn_brian.version import __version__

# a small cpp_standalone run of several chunks per epoch; every test below shares its build
SMALL_RUN = [
    "--train-size", "400", "--test-size", "100", "--layers", "16", "--epochs", "2",
    "--chunk-size", "50", "--free", "20", "--perturbed", "40",
]  # fmt: skip


def _fbsnn(args: list[str], **options: object) -> subprocess.Popen[str]:
    """``fbsnn ARGS`` in its own process group, with SIGINT at its default (as in a terminal)."""

    def default_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from fbsnn_brian.cli import main; sys.exit(main())",
         *args],
        process_group=0,
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def _weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: np.array(data[name]) for name in data.files}


@pytest.mark.standalone
@pytest.mark.slow
def test_sigint_to_the_process_group_then_resume_gives_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    complete = _fbsnn(["train", *SMALL_RUN, "--out", str(reference), "--no-progress"])
    _, err = complete.communicate(timeout=600)
    assert complete.returncode == 0, err

    run = tmp_path / "run"
    interrupted = _fbsnn(["train", *SMALL_RUN, "--out", str(run), "--no-progress"])
    # wait for the first checkpoint (compilation done, one chunk trained), then press Ctrl-C
    deadline = time.monotonic() + 600
    while not (run / "checkpoint.npz").exists() and interrupted.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(interrupted.pid, signal.SIGINT)
    _, err = interrupted.communicate(timeout=600)
    assert interrupted.returncode == 130, err
    assert "interrupted (SIGINT) after chunk" in err
    assert f"continue with: fbsnn train --resume {run}" in err
    assert not (run / "weights.npz").exists()  # no result of a truncated run

    resumed = _fbsnn(["train", "--resume", str(run), "--no-progress"])
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    expected, got = _weights(reference / "weights.npz"), _weights(run / "weights.npz")
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.standalone
def test_a_finished_run_is_never_overwritten_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train", *SMALL_RUN, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    (out / "report").mkdir()
    (out / "report" / "report.md").write_text("derived from the first run")
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    capsys.readouterr()

    assert main(["train", *SMALL_RUN, "--lr", "0.02", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is not empty" in err and "--overwrite" in err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before

    # --overwrite replaces the run, derived files included
    assert main(["train", *SMALL_RUN, "--epochs", "1", "--lr", "0.02", "--out", str(out),
                 "--no-progress", "--overwrite"]) == 0  # fmt: skip
    assert not (out / "report").exists()
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 0.02


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--lr", "-1"], "learning_rate"),
        (["--layers", "16", "--device", "gpu"], "device"),
        (["--dataset", "npz:missing.npz"], "missing.npz"),
        (["--preset", "cifar"], "--preset"),
        (["--validation-size", "5000"], "--validation-size"),
    ],
)
def test_a_refused_configuration_creates_no_directory(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", *options, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # not even runs/<timestamp>/


def _tabular_npz(path: Path) -> Path:
    from sklearn.datasets import load_wine

    data = load_wine()
    features = (data.data - data.data.min(axis=0)) / np.ptp(data.data, axis=0)
    np.savez(path, X=features, y=data.target)
    return path


@pytest.mark.standalone
def test_tabular_npz_data_trains_above_chance_with_the_default_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tabular_npz(tmp_path / "wine.npz")  # 13 features: not an image
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{data}", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "not images" not in err or "without image shifts" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["preset"] == "generic"
    assert metrics["config"]["shift"] == 0
    assert metrics["test_accuracy"] > 0.6  # three classes: chance is about 0.4


def test_version_and_global_options_after_the_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fbsnn_brian {__version__}"
    # -v after the subcommand is accepted as before it
    assert main(["check", "equilibrium", "--layers", "8", "--samples", "1", "--duration", "5",
                 "--device", "numpy", "--json", "-v"]) == 0  # fmt: skip


def test_every_option_help_shows_its_default() -> None:
    from fbsnn_brian.cli.parsers import build_parser

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += parsers(sub)
        return found

    missing = []
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue  # positionals, flags and required options have no default to show
            if "default" not in parser._get_formatter()._expand_help(action):
                missing.append(f"{parser.prog} {action.option_strings[0]}")
    assert missing == []


@pytest.mark.standalone
def test_evaluate_honours_sizes_and_names_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train", *SMALL_RUN, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--test-size", "40", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_test"] == 40
    assert main(["evaluate", str(out), "--test-size", "0"]) == 2
    assert "--test-size must be a positive integer, got 0" in capsys.readouterr().err
    # a separate file is scored whole
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "other.npz", X=rng.uniform(size=(30, 64)), y=rng.integers(0, 10, 30))
    assert main(["evaluate", str(out), "--dataset", f"npz:{tmp_path / 'other.npz'}",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["n_test"] == 30
    # more classes than the network
    np.savez(tmp_path / "more.npz", X=rng.uniform(size=(30, 64)), y=np.arange(30) % 12)
    assert main(["evaluate", str(out), "--dataset", f"npz:{tmp_path / 'more.npz'}"]) == 2
    err = capsys.readouterr().err
    assert "labels up to 11" in err and "10 classes" in err


@pytest.mark.standalone
def test_a_separate_test_file_trains_on_the_whole_training_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fbsnn_brian.io.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "train.npz", X=digits.inputs[:300], y=digits.labels[:300])
    np.savez(tmp_path / "test.npz", X=digits.inputs[1500:1600], y=digits.labels[1500:1600])
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{tmp_path / 'train.npz'}", "--test-dataset",
                 f"npz:{tmp_path / 'test.npz'}", "--layers", "16", "--epochs", "1", "--out",
                 str(out), "--no-progress", "--chunk-size", "50", "--free", "20",
                 "--perturbed", "40"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 300 and metrics["n_test"] == 100
