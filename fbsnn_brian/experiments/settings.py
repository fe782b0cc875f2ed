"""The settings of a training run: one typed object, the only place a default is written.

A run's 49 settings are the fields of four frozen dataclasses, one per table of a run file
(:mod:`fbsnn_brian.experiments.run_file`): :class:`DataSettings` (``[data]``),
:class:`NetworkSettings` (``[network]``: the architecture and the biophysics),
:class:`ProtocolSettings` (``[protocol]``: the phases) and :class:`TrainingSettings`
(``[training]``). :class:`RunSettings` holds one of each. The field's name is the setting's one
name from the command line to the disk: the ``dest`` of its ``fbsnn train`` flag, its key in a
run file, in ``config.json`` and in ``metrics.json``, and (where the model has the same
parameter) the keyword of the object it configures; only the flag a user types may be spelled
otherwise (``--lr`` sets ``learning_rate``). Times are in units of ``tau`` (1 ms).

Each field's metadata (a :class:`Setting`) carries what the rest of the toolkit derives from it:

* the ``fbsnn train`` flag, its help text and the choices shown in the help
  (:mod:`fbsnn_brian.cli.parsers`), and the help group it is listed in;
* the run-file table (the dataclass) and key (the field name), and the type a value must have
  (the field's annotation), with the messages of :func:`check_value`;
* whether ``fbsnn check alignment`` takes it (:data:`ALIGNMENT_SETTINGS`);
* whether the report of a run lists it (:func:`reported_settings`).

The presets of :mod:`fbsnn_brian.experiments.presets` are checked against the fields when this
module is imported (:func:`preset_values`).

Examples
--------
>>> RunSettings().training.learning_rate
0.04
>>> RunSettings.from_values({"layers": [64, 32]}).network.layers
[64, 32]
>>> SECTIONS["protocol"]
{'free_tau': 'float', 'perturbed_tau': 'float'}
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, TypeVar

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.presets import PRESETS
from fbsnn_brian.experiments.sections import (
    GROUPS,
    DataSettings,
    NetworkSettings,
    ProtocolSettings,
    Setting,
    SettingValue,
    TrainingSettings,
)
from fbsnn_brian.validation import describe

__all__ = [
    "ALIGNMENT_SETTINGS",
    "GROUPS",
    "SECTIONS",
    "DataSettings",
    "NetworkSettings",
    "ProtocolSettings",
    "RunSettings",
    "Setting",
    "SettingValue",
    "TrainingSettings",
    "check_names",
    "check_value",
    "default_values",
    "preset_values",
    "reported_settings",
    "setting_fields",
    "shown_default",
]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: One of the four section dataclasses.
_Section = TypeVar("_Section", DataSettings, NetworkSettings, ProtocolSettings, TrainingSettings)
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Every setting of a run: one section object per run-file table.

    Parameters
    ----------
    data, network, protocol, training
        The sections (default: every default).

    Examples
    --------
    >>> settings = RunSettings.from_values({"learning_rate": 0.1, "neuron": "lif"})
    >>> settings.training.learning_rate, settings.network.neuron, settings.training.epochs
    (0.1, 'lif', 30)
    >>> settings.values()["learning_rate"]
    0.1
    """

    data: DataSettings = field(default_factory=DataSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)

    @classmethod
    def from_values(
        cls, values: Mapping[str, object], *, owner: str = "RunSettings"
    ) -> RunSettings:
        """The defaults, with the flat ``values`` (setting name -> value) over them.

        Values are taken as given; their types are checked where they are read
        (:func:`check_value`) and their ranges by the objects that use them.

        Raises
        ------
        ValidationError
            If a key is not a setting; the message starts with ``owner``.
        """
        check_names(values, owner=owner)

        def section(kind: type[_Section]) -> _Section:
            names = {entry.name for entry in fields(kind)}
            return _construct(kind, {k: v for k, v in values.items() if k in names})

        return cls(
            data=section(DataSettings),
            network=section(NetworkSettings),
            protocol=section(ProtocolSettings),
            training=section(TrainingSettings),
        )

    @classmethod
    def from_saved(cls, values: Mapping[str, object]) -> RunSettings:
        """The settings of a run's ``config.json``; keys that are no setting are left out."""
        return cls.from_values({k: v for k, v in values.items() if k in _FIELDS})

    def values(self) -> dict[str, SettingValue]:
        """Setting name -> value, table by table: what ``config.json`` holds."""
        flat: dict[str, SettingValue] = {}
        for part in (self.data, self.network, self.protocol, self.training):
            for entry in fields(part):
                value: SettingValue = getattr(part, entry.name)
                flat[entry.name] = list(value) if isinstance(value, list) else value
        return flat

    def replace(self, **values: SettingValue) -> RunSettings:
        """A copy with the flat ``values`` (setting name -> value) changed."""
        return RunSettings.from_values({**self.values(), **values}, owner="RunSettings.replace")


def check_names(values: Iterable[str], *, owner: str) -> None:
    """Refuse names that are not settings.

    Raises
    ------
    ValidationError
        ``"{owner}: unknown configuration keys [...]; allowed: [...]."``
    """
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ValidationError(
            f"{owner}: unknown configuration keys {unknown}; allowed: {sorted(_FIELDS)}."
        )


