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
def test_cuda_standalone_compiles_here_and_reruns_elsewhere_without_nvcc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fbsnn_brian.build.devices.cuda import configure_cuda
    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    here = tmp_path / "here"
    argv = ["build", "--device", "cuda_standalone", "--compute-capability", "9.0", *SMALL]
    status = main([*argv, "--out", str(here), "--json"])
    assert status == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["compute_capability"] == 9.0 and not result["binary_reused"]
    assert (here / "main").is_file()
    makefile = (here / "makefile").read_text()
    assert "-std=c++17" in makefile and "sm_90" in makefile
    assert (
        json.loads((here / "fbsnn_build.json").read_text())["options"]["compute_capability"] == 9.0
    )

    # copied to another machine (another directory, no nvcc, no object files): the code
    # generated there is the code the binary was compiled from, so nothing is compiled
    there = tmp_path / "there"
    shutil.copytree(here, there)
    for objects in there.rglob("*.o"):
        objects.unlink()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("CUDA_PATH", raising=False)
    assert shutil.which("nvcc") is None
    assert main([*argv, "--out", str(there), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["binary_reused"], result["reason"]
    assert result["reason"].startswith("reused: the generated code and target")

    # for another GPU it would recompile, and says why (checked without compiling)
    configure_cuda(8.0)
    network = FeedbackNetwork(n_inputs=16, layer_sizes=[8], n_classes=3, seed=0)
    protocol = Protocol(
        [FreePhase(duration=30 * network.tau), PerturbedPhase(duration=100 * network.tau)],
        plasticity=SPIDEPlasticity(),
    )
    simulation = TrainingSimulation(
        network, protocol, device="cuda_standalone", chunk_size=2, directory=str(there)
    )
    build = simulation.compile(check_only=True)
    assert not build.cache_hit and "compute_capability" in build.compile_reason
