"""Baseline spike-based learning rules, computed from the recorded free phase of one sample.

Three published methods, adapted to continuous time and to feedback networks, for a
side-by-side comparison with SPIDE (docs/baselines.rst). Each takes the network's
:class:`~fbsnn_brian.reference.RateModel`, the free-phase spikes of one sample
(:class:`SampleSpikes`), its input and label, and the neuron constants, and returns a
:class:`~fbsnn_brian.reference.Gradients` comparable with the exact IDE gradient
(:func:`~fbsnn_brian.reference.ide_gradients_at_rates` at the recorded rates):

* :func:`st_rsbp_gradients`: ST-RSBP (Zhang & Li 2019), spike-train level recurrent
  backprop through a linearised count model, the loop solved as one linear system;
* :func:`na_gradients`: NA (Yang, Zhang & Li 2021), flip-neighbour finite differences on a
  time grid, backprop through time around the loop;
* :func:`spike_bp_gradients`: spike-based BP with a leak-corrected derivative (Lee et al.
  2020), the loop solved as a fixed point.

The modules: :mod:`~fbsnn_brian.rules.baselines.spike_trains` (the inputs: spikes and neuron
constants), :mod:`~fbsnn_brian.rules.baselines.recorded_sample` (the steps the three rules
share: checks, output error, assembling the gradients),
:mod:`~fbsnn_brian.rules.baselines.s_psps` and :mod:`~fbsnn_brian.rules.baselines.st_rsbp`
(ST-RSBP), :mod:`~fbsnn_brian.rules.baselines.neighbourhood` (NA) and
:mod:`~fbsnn_brian.rules.baselines.spike_bp` (spike-based BP).

Each function's docstring has a runnable example. (This package docstring has none on
purpose: Brian2's doctest collector, active whenever ``brian2.tests`` is imported in the same
pytest session, cannot name the tests of a package ``__init__``.)
"""

from fbsnn_brian.rules.baselines.neighbourhood import GridRecord, grid_model, na_gradients
from fbsnn_brian.rules.baselines.spike_bp import leak_corrected_derivatives, spike_bp_gradients
from fbsnn_brian.rules.baselines.spike_trains import NeuronConstants, SampleSpikes, psp_kernel
from fbsnn_brian.rules.baselines.st_rsbp import (
    CorrectionTable,
    CountModel,
    correction_table,
    count_model,
    st_rsbp_gradients,
)

__all__ = [
    # inputs
    "NeuronConstants",
    "SampleSpikes",
    "psp_kernel",
    # ST-RSBP
    "CorrectionTable",
    "CountModel",
    "correction_table",
    "count_model",
    "st_rsbp_gradients",
    # NA
    "GridRecord",
    "grid_model",
    "na_gradients",
    # spike-based BP
    "leak_corrected_derivatives",
    "spike_bp_gradients",
]