def _construct(kind: type[_T], values: Mapping[str, object]) -> _T:
    """``kind(**values)``: a section from values whose types are checked where they are read."""
    return kind(**values)


_SECTION_CLASSES: dict[str, type[DataclassInstance]] = {
    "data": DataSettings,
    "network": NetworkSettings,
    "protocol": ProtocolSettings,
    "training": TrainingSettings,
}


def setting_fields() -> dict[str, tuple[str, dataclasses.Field[object], Setting]]:
    """Setting name -> (its run-file table, its dataclass field, its :class:`Setting`)."""
    found: dict[str, tuple[str, dataclasses.Field[object], Setting]] = {}
    for table, kind in _SECTION_CLASSES.items():
        for entry in fields(kind):
            found[entry.name] = (table, entry, entry.metadata["setting"])
    return found


_FIELDS = setting_fields()

# the run-file type of each annotation (the messages of check_value name them)
_KINDS: dict[object, str] = {
    int: "int",
    int | None: "int",
    float: "float",
    str: "str",
    str | None: "str",
    bool: "bool",
    list[int]: "int_list",
}


def _kinds() -> dict[str, str]:
    hints: dict[str, object] = {}
    for kind in _SECTION_CLASSES.values():
        hints.update(typing.get_type_hints(kind))
    return {name: _KINDS[hints[name]] for name in _FIELDS}


#: Run-file table -> key -> type of its value (``int``, ``float``, ``str``, ``bool``,
#: ``int_list``), derived from the fields.
SECTIONS: dict[str, dict[str, str]] = {
    table: {entry.name: _kinds()[entry.name] for entry in fields(kind)}
    for table, kind in _SECTION_CLASSES.items()
}

#: The settings of ``fbsnn train`` that ``fbsnn check alignment`` takes: data, network,
#: biophysics, phases, the rule's error scale and backward weights, and the device.
ALIGNMENT_SETTINGS: tuple[str, ...] = tuple(
    name for name, (_, _, meta) in _FIELDS.items() if meta.alignment
)

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "int_list": "a list of integers",
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_value(where: str, name: str, value: object) -> SettingValue:
    """Check the type of setting ``name``'s value; return it (an integer as a float).

    Parameters
    ----------
    where : str
        Starts the message: the key path (``"run file 'x.toml': [training].epochs"``).
    name : str
        The setting.
    value : object
        Its value, as read.

    Raises
    ------
    ValidationError
        ``"{where} must be an integer, got '3'."`` and the like.

    Examples
    --------
    >>> check_value("[protocol].free_tau", "free_tau", 20)
    20.0
    """
    kind = SECTIONS[_FIELDS[name][0]][name]
    if kind == "int":
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
    if kind == "float":
        return float(typing.cast(float, value))
    return typing.cast(SettingValue, value)


def default_values() -> dict[str, SettingValue]:
    """Setting name -> default, table by table (a fresh dict)."""
    return RunSettings().values()


def preset_values(name: object) -> dict[str, SettingValue]:
    """The settings of preset ``name``, each checked to be a setting of the right type.

    Raises
    ------
    ValidationError
        If the preset is unknown (``--preset must be one of ...``), or sets a key that is not
        a setting or a value of the wrong type (named ``preset 'digits': layers``).
    """
    from fbsnn_brian.experiments.presets import preset_settings

    values = preset_settings(name)
    checked: dict[str, SettingValue] = {}
    for key, value in values.items():
        if key not in _FIELDS:
            raise ValidationError(
                f"preset {name!r}: {key!r} is not a setting; allowed: {', '.join(_FIELDS)}."
            )
        checked[key] = check_value(f"preset {name!r}: {key}", key, value)
    return checked


def shown_default(name: str) -> str:
    """How the help of a flag names the default of setting ``name``.

    A setting the presets set shows each preset's value (and the default where a preset
    leaves it); one whose default is None or derived shows its :attr:`Setting.shown`.

    Examples
    --------
    >>> shown_default("learning_rate")
    "the preset's, digits 0.08, mnist 0.02, generic 0.01"
    >>> shown_default("tau_m")
    '20.0'
    """
    _, entry, meta = _FIELDS[name]
    default = entry.default_factory() if callable(entry.default_factory) else entry.default

    def text(value: object) -> str:
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    given = {preset: values[name] for preset, values in PRESETS.items() if name in values}
    if given:
        return (
            "the preset's, "
            + ", ".join(f"{preset} {text(value)}" for preset, value in given.items())
            + ("" if len(given) == len(PRESETS) else f", else {text(default)}")
        )
    return meta.shown if meta.shown is not None else text(default)


def reported_settings() -> tuple[str, ...]:
    """The settings the report of a run lists, table by table."""
    return tuple(name for name, (_, _, meta) in _FIELDS.items() if meta.report)


def _check_presets() -> None:
    """Every preset sets settings only, each with a value of its type (at import)."""
    for name in PRESETS:
        preset_values(name)


_check_presets()
