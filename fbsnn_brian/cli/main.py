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

from fbsnn_brian.cli.parsers import _TRAIN_OPTIONS, _TRAIN_SWITCHES, _parser
from fbsnn_brian.cli.printing import (
    _print_alignment,
    _print_equilibrium,
    _print_evaluation,
    _print_gradient,
    _print_training,
)
from fbsnn_brian.errors import FbsnnError, ValidationError
from fbsnn_brian.interrupt import Interrupted

__all__ = ["main"]


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.build.devices.cuda import configure_cuda
    from fbsnn_brian.build.devices.registry import get_device_spec
    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol

    device = get_device_spec("fbsnn build", args.device, "build", parameter="--device")
    target = device.name
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
    if device.kind == "genn":
        # the whole training network of --chunk-size samples, generated without GeNN
        import time

        from fbsnn_brian.build.devices.genn_training import GeNNTraining

        start = time.perf_counter()
        samples = args.chunk_size
        directory = GeNNTraining(network, protocol).generate(
            [[0.0] * args.inputs] * samples, [0] * samples, 0.0, args.out
        )
        return {
            "device": "genn",
            "directory": str(directory),
            "compile_time_s": time.perf_counter() - start,
            "network": "-".join(str(n) for n in (args.inputs, *args.layers, args.classes)),
            "simulation": "training (free phase, perturbed phase, plasticity); generated, "
            "not compiled",
        }
    target_info: dict[str, Any] = {}
    if device.gpu:
        target_info["compute_capability"] = configure_cuda(args.compute_capability)
    simulation = TrainingSimulation(network, protocol, chunk_size=args.chunk_size)
    build = simulation.generate(args.out, target=target)
    return {
        "device": target,
        **target_info,
        "directory": build.directory,
        "compile_time_s": build.compile_time_s,
        "binary_reused": build.cache_hit,
        "reason": build.compile_reason,
        "network": "-".join(str(n) for n in (args.inputs, *args.layers, args.classes)),
    }


def _finite_or_none(variable: Any, rule: str) -> float | None:
    """A comparison variable's value for ``rule``, None if it is NaN."""
    import math

    value = float(variable.sel(rule=rule))
    return None if math.isnan(value) else value


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace
    from pathlib import Path

    from fbsnn_brian.experiments.comparison import compare_rules, comparison_table
    from fbsnn_brian.experiments.runs import DEFAULTS, split_dataset
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
    plasticity = SPIDEPlasticity(
        learning_rate=args.lr,
        scale=DEFAULTS["scale"],
        weight_decay=DEFAULTS["weight_decay"],
        max_feedback_gain=DEFAULTS["max_feedback_gain"],
    )
    protocol = Protocol(
        [
            FreePhase(duration=DEFAULTS["free_tau"] * network.tau),
            PerturbedPhase(duration=DEFAULTS["perturbed_tau"] * network.tau),
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


def _run_config(args: argparse.Namespace, keys: Any) -> dict[str, Any]:
    """The run file of ``--config`` (if any) with every option among ``keys`` the user gave."""
    from fbsnn_brian.experiments.run_file import load_run_file

    config = load_run_file(args.config) if args.config else {}
    config.update({key: getattr(args, key) for key in keys if getattr(args, key) is not None})
    return config


def _check_alignment(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.cli.parsers import ALIGNMENT_SETTINGS
    from fbsnn_brian.experiments.alignment_check import check_alignment

    given = [key for key in ALIGNMENT_SETTINGS if getattr(args, key) is not None]
    if args.run is not None and (args.config or given):
        raise ValidationError(
            "fbsnn check alignment --run RUN_DIR measures that run with its own settings; "
            "--config and the network options cannot be combined with it."
        )
    return check_alignment(
        _run_config(args, ALIGNMENT_SETTINGS),
        run_dir=args.run,
        n_samples=args.samples,
        n_directions=args.directions,
        duration_tau=args.duration,
        relative_step=args.step,
        transfer_duration_tau=args.transfer_duration,
        fluctuations=not args.no_input_fluctuations,
    )


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.experiments.checks import check_equilibrium, check_gradient
    from fbsnn_brian.experiments.runs import evaluate_run, train_run

    if args.command == "check" and args.check == "alignment":
        return _check_alignment(args)
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

        return write_report(args.run_dir)
    if args.command == "train":
        if args.resume is not None and (args.config or args.out or args.overwrite):
            raise ValidationError(
                "fbsnn train --resume RUN_DIR continues that run with its own configuration; "
                "--config, --out and --overwrite cannot be combined with it."
            )
        changed = [
            flag
            for flag, key, *_ in (*_TRAIN_OPTIONS, *_TRAIN_SWITCHES)
            if key != "epochs" and getattr(args, key) is not None
        ]
        if args.resume is not None and changed:
            raise ValidationError(
                f"fbsnn train --resume: the run continues with its own configuration; "
                f"{', '.join(changed)} cannot change it (only --epochs can extend a run with "
                "the constant schedule). Start a new run to change settings."
            )
        return train_run(
            _run_config(args, [key for _, key, *_ in (*_TRAIN_OPTIONS, *_TRAIN_SWITCHES)]),
            args.resume or args.out,
            progress=not args.no_progress,
            resume=args.resume is not None,
            checkpoint_every=args.checkpoint_every,
            overwrite=args.overwrite,
        )
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
    args = _parser().parse_args(argv)
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
            _print_alignment(result)
        else:
            (_print_equilibrium if args.check == "equilibrium" else _print_gradient)(result)
    elif args.command == "train":
        _print_training(result)
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
        _print_evaluation(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
