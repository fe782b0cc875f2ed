"""One run on several workers (fbsnn_brian.learning.distributed) and the full-MNIST layout.

The workers are the processes of one LocalCluster shared by the module; each test network is
tiny (64-6-10, short phases, runtime numpy) so that a round takes a fraction of a second.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.cli.main import main
from fbsnn_brian.errors import FbsnnError
from fbsnn_brian.experiments.run_file import load_run_file
from fbsnn_brian.experiments.runs import split_dataset, train_run
from fbsnn_brian.interrupt import Interrupted
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.learning import distributed
from fbsnn_brian.learning.augmentation import RandomShift
from fbsnn_brian.learning.distributed import DistributedTraining, train_round
from fbsnn_brian.learning.epochs import learning_rates
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity

N_SAMPLES = 24


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """Address of a LocalCluster of two worker processes, shared by the module."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def make_trainer(**plasticity: Any) -> Trainer:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=0)
    protocol = Protocol(
        [FreePhase(duration=8 * ms), PerturbedPhase(duration=8 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.05, scale=4.0, **plasticity),
    )
    return Trainer(
        net,
        protocol,
        device="numpy",
        chunk_size=4,
        schedule="cosine",
        seed=3,
        progress=False,
        augmentation=RandomShift(max_shift=1),
    )


def data() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return digits.inputs[:N_SAMPLES], digits.labels[:N_SAMPLES]


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {name: np.array(value) for name, value in trainer.network.weight_arrays().items()}


def assert_same(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name


@pytest.fixture(scope="module")
def two_workers(scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Weights and history of an uninterrupted K = 2 run (checkpointed every round)."""
    trainer = make_trainer()
    path = tmp_path_factory.mktemp("two") / "run.npz"
    history = DistributedTraining(trainer, workers=2, scheduler=scheduler, sync_every=4).fit(
        *data(), epochs=2, checkpoint=path
    )
    return {"weights": weights(trainer), "history": history, "start": weights(make_trainer())}


def test_one_worker_repeats_the_single_process_run_bit_for_bit(scheduler: str) -> None:
    # momentum, mini-batches over chunk boundaries, dropout and shifts: every carried state
    options = {"momentum": 0.5, "batch_size": 3, "input_dropout": 0.1}
    single = make_trainer(**options)
    single.fit(*data(), epochs=2)
    spread = make_trainer(**options)
    history = DistributedTraining(spread, workers=1, scheduler=scheduler, sync_every=8).fit(
        *data(), epochs=2
    )
    assert_same(weights(single), weights(spread))
    assert history.attrs["workers"] == 1 and history.sizes["epoch"] == 2
    assert not np.array_equal(
        weights(single)["input_weights"], make_trainer().network.input_weights
    )


def test_two_workers_merge_their_shards(two_workers: dict[str, Any]) -> None:
    history = two_workers["history"]
    assert history.attrs["workers"] == 2 and history.attrs["sync_every"] == 4
    assert np.all(history["samples_per_s"].values > 0)
    # trained, and not the single-process weights
    single = make_trainer()
    single.fit(*data(), epochs=2)
    for reference in (two_workers["start"], weights(single)):
        assert not np.array_equal(
            two_workers["weights"]["input_weights"], reference["input_weights"]
        )


class StoppedAfter(DistributedTraining):
    """Receives SIGINT during its third synchronisation round."""

    rounds = 0

    def _run_round(self, client: Any, shards: Any, name: str) -> Any:
        StoppedAfter.rounds += 1
        if StoppedAfter.rounds == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return super()._run_round(client, shards, name)


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(
    scheduler: str, two_workers: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "run.npz"
    with pytest.raises(Interrupted, match="before sample 16/24 of epoch 1/2"):
        StoppedAfter(make_trainer(), workers=2, scheduler=scheduler, sync_every=4).fit(
            *data(), epochs=2, checkpoint=path
        )
    assert path.is_file()
    resumed = make_trainer()
    DistributedTraining(resumed, workers=2, scheduler=scheduler, sync_every=4).fit(
        *data(), epochs=2, checkpoint=path, resume=True
    )
    assert_same(weights(resumed), two_workers["weights"])


def test_a_checkpoint_of_another_worker_count_is_refused(scheduler: str, tmp_path: Path) -> None:
    path = tmp_path / "run.npz"
    inputs, labels = data()
    DistributedTraining(make_trainer(), workers=2, scheduler=scheduler, sync_every=12).fit(
        inputs, labels, epochs=1, checkpoint=path
    )
    with pytest.raises(FbsnnError, match="these settings differ: workers"):
        DistributedTraining(make_trainer(), workers=1, scheduler=scheduler, sync_every=12).fit(
            inputs, labels, epochs=1, checkpoint=path, resume=True
        )


class KillingRound:
    """:func:`train_round`, but the first call anywhere ends its worker process first."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, *args: Any) -> dict[str, Any]:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return train_round(*args)


def test_a_lost_worker_is_retried_and_the_result_does_not_change(
    scheduler: str, two_workers: dict[str, Any], tmp_path: Path
) -> None:
    trainer = make_trainer()
    DistributedTraining(
        trainer, workers=2, scheduler=scheduler, sync_every=4, task=KillingRound(tmp_path / "k")
    ).fit(*data(), epochs=2)
    assert (tmp_path / "k").is_file()  # a worker did die
    assert_same(weights(trainer), two_workers["weights"])


def test_without_dask_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = distributed.importlib.import_module

    def missing(name: str) -> Any:
        if name.startswith("dask"):
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(distributed.importlib, "import_module", missing)
    with pytest.raises(FbsnnError, match=r"install the 'sweep' extra"):
        with distributed.connect(2):
            pass


def test_only_spide_in_the_simulation_spreads_over_workers() -> None:
    net = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=0)
    protocol = make_trainer().protocol
    trainer = Trainer(net, protocol, device="numpy", rule="ide", progress=False)
    with pytest.raises(FbsnnError, match="SPIDE on cpp_standalone or a runtime device"):
        DistributedTraining(trainer, workers=2)


# --- the full-MNIST layout and the settings -----------------------------------------------------


def write_idx(directory: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    for kind, array in (("images", images), ("labels", labels)):
        header = bytes([0, 0, 0x08, array.ndim])
        header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
        rank = 3 if kind == "images" else 1
        path = directory / f"{split}-{kind}-idx{rank}-ubyte.gz"
        path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def mnist_layout(tmp_path: Path) -> str:
    """An IDX directory holding train-* (40 digits) and t10k-* (12 digits) files."""
    digits = load_digits()
    images = np.rint(digits.inputs * 255).reshape(-1, 8, 8)
    write_idx(tmp_path, "train", images[:40], digits.labels[:40])
    write_idx(tmp_path, "t10k", images[100:112], digits.labels[100:112])
    return f"idx:{tmp_path}"


def test_an_idx_directory_with_both_parts_uses_its_own_partition(mnist_layout: str) -> None:
    digits = load_digits()
    train, test = split_dataset(mnist_layout, train_size=None, test_size=None, split_seed=0)
    assert (train.n_samples, test.n_samples) == (40, 12)
    assert np.array_equal(train.labels, digits.labels[:40])
    assert np.array_equal(test.labels, digits.labels[100:112])
    train, test = split_dataset(mnist_layout, train_size=30, test_size=5, split_seed=0)
    assert (train.n_samples, test.n_samples) == (30, 5)
    assert np.array_equal(test.labels, digits.labels[107:112])


def test_fbsnn_train_with_workers_validates_on_training_images(
    mnist_layout: str, scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    arguments = [
        "train", "--dataset", mnist_layout, "--validation-size", "8", "--layers", "6",
        "--free", "8", "--perturbed", "8", "--epochs", "1", "--device", "numpy",
        "--chunk-size", "8", "--shift", "0", "--workers", "2", "--sync-every", "8",
        "--scheduler", scheduler, "--out", str(out), "--no-progress", "--json",
    ]  # fmt: skip
    assert main(arguments) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["n_train"], metrics["n_validation"], metrics["n_test"]) == (32, 8, 12)
    assert metrics["config"]["workers"] == 2 and metrics["config"]["sync_every"] == 8
    assert len(metrics["validation_accuracy_per_epoch"]) == 1
    resumed = train_run({"epochs": 1}, out, progress=False, resume=True)
    assert resumed["config"]["workers"] == 2


def test_a_run_file_sets_the_worker_settings(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[training]\nworkers = 3\nsync_every = 50\nscheduler = "tcp://h:1"\n')
    assert load_run_file(path) == {"workers": 3, "sync_every": 50, "scheduler": "tcp://h:1"}


def test_the_sum_merge_adds_every_workers_change() -> None:
    start = {"w": np.array([1.0, 2.0])}
    ends = [{"w": np.array([1.5, 2.0])}, {"w": np.array([1.0, 1.0])}]
    assert np.array_equal(distributed.merge(start, ends, "sum")["w"], [1.5, 1.0])
    assert np.array_equal(distributed.merge(start, ends, "average")["w"], [1.25, 1.5])
    assert distributed.merge(start, ends[:1], "sum")["w"] is not ends[0]["w"]
    assert np.array_equal(distributed.merge(start, ends[:1], "sum")["w"], ends[0]["w"])


def test_the_scaled_merge_averages_workers_trained_at_k_times_the_rate() -> None:
    start = {"w": np.array([1.0, 2.0])}
    ends = [{"w": np.array([1.5, 2.0])}, {"w": np.array([1.0, 1.0])}]
    assert np.array_equal(distributed.merge(start, ends, "scaled")["w"], [1.25, 1.5])
    trainer = make_trainer()
    single = learning_rates(trainer.schedule, trainer.plasticity.learning_rate, 0, 2, 24)
    plans = {
        how: DistributedTraining(trainer, workers=2, sync_every=4, merge=how)._plan(single)
        for how in distributed.MERGES
    }
    assert np.array_equal(plans["average"]["rates"], single)
    assert np.array_equal(plans["sum"]["rates"], single)
    assert np.array_equal(plans["scaled"]["rates"], 2 * single)
    one = DistributedTraining(trainer, workers=1, sync_every=4)._plan(single)
    assert np.array_equal(one["rates"], single)


def test_the_workers_evaluate_with_the_current_weights(scheduler: str) -> None:
    trainer = make_trainer()
    spread = DistributedTraining(trainer, workers=2, scheduler=scheduler, sync_every=4)
    digits = load_digits()
    sets = [(digits.inputs[:60], digits.labels[:60]), (digits.inputs[60:90], digits.labels[60:90])]
    predictions = []
    with distributed.connect(2, scheduler) as client:
        for seed in (1, 2):  # new weights each time: a worker must not keep earlier ones
            other = FeedbackNetwork(n_inputs=64, layer_sizes=[6], n_classes=10, seed=seed)
            trainer.network.set_weight_arrays(other.weight_arrays())
            assert spread._accuracies(client, sets) == trainer.accuracies(sets)
            shard = client.submit(
                distributed.predict_shard,
                trainer.network,
                spread._protocol,
                trainer.device,
                digits.inputs[:60],
                pure=False,
            )
            predicted = client.gather(shard)
            np.testing.assert_array_equal(predicted, trainer.predict(digits.inputs[:60]))
            predictions.append(predicted)
    assert not np.array_equal(*predictions)
