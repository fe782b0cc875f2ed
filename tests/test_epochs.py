"""The epoch loop shared by the Trainer and the distributed run, and the engines' compile.

:class:`~fbsnn_brian.learning.epochs.EpochLoop` is driven here by a stand-in training step
(numpy arithmetic that draws from every generator and changes weights and optimizer state), so
that its checkpoints and resume are checked without a simulation; the Trainer's and the
workers' runs through it are checked bit for bit in test_checkpoint.py, test_trust.py and
test_workers.py.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.build.devices.standalone import compile_all
from fbsnn_brian.build.training import ChunkStatistics, TrainingSimulation
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.learning.epochs import Epoch, EpochLoop
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

LEARNING = Path(__file__).resolve().parents[1] / "fbsnn_brian" / "learning"
CHUNK = 4
N_SAMPLES = 20


def private_uses(directory: Path) -> list[str]:
    """``file:line name`` of every underscore attribute of an object other than ``self`` and
    of every underscore name imported from another module, in the modules of ``directory``."""
    found = []
    for path in sorted(directory.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Attribute) and not (
                isinstance(node.value, ast.Name) and node.value.id == "self"
            ):
                names = [node.attr]
            elif isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
            found += [
                f"{path.name}:{getattr(node, 'lineno', 0)} {name}"
                for name in names
                if name.startswith("_") and not name.endswith("__")
            ]
    return found


def test_no_learning_module_reaches_into_another_objects_private_members() -> None:
    assert private_uses(LEARNING) == []


class StubEngine:
    """The checkpointed state of a training engine, without a simulation."""

    compile_time_s = 0.0
    build_cache_hit = False

    def __init__(self) -> None:
        self.dropout_generator = np.random.default_rng(11)
        self._velocity = {"velocity": np.zeros(3)}

    @property
    def optimizer_state(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self._velocity.items()}

    @optimizer_state.setter
    def optimizer_state(self, state: dict[str, np.ndarray]) -> None:
        self._velocity = {name: np.array(value) for name, value in state.items()}

    def compile(self, *, check_only: bool = False) -> None:
        return None


class KilledError(Exception):
    """Stands for a kill -9 between two chunks (after the checkpoint of the second)."""


def make_loop(checkpoint: Path, *, resume: bool) -> tuple[EpochLoop, FeedbackNetwork, StubEngine]:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=0)
    engine = StubEngine()
    digits = load_digits()
    loop = EpochLoop(
        owner="test",
        network=network,
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0),
        engine=engine,  # type: ignore[arg-type]
        schedule="cosine",
        seed=3,
        inputs=digits.inputs[:N_SAMPLES],
        labels=digits.labels[:N_SAMPLES],
        epochs=3,
        validation=(digits.inputs[100:110], digits.labels[100:110]),
        checkpoint=checkpoint,
        checkpoint_every=2,
        resume=resume,
        fingerprint=lambda inputs, labels, epochs, validated: {
            "samples": len(inputs),
            "epochs": epochs,
            "validation": validated,
        },
    )
    return loop, network, engine


def run(loop: EpochLoop, network: FeedbackNetwork, engine: StubEngine, kill_at: Any = None) -> Any:
    """Train with a stand-in step: every generator drawn, weights and optimizer state changed."""

    def train(epoch: Epoch) -> None:
        for first in range(epoch.first, loop.n_samples, CHUNK):
            chosen = epoch.order[first : first + CHUNK]
            shift = loop.generators["augmentation"].normal(size=network.readout_bias.shape)
            mask = loop.generators["dropout"].random(shift.shape) < 0.5
            step = epoch.rates[first] * (loop.inputs[chosen].mean() + 1e-3 * shift * mask)
            network.readout_bias = network.readout_bias + step
            engine.optimizer_state = {"velocity": engine.optimizer_state["velocity"] + first}
            loop.count_time(0.25)
            stats = ChunkStatistics(
                n_samples=len(chosen),
                wall_time_s=0.0,
                forward_rate=float(loop.labels[chosen].mean()),
                backward_rate=float(chosen.mean()),
                layer_forward_rates=(0.5,),
            )
            loop.count(epoch, stats, len(chosen))
            position = first + len(chosen)
            loop.after_step(epoch, position, position // CHUNK)
            if (epoch.index, position) == kill_at:
                raise KilledError

    def accuracies(sets: list[Any]) -> list[float]:
        return [float(network.readout_bias.sum()) + k for k, _ in enumerate(sets)]

    return loop.run(train, accuracies, evaluation_where=lambda index: f"epoch {index + 1}")


@pytest.mark.parametrize(
    ("kill_at", "resumed_at"),
    [
        ((1, 8), (1, 8)),  # checkpointed after every second chunk (checkpoint_every=2)
        ((1, 12), (1, 8)),  # the third chunk is not: redone
        ((2, 4), (2, 0)),  # from the end of an epoch: the next order is drawn on resume
    ],
)
def test_an_epoch_loop_killed_between_chunks_resumes_to_the_uninterrupted_run(
    kill_at: tuple[int, int], resumed_at: tuple[int, int], tmp_path: Path
) -> None:
    straight = make_loop(tmp_path / "straight.npz", resume=False)
    expected = run(*straight)
    killed = make_loop(tmp_path / "killed.npz", resume=False)
    with pytest.raises(KilledError):
        run(*killed, kill_at=kill_at)
    resumed = make_loop(tmp_path / "killed.npz", resume=True)
    assert (resumed[0].state.epoch, resumed[0].state.next_sample) == resumed_at
    assert len(resumed[0].records["train_accuracy"]) == resumed_at[0]
    records = run(*resumed)
    assert records == expected and len(records["train_accuracy"]) == 3
    assert records["wall_time_s"] == [1.25] * 3 and not math.isnan(records["test_accuracy"][0])
    np.testing.assert_array_equal(resumed[1].readout_bias, straight[1].readout_bias)
    np.testing.assert_array_equal(
        resumed[2].optimizer_state["velocity"], straight[2].optimizer_state["velocity"]
    )
    untrained = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=0)
    assert not np.array_equal(straight[1].readout_bias, untrained.readout_bias)


def test_an_epoch_loop_refuses_a_resume_without_a_checkpoint_path() -> None:
    digits = load_digits()
    trainer = make_trainer()
    with pytest.raises(ValidationError, match="Trainer.fit: resume=True needs a checkpoint"):
        trainer.fit(digits.inputs[:4], digits.labels[:4], epochs=1, resume=True)
    with pytest.raises(ValidationError, match=r"\(validation\): validation must be a pair"):
        trainer.fit(digits.inputs[:4], digits.labels[:4], epochs=1, validation=[1, 2, 3])


def make_trainer(**options: Any) -> Trainer:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=0)
    protocol = Protocol(
        [FreePhase(duration=8 * ms), PerturbedPhase(duration=8 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0),
    )
    return Trainer(net, protocol, device="numpy", chunk_size=CHUNK, progress=False, **options)


def test_every_engine_compiles_through_one_interface() -> None:
    # what compile returns decides, not a device attribute: runtime engines compile nothing
    for rule in ("spide", "ide"):
        trainer = make_trainer(rule=rule)
        assert trainer.engine.compile(check_only=True) is None
        assert trainer.compile() == {}
    simulation = TrainingSimulation(
        make_trainer().network, make_trainer().protocol, device="numpy", chunk_size=2
    )
    assert simulation.compile() is None
    build = SimpleNamespace(
        directory="/there", compile_time_s=1.5, cache_hit=True, compile_reason="reused: stub"
    )
    compiled = SimpleNamespace(compile=lambda *, check_only=False: build)
    nothing = SimpleNamespace(compile=lambda *, check_only=False: None)
    assert compile_all({"a": compiled, "b": nothing}) == {  # type: ignore[dict-item]
        "a": {
            "directory": "/there",
            "compile_time_s": 1.5,
            "binary_reused": True,
            "reason": "reused: stub",
        }
    }
