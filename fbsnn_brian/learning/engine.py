"""The interface the Trainer drives: one training engine per device and rule.

Three engines implement it: :class:`~fbsnn_brian.build.training.TrainingSimulation` (SPIDE
inside the simulation, runtime and cpp_standalone),
:class:`~fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation` (SPIDE on GeNN) and
:class:`~fbsnn_brian.learning.recorded.RecordedRuleSimulation` (a recorded rule: the free
phase simulated, the update computed in numpy). A new device or rule adds an engine that
satisfies :class:`TrainingEngine`; the Trainer needs nothing else.

Every engine can be compiled ahead of its first chunk (:meth:`TrainingEngine.compile`, the
:class:`~fbsnn_brian.build.devices.standalone.Compilable` interface that
:func:`~fbsnn_brian.build.devices.standalone.compile_all` drives); an engine with nothing to
compile ahead returns None.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.build.devices.standalone import Compilable, StandaloneBuild
from fbsnn_brian.build.training import ChunkStatistics

__all__ = ["TrainingEngine"]

FloatArray = NDArray[np.float64]


@runtime_checkable
class TrainingEngine(Compilable, Protocol):
    """Trains a network in place, one chunk of samples at a time.

    Attributes
    ----------
    compile_time_s : float
        Seconds spent generating and compiling (0 before the first chunk, and on runtime).
    build_cache_hit : bool
        Whether the compiled build came from the build cache.
    dropout_generator : numpy.random.Generator
        The generator of the training-only input dropout, checkpointed with the run.
    optimizer_state : dict of str to ndarray
        Momentum velocities and mini-batch sums carried from chunk to chunk (read and set
        by checkpoints and by the Trainer when it undoes an interrupted chunk).
    """

    @property
    def compile_time_s(self) -> float: ...

    @property
    def build_cache_hit(self) -> bool: ...

    @property
    def dropout_generator(self) -> np.random.Generator: ...

    @property
    def optimizer_state(self) -> dict[str, FloatArray]: ...

    @optimizer_state.setter
    def optimizer_state(self, state: dict[str, FloatArray]) -> None: ...

    def compile(self, *, check_only: bool = False) -> StandaloneBuild | None:
        """Compile the engine's standalone build now, or only check it (None: nothing to).

        See :meth:`~fbsnn_brian.build.devices.standalone.Compilable.compile`.
        """
        ...

    def train_chunk(
        self,
        inputs: FloatArray,
        labels: NDArray[np.int64],
        learning_rate: float | FloatArray,
        apply_after: NDArray[np.bool_] | None = None,
    ) -> ChunkStatistics:
        """Present ``inputs`` once, in order, applying the rule's updates; update the network."""
        ...
