"""Full MNIST (784-400-10) with one and with two workers, side by side in one process.

The settings of the full-MNIST run in the README (``--dataset idx:data/mnist
--validation-size 5000 --preset mnist --layers 400 --schedule cosine``: 55,000 training,
5,000 validation and the standard 10,000 test images) for ``--epochs`` epochs (default 1), once
with K = 1 (the single-process Trainer) and once with K = 2 (``--workers 2``, a LocalCluster,
the default merge), each through :func:`fbsnn_brian.experiments.runs.train_run` into a
temporary run directory:

    python benchmarks/full_mnist_workers.py --out benchmarks/results/full_mnist_workers.json

JSON keys, each by K: ``samples_per_s`` (training samples per second of training, compilation
and evaluations excluded), ``training_time_s`` (the epochs' training, the same exclusions),
``command_time_s`` (the whole run: data loading, compilation, training, the per-epoch
evaluations of the training and validation images, the test), ``compile_time_s``,
``validation_accuracy`` and ``test_accuracy`` after the epochs; ``speedup_2_workers`` (of
``samples_per_s``), ``load_average`` (before, after) and the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from fbsnn_brian.experiments.runs import train_run

SETTINGS: dict[str, Any] = {
    "dataset": "idx:data/mnist",
    "validation_size": 5000,
    "preset": "mnist",
    "layers": [400],
    "schedule": "cosine",
}


def run(workers: int, epochs: int) -> dict[str, float]:
    """One run with ``workers`` processes; its speed, times and accuracies."""
    config = {**SETTINGS, "epochs": epochs, "workers": workers}
    with tempfile.TemporaryDirectory(prefix="fbsnn_full_mnist_") as directory:
        start = time.perf_counter()
        metrics = train_run(config, Path(directory) / "run", progress=False)
        command = time.perf_counter() - start
    return {
        "samples_per_s": float(metrics["samples_per_s"]),
        "training_time_s": metrics["n_train"] * epochs / float(metrics["samples_per_s"]),
        "command_time_s": command,
        "compile_time_s": float(metrics["compile_time_s"]),
        "validation_accuracy": float(metrics["validation_accuracy"]),
        "test_accuracy": float(metrics["test_accuracy"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each run (default: 1)")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be an integer >= 1, got {args.epochs}")
    load_before = os.getloadavg()
    runs = {workers: run(workers, args.epochs) for workers in (1, 2)}
    report: dict[str, Any] = {
        key: {str(workers): result[key] for workers, result in runs.items()} for key in runs[1]
    }
    report["speedup_2_workers"] = runs[2]["samples_per_s"] / runs[1]["samples_per_s"]
    report["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    report["cpu_count"] = os.cpu_count()
    report["settings"] = {**SETTINGS, "epochs": args.epochs, "network": "784-400-10"}
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
