"""The argument parsers of the ``fbsnn`` command.

:func:`_parser` builds the whole command line: the global options, the ``check``, ``train``,
``compare``, ``evaluate``, ``sweep``, ``report`` and ``build`` subcommands, and a help text
that shows every default (:class:`_HelpFormatter`). :data:`_TRAIN_OPTIONS` lists the settings
of ``fbsnn train``, each of which a ``--config`` file may set too.
"""

from __future__ import annotations

import argparse
from typing import Any

from fbsnn_brian.build.devices.registry import Purpose, device_names
from fbsnn_brian.model.network import NEURON_MODELS

#: Help text of every --neuron option.
_NEURONS = "neuron model: " + ", ".join(NEURON_MODELS)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where the help text already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action) or text


def _devices(purpose: Purpose) -> str:
    """The registry's devices for ``purpose``, as a help text."""
    return ", ".join(device_names(purpose))


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
    equilibrium.add_argument("--neuron", default="if", help=_NEURONS)
    equilibrium.add_argument("--device", default="runtime", help=_devices("simulate"))
    equilibrium.add_argument("--json", action="store_true", help="print JSON only")

    gradient = _add(checks, "gradient", help="in-simulation SPIDE update vs the exact IDE gradient")
    gradient.add_argument("--layers", type=_layer_sizes, default=[64])
    gradient.add_argument("--free", type=float, default=30.0, help="free phase, in tau")
    gradient.add_argument("--perturbed", type=float, default=100.0, help="perturbed phase, in tau")
    gradient.add_argument("--scale", type=float, default=4.0, help="error scale s")
    gradient.add_argument("--samples", type=int, default=3)
    gradient.add_argument("--seed", type=int, default=0, help="seed of the network")
    gradient.add_argument("--device", default="numpy", help=_devices("simulate"))
    gradient.add_argument("--json", action="store_true", help="print JSON only")
    _add_alignment_parser(checks)


#: Settings of ``fbsnn train`` that ``fbsnn check alignment`` takes: data, network,
#: biophysics, phases and the rule's error scale and backward weights.
ALIGNMENT_SETTINGS = (
    "dataset test_dataset train_size test_size validation_size split_seed preset n_classes "
    "layers neuron tau_m tau_a b_a refractory synapse tau_syn e_excitatory e_inhibitory reset "
    "delay delay_spread noise_sigma noise_tau excitatory_fraction rate_estimate dt scale "
    "feedback free_tau perturbed_tau device seed"
).split()


