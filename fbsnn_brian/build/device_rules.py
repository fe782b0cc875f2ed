"""What a device may change in the one definition of each network: Brian2's own rules.

The free phase (:class:`~fbsnn_brian.build.free_phase_network.FreePhaseNetwork`) and SPIDE
training (:class:`~fbsnn_brian.build.training_network.TrainingNetwork`) are each defined once,
for every device. Where devices differ in what they can express, the definition does not ask
which device it builds for: it asks a :class:`DeviceRules` object to realise the construct.
:class:`DeviceRules` realises every construct the way Brian2's own devices do (runtime,
cpp_standalone, and brian2cuda's cuda_standalone, which generates the same objects); a device
that forbids a construct subclasses it in its own module under ``build/devices/`` and
overrides only that construct, naming the rule that forces the change. The dependency runs
one way: device modules import the definitions and this module, never the reverse.

The constructs, and the methods that realise them:

* clocks: a named clock for the per-step updates and one whose step is a whole sample
  (:meth:`DeviceRules.step_clock`, :meth:`DeviceRules.sample_clock`,
  :meth:`DeviceRules.readout_clock`);
* an operation at every sample start (:meth:`DeviceRules.sample_start`);
* the weight a delivered spike adds (:meth:`DeviceRules.delivered`);
* layer 1's input current ``F x`` computed once per sample (:meth:`DeviceRules.current_input`);
* what is done to the finished network before it runs (:meth:`DeviceRules.finish`).

The training network's device-specific constructs are methods of the training rules
(:class:`~fbsnn_brian.build.training_network.TrainingNetwork` documents them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import Clock, Network, NeuronGroup, Synapses, linked_var
from numpy.typing import NDArray

from fbsnn_brian.build.neurons import drive_group_equations

__all__ = ["CurrentInput", "DeviceRules", "assign_arrays"]


def assign_arrays(network: Network, arrays: dict[str, NDArray[np.float64]]) -> None:
    """Set every ``object.variable`` of ``arrays`` on the objects of a Brian2 Network.

    Parameters
    ----------
    network : brian2.Network
        A defined network whose objects have the names the keys use.
    arrays : dict of str to ndarray
        Values by ``'object_name.variable'``, e.g. ``'feedback.w'``; the keys are those that
        the reruns of compiled GeNN projects write (:mod:`fbsnn_brian.build.devices.genn_device`),
        so a build assigns its arrays from the same dictionary a rerun writes.
    """
    for key, values in arrays.items():
        name, variable = key.split(".")
        setattr(network[name], variable, values)


@dataclass
class CurrentInput:
    """How layer 1 receives the input current ``F x`` (:meth:`DeviceRules.current_input`).

    Attributes
    ----------
    variable : str
        The name of the current in layer 1's equations.
    linked : bool
        Whether layer 1 reads it through a linked variable (``variable : 1 (linked)``).
    """

    variable: str
    linked: bool


class DeviceRules:
    """Realises the constructs of a network definition as Brian2's own devices can.

    Every method has the realisation that runtime, cpp_standalone and cuda_standalone accept.
    A device module subclasses this class and overrides the constructs its device forbids
    (module docstring); the definitions call nothing else device-specific.
    """

    # ------------------------------------------------------------------ clocks
    def step_clock(self, dt: Any) -> Any:
        """The clock of the per-step updates of a build (None: Brian2's defaultclock).

        A named clock: every object of a build has a fixed name, so a second build of the
        same configuration generates the same code and finds its compiled binary in the
        build cache.
        """
        return Clock(dt=dt, name="step_clock")

    def sample_clock(self, sample_duration: Any) -> Any:
        """A clock that ticks once per sample, for what changes only at a sample start."""
        return Clock(dt=sample_duration, name="sample_clock")

    def readout_clock(self, readout_duration: Any) -> Any:
        """A clock that ticks at both phase boundaries of every sample (training only)."""
        return Clock(dt=readout_duration, name="readout_clock")

    # ------------------------------------------------------------------ operations
    def sample_start(self, owner: str, sample_clock: Any, sample_duration: Any) -> dict[str, Any]:
        """``run_regularly`` arguments of ``owner``'s operation at every sample start.

        Parameters
        ----------
        owner : str
            The name of the group that runs the operation.
        sample_clock : brian2.Clock
            The clock of :meth:`sample_clock`.
        sample_duration : brian2.Quantity
            One sample's duration.
        """
        return {"clock": sample_clock, "name": f"{owner}_sample_start"}

    def delivered(self, weight: str) -> str:
        """The weight a spike adds to its target when it is delivered."""
        return weight

    def current_input(self) -> CurrentInput:
        """The variable that carries ``F x`` into layer 1, and whether it is linked."""
        return CurrentInput(variable="I_input", linked=True)

    def current_input_path(
        self,
        stimulus: NeuronGroup,
        first: NeuronGroup,
        *,
        sample_clock: Any,
        namespace: dict[str, Any],
    ) -> tuple[Synapses, list[NeuronGroup]]:
        """The synapses that compute ``F x`` once per sample, and any group they need.

        Here a group ``drive`` (one neuron per layer-1 neuron) sums ``w x`` over the input
        synapses on the sample clock, and layer 1 reads the sum through a linked variable:
        ``F x`` is computed once per sample instead of at every step.
        """
        drive = NeuronGroup(len(first), drive_group_equations(), clock=sample_clock, name="drive")
        synapses = Synapses(
            stimulus,
            drive,
            "w : 1\nI_post = w * x_pre : 1 (summed)",
            clock=sample_clock,
            name="input_synapses",
        )
        first.I_input = linked_var(drive, "I")
        return synapses, [drive]

    # ------------------------------------------------------------------ the network
    def finish(self, network: Network) -> None:
        """Adapt the finished network before it runs (nothing on Brian2's devices)."""
