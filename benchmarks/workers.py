"""One training run on K = 1 and K = 2 worker processes: speed, overheads and accuracy.

Side by side in one process, on the MNIST network 784-256-10 (the mnist preset's settings;
SPIDE inside cpp_standalone, chunks of 200 samples):

* the per-run launch cost of the standalone training binary: a binary of chunk size 1 and one
  of chunk size 200 are timed, ``launch = t(1) - (t(200) - t(1)) / 199`` (the Python side
  included: run_args files written, the binary started, the weights read back);
* the transfer per synchronisation: a Dask round trip of what a round of
  :mod:`fbsnn_brian.learning.distributed` moves (the network with its weights and a shard of
  200 inputs in, the weights out) on a LocalCluster, and the averaging of two weight sets;
* the speed-up each scheme can reach from these costs: synchronous mini-batches of B samples
  pay a launch and a transfer for B / K samples per worker, model averaging every N samples
  pays one transfer per N samples (the launch is paid per chunk by a single process too);
* training: K = 1 (the single-process Trainer) and K = 2 (model averaging every 200 samples on
  a LocalCluster, by default the workers training at twice the learning rate and their weights
  averaged, merge ``'scaled'``; ``--other-merges`` also trains K = 2 with the plain mean and
  with the sum of the changes, seed 0) for the same epochs, samples/s of the last epoch
  (compilation excluded) and the test accuracy after the last epoch (with ``--validation-size
  V``: the accuracy on the last V training images, which train neither K); with ``--seeds N`` for
  seeds 0 .. N-1 (initial weights and shuffling), K = 1 and K = 2 side by side for each seed,
  with the paired 95 % interval of the accuracy difference.

    python benchmarks/workers.py --json
    python benchmarks/workers.py --seeds 2 --other-merges \\
        --out benchmarks/results/workers.json --json
    python benchmarks/workers.py --epochs 1 --train-size 2000 --test-size 500 --json
    python benchmarks/workers.py --validation-size 1000 --seeds 2 --other-merges \\
        --out benchmarks/results/workers_merges_validation.json --json

JSON keys: ``samples_per_s`` (by K), ``speedup_2_workers``, ``sync_overhead_s`` (transfer and
averaging per round), ``accuracy`` (by K, mean over seeds), ``accuracy_per_seed``,
``accuracy_difference_2_workers`` (paired interval, K = 2 minus K = 1), ``launch_s``,
``per_sample_s``, ``transfer_s``, ``averaging_s``, ``weights_bytes``, ``predicted_speedup``,
``load_average`` (before, after), ``merge``, ``other_merges_2_workers`` (by merge, with
``--other-merges``: K = 2 and K = 1 of seed 0 side by side) and the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from fbsnn_brian.analysis.statistics import paired_interval
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.experiments.run_data import run_datasets
from fbsnn_brian.experiments.runs import resolve_run, trainer_from_settings
from fbsnn_brian.experiments.settings import RunSettings
from fbsnn_brian.learning.distributed import MERGES, DistributedTraining, average, connect


def echo(network: Any, optimizer_state: Any, shard: Any) -> dict[str, Any]:
    """What a round's task returns, without training: the weights."""
    return {name: np.array(value) for name, value in network.weight_arrays().items()}


