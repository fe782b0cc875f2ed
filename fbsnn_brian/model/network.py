"""FeedbackNetwork: a validated description of a feedback spiking network.

Symbols of docs/algorithm.rst (section "Symbols in the code") and the names used here:

======================  ===============================  ==========================
paper                   attribute                        shape
======================  ===============================  ==========================
F                       ``input_weights``                (n_1, n_inputs)
W^(l+1)                 ``forward_weights[l-1]``         (n_(l+1), n_l)
W^fb                    ``feedback_weights``             (n_1, n_N)
b^l                     ``biases[l-1]``                  (n_l,)
C, d                    ``readout_weights``, ``readout_bias``  (n_classes, n_N), (n_classes,)
V_th, theta             ``v_threshold``, ``theta``       dimensionless
tau                     ``tau``                          time (the rate unit)
======================  ===============================  ==========================

Membrane potentials, thresholds and weights are dimensionless (in units of the threshold scale);
rates are in spikes per ``tau`` so that a rate of 1 is the maximum rate ``1/tau``.

The weights, their initialisation and their invariants are those of the base class
:class:`~fbsnn_brian.model.weights.NetworkWeights`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import Quantity, ms, second
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.files import read_npz, write_npz_atomically
from fbsnn_brian.model.biophysics import Biophysics
from fbsnn_brian.model.weights import NetworkWeights
from fbsnn_brian.reference import RateModel
from fbsnn_brian.validation import (
    check_choice,
    check_finite_array,
    check_positive_float,
    check_positive_int,
    describe,
)

__all__ = ["INPUT_CODINGS", "NEURON_MODELS", "RATE_ESTIMATES", "FeedbackNetwork"]

NEURON_MODELS = ("if", "lif", "alif")
RATE_ESTIMATES = ("average", "exponential")
INPUT_CODINGS = ("current", "spikes")

FloatArray = NDArray[np.float64]


def _check_time(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> Quantity:
    if not isinstance(value, Quantity) or value.dim != second.dim:
        raise ValidationError(
            f"{owner}: {name} must be a Brian2 time quantity such as 1*ms, got {describe(value)}."
        )
    seconds = float(value / second)
    if (
        value.size != 1
        or not np.isfinite(seconds)
        or seconds < 0
        or (seconds == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"{owner}: {name} must be a finite time {bound}, got {value!r}.")
    return value


# largest number of weights a network may have (8 bytes each, a few copies while training)
MAX_WEIGHTS = 200_000_000


class FeedbackNetwork(NetworkWeights):
    """A feedback spiking neural network: layers, neuron model, weights.

    Layer 1 receives the input through ``input_weights`` (F); layer l feeds layer l+1 through
    ``forward_weights``; the last layer feeds back to layer 1 through ``feedback_weights``
    (with one layer this is a recurrent matrix onto itself). A non-spiking linear readout
    ``o = C a + d`` of the last layer's rates gives the class scores. With the IF neuron and
    the subtractive reset, average rates converge to the fixed point
    ``a = clip((W a + F x + b) / theta, 0, 1)`` (docs/algorithm.rst, section "The network
    and its fixed point").

    The weights keep three invariants: every array has its shape and is finite, the weights
    leaving a layer have the signs of Dale's law (``biophysics.excitatory_fraction``), and the
    loop gain (:meth:`loop_gain`) stays below 1. The properties (``input_weights``,
    ``forward_weights``, ``feedback_weights``, ``biases``, ``readout_weights``,
    ``readout_bias``) and :meth:`weight_arrays` return read-only views: an in-place edit such as
    ``net.feedback_weights[:] = 10`` raises numpy's ``ValueError: assignment destination is
    read-only``. Assign a new array instead (``net.feedback_weights = 0.5 *
    net.feedback_weights``): the setters copy and validate it and raise a ValidationError that
    names the parameter and the value. The ``forward_weights`` setter checks shapes and signs
    but not the loop gain, because a learning step sets the forward weights before it caps the
    feedback (:meth:`set_learned_weights` does both at once); :meth:`check_invariants`, which
    the simulations call before they start, checks all three.

    Parameters
    ----------
    n_inputs : int
        Number of input features (each in [0, 1]).
    layer_sizes : sequence of int
        Neurons per spiking layer. One layer: recurrent feedback onto itself; several: a
        feed-forward chain with feedback from the last layer to the first.
    n_classes : int
        Number of readout units (classes).
    neuron : {'if', 'lif', 'alif'}
        Integrate-and-fire; leaky integrate-and-fire with membrane time constant ``tau_m``; or
        adaptive LIF: the LIF with spike-frequency adaptation, a current ``w_a`` that is
        subtracted from the drive, decays with ``tau_a`` and grows by ``b_a`` at each spike.
    tau_m : Quantity, optional
        Membrane time constant of the LIF and adaptive LIF (default 20 ms); ignored for IF.
    tau_a : Quantity, optional
        Adaptation time constant of the adaptive LIF (default 10 ms); ignored otherwise.
    b_a : float
        Increment of the adaptation current per spike, in units of the drive per ``tau``
        (default 0.05); ignored but for the adaptive LIF.
    v_threshold : float
        Firing threshold V_th (dimensionless, default 1).
    theta : float
        Reset by subtraction of ``theta`` (default 2, SPIDE's modified reset with V_th = 1).
    tau : Quantity
        The time unit of the rates (default 1 ms): one step of the discrete-time papers.
    dt : Quantity, optional
        Integration step; default ``tau / 4``. Must not exceed ``tau / 4`` and must divide
        ``tau`` and the refractory period.
    refractory : Quantity, optional
        Refractory period (default ``tau``), during which integration continues but no spike
        is emitted; ``tau`` caps the rate at 1 per ``tau``, the clamp of the fixed point.
    input_coding : {'current', 'spikes'}
        ``'current'``: F x enters layer 1 as a constant current (the papers' choice);
        ``'spikes'``: input neurons fire at rate x per ``tau`` and each spike adds F to v.
    feedback_gain : float
        Loop gain the feedback weights are initialised to (default 0.5, must be in (0, 1)).
    seed : int
        Seed of the weight initialisation.
    biophysics : Biophysics, optional
        Synapse model, reset, delays, membrane noise and Dale's law
        (:mod:`fbsnn_brian.model.biophysics`); default: the ideal network.
    rate_estimate : {'average', 'exponential'}
        How a neuron's rate is read from its spikes in a phase of length T (used by the
        readout, the plasticity and evaluation). ``'average'`` (default): count / (T / tau).
        ``'exponential'``: the papers' weighted average for LIF neurons, each spike at time t
        weighted by ``exp(-(T - t) / tau_m)`` and the sum divided by
        ``(tau_m / tau) (1 - exp(-T / tau_m))``, so that recent spikes count more and a
        regular train still reads its rate.

    Examples
    --------
    >>> from brian2 import ms
    >>> net = FeedbackNetwork(n_inputs=64, layer_sizes=[100], n_classes=10, seed=0)
    >>> net.input_weights.shape, net.feedback_weights.shape
    ((100, 64), (100, 100))
    >>> round(net.loop_gain(), 3)
    0.5
    >>> float(net.dt / ms)
    0.25
    >>> net.feedback_weights[:] = 10
    Traceback (most recent call last):
    ...
    ValueError: assignment destination is read-only
    """

    def __init__(
        self,
        *,
        n_inputs: int,
        layer_sizes: Sequence[int],
        n_classes: int,
        neuron: str = "if",
        tau_m: Quantity | None = None,
        tau_a: Quantity | None = None,
        b_a: float = 0.05,
        v_threshold: float = 1.0,
        theta: float = 2.0,
        tau: Quantity = 1 * ms,
        dt: Quantity | None = None,
        refractory: Quantity | None = None,
        input_coding: str = "current",
        feedback_gain: float = 0.5,
        seed: int = 0,
        biophysics: Biophysics | None = None,
        rate_estimate: str = "average",
    ) -> None:
        owner = "FeedbackNetwork"
        self.n_inputs = check_positive_int(owner, "n_inputs", n_inputs)
        if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
            raise ValidationError(
                f"{owner}: layer_sizes must be a sequence of positive integers such as [128], "
                f"got {describe(layer_sizes)}."
            )
        if len(layer_sizes) == 0:
            raise ValidationError(f"{owner}: layer_sizes must name at least one layer, got [].")
        self.layer_sizes = tuple(
            check_positive_int(owner, f"layer_sizes[{k}]", size)
            for k, size in enumerate(layer_sizes)
        )
        self.n_classes = check_positive_int(owner, "n_classes", n_classes)
        sizes = (self.n_inputs, *self.layer_sizes, self.n_classes)
        n_weights = self.n_weights
        if n_weights > MAX_WEIGHTS:
            raise ValidationError(
                f"{owner}: the network {'-'.join(str(n) for n in sizes)} would have "
                f"{n_weights:.3g} weights; at most {MAX_WEIGHTS:.0e} are allowed (8 bytes each, "
                "several copies during training)."
            )
        self.neuron = check_choice(owner, "neuron", neuron, NEURON_MODELS)
        self.rate_estimate = check_choice(owner, "rate_estimate", rate_estimate, RATE_ESTIMATES)
        self.input_coding = check_choice(owner, "input_coding", input_coding, INPUT_CODINGS)
        self.v_threshold = check_positive_float(owner, "v_threshold", v_threshold)
        self.theta = check_positive_float(owner, "theta", theta)
        self.tau = _check_time(owner, "tau", tau)
        self.tau_m = _check_time(owner, "tau_m", 20 * ms if tau_m is None else tau_m)
        self.tau_a = _check_time(owner, "tau_a", 10 * ms if tau_a is None else tau_a)
        self.b_a = check_positive_float(owner, "b_a", b_a, allow_zero=True)
        self.dt = _check_time(owner, "dt", self.tau / 4 if dt is None else dt)
        self.refractory = _check_time(
            owner, "refractory", self.tau if refractory is None else refractory, allow_zero=True
        )
        steps_per_tau = float(self.tau / self.dt)
        if steps_per_tau < 4 - 1e-9:
            raise ValidationError(
                f"{owner}: dt must be at most tau/4 = {self.tau / 4!r} so that the model stays "
                f"continuous-time relative to tau, got dt = {self.dt!r}."
            )
        if biophysics is None:
            biophysics = Biophysics()
        if not isinstance(biophysics, Biophysics):
            raise ValidationError(
                f"{owner}: biophysics must be a Biophysics or None, got {describe(biophysics)}."
            )
        self.biophysics = biophysics
        self._check_steps(owner)
        gain = check_positive_float(owner, "feedback_gain", feedback_gain)
        if gain >= 1:
            raise ValidationError(
                f"{owner}: feedback_gain must be in (0, 1) so that the feedback loop is a "
                f"contraction, got {feedback_gain!r}."
            )
        self.feedback_gain = gain
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValidationError(
                f"{owner}: seed must be a non-negative integer, got {describe(seed)}."
            )
        self.seed = int(seed)
        self._initialise_weights()

    def _check_steps(self, owner: str) -> None:
        """Every time the simulation resolves is a whole number of steps of at least dt."""
        biophysics = self.biophysics
        for name, value in (
            ("tau", self.tau),
            ("refractory", self.refractory),
            ("biophysics.delay", biophysics.delay),
            ("biophysics.delay_spread", biophysics.delay_spread),
        ):
            ratio = float(value / self.dt)
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValidationError(
                    f"{owner}: dt = {self.dt!r} must divide {name} = {value!r} into a whole "
                    f"number of steps (got {ratio:.6g} steps)."
                )
        if biophysics.synapse != "instantaneous" and biophysics.tau_syn < self.dt:
            raise ValidationError(
                f"{owner}: biophysics.tau_syn must be at least dt = {self.dt!r} so that the "
                f"synaptic current is resolved, got {biophysics.tau_syn!r}."
            )
        if biophysics.reset == "rest" and self.refractory < self.dt:
            raise ValidationError(
                f"{owner}: reset='rest' clamps the membrane during the refractory period, "
                f"which must then be at least dt = {self.dt!r}, got {self.refractory!r}."
            )

    # ------------------------------------------------------------------ description
    @property
    def n_weights(self) -> int:
        """Number of weights: F, the forward matrices, W^fb and the readout C (not biases)."""
        sizes = (self.n_inputs, *self.layer_sizes, self.n_classes)
        chain = sum(a * b for a, b in itertools.pairwise(sizes))
        return int(chain + self.layer_sizes[0] * self.layer_sizes[-1])

    @property
    def max_rate(self) -> float:
        """The most a neuron fires, in spikes per tau: ``tau / refractory`` (inf without one)."""
        return float(self.tau / self.refractory) if float(self.refractory / second) > 0 else np.inf

    @property
    def leaky(self) -> bool:
        """Whether the membrane leaks (every neuron model but IF), with time constant tau_m."""
        return self.neuron != "if"

    @property
    def n_neurons(self) -> int:
        """Total number of spiking neurons in the layers (input neurons excluded)."""
        return int(sum(self.layer_sizes))

    def config(self) -> dict[str, Any]:
        """Return the configuration as a JSON-serialisable dict (times in seconds)."""
        return {
            "n_inputs": self.n_inputs,
            "layer_sizes": list(self.layer_sizes),
            "n_classes": self.n_classes,
            "neuron": self.neuron,
            "tau_m_s": float(self.tau_m / second),
            "v_threshold": self.v_threshold,
            "theta": self.theta,
            "tau_s": float(self.tau / second),
            "dt_s": float(self.dt / second),
            "refractory_s": float(self.refractory / second),
            "input_coding": self.input_coding,
            "feedback_gain": self.feedback_gain,
            "seed": self.seed,
            "biophysics": self.biophysics.config(),
            "rate_estimate": self.rate_estimate,
            # the adaptive LIF's own constants (absent for the other models)
            **(
                {"tau_a_s": float(self.tau_a / second), "b_a": self.b_a}
                if self.neuron == "alif"
                else {}
            ),
        }

    def config_json(self) -> str:
        """Return :meth:`config` as a JSON string (for provenance attributes)."""
        return json.dumps(self.config(), sort_keys=True)

    def __repr__(self) -> str:
        sizes = "-".join(str(n) for n in (self.n_inputs, *self.layer_sizes, self.n_classes))
        return (
            f"FeedbackNetwork({sizes}, neuron={self.neuron!r}, theta={self.theta}, "
            f"tau={self.tau!r}, dt={self.dt!r}, input_coding={self.input_coding!r})"
        )

    def rate_normaliser(self, duration: Quantity) -> float:
        """Divisor of the (weighted) spike count that gives a rate per tau over ``duration``."""
        if self.rate_estimate == "average":
            return float(duration / self.tau)
        decay = float(duration / self.tau_m)
        return float(self.tau_m / self.tau) * float(-np.expm1(-decay))

    def spike_weights(self, times_in_phase: Quantity, duration: Quantity) -> FloatArray:
        """Weight of each spike in the rate estimate (1, or ``exp(-(T - t) / tau_m)``)."""
        times = np.asarray(times_in_phase / second, dtype=np.float64)
        if self.rate_estimate == "average":
            return np.ones_like(times)
        end = float(duration / second)
        weights: FloatArray = np.exp(-(end - times) / float(self.tau_m / second))
        return weights

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the configuration and every weight to an ``.npz`` file (atomically).

        :meth:`load` restores an identical network; ``fbsnn evaluate`` reads this file.
        """
        target = Path(path)
        if target.suffix != ".npz":
            raise ValidationError(
                f"FeedbackNetwork.save: path must end in '.npz', got {str(path)!r}."
            )
        arrays: dict[str, Any] = {"config": np.array(self.config_json()), **self.weight_arrays()}
        return write_npz_atomically(target, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeedbackNetwork:
        """Read a network written by :meth:`save`."""
        data, config = read_npz(
            path,
            owner="FeedbackNetwork.load",
            noun="weights file",
            what="a weights file written by FeedbackNetwork.save",
            json_key="config",
        )
        network = cls.from_config(config)
        network.set_weight_arrays(data)
        return network

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeedbackNetwork:
        """A network (freshly initialised weights) of the configuration :meth:`config` gave.

        Raises
        ------
        ValidationError
            If a key is missing or a value is not allowed.
        """
        try:
            return cls(
                n_inputs=config["n_inputs"],
                layer_sizes=config["layer_sizes"],
                n_classes=config["n_classes"],
                neuron=config["neuron"],
                tau_m=config["tau_m_s"] * second,
                v_threshold=config["v_threshold"],
                theta=config["theta"],
                tau=config["tau_s"] * second,
                dt=config["dt_s"] * second,
                refractory=config["refractory_s"] * second,
                input_coding=config["input_coding"],
                feedback_gain=config["feedback_gain"],
                seed=config["seed"],
                # configurations written before the switches existed describe the ideal net
                biophysics=(
                    Biophysics.from_config(config["biophysics"]) if "biophysics" in config else None
                ),
                rate_estimate=config.get("rate_estimate", "average"),
                tau_a=config.get("tau_a_s", 0.01) * second,
                b_a=config.get("b_a", 0.05),
            )
        except (KeyError, TypeError) as error:
            raise ValidationError(
                f"FeedbackNetwork.from_config: incomplete or malformed configuration ({error!r})."
            ) from None

    # ------------------------------------------------------------------ reference
    def rate_model(self) -> RateModel:
        """The rate-level model of this network for :mod:`fbsnn_brian.reference`."""
        return RateModel(
            input_weights=self._input_weights,
            forward_weights=self._forward_weights,
            feedback_weights=self._feedback_weights,
            biases=self._biases,
            readout_weights=self._readout_weights,
            readout_bias=self._readout_bias,
            theta=self.theta,
        )

    def check_inputs(self, inputs: Any, *, owner: str = "FeedbackNetwork") -> FloatArray:
        """Validate a batch of inputs: shape (n_samples, n_inputs), finite, in [0, 1]."""
        array = check_finite_array(owner, "inputs", inputs, ndim=2, shape=(None, self.n_inputs))
        if array.min() < 0 or array.max() > 1:
            raise ValidationError(
                f"{owner}: inputs must lie in [0, 1] (rates per tau), got values in "
                f"[{array.min():.4g}, {array.max():.4g}]; rescale the data first."
            )
        return array
