"""cuda_standalone (brian2cuda): the GPU target of a build, and brian2cuda's preferences.

A cuda_standalone build is a Brian2 standalone build like cpp_standalone's (compiled once,
rerun with new inputs and weights through ``run_args``), compiled by nvcc for one GPU
architecture, its *compute capability*. That number is part of the build (and of its cache
key, :func:`target_options`); it is taken from, in this order, the argument
(``--compute-capability``), the environment variable ``FBSNN_COMPUTE_CAPABILITY``, or the first
GPU that ``nvidia-smi`` reports (:func:`gpu_target`). Nothing here needs a GPU: the code is
generated and compiled on any machine with nvcc, and its binary runs on a machine with a GPU of
that compute capability (see ``benchmarks/gpu_check.sh``).

What is needed, and refused by name where missing (:func:`require_brian2cuda`):
brian2cuda 1.0b1, which needs Python >= 3.12 and brian2 == 2.10.1 (the ``cuda`` extra), and,
to compile, nvcc (the CUDA toolkit). A prepared binary reruns without nvcc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import brian2
from brian2.devices.device import get_device

from fbsnn_brian.build.device_rules import DeviceRules
from fbsnn_brian.build.devices.cache import cache_root
from fbsnn_brian.build.training_rules import TrainingRules
from fbsnn_brian.errors import DeviceError, ValidationError

__all__ = [
    "INSTALL",
    "CUDARules",
    "CUDATrainingRules",
    "device_rules",
    "on_cuda",
    "training_rules",
    "configure_cuda",
    "cuda_device_class",
    "curand_missing",
    "gpu_target",
    "parse_compute_capability",
    "require_brian2cuda",
    "require_nvcc",
    "target_options",
]

#: What to install for cuda_standalone, for messages.
INSTALL = (
    'in a Python >= 3.12 venv, pip install -e ".[cuda]" (brian2cuda 1.0b1 with brian2 '
    "2.10.1), and the CUDA toolkit's nvcc on PATH (or CUDA_PATH)"
)

#: Environment variable naming the compute capability of the GPU to build for.
ENVIRONMENT = "FBSNN_COMPUTE_CAPABILITY"

# the lowest compute capability nvcc 13 still compiles for
_LOWEST = 7.5
_BACKEND = "devices.cuda_standalone.cuda_backend"
# set by configure_cuda when neither the CUDA toolkit nor the nvidia-curand wheel has curand.h
_CURAND_MISSING: list[str] = []
# the compute capability configure_cuda set in this process
_CONFIGURED: list[float] = []


def require_brian2cuda(owner: str = "cuda_standalone") -> Any:
    """Import brian2cuda (registering its device and preferences); refuse by name without it.

    Returns
    -------
    type
        brian2cuda's ``CUDAStandaloneDevice``.
    """
    try:
        import brian2cuda  # noqa: F401
        from brian2cuda.device import CUDAStandaloneDevice
    except ImportError as error:
        raise DeviceError(
            f"{owner}: device 'cuda_standalone' needs brian2cuda, which is not installed here "
            f"({error}); {INSTALL}."
        ) from None
    return CUDAStandaloneDevice


def nvcc_path() -> str | None:
    """nvcc on PATH, else under ``$CUDA_PATH/bin`` (None where there is none)."""
    found = shutil.which("nvcc")
    if found is None and os.environ.get("CUDA_PATH"):
        candidate = Path(os.environ["CUDA_PATH"]) / "bin" / "nvcc"
        found = str(candidate) if candidate.is_file() else None
    return found


def require_nvcc(reason: str) -> str:
    """The path of nvcc; refuse by name without it (``reason``: why a compile is needed)."""
    found = nvcc_path()
    if found is None:
        raise DeviceError(f"cuda_standalone: {reason}, which needs nvcc; {INSTALL}.")
    return found


def parse_compute_capability(value: Any, *, source: str = "compute capability") -> float:
    """A compute capability such as ``9.0``, ``'9.0'`` or ``'sm_90'``, checked.

    Raises
    ------
    ValidationError
        For anything that is not a number of at least 7.5 (nvcc 13's lowest).
    """
    text = str(value).strip().lower()
    if text.startswith("sm_") and text[3:].isdigit() and len(text) >= 5:
        text = f"{text[3:-1]}.{text[-1]}"
    try:
        number = float(text)
    except ValueError:
        raise ValidationError(
            f"{source} must be a number such as 9.0 (H100/H200) or 8.0 (A100), got {value!r}."
        ) from None
    if not _LOWEST <= number < 100:
        raise ValidationError(
            f"{source} must be at least {_LOWEST} (the lowest nvcc 13 compiles for), got {value!r}."
        )
    return number


def _nvidia_smi_capability() -> str | None:
    """The compute capability of the first GPU nvidia-smi reports (None without one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        completed = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = completed.stdout.split()
    return lines[0] if completed.returncode == 0 and lines else None


def gpu_target(
    compute_capability: Any = None, *, environ: Mapping[str, str] | None = None
) -> float:
    """The compute capability to build for: the argument, ``$FBSNN_COMPUTE_CAPABILITY``, or
    the first GPU's (nvidia-smi); refused by name where none of them gives one.
    """
    if compute_capability is not None:
        return parse_compute_capability(compute_capability)
    environment = os.environ if environ is None else environ
    if environment.get(ENVIRONMENT):
        return parse_compute_capability(environment[ENVIRONMENT], source=f"${ENVIRONMENT}")
    detected = _nvidia_smi_capability()
    if detected is not None:
        return parse_compute_capability(detected, source="nvidia-smi's compute_cap")
    raise DeviceError(
        "cuda_standalone: no GPU found here (nvidia-smi) to build for; name its compute "
        f"capability with {ENVIRONMENT}=9.0 (H100/H200; 8.0 for an A100), or fbsnn build "
        "--compute-capability."
    )


def target_options() -> dict[str, Any]:
    """What a cuda_standalone build is compiled for (configuring brian2cuda on first use).

    Part of the build key and of the record of what a binary was compiled from.
    """
    capability = configure_cuda()
    return {"compute_capability": capability, "brian2cuda": _brian2cuda_version()}


def _brian2cuda_version() -> str:
    from importlib.metadata import version

    return version("brian2cuda")


def curand_missing() -> str | None:
    """Why cuRAND's headers are missing for a compile (None when they were found)."""
    return _CURAND_MISSING[0] if _CURAND_MISSING else None


def configure_cuda(compute_capability: Any = None) -> float:
    """Set brian2cuda's preferences to generate and compile for one GPU, without a GPU.

    Also switches Brian2's loop-invariant optimisation off for the rest of the process:
    brian2cuda 1.0b1 declares ``t`` twice in an event's reset code when a scalar expression of
    ``t`` is lifted out of the loop. Call it in a process dedicated to cuda_standalone.
    Without nvcc the code is still generated (a prepared binary reruns); a compile then stops
    with the name of what to install.

    Parameters
    ----------
    compute_capability : float or str, optional
        e.g. 9.0 for an H100/H200, 8.0 for an A100 (default: the one an earlier call set in
        this process, else :func:`gpu_target`).

    Returns
    -------
    float
        The compute capability built for.
    """
    require_brian2cuda()
    if compute_capability is None and _CONFIGURED:
        return _CONFIGURED[0]
    capability = gpu_target(compute_capability)
    _CONFIGURED[:] = [capability]
    prefs = brian2.prefs
    prefs["codegen.loop_invariant_optimisations"] = False
    prefs[f"{_BACKEND}.detect_gpus"] = False
    prefs[f"{_BACKEND}.gpu_id"] = 0
    prefs[f"{_BACKEND}.compute_capability"] = capability
    nvcc = nvcc_path()
    if nvcc is None:
        # generate without nvcc: brian2cuda then only warns that it found no CUDA toolkit
        prefs[f"{_BACKEND}.detect_cuda"] = False
        prefs[f"{_BACKEND}.cuda_runtime_version"] = 13.0
        cuda_root = Path(os.environ.get("CUDA_PATH") or "/usr/local/cuda")
    else:
        cuda_root = Path(nvcc).parent.parent
    _CURAND_MISSING.clear()
    if not (cuda_root / "include" / "curand.h").is_file() and not _curand_wheel(prefs):
        _CURAND_MISSING.append(
            f"the CUDA toolkit in {cuda_root} has no cuRAND headers (curand.h); install them "
            "or the nvidia-curand wheel (part of the cuda extra)"
        )
    return capability


def _curand_wheel(prefs: Any) -> bool:
    """Add the nvidia-curand wheel's headers and library to the compiler paths, if installed."""
    try:
        import nvidia  # the nvidia-curand wheel
    except ImportError:
        return False
    for root in (Path(p) for p in nvidia.__path__):
        candidates = sorted(root.glob("*/include/curand.h")) + sorted(
            root.glob("curand/include/curand.h")
        )
        for candidate in candidates:
            library = candidate.parent.parent / "lib"
            if str(candidate.parent) not in prefs["codegen.cpp.include_dirs"]:
                prefs["codegen.cpp.include_dirs"] += [str(candidate.parent)]
            # the wheel ships libcurand.so.N only; -lcurand needs the plain name
            links = cache_root() / "cuda_libraries"
            links.mkdir(parents=True, exist_ok=True)
            for versioned in library.glob("libcurand.so.*"):
                plain = links / "libcurand.so"
                if not plain.exists():
                    plain.symlink_to(versioned)
            for directory in (str(library), str(links)):
                if directory not in prefs["codegen.cpp.library_dirs"]:
                    prefs["codegen.cpp.library_dirs"] += [directory]
                if directory not in prefs["codegen.cpp.runtime_library_dirs"]:
                    prefs["codegen.cpp.runtime_library_dirs"] += [directory]
            return True
    return False


class _ByArrayName(set):  # type: ignore[type-arg]
    """A set of Brian2 variables iterated in the order of their array names on a device."""

    def __init__(self, variables: set[Any], device: Any) -> None:
        super().__init__(variables)
        self.device = device

    def __iter__(self) -> Any:
        items = list(super().__iter__())
        return iter(sorted(items, key=lambda v: self.device.get_array_name(v, access_data=False)))


def cuda_device_class(reproducible: type) -> type:
    """brian2cuda's device class with the toolkit's build mixin, compiling with C++17.

    brian2cuda 1.0b1 writes ``-std=c++11`` into its makefile, which the CUDA 13 headers
    refuse; the makefile is switched to C++17 (supported by nvcc 11 and later) before make
    runs.

    Parameters
    ----------
    reproducible : type
        The mixin of :mod:`fbsnn_brian.build.devices.standalone` (reproducible code, a notice
        before a real compile, reuse of a prepared binary).
    """
    base: Any = require_brian2cuda()

    class _FbsnnCudaDevice(reproducible, base):  # type: ignore[misc]
        def code_object(self, owner: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            # brian2cuda's synapse creation code resizes the synapses' arrays in the order of
            # their names, and two of them may share a name ('delay' of two pathways): then
            # the order of a set of variables (their memory addresses) decided, and the code
            # changed from process to process; iterated by array name, it does not
            registered = getattr(owner, "_registered_variables", None)
            if isinstance(registered, set) and not isinstance(registered, _ByArrayName):
                owner._registered_variables = _ByArrayName(registered, self)
            return super().code_object(owner, name, *args, **kwargs)

        def compile_source(self, directory: str, compiler: Any, debug: Any, clean: Any) -> Any:
            makefile = Path(directory) / "makefile"
            text = makefile.read_text()
            if "-std=c++11" in text:
                makefile.write_text(text.replace("-std=c++11", "-std=c++17"))
            return super().compile_source(directory, compiler, debug, clean)

        def compile_needed(self, reason: str) -> None:
            require_nvcc(reason)
            missing = curand_missing()
            if missing:
                raise DeviceError(f"cuda_standalone: {reason}, but {missing}.")

    return _FbsnnCudaDevice


class CUDARules(DeviceRules):
    """brian2cuda's rule: its synapse code reads the device's ``defaultclock`` by name.

    So the per-step updates of a build run on the device's defaultclock, set to ``dt``,
    instead of a clock of their own; every other construct is Brian2's.
    """

    def step_clock(self, dt: Any) -> Any:
        """The device's defaultclock, with its step set to ``dt``."""
        device = get_device()
        device.defaultclock.dt = dt
        return device.defaultclock


class CUDATrainingRules(CUDARules, TrainingRules):
    """The training network's constructs under brian2cuda: Brian2's, but the step clock."""


def on_cuda() -> bool:
    """Whether the Brian2 device now set is brian2cuda's."""
    device = get_device()
    return any(cls.__name__ == "CUDAStandaloneDevice" for cls in type(device).__mro__)


def device_rules() -> DeviceRules:
    """The rules of the Brian2 device now set, for the free-phase definition.

    Brian2's own rules (:class:`~fbsnn_brian.build.device_rules.DeviceRules`), except under
    brian2cuda, whose synapse code reads the device's ``defaultclock`` by name
    (:class:`~fbsnn_brian.build.devices.cuda.CUDARules`).
    """
    return CUDARules() if on_cuda() else DeviceRules()


def training_rules() -> TrainingRules:
    """The rules of the Brian2 device now set, for the training definition.

    Brian2's own (:class:`~fbsnn_brian.build.training_rules.TrainingRules`), except under
    brian2cuda (:class:`~fbsnn_brian.build.devices.cuda.CUDATrainingRules`).
    """
    return CUDATrainingRules() if on_cuda() else TrainingRules()
