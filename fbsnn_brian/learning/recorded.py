"""Training with a rule that cannot run inside the simulation (ST-RSBP, NA, spike-based BP, IDE).

:class:`RecordedRuleSimulation` has the chunk interface of
:class:`~fbsnn_brian.build.training.TrainingSimulation`, so the
:class:`~fbsnn_brian.learning.trainer.Trainer` drives both the same way. Per chunk:

1. the free phase of every sample of the chunk runs in ONE Brian2 run with the current
   weights (:class:`~fbsnn_brian.build.free_run.FreeRunSimulation`, compiled once on
   cpp_standalone),
   recording every spike;
2. the rule computes each sample's gradient from its recorded spikes in numpy;
3. the mean gradient of the chunk is applied once (SGD with the protocol's learning rate,
   weight decay on the weights and momentum), then the weights go back to the network
   through its validated setters, Dale's sign projection and the feedback gain cap.

So the chunk is the mini-batch of these rules (``chunk_size`` samples share one update):
unlike SPIDE they are not online. The protocol's perturbed phase is not used.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.build.devices.standalone import StandaloneBuild
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.build.training import ChunkStatistics, drop_inputs
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.reference import Gradients
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.learning_rules import LearningRule

__all__ = ["RecordedRuleSimulation", "gradient_arrays"]

FloatArray = NDArray[np.float64]


def gradient_arrays(gradients: Gradients) -> dict[str, FloatArray]:
    """A gradient by the names of :meth:`FeedbackNetwork.weight_arrays`."""
    arrays = {
        "input_weights": gradients.input_weights,
        "feedback_weights": gradients.feedback_weights,
        "readout_weights": gradients.readout_weights,
        "readout_bias": gradients.readout_bias,
    }
    for k, weights in enumerate(gradients.forward_weights):
        arrays[f"forward_weights_{k}"] = weights
    for k, bias in enumerate(gradients.biases):
        arrays[f"biases_{k}"] = bias
    return arrays


def _pre_layer(name: str, n_layers: int) -> int | None:
    """Layer (0-based) whose neurons send the weights ``name``; None for input and readout."""
    if name == "feedback_weights":
        return n_layers - 1
    if name.startswith("forward_weights_"):
        return int(name.rsplit("_", 1)[1])
    return None


class RecordedRuleSimulation:
    """Chunks of free-phase recordings and numpy updates of one learning rule.

    Parameters
    ----------
    network : FeedbackNetwork
        Trained in place.
    protocol : Protocol
        Its free phase is simulated; its SPIDEPlasticity gives the learning rate (per
        chunk: the mean of the samples' rates), ``weight_decay``, ``momentum``,
        ``max_feedback_gain`` and ``input_dropout``.
    rule : LearningRule
        A rule with a numpy :meth:`~fbsnn_brian.rules.learning_rules.LearningRule.gradients`.
    device, chunk_size, directory
        As for :class:`~fbsnn_brian.build.free_run.FreeRunSimulation`.
    """

    def __init__(
        self,
        network: FeedbackNetwork,
        protocol: Protocol,
        rule: LearningRule,
        *,
        device: str,
        chunk_size: int,
        directory: str | None = None,
    ) -> None:
        assert protocol.plasticity is not None
        self.network = network
        self.protocol = protocol
        self.plasticity = protocol.plasticity
        self.rule = rule
        self.chunk_size = chunk_size
        self._free = FreeRunSimulation(
            network,
            Protocol([protocol.free_phase]),
            device=device,
            chunk_size=chunk_size,
            record_spikes=True,
            directory=directory,
        )
        self._velocity: dict[str, FloatArray] = {}
        self._dropout_rng = np.random.default_rng([network.seed, 7])
        self.gradient_time_s = 0.0

    @property
    def compile_time_s(self) -> float:
        """Compile time of the free-phase build (0 in runtime mode)."""
        return float(self._free.compile_time_s)

    @property
    def build_cache_hit(self) -> bool:
        """Whether the free-phase build reused a compiled binary (False in runtime mode)."""
        return bool(self._free.build_cache_hit)

    @property
    def optimizer_state(self) -> dict[str, FloatArray]:
        """Copies of the momentum velocities (empty without momentum)."""
        return {name: value.copy() for name, value in self._velocity.items()}

    @optimizer_state.setter
    def optimizer_state(self, state: dict[str, FloatArray]) -> None:
        self._velocity = {name: np.array(value) for name, value in state.items()}

    @property
    def dropout_generator(self) -> np.random.Generator:
        """The generator of the input dropout masks."""
        return self._dropout_rng

    def compile(self, *, check_only: bool = False) -> StandaloneBuild | None:
        """Compile the free-phase recording build now, or only check it (None on runtime).

        See :meth:`~fbsnn_brian.build.free_run.FreeRunSimulation.compile`.
        """
        return self._free.compile(check_only=check_only)

    def chunk_gradient(
        self, inputs: FloatArray, labels: NDArray[np.int64]
    ) -> tuple[dict[str, FloatArray], Any]:
        """Mean gradient of the rule over a chunk, and the chunk's free-phase recording."""
        recording = self._free.run(inputs)
        start = time.perf_counter()
        total: dict[str, FloatArray] = {}
        for k in range(len(inputs)):
            spikes = SampleSpikes.from_recording(recording, k)
            arrays = gradient_arrays(
                self.rule.gradients(self.network, spikes, inputs[k], int(labels[k]))
            )
            for name, value in arrays.items():
                total[name] = total[name] + value if name in total else np.array(value)
        self.gradient_time_s += time.perf_counter() - start
        return {name: value / len(inputs) for name, value in total.items()}, recording

    def train_chunk(
        self,
        inputs: FloatArray,
        labels: NDArray[np.int64],
        learning_rate: float | FloatArray,
        apply_after: NDArray[np.bool_] | None = None,
    ) -> ChunkStatistics:
        """Record the chunk's free phase and apply the rule's mean gradient once.

        ``apply_after`` is accepted for interface compatibility and ignored: the chunk is
        the mini-batch of a recorded rule.
        """
        net = self.network
        start = time.perf_counter()
        shown = drop_inputs(
            np.asarray(inputs, dtype=np.float64), self.plasticity.input_dropout, self._dropout_rng
        )
        gradient, recording = self.chunk_gradient(shown, labels)
        eta = float(np.mean(learning_rate))
        decay = self.plasticity.weight_decay
        momentum = self.plasticity.momentum
        updated = {}
        for name, weights in net.weight_arrays().items():
            step = gradient[name] + (decay * weights if "weights" in name else 0.0)
            if momentum > 0:
                velocity = self._velocity.get(name, np.zeros_like(weights))
                velocity = momentum * velocity + step
                self._velocity[name] = velocity
                step = velocity
            new = weights - eta * step
            pre_layer = _pre_layer(name, net.n_layers)
            if pre_layer is not None:
                signs = net.presynaptic_signs(pre_layer)
                # Dale's law as for SPIDE: a weight that would change sign stops at zero
                new = np.where(signs[None, :] * new < 0, 0.0, new)
            updated[name] = new
        net.set_learned_weights(updated, max_gain=self.plasticity.max_feedback_gain)
        layer_rates = [rates.mean() for rates in recording.layer_rates()]
        sizes = net.layer_sizes
        return ChunkStatistics(
            n_samples=len(inputs),
            wall_time_s=time.perf_counter() - start,
            forward_rate=float(
                sum(rate * size for rate, size in zip(layer_rates, sizes, strict=True)) / sum(sizes)
            ),
            backward_rate=0.0,
            layer_forward_rates=tuple(float(rate) for rate in layer_rates),
        )
