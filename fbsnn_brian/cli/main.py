"""The ``fbsnn`` command.

``fbsnn train`` trains with SPIDE inside the simulation and writes a run directory,
``fbsnn evaluate RUN_DIR`` tests it, ``fbsnn check equilibrium`` and ``fbsnn check gradient``
compare the Brian2 simulations with the numpy reference.

The argument parsers are in :mod:`fbsnn_brian.cli.parsers`, the printed summaries in
:mod:`fbsnn_brian.cli.printing`; this module dispatches a parsed command and prints its result.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from fbsnn_brian.cli.parsers import build_parser
from fbsnn_brian.cli.printing import (
    print_alignment,
    print_equilibrium,
    print_evaluation,
    print_gradient,
    print_training,
)
from fbsnn_brian.cli.run_commands import run_check_alignment, run_train
from fbsnn_brian.errors import FbsnnError
from fbsnn_brian.interrupt import Interrupted

__all__ = ["main"]


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.build.devices.engines import engines_of
    from fbsnn_brian.build.devices.registry import get_device_spec
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    device = get_device_spec("fbsnn build", args.device, "build", parameter="--device")
    network = FeedbackNetwork(
        n_inputs=args.inputs,
        layer_sizes=args.layers,
        n_classes=args.classes,
        neuron=args.neuron,
        seed=0,
    )
    protocol = Protocol(
        [
            FreePhase(duration=args.free * network.tau),
            PerturbedPhase(duration=args.perturbed * network.tau),
        ],
        plasticity=SPIDEPlasticity(),
    )
    # the training network of --chunk-size samples, as the device builds it
    return engines_of(device).generate(
        network,
        protocol,
        samples=args.chunk_size,
        directory=args.out,
        compute_capability=args.compute_capability,
    )


def _finite_or_none(variable: Any, rule: str) -> float | None:
    """A comparison variable's value for ``rule``, None if it is NaN."""
    import math

    value = float(variable.sel(rule=rule))
    return None if math.isnan(value) else value


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace
    from pathlib import Path

    from fbsnn_brian.experiments.comparison import compare_rules, comparison_table
    from fbsnn_brian.experiments.run_data import split_dataset
    from fbsnn_brian.experiments.settings import RunSettings
    from fbsnn_brian.io.netcdf import write_dataset
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    train, test = split_dataset(
        args.dataset, train_size=args.train_size, test_size=args.test_size, split_seed=0
    )
    # the template of every rule's network: its architecture and scales (the seeds and the
    # regime set the rest)
    network = FeedbackNetwork(
        n_inputs=train.n_features,
        layer_sizes=args.layers,
        n_classes=train.n_classes,
        seed=args.seed,
    )
    defaults = RunSettings()
    plasticity = SPIDEPlasticity(
        learning_rate=args.lr,
        scale=defaults.training.scale,
        weight_decay=defaults.training.weight_decay,
        max_feedback_gain=defaults.network.max_feedback_gain,
    )
    protocol = Protocol(
        [
            FreePhase(duration=defaults.protocol.free_tau * network.tau),
            PerturbedPhase(duration=defaults.protocol.perturbed_tau * network.tau),
        ],
        plasticity=plasticity,
    )
    free_tau = {"na": args.na_free}
    if args.st_rsbp_free is not None:
        free_tau["st_rsbp"] = args.st_rsbp_free
    result = compare_rules(
        network,
        protocol,
        (train.inputs, train.labels),
        (test.inputs, test.labels),
        epochs=args.epochs,
        rules=[name.strip() for name in args.rules.split(",") if name.strip()],
        regime=args.regime,
        seeds=list(range(args.seed, args.seed + args.seeds)),
        free_tau=free_tau,
        device=args.device,
        chunk_size=args.chunk_size,
        recorded_plasticity=replace(
            plasticity, learning_rate=args.batch_lr, momentum=args.batch_momentum
        ),
        alignment_samples=args.alignment_samples,
        directions=args.directions,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_dataset(result, out / "compare.nc")
    table = comparison_table(result)
    (out / "compare.md").write_text(table)
    rules = [str(rule) for rule in result["rule"].values]
    return {
        "out": str(out),
        "regime": args.regime,
        "seeds": [int(seed) for seed in result["seed"].values],
        "table": table,
        "test_accuracy": {
            rule: [float(v) for v in result["test_accuracy"].sel(rule=rule).values]
            for rule in rules
        },
        "test_accuracy_difference_to_spide": {
            # None where there is no interval (one seed) or no SPIDE: JSON has no NaN
            rule: {
                bound: _finite_or_none(result[f"test_accuracy_difference_to_spide{suffix}"], rule)
                for bound, suffix in (("difference", ""), ("low", "_low"), ("high", "_high"))
            }
            for rule in rules
        },
        "cosine_vs_ide": {
            rule: {
                str(state): float(result["cosine_vs_ide"].sel(rule=rule, state=state).mean())
                for state in result["state"].values
            }
            for rule in rules
        },
        "algebraically_ide": {
            rule: bool(result["algebraically_ide"].sel(rule=rule)) for rule in rules
        },
    }


def _sweep_summary(result: Any) -> dict[str, Any]:
    """Per condition: accuracies per seed, mean ± sd and the paired interval to the reference.

    NaN (a failed run, no interval with one seed) becomes None: JSON has no NaN.
    """

    def finite(value: Any) -> float | None:
        number = float(value)
        return number if math.isfinite(number) else None

    conditions: dict[str, Any] = {}
    for name in result["condition"].values:
        row = result.sel(condition=name)
        conditions[str(name)] = {
            "test_accuracy": [finite(v) for v in row["test_accuracy"].values],
            **{
                key: finite(row[f"test_accuracy_{key}"])
                for key in ("mean", "sd", "difference", "difference_low", "difference_high")
            },
            "n_paired_seeds": int(row["n_paired_seeds"]),
        }
    return {
        "reference_condition": str(result.attrs["reference_condition"]),
        "conditions": conditions,
        "failed": int((result["status"] == "failed").sum()),
    }


def _print_sweep(result: dict[str, Any]) -> None:
    from fbsnn_brian.analysis.statistics import format_interval, format_mean_sd

    reference = result["reference_condition"]
    print(f"sweep written to {result['out']} ({result['failed']} failed runs)")
    print(
        f"  test accuracy (%), mean ± sd over the seeds of {result['seeds']} that finished; "
        f"change vs {reference} (points) with its paired 95 % interval"
    )
    for name, summary in result["conditions"].items():
        finished = [value for value in summary["test_accuracy"] if value is not None]
        accuracy = format_mean_sd(finished, scale=100.0) if finished else "failed"
        if name == reference:
            change = "reference"
        elif summary["n_paired_seeds"] == 0:
            change = "failed"
        else:
            bounds = (summary["difference_low"], summary["difference_high"])
            low, high = (math.nan if bound is None else bound for bound in bounds)
            interval = {"difference": summary["difference"], "low": low, "high": high}
            change = format_interval(interval, scale=100.0)
        print(f"  {name:24s} {accuracy:16s} {change}")


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.experiments.checks import check_equilibrium, check_gradient
    from fbsnn_brian.experiments.runs import evaluate_run

    if args.command == "check" and args.check == "alignment":
        return run_check_alignment(args)
    if args.command == "check" and args.check == "equilibrium":
        return check_equilibrium(
            layer_sizes=args.layers,
            n_inputs=args.inputs,
            duration_tau=args.duration,
            n_samples=args.samples,
            seed=args.seed,
            device=args.device,
            neuron=args.neuron,
        )
    if args.command == "check":
        return check_gradient(
            layer_sizes=args.layers,
            free_tau=args.free,
            perturbed_tau=args.perturbed,
            scale=args.scale,
            n_samples=args.samples,
            seed=args.seed,
            device=args.device,
        )
    if args.command == "build":
        return _build(args)
    if args.command == "sweep":
        from fbsnn_brian.experiments.sweep import load_sweep_file, run_sweep
        from fbsnn_brian.io.netcdf import write_dataset

        spec = load_sweep_file(args.file, n_seeds=args.seeds)
        result = run_sweep(spec, scheduler=args.scheduler, n_workers=args.workers)
        path = write_dataset(result, args.out)
        return {"out": str(path), "seeds": spec["seeds"], **_sweep_summary(result)}
    if args.command == "compare":
        return _compare(args)
    if args.command == "report":
        from fbsnn_brian.analysis.report import write_report
        from fbsnn_brian.experiments.settings import reported_settings

        return write_report(args.run_dir, settings=reported_settings())
    if args.command == "train":
        return run_train(args)
    return evaluate_run(
        args.run_dir,
        dataset=args.dataset,
        train_size=args.train_size,
        test_size=args.test_size,
        split_seed=args.split_seed,
        device=args.device,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fbsnn`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="fbsnn: %(message)s"
        if not getattr(args, "verbose", False)
        else "%(name)s: %(message)s",
    )
    try:
        result = _dispatch(args)
    except Interrupted as error:
        print(f"fbsnn: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fbsnn: interrupted", file=sys.stderr)
        return 130
    except FbsnnError as error:
        print(f"fbsnn: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.command == "check":
        if args.check == "alignment":
            print_alignment(result)
        else:
            (print_equilibrium if args.check == "equilibrium" else print_gradient)(result)
    elif args.command == "train":
        print_training(result)
    elif args.command == "sweep":
        _print_sweep(result)
    elif args.command == "compare":
        print(result["table"])
        print(f"written to {result['out']}/compare.nc and compare.md")
    elif args.command == "report":
        print(f"report written to {result['report_dir']}/report.md")
        print(f"  test accuracy {100 * result['test_accuracy']:.2f} %")
    elif args.command == "build":
        print(
            f"{result['device']} project of {result['network']} compiled in {result['directory']}"
        )
        print(f"  in {result['compile_time_s']:.1f} s")
    else:
        print_evaluation(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
