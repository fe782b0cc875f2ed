"""Simulation devices: the one registry of devices, and the checks Brian2 does not do itself.

:data:`REGISTRY` names every device and what it serves (:class:`Device`): ``runtime`` runs the
simulation from Python (code target chosen by Brian2, cython when it works), ``numpy`` and
``cython`` force the runtime code target, ``cpp_standalone`` compiles the whole simulation into
one binary that later runs with new inputs and weights through ``run_args`` without
recompiling, ``cuda_standalone`` (brian2cuda) compiles the same simulation for a GPU and
reruns it the same way (:mod:`fbsnn_brian.build.devices.cuda`), and ``genn`` (brian2genn)
restates it for GeNN. Every layer asks the registry
(:func:`get_device_spec`, :func:`device_names`) instead of keeping its own list, and asks an
entry what differs between devices instead of comparing its name or kind: the device that
computes a finite-difference ground truth for it (:attr:`Device.ground_truth`), the rules and
plasticity options it trains (:meth:`Device.check_training`), and what it needs installed
(:attr:`Device.needs`, named by the errors of a missing install). What it builds (its
training engine, its evaluator, its ``fbsnn build`` project) is
:func:`fbsnn_brian.build.devices.engines.engines_of` of the entry: those engines are built from
the simulations of ``build/``, which ask this registry in turn, so they live in a module above
it.

Compiling, caching and running standalone builds is
:mod:`fbsnn_brian.build.devices.standalone`; a build that compiles says so first in one line on
stderr (:func:`compile_notice`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import brian2
import numpy as np
from brian2 import Network, NetworkOperation, prefs
from brian2.devices.device import set_device

from fbsnn_brian.errors import DeviceError, ValidationError
from fbsnn_brian.validation import check_choice

__all__ = [
    "DEVICES",
    "GROUND_TRUTH_DEVICES",
    "REGISTRY",
    "RUNTIME_DEVICES",
    "Device",
    "check_device",
    "check_no_network_operation",
    "check_run_args",
    "compile_notice",
    "device_names",
    "get_device_spec",
    "per_sample_input_path",
    "runtime_target",
]

logger = logging.getLogger(__name__)

Purpose = Literal["simulate", "train", "build"]


@dataclass(frozen=True)
class Device:
    """What the toolkit can do on one device, and how.

    Attributes
    ----------
    name : str
        The name users give (``device=`` and ``--device``).
    kind : {'runtime', 'standalone', 'genn'}
        ``runtime``: Brian2 runs the objects from Python; ``standalone``: Brian2 generates a
        project that is compiled once and rerun with new inputs and weights through
        ``run_args``; ``genn``: brian2genn generates a GeNN project, compiled once and rerun
        through its static-array files.
    code_target : str or None
        Brian2's ``prefs.codegen.target`` of a runtime device.
    simulate, train, build : bool
        Whether :func:`fbsnn_brian.simulate` (free phase), the Trainer, and ``fbsnn build``
        (generate and compile without running) accept the device.
    gpu : bool
        Compiled for a GPU by brian2cuda: the build is made for one compute capability, which
        keys its build cache and its record of what the binary was compiled from
        (:mod:`fbsnn_brian.build.devices.cuda`).
    needs : str
        What must be installed, for messages.
    ground_truth : str
        The device that computes the finite-difference ground truth
        (:func:`fbsnn_brian.experiments.alignment.ground_truth`) of work done on this device,
        one of :data:`GROUND_TRUTH_DEVICES`: ``'runtime'`` for the runtime devices (nothing to
        compile), ``'cpp_standalone'`` for the compiled ones (the finite differences rerun one
        binary per direction, and a C++ compiler is there wherever a compiled device runs).
    rules : tuple of str or None
        Names of the learning rules (:mod:`fbsnn_brian.rules.learning_rules`) the Trainer trains
        on this device; None: every rule.
    frozen_feedback : bool
        Whether training can keep the feedback weights fixed
        (``SPIDEPlasticity(learn_feedback=False)``, the ``no_feedback`` run setting); False: the
        device learns every weight.
    """

    name: str
    kind: Literal["runtime", "standalone", "genn"]
    code_target: str | None = None
    simulate: bool = True
    train: bool = True
    build: bool = False
    gpu: bool = False
    needs: str = "Brian2"
    ground_truth: str = "runtime"
    rules: tuple[str, ...] | None = None
    frozen_feedback: bool = True

    @property
    def standalone(self) -> bool:
        """Compiled by a Brian2 standalone device (run_args reruns of one binary)."""
        return self.kind == "standalone"

    @property
    def runs_ground_truth(self) -> bool:
        """Whether the finite-difference ground truth runs on this device itself."""
        return self.ground_truth == self.name

    def check_training(self, owner: str, *, rule: str, learn_feedback: bool) -> None:
        """Refuse by name a rule or a plasticity option the device does not train.

        Parameters
        ----------
        owner : str
            Names the caller in the message (e.g. ``'Trainer'``).
        rule : str
            The learning rule's name (e.g. ``'spide'``).
        learn_feedback : bool
            ``SPIDEPlasticity.learn_feedback``: False needs a device with
            :attr:`frozen_feedback`.

        Raises
        ------
        ValidationError
            Naming the device, the refused setting and the devices that train it.
        """
        if not learn_feedback and not self.frozen_feedback:
            others = _listing([d.name for d in REGISTRY.values() if d.train and d.frozen_feedback])
            raise ValidationError(
                f"{owner}: device {self.name!r} learns every weight; SPIDEPlasticity("
                f"learn_feedback=False) (the no_feedback setting) runs on {others}."
            )
        if self.rules is not None and rule not in self.rules:
            names = _listing([name.upper() for name in self.rules])
            others = _listing([d.name for d in REGISTRY.values() if d.train and d.rules is None])
            raise ValidationError(
                f"{owner}: device {self.name!r} trains with {names} only, got rule {rule!r}; "
                f"train the other rules on {others}."
            )


def _listing(names: Sequence[str]) -> str:
    """``'a, b or c'``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


