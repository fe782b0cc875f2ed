"""Checkpoints: a run killed with SIGKILL and resumed ends where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fbsnn_brian import ValidationError

TRAIN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from brian2 import ms
    from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, Trainer
    from fbsnn_brian.learning.augmentation import RandomShift
    from fbsnn_brian.io.datasets import load_digits
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

    device, checkpoint, out = sys.argv[1], sys.argv[2], sys.argv[3]
    digits = load_digits()
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[12], n_classes=10, seed=3)
    protocol = Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=20 * ms)],
        plasticity=SPIDEPlasticity(
            learning_rate=0.05, scale=4.0, momentum=0.5, batch_size=3, input_dropout=0.1
        ),
    )
    trainer = Trainer(
        net, protocol, device=device, chunk_size=8, schedule="cosine", seed=5,
        progress=False, augmentation=RandomShift(max_shift=1),
    )
    trainer.fit(
        digits.inputs[:48], digits.labels[:48], epochs=3, checkpoint=checkpoint, resume=True
    )
    net.save(out)
    """
)


def run_training(device: str, checkpoint: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, device, str(checkpoint), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def checkpoint_position(path: Path) -> tuple[int, int] | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
    except (OSError, ValueError, KeyError):
        return None
    return int(meta["epoch"]), int(meta["next_sample"])


@pytest.mark.parametrize(
    "device", ["numpy", pytest.param("cpp_standalone", marks=pytest.mark.slow)]
)
def test_a_killed_run_resumes_to_the_same_weights(device: str, tmp_path: Path) -> None:
    straight = run_training(device, tmp_path / "straight.npz", tmp_path / "straight_weights.npz")
    killed = run_training(device, tmp_path / "killed.npz", tmp_path / "killed_weights.npz")
    deadline = time.monotonic() + 600
    position = None
    while time.monotonic() < deadline and killed.poll() is None:
        position = checkpoint_position(tmp_path / "killed.npz")
        if position is not None and position[0] >= 1 and position[1] > 0:
            break  # inside the second epoch, between two chunks
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert position is not None and position[1] > 0
    assert not (tmp_path / "killed_weights.npz").exists()

    resumed = run_training(device, tmp_path / "killed.npz", tmp_path / "killed_weights.npz")
    for process in (straight, resumed):
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors.decode()[-2000:]
    with (
        np.load(tmp_path / "straight_weights.npz") as expected,
        np.load(tmp_path / "killed_weights.npz") as actual,
    ):
        assert set(expected.files) == set(actual.files)
        for name in expected.files:
            np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert checkpoint_position(tmp_path / "killed.npz") == (3, 0)


def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    from brian2 import ms

    from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, Trainer
    from fbsnn_brian.io.datasets import load_digits
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

    digits = load_digits()
    protocol = Protocol(
        [FreePhase(duration=10 * ms), PerturbedPhase(duration=10 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05),
    )

    def trainer(seed: int) -> Trainer:
        net = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=0)
        return Trainer(net, protocol, device="numpy", chunk_size=8, seed=seed, progress=False)

    path = tmp_path / "run.npz"
    trainer(0).fit(digits.inputs[:8], digits.labels[:8], epochs=1, checkpoint=path)
    with pytest.raises(ValidationError, match="these settings differ: seed"):
        trainer(1).fit(digits.inputs[:8], digits.labels[:8], epochs=1, checkpoint=path, resume=True)
    with pytest.raises(ValidationError, match="differ: data_sha256"):
        trainer(0).fit(
            digits.inputs[8:16], digits.labels[8:16], epochs=1, checkpoint=path, resume=True
        )
    with pytest.raises(ValidationError, match="resume=True needs a checkpoint path"):
        trainer(0).fit(digits.inputs[:8], digits.labels[:8], epochs=1, resume=True)
