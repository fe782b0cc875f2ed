"""Simulation devices: selection, isolation and the checks Brian2 does not do itself.

``runtime`` runs the simulation from Python (code target chosen by Brian2, cython when it
works), ``numpy`` and ``cython`` force the runtime code target, ``cpp_standalone`` compiles the
whole simulation into one binary that later runs with new inputs and weights through
``run_args`` without recompiling.

Each standalone build gets its own
:class:`~brian2.devices.cpp_standalone.device.CPPStandaloneDevice` instance, so several
compiled simulations (say a training and an evaluation network) live side by side in one
Python process, and Brian2's global device is always restored to runtime.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import brian2
import numpy as np
from brian2 import Network, NetworkOperation, prefs
from brian2.devices.device import all_devices, set_device

from fbsnn_brian.errors import DeviceError, ValidationError
from fbsnn_brian.validation import check_choice

__all__ = [
    "DEVICES",
    "RUNTIME_DEVICES",
    "check_device",
    "check_no_network_operation",
    "check_run_args",
    "compile_standalone",
    "runtime_target",
    "standalone_device",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

RUNTIME_DEVICES = ("runtime", "numpy", "cython")
DEVICES = (*RUNTIME_DEVICES, "cpp_standalone")

_instance_counter = itertools.count()


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


@contextlib.contextmanager
def standalone_device(directory: str) -> Iterator[Any]:
    """Make a fresh cpp_standalone device the active one while the model is defined.

    The device is registered under a unique name and yielded; after the block the global
    device is set back to runtime, while the yielded instance can still build and run.
    """
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    device = CPPStandaloneDevice()
    name = f"fbsnn_cpp_standalone_{next(_instance_counter)}"
    all_devices[name] = device
    set_device(name, directory=directory, build_on_run=False)
    try:
        yield device
    finally:
        set_device("runtime")


def compile_standalone(
    directory: str | None, define: Callable[[], T], *, network_of: Callable[[T], Network]
) -> tuple[Any, T, float]:
    """Define a model on a fresh cpp_standalone device and compile it without running it.

    Parameters
    ----------
    directory : str, optional
        Project directory (default: a new temporary directory).
    define : callable
        Creates the Brian2 objects (and calls ``Network.run``, which only records the run).
    network_of : callable
        Returns the Network of what ``define`` returned, to check it for network operations.

    Returns
    -------
    (device, defined objects, compile time in seconds)
    """
    project = directory or tempfile.mkdtemp(prefix="fbsnn_cpp_")
    start = time.perf_counter()
    with standalone_device(project) as device:
        objects = define()
        check_no_network_operation(network_of(objects))
        try:
            device.build(directory=project, compile=True, run=False, with_output=False)
        except Exception as error:  # Brian2 raises bare RuntimeError / OSError here
            raise DeviceError(
                f"cpp_standalone: compiling the simulation in {project} failed ({error}); a C++ "
                "compiler (g++) and the Python headers must be installed."
            ) from error
    seconds = time.perf_counter() - start
    logger.info("compiled a cpp_standalone simulation in %.1f s (%s)", seconds, project)
    return device, objects, seconds


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
