"""What each device of the registry builds: its training engine, its evaluator, its project.

The registry (:mod:`fbsnn_brian.build.devices.registry`) says what every device serves; this
module says how each one builds the simulations a caller asks for, so that no caller decides
it by a device's name or kind. :func:`engines_of` gives a registry entry's
:class:`DeviceEngines`:

- Brian2's own devices (runtime, standalone: :class:`Brian2Engines`) train with
  :class:`~fbsnn_brian.build.training.TrainingSimulation`, evaluate with
  :class:`~fbsnn_brian.build.free_run.FreeRunSimulation`, and ``fbsnn build`` generates and
  compiles the training project of a standalone device (configuring brian2cuda first for a GPU
  device);
- GeNN (:class:`GeNNEngines`) trains with
  :class:`~fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`, evaluates with
  :class:`~fbsnn_brian.build.devices.genn_engines.GeNNEvaluation` (a
  :class:`~fbsnn_brian.build.devices.genn_free_run.GeNNFreeRun` project), and ``fbsnn build``
  writes the GeNN project of training without GeNN.

These are the engines of the rules that learn inside the simulation (SPIDE); the recorded rules
have an engine of their own above this layer
(:class:`fbsnn_brian.learning.recorded.RecordedRuleSimulation`), on the devices that train
them (:meth:`~fbsnn_brian.build.devices.registry.Device.check_training`). The engines are built
from the simulations of ``build/``, which ask the registry themselves: that is why they live
here, above the registry, and not in its entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fbsnn_brian.build.devices.cuda import configure_cuda
from fbsnn_brian.build.devices.genn_engines import GeNNEvaluation, GeNNTrainingSimulation
from fbsnn_brian.build.devices.genn_training import GeNNTraining
from fbsnn_brian.build.devices.registry import Device
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol as SimulationProtocol

__all__ = [
    "Brian2Engines",
    "DeviceEngines",
    "Evaluator",
    "GeNNEngines",
    "InSimulationTraining",
    "engines_of",
]

#: A training engine of this layer, for the rules that learn inside the simulation (the chunk
#: interface of :class:`fbsnn_brian.learning.engine.TrainingEngine`).
InSimulationTraining = TrainingSimulation | GeNNTrainingSimulation
#: An evaluator (the ``run`` interface of the Trainer's free-phase evaluation).
Evaluator = FreeRunSimulation | GeNNEvaluation


class DeviceEngines(Protocol):
    """How one device builds the simulations of the Trainer and of ``fbsnn build``."""

    @property
    def device(self) -> Device:
        """The registry entry the engines run on."""
        ...

    def training(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        chunk_size: int,
        directory: str | None,
        use_gpu: bool,
    ) -> InSimulationTraining:
        """The engine that trains ``network`` in place with SPIDE, chunk by chunk.

        Parameters
        ----------
        network : FeedbackNetwork
        protocol : Protocol
            Free phase, perturbed phase and SPIDEPlasticity.
        chunk_size : int
            Samples per run.
        directory : str or None
            Where the project is kept (None: a temporary or cached one).
        use_gpu : bool
            GeNN's CUDA backend (True) or its CPU backend; Brian2's devices ignore it.
        """
        ...

    def evaluation(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        chunk_size: int,
        directory: str | None,
        use_gpu: bool,
    ) -> Evaluator:
        """The free-phase simulation that evaluates ``network`` (rates only, no spikes).

        Parameters as in :meth:`training`; ``protocol`` holds the free phase only.
        """
        ...

    def generate(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        samples: int,
        directory: str,
        compute_capability: Any,
    ) -> dict[str, Any]:
        """Generate (and, where the device compiles, compile) the training project.

        Parameters
        ----------
        network, protocol
            As in :meth:`training`.
        samples : int
            Samples of one run of the project (``fbsnn build --chunk-size``).
        directory : str
            The project directory (kept).
        compute_capability : float or None
            Of a GPU device (:func:`~fbsnn_brian.build.devices.cuda.configure_cuda`).

        Returns
        -------
        dict
            What ``fbsnn build`` reports: ``device``, ``directory``, ``compile_time_s``,
            ``network`` and what the device adds.
        """
        ...


def _architecture(network: FeedbackNetwork) -> str:
    """``'64-32-10'``: the sizes of the input, the hidden layers and the readout."""
    return "-".join(str(n) for n in (network.n_inputs, *network.layer_sizes, network.n_classes))


@dataclass(frozen=True)
class Brian2Engines:
    """Brian2's own devices: runtime code targets and standalone builds (``run_args`` reruns)."""

    device: Device

    def training(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        chunk_size: int,
        directory: str | None,
        use_gpu: bool,
    ) -> InSimulationTraining:
        """A :class:`~fbsnn_brian.build.training.TrainingSimulation` on ``device``."""
        del use_gpu  # a GeNN backend choice
        return TrainingSimulation(
            network, protocol, device=self.device.name, chunk_size=chunk_size, directory=directory
        )

    def evaluation(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        chunk_size: int,
        directory: str | None,
        use_gpu: bool,
    ) -> Evaluator:
        """A :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` on ``device``."""
        del use_gpu  # a GeNN backend choice
        return FreeRunSimulation(
            network,
            protocol,
            device=self.device.name,
            chunk_size=chunk_size,
            record_spikes=False,
            directory=directory,
        )

    def generate(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        samples: int,
        directory: str,
        compute_capability: Any,
    ) -> dict[str, Any]:
        """Generate and compile the standalone training project (a binary there is reused)."""
        target_info: dict[str, Any] = {}
        if self.device.gpu:
            target_info["compute_capability"] = configure_cuda(compute_capability)
        simulation = TrainingSimulation(network, protocol, chunk_size=samples)
        build = simulation.generate(directory, target=self.device.name)
        return {
            "device": self.device.name,
            **target_info,
            "directory": build.directory,
            "compile_time_s": build.compile_time_s,
            "binary_reused": build.cache_hit,
            "reason": build.compile_reason,
            "network": _architecture(network),
        }


