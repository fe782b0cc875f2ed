"""The ``fbsnn`` command.

``fbsnn train`` trains with SPIDE inside the simulation and writes a run directory,
``fbsnn evaluate RUN_DIR`` tests it, ``fbsnn check equilibrium`` and ``fbsnn check gradient``
compare the Brian2 simulations with the numpy reference.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from fbsnn_brian.errors import FbsnnError, ValidationError
from fbsnn_brian.interrupt import Interrupted

__all__ = ["main"]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where the help text already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action) or text


def _global_options() -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand."""
    options = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's copy sets the value only when given there
    options.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log progress to stderr",
    )
    return options


def _add(commands: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    """A subcommand parser with the global options and defaults in its help."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, formatter_class=_HelpFormatter, parents=[_global_options()], **options
    )
    return parser


def _layer_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers must be comma-separated positive integers such as 100 or 64,32, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--layers must be positive integers, got {text!r}")
    return sizes


def _add_check_parsers(commands: Any) -> None:
    check = _add(commands, "check", help="numerical self-checks against the reference")
    checks = check.add_subparsers(dest="check", required=True)
    equilibrium = _add(
        checks,
        "equilibrium",
        help="distance of simulated free-phase rates to the reference fixed point",
    )
    equilibrium.add_argument(
        "--layers", type=_layer_sizes, default=[100], help="e.g. 100 or 64,32,16"
    )
    equilibrium.add_argument("--inputs", type=int, default=64, help="input features (<= 64)")
    equilibrium.add_argument(
        "--duration", type=float, default=30.0, help="free phase, in units of tau"
    )
    equilibrium.add_argument("--samples", type=int, default=5, help="number of digits simulated")
    equilibrium.add_argument("--seed", type=int, default=0, help="seed of the network")
    equilibrium.add_argument("--neuron", default="if", help="if or lif")
    equilibrium.add_argument(
        "--device", default="runtime", help="runtime, numpy, cython or cpp_standalone"
    )
    equilibrium.add_argument("--json", action="store_true", help="print JSON only")

    gradient = _add(checks, "gradient", help="in-simulation SPIDE update vs the exact IDE gradient")
    gradient.add_argument("--layers", type=_layer_sizes, default=[64])
    gradient.add_argument("--free", type=float, default=30.0, help="free phase, in tau")
    gradient.add_argument("--perturbed", type=float, default=100.0, help="perturbed phase, in tau")
    gradient.add_argument("--scale", type=float, default=4.0, help="error scale s")
    gradient.add_argument("--samples", type=int, default=3)
    gradient.add_argument("--seed", type=int, default=0, help="seed of the network")
    gradient.add_argument(
        "--device", default="numpy", help="runtime, numpy, cython, cpp_standalone"
    )
    gradient.add_argument("--json", action="store_true", help="print JSON only")


# flag, setting, type, help; every default is None so that a --config file can set it
_TRAIN_OPTIONS: list[tuple[str, str, Any, str]] = [
    ("--dataset", "dataset", str, "digits, idx:DIR or npz:FILE"),
    (
        "--test-dataset",
        "test_dataset",
        str,
        "a separate test set (npz:FILE or idx:DIR); the whole --dataset then trains",
    ),
    ("--train-size", "train_size", int, "first N samples train"),
    ("--test-size", "test_size", int, "last M samples test"),
    (
        "--validation-size",
        "validation_size",
        int,
        "last V training samples followed per epoch instead of training (0: none)",
    ),
    ("--split-seed", "split_seed", int, "seed of the stratified split"),
    ("--preset", "preset", str, "settings per data set: digits, mnist or generic"),
    ("--classes", "n_classes", int, "number of classes; labels must lie below it"),
    ("--layers", "layers", _layer_sizes, "hidden layer sizes, comma-separated"),
    ("--neuron", "neuron", str, "if or lif"),
    ("--epochs", "epochs", int, "passes over the training set"),
    ("--lr", "learning_rate", float, "learning rate"),
    ("--scale", "scale", float, "error scale s"),
    ("--weight-decay", "weight_decay", float, "L2 weight decay"),
    ("--momentum", "momentum", float, "SGD momentum"),
    ("--batch-size", "batch_size", int, "samples per applied update"),
    ("--max-feedback-gain", "max_feedback_gain", float, "cap on the loop gain, in (0, 1)"),
    ("--input-dropout", "input_dropout", float, "probability of silencing an input component"),
    ("--shift", "shift", int, "shift training images by up to this many pixels (0: never)"),
    ("--schedule", "schedule", str, "constant or cosine"),
    ("--feedback", "feedback", str, "backward weights: transpose or random (no weight transport)"),
    ("--free", "free_tau", float, "free phase, in tau"),
    ("--perturbed", "perturbed_tau", float, "perturbed phase, in tau"),
    ("--device", "device", str, "runtime, numpy, cython, cpp_standalone or genn (SPIDE only)"),
    ("--chunk-size", "chunk_size", int, "samples per Brian2 run (a recorded rule's mini-batch)"),
    (
        "--rule",
        "rule",
        str,
        "spide, ide, st_rsbp, na or spike_bp (fbsnn_brian.rules.learning_rules)",
    ),
    ("--seed", "seed", int, "seed of the network and of the shuffling"),
]


def _shown_default(key: str, default: Any, preset_keys: set[str]) -> str:
    """How the help text names a train option's default."""
    from fbsnn_brian.experiments.presets import PRESETS

    if key == "preset":
        return "digits for digits, mnist for a 784-feature idx: set, else generic"
    if key in preset_keys:
        return (
            "the preset's, "
            + ", ".join(
                f"{name} {','.join(map(str, value)) if isinstance(value, list) else value}"
                for name, values in PRESETS.items()
                for option, value in values.items()
                if option == key
            )
            + ("" if all(key in values for values in PRESETS.values()) else f", else {default}")
        )
    if key == "chunk_size":
        return "200 for spide, 16 for the other rules"
    if default is None:
        return {"train_size": "seeded split", "test_size": "seeded split"}.get(
            key, "the largest training label + 1" if key == "n_classes" else "none"
        )
    return ",".join(map(str, default)) if isinstance(default, list) else str(default)


def _add_run_parsers(commands: Any) -> None:
    from fbsnn_brian.experiments.presets import PRESETS
    from fbsnn_brian.experiments.runs import DEFAULTS, SAMPLES_PER_S

    train = _add(
        commands,
        "train",
        help="train with SPIDE (or another --rule)",
        description=f"Train a network and write a run directory. samples/s: {SAMPLES_PER_S}.",
    )
    train.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of settings (see fbsnn_brian.experiments.run_file); options given here "
        "override it "
        "(default: none)",
    )
    preset_keys = set().union(*PRESETS.values())
    for flag, key, kind, text in _TRAIN_OPTIONS:
        train.add_argument(
            flag,
            dest=key,
            type=kind,
            default=None,
            help=f"{text} (default: {_shown_default(key, DEFAULTS[key], preset_keys)})",
        )
    train.add_argument(
        "--cpu-only",
        dest="cpu_only",
        action="store_const",
        const=True,
        default=None,
        help="with --device genn: run GeNN's CPU backend instead of CUDA",
    )
    train.add_argument("--out", help="run directory (default: runs/<timestamp>)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out directory (an earlier run and its report/)",
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoint with its own config.json; only "
        "--epochs may be given too, to extend a run with the constant schedule (default: a new "
        "run)",
    )
    train.add_argument("--checkpoint-every", type=int, default=1, help="chunks between checkpoints")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="print the metrics as JSON")

    compare = _add(
        commands,
        "compare",
        help="train every learning rule on the same network and data; one table",
    )
    compare.add_argument("--dataset", default="digits", help="digits, idx:DIR or npz:FILE")
    compare.add_argument(
        "--train-size", type=int, help="first N samples train (default: seeded split)"
    )
    compare.add_argument(
        "--test-size", type=int, help="last M samples test (default: seeded split)"
    )
    compare.add_argument("--layers", type=_layer_sizes, default=[128])
    compare.add_argument("--epochs", type=int, default=10)
    compare.add_argument(
        "--rules",
        default=",".join(["spide", "ide", "st_rsbp", "na", "spike_bp"]),
        help="comma-separated rule names",
    )
    compare.add_argument("--lr", type=float, default=0.04, help="SPIDE's online learning rate")
    compare.add_argument(
        "--batch-lr", type=float, default=0.1, help="learning rate of the mini-batch rules"
    )
    compare.add_argument(
        "--batch-momentum", type=float, default=0.9, help="momentum of the mini-batch rules"
    )
    compare.add_argument(
        "--chunk-size", type=int, default=16, help="mini-batch of the recorded rules"
    )
    compare.add_argument("--na-free", type=float, default=10.0, help="NA's free phase, in tau")
    compare.add_argument("--device", default="cpp_standalone")
    compare.add_argument("--seed", type=int, default=0, help="seed of the network and shuffling")
    compare.add_argument("--out", default="compare", help="directory for compare.nc and .md")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.add_argument("--json", action="store_true", help="print JSON only")

    evaluate = _add(commands, "evaluate", help="test accuracy of a trained run")
    evaluate.add_argument("run_dir", help="directory written by fbsnn train")
    evaluate.add_argument(
        "--dataset",
        help="a data set scored whole (an idx: directory with train and t10k files: its t10k "
        "part) (default: the test part of the run's own data, split as the run split it)",
    )
    evaluate.add_argument(
        "--train-size",
        type=int,
        help="the run's own data: first N samples train (default: the run's)",
    )
    evaluate.add_argument(
        "--test-size",
        type=int,
        help="last M samples are scored (default: the run's split, or all of --dataset)",
    )
    evaluate.add_argument(
        "--split-seed", type=int, help="the run's own data: seed of its split (default: the run's)"
    )
    evaluate.add_argument(
        "--device", default="cpp_standalone", help="runtime, numpy, cython or cpp_standalone"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON only")


def _parser() -> argparse.ArgumentParser:
    from fbsnn_brian.version import __version__

    parser = argparse.ArgumentParser(
        prog="fbsnn",
        description="Feedback spiking neural networks in Brian2 (SPIDE).",
        formatter_class=_HelpFormatter,
        parents=[_global_options()],
    )
    parser.add_argument("--version", action="version", version=f"fbsnn_brian {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_check_parsers(commands)
    _add_run_parsers(commands)
    sweep = _add(commands, "sweep", help="run conditions x seeds of a sweep file on Dask")
    sweep.add_argument("file", help="sweep TOML file (see fbsnn_brian.experiments.sweep)")
    sweep.add_argument("--scheduler", help="address of a dask scheduler (default: LocalCluster)")
    sweep.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    sweep.add_argument("--out", default="sweep.nc", help="result file, .nc or .zarr")
    sweep.add_argument("--json", action="store_true", help="print a JSON summary")
    report = _add(commands, "report", help="figures and a Markdown report of a run")
    report.add_argument("run_dir", help="directory written by fbsnn train")
    report.add_argument("--json", action="store_true", help="print the numbers as JSON")
    build = _add(
        commands, "build", help="generate and compile the training simulation without running it"
    )
    build.add_argument(
        "--device",
        default="cpp_standalone",
        help="cpp_standalone or cuda_standalone (training network, compiled), or genn "
        "(training network of --chunk-size samples, generated without GeNN)",
    )
    build.add_argument("--out", required=True, help="project directory")
    build.add_argument("--inputs", type=int, default=784, help="number of inputs")
    build.add_argument("--layers", type=_layer_sizes, default=[256])
    build.add_argument("--classes", type=int, default=10)
    build.add_argument("--free", type=float, default=30.0, help="in tau")
    build.add_argument("--perturbed", type=float, default=100.0, help="in tau")
    build.add_argument("--chunk-size", type=int, default=200)
    build.add_argument(
        "--compute-capability", type=float, default=8.0, help="cuda_standalone: target GPU"
    )
    build.add_argument("--json", action="store_true", help="print JSON only")
    return parser


def _print_equilibrium(result: dict[str, Any]) -> None:
    print(
        f"free phase of {result['duration_tau']:g} tau on {result['n_samples']} "
        f"digits, {result['n_neurons']} neurons {result['layer_sizes']}, "
        f"device {result['device']}:\n"
        f"  mean |a - a*| = {result['mean_abs_error']:.5f}\n"
        f"  max  |a - a*| = {result['max_abs_error']:.5f}\n"
        f"  loop gain {result['loop_gain']:.3f}, mean rate {result['mean_rate']:.3f}, "
        f"wall time {result['wall_time_s']:.1f} s"
    )


def _print_gradient(result: dict[str, Any]) -> None:
    print(
        f"SPIDE update by spikes ({result['n_samples']} digits, layers {result['layer_sizes']}, "
        f"T_f = {result['free_duration_tau']:g} tau, T_b = {result['perturbed_duration_tau']:g} "
        f"tau, s = {result['scale']:g}), cosine over F, W, W_fb, b with\n"
        f"  exact IDE at the same rates:   {result['cosine_vs_ide']:.5f}\n"
        f"  exact IDE at the equilibrium:  {result['cosine_vs_ide_equilibrium']:.5f}\n"
        f"  finite differences:            {result['cosine_vs_finite_difference']:.5f}"
    )


def _print_training(metrics: dict[str, Any]) -> None:
    epochs = len(metrics["train_accuracy_per_epoch"])
    validation = (
        ""
        if metrics["validation_accuracy"] is None
        else f", validation accuracy {metrics['validation_accuracy']:.4f} on "
        f"{metrics['n_validation']} samples"
    )
    cache = " (cached build)" if metrics.get("build_cache_hit") else ""
    print(
        f"trained {epochs} epochs on {metrics['n_train']} samples in "
        f"{metrics['wall_time_s']:.0f} s "
        f"({metrics['samples_per_s']:.0f} samples/s of training simulation, "
        f"compile {metrics['compile_time_s']:.0f} s{cache})\n"
        f"  train accuracy {metrics['train_accuracy']:.4f}{validation}\n"
        f"  test accuracy {metrics['test_accuracy']:.4f} on {metrics['n_test']} samples "
        "(evaluated once, after training)\n"
        f"  mean rates: forward {metrics['mean_forward_rate']:.3f}, backward "
        f"{metrics['mean_backward_rate']:.3f} per tau; loop gain {metrics['loop_gain']:.3f}\n"
        f"  preset {metrics['config']['preset']}; written to {metrics['run_dir']}"
    )


def _print_evaluation(result: dict[str, Any]) -> None:
    print(f"test accuracy {result['test_accuracy']:.4f} on {result['n_test']} samples")
    print("confusion matrix (rows: true class, columns: predicted class):")
    for row in result["confusion_matrix"]:
        print("  " + " ".join(f"{count:5d}" for count in row))


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.build.devices.standalone import TARGETS, configure_cuda
    from fbsnn_brian.build.training import TrainingSimulation
    from fbsnn_brian.model.network import FeedbackNetwork
    from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
    from fbsnn_brian.model.protocol import FreePhase, Protocol
    from fbsnn_brian.validation import check_choice

    target = check_choice("fbsnn build", "--device", args.device, (*TARGETS, "genn"))
    network = FeedbackNetwork(
        n_inputs=args.inputs, layer_sizes=args.layers, n_classes=args.classes, seed=0
    )
    protocol = Protocol(
        [
            FreePhase(duration=args.free * network.tau),
            PerturbedPhase(duration=args.perturbed * network.tau),
        ],
        plasticity=SPIDEPlasticity(),
    )
    if target == "genn":
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
    if target == "cuda_standalone":
        configure_cuda(args.compute_capability)
    simulation = TrainingSimulation(network, protocol, chunk_size=args.chunk_size)
    build = simulation.generate(args.out, target=target)
    return {
        "device": target,
        "directory": build.directory,
        "compile_time_s": build.compile_time_s,
        "network": "-".join(str(n) for n in (args.inputs, *args.layers, args.classes)),
    }


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
    result = compare_rules(
        network,
        protocol,
        (train.inputs, train.labels),
        (test.inputs, test.labels),
        epochs=args.epochs,
        rules=[name.strip() for name in args.rules.split(",") if name.strip()],
        free_tau={"na": args.na_free},
        device=args.device,
        chunk_size=args.chunk_size,
        recorded_plasticity=replace(
            plasticity, learning_rate=args.batch_lr, momentum=args.batch_momentum
        ),
        progress=not args.no_progress,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_dataset(result, out / "compare.nc")
    table = comparison_table(result)
    (out / "compare.md").write_text(table)
    return {
        "out": str(out),
        "table": table,
        "test_accuracy": {
            str(r): float(result["test_accuracy"].sel(rule=r)) for r in result["rule"].values
        },
        "cosine_vs_ide": {
            str(r): float(result["cosine_vs_ide"].sel(rule=r)) for r in result["rule"].values
        },
    }


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from fbsnn_brian.experiments.checks import check_equilibrium, check_gradient
    from fbsnn_brian.experiments.run_file import load_run_file
    from fbsnn_brian.experiments.runs import evaluate_run, train_run

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

        spec = load_sweep_file(args.file)
        result = run_sweep(spec, scheduler=args.scheduler, n_workers=args.workers)
        path = write_dataset(result, args.out)
        return {
            "out": str(path),
            "conditions": list(spec["conditions"]),
            "seeds": spec["seeds"],
            "test_accuracy": {
                str(c): [float(v) for v in result["test_accuracy"].sel(condition=c).values]
                for c in result["condition"].values
            },
            "failed": int((result["status"] == "failed").sum()),
        }
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
            for flag, key, _, _ in (*_TRAIN_OPTIONS, ("--cpu-only", "cpu_only", bool, ""))
            if key != "epochs" and getattr(args, key) is not None
        ]
        if args.resume is not None and changed:
            raise ValidationError(
                f"fbsnn train --resume: the run continues with its own configuration; "
                f"{', '.join(changed)} cannot change it (only --epochs can extend a run with "
                "the constant schedule). Start a new run to change settings."
            )
        config = load_run_file(args.config) if args.config else {}
        for key in [key for _, key, _, _ in _TRAIN_OPTIONS] + ["cpu_only"]:
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        return train_run(
            config,
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
        (_print_equilibrium if args.check == "equilibrium" else _print_gradient)(result)
    elif args.command == "train":
        _print_training(result)
    elif args.command == "sweep":
        print(f"sweep written to {result['out']} ({result['failed']} failed runs)")
        for name, accuracies in result["test_accuracy"].items():
            print(f"  {name:24s} " + " ".join(f"{100 * a:.2f}" for a in accuracies))
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
