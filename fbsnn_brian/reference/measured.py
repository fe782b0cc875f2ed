"""The rate model with a measured transfer function in place of the clamp.

The ideal IF network's rate is ``phi(z) = clip(z / theta, 0, 1)``. A leaky, refractory, noisy
or reset-to-rest neuron has another curve ``a = f(z)``: its stationary rate (spikes per tau)
against a constant input current ``z`` (threshold units per tau, the currents of
:func:`~fbsnn_brian.reference.preactivations`). :class:`TransferFunction` holds such a curve as
a table (measured by simulating isolated neurons, see
:func:`fbsnn_brian.experiments.transfer.measure_transfer`), interpolated linearly, with the slope
of a local linear fit (the table is measured and has the rate resolution of its simulation).

With ``f`` in place of ``phi``:

* :func:`measured_fixed_point` solves ``a^1 = f(W^fb a^N + F x + b^1)``, ``a^(l+1) = f(W^(l+1)
  a^l + b^(l+1))`` by a damped iteration;
* :func:`measured_ide_gradients` is the exact IDE gradient of the loss at that fixed point: the
  adjoint system of :func:`~fbsnn_brian.reference.ide_gradients` with ``D^l = diag(f'(z^l))``
  instead of ``diag(m^l) / theta``, solved exactly.

For the ideal table (``f = phi``) both equal the clamp model's
(:func:`~fbsnn_brian.reference.fixed_point`, :func:`~fbsnn_brian.reference.ide_gradients`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fbsnn_brian.errors import NumericalError, ValidationError
from fbsnn_brian.reference.equilibrium import layer_preactivations
from fbsnn_brian.reference.ide import ide_gradients_at_rates
from fbsnn_brian.reference.rate_model import (
    FloatArray,
    Gradients,
    LayerArrays,
    RateModel,
    check_label,
    check_sample,
)
from fbsnn_brian.validation import check_finite_array

__all__ = ["TransferFunction", "measured_fixed_point", "measured_ide_gradients"]


@dataclass(frozen=True)
class TransferFunction:
    """A neuron's stationary rate against a constant input current, as a table.

    Parameters
    ----------
    currents : array_like, shape (n,)
        Input currents ``z`` (threshold units per tau), strictly increasing.
    rates : array_like, shape (n,)
        Stationary rates in spikes per tau at those currents.
    slope_window : float
        Half-width (in current units) of the local linear fit that gives the slope; it smooths
        the table's rate resolution (default 0.1).

    Outside the table the rate is held at its end values and the slope is 0.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.linspace(-1.0, 3.0, 81)
    >>> ideal = TransferFunction(z, np.clip(z / 2.0, 0.0, 1.0))
    >>> float(ideal.rate(np.array([0.5]))[0]), round(float(ideal.slope(np.array([0.5]))[0]), 6)
    (0.25, 0.5)
    """

    currents: FloatArray
    rates: FloatArray
    slope_window: float = 0.1

    def __post_init__(self) -> None:
        owner = "TransferFunction"
        currents = check_finite_array(owner, "currents", self.currents, ndim=1)
        rates = check_finite_array(owner, "rates", self.rates, ndim=1, shape=currents.shape)
        if currents.size < 3 or np.any(np.diff(currents) <= 0):
            raise ValidationError(
                f"{owner}: currents must be at least 3 strictly increasing values, got "
                f"{currents.size} values."
            )
        if not np.isfinite(self.slope_window) or self.slope_window <= 0:
            raise ValidationError(
                f"{owner}: slope_window must be a positive number, got {self.slope_window!r}."
            )
        object.__setattr__(self, "currents", currents.copy())
        object.__setattr__(self, "rates", rates.copy())
        object.__setattr__(self, "_slopes", self._fitted_slopes())

    def _fitted_slopes(self) -> FloatArray:
        """Slope of a least-squares line through the table within +- slope_window."""
        z, a = self.currents, self.rates
        slopes = np.empty_like(z)
        for k, centre in enumerate(z):
            near = np.abs(z - centre) <= self.slope_window + 1e-12
            if near.sum() < 2:
                near[max(k - 1, 0) : k + 2] = True
            dz = z[near] - z[near].mean()
            slopes[k] = float(dz @ (a[near] - a[near].mean()) / (dz @ dz))
        return slopes

    def rate(self, currents: Any) -> FloatArray:
        """Interpolated rate at ``currents`` (end values outside the table)."""
        return np.interp(np.asarray(currents, dtype=np.float64), self.currents, self.rates)

    def slope(self, currents: Any) -> FloatArray:
        """Smoothed slope ``f'(z)`` at ``currents`` (0 outside the table)."""
        z = np.asarray(currents, dtype=np.float64)
        inside = (z >= self.currents[0]) & (z <= self.currents[-1])
        slopes: FloatArray = np.interp(z, self.currents, self._slopes)  # type: ignore[attr-defined]
        return np.where(inside, slopes, 0.0)