@dataclass(frozen=True)
class GeNNEngines:
    """GeNN through brian2genn: projects compiled once and rerun through their array files."""

    device: Device

    def training(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        chunk_size: int,
        directory: str | None,
        use_gpu: bool,
    ) -> InSimulationTraining:
        """A :class:`~fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`."""
        return GeNNTrainingSimulation(
            network, protocol, chunk_size=chunk_size, use_GPU=use_gpu, directory=directory
        )

    def evaluation(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        chunk_size: int,
        directory: str | None,
        use_gpu: bool,
    ) -> Evaluator:
        """A :class:`~fbsnn_brian.build.devices.genn_engines.GeNNEvaluation`.

        It builds a project for the samples of its first call, in a temporary directory, so
        ``chunk_size`` and ``directory`` are not used.
        """
        del chunk_size, directory  # see above
        return GeNNEvaluation(network, protocol, use_GPU=use_gpu)

    def generate(
        self,
        network: FeedbackNetwork,
        protocol: SimulationProtocol,
        *,
        samples: int,
        directory: str,
        compute_capability: Any,
    ) -> dict[str, Any]:
        """Write the whole GeNN training project of ``samples`` samples, without GeNN."""
        del compute_capability  # GeNN chooses its own CUDA target
        start = time.perf_counter()
        project: Path = GeNNTraining(network, protocol).generate(
            [[0.0] * network.n_inputs] * samples, [0] * samples, 0.0, directory
        )
        return {
            "device": self.device.name,
            "directory": str(project),
            "compile_time_s": time.perf_counter() - start,
            "network": _architecture(network),
            "simulation": "training (free phase, perturbed phase, plasticity); generated, "
            "not compiled",
        }


# by Device.kind: Brian2 builds the runtime and standalone devices, brian2genn the GeNN one
_ENGINES: dict[str, type[Brian2Engines] | type[GeNNEngines]] = {
    "runtime": Brian2Engines,
    "standalone": Brian2Engines,
    "genn": GeNNEngines,
}


def engines_of(device: Device) -> DeviceEngines:
    """The engines of a registry entry (as :func:`~.registry.get_device_spec` returns it).

    Examples
    --------
    >>> from fbsnn_brian.build.devices.registry import REGISTRY
    >>> type(engines_of(REGISTRY["genn"])).__name__
    'GeNNEngines'
    """
    return _ENGINES[device.kind](device)
