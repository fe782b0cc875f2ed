"""One epoch of SPIDE on MNIST 8k/2k, 784-256-10, on one device: the GPU check's driver.

``benchmarks/gpu_prepare.sh`` runs it here twice: on cpp_standalone, to train the reference
epoch (its final weights, ``reference.npz``), and on cuda_standalone with ``--compile-only``,
to compile the training and evaluation projects for the GPU (compute capability 9.0) into the
prepared directory. ``benchmarks/gpu_check.sh`` runs it on the GPU machine on
cuda_standalone: the same Trainer regenerates the code into the prepared projects, reuses
their binaries when the code is the one they were compiled from (or recompiles there and says
why), trains the epoch, evaluates the test part on the GPU and compares the weights with the
reference. ``--dry-run`` does all of that except running a binary (the GPU fields are null).

    python benchmarks/gpu_epoch.py --device cpp_standalone --weights-out P/reference.npz \
        --json P/reference.json --data P/data
    python benchmarks/gpu_epoch.py --device cuda_standalone --project P/projects --compile-only \
        --json P/compile.json --data P/data
    python benchmarks/gpu_epoch.py --device cuda_standalone --project P/projects \
        --reference P/reference.npz --json $OUT/gpu_check.json --data P/data [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import prefs

from fbsnn_brian.experiments.presets import default_preset, preset_settings
from fbsnn_brian.experiments.run_data import split_dataset
from fbsnn_brian.experiments.runs import DEFAULTS, network_from_settings
from fbsnn_brian.experiments.settings import RunSettings
from fbsnn_brian.learning.augmentation import RandomShift
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.model.protocol import FreePhase, Protocol

TRAIN_SIZE, TEST_SIZE = 8000, 2000


def _trainer(data: str, device: str, project: str | None) -> tuple[Trainer, Any, Any]:
    """The Trainer of ``fbsnn train --dataset idx:DATA --train-size 8000 --test-size 2000``."""
    if device == "cpp_standalone":
        # the arithmetic of cuda_standalone, whose builds generate without lifting loop
        # invariants (fbsnn_brian.build.devices.cuda.configure_cuda)
        prefs["codegen.loop_invariant_optimisations"] = False
    spec = f"idx:{data}"
    train, test = split_dataset(spec, train_size=TRAIN_SIZE, test_size=TEST_SIZE, split_seed=0)
    preset = default_preset(spec, train.n_features)
    settings = {**DEFAULTS, **preset_settings(preset), "layers": [256], "epochs": 1}
    network = network_from_settings(
        RunSettings.from_values(settings), train.n_features, train.n_classes
    )
    protocol = Protocol(
        [
            FreePhase(duration=settings["free_tau"] * network.tau),
            PerturbedPhase(duration=settings["perturbed_tau"] * network.tau),
        ],
        plasticity=SPIDEPlasticity(
            learning_rate=settings["learning_rate"],
            scale=settings["scale"],
            weight_decay=settings["weight_decay"],
            momentum=settings["momentum"],
            batch_size=settings["batch_size"],
            max_feedback_gain=settings["max_feedback_gain"],
            input_dropout=settings["input_dropout"],
            feedback=settings["feedback"],
        ),
    )
    trainer = Trainer(
        network,
        protocol,
        device=device,
        chunk_size=200,
        schedule=settings["schedule"],
        seed=0,
        progress=False,
        augmentation=RandomShift(max_shift=settings["shift"], image_shape=train.image_shape)
        if settings["shift"]
        else None,
        directory=project,
    )
    return trainer, train, test


def _weights(trainer: Trainer) -> dict[str, np.ndarray]:
    network = trainer.network
    arrays = {
        "input_weights": network.input_weights,
        "readout_weights": network.readout_weights,
        "readout_bias": network.readout_bias,
        "feedback_weights": network.feedback_weights,
    }
    arrays.update({f"forward_weights_{k}": w for k, w in enumerate(network.forward_weights)})
    arrays.update({f"biases_{k}": b for k, b in enumerate(network.biases)})
    return {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda_standalone")
    parser.add_argument("--data", required=True, help="directory of the t10k idx files")
    parser.add_argument("--project", help="directory of the compiled projects (kept)")
    parser.add_argument("--reference", help="reference weights (.npz) of the same epoch")
    parser.add_argument("--weights-out", help="write the final weights here (.npz)")
    parser.add_argument("--json", required=True, help="write the result here")
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="everything but the GPU run")
    args = parser.parse_args()

    result: dict[str, Any] = {
        "device": args.device,
        "network": "784-256-10",
        "data": f"idx:{args.data} (train {TRAIN_SIZE}, test {TEST_SIZE}, split seed 0)",
        "epochs": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "host": platform.node(),
        "dry_run": args.dry_run,
        "train_samples_per_s": None,
        "evaluation_samples_per_s": None,
        "test_accuracy": None,
        "max_weight_difference": None,
    }
    trainer, train, test = _trainer(args.data, args.device, args.project)
    if args.reference:
        reference = dict(np.load(args.reference))
        shapes = {name: value.shape for name, value in _weights(trainer).items()}
        wrong = {n: s for n, s in shapes.items() if reference.get(n, np.empty(0)).shape != s}
        if wrong:
            raise SystemExit(f"reference {args.reference}: missing or misshapen {sorted(wrong)}")
        result["reference"] = args.reference
    start = time.perf_counter()
    # the dry run regenerates the code and checks it against the binaries, compiling nothing
    result["compile"] = trainer.compile(check_only=args.dry_run)
    result["compile_wall_s"] = time.perf_counter() - start
    if args.compile_only or args.dry_run:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    history = trainer.fit(train.inputs, train.labels, epochs=1)
    evaluation = trainer.evaluate(test.inputs, test.labels)
    result.update(
        # the training chunks alone (the per-epoch accuracy on the training part excluded)
        train_wall_s=float(history["wall_time_s"][-1]),
        train_samples_per_s=float(history["samples_per_s"][-1]),
        train_accuracy=float(history["train_accuracy"][-1]),
        evaluation_wall_s=evaluation["wall_time_s"],
        evaluation_samples_per_s=TEST_SIZE / evaluation["wall_time_s"],
        test_accuracy=evaluation["accuracy"],
    )
    weights = _weights(trainer)
    if args.weights_out:
        np.savez(args.weights_out, **weights)
    if args.reference:
        differences = {
            name: float(np.max(np.abs(value - reference[name]))) for name, value in weights.items()
        }
        result["weight_differences"] = differences
        result["max_weight_difference"] = max(differences.values())
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
