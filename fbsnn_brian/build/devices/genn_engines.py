"""The Trainer's GeNN adapters: chunked SPIDE training and evaluation on GeNN.

:class:`~fbsnn_brian.learning.trainer.Trainer` with ``device='genn'`` drives these two objects
through the interfaces of :class:`~fbsnn_brian.build.training.TrainingSimulation`
(``train_chunk``) and :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` (``run``). Each
compiles its GeNN project once, on its first call, and reruns the binary afterwards
(:mod:`fbsnn_brian.build.devices.genn_device`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import weakref
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.build.devices.genn_device import GeNNBinary
from fbsnn_brian.build.devices.genn_free_run import GeNNFreeRun
from fbsnn_brian.build.devices.genn_training import GeNNTraining, GeNNTrainingResult
from fbsnn_brian.build.devices.standalone import StandaloneBuild
from fbsnn_brian.build.training import ChunkStatistics
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol

__all__ = ["GeNNEvaluation", "GeNNTrainingSimulation"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


class GeNNTrainingSimulation:
    """The chunk interface of :class:`~fbsnn_brian.build.training.TrainingSimulation` on GeNN.

    Used by :class:`~fbsnn_brian.learning.trainer.Trainer` with ``device='genn'``. The first chunk
    builds a GeNN project for ``chunk_size`` samples
    (:meth:`~fbsnn_brian.build.devices.genn_training.GeNNTraining.build`); every later chunk
    reruns its binary with new input files
    (:meth:`~fbsnn_brian.build.devices.genn_training.GeNNTraining.rerun`), so the project is
    compiled once, and the feedback gain cap is applied after every chunk, as on
    cpp_standalone.

    Parameters
    ----------
    network : FeedbackNetwork
    protocol : Protocol
    chunk_size : int
        Samples per GeNN run (shorter chunks are padded with samples that change nothing).
    use_GPU : bool
        GeNN's CUDA backend (True) or its CPU backend.
    directory : str, optional
        Where the GeNN project is kept (default: a temporary directory, removed with this
        object).
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        chunk_size: int = 200,
        use_GPU: bool = True,
        directory: str | None = None,
    ) -> None:
        self.training = GeNNTraining(network, protocol)
        self.chunk_size = chunk_size
        self.use_GPU = bool(use_GPU)
        self.directory = directory
        self.compile_time_s = 0.0
        self.build_cache_hit = False  # GeNN builds are not cached: every build compiles
        #: the result of the last chunk
        self.last_result: GeNNTrainingResult | None = None
        self._binary: GeNNBinary | None = None
        self._dropout_rng = np.random.default_rng([network.seed, 7])

    @property
    def optimizer_state(self) -> dict[str, FloatArray]:
        """Always empty: GeNN training is plain online SGD (no state between chunks)."""
        return {}

    @optimizer_state.setter
    def optimizer_state(self, state: dict[str, FloatArray]) -> None:
        if state:
            raise ValidationError(
                "GeNNTrainingSimulation: a checkpoint with optimizer state (momentum or "
                f"mini-batch sums: {sorted(state)}) cannot be resumed on GeNN, which trains "
                "with plain online SGD."
            )

    @property
    def dropout_generator(self) -> np.random.Generator:
        """Unused (input dropout is refused on GeNN); kept for checkpoints."""
        return self._dropout_rng

    def compile(self, *, check_only: bool = False) -> StandaloneBuild | None:
        """Nothing to compile ahead: the GeNN project is built by the first chunk (None).

        Its size is that of a chunk, and brian2genn compiles it from a run with that chunk's
        inputs (:meth:`~fbsnn_brian.build.devices.genn_training.GeNNTraining.build`).
        """
        del check_only  # nothing is generated before the first chunk
        return None

    def train_chunk(
        self,
        inputs: FloatArray,
        labels: NDArray[np.int64],
        learning_rate: float | FloatArray,
        apply_after: NDArray[np.bool_] | None = None,
    ) -> ChunkStatistics:
        """Train on ``inputs`` (at most ``chunk_size`` samples); return ChunkStatistics."""
        del apply_after  # batch_size is 1 on GeNN: every sample's update is applied
        self.training.network.check_invariants()
        start = time.perf_counter()
        if self._binary is None:
            directory = self.directory
            if directory is None:
                directory = tempfile.mkdtemp(prefix="fbsnn_genn_")
                weakref.finalize(self, shutil.rmtree, directory, True)
            result, self._binary = self.training.build(
                inputs,
                labels,
                learning_rate,
                size=self.chunk_size,
                directory=directory,
                use_GPU=self.use_GPU,
            )
            # code generation and GeNN's compilation: everything but the first run's loop
            self.compile_time_s = result.build_time_s - result.simulation_time_s
        else:
            result = self.training.rerun(self._binary, inputs, labels, learning_rate)
        self.last_result = result
        logger.debug(
            "GeNN chunk of %d samples: %.2f s, of which %.2f s simulation; transport mismatch %.3g",
            len(inputs),
            result.build_time_s,
            result.simulation_time_s,
            result.transport_mismatch,
        )
        return ChunkStatistics(
            n_samples=result.n_samples,
            wall_time_s=time.perf_counter() - start,
            forward_rate=result.forward_rate,
            backward_rate=result.backward_rate,
            layer_forward_rates=result.layer_forward_rates,
        )


class GeNNEvaluation:
    """The ``run`` interface of :class:`~fbsnn_brian.build.free_run.FreeRunSimulation` on GeNN.

    The first call builds a :class:`~fbsnn_brian.build.devices.genn_free_run.GeNNFreeRun`
    project for its number of samples (rates only); later calls with as many samples or fewer
    rerun its binary with the network's current weights, and a longer call builds again.
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        *,
        use_GPU: bool = True,
    ) -> None:
        self.free_run = GeNNFreeRun(network, protocol, record_spikes=False)
        self.use_GPU = bool(use_GPU)
        self._binary: GeNNBinary | None = None

    def compile(self, *, check_only: bool = False) -> StandaloneBuild | None:
        """Nothing to compile ahead: the project is built for the samples of the first call."""
        del check_only  # nothing is generated before the first call
        return None

    def run(self, inputs: Any) -> Any:
        """Free phase of every sample; a SpikeRecording."""
        if self._binary is not None and len(inputs) <= self._binary.size:
            return self.free_run.rerun(self._binary, inputs)
        directory = tempfile.mkdtemp(prefix="fbsnn_genn_evaluation_")
        weakref.finalize(self, shutil.rmtree, directory, True)
        recording, self._binary = self.free_run.build(
            inputs, directory=directory, use_GPU=self.use_GPU
        )
        return recording
