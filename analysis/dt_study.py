"""dt study: SPIDE's test accuracy and gradient alignment at dt = tau/4, tau/8 and tau/16.

    python analysis/dt_study.py --out analysis/results/dt_study.json

(the full study: digits, the digits preset, 3 epochs, seeds 0, 1, 2, on cpp_standalone; nine
training runs, three builds of each simulation, and the alignment at dt = tau/16 simulates
130 tau (2080 steps) per sample). A check with tiny arguments::

    python analysis/dt_study.py --epochs 1 --seeds 1 --train-size 100 --test-size 50 \\
        --layers 16 --alignment-samples 2 --device numpy --out /tmp/dt_study.json

For each integration step dt (the run setting ``dt``, in units of tau) and each seed, a
network is trained with SPIDE inside the simulation for a fixed number of epochs
(:func:`fbsnn_brian.experiments.runs.train_run`, no validation split) and its test accuracy is
recorded; before training, at the same initial weights, the cosine of SPIDE's spike-computed
update with the exact gradient on the hidden parameters (F, W, W_fb, b) is measured on the
first training samples against the ground truth of the network at that dt
(:func:`alignment_at_initial_weights`). Both are summarised over seeds (mean
± sd); the accuracy of every dt is also compared with the first dt's, paired seed by seed
(mean difference and its 95 % t interval, :mod:`fbsnn_brian.analysis.statistics`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fbsnn_brian.analysis.statistics import mean_sd, paired_interval
from fbsnn_brian.experiments.run_data import run_datasets
from fbsnn_brian.experiments.runs import train_run, trainer_from_settings
from fbsnn_brian.experiments.settings import RunSettings
from fbsnn_brian.files import write_json_atomically

#: Integration steps of the study, in units of tau.
DT_TAU = (0.25, 0.125, 0.0625)


#: The alignment measures of each run (:func:`fbsnn_brian.experiments.alignment.measure_alignment`).
MEASURES = (
    "cosine_vs_ideal_ide",
    "cosine_vs_measured_ide",
    "cosine_vs_finite_difference",
    "measured_ide_vs_finite_difference",
)


def alignment_at_initial_weights(
    network: Any, protocol: Any, inputs: Any, labels: Any, *, device: str, directions: int
) -> dict[str, float]:
    """SPIDE's mean update against the ground truth of the network at this dt (hidden parameters).

    The one place the study measures alignment: the ideal IDE gradient, the measured rate
    model's and finite differences of the simulated network (500 tau per evaluation, the
    network's own dt), :func:`fbsnn_brian.experiments.alignment.measure_alignment`.
    """
    from fbsnn_brian.experiments.alignment import measure_alignment

    measured = measure_alignment(
        network,
        protocol,
        inputs,
        labels,
        device=device,
        n_directions=directions,
        duration_tau=500.0,
    )
    return {key: float(measured[key]) for key in MEASURES}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dt",
        default=",".join(str(dt) for dt in DT_TAU),
        help="integration steps in units of tau, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default: 3)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default: 3)")
    parser.add_argument("--dataset", default="digits", help="data set (default: digits)")
    parser.add_argument("--train-size", type=int, help="first N samples train (default: split)")
    parser.add_argument("--test-size", type=int, help="last M samples test (default: split)")
    parser.add_argument(
        "--layers",
        type=lambda text: [int(size) for size in text.split(",")],
        help="hidden layer sizes, comma-separated (default: the data set's preset)",
    )
    parser.add_argument(
        "--device", default="cpp_standalone", help="training device (default: cpp_standalone)"
    )
    parser.add_argument(
        "--alignment-samples",
        type=int,
        default=8,
        help="training samples of the alignment at the initial weights (default: 8)",
    )
    parser.add_argument(
        "--alignment-device",
        default="cpp_standalone",
        help="device of the alignment's simulations (default: cpp_standalone)",
    )
    parser.add_argument(
        "--directions",
        type=int,
        default=16,
        help="finite-difference directions of the ground truth (default: 16)",
    )
    parser.add_argument(
        "--out", default="analysis/results/dt_study.json", help="JSON result (default: %(default)s)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _one_run(config: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """Train one (dt, seed) and measure its alignment at the initial weights."""
    with tempfile.TemporaryDirectory(prefix="fbsnn_dt_study_") as directory:
        metrics = train_run(config, Path(directory) / "run", progress=not args.no_progress)
    settings = metrics["config"]  # every setting as the run resolved it (preset included)
    resolved = RunSettings.from_saved(settings)
    train, _, _ = run_datasets(resolved.data)  # the part the run trained on
    # the same network (seed) and protocol as the run, before any training; training samples
    initial = trainer_from_settings(resolved, train, progress=False)
    count = min(args.alignment_samples, train.n_samples)
    alignment = alignment_at_initial_weights(
        initial.network,
        initial.protocol,
        train.inputs[:count],
        train.labels[:count],
        device=args.alignment_device,
        directions=args.directions,
    )
    return {
        "test_accuracy": float(metrics["test_accuracy"]),
        **alignment,
        "samples_per_s": float(metrics["samples_per_s"]),
        "wall_time_s": float(metrics["wall_time_s"]),
    }


def _summary(values: list[float], reference: list[float]) -> dict[str, Any]:
    mean, sd = mean_sd(values)
    interval = paired_interval(values, reference)
    return {"mean": mean, "sd": sd, "difference_to_first_dt": interval}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    dts = [float(part) for part in args.dt.split(",") if part.strip()]
    seeds = list(range(args.seeds))
    base: dict[str, Any] = {
        "dataset": args.dataset,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "epochs": args.epochs,
        "device": args.device,
        "validation_size": 0,
        "layers": args.layers,
    }
    start = time.perf_counter()
    runs: dict[float, list[dict[str, float]]] = {}
    for dt in dts:
        runs[dt] = [_one_run({**base, "dt": dt, "seed": seed}, args) for seed in seeds]
        print(f"dt = tau/{1 / dt:g}: " + ", ".join(f"{r['test_accuracy']:.4f}" for r in runs[dt]))
    first = [run["test_accuracy"] for run in runs[dts[0]]]
    results = []
    for dt in dts:
        accuracy = [run["test_accuracy"] for run in runs[dt]]
        alignment = {}
        for key in MEASURES:
            mean, sd = mean_sd([run[key] for run in runs[dt]])
            alignment[key] = {"mean": mean, "sd": sd}
        results.append(
            {
                "dt_tau": dt,
                "steps_per_tau": round(1 / dt),
                "runs": [{"seed": seed, **run} for seed, run in zip(seeds, runs[dt], strict=True)],
                "test_accuracy": _summary(accuracy, first),
                "alignment_at_initial_weights": alignment,
            }
        )
    payload = {
        "command": " ".join(shlex.quote(part) for part in ["python", *sys.argv]),
        "description": (
            "test accuracy after a fixed number of epochs of SPIDE (no validation split) and "
            "the cosines of SPIDE's mean update with the ideal IDE gradient, the measured rate "
            "model's and finite differences of the simulated network (hidden parameters, "
            "training samples, initial weights), per integration step dt (in units of tau); "
            "mean and sd over seeds (NaN sd with one seed), and the accuracy's paired 95 % t "
            "interval of the difference to the first dt"
        ),
        "settings": {**base, "seeds": seeds, "alignment_samples": args.alignment_samples},
        "results": results,
        "wall_time_s": time.perf_counter() - start,
    }
    write_json_atomically(args.out, _finite_json(payload))
    print(f"written to {args.out}")
    return payload


def _finite_json(value: Any) -> Any:
    """The payload with NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_json(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    main()
