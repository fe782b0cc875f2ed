"""The memory a learning rule needs per sample, measured the same way for every rule.

One measure for all rules: the bytes of the arrays that hold one sample's state while the rule
forms that sample's update. Not counted, for any rule: the parameters (weights and biases), the
optimiser state (velocities, gradient sums), the input vector and what a rule computes once and
reuses across samples (ST-RSBP's correction table).

* A recorded rule (IDE, ST-RSBP, NA, spike-based BP) holds the sample's recorded free-phase
  spikes (times and neuron indices, the raster it reads) and the numpy arrays it builds from
  them. The first is the raster's ``nbytes``; the second the peak of the Python allocations
  while the rule computes the gradient (``tracemalloc``), which includes the gradient it
  returns (one array per parameter: the per-sample update a mini-batch averages).
* SPIDE holds a sample's state in the training simulation's state variables: per neuron the
  membranes, counters and times of the layers and the readout's per-class values. Their bytes
  are read from the Brian2 objects of the training network
  (:class:`~fbsnn_brian.build.training_network.TrainingNetwork`): every per-neuron array
  variable of the layer and readout groups, less the parameters (``b``, ``d``), the optimiser
  state (``*_velocity``, ``*_accum``), the chunk's spike and event totals (statistics read
  after the chunk, not used by the update) and Brian2's own per-step event buffers. SPIDE
  forms no gradient array: each synapse applies its update in place.

Both are measured for the free phase of ``T_f`` and of ``2 T_f``, so that a comparison shows
which rules' memory grows with the phase length.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import Protocol
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.learning_rules import LearningRule

__all__ = ["rule_memory_per_sample", "simulation_state_bytes"]

FloatArray = NDArray[np.float64]

# State variables of SPIDE's training groups that are not one sample's state: the parameters
# and the chunk's statistics (the optimiser state is recognised by its suffix).
_NOT_SAMPLE_STATE = frozenset({"b", "d", "spikes_total", "events_total"})
_OPTIMISER_SUFFIXES = ("_velocity", "_accum")


def simulation_state_bytes(network: FeedbackNetwork, protocol: Protocol) -> dict[str, int]:
    """Bytes of each per-sample state variable of SPIDE's training network, by group.

    The training network of one sample is defined (in runtime mode, not run) and every
    per-neuron array variable of its layer and readout groups is read from Brian2 (its size
    times its dtype's itemsize), less the parameters, optimiser state, chunk statistics and
    Brian2's internal buffers (names starting with ``_``), see the module docstring.

    Parameters
    ----------
    network : FeedbackNetwork
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity.

    Returns
    -------
    dict of str to int
        ``'group.variable'`` to bytes.
    """
    from brian2 import TimedArray
    from brian2.utils.logger import catch_logs

    from fbsnn_brian.build.devices.registry import runtime_target
    from fbsnn_brian.build.free_phase_network import whole_steps
    from fbsnn_brian.build.training_network import TrainingNetwork

    owner = "simulation_state_bytes"
    if protocol.perturbed_phase is None or protocol.plasticity is None:
        raise ValidationError(
            f"{owner}: protocol must have a PerturbedPhase and a SPIDEPlasticity, got {protocol!r}."
        )
    free_steps = whole_steps(owner, "FreePhase.duration", protocol.free_phase.duration, network.dt)
    sample_steps = free_steps + whole_steps(
        owner, "PerturbedPhase.duration", protocol.perturbed_phase.duration, network.dt
    )
    one_sample = {
        "sample_inputs": np.zeros((1, network.n_inputs)),
        "sample_labels": np.zeros(1),
        "learning_rates": np.zeros(1),
        "real_samples": np.zeros(1),
        "apply_updates": np.zeros(1),
    }
    # The objects are defined to be measured and never run: Brian2's warning that an object
    # was deleted without having been part of a run is expected here and is caught.
    with runtime_target("numpy"), catch_logs():
        tables = {
            name: TimedArray(values, dt=sample_steps * network.dt, name=name)
            for name, values in one_sample.items()
        }
        objects = TrainingNetwork(
            network, protocol, free_steps=free_steps, sample_steps=sample_steps
        ).define(tables)
        sizes = _state_bytes([*objects.layers, objects.readout])
        del objects, tables
        gc.collect()
    return sizes


def _state_bytes(groups: list[Any]) -> dict[str, int]:
    """Bytes of the per-sample state variables of Brian2 groups, ``'group.variable'``."""
    from brian2.core.variables import ArrayVariable

    sizes: dict[str, int] = {}
    for group in groups:
        for name, variable in group.variables.items():
            if (
                not isinstance(variable, ArrayVariable)
                or variable.scalar
                or variable.read_only
                or variable.size != len(group)
                or name.startswith("_")
                or name in _NOT_SAMPLE_STATE
                or name.endswith(_OPTIMISER_SUFFIXES)
            ):
                continue
            sizes[f"{group.name}.{name}"] = int(variable.size * np.dtype(variable.dtype).itemsize)
    return sizes


def _raster_bytes(spikes: SampleSpikes) -> int:
    return int(sum(t.nbytes + n.nbytes for t, n in zip(spikes.times, spikes.neurons, strict=True)))


def rule_memory_per_sample(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    x: FloatArray,
    y: int,
) -> float:
    """Bytes of one sample's state while ``rule`` forms its update (see the module docstring).

    Parameters
    ----------
    rule : LearningRule
    network : FeedbackNetwork
    protocol : Protocol
        Its free phase sets T_f (SPIDE: with its perturbed phase and plasticity).
    x : ndarray, shape (n_inputs,)
        The sample's input.
    y : int
        Its label.

    Returns
    -------
    float
        Recorded rules: the raster's bytes plus the peak of the rule's allocations (the
        spikes are recorded first and the rule runs once on them before the measurement,
        so that caches it reuses across samples are not counted). SPIDE: the bytes of its
        per-sample state variables (:func:`simulation_state_bytes`).
    """
    if rule.in_simulation:
        return float(sum(simulation_state_bytes(network, protocol).values()))
    recording = simulate(
        network, Protocol([protocol.free_phase]), inputs=x[None, :], device="numpy"
    )
    spikes = SampleSpikes.from_recording(recording, 0)
    rule.gradients(network, spikes, x, y)  # fills the rule's caches
    tracemalloc.start()
    try:
        rule.gradients(network, spikes, x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return float(_raster_bytes(spikes) + peak)