def _add_alignment_parser(checks: Any) -> None:
    """``check alignment``: SPIDE's update against the ground truth of the simulated network."""
    from fbsnn_brian.experiments.runs import DEFAULTS

    alignment = _add(
        checks,
        "alignment",
        help="SPIDE's update against the ideal, measured and finite-difference gradients",
        description="Cosines (hidden parameters) of SPIDE's in-simulation update with the IDE "
        "gradient of the ideal IF model, of the measured rate model, and with finite "
        "differences of the simulated network (fbsnn_brian.experiments.alignment).",
    )
    alignment.add_argument(
        "--config", metavar="FILE", help="TOML file of fbsnn train settings (default: none)"
    )
    for flag, key, kind, text in _TRAIN_OPTIONS:
        if key in ALIGNMENT_SETTINGS:
            default = DEFAULTS[key]
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            alignment.add_argument(
                flag, dest=key, type=kind, default=None, help=f"{text} (default: {shown})"
            )
    alignment.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="measure a trained run (its settings and weights) (default: the initial weights of "
        "the options' network)",
    )
    alignment.add_argument("--samples", type=int, default=8, help="training samples measured")
    alignment.add_argument(
        "--directions", type=int, default=32, help="random directions of the finite differences"
    )
    alignment.add_argument(
        "--duration", type=float, default=1000.0, help="finite-difference free phase, in tau"
    )
    alignment.add_argument(
        "--step", type=float, default=0.1, help="finite-difference step, relative to the weights"
    )
    alignment.add_argument(
        "--transfer-duration",
        type=float,
        default=2000.0,
        help="simulated time per current of the measured transfer functions, in tau",
    )
    alignment.add_argument(
        "--no-input-fluctuations",
        action="store_true",
        help="measure the transfer functions with constant input only (the layers' spiking "
        "input fluctuations left out)",
    )
    alignment.add_argument("--json", action="store_true", help="print JSON only")


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
    ("--neuron", "neuron", str, _NEURONS),
    ("--tau-m", "tau_m", float, "membrane time constant of lif and alif, in tau"),
    ("--tau-a", "tau_a", float, "adaptation time constant of alif, in tau"),
    ("--b-a", "b_a", float, "adaptation increment of alif per spike, in drive per tau"),
    ("--refractory", "refractory", float, "refractory period, in tau (caps the rate at 1/it)"),
    ("--synapse", "synapse", str, "synapse model: instantaneous, exponential, conductance"),
    ("--tau-syn", "tau_syn", float, "synaptic time constant, in tau"),
    ("--e-excitatory", "e_excitatory", float, "excitatory reversal potential (conductance)"),
    ("--e-inhibitory", "e_inhibitory", float, "inhibitory reversal potential (conductance)"),
    ("--reset", "reset", str, "reset: subtract (theta) or rest"),
    ("--delay", "delay", float, "transmission delay between layers, in tau"),
    ("--delay-spread", "delay_spread", float, "half-width of the delays' uniform spread, in tau"),
    ("--noise-sigma", "noise_sigma", float, "membrane noise amplitude (threshold units; 0: off)"),
    ("--noise-tau", "noise_tau", float, "noise correlation time, in tau (0: white noise)"),
    (
        "--excitatory-fraction",
        "excitatory_fraction",
        float,
        "Dale's law: fraction of excitatory neurons per layer (0: off)",
    ),
    ("--rate-estimate", "rate_estimate", str, "rate read from spikes: average or exponential"),
    ("--dt", "dt", float, "integration step, in tau (at most 0.25)"),
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
    ("--device", "device", str, _devices("train") + " (genn: SPIDE only)"),
    ("--chunk-size", "chunk_size", int, "samples per Brian2 run (a recorded rule's mini-batch)"),
    (
        "--rule",
        "rule",
        str,
        "spide, ide, st_rsbp, na or spike_bp (fbsnn_brian.rules.learning_rules)",
    ),
    ("--seed", "seed", int, "seed of the network and of the shuffling"),
    (
        "--workers",
        "workers",
        int,
        "Dask worker processes training this one network, each on its shard, merging their "
        "weights every --sync-every samples (fbsnn_brian.learning.distributed)",
    ),
    ("--scheduler", "scheduler", str, "address of a dask scheduler for --workers"),
    ("--sync-every", "sync_every", int, "samples each worker trains between two merges"),
    (
        "--alignment-directions",
        "alignment_directions",
        int,
        "finite-difference directions of the trained state's ground truth in metrics.json "
        "(0: the ideal IDE's cosine only; see fbsnn check alignment)",
    ),
]