#: Every device, by name: the one list every layer asks.
REGISTRY: dict[str, Device] = {
    device.name: device
    for device in (
        Device("runtime", "runtime", code_target="auto"),
        Device("numpy", "runtime", code_target="numpy"),
        Device("cython", "runtime", code_target="cython", needs="Cython and a C compiler"),
        Device(
            "cpp_standalone",
            "standalone",
            build=True,
            needs="a C++ compiler (g++)",
            ground_truth="cpp_standalone",
        ),
        Device(
            "cuda_standalone",
            "standalone",
            build=True,
            gpu=True,
            needs="brian2cuda (the cuda extra, Python >= 3.12) and nvcc",
            ground_truth="cpp_standalone",
        ),
        Device(
            "genn",
            "genn",
            simulate=False,
            build=True,
            needs="brian2genn 1.7 (the genn extra) and GeNN 4.x (GENN_PATH)",
            ground_truth="cpp_standalone",
            rules=("spide",),
            frozen_feedback=False,
        ),
    )
}

#: The devices that compute finite-difference ground truths (:attr:`Device.ground_truth`).
GROUND_TRUTH_DEVICES = tuple(dict.fromkeys(device.ground_truth for device in REGISTRY.values()))


def device_names(purpose: Purpose) -> tuple[str, ...]:
    """Names of the devices that serve ``purpose``, in registry order."""
    return tuple(name for name, device in REGISTRY.items() if getattr(device, purpose))


def get_device_spec(
    owner: str, name: Any, purpose: Purpose = "simulate", *, parameter: str = "device"
) -> Device:
    """The registry entry of ``name``, refused by name where it cannot serve ``purpose``.

    ``parameter`` names the option in the message (e.g. ``'--device'``).
    """
    return REGISTRY[check_choice(owner, parameter, name, device_names(purpose))]


