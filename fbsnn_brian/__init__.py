"""fbsnn_brian: feedback spiking neural networks in Brian2, trained with SPIDE.

Define feedback spiking networks as biophysically explicit Brian2 models that run in
continuous time, simulate them through protocol objects (free and perturbed phases), check
them against an exact numpy reference of IDE, and export every spike to xarray.
"""

from fbsnn_brian.biophysics import Biophysics
from fbsnn_brian.errors import DeviceError, FbsnnError, NumericalError, ValidationError
from fbsnn_brian.export import (
    Population,
    SpikeRecording,
    describe_dataset,
    load_recording,
    read_dataset,
    write_dataset,
)
from fbsnn_brian.learning import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.model import FeedbackNetwork
from fbsnn_brian.protocol import FreePhase, Protocol
from fbsnn_brian.rules import (
    SPIDE,
    STRSBP,
    ExactIDE,
    LearningRule,
    NeighbourhoodAggregation,
    SpikeBasedBP,
)
from fbsnn_brian.training import Trainer

__version__ = "0.1.0"

__all__ = [
    # model and protocol
    "FeedbackNetwork",
    "Biophysics",
    "FreePhase",
    "PerturbedPhase",
    "Protocol",
    "SPIDEPlasticity",
    # learning
    "Trainer",
    "LearningRule",
    "SPIDE",
    "ExactIDE",
    "STRSBP",
    "NeighbourhoodAggregation",
    "SpikeBasedBP",
    # results
    "Population",
    "SpikeRecording",
    "describe_dataset",
    "load_recording",
    "read_dataset",
    "write_dataset",
    # errors
    "FbsnnError",
    "ValidationError",
    "DeviceError",
    "NumericalError",
    "__version__",
]
