"""Select a training preset on a validation split carved from the training part.

    python analysis/select_presets.py --preset digits --out analysis/results/presets_digits.json
    python analysis/select_presets.py --preset generic --out analysis/results/presets_generic.json
    python analysis/select_presets.py --preset mnist --out analysis/results/presets_mnist.json

For each candidate of a small grid of settings and each seed, a network is trained with the
SPIDE rule (cpp_standalone) on the training part of the data set minus a validation split,
and scored after every epoch on that validation split. The test part is never loaded into a
network nor evaluated. The chosen candidate has the best mean final validation accuracy over
the seeds (ties: the better mean over the last three epochs, then the first in grid order).
The JSON result holds the command line, the data set, the split sizes, every run's per-epoch
validation accuracy and the chosen settings (the values of
:data:`fbsnn_brian.experiments.presets.PRESETS`).

Validation splits:

* ``digits``: the seeded 1402/395 split of the digits; 15 % of each class of the 1402 (seeded
  shuffle, rounded half up) validate, the rest train.
* ``mnist``: the first 8,000 images of ``idx:/work/shared/data/mnist-t10k`` (the 8k/2k split);
  the last 1,000 of them validate, the first 7,000 train.
* ``generic``: scikit-learn's breast cancer data (569 x 30, two classes), rows in a seeded
  order and min-max scaled over the first 444 rows (the training part; the other 125 rows, the
  test part, are clipped to [0, 1]), saved as an npz in a temporary directory and split by
  position 444/125; 15 % of each class of the 444 validate, as for the digits.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fbsnn_brian.experiments.run_data import split_dataset
from fbsnn_brian.experiments.runs import DEFAULTS, trainer_from_settings
from fbsnn_brian.experiments.settings import RunSettings
from fbsnn_brian.io.datasets import Dataset

# fraction of each class of the training part carved out as the validation split
VALIDATION_FRACTION = 0.15
MNIST_SPEC = "idx:/work/shared/data/mnist-t10k"
GENERIC_SIZES = (444, 125)

# fixed settings and grid of each preset; the chosen settings are fixed | best candidate
SEARCHES: dict[str, dict[str, Any]] = {
    "digits": {
        "split": {"dataset": "digits", "train_size": None, "test_size": None, "split_seed": 0},
        "fixed": {"layers": [128], "epochs": 30, "schedule": "cosine", "weight_decay": 0.001},
        "grid": {"learning_rate": [0.02, 0.04, 0.08], "shift": [0, 1]},
        "seeds": [0, 1],
    },
    "mnist": {
        "split": {"dataset": MNIST_SPEC, "train_size": 8000, "test_size": 2000, "split_seed": 0},
        "fixed": {
            "layers": [256],
            "epochs": 8,
            "schedule": "constant",
            "weight_decay": 0.0,
            "shift": 0,
        },
        "grid": {"learning_rate": [0.005, 0.01, 0.02]},
        "seeds": [0],
    },
    "generic": {
        "split": {
            "dataset": "npz:breast_cancer",
            "train_size": GENERIC_SIZES[0],
            "test_size": GENERIC_SIZES[1],
            "split_seed": 0,
        },
        "fixed": {"layers": [64], "epochs": 30, "weight_decay": 0.001, "shift": 0},
        "grid": {"learning_rate": [0.01, 0.02, 0.04], "schedule": ["constant", "cosine"]},
        "seeds": [0, 1],
    },
}


def stratified_carve(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split ``data`` into (train, validation): ``fraction`` of each class, seeded, validates.

    For each class in ascending order its positions are shuffled with
    ``numpy.random.default_rng(seed)`` and the first ``floor(fraction * n_c + 0.5)`` validate;
    both parts keep the original order.
    """
    generator = np.random.default_rng(seed)
    is_validation = np.zeros(data.n_samples, dtype=bool)
    for label in range(data.n_classes):
        members = np.flatnonzero(data.labels == label)
        n_validation = math.floor(fraction * members.size + 0.5)
        is_validation[generator.permutation(members)[:n_validation]] = True
    return data.subset(~is_validation), data.subset(is_validation)


def write_breast_cancer_npz(directory: Path) -> Path:
    """The breast cancer data as ``X``, ``y`` in [0, 1], min-max scaled over the training rows."""
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    features, labels = features[order], labels[order]
    n_train = GENERIC_SIZES[0]
    low = features[:n_train].min(axis=0)
    span = features[:n_train].max(axis=0) - low
    span[span == 0] = 1.0
    scaled = np.clip((features - low) / span, 0.0, 1.0)
    path = directory / "breast_cancer.npz"
    np.savez(path, X=scaled, y=labels.astype(np.int64))
    return path


def validation_split(
    name: str, split: dict[str, Any], scratch: Path
) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """The training and validation parts of a preset's data set, and a record of the split."""
    spec = split["dataset"]
    if name == "generic":
        spec = f"npz:{write_breast_cancer_npz(scratch)}"
    train_part, test_part = split_dataset(
        spec,
        train_size=split["train_size"],
        test_size=split["test_size"],
        split_seed=split["split_seed"],
    )
    n_test = test_part.n_samples
    del test_part  # never used: selection sees the training part only
    if name == "mnist":
        n_fit = train_part.n_samples - 1000
        fit = train_part.subset(np.arange(n_fit))
        validation = train_part.subset(np.arange(n_fit, train_part.n_samples))
        rule = "the last 1000 samples of the training part"
    else:
        fit, validation = stratified_carve(train_part, VALIDATION_FRACTION, seed=0)
        rule = (
            f"seeded stratified {VALIDATION_FRACTION:.0%} of each class of the training part "
            "(numpy.random.default_rng(0), rounded half up)"
        )
    record = {
        "dataset": "sklearn.datasets.load_breast_cancer, min-max scaled as npz"
        if name == "generic"
        else spec,
        **{key: value for key, value in split.items() if key != "dataset"},
        "n_features": train_part.n_features,
        "n_classes": train_part.n_classes,
        "n_train_part": train_part.n_samples,
        "n_test_part_unused": n_test,
        "n_fit": fit.n_samples,
        "n_validation": validation.n_samples,
        "validation_rule": rule,
        "validation_class_counts": np.bincount(
            validation.labels, minlength=validation.n_classes
        ).tolist(),
    }
    return fit, validation, record


