"""brian2genn as a device: availability, builds, reruns of a compiled project.

Shared by the GeNN builds of the free phase (:mod:`fbsnn_brian.build.devices.genn_free_run`)
and of SPIDE training (:mod:`fbsnn_brian.build.devices.genn_training`). brian2genn needs
Brian2 < 2.6 and numpy < 2, so it lives in a virtual environment of its own, with GeNN 4.x
installed by the user (``GENN_PATH``).
Nothing here imports brian2genn at import time: importing this module works everywhere.

* :func:`check_genn_available` says in one message what is missing;
* :func:`genn_device` makes brian2genn the device for one build and restores Brian2's
  runtime device and the preferences brian2genn changes; :func:`genn_build` adds the
  project directory and turns a failed build into a :class:`~fbsnn_brian.errors.DeviceError`;
* :class:`GeNNBinary`, :func:`record_binary` and :func:`rerun_binary` run a compiled project
  again with new inputs. brian2genn has no ``run_args``, but its binary reads every array
  assigned before the run and every TimedArray from ``static_arrays/`` files when it starts,
  and writes every variable to ``results/``; a rerun rewrites those input files (each matched
  to its variable when the project is built, and checked against the size the binary reads)
  and runs the binary again.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import Network, defaultclock, prefs
from brian2.devices.device import get_device, set_device
from numpy.typing import NDArray

from fbsnn_brian import interrupt
from fbsnn_brian.build.devices.registry import compile_notice
from fbsnn_brian.errors import DeviceError, ValidationError
from fbsnn_brian.model.network import FeedbackNetwork

__all__ = [
    "GENN_SCHEDULE",
    "GeNNBinary",
    "check_genn_available",
    "check_ideal_biophysics",
    "genn_build",
    "genn_device",
    "import_brian2genn",
    "record_binary",
    "rerun_binary",
]

logger = logging.getLogger(__name__)

#: The schedule brian2genn forces on every network.
GENN_SCHEDULE = ("start", "synapses", "groups", "thresholds", "resets", "end")

#: Preferences that brian2genn's ``activate`` changes globally (restored after each build).
_GENN_PREFERENCES = (
    "codegen.generators.cpp.restrict_keyword",
    "codegen.loop_invariant_optimisations",
    "core.network.default_schedule",
)

_INSTALL_HINT = (
    "Install brian2genn 1.7 in a virtual environment of its own with brian2<2.6 and numpy<2 "
    "(pip install 'brian2genn==1.7.0' 'brian2<2.6' 'numpy<2'), and GeNN 4.x "
    "(https://github.com/genn-team/genn/releases, e.g. 4.9.0; without CUDA it runs on the "
    "CPU) with the environment variable GENN_PATH set to its directory; "
    "'fbsnn build --device genn' writes a GeNN project without GeNN."
)


def _brian2genn_problem() -> str | None:
    """Why brian2genn cannot be imported (None if it can; importing registers 'genn')."""
    try:
        import brian2genn  # noqa: F401
    except Exception as error:  # an incompatible brian2 or numpy can fail with any error
        return f"brian2genn cannot be imported ({type(error).__name__}: {error})"
    return None


def import_brian2genn(owner: str) -> None:
    """Import brian2genn or raise a DeviceError saying what to install."""
    problem = _brian2genn_problem()
    if problem is not None:
        raise DeviceError(f"{owner}: {problem}. {_INSTALL_HINT}")


def check_genn_available(owner: str = "GeNNFreeRun.run") -> Path:
    """Check that brian2genn imports and that GeNN is installed; return GeNN's directory.

    GeNN is found as Brian2GeNN finds it: the ``devices.genn.path`` preference, else the
    ``GENN_PATH`` environment variable (this toolkit does not search ``PATH``).

    Raises
    ------
    DeviceError
        With one message that says what is missing and what to install.
    """
    problems = []
    problem = _brian2genn_problem()
    location: str | None = None
    if problem is None:
        location = prefs["devices.genn.path"]  # registered by brian2genn
    else:
        problems.append(problem)
    location = location or os.environ.get("GENN_PATH")
    if not location:
        problems.append("GENN_PATH is not set")
    elif not (Path(location) / "bin" / "genn-buildmodel.sh").is_file():
        problems.append(f"GENN_PATH = {location!r} holds no bin/genn-buildmodel.sh")
    if problems:
        raise DeviceError(
            f"{owner}: cannot build with GeNN: {'; '.join(problems)}. {_INSTALL_HINT}"
        )
    assert location is not None
    return Path(location)


@contextlib.contextmanager
def genn_device(
    directory: Path, *, dt: Any, use_GPU: bool, compile_and_run: bool
) -> Iterator[None]:
    """Make brian2genn the device for one build, and leave Brian2 as it found it.

    ``dt`` becomes the default clock's step (brian2genn runs every object on it).
    brian2genn prints its progress; the toolkit logs it at debug level instead.
    """
    saved = {name: prefs[name] for name in _GENN_PREFERENCES}
    saved_dt = defaultclock.dt
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            set_device(
                "genn",
                directory=str(directory),
                compile=compile_and_run,
                run=compile_and_run,
                use_GPU=use_GPU,
                with_output=False,  # the binary's output is shown only if it fails
            )
            defaultclock.dt = dt
            yield
    finally:
        get_device().reinit()
        set_device("runtime")
        for name, value in saved.items():
            prefs[name] = value
        defaultclock.dt = saved_dt
        if output.getvalue():
            logger.debug("brian2genn: %s", output.getvalue().strip())


@contextlib.contextmanager
def genn_build(
    owner: str, directory: str | os.PathLike[str] | None, *, dt: Any, use_GPU: bool
) -> Iterator[Path]:
    """One GeNN build and run: yield the project directory with brian2genn as the device.

    The project goes to a temporary directory (removed afterwards) unless ``directory`` is
    given; a one-line notice on stderr says that it is compiled (GeNN builds are not
    cached). Results must be read inside the block, before Brian2 returns to runtime mode. A
    failed build (brian2genn raises RuntimeError) becomes a DeviceError naming the project.
    """
    with contextlib.ExitStack() as stack:
        if directory is None:
            target = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="genn_")))
        else:
            target = Path(directory).resolve()
        backend = "CUDA" if use_GPU else "CPU"
        compile_notice(
            f"compiling the GeNN project of {owner} for {backend} (about 1-2 min) in {target}"
        )
        with genn_device(target, dt=dt, use_GPU=use_GPU, compile_and_run=True):
            try:
                yield target
            except RuntimeError as error:
                interrupt.check(f"while building the GeNN project in {target}")
                hint = (
                    " (use_GPU=True needs a CUDA GPU and GeNN's CUDA backend; without them, "
                    "use use_GPU=False, or --cpu-only on the command line)"
                    if use_GPU
                    else ""
                )
                raise DeviceError(
                    f"{owner}: the GeNN build in {target} failed: {error}{hint}"
                ) from error


@dataclass(frozen=True)
class GeNNBinary:
    """A compiled GeNN project that :func:`rerun_binary` runs again with new inputs.

    brian2genn has no ``run_args``, but the binary it builds reads every array assigned
    before the run and every TimedArray from ``static_arrays/`` files when it starts, and
    writes every variable to ``results/`` at the end. ``inputs`` maps each input (a table
    name, or ``object.variable``) to its file and size, ``outputs`` each output
    (``object.variable``) to its result file and dtype; ``size`` is the number of samples per
    run, ``run_duration`` the run's length in seconds and ``gpu`` whether the project was
    built for GeNN's CUDA backend.
    """

    project: Path
    run_duration: float
    size: int
    gpu: bool
    inputs: dict[str, tuple[Path, int]]
    outputs: dict[str, tuple[Path, str]]


def record_binary(
    owner: str,
    network: Network,
    project: Path,
    *,
    tables: dict[str, NDArray[np.float64]],
    learned: dict[str, NDArray[np.float64]],
    outputs: list[str],
    size: int,
    gpu: bool,
) -> GeNNBinary:
    """Where a project just built and run reads its inputs and writes its outputs.

    Call inside :func:`genn_build`, after the run. ``tables`` are the TimedArrays (by name)
    and ``learned`` the arrays assigned to ``object.variable`` before the run, with the
    values they were given: each must be stored under the file name this function expects,
    with exactly those values, or a DeviceError says that this brian2genn version cannot
    rerun a project. ``size`` is the number of samples a run of the project holds.
    """
    device = get_device()
    expected = {f"{name}_values": (name, table) for name, table in tables.items()}
    for key, values in learned.items():
        name, variable = key.split(".")
        array = network[name].variables[variable]
        expected[f"_static_array_{device.get_array_name(array, access_data=False)}"] = (
            key,
            values,
        )
    inputs: dict[str, tuple[Path, int]] = {}
    for file, (key, values) in expected.items():
        stored = device.static_arrays.get(file)
        if stored is None or not np.array_equal(
            np.ravel(stored), np.ravel(np.asarray(values, dtype=np.float64))
        ):
            raise DeviceError(
                f"{owner}: brian2genn did not store {key} as the static array {file!r}; "
                "this brian2genn version cannot rerun a compiled project."
            )
        inputs[key] = (project / "static_arrays" / file, int(np.size(stored)))
    results = {}
    for key in outputs:
        name, variable = key.split(".")
        array = network[name].variables[variable]
        results[key] = (project / device.get_array_filename(array), np.dtype(array.dtype).str)
    return GeNNBinary(
        project=project,
        run_duration=float(device.run_duration),
        size=size,
        gpu=gpu,
        inputs=inputs,
        outputs=results,
    )


def rerun_binary(
    owner: str, binary: GeNNBinary, values: dict[str, Any]
) -> tuple[dict[str, NDArray[Any]], float, float]:
    """Run a compiled project again with new inputs; return (outputs, wall s, simulation s).

    Every input file is rewritten from ``values`` (float64, checked against the size the
    binary reads: a binary given an array of the wrong size would read garbage silently).
    """
    for key, (path, size) in binary.inputs.items():
        array = np.ascontiguousarray(values[key], dtype=np.float64).ravel()
        if array.size != size:
            raise DeviceError(
                f"{owner}: {key} has {array.size} values, the compiled project in "
                f"{binary.project} reads {size}; build again for this network."
            )
        array.tofile(path)
    start = time.perf_counter()
    completed = subprocess.run(
        ["./main", "test", repr(binary.run_duration)],
        cwd=binary.project,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        interrupt.check(f"while the GeNN binary in {binary.project} ran")
        raise DeviceError(
            f"{owner}: the GeNN binary in {binary.project} failed (exit status "
            f"{completed.returncode}): {(completed.stdout + completed.stderr)[-2000:]}"
        )
    wall = time.perf_counter() - start
    info = (binary.project / "results" / "last_run_info.txt").read_text().split()
    outputs = {key: np.fromfile(path, dtype=dtype) for key, (path, dtype) in binary.outputs.items()}
    return outputs, wall, float(info[0])


def check_ideal_biophysics(network: FeedbackNetwork, owner: str = "GeNNFreeRun") -> None:
    """Refuse the biophysical settings that this GeNN build does not implement."""
    biophysics = network.biophysics
    refused = [
        (
            f"synapse = {biophysics.synapse!r}",
            "'instantaneous'",
            biophysics.synapse != "instantaneous",
        ),
        (f"reset = {biophysics.reset!r}", "'subtract'", biophysics.reset != "subtract"),
        (f"delay = {biophysics.delay!r}", "0 ms", biophysics.has_delays),
        (f"noise_sigma = {biophysics.noise_sigma!r}", "0", biophysics.has_noise),
    ]
    for setting, allowed, refuse in refused:
        if refuse:
            raise ValidationError(
                f"{owner}: biophysics.{setting} is not supported on GeNN, which runs only "
                f"the ideal biophysics (here {allowed}: instantaneous synapses, subtractive "
                "reset, no delays, no noise); simulate this network on runtime or "
                "cpp_standalone."
            )
