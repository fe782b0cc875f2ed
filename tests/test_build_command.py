"""fbsnn build: generate and compile the training simulation without running it."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from fbsnn_brian.cli.main import main

SMALL = ["--inputs", "16", "--layers", "8", "--classes", "3", "--chunk-size", "2"]


@pytest.mark.standalone
def test_cpp_standalone_project_is_compiled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "project"
    assert main(["build", "--out", str(out), *SMALL, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpp_standalone" and result["network"] == "16-8-3"
    assert (out / "main").is_file()
    assert "spide_training" in (out / "main.cpp").read_text()


def test_an_unknown_device_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--out", str(tmp_path), "--device", "cuda_standalon", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "--device must be one of 'cpp_standalone', 'cuda_standalone', 'genn', got" in err
    assert "Did you mean 'cuda_standalone'?" in err


@pytest.mark.genn
@pytest.mark.parametrize("neuron", ["if", "alif"])
def test_genn_project_is_generated_or_the_missing_brian2genn_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], neuron: str
) -> None:
    out = tmp_path / "genn"
    code = main(
        ["build", "--device", "genn", "--out", str(out), *SMALL, "--neuron", neuron, "--json"]
    )
    if importlib.util.find_spec("brian2genn") is None:
        assert code == 2
        assert "brian2genn 1.7" in capsys.readouterr().err
    else:
        assert code == 0
        assert json.loads(capsys.readouterr().out)["device"] == "genn"
        model = (out / "magicnetwork_model.cpp").read_text()
        # the training network: error path and readout included
        for population in ("feedback_back", "readout_back", "readout_synapses"):
            assert f'"{population}", SynapseMatrixType::' in model
        # the adaptive LIF's adaptation current is a state variable of the layer
        assert ("w_a" in model) == (neuron == "alif")


@pytest.mark.cuda
@pytest.mark.skipif(
    importlib.util.find_spec("brian2cuda") is None or shutil.which("nvcc") is None,
    reason="needs brian2cuda (Python >= 3.12, brian2 == 2.10.1) and nvcc",
)
def test_cuda_standalone_project_compiles_without_a_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cuda"
    status = main(["build", "--device", "cuda_standalone", "--out", str(out), *SMALL, "--json"])
    assert status == 0, capsys.readouterr().err
    assert (out / "main").is_file()
    assert "-std=c++17" in (out / "makefile").read_text()