def train_candidate(settings: dict[str, Any], fit: Dataset, validation: Dataset) -> dict[str, Any]:
    """Train as :func:`fbsnn_brian.experiments.runs.train_run` does; score validation per epoch."""
    trainer = trainer_from_settings(RunSettings.from_values(settings), fit, progress=False)
    start = time.perf_counter()
    history = trainer.fit(
        fit.inputs,
        fit.labels,
        epochs=settings["epochs"],
        validation=(validation.inputs, validation.labels),
    )
    per_epoch = [float(v) for v in history["test_accuracy"].values]
    return {
        "validation_accuracy_per_epoch": per_epoch,
        "final_validation_accuracy": per_epoch[-1],
        "train_accuracy_per_epoch": [float(v) for v in history["train_accuracy"].values],
        "wall_time_s": time.perf_counter() - start,
    }


def summarise(candidates: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds of each candidate's final accuracy."""
    rows = []
    for candidate in candidates:
        mine = [run for run in runs if run["candidate"] == candidate]
        if not mine:
            continue
        finals = [run["final_validation_accuracy"] for run in mine]
        last3 = [np.mean(run["validation_accuracy_per_epoch"][-3:]) for run in mine]
        rows.append(
            {
                "candidate": candidate,
                "seeds": [run["seed"] for run in mine],
                "final_validation_accuracy": finals,
                "mean": float(np.mean(finals)),
                "sd": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
                "mean_last3": float(np.mean(last3)),
            }
        )
    return rows


def _grid_candidates(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in grid order (the last key varies fastest)."""
    keys = list(grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[key] for key in keys))
    ]


def choose(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary row with the best mean final accuracy (ties: last-3 mean, then grid order).

    Means are compared to 9 decimals, so equal accuracies summed in a different order tie.
    """
    return max(
        enumerate(summary),
        key=lambda item: (round(item[1]["mean"], 9), round(item[1]["mean_last3"], 9), -item[0]),
    )[1]


def finish(result: dict[str, Any], candidates: list[dict[str, Any]]) -> None:
    """Add the summary and the chosen settings to ``result``."""
    summary = summarise(candidates, result["runs"])
    best = choose(summary)
    result["summary"] = summary
    result["chosen"] = {**result["fixed"], **best["candidate"]}
    result["chosen_validation_accuracy"] = {"mean": best["mean"], "sd": best["sd"]}
    result["complete"] = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=sorted(SEARCHES))
    parser.add_argument("--seeds", help="comma-separated training seeds (default: the preset's)")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--json", action="store_true", help="print the result JSON at the end")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="train nothing: recompute the summary and the choice from the runs in --out",
    )
    args = parser.parse_args()

    search = SEARCHES[args.preset]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else search["seeds"]
    fixed = dict(search["fixed"])
    if args.epochs:
        fixed["epochs"] = args.epochs
    candidates = _grid_candidates(search["grid"])
    out = Path(args.out)
    if args.rescore:
        result = json.loads(out.read_text())
        finish(result, _grid_candidates(result["grid"]))
        result["rescored_by"] = shlex.join(["python", *sys.argv])
        out.write_text(json.dumps(result, indent=1) + "\n")
        report(result, print_json=args.json)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "preset": args.preset,
        "command": shlex.join(["python", *sys.argv]),
        "complete": False,
        "fixed": fixed,
        "grid": search["grid"],
        "seeds": seeds,
        "selection": "best mean final validation accuracy over seeds; ties: best mean over the "
        "last 3 epochs, then grid order",
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        fit, validation, result["split"] = validation_split(
            args.preset, search["split"], Path(scratch)
        )
        print(f"{args.preset}: fit {fit.n_samples}, validation {validation.n_samples}", flush=True)
        for candidate, seed in itertools.product(candidates, seeds):
            settings = {**DEFAULTS, **fixed, **candidate, "seed": seed}
            run = {
                "candidate": candidate,
                "seed": seed,
                **train_candidate(settings, fit, validation),
            }
            result["runs"].append(run)
            print(
                f"{candidate} seed {seed}: final validation "
                f"{run['final_validation_accuracy']:.4f} ({run['wall_time_s']:.0f} s)",
                flush=True,
            )
            out.write_text(json.dumps(result, indent=1) + "\n")
    finish(result, candidates)
    out.write_text(json.dumps(result, indent=1) + "\n")
    report(result, print_json=args.json)


def report(result: dict[str, Any], *, print_json: bool) -> None:
    """Print each candidate's mean and standard deviation and the chosen settings."""
    for row in result["summary"]:
        print(f"{row['candidate']}: {row['mean']:.4f} +- {row['sd']:.4f}")
    print(f"chosen: {result['chosen']}")
    if print_json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
