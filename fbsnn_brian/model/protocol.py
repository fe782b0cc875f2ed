"""Protocols: the schedule of phases that each sample goes through.

A :class:`Protocol` is a plain, validated description; :mod:`fbsnn_brian.build.free_run` turns it
into
one Brian2 simulation in which a chunk of samples is presented back to back, each sample
running through the protocol's phases in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brian2 import Quantity, second

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.validation import check_duration, describe

__all__ = ["FreePhase", "Protocol"]


@dataclass(frozen=True)
class FreePhase:
    """The free (forward) phase: the network runs on the input until its rates settle.

    Parameters
    ----------
    duration : Quantity
        Length of the phase (a Brian2 time, e.g. ``30 * ms``); the average rate of each neuron
        is its spike count divided by ``duration / tau``.

    Examples
    --------
    >>> from brian2 import ms
    >>> FreePhase(duration=30 * ms)
    FreePhase(duration=30. * msecond)
    """

    duration: Quantity
    name = "free"

    def __post_init__(self) -> None:
        check_duration("FreePhase", "duration", self.duration)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description of the phase (times in seconds)."""
        return {"phase": self.name, "duration_s": float(self.duration / second)}


class Protocol:
    """An ordered list of phases run on every sample, and the plasticity applied after them.

    Parameters
    ----------
    phases : sequence of phases
        ``[FreePhase(...)]`` (simulation only) or ``[FreePhase(...), PerturbedPhase(...)]``
        (learning).
    plasticity : SPIDEPlasticity, optional
        The learning rule; requires a perturbed phase.

    Examples
    --------
    >>> from brian2 import ms
    >>> Protocol([FreePhase(duration=30 * ms)]).phase_names
    ('free',)
    >>> Protocol([FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
    ...          plasticity=SPIDEPlasticity()).phase_names
    ('free', 'perturbed')
    """

    def __init__(
        self,
        phases: Sequence[FreePhase | PerturbedPhase],
        *,
        plasticity: SPIDEPlasticity | None = None,
    ) -> None:
        if isinstance(phases, (FreePhase, PerturbedPhase)):
            phases = [phases]
        if not isinstance(phases, Sequence) or len(phases) == 0:
            raise ValidationError(
                f"Protocol: phases must be a non-empty list such as [FreePhase(duration=30*ms)], "
                f"got {describe(phases)}."
            )
        kinds = [type(p).__name__ for p in phases]
        if kinds not in (["FreePhase"], ["FreePhase", "PerturbedPhase"]):
            raise ValidationError(
                f"Protocol: phases must be [FreePhase] or [FreePhase, PerturbedPhase], got {kinds}."
            )
        if plasticity is not None and not isinstance(plasticity, SPIDEPlasticity):
            raise ValidationError(
                "Protocol: plasticity must be a SPIDEPlasticity or None, got "
                f"{describe(plasticity)}."
            )
        if plasticity is not None and len(phases) < 2:
            raise ValidationError(
                "Protocol: plasticity needs a PerturbedPhase after the FreePhase to compute the "
                "error rates it learns from."
            )
        self.phases = tuple(phases)
        self.plasticity = plasticity

    @property
    def perturbed_phase(self) -> PerturbedPhase | None:
        """The perturbed phase, or None for a free-phase-only protocol."""
        phase = self.phases[-1]
        return phase if isinstance(phase, PerturbedPhase) else None

    @property
    def phase_names(self) -> tuple[str, ...]:
        """Names of the phases, in order."""
        return tuple(phase.name for phase in self.phases)

    @property
    def free_phase(self) -> FreePhase:
        """The free phase of the protocol."""
        phase = self.phases[0]
        assert isinstance(phase, FreePhase)
        return phase

    @property
    def sample_duration(self) -> Quantity:
        """Total simulated time per sample."""
        total = 0 * second
        for phase in self.phases:
            total = total + phase.duration
        return total

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description of the schedule and the plasticity."""
        return {
            "phases": [phase.describe() for phase in self.phases],
            "plasticity": None if self.plasticity is None else self.plasticity.describe(),
        }

    def to_json(self) -> str:
        """The schedule as a JSON string (for provenance attributes)."""
        return json.dumps(self.describe(), sort_keys=True)

    def __repr__(self) -> str:
        return f"Protocol({list(self.phases)!r}, plasticity={self.plasticity!r})"
