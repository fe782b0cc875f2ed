"""Compare the trained weights and accuracies of run directories, pair by pair.

Each pair names two run directories written by ``fbsnn train`` (``weights.npz`` and
``metrics.json``). For every pair it reports whether the per-epoch training and validation
accuracies and the test accuracy are equal, and the largest absolute difference of every
weight array: 0.0 means the two runs learned bit for bit the same weights.

Usage::

    python benchmarks/compare_runs.py --pair NAME RUN_A RUN_B [--pair ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def compare(first: Path, second: Path) -> dict[str, object]:
    """Accuracies of both runs and the largest weight difference per array."""
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (first, second)]
    weights = [np.load(run / "weights.npz") for run in (first, second)]
    arrays = sorted(name for name in weights[0].files if weights[0][name].dtype.kind == "f")
    if arrays != sorted(name for name in weights[1].files if weights[1][name].dtype.kind == "f"):
        raise SystemExit(f"compare_runs: {first} and {second} hold different weight arrays.")
    keys = ("test_accuracy", "train_accuracy_per_epoch", "validation_accuracy_per_epoch")
    return {
        "runs": [str(first), str(second)],
        "devices": [m.get("config", {}).get("device") for m in metrics],
        **{f"{key}": [m.get(key) for m in metrics] for key in keys},
        "accuracies_equal": all(metrics[0].get(key) == metrics[1].get(key) for key in keys),
        "max_abs_weight_difference": {
            name: float(np.max(np.abs(weights[0][name] - weights[1][name]))) for name in arrays
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Compare every ``--pair`` and print (or write) the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pair",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "RUN_A", "RUN_B"),
        help="a name and two run directories",
    )
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    options = parser.parse_args(argv)
    for _, *runs in options.pair:
        for run in runs:
            if not (Path(run) / "weights.npz").is_file():
                parser.error(f"--pair: {run} holds no weights.npz (not a finished run).")
    results = {name: compare(Path(a), Path(b)) for name, a, b in options.pair}
    text = json.dumps(results, indent=2)
    if options.out is None:
        print(text)
    else:
        options.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
