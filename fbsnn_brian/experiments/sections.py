"""The four tables of a run's settings: each field's default and what it carries.

:class:`DataSettings`, :class:`NetworkSettings`, :class:`ProtocolSettings` and
:class:`TrainingSettings` are the ``[data]``, ``[network]``, ``[protocol]`` and ``[training]``
tables of a run file; :class:`fbsnn_brian.experiments.settings.RunSettings` holds one of each.
A field's default is the setting's default (written nowhere else), and its metadata is a
:class:`Setting`: the ``fbsnn train`` flag, its help text with units, its help group, the
choices shown in the help, and whether ``fbsnn check alignment`` takes it and the report of a
run lists it. Times are in units of tau (1 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fbsnn_brian.experiments.presets import PRESETS

__all__ = [
    "GROUPS",
    "DataSettings",
    "NetworkSettings",
    "ProtocolSettings",
    "Setting",
    "SettingValue",
    "TrainingSettings",
]

#: The value of one setting, as a run file, ``config.json`` and the command line give it.
SettingValue = str | int | float | bool | list[int] | None

#: Help groups of the ``fbsnn train`` flags, in the order the help lists them.
GROUPS = ("data", "network", "biophysics", "learning", "devices and scaling", "output")

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """What a setting's field carries besides its default (its ``metadata['setting']``).

    Parameters
    ----------
    flag : str
        The ``fbsnn train`` option that sets it (``--lr``).
    help : str
        Help text, with units; the choices are appended by the parser.
    group : str
        One of :data:`GROUPS`: where ``fbsnn train --help`` lists the flag.
    shown : str, optional
        How the help names a default that is not the value itself (``None`` or derived from
        other settings); default: the value.
    choices : callable, optional
        Returns the allowed values, shown in the help (the objects that use the value check
        it).
    switch : bool
        An on/off flag (``--cpu-only``) that takes no value.
    alignment : bool
        ``fbsnn check alignment`` takes it too.
    report : bool
        The report of a run lists it.
    """

    flag: str
    help: str
    group: str
    shown: str | None = None
    choices: Callable[[], tuple[str, ...]] | None = None
    switch: bool = False
    alignment: bool = True
    report: bool = True


def _setting(
    default: _T,
    *,
    flag: str,
    help: str,
    group: str,
    shown: str | None = None,
    choices: Callable[[], tuple[str, ...]] | None = None,
    switch: bool = False,
    alignment: bool = True,
    report: bool = True,
) -> _T:
    """A dataclass field with its default and its :class:`Setting` metadata."""
    if group not in GROUPS:
        raise ValueError(f"setting {flag}: group must be one of {GROUPS}, got {group!r}.")
    metadata = {
        "setting": Setting(
            flag=flag,
            help=help,
            group=group,
            shown=shown,
            choices=choices,
            switch=switch,
            alignment=alignment,
            report=report,
        )
    }
    if isinstance(default, list):
        items = list(default)
        made: _T = field(default_factory=lambda: list(items), metadata=metadata)  # type: ignore[assignment]
        return made
    made = field(default=default, metadata=metadata)
    return made


def _neurons() -> tuple[str, ...]:
    from fbsnn_brian.model.network import NEURON_MODELS

    return NEURON_MODELS


def _rate_estimates() -> tuple[str, ...]:
    from fbsnn_brian.model.network import RATE_ESTIMATES

    return RATE_ESTIMATES


def _synapses() -> tuple[str, ...]:
    from fbsnn_brian.model.biophysics import SYNAPSE_MODELS

    return SYNAPSE_MODELS


def _resets() -> tuple[str, ...]:
    from fbsnn_brian.model.biophysics import RESETS

    return RESETS


def _feedback_paths() -> tuple[str, ...]:
    from fbsnn_brian.model.plasticity import FEEDBACK_PATHS

    return FEEDBACK_PATHS


def _schedules() -> tuple[str, ...]:
    from fbsnn_brian.learning.trainer import SCHEDULES

    return SCHEDULES


def _rules() -> tuple[str, ...]:
    from fbsnn_brian.rules.learning_rules import RULES

    return tuple(RULES)


def _devices() -> tuple[str, ...]:
    from fbsnn_brian.build.devices.registry import device_names

    return tuple(device_names("train"))


def _presets() -> tuple[str, ...]:
    return tuple(PRESETS)


@dataclass(frozen=True, kw_only=True)
class DataSettings:
    """The ``[data]`` table: which data, how it is split, the preset and the classes."""

    dataset: str = _setting(
        "digits", flag="--dataset", help="data set: digits, idx:DIR or npz:FILE", group="data"
    )
    train_size: int | None = _setting(
        None,
        flag="--train-size",
        help="first N samples train",
        group="data",
        shown="seeded split",
    )
    test_size: int | None = _setting(
        None, flag="--test-size", help="last M samples test", group="data", shown="seeded split"
    )
    split_seed: int = _setting(
        0, flag="--split-seed", help="seed of the stratified split", group="data"
    )
    # a separate test set (npz:FILE or idx:DIR); then the whole dataset trains
    test_dataset: str | None = _setting(
        None,
        flag="--test-dataset",
        help="a separate test set (npz:FILE or idx:DIR); the whole --dataset then trains",
        group="data",
        shown="none",
    )
    # samples carved from the end of the training part to follow learning per epoch; the test
    # set is evaluated once, after training
    validation_size: int = _setting(
        0,
        flag="--validation-size",
        help="last V training samples followed per epoch instead of training (0: none)",
        group="data",
    )
    # None: the largest training label + 1 (with a warning for classes without samples)
    n_classes: int | None = _setting(
        None,
        flag="--classes",
        help="number of classes; labels must lie below it",
        group="data",
        shown="the largest training label + 1",
    )
    # settings per data set (fbsnn_brian.experiments.presets); None: chosen from the data set
    preset: str | None = _setting(
        None,
        flag="--preset",
        help="settings per data set (fbsnn_brian.experiments.presets), applied over the "
        "defaults and under the options given",
        group="data",
        shown="digits for digits, mnist for a 784-feature idx: set, else generic",
        choices=_presets,
    )


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """The ``[network]`` table: the architecture, its seed and the biophysics.

    Times are in units of tau; 0 switches ``noise_tau`` (white noise) and
    ``excitatory_fraction`` (Dale's law) off (:mod:`fbsnn_brian.model.biophysics`).
    """

    # _setting gives a list default a default_factory (a fresh list per object)
    layers: list[int] = _setting(  # noqa: RUF009
        [128], flag="--layers", help="hidden layer sizes, comma-separated", group="network"
    )
    neuron: str = _setting(
        "if", flag="--neuron", help="neuron model", group="network", choices=_neurons
    )
    seed: int = _setting(
        0, flag="--seed", help="seed of the network and of the shuffling", group="network"
    )
    max_feedback_gain: float = _setting(
        0.9,
        flag="--max-feedback-gain",
        help="cap on the loop gain, in (0, 1)",
        group="learning",
        alignment=False,
    )
    tau_m: float = _setting(
        20.0,
        flag="--tau-m",
        help="membrane time constant of lif and alif, in units of tau",
        group="biophysics",
    )
    # the adaptive LIF (neuron "alif"): adaptation time constant (in tau) and increment
    tau_a: float = _setting(
        10.0,
        flag="--tau-a",
        help="adaptation time constant of alif, in units of tau",
        group="biophysics",
    )
    b_a: float = _setting(
        0.05,
        flag="--b-a",
        help="adaptation increment of alif per spike, in drive per tau",
        group="biophysics",
    )
    refractory: float = _setting(
        1.0,
        flag="--refractory",
        help="refractory period, in units of tau (caps the rate at 1/it)",
        group="biophysics",
    )
    synapse: str = _setting(
        "instantaneous",
        flag="--synapse",
        help="synapse model",
        group="biophysics",
        choices=_synapses,
    )
    tau_syn: float = _setting(
        1.0, flag="--tau-syn", help="synaptic time constant, in units of tau", group="biophysics"
    )
    e_excitatory: float = _setting(
        4.0,
        flag="--e-excitatory",
        help="excitatory reversal potential (conductance synapses), in threshold units",
        group="biophysics",
    )
    e_inhibitory: float = _setting(
        -2.0,
        flag="--e-inhibitory",
        help="inhibitory reversal potential (conductance synapses), in threshold units",
        group="biophysics",
    )
    reset: str = _setting(
        "subtract",
        flag="--reset",
        help="reset: subtract (theta) or rest",
        group="biophysics",
        choices=_resets,
    )
    delay: float = _setting(
        0.0,
        flag="--delay",
        help="transmission delay between layers, in units of tau",
        group="biophysics",
    )
    delay_spread: float = _setting(
        0.0,
        flag="--delay-spread",
        help="half-width of the delays' uniform spread, in units of tau",
        group="biophysics",
    )
    noise_sigma: float = _setting(
        0.0,
        flag="--noise-sigma",
        help="membrane noise amplitude, in threshold units (0: off)",
        group="biophysics",
    )
    noise_tau: float = _setting(
        0.0,
        flag="--noise-tau",
        help="noise correlation time, in units of tau (0: white noise)",
        group="biophysics",
    )
    excitatory_fraction: float = _setting(
        0.0,
        flag="--excitatory-fraction",
        help="Dale's law: fraction of excitatory neurons per layer (0: off)",
        group="biophysics",
    )
    rate_estimate: str = _setting(
        "average",
        flag="--rate-estimate",
        help="rate read from spikes",
        group="network",
        choices=_rate_estimates,
    )
    # integration step in units of tau (at most 1/4; it must divide tau and the refractory
    # period)
    dt: float = _setting(
        0.25,
        flag="--dt",
        help="integration step, in units of tau (at most 0.25; it must divide tau and the "
        "refractory period)",
        group="network",
    )


@dataclass(frozen=True, kw_only=True)
class ProtocolSettings:
    """The ``[protocol]`` table: the lengths of the two phases, in units of tau."""

    free_tau: float = _setting(
        30.0, flag="--free", help="free phase, in units of tau", group="learning"
    )
    perturbed_tau: float = _setting(
        100.0, flag="--perturbed", help="perturbed phase, in units of tau", group="learning"
    )


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """The ``[training]`` table: the rule, its schedule, the device and the scaling.

    The settings the data set's preset sets (:mod:`fbsnn_brian.experiments.presets`) are
    under it: it overrides the training schedule and the layer sizes.
    """

    epochs: int = _setting(
        30, flag="--epochs", help="passes over the training set", group="learning", alignment=False
    )
    learning_rate: float = _setting(
        0.04, flag="--lr", help="learning rate", group="learning", alignment=False
    )
    scale: float = _setting(4.0, flag="--scale", help="error scale s", group="learning")
    weight_decay: float = _setting(
        0.001, flag="--weight-decay", help="L2 weight decay", group="learning", alignment=False
    )
    momentum: float = _setting(
        0.0, flag="--momentum", help="SGD momentum", group="learning", alignment=False
    )
    batch_size: int = _setting(
        1,
        flag="--batch-size",
        help="samples per applied update",
        group="learning",
        alignment=False,
    )
    schedule: str = _setting(
        "cosine",
        flag="--schedule",
        help="learning-rate schedule",
        group="learning",
        choices=_schedules,
        alignment=False,
    )
    device: str = _setting(
        "cpp_standalone",
        flag="--device",
        help="device of the simulations (the registry of fbsnn_brian.build.devices.registry; "
        "genn: SPIDE only)",
        group="devices and scaling",
        choices=_devices,
    )
    # device 'genn': GeNN's CPU backend instead of CUDA
    cpu_only: bool = _setting(
        False,
        flag="--cpu-only",
        help="with --device genn: run GeNN's CPU backend instead of CUDA",
        group="devices and scaling",
        switch=True,
        alignment=False,
    )
    # samples per Brian2 run; None: 200 for SPIDE, 16 for a recorded rule (its mini-batch)
    chunk_size: int | None = _setting(
        None,
        flag="--chunk-size",
        help="samples per Brian2 run (a recorded rule's mini-batch)",
        group="devices and scaling",
        shown="200 for spide, 16 for the other rules",
        alignment=False,
    )
    rule: str = _setting(
        "spide",
        flag="--rule",
        help="learning rule (fbsnn_brian.rules.learning_rules)",
        group="learning",
        choices=_rules,
        alignment=False,
    )
    input_dropout: float = _setting(
        0.0,
        flag="--input-dropout",
        help="probability of silencing an input component",
        group="learning",
        alignment=False,
    )
    shift: int = _setting(
        1,
        flag="--shift",
        help="shift training images by up to this many pixels (0: never)",
        group="learning",
        alignment=False,
    )
    feedback: str = _setting(
        "transpose",
        flag="--feedback",
        help="backward weights: transpose or random (no weight transport)",
        group="learning",
        choices=_feedback_paths,
    )
    no_feedback: bool = _setting(
        False,
        flag="--no-feedback",
        help="remove the feedback loop: W_fb = 0 and never learned (SPIDE inside the "
        "simulation and the recorded rules; not on genn)",
        group="learning",
        switch=True,
        alignment=False,
    )
    # one run on several Dask worker processes (fbsnn_brian.learning.distributed): K workers
    # merging their weights every sync_every samples each (None: the chunk size), on the
    # scheduler at this address (None: a LocalCluster of K processes)
    workers: int = _setting(
        1,
        flag="--workers",
        help="Dask worker processes training this one network, each on its shard, merging "
        "their weights every --sync-every samples (fbsnn_brian.learning.distributed)",
        group="devices and scaling",
        alignment=False,
    )
    scheduler: str | None = _setting(
        None,
        flag="--scheduler",
        help="address of a dask scheduler for --workers",
        group="devices and scaling",
        shown="a LocalCluster of --workers processes",
        alignment=False,
    )
    sync_every: int | None = _setting(
        None,
        flag="--sync-every",
        help="samples each worker trains between two merges",
        group="devices and scaling",
        shown="the chunk size",
        alignment=False,
    )
    # finite-difference directions of the trained state's ground truth (0: ideal IDE only)
    alignment_directions: int = _setting(
        0,
        flag="--alignment-directions",
        help="finite-difference directions of the trained state's ground truth in "
        "metrics.json (0: the ideal IDE's cosine only; see fbsnn check alignment)",
        group="output",
        alignment=False,
    )