RUNTIME_DEVICES = tuple(name for name, device in REGISTRY.items() if device.kind == "runtime")
#: Devices of :func:`fbsnn_brian.simulate`.
DEVICES = device_names("simulate")


def check_device(owner: str, device: Any) -> str:
    """Validate a device name of :func:`fbsnn_brian.simulate` (one of :data:`DEVICES`)."""
    return get_device_spec(owner, device).name


@contextlib.contextmanager
def runtime_target(device: str) -> Iterator[None]:
    """Run the enclosed Brian2 code in runtime mode with the code target of ``device``."""
    previous = prefs.codegen.target
    prefs.codegen.target = REGISTRY[device].code_target
    set_device("runtime")
    try:
        yield
    finally:
        prefs.codegen.target = previous


def check_no_network_operation(network: Network) -> None:
    """Refuse a network holding a NetworkOperation (cpp_standalone silently drops them)."""
    operations = [obj.name for obj in network.objects if isinstance(obj, NetworkOperation)]
    if operations:
        raise DeviceError(
            "cpp_standalone would silently drop the network_operation(s) "
            f"{', '.join(operations)}; express them as run_regularly string code instead."
        )


def check_run_args(entries: Sequence[tuple[str, Any, tuple[int, ...]]]) -> None:
    """Check the shape, dtype and finiteness of every run_args array before the binary runs.

    A standalone binary silently ignores a value file of the wrong length, so a mismatch here
    would otherwise run on stale inputs or weights without a word.

    Parameters
    ----------
    entries : sequence of (label, value, expected shape)
        ``label`` names the variable in messages (e.g. ``'feedback.w'``).
    """
    for label, value, shape in entries:
        array = np.asarray(value)
        if array.shape != shape:
            raise ValidationError(f"run_args: {label} must have shape {shape}, got {array.shape}.")
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
            raise ValidationError(
                f"run_args: {label} must be a finite floating-point array, got dtype {array.dtype}."
            )


def brian2_version() -> str:
    """The installed Brian2 version (for provenance)."""
    return str(brian2.__version__)


def compile_notice(message: str) -> None:
    """Say in one line on stderr that a compilation of some length starts now.

    Parameters
    ----------
    message : str
        What is compiled, for which device, about how long it takes and where, e.g.
        ``'compiling the training simulation for cpp_standalone (about 20-60 s, ...)'``.
    """
    print(f"fbsnn: {message}...", file=sys.stderr, flush=True)


# Brian2 logs a warning under this name before every run in which a synaptic pathway's
# source, synapses and target do not share one dt
_DT_MISMATCH_LOGGER = "brian2.synapses.synapses.synapses_dt_mismatch"
_PER_SAMPLE_PATHWAY = "pathway 'input_synapses_pre' will run on the clock of the group 'stimulus'"


class _PerSamplePathFilter(logging.Filter):
    """Drop Brian2's dt warning about the per-sample input path, explained once instead."""

    explained = False

    def filter(self, record: logging.LogRecord) -> bool:
        if _PER_SAMPLE_PATHWAY not in record.getMessage():
            return True
        if not _PerSamplePathFilter.explained:
            _PerSamplePathFilter.explained = True
            logger.info(
                "the input synapses run once per sample, on the clock of the group 'stimulus' "
                "(one sample long), and add their input to layer 1 at a step that both clocks "
                "share, without delays: Brian2's warning that their dt differs from layer "
                "1's is expected and not shown"
            )
        return False


@contextlib.contextmanager
def per_sample_input_path() -> Iterator[None]:
    """Run the enclosed Brian2 code without the dt warning about the per-sample input path.

    Brian2 warns before every run in which the synapses ``input_synapses`` from the group
    ``stimulus`` tick on another dt than their target; a build whose input path runs once per
    sample does that on purpose. Only that warning is dropped (explained once at info level).
    """
    brian_logger = logging.getLogger(_DT_MISMATCH_LOGGER)
    quiet = _PerSamplePathFilter()
    brian_logger.addFilter(quiet)
    try:
        yield
    finally:
        brian_logger.removeFilter(quiet)
