"""The commands that take a run's settings: ``fbsnn train`` and ``fbsnn check alignment``.

Their settings come from a ``--config`` run file (:mod:`fbsnn_brian.experiments.run_file`),
with the options given on the command line over it; an option that is not given is None and
leaves the setting to the file, the data set's preset or the default
(:class:`fbsnn_brian.experiments.settings.RunSettings`). The path from the parsed command line
to the run directory is typed: settings are :data:`~fbsnn_brian.experiments.settings.
SettingValue`, the run's metrics :data:`~fbsnn_brian.experiments.runs.Metrics`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.runs import Metrics
from fbsnn_brian.experiments.settings import ALIGNMENT_SETTINGS, SettingValue, setting_fields

__all__ = ["run_config", "run_train", "run_check_alignment"]


def run_config(args: argparse.Namespace, names: Iterable[str]) -> dict[str, SettingValue]:
    """The run file of ``--config`` (if any) with every option among ``names`` the user gave."""
    from fbsnn_brian.experiments.run_file import load_run_file

    config = load_run_file(args.config) if args.config else {}
    for name in names:
        value: SettingValue = getattr(args, name)
        if value is not None:
            config[name] = value
    return config


def run_train(args: argparse.Namespace) -> Metrics:
    """``fbsnn train``: a new run, or ``--resume`` of one (only ``--epochs`` may be given)."""
    from fbsnn_brian.experiments.runs import train_run

    if args.resume is not None and (args.config or args.out or args.overwrite):
        raise ValidationError(
            "fbsnn train --resume RUN_DIR continues that run with its own configuration; "
            "--config, --out and --overwrite cannot be combined with it."
        )
    found = setting_fields()
    changed = [
        meta.flag
        for name, (_, _, meta) in found.items()
        if name != "epochs" and getattr(args, name) is not None
    ]
    if args.resume is not None and changed:
        raise ValidationError(
            f"fbsnn train --resume: the run continues with its own configuration; "
            f"{', '.join(changed)} cannot change it (only --epochs can extend a run with "
            "the constant schedule). Start a new run to change settings."
        )
    resume: str | None = args.resume
    out: str | None = args.out
    return train_run(
        run_config(args, found),
        resume or out,
        progress=not args.no_progress,
        resume=resume is not None,
        checkpoint_every=args.checkpoint_every,
        overwrite=args.overwrite,
    )


def run_check_alignment(args: argparse.Namespace) -> dict[str, object]:
    """``fbsnn check alignment``: with the options' settings, or a trained run (``--run``)."""
    from fbsnn_brian.experiments.alignment_check import check_alignment

    given = [name for name in ALIGNMENT_SETTINGS if getattr(args, name) is not None]
    if args.run is not None and (args.config or given):
        raise ValidationError(
            "fbsnn check alignment --run RUN_DIR measures that run with its own settings; "
            "--config and the network options cannot be combined with it."
        )
    return check_alignment(
        run_config(args, ALIGNMENT_SETTINGS),
        run_dir=args.run,
        n_samples=args.samples,
        n_directions=args.directions,
        duration_tau=args.duration,
        relative_step=args.step,
        transfer_duration_tau=args.transfer_duration,
        fluctuations=not args.no_input_fluctuations,
    )
