"""cuda_standalone without brian2cuda: the refusals, the GPU target and what keys a build.

Python 3.11 (the main suite) has no brian2cuda, so training on cuda_standalone is refused by
name there; the compile-here path itself is the ``cuda``-marked test of
``tests/test_build_command.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.build.devices import cuda, stamp, standalone
from fbsnn_brian.build.devices.registry import REGISTRY, device_names
from fbsnn_brian.cli.main import main
from fbsnn_brian.errors import DeviceError, ValidationError
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

without_brian2cuda = pytest.mark.skipif(
    importlib.util.find_spec("brian2cuda") is not None, reason="brian2cuda is installed here"
)


def _protocol() -> Protocol:
    return Protocol(
        [FreePhase(duration=4 * ms), PerturbedPhase(duration=4 * ms)], plasticity=SPIDEPlasticity()
    )


def test_the_registry_trains_and_simulates_on_cuda_standalone() -> None:
    spec = REGISTRY["cuda_standalone"]
    assert spec.standalone and spec.gpu
    assert "cuda_standalone" in device_names("train")
    assert "cuda_standalone" in device_names("simulate")
    assert not REGISTRY["cpp_standalone"].gpu


@without_brian2cuda
def test_trainer_refuses_cuda_standalone_naming_what_to_install() -> None:
    network = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
    with pytest.raises(DeviceError) as caught:
        Trainer(network, _protocol(), device="cuda_standalone", progress=False)
    message = str(caught.value)
    assert "brian2cuda" in message
    assert 'pip install -e ".[cuda]"' in message
    assert "Python >= 3.12" in message and "nvcc" in message


@without_brian2cuda
def test_fbsnn_train_refuses_cuda_standalone_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--device", "cuda_standalone", "--epochs", "1", "--out", str(out)]
    assert main([*argv, "--train-size", "20", "--test-size", "10", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cuda_standalone" in err and 'pip install -e ".[cuda]"' in err
    assert not out.exists()


def test_the_build_key_holds_the_gpu_target() -> None:
    configuration = {"network": "784-256-10", "chunk_size": 200}
    keys = {
        capability: standalone.build_key(
            "training",
            configuration,
            target="cuda_standalone",
            options={"device": "cuda_standalone", "compute_capability": capability},
        )
        for capability in (8.0, 9.0)
    }
    assert keys[8.0] != keys[9.0]
    assert keys[9.0] == standalone.build_key(
        "training",
        configuration,
        target="cuda_standalone",
        options={"device": "cuda_standalone", "compute_capability": 9.0},
    )
    assert standalone.build_key("training", configuration) not in keys.values()


def test_the_compute_capability_comes_from_the_argument_the_environment_or_the_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ = {cuda.ENVIRONMENT: "sm_90"}
    assert cuda.gpu_target(None, environ=environ) == 9.0
    assert cuda.gpu_target("8.0", environ=environ) == 8.0  # the argument first
    monkeypatch.setattr(cuda, "_nvidia_smi_capability", lambda: "9.0")
    assert cuda.gpu_target(None, environ={}) == 9.0
    monkeypatch.setattr(cuda, "_nvidia_smi_capability", lambda: None)
    with pytest.raises(DeviceError, match="FBSNN_COMPUTE_CAPABILITY=9.0"):
        cuda.gpu_target(None, environ={})
    for wrong in ("nine", "5.2", "sm_x"):
        with pytest.raises(ValidationError):
            cuda.parse_compute_capability(wrong)


def _project(root: Path, source: str = "int main() { return 0; }") -> Path:
    (root / "code_objects").mkdir(parents=True, exist_ok=True)
    (root / "main.cu").write_text(source)
    (root / "code_objects" / "layer.cu").write_text(f"// project {root}\nint x = 1;")
    (root / "makefile").write_text(f"INCLUDES = -I{root}/elsewhere\n")
    (root / "main").write_text("binary")
    return root


def test_a_binary_is_reused_only_for_the_code_and_target_it_was_compiled_from(
    tmp_path: Path,
) -> None:
    options = {"device": "cuda_standalone", "compute_capability": 9.0}
    here = _project(tmp_path / "here")
    reusable, reason = stamp.reuse_check(here, options)
    assert not reusable and stamp.STAMP in reason
    stamp.write_stamp(here, options)
    assert json.loads((here / stamp.STAMP).read_text())["options"] == options
    assert stamp.reuse_check(here, options)[0]
    # copied to another machine, another directory: the project's path and the makefile's
    # library paths do not count, the generated code and the GPU target do
    there = tmp_path / "there"
    _project(there)
    (there / stamp.STAMP).write_text((here / stamp.STAMP).read_text())
    (there / "makefile").write_text("INCLUDES = -I/opt/cuda/include\n")
    assert stamp.reuse_check(there, options)[0]
    reusable, reason = stamp.reuse_check(there, {**options, "compute_capability": 8.0})
    assert not reusable and "compute_capability" in reason
    (there / "main.cu").write_text("int main() { return 1; }")
    reusable, reason = stamp.reuse_check(there, options)
    assert not reusable and "generated code differs" in reason
    (there / "main").unlink()
    assert "no compiled binary" in stamp.reuse_check(there, options)[1]
