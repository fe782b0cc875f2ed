"""brian2genn's rules: what the one network definition changes to build for GeNN.

:class:`GeNNRules` overrides only the constructs of
:class:`~fbsnn_brian.build.device_rules.DeviceRules` that brian2genn 1.7 cannot express, and
each override names the rule that forces it. The free phase
(:class:`~fbsnn_brian.build.free_phase_network.FreePhaseNetwork`) needs these:

* **one clock.** brian2genn runs every group and every synapse on Brian2's defaultclock; only
  a ``run_regularly`` may have a ``dt`` of its own. So there is no step clock and no sample
  clock, and a sample-start operation gets the sample's duration as its ``dt``;
* **named operations.** A ``run_regularly`` whose name lacks ``_run_regularly`` is dropped
  from the generated project without a word, so every operation's name carries it;
* **the forced schedule.** brian2genn runs start, synapses, groups, thresholds, resets, end
  (:data:`~fbsnn_brian.build.devices.genn_device.GENN_SCHEDULE`): a spike of step n - 1 is
  delivered in step n. The deliveries at a sample's first step, which Brian2's default
  schedule makes before the sample-start reset wipes them, are dropped;
* **``int()`` takes a bool.** In GeNN code ``int()`` of any non-zero number gives 1, so it
  may only wrap a comparison: the step within a sample is written
  ``(t / dt + 0.5) % sample_steps`` (half a unit away from every integer it is compared
  with), never ``int(t / dt + 0.5)``;
* **no linked variables.** Layer 1 cannot read ``F x`` from another group; it is a summed
  variable ``I_drive`` of layer 1 itself (named apart from the linked ``I_input`` of the
  other devices), summed at every step. brian2genn allows one summed variable per Synapses,
  onto its postsynaptic group, which this is.

The training network's adaptations are in
:mod:`fbsnn_brian.build.devices.genn_training_network`.
"""

from __future__ import annotations

from typing import Any

from brian2 import Network, NeuronGroup, Synapses

from fbsnn_brian.build.device_rules import CurrentInput, DeviceRules
from fbsnn_brian.build.devices.genn_device import GENN_SCHEDULE

__all__ = ["GeNNRules", "sample_position"]


def sample_position(step_dt: str = "dt") -> str:
    """The position within the sample at step n: ``n % sample_steps + 1/2``.

    Half a unit away from every integer it is compared with, and without ``int()``, which
    in GeNN code takes a bool only.

    Parameters
    ----------
    step_dt : str
        The name of the integration step in the code that uses it (``'dt'``; summed
        variables run as GeNN synapse dynamics, which have no ``dt``: ``'step_dt'`` there).
    """
    return f"((t / {step_dt} + 0.5) % sample_steps)"


class GeNNRules(DeviceRules):
    """The constructs brian2genn 1.7 expresses differently (module docstring)."""

    def step_clock(self, dt: Any) -> Any:
        """None: brian2genn runs every group and synapse on Brian2's defaultclock."""
        return None

    def sample_clock(self, sample_duration: Any) -> Any:
        """None: brian2genn has one clock; per-sample operations get their own ``dt``."""
        return None

    def readout_clock(self, readout_duration: Any) -> Any:
        """None: brian2genn has one clock."""
        return None

    def sample_start(self, owner: str, sample_clock: Any, sample_duration: Any) -> dict[str, Any]:
        """The sample's duration as the operation's own ``dt``, under a name brian2genn keeps.

        A ``run_regularly`` may have a ``dt`` of its own (the one exception to one clock),
        and one whose name lacks ``_run_regularly`` is silently dropped.
        """
        return {"dt": sample_duration, "name": f"{owner}_run_regularly_sample_start"}

    def delivered(self, weight: str) -> str:
        """The weight, except at a sample's first step (the forced schedule delivers late)."""
        return f"{weight} * int({sample_position()} >= 1)"

    def current_input(self) -> CurrentInput:
        """``I_drive``, a summed variable of layer 1 itself (no linked variables)."""
        return CurrentInput(variable="I_drive", linked=False)

    def current_input_path(
        self,
        stimulus: NeuronGroup,
        first: NeuronGroup,
        *,
        sample_clock: Any,
        namespace: dict[str, Any],
    ) -> tuple[Synapses, list[NeuronGroup]]:
        """``F x`` summed onto layer 1 by the input synapses, at every step.

        No linked variables and no clock per group, so no per-sample drive group; one
        summed variable per Synapses, onto its postsynaptic group, is allowed.
        """
        synapses = Synapses(
            stimulus,
            first,
            "w : 1\nI_drive_post = w * x_pre : 1 (summed)",
            namespace=namespace,
            name="input_synapses",
        )
        return synapses, []

    def finish(self, network: Network) -> None:
        """brian2genn's forced schedule, so that a runtime run of the definition equals GeNN's."""
        network.schedule = list(GENN_SCHEDULE)
