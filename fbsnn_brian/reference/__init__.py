"""Numpy reference of the rate model, IDE gradients and discrete-time SPIDE.

This module is the ground truth the Brian2 simulations are checked against. It has no
Brian2 import: everything here is plain linear algebra on firing rates, plus a
discrete-time (one step = one time unit tau) simulation of the integrate-and-fire
forward phase and of the ternary error units of the SPIDE backward phase.

Mapping between the paper symbols and the names used in code (see docs/algorithm.rst):

==========  =========================================  ============================
symbol      meaning                                    name in code
==========  =========================================  ============================
x           input vector of one sample                 ``x``
F           input weights onto layer 1                 ``RateModel.input_weights``
W^(l+1)     weights from layer l to layer l+1          ``RateModel.forward_weights``
W^fb        feedback weights from layer N to layer 1   ``RateModel.feedback_weights``
b^l         bias current of layer l                    ``RateModel.biases``
C, d        linear readout o = C a^N + d               ``readout_weights``, ``readout_bias``
theta       reset step, phi(z) = clip(z/theta, 0, 1)   ``RateModel.theta``
z^l         preactivation (input current) of layer l   :func:`preactivations`
a^l         firing rate, spikes per tau                ``rates``
m^l         gate 1[0 < z^l/theta < 1]                  ``gates``
g           dL/da^N                                    :func:`output_error`
beta^l      adjoint (IDE) or error-unit rate (SPIDE)   ``adjoint``, ``beta``
==========  =========================================  ============================

The equilibrium is

    a^1 = phi(W^fb a^N + F x + b^1),    a^(l+1) = phi(W^(l+1) a^l + b^(l+1)),

and with D^l = diag(m^l) / theta the IDE adjoint solves the linear system

    beta^N = g + (W^fb)^T D^1 beta^1,    beta^l = (W^(l+1))^T D^(l+1) beta^(l+1)  (l < N),

(for one layer: beta = g + W^T D beta), which is solved exactly with
:func:`numpy.linalg.solve`. Every parameter gradient is then a local outer product of the
post-synaptic ``D beta`` and the pre-synaptic rate.

Discrete-time conventions: :func:`simulate_if` starts membranes at 0 with threshold
``v_th`` and subtractive reset theta, and by default every layer integrates the spikes of
the previous step; :func:`spide_adjoint` returns the raw signed event rate, which
approximates ``scale`` times the IDE adjoint; :func:`spide_update` divides by ``scale``.

The modules, bottom up: :mod:`~fbsnn_brian.reference.rate_model` (:class:`RateModel`,
:class:`Gradients`), :mod:`~fbsnn_brian.reference.equilibrium` (fixed point, preactivations,
gates), :mod:`~fbsnn_brian.reference.ide` (readout, loss, exact IDE adjoint and gradients)
and :mod:`~fbsnn_brian.reference.discrete` (discrete-time IF and SPIDE);
:mod:`~fbsnn_brian.reference.measured` replaces the clamp by a measured transfer function.
Every public name of the model is re-exported here; the argument checks and building blocks
the modules share (:func:`~fbsnn_brian.reference.rate_model.check_sample`,
:func:`~fbsnn_brian.reference.ide.assemble_gradients`, ...) are public in their own module only.
"""

from __future__ import annotations

from fbsnn_brian.reference.discrete import (
    UpdateOrder,
    simulate_if,
    spide_adjoint,
    spide_gradients,
    spide_update,
)
from fbsnn_brian.reference.equilibrium import (
    fixed_point,
    fixed_point_batch,
    gates_from_preactivations,
    gates_from_rates,
    preactivations,
)
from fbsnn_brian.reference.ide import (
    LossKind,
    ide_gradients,
    ide_gradients_at_rates,
    ide_gradients_batch,
    loss,
    output_error,
    readout,
    readout_error,
)
from fbsnn_brian.reference.measured import (
    TransferFunction,
    measured_fixed_point,
    measured_ide_gradients,
)
from fbsnn_brian.reference.rate_model import (
    Gradients,
    RateModel,
    cosine_similarity,
    spectral_loop_gain,
)

__all__ = [
    "Gradients",
    "LossKind",
    "RateModel",
    "TransferFunction",
    "UpdateOrder",
    "cosine_similarity",
    "fixed_point",
    "fixed_point_batch",
    "gates_from_preactivations",
    "gates_from_rates",
    "ide_gradients",
    "ide_gradients_at_rates",
    "ide_gradients_batch",
    "loss",
    "measured_fixed_point",
    "measured_ide_gradients",
    "output_error",
    "preactivations",
    "readout",
    "readout_error",
    "simulate_if",
    "spectral_loop_gain",
    "spide_adjoint",
    "spide_gradients",
    "spide_update",
]
