"""fbsnn_brian: feedback spiking neural networks in Brian2, trained with SPIDE.

Define feedback spiking networks as biophysically explicit Brian2 models that run in
continuous time, simulate them through protocol objects (free and perturbed phases), check
them against an exact numpy reference of IDE, and export every spike to xarray.

The package's folders are its layers, bottom up: ``model`` (descriptions), ``reference``
(numpy only), ``io`` (plain data in and out), ``build`` (Brian2 equations and devices),
``rules``, ``learning``, ``analysis``, ``experiments`` and ``cli``. The names below are
imported on first use, so that ``import fbsnn_brian.reference`` loads numpy and nothing of
Brian2.
"""

from __future__ import annotations

import importlib
from typing import Any

from fbsnn_brian.errors import DeviceError, FbsnnError, NumericalError, ValidationError
from fbsnn_brian.version import __version__

# public name -> module that defines it
_EXPORTS = {
    "FeedbackNetwork": "fbsnn_brian.model.network",
    "Biophysics": "fbsnn_brian.model.biophysics",
    "FreePhase": "fbsnn_brian.model.protocol",
    "Protocol": "fbsnn_brian.model.protocol",
    "PerturbedPhase": "fbsnn_brian.model.plasticity",
    "SPIDEPlasticity": "fbsnn_brian.model.plasticity",
    "simulate": "fbsnn_brian.build.free_run",
    "Trainer": "fbsnn_brian.learning.trainer",
    "LearningRule": "fbsnn_brian.rules.learning_rules",
    "SPIDE": "fbsnn_brian.rules.learning_rules",
    "ExactIDE": "fbsnn_brian.rules.learning_rules",
    "STRSBP": "fbsnn_brian.rules.learning_rules",
    "NeighbourhoodAggregation": "fbsnn_brian.rules.learning_rules",
    "SpikeBasedBP": "fbsnn_brian.rules.learning_rules",
    "Population": "fbsnn_brian.io.recording",
    "SpikeRecording": "fbsnn_brian.io.recording",
    "describe_dataset": "fbsnn_brian.io.netcdf",
    "load_recording": "fbsnn_brian.io.recording",
    "read_dataset": "fbsnn_brian.io.netcdf",
    "write_dataset": "fbsnn_brian.io.netcdf",
}

__all__ = [
    *_EXPORTS,
    "FbsnnError",
    "ValidationError",
    "DeviceError",
    "NumericalError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fbsnn_brian' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