def _per_layer(owner: str, model: RateModel, transfer: Any) -> tuple[TransferFunction, ...]:
    """One TransferFunction per layer (a single one serves every layer)."""
    if isinstance(transfer, TransferFunction):
        return (transfer,) * model.n_layers
    if (
        isinstance(transfer, (tuple, list))
        and len(transfer) == model.n_layers
        and all(isinstance(item, TransferFunction) for item in transfer)
    ):
        return tuple(transfer)
    raise ValidationError(
        f"{owner}: transfer must be a TransferFunction or one per layer ({model.n_layers}), got "
        f"{type(transfer).__name__}."
    )


def measured_fixed_point(
    model: RateModel,
    x: Any,
    transfer: TransferFunction | Sequence[TransferFunction],
    *,
    damping: float = 0.5,
    tol: float = 1e-10,
    max_iter: int = 20_000,
) -> LayerArrays:
    """Rates a^l with ``a = f(z)`` in every layer, by a damped fixed-point iteration.

    ``transfer`` is one TransferFunction for every layer, or one per layer (a layer's input
    fluctuations change its curve, see :mod:`fbsnn_brian.experiments.alignment`).

    Raises
    ------
    NumericalError
        If the iteration has not settled to ``tol`` after ``max_iter`` steps.
    """
    owner = "measured_fixed_point"
    sample = check_sample(owner, model, x)
    transfers = _per_layer(owner, model, transfer)
    input_current = model.input_weights @ sample + model.biases[0]
    rates: list[FloatArray] = [np.zeros(size) for size in model.layer_sizes]
    change = np.inf
    for _ in range(max_iter):
        currents = layer_preactivations(model, input_current, tuple(rates))
        change = 0.0
        for layer, current in enumerate(currents):
            target = transfers[layer].rate(current)
            step = damping * (target - rates[layer])
            rates[layer] = rates[layer] + step
            change = max(change, float(np.max(np.abs(step))))
        if change < tol:
            return tuple(rates)
    raise NumericalError(
        f"{owner}: the damped iteration did not settle in {max_iter} steps (last change "
        f"{change:.3g}); the loop gain times the transfer slope may exceed 1."
    )


def measured_ide_gradients(
    model: RateModel,
    x: Any,
    y: Any,
    transfer: TransferFunction | Sequence[TransferFunction],
    **kwargs: Any,
) -> Gradients:
    """Exact IDE gradient of the loss of the network with transfer function ``transfer``.

    The fixed point is :func:`measured_fixed_point`; the adjoint and the local gradients are
    those of :func:`~fbsnn_brian.reference.ide_gradients_at_rates` with the gates
    ``m^l = theta f'(z^l)``, so that ``D^l = diag(m^l) / theta = diag(f'(z^l))``.

    Parameters
    ----------
    model : RateModel
    x : array_like, shape (n_inputs,)
    y : int
        Class label.
    transfer : TransferFunction or sequence of TransferFunction
        One for every layer, or one per layer.
    **kwargs
        Passed to :func:`measured_fixed_point`.
    """
    owner = "measured_ide_gradients"
    sample = check_sample(owner, model, x)
    label = check_label(owner, model, y)
    transfers = _per_layer(owner, model, transfer)
    rates = measured_fixed_point(model, sample, transfers, **kwargs)
    currents = layer_preactivations(model, model.input_weights @ sample + model.biases[0], rates)
    gates = tuple(
        model.theta * layer.slope(current)
        for layer, current in zip(transfers, currents, strict=True)
    )
    return ide_gradients_at_rates(model, sample, rates, label, gates=gates)
