"""The argument parsers of the ``fbsnn`` command.

:func:`build_parser` builds the whole command line: the global options, the ``check``,
``train``, ``compare``, ``evaluate``, ``sweep``, ``report`` and ``build`` subcommands, and a help
text that shows every default (:class:`_HelpFormatter`). The options of ``fbsnn train`` (and
the data, network and phase options of ``fbsnn check alignment``) are the settings of
:class:`fbsnn_brian.experiments.settings.RunSettings`: each field gives its flag, help text,
choices, help group and default, and a ``--config`` file may set each of them too. Where
another subcommand takes an option of the same name with the same default, that default is
read from the settings too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from fbsnn_brian.build.devices.registry import Purpose, device_names
from fbsnn_brian.experiments.settings import (
    ALIGNMENT_SETTINGS,
    GROUPS,
    SECTIONS,
    RunSettings,
    SettingValue,
    setting_fields,
    shown_default,
)
from fbsnn_brian.model.network import NEURON_MODELS

__all__ = ["build_parser", "train_settings"]

#: Help text of every --neuron option.
_NEURONS = "neuron model: " + ", ".join(NEURON_MODELS)

#: The defaults of every setting, for the options of other subcommands that share them.
_DEFAULT = RunSettings()


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
    equilibrium.add_argument(
        "--seed", type=int, default=_DEFAULT.network.seed, help="seed of the network"
    )
    equilibrium.add_argument("--neuron", default=_DEFAULT.network.neuron, help=_NEURONS)
    equilibrium.add_argument("--device", default="runtime", help=_devices("simulate"))
    equilibrium.add_argument("--json", action="store_true", help="print JSON only")

    gradient = _add(checks, "gradient", help="in-simulation SPIDE update vs the exact IDE gradient")
    gradient.add_argument("--layers", type=_layer_sizes, default=[64])
    gradient.add_argument(
        "--free", type=float, default=_DEFAULT.protocol.free_tau, help="free phase, in tau"
    )
    gradient.add_argument(
        "--perturbed",
        type=float,
        default=_DEFAULT.protocol.perturbed_tau,
        help="perturbed phase, in tau",
    )
    gradient.add_argument(
        "--scale", type=float, default=_DEFAULT.training.scale, help="error scale s"
    )
    gradient.add_argument("--samples", type=int, default=3)
    gradient.add_argument(
        "--seed", type=int, default=_DEFAULT.network.seed, help="seed of the network"
    )
    gradient.add_argument("--device", default="numpy", help=_devices("simulate"))
    gradient.add_argument("--json", action="store_true", help="print JSON only")
    _add_alignment_parser(checks)


def _add_alignment_parser(checks: Any) -> None:
    """``check alignment``: SPIDE's update against the ground truth of the simulated network."""
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
    _add_settings(alignment, ALIGNMENT_SETTINGS, grouped=False)
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


def train_settings() -> tuple[str, ...]:
    """The settings ``fbsnn train`` takes: every field of :class:`RunSettings`."""
    return tuple(setting_fields())


# the argparse type of each run-file type of a setting
_ARGUMENT_TYPES: dict[str, Callable[[str], SettingValue]] = {
    "int": int,
    "float": float,
    "str": str,
    "int_list": _layer_sizes,
}


def _add_settings(
    parser: argparse.ArgumentParser, names: Sequence[str], *, grouped: bool
) -> dict[str, argparse._ActionsContainer]:
    """One option per setting in ``names``, in its help group if ``grouped``; return the groups.

    Every default is None, so that a ``--config`` file can set the setting; the help names the
    default of :class:`RunSettings` (:func:`~fbsnn_brian.experiments.settings.shown_default`)
    and the choices.
    """
    found = setting_fields()
    groups: dict[str, argparse._ActionsContainer] = {
        group: parser.add_argument_group(group) if grouped else parser for group in GROUPS
    }
    for name in names:
        table, _, meta = found[name]
        where = groups[meta.group]
        if meta.switch:
            where.add_argument(
                meta.flag, dest=name, action="store_const", const=True, default=None, help=meta.help
            )
            continue
        choices = meta.choices() if meta.choices is not None else None
        where.add_argument(
            meta.flag,
            dest=name,
            type=_ARGUMENT_TYPES[SECTIONS[table][name]],
            default=None,
            metavar="{" + ",".join(choices) + "}" if choices else None,
            help=f"{meta.help} (default: {shown_default(name)})",
        )
    return groups


def _add_train_parser(commands: Any) -> None:
    """The ``train`` subcommand: every setting of :class:`RunSettings` and the run options."""
    from fbsnn_brian.experiments.runs import SAMPLES_PER_S

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
    output = _add_settings(train, train_settings(), grouped=True)["output"]
    output.add_argument("--out", help="run directory (default: runs/<timestamp>)")
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out directory (an earlier run and its report/)",
    )
    output.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoint with its own config.json; only "
        "--epochs may be given too, to extend a run with the constant schedule (default: a new "
        "run)",
    )
    output.add_argument(
        "--checkpoint-every", type=int, default=1, help="chunks between checkpoints"
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument("--json", action="store_true", help="print the metrics as JSON")


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
    compare.add_argument(
        "--dataset", default=_DEFAULT.data.dataset, help="digits, idx:DIR or npz:FILE"
    )
    compare.add_argument(
        "--train-size", type=int, help="first N samples train (default: seeded split)"
    )
    compare.add_argument(
        "--test-size", type=int, help="last M samples test (default: seeded split)"
    )
    compare.add_argument("--layers", type=_layer_sizes, default=_DEFAULT.network.layers)
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
        "--seed",
        type=count("--seed", 0),
        default=_DEFAULT.network.seed,
        help="the first seed of --seeds",
    )
    compare.add_argument(
        "--lr",
        type=float,
        default=_DEFAULT.training.learning_rate,
        help="SPIDE's online learning rate",
    )
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
    compare.add_argument("--device", default=_DEFAULT.training.device, help=_devices("train"))
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
    evaluate.add_argument("--device", default=_DEFAULT.training.device, help=_devices("simulate"))
    evaluate.add_argument("--json", action="store_true", help="print JSON only")


def _add_run_parsers(commands: Any) -> None:
    """The ``train``, ``compare`` and ``evaluate`` subcommands, in this order."""
    _add_train_parser(commands)
    _add_compare_parser(commands)
    _add_evaluate_parser(commands)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole ``fbsnn`` command line."""
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
        default=_DEFAULT.training.device,
        help=_devices("build") + " (the training network of --chunk-size samples: compiled by "
        "the standalone devices, generated without GeNN for genn)",
    )
    build.add_argument("--out", required=True, help="project directory")
    build.add_argument("--inputs", type=int, default=784, help="number of inputs")
    build.add_argument("--layers", type=_layer_sizes, default=[256])
    build.add_argument("--classes", type=int, default=10, help="number of classes")
    build.add_argument("--neuron", default=_DEFAULT.network.neuron, help=_NEURONS)
    build.add_argument("--free", type=float, default=_DEFAULT.protocol.free_tau, help="in tau")
    build.add_argument(
        "--perturbed", type=float, default=_DEFAULT.protocol.perturbed_tau, help="in tau"
    )
    build.add_argument("--chunk-size", type=int, default=200)
    build.add_argument(
        "--compute-capability",
        default=None,
        help="cuda_standalone: the GPU's compute capability, e.g. 9.0 for an H100/H200 "
        "(default: $FBSNN_COMPUTE_CAPABILITY, else the GPU nvidia-smi reports)",
    )
    build.add_argument("--json", action="store_true", help="print JSON only")
    return parser
