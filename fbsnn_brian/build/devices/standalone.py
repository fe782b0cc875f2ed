"""cpp_standalone builds: compiled once per configuration, cached on disk, run privately.

A simulation definition (network shape, protocol, chunk size, ...) is compiled once into a
project directory of the build cache, keyed by a hash of that configuration and of the
versions that shape the generated code. Later chunks, epochs and Python sessions with the same
configuration reuse it: Brian2 rewrites only generated files whose text changed, so ``make``
has nothing to do and a "compile" of a cached build costs the code generation alone (seconds
instead of about half a minute).

Two processes may share the cache. A build holds an exclusive lock on its cache entry while it
generates and compiles, then copies the binary and its static arrays into a private working
directory, where every later run of that simulation takes place: its ``run_args`` value files
and results never touch the shared entry, and the value files are deleted after each run so
that long trainings do not fill the disk. The working directory is removed when the
simulation object is garbage collected (or at interpreter exit).

The cache lives in ``$FBSNN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fbsnn_brian`` or
``~/.cache/fbsnn_brian``; :func:`clear_cache` empties it. With an explicit ``directory`` the
project is built and run there instead, uncached, and kept.

A cache hit recompiles nothing, because Brian2's generated code is made independent of the
process: Brian2 resets the clocks of a run in the iteration order of a set of Clock objects,
which follows their memory addresses and so changes with ``PYTHONHASHSEED``; the toolkit's
devices put those resets in the order of the clocks' names. A build that has to compile says
so in one line on stderr first (:func:`fbsnn_brian.build.devices.registry.compile_notice`), and
:attr:`StandaloneBuild.cache_hit` records whether the binary was reused.

The generated network loop is changed in one place: Brian2 reads the process CPU clock after
every time step only to report the run time at the end (and to stop at a maximum run time,
which the toolkit never sets). On machines where that clock is a system call it costs about
1-2 microseconds per step, a sixth of a training step of the MNIST network, so the toolkit's
devices read it once after the loop instead.

A compiled project records what its binary was compiled from in ``fbsnn_build.json``
(:mod:`fbsnn_brian.build.devices.stamp`): a hash of the generated code and the target
options (:func:`target_options`: the device, the code-generation preferences and, for a GPU,
the compute capability). A later build into the same directory, on this machine or on another
one the project was copied to, reuses the binary without calling make when the code it
generates and the target are the recorded ones
(:func:`~fbsnn_brian.build.devices.stamp.reuse_check`), so a project compiled
here reruns on a GPU machine with new inputs and weights through ``run_args`` and without
nvcc there; otherwise it is recompiled, from scratch when the target changed.
:attr:`StandaloneBuild.compile_reason` says which, and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import brian2
import numpy as np
from brian2 import Network, ms
from brian2.core.names import find_name
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import all_devices, get_device, set_device

from fbsnn_brian import interrupt
from fbsnn_brian.build.devices import cuda
from fbsnn_brian.build.devices.cache import cache_root
from fbsnn_brian.build.devices.registry import (
    REGISTRY,
    check_no_network_operation,
    compile_notice,
)
from fbsnn_brian.build.devices.stamp import reuse_check, saved_stamp, write_stamp
from fbsnn_brian.errors import DeviceError

__all__ = [
    "TARGETS",
    "Compilable",
    "StandaloneBuild",
    "build_key",
    "cache_root",
    "check_available",
    "clear_cache",
    "compile_all",
    "compile_standalone",
    "target_options",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_instance_counter = itertools.count()

# the per-step CPU-clock read at the end of the generated network loop (Brian2 2.5 - 2.10)
_PER_STEP_CLOCK = re.compile(
    r"\n[ \t]*current = std::clock\(\);\n[ \t]*elapsed_realtime = [^\n]*\n"
)
_AFTER_LOOP = "    Network::_globally_running = false;\n"


def _order_clock_resets(device: Any, start: int, net: Network) -> None:
    """Sort what one ``network_run`` queued that depends on the order of a set of clocks.

    Brian2's ``network_run`` iterates ``{obj.clock for obj in objects}``, whose order follows
    the clocks' memory addresses, to queue each clock's ``timestep`` and ``t`` reset first
    (from ``main_queue[start]`` on), and to add a clock without code objects to the network;
    both are put in the order of the clocks' names. Anything else is left as Brian2 queued it
    (with a debug message where the resets are not where they are expected).
    """
    clocks = sorted({obj.clock for obj in net.sorted_objects}, key=lambda clock: clock.name)
    ranks = {
        device.get_array_name(clock.variables[variable], access_data=False): (clock.name, rank)
        for clock in clocks
        for rank, variable in enumerate(("timestep", "t"))
    }
    queue = device.main_queue

    def is_reset(k: int) -> bool:
        return queue[k][0] == "set_by_single_value" and queue[k][1][0] in ranks

    # brian2cuda queues other entries before the resets
    begin = next((k for k in range(start, len(queue)) if is_reset(k)), len(queue))
    end = begin
    while end < len(queue) and is_reset(end):
        end += 1
    if end - begin == len(ranks):
        queue[begin:end] = sorted(queue[begin:end], key=lambda entry: ranks[entry[1][0]])
    else:
        logger.debug("unknown clock resets in main_queue: left as Brian2 queued them")
    runs = [entry for entry in queue[start:] if entry[0] == "run_network"]
    if runs:  # brian2cuda queues more after it
        lines = runs[-1][1][1]
        added = f"{net.name}.add(&"
        # a clock without code objects: NULL, or brian2cuda's random number buffer
        idle = [
            k
            for k, line in enumerate(lines)
            if line.startswith(added) and ("NULL" in line or "_run_random_number_buffer" in line)
        ]
        for k, line in zip(idle, sorted(lines[k] for k in idle), strict=True):
            lines[k] = line


def _up_to_date(directory: str) -> bool:
    """Whether make finds the project's binary up to date (nothing to recompile)."""
    if not os.path.isfile(os.path.join(directory, "main")):
        return False
    make = shlex.split(brian2.prefs["devices.cpp_standalone.make_cmd_unix"])
    try:
        completed = subprocess.run(
            [*make, "-q"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return False
    return completed.returncode == 0


class _ReproducibleBuild:
    """Device mixin: code independent of the process, a binary reused where it fits, and a
    notice before a real compile.

    Brian2 makes a code object's name (``layer_1_stateupdater_codeobject*``) unique among
    all live Brian2 objects of the process, so a second build of a configuration in the same
    process, while the first build's device lives (Brian2 keeps every device it switched
    from), got names with a ``_1`` suffix and had to be compiled again; here names are made
    unique among the device's own code objects. ``notice`` (set before the build) is printed,
    through :func:`compile_notice`, only when make has something to compile; ``recompiled``
    says afterwards whether it had, ``compile_reason`` why. ``options`` (set before the build,
    :func:`target_options`) is what the binary is compiled for: a binary whose record
    (:data:`~fbsnn_brian.build.devices.stamp.STAMP`) holds the same options and generated code
    is reused without make.
    """

    notice: str | None = None
    recompiled: bool = True
    compile_reason: str = ""
    options: Mapping[str, Any] | None = None

    def compile_needed(self, reason: str) -> None:
        """Refuse a compile this machine cannot do (nothing to refuse here)."""

    def code_object(self, owner: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if name.endswith("*"):
            name = find_name(name, names=set(self.code_objects))  # type: ignore[attr-defined]
        return super().code_object(owner, name, *args, **kwargs)  # type: ignore[misc]

    def network_run(self, net: Network, *args: Any, **kwargs: Any) -> None:
        start = len(self.main_queue)  # type: ignore[attr-defined]
        super().network_run(net, *args, **kwargs)  # type: ignore[misc]
        _order_clock_resets(self, start, net)

    def compile_source(self, directory: str, compiler: Any, debug: Any, clean: Any) -> Any:
        options = dict(self.options or {})
        reusable, reason = reuse_check(directory, options)
        if reusable and not clean:
            self.recompiled, self.compile_reason = False, f"reused: {reason}"
            return None
        saved = saved_stamp(directory)
        # compiled for another target: nothing of it may be kept
        clean = bool(clean) or (saved is not None and saved.get("options") != options)
        self.recompiled = clean or not _up_to_date(directory)
        if self.recompiled:
            self.compile_reason = f"compiled: {reason}"
            self.compile_needed(self.compile_reason)
            if self.notice:
                compile_notice(self.notice)
        else:
            self.compile_reason = "reused: make finds the binary up to date"
        result = super().compile_source(directory, compiler, debug, clean)  # type: ignore[misc]
        write_stamp(directory, options)
        return result


class _FbsnnStandaloneDevice(_ReproducibleBuild, CPPStandaloneDevice):  # type: ignore[misc]
    """CPPStandaloneDevice whose network loop reads the CPU clock once, after the loop."""

    def generate_network_source(self, writer: Any, compiler: Any) -> None:
        if self._maximum_run_time is not None:
            super().generate_network_source(writer, compiler)
            return
        network = self.code_object_class().templater.network(None, None, maximum_run_time=None)
        source = network.cpp_file
        match = _PER_STEP_CLOCK.search(source)
        if match is None or _AFTER_LOOP not in source:
            logger.debug("unknown network.cpp template: left as Brian2 generated it")
        else:
            clock_read = match.group(0)
            source = source.replace(clock_read, "\n", 1)
            source = source.replace(_AFTER_LOOP, clock_read.lstrip("\n") + _AFTER_LOOP, 1)
        writer.write("network.cpp", source)
        writer.write("network.h", network.h_file)


#: The Brian2 standalone devices of the registry (compiled once, rerun through run_args).
TARGETS = tuple(name for name, device in REGISTRY.items() if device.standalone)


def check_available(owner: str, device: str) -> None:
    """Refuse a device whose software is not installed here, naming what to install.

    For a GPU device, also settle the compute capability to build for
    (:func:`~fbsnn_brian.build.devices.cuda.configure_cuda`), so that a run without one is
    refused before it starts. nvcc is asked for only when something must be compiled.
    """
    if REGISTRY[device].gpu:
        cuda.require_brian2cuda(owner)
        cuda.configure_cuda()


class Compilable(Protocol):
    """A simulation that may have a standalone build to compile before its first run.

    The training engines (:class:`~fbsnn_brian.learning.engine.TrainingEngine`) and the
    evaluators of the Trainer implement it; :func:`compile_all` compiles them.
    """

    def compile(self, *, check_only: bool = False) -> StandaloneBuild | None:
        """Compile the standalone build now (its first run would), or only check it.

        Parameters
        ----------
        check_only : bool
            Generate the code and say whether the binary in the project directory fits it,
            compiling nothing.

        Returns
        -------
        StandaloneBuild or None
            The build, or None where there is nothing to compile ahead (a runtime device,
            or a device that builds its project at the first run).
        """
        ...


def compile_all(
    simulations: Mapping[str, Compilable], *, check_only: bool = False
) -> dict[str, dict[str, Any]]:
    """Compile the standalone builds of some simulations now (before they are timed).

    Parameters
    ----------
    simulations : mapping of str to Compilable
        Those with a standalone build (:meth:`Compilable.compile` returns one) are compiled;
        the others are left out.
    check_only : bool
        Generate the code and say whether the binaries in the project directories fit it,
        compiling nothing.

    Returns
    -------
    dict
        Per simulation: ``directory``, ``compile_time_s``, ``binary_reused`` and ``reason``
        (reused or compiled, and why).
    """
    described = {}
    for name, simulation in simulations.items():
        build = simulation.compile(check_only=check_only)
        if build is not None:
            described[name] = {
                "directory": build.directory,
                "compile_time_s": build.compile_time_s,
                "binary_reused": build.cache_hit,
                "reason": build.compile_reason,
            }
    return described


def target_options(target: str) -> dict[str, Any]:
    """What a build for ``target`` is compiled with: part of its build key and its stamp.

    The device, the code-generation preferences that change the binary and, for a GPU device,
    its target (:func:`fbsnn_brian.build.devices.cuda.target_options`, which configures
    brian2cuda on first use).
    """
    options: dict[str, Any] = {
        "device": target,
        "codegen": {
            name: str(brian2.prefs[name])
            for name in (
                "codegen.cpp.extra_compile_args",
                "codegen.loop_invariant_optimisations",
                "devices.cpp_standalone.openmp_threads",
            )
        },
    }
    if REGISTRY[target].gpu:
        options.update(cuda.target_options())
    return options


def clear_cache() -> None:
    """Delete every cached build."""
    shutil.rmtree(cache_root() / "builds", ignore_errors=True)


def build_key(
    kind: str,
    configuration: Mapping[str, Any],
    *,
    target: str = "cpp_standalone",
    options: Mapping[str, Any] | None = None,
) -> str:
    """Hash of a build's configuration and of everything else that shapes its code.

    Parameters
    ----------
    kind : str
        The simulation class (``'training'``, ``'free_run'``).
    configuration : mapping
        JSON-serialisable description of the definition: network, protocol, chunk size, ...
    target : str
        The standalone device.
    options : mapping, optional
        Its target options (default: :func:`target_options`, e.g. a GPU's compute capability).
    """
    from fbsnn_brian.version import __version__

    payload = {
        "kind": kind,
        "configuration": configuration,
        "fbsnn_brian": __version__,
        "brian2": str(brian2.__version__),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "target": dict(options) if options is not None else target_options(target),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _standalone_device(directory: str, target: str = "cpp_standalone") -> Iterator[Any]:
    """Make a fresh standalone device the active one while the model is defined.

    Brian2 copies the defaultclock's dt of the device it switches from into the new one's
    code, and back when it switches back; a build under brian2cuda sets that dt (it is the
    step clock there). The runtime device's dt is set to Brian2's default while the build is
    generated and restored afterwards, so that the code does not depend on the builds before
    it in the process.
    """
    device_class = (
        cuda.cuda_device_class(_ReproducibleBuild)
        if REGISTRY[target].gpu
        else _FbsnnStandaloneDevice
    )
    device = device_class()
    name = f"fbsnn_{target}_{next(_instance_counter)}"
    all_devices[name] = device
    runtime_clock = get_device().defaultclock
    previous_dt = None if runtime_clock is None else runtime_clock.dt
    if runtime_clock is not None:
        runtime_clock.dt = 0.1 * ms
    set_device(name, directory=directory, build_on_run=False)
    try:
        yield device
    finally:
        set_device("runtime")
        if previous_dt is not None:
            get_device().defaultclock.dt = previous_dt


@dataclass
class StandaloneBuild:
    """A compiled simulation and the directory its runs take place in.

    Attributes
    ----------
    device : CPPStandaloneDevice
        The device instance the simulation was defined on.
    directory : str
        Working directory of the runs (the binary, its static arrays, ``results/``).
    compile_time_s : float
        Seconds spent in code generation and compilation (small for a cached build).
    cached : bool
        Whether the build is an entry of the build cache (found there or put there).
    cache_hit : bool
        Whether the binary of an earlier build of the same project (the cache entry, or the
        given directory, perhaps compiled on another machine) was reused.
    compile_reason : str
        Whether the binary was reused or compiled, and why, in words.
    target : str
        The standalone device.
    """

    device: Any
    directory: str
    compile_time_s: float
    cached: bool
    cache_hit: bool = False
    compile_reason: str = ""
    target: str = "cpp_standalone"

    def run(self, run_args: Mapping[Any, Any]) -> None:
        """Run the binary once with new values, then delete the value files it read."""
        device = self.device
        try:
            device.run(
                directory=self.directory,
                results_directory="results",
                with_output=False,
                run_args=dict(run_args),
            )
        except Exception as error:  # Brian2 raises a bare RuntimeError
            # a binary stopped by Ctrl-C: not a device fault (the caller discards the chunk)
            interrupt.check(f"while the compiled simulation in {self.directory} ran")
            raise DeviceError(
                f"{self.target}: the compiled simulation in {self.directory} failed ({error})."
            ) from error
        finally:
            for name in device.run_args_arrays:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.directory, "static_arrays", name))


def _private_copy(project: Path) -> str:
    """Copy a built project's binary and static arrays into a new working directory."""
    work = tempfile.mkdtemp(prefix="fbsnn_run_")
    shutil.copy2(project / "main", os.path.join(work, "main"))
    shutil.copytree(project / "static_arrays", os.path.join(work, "static_arrays"))
    os.makedirs(os.path.join(work, "results"))
    return work


def compile_standalone(
    define: Callable[[], T],
    *,
    network_of: Callable[[T], Network],
    key: str | None = None,
    directory: str | None = None,
    owner: object | None = None,
    target: str = "cpp_standalone",
    what: str = "the simulation",
    check_only: bool = False,
) -> tuple[StandaloneBuild, T]:
    """Define a model on a fresh cpp_standalone device and compile it without running it.

    Parameters
    ----------
    define : callable
        Creates the Brian2 objects (and calls ``Network.run``, which only records the run).
    network_of : callable
        Returns the Network of what ``define`` returned, to check it for network operations.
    key : str, optional
        Build-cache key (:func:`build_key`); without it the build goes to a new temporary
        directory.
    directory : str, optional
        Build and run in this directory instead (no cache, kept afterwards).
    owner : object, optional
        The private working directory is deleted when this object is garbage collected.
    target : str
        The device, one of :data:`TARGETS` (the registry's standalone devices;
        cuda_standalone: brian2cuda, see :mod:`fbsnn_brian.build.devices.cuda`).
    what : str
        What is compiled, for the one-line notice printed before a compilation that is not a
        cache hit (e.g. ``'the training simulation'``).
    check_only : bool
        Generate the code and check whether the binary in the project fits it
        (:func:`~fbsnn_brian.build.devices.stamp.reuse_check`), compiling nothing; the build
        cannot run.

    Returns
    -------
    (StandaloneBuild, defined objects)
    """
    if target not in TARGETS:
        raise DeviceError(f"compile_standalone: target must be one of {TARGETS}, got {target!r}.")
    if directory is not None:
        project, cached = Path(directory), False
    elif key is not None:
        project, cached = cache_root() / "builds" / key, True
    else:
        project, cached = Path(tempfile.mkdtemp(prefix="fbsnn_cpp_")), False
    start = time.perf_counter()
    options = target_options(target)
    lock = _exclusive(project.with_name(project.name + ".lock")) if cached else None
    with lock or contextlib.nullcontext(), _standalone_device(str(project), target) as device:
        objects = define()
        check_no_network_operation(network_of(objects))
        device.notice = _notice(what, target, project if not cached else None)
        device.options = options
        if check_only:
            device.build(directory=str(project), compile=False, run=False, with_output=False)
            reusable, reason = reuse_check(project, options)
            verdict = f"{'reused' if reusable else 'would compile'}: {reason}"
            seconds = time.perf_counter() - start
            return StandaloneBuild(
                device, str(project), seconds, cached, reusable, verdict, target
            ), objects
        try:
            device.build(directory=str(project), compile=True, run=False, with_output=False)
        except Exception as error:  # Brian2 raises bare RuntimeError / OSError here
            # a Ctrl-C reaches the compiler too, which then fails: say so, not "install g++"
            interrupt.check(f"while compiling the {target} simulation in {project}")
            if isinstance(error, DeviceError):
                raise
            raise DeviceError(
                f"{target}: compiling the simulation in {project} failed ({error}); "
                f"{REGISTRY[target].needs} and the Python headers must be installed."
            ) from error
        work = _private_copy(project) if cached else str(project)
    if directory is None:
        if not cached:
            work = str(project)
        weakref.finalize(owner if owner is not None else device, shutil.rmtree, work, True)
    device.project_dir = work
    seconds = time.perf_counter() - start
    hit = not device.recompiled
    logger.info(
        "compiled a %s simulation in %.1f s (%s%s)",
        target,
        seconds,
        project,
        (", cache hit" if hit else ", cached") if cached else "",
    )
    build = StandaloneBuild(device, work, seconds, cached, hit, device.compile_reason, target)
    return build, objects


def _notice(what: str, target: str, directory: Path | None) -> str:
    """The notice before compiling ``what`` into ``directory`` (None: the build cache)."""
    duration = "about 5-10 min with nvcc" if REGISTRY[target].gpu else "about 20-60 s"
    if directory is not None:
        return f"compiling {what} for {target} ({duration}) in {directory}"
    where = str(cache_root())
    home = os.path.expanduser("~")
    if where == home or where.startswith(home + os.sep):
        where = "~" + where[len(home) :]
    return f"compiling {what} for {target} ({duration}, once per configuration; cached in {where})"