# flag, setting, help of the on/off settings of fbsnn train (default None: a --config file's)
_TRAIN_SWITCHES: list[tuple[str, str, str]] = [
    ("--cpu-only", "cpu_only", "with --device genn: run GeNN's CPU backend instead of CUDA"),
    (
        "--no-feedback",
        "no_feedback",
        "remove the feedback loop: W_fb = 0 and never learned (SPIDE inside the simulation "
        "and the recorded rules; not on genn)",
    ),
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
        return {
            "train_size": "seeded split",
            "test_size": "seeded split",
            "sync_every": "the chunk size",
            "scheduler": "a LocalCluster of --workers processes",
        }.get(key, "the largest training label + 1" if key == "n_classes" else "none")
    return ",".join(map(str, default)) if isinstance(default, list) else str(default)


def _add_train_parser(commands: Any) -> None:
    """The ``train`` subcommand: every setting of :data:`_TRAIN_OPTIONS` and the run options."""
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
    for flag, key, text in _TRAIN_SWITCHES:
        train.add_argument(
            flag, dest=key, action="store_const", const=True, default=None, help=text
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


def _add_compare_parser(commands: Any) -> None:
    """The ``compare`` subcommand: every learning rule on the same network and data."""

    def count(flag: str, minimum: int) -> Any:
        """An argparse type: an integer of at least ``minimum``, refused with the flag's name."""

        def parse(text: str) -> int:
            try:
                value = int(text)
            except ValueError:
                value = minimum - 1
            if value < minimum:
                raise argparse.ArgumentTypeError(
                    f"{flag} must be an integer >= {minimum}, got {text!r}"
                )
            return value

        return parse

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
    compare.add_argument("--epochs", type=count("--epochs", 1), default=10)
    compare.add_argument(
        "--rules",
        default=",".join(["spide", "ide", "st_rsbp", "na", "spike_bp"]),
        help="comma-separated rule names",
    )
    compare.add_argument(
        "--regime",
        choices=["ideal", "paper"],
        default="ideal",
        help="ideal: every rule on the ideal IF network; paper: each baseline on the network of "
        "its paper (ST-RSBP: LIF, exponential synapses, reset to rest; spike_bp: LIF; NA: LIF "
        "with synaptic traces), SPIDE and IDE on the ideal one",
    )
    compare.add_argument(
        "--seeds",
        type=count("--seeds", 1),
        default=3,
        help="every rule trains with seeds --seed .. --seed + N - 1 (initial weights and "
        "shuffling)",
    )
    compare.add_argument(
        "--seed", type=count("--seed", 0), default=0, help="the first seed of --seeds"
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
    compare.add_argument(
        "--st-rsbp-free",
        type=float,
        help="ST-RSBP's free phase, in tau (default: the regime's: 100 in paper, else the "
        "protocol's 30)",
    )
    compare.add_argument(
        "--alignment-samples",
        type=count("--alignment-samples", 1),
        default=20,
        help="training samples on which each rule's update is compared with IDE's",
    )
    compare.add_argument(
        "--directions",
        type=count("--directions", 0),
        default=16,
        help="random directions of the finite differences of the ground truth (0: compare "
        "with the ideal IDE only)",
    )
    compare.add_argument("--device", default="cpp_standalone", help=_devices("train"))
    compare.add_argument("--out", default="compare", help="directory for compare.nc and .md")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.add_argument("--json", action="store_true", help="print JSON only")


def _add_evaluate_parser(commands: Any) -> None:
    """The ``evaluate`` subcommand: test accuracy of a trained run."""
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
    evaluate.add_argument("--device", default="cpp_standalone", help=_devices("simulate"))
    evaluate.add_argument("--json", action="store_true", help="print JSON only")


def _add_run_parsers(commands: Any) -> None:
    """The ``train``, ``compare`` and ``evaluate`` subcommands, in this order."""
    _add_train_parser(commands)
    _add_compare_parser(commands)
    _add_evaluate_parser(commands)


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
    sweep.add_argument(
        "--seeds",
        type=int,
        help="run seeds 0 .. N-1 instead of the file's [sweep] seeds (default: the file's, or "
        "0, 1, 2 when it names none)",
    )
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
        help=_devices("build") + " (the training network of --chunk-size samples: compiled by "
        "the standalone devices, generated without GeNN for genn)",
    )
    build.add_argument("--out", required=True, help="project directory")
    build.add_argument("--inputs", type=int, default=784, help="number of inputs")
    build.add_argument("--layers", type=_layer_sizes, default=[256])
    build.add_argument("--classes", type=int, default=10, help="number of classes")
    build.add_argument("--neuron", default="if", help=_NEURONS)
    build.add_argument("--free", type=float, default=30.0, help="in tau")
    build.add_argument("--perturbed", type=float, default=100.0, help="in tau")
    build.add_argument("--chunk-size", type=int, default=200)
    build.add_argument(
        "--compute-capability",
        default=None,
        help="cuda_standalone: the GPU's compute capability, e.g. 9.0 for an H100/H200 "
        "(default: $FBSNN_COMPUTE_CAPABILITY, else the GPU nvidia-smi reports)",
    )
    build.add_argument("--json", action="store_true", help="print JSON only")
    return parser
