"""Training configurations in TOML files (``fbsnn train --config FILE``).

A file sets any of the settings of :class:`fbsnn_brian.experiments.settings.RunSettings`, one
table per section (:data:`SECTIONS` is derived from its fields; each key's default, units and
allowed values are its field's, which ``fbsnn train --help`` lists). An example file::

    [data]
    dataset = "digits"          # or "idx:DIR", "npz:FILE"
    train_size = 8000           # optional: first N samples train
    test_size = 2000            # optional: last M samples test
    split_seed = 0
    test_dataset = "npz:FILE"   # optional: a separate test set; the whole dataset then trains
    validation_size = 0         # last V training samples followed per epoch instead of training
    n_classes = 10              # optional: default the largest training label + 1
    preset = "digits"           # optional: "digits", "mnist" or "generic"
    (fbsnn_brian.experiments.presets)

    [network]
    layers = [128]
    neuron = "if"
    seed = 0
    max_feedback_gain = 0.9
    # biophysics (fbsnn_brian.model.biophysics), times in units of tau:
    # tau_m, tau_a and b_a (neuron "alif"), refractory,
    # synapse ("instantaneous" | "exponential" | "conductance"), tau_syn,
    # e_excitatory, e_inhibitory, reset ("subtract" | "rest"), delay, delay_spread,
    # noise_sigma, noise_tau (0: white noise), excitatory_fraction (0: no Dale's law),
    # rate_estimate ("average" | "exponential"), dt (integration step, at most 0.25)

    [protocol]
    free_tau = 30.0             # phase lengths in units of tau
    perturbed_tau = 100.0

    [training]
    epochs = 30
    learning_rate = 0.04
    schedule = "cosine"
    workers = 1                 # Dask worker processes training this one network
    ...

Every problem is reported with its key path (``[training].epochs``), the value found and
what is allowed: an unknown table or key (with the closest known name), a value of the wrong
type (:func:`fbsnn_brian.experiments.settings.check_value`, from the field's annotation), or a
file that is not valid TOML. Values are checked for type here; ranges are checked by the
objects that use them.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.settings import SECTIONS, SettingValue, check_value
from fbsnn_brian.validation import describe

__all__ = ["SECTIONS", "load_run_file", "read_toml", "settings_from_tables"]


def _suggest(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def load_run_file(path: str | os.PathLike[str]) -> dict[str, SettingValue]:
    """Read a TOML training configuration; return the flat settings it sets.

    Parameters
    ----------
    path : path
        The TOML file.

    Returns
    -------
    dict
        Setting name -> value, for the keys the file sets (see :data:`SECTIONS`).

    Raises
    ------
    ValidationError
        If the file is missing or not TOML, or a table, key or value is not allowed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
    >>> _ = file.write_text('[training]\\nepochs = 3\\n[network]\\nlayers = [64, 32]\\n')
    >>> sorted(load_run_file(file).items())
    [('epochs', 3), ('layers', [64, 32])]
    """
    document = read_toml(path, "run file")
    return settings_from_tables(document, f"run file {str(path)!r}")


def read_toml(path: str | os.PathLike[str], kind: str) -> dict[str, object]:
    """Parse a TOML file; a missing or invalid one raises ValidationError naming ``kind``."""
    source = Path(path)
    if not source.is_file():
        raise ValidationError(f"{kind}: no file at {str(path)!r}.")
    try:
        document: dict[str, object] = tomllib.loads(source.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValidationError(f"{kind} {str(path)!r} is not valid TOML: {error}.") from None
    return document


def settings_from_tables(document: Mapping[str, object], where: str) -> dict[str, SettingValue]:
    """Check the tables of a parsed run file; return the flat settings they set.

    ``where`` starts every message (e.g. ``"run file 'x.toml'"``).
    """
    settings: dict[str, SettingValue] = {}
    for table, entries in document.items():
        if table not in SECTIONS:
            raise ValidationError(
                f"{where}: unknown table [{table}]; allowed: "
                f"{', '.join(f'[{name}]' for name in SECTIONS)}.{_suggest(table, list(SECTIONS))}"
            )
        if not isinstance(entries, dict):
            raise ValidationError(
                f"{where}: [{table}] must be a table of settings, got {describe(entries)}."
            )
        allowed = SECTIONS[table]
        for key, value in entries.items():
            location = f"{where}: [{table}].{key}"
            if key not in allowed:
                raise ValidationError(
                    f"{location} is not a known setting; allowed in [{table}]: "
                    f"{', '.join(allowed)}.{_suggest(key, list(allowed))}"
                )
            settings[key] = check_value(location, key, value)
    return settings
