"""Learning rules behind one interface (:mod:`fbsnn_brian.rules.learning_rules`) and the
baselines they compute their updates with (:mod:`fbsnn_brian.rules.baselines`).
"""

from fbsnn_brian.rules.learning_rules import (
    RULES,
    SPIDE,
    STRSBP,
    ExactIDE,
    LearningRule,
    NeighbourhoodAggregation,
    SpikeBasedBP,
    rule_from_name,
)

__all__ = [
    "RULES",
    "SPIDE",
    "STRSBP",
    "ExactIDE",
    "LearningRule",
    "NeighbourhoodAggregation",
    "SpikeBasedBP",
    "rule_from_name",
]
