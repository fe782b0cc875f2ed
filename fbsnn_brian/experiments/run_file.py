"""Training configurations in TOML files (``fbsnn train --config FILE``).

A file sets any of the settings of :data:`fbsnn_brian.experiments.runs.DEFAULTS`, grouped in four
tables::

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
type, or a file that is not valid TOML. Values are checked for type here; ranges are checked
by the objects that use them.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import describe

__all__ = ["SECTIONS", "load_run_file", "read_toml", "settings_from_tables"]

# table -> key -> expected type: "int", "float", "str", "int_list", "optional_int"
SECTIONS: dict[str, dict[str, str]] = {
    "data": {
        "dataset": "str",
        "train_size": "optional_int",
        "test_size": "optional_int",
        "split_seed": "int",
        "test_dataset": "str",
        "validation_size": "int",
        "n_classes": "optional_int",
        "preset": "str",
    },
    "network": {
        "layers": "int_list",
        "neuron": "str",
        "seed": "int",
        "max_feedback_gain": "float",
        "tau_m": "float",
        "tau_a": "float",
        "b_a": "float",
        "refractory": "float",
        "synapse": "str",
        "tau_syn": "float",
        "e_excitatory": "float",
        "e_inhibitory": "float",
        "reset": "str",
        "delay": "float",
        "delay_spread": "float",
        "noise_sigma": "float",
        "noise_tau": "float",
        "excitatory_fraction": "float",
        "rate_estimate": "str",
        "dt": "float",
    },
    "protocol": {"free_tau": "float", "perturbed_tau": "float"},
    "training": {
        "epochs": "int",
        "learning_rate": "float",
        "scale": "float",
        "weight_decay": "float",
        "momentum": "float",
        "batch_size": "int",
        "schedule": "str",
        "device": "str",
        "cpu_only": "bool",
        "chunk_size": "int",
        "rule": "str",
        "input_dropout": "float",
        "shift": "int",
        "feedback": "str",
        "no_feedback": "bool",
        "workers": "int",
        "scheduler": "str",
        "sync_every": "optional_int",
        "alignment_directions": "int",
    },
}

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "int_list": "a list of integers",
    "optional_int": "an integer",
}


def _suggest(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_type(where: str, value: Any, kind: str) -> Any:
    if kind in ("int", "optional_int"):
        ok = _is_int(value)
    elif kind == "float":
        ok = _is_int(value) or isinstance(value, float)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)
    if not ok:
        raise ValidationError(f"{where} must be {_TYPE_NAMES[kind]}, got {describe(value)}.")
    return float(value) if kind == "float" else value


def load_run_file(path: str | os.PathLike[str]) -> dict[str, Any]:
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


def read_toml(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Parse a TOML file; a missing or invalid one raises ValidationError naming ``kind``."""
    source = Path(path)
    if not source.is_file():
        raise ValidationError(f"{kind}: no file at {str(path)!r}.")
    try:
        return tomllib.loads(source.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValidationError(f"{kind} {str(path)!r} is not valid TOML: {error}.") from None


def settings_from_tables(document: dict[str, Any], where: str) -> dict[str, Any]:
    """Check the tables of a parsed run file; return the flat settings they set.

    ``where`` starts every message (e.g. ``"run file 'x.toml'"``).
    """
    settings: dict[str, Any] = {}
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
            settings[key] = _check_type(location, value, allowed[key])
    return settings
