"""Simulation devices: selection, isolation and the checks Brian2 does not do itself.

``runtime`` runs the simulation from Python (code target chosen by Brian2, cython when it
works), ``numpy`` and ``cython`` force the runtime code target, ``cpp_standalone`` compiles the
whole simulation into one binary that later runs with new inputs and weights through
``run_args`` without recompiling.

Compiling, caching and running standalone builds is :mod:`fbsnn_brian.build.devices.standalone`; a build
that compiles says so first in one line on stderr (:func:`compile_notice`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import brian2
import numpy as np
from brian2 import Network, NetworkOperation, prefs
from brian2.devices.device import set_device

from fbsnn_brian.errors import DeviceError, ValidationError
from fbsnn_brian.validation import check_choice

__all__ = [
    "DEVICES",
    "RUNTIME_DEVICES",
    "check_device",
    "check_no_network_operation",
    "check_run_args",
    "compile_notice",
    "per_sample_input_path",
    "runtime_target",
]

logger = logging.getLogger(__name__)

RUNTIME_DEVICES = ("runtime", "numpy", "cython")
DEVICES = (*RUNTIME_DEVICES, "cpp_standalone")


def check_device(owner: str, device: Any) -> str:
    """Validate a device name (one of :data:`DEVICES`)."""
    return check_choice(owner, "device", device, DEVICES)


@contextlib.contextmanager
def runtime_target(device: str) -> Iterator[None]:
    """Run the enclosed Brian2 code in runtime mode with the code target of ``device``."""
    previous = prefs.codegen.target
    prefs.codegen.target = {"runtime": "auto", "numpy": "numpy", "cython": "cython"}[device]
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