def launch_cost(trainer: Any, inputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Launch cost and per-sample cost of the standalone training binary."""
    times = {}
    for size, repeats in ((1, 5), (200, 2)):
        simulation = TrainingSimulation(
            trainer.network, trainer.protocol, device="cpp_standalone", chunk_size=size
        )
        start = trainer.network.weight_arrays()
        simulation.train_chunk(inputs[:size], labels[:size], 0.0)  # compiles
        runs = []
        for _ in range(repeats):
            begin = time.perf_counter()
            simulation.train_chunk(inputs[:size], labels[:size], 0.0)
            runs.append(time.perf_counter() - begin)
        trainer.network.set_weight_arrays(start)
        times[size] = float(np.median(runs))
    per_sample = (times[200] - times[1]) / 199
    return {"launch_s": times[1] - per_sample, "per_sample_s": per_sample}


def transfer_cost(trainer: Any, inputs: np.ndarray, repeats: int = 7) -> dict[str, float]:
    """Dask round trip of one round's data and the averaging of two weight sets."""
    shard = {"inputs": inputs[:200], "labels": np.zeros(200, dtype=np.int64)}
    with connect(2) as client:
        client.gather(client.submit(echo, trainer.network, {}, shard, pure=False))  # warm
        runs = []
        for _ in range(repeats):
            begin = time.perf_counter()
            client.gather(client.submit(echo, trainer.network, {}, shard, pure=False))
            runs.append(time.perf_counter() - begin)
    weights = {k: np.array(v) for k, v in trainer.network.weight_arrays().items()}
    begin = time.perf_counter()
    for _ in range(repeats):
        average([weights, weights])
    return {
        "transfer_s": float(np.median(runs)),
        "averaging_s": (time.perf_counter() - begin) / repeats,
        "weights_bytes": len(pickle.dumps(trainer.network)),
    }


def train(
    settings: dict[str, Any], workers: int, sync_every: int, merge: str = "scaled"
) -> dict[str, float]:
    """Train for the settings' epochs with K workers; return speed and test accuracy."""
    run = RunSettings.from_values(settings)
    train_part, test, validation = run_datasets(run.data)
    scored = test if validation is None else validation  # --validation-size: choices
    trainer = trainer_from_settings(run, train_part, progress=False)
    data = (train_part.inputs, train_part.labels)
    if workers == 1:
        history = trainer.fit(*data, epochs=settings["epochs"])
    else:
        distributed = DistributedTraining(
            trainer, workers=workers, sync_every=sync_every, merge=merge
        )
        history = distributed.fit(*data, epochs=settings["epochs"])
    wall = history["wall_time_s"].values
    return {
        "samples_per_s_last_epoch": train_part.n_samples / float(wall[-1]),
        "samples_per_s_all_epochs": train_part.n_samples * len(wall) / float(wall.sum()),
        "accuracy": trainer.evaluate(scored.inputs, scored.labels)["accuracy"],
        "train_accuracy": float(history["train_accuracy"].values[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="idx:data/mnist-t10k")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1 (default: 1)")
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument(
        "--validation-size",
        type=int,
        default=0,
        help="score the last V training images instead of the test part (to choose settings)",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sync-every", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32, help="mini-batch of the other scheme")
    parser.add_argument("--merge", default="scaled", choices=MERGES, help="merge of K = 2")
    parser.add_argument(
        "--other-merges", action="store_true", help="also train K = 2 with the other merges"
    )
    parser.add_argument("--costs-only", action="store_true", help="measure the overheads only")
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    load_before = os.getloadavg()
    given = {
        "dataset": args.dataset,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "epochs": args.epochs,
        "chunk_size": 200,
        "validation_size": args.validation_size,
    }
    resolved, (train_part, _, _) = resolve_run(given)
    settings = resolved.values()
    trainer = trainer_from_settings(resolved, train_part, progress=False)
    costs = launch_cost(trainer, train_part.inputs, train_part.labels)
    costs.update(transfer_cost(trainer, train_part.inputs))
    p, launch, transfer = costs["per_sample_s"], costs["launch_s"], costs["transfer_s"]
    sync = transfer + costs["averaging_s"]
    n, b, k = args.sync_every, args.batch, 2
    single = launch / 200 + p  # seconds per sample of the single process, chunks of 200
    predicted = {
        f"model_averaging_every_{n}": k * (launch + n * p) / (launch + n * p + sync),
        f"minibatch_{b}": b * single / (launch + (b / k) * p + sync),
    }
    if args.costs_only:
        print(json.dumps({**costs, "predicted_speedup": predicted}, indent=2))
        return
    if args.seeds < 1:
        parser.error(f"--seeds must be an integer >= 1, got {args.seeds}")
    per_seed = [
        {K: train({**settings, "seed": seed}, K, args.sync_every, args.merge) for K in (1, 2)}
        for seed in range(args.seeds)
    ]
    results = {
        K: {key: float(np.mean([run[K][key] for run in per_seed])) for key in per_seed[0][K]}
        for K in (1, 2)
    }
    others = [how for how in MERGES if how != args.merge] if args.other_merges else []
    alternatives = {how: train({**settings, "seed": 0}, 2, args.sync_every, how) for how in others}
    accuracies = {K: [run[K]["accuracy"] for run in per_seed] for K in (1, 2)}
    report = {
        "samples_per_s": {str(K): r["samples_per_s_last_epoch"] for K, r in results.items()},
        "samples_per_s_all_epochs": {
            str(K): r["samples_per_s_all_epochs"] for K, r in results.items()
        },
        "speedup_2_workers": float(
            np.mean(
                [
                    run[2]["samples_per_s_last_epoch"] / run[1]["samples_per_s_last_epoch"]
                    for run in per_seed
                ]
            )
        ),
        "sync_overhead_s": sync,
        "accuracy": {str(K): r["accuracy"] for K, r in results.items()},
        "accuracy_per_seed": {str(K): values for K, values in accuracies.items()},
        "accuracy_difference_2_workers": paired_interval(accuracies[2], accuracies[1]),
        "train_accuracy": {str(K): r["train_accuracy"] for K, r in results.items()},
        "merge": args.merge,
        "other_merges_2_workers": alternatives,
        **costs,
        "predicted_speedup": predicted,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "cpu_count": os.cpu_count(),
        "settings": {
            "network": "784-256-10",
            "dataset": args.dataset,
            "train_size": args.train_size,
            "test_size": args.test_size,
            "accuracy_on": "validation" if args.validation_size else "test",
            "validation_size": args.validation_size,
            "epochs": args.epochs,
            "seeds": list(range(args.seeds)),
            "sync_every": args.sync_every,
            "chunk_size": 200,
            "learning_rate": settings["learning_rate"],
            "scheme": f"model averaging (local SGD), merge {args.merge!r}",
        },
    }
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
        return
    speeds = report["samples_per_s"]
    print(f"samples/s: K=1 {speeds['1']:.1f}, K=2 {speeds['2']:.1f}")
    print(f"speed-up {report['speedup_2_workers']:.2f}, overhead per round {sync:.4f} s")
    print(f"launch {launch:.4f} s, per sample {p:.5f} s, transfer {transfer:.4f} s")
    print(f"test accuracy: {report['accuracy']}")


if __name__ == "__main__":
    main()
