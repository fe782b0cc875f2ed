"""Spike trains of one sample and the neuron constants the baseline learning rules need.

The three baselines of :mod:`fbsnn_brian.rules.baselines` (ST-RSBP, NA, spike-based BP) compute a
gradient from the free-phase spikes of ONE sample. This module holds what they share:

* :class:`NeuronConstants`: the membrane constants of the recorded network (threshold, reset
  step, leak, synaptic filter, refractory period, reset mode), as dimensionless floats;
* :class:`SampleSpikes`: the free-phase spike times and neuron indices of every layer of one
  sample, with counts, rates and a binned view on a time grid;
* :func:`psp_kernel`: the postsynaptic potential of one spike for these constants;
* :func:`drive_kernel`: the potential a constant drive builds, the S-PSP of the drive.

What the three rules share beyond these inputs (argument checks, the output error of the
recorded counts, assembling a :class:`~fbsnn_brian.reference.Gradients`) lives in
:mod:`fbsnn_brian.rules.baselines.recorded_sample`.

Units: every time here (spike times, durations, ``tau_m``, ``tau_syn``, ``refractory``, bin
widths) is a plain float in units of the network's time unit ``tau`` (one "step" of the
discrete-time papers), counted from the start of the sample's free phase. Membrane quantities
(``v_threshold``, ``theta``) are in units of the threshold scale, as in docs/algorithm.rst. The
toolkit converts its Brian2 quantities before calling these functions
(:meth:`SampleSpikes.from_recording` does it for a
:class:`~fbsnn_brian.io.recording.SpikeRecording`).

The neuron these constants describe (docs/algorithm.rst, section "Neurons that realise the clamp",
and the biophysical switches)::

    dv/dt = -v / tau_m + z + I_syn / tau_syn      (z = F x + b: constant drive, per tau)
    dI_syn/dt = -I_syn / tau_syn,  I_syn += W_ij at each spike of j   (tau_syn > 0)
    v += W_ij at each spike of j                                       (tau_syn = 0)
    spike when v >= v_threshold (and not refractory);
    reset 'subtract': v -= theta, integration continues during the refractory period;
    reset 'rest': v = 0 and v is clamped during the refractory period.

``tau_m = inf`` is the integrate-and-fire neuron. A spike of weight W delivers the total
charge W for any ``tau_syn``, so ``tau_syn = 0`` is the limit of the exponential synapse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from fbsnn_brian.errors import ValidationError
from fbsnn_brian.validation import check_choice, check_positive_float, describe

if TYPE_CHECKING:
    from fbsnn_brian.io.recording import SpikeRecording

__all__ = [
    "RESET_MODES",
    "FloatArray",
    "IntArray",
    "LayerArrays",
    "NeuronConstants",
    "ResetMode",
    "SampleSpikes",
    "drive_kernel",
    "psp_kernel",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
LayerArrays = tuple[FloatArray, ...]
ResetMode = Literal["subtract", "rest"]

RESET_MODES = ("subtract", "rest")
# Relative slack when a time is mapped to a grid bin or compared with a window edge: spike
# times converted from seconds carry rounding errors of order 1e-15 tau.
_TIME_SLACK = 1e-9


@dataclass(frozen=True)
class NeuronConstants:
    """Membrane constants of the recorded neurons, dimensionless, in units of ``tau``.

    Parameters
    ----------
    v_threshold : float, default 1.0
        Firing threshold V_th (threshold units).
    theta : float, default 2.0
        Reset step of the subtractive reset (threshold units).
    tau_m : float, default math.inf
        Membrane time constant in units of tau; ``math.inf`` is the IF neuron (no leak).
    tau_syn : float, default 0.0
        Time constant of the current-based exponential synapse in units of tau; 0 is the
        instantaneous synapse (each spike jumps the membrane by its weight).
    refractory : float, default 1.0
        Refractory period in units of tau (> 0: the baselines need a maximal rate).
    reset : {'subtract', 'rest'}, default 'subtract'
        ``'subtract'``: v -= theta at a spike; ``'rest'``: v = 0 and clamped while refractory.

    Examples
    --------
    >>> constants = NeuronConstants(tau_m=20.0)
    >>> round(constants.grid_leak(1.0), 4), constants.charge_per_spike
    (0.9512, 2.0)
    >>> NeuronConstants(reset="rest").charge_per_spike
    1.0
    """

    v_threshold: float = 1.0
    theta: float = 2.0
    tau_m: float = math.inf
    tau_syn: float = 0.0
    refractory: float = 1.0
    reset: ResetMode = "subtract"

    def __post_init__(self) -> None:
        owner = "NeuronConstants"
        set_field = object.__setattr__
        set_field(self, "v_threshold", check_positive_float(owner, "v_threshold", self.v_threshold))
        set_field(self, "theta", check_positive_float(owner, "theta", self.theta))
        tau_m = self.tau_m
        is_infinite = isinstance(tau_m, (int, float, np.floating)) and tau_m == math.inf
        if not is_infinite:
            try:
                tau_m = check_positive_float(owner, "tau_m", tau_m)
            except ValidationError:
                raise ValidationError(
                    f"{owner}: tau_m must be a finite number > 0 (units of tau) or math.inf for "
                    f"the IF neuron, got {describe(tau_m)}."
                ) from None
        set_field(self, "tau_m", float(tau_m))
        set_field(
            self, "tau_syn", check_positive_float(owner, "tau_syn", self.tau_syn, allow_zero=True)
        )
        set_field(self, "refractory", check_positive_float(owner, "refractory", self.refractory))
        check_choice(owner, "reset", self.reset, RESET_MODES)

    @property
    def is_leaky(self) -> bool:
        """Whether the membrane leaks (LIF, finite ``tau_m``)."""
        return math.isfinite(self.tau_m)

    @property
    def leak_rate(self) -> float:
        """1 / tau_m per tau; 0 for the IF neuron."""
        return 1.0 / self.tau_m if self.is_leaky else 0.0

    @property
    def charge_per_spike(self) -> float:
        """Membrane charge one spike removes: theta (subtractive reset) or V_th (rest).

        This is the "threshold" of the count models: charge in / charge per spike = count.
        """
        return self.theta if self.reset == "subtract" else self.v_threshold

    def grid_leak(self, bin_width: float) -> float:
        """Leak factor lambda = exp(-bin_width / tau_m) of one grid step (1 for IF)."""
        return math.exp(-bin_width * self.leak_rate)

    def drive_per_bin(self, bin_width: float) -> float:
        """Membrane charge a constant unit drive adds during one grid step from v = 0.

        ``bin_width`` for IF, ``tau_m (1 - lambda)`` for LIF (the exact integral).
        """
        if not self.is_leaky:
            return bin_width
        return -self.tau_m * math.expm1(-bin_width / self.tau_m)

    def synaptic_decay(self, bin_width: float) -> float:
        """Per-step decay kappa = exp(-bin_width / tau_syn) of the synaptic trace (0 if none)."""
        return math.exp(-bin_width / self.tau_syn) if self.tau_syn > 0 else 0.0

    def max_count(self, duration: float) -> int:
        """Most spikes a neuron can emit in ``duration``: one per refractory period."""
        return max(1, math.ceil(duration / self.refractory - _TIME_SLACK))


def _relative_expm1(z: FloatArray) -> FloatArray:
    """(1 - exp(-z)) / z, continued by 1 at z = 0 (stable for tiny |z|)."""
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    return np.where(small, 1.0 - 0.5 * z, -np.expm1(-safe) / safe)


def psp_kernel(lags: Any, *, neuron: NeuronConstants) -> FloatArray:
    """PSP eps(s) of a unit-weight spike, s time units of tau after it (0 for s < 0).

    The synaptic current W/tau_syn exp(-s/tau_syn) (total charge W) through the membrane's
    leak gives ``eps(s) = tau_m / (tau_m - tau_syn) (exp(-s/tau_m) - exp(-s/tau_syn))``, with
    the limits exp(-s/tau_m) (tau_syn = 0), 1 - exp(-s/tau_syn) (IF), 1 (IF, tau_syn = 0) and
    (s/tau_syn) exp(-s/tau_syn) (tau_m = tau_syn), all from one stable expression.

    Parameters
    ----------
    lags : array_like
        Time since the presynaptic spike, in units of tau.
    neuron : NeuronConstants
        Supplies tau_m (math.inf: IF) and tau_syn (0: instantaneous).

    Returns
    -------
    ndarray
        eps(s) in threshold units; its time integral of the current is 1 for every tau_syn.

    Examples
    --------
    >>> import numpy as np
    >>> psp_kernel(np.array([0.0, 1.0]), neuron=NeuronConstants())
    array([1., 1.])
    >>> psp_kernel(np.array([0.0, 2.0]), neuron=NeuronConstants(tau_m=2.0)).round(4)
    array([1.    , 0.3679])
    >>> psp_kernel(np.array([1.0]), neuron=NeuronConstants(tau_syn=1.0)).round(4)
    array([0.6321])
    """
    s = np.maximum(np.asarray(lags, dtype=np.float64), 0.0)
    membrane = np.exp(-neuron.leak_rate * s)
    if neuron.tau_syn == 0:
        return np.where(np.asarray(lags) < 0, 0.0, membrane)
    synaptic_rate = 1.0 / neuron.tau_syn
    rate_gap = synaptic_rate - neuron.leak_rate
    exponent = s * rate_gap
    # |exponent| <= 1: the difference of exponentials cancels, use (1 - e^-z)/z; beyond, the
    # direct difference is accurate and cannot overflow
    near = np.abs(exponent) <= 1.0
    series = membrane * s * synaptic_rate * _relative_expm1(np.clip(exponent, -1.0, 1.0))
    gap = rate_gap if rate_gap != 0 else 1.0
    direct = (membrane - np.exp(-synaptic_rate * s)) * synaptic_rate / gap
    return np.asarray(np.where(near, series, direct), dtype=np.float64)


def drive_kernel(lags: FloatArray, neuron: NeuronConstants) -> FloatArray:
    """Potential a unit constant current builds from v = 0 in ``lags`` time units.

    The membrane integrates a constant unit drive through its leak: the potential after s is
    ``tau_m (1 - exp(-s / tau_m))``, and s itself for the IF neuron (``tau_m = inf``). This is
    the S-PSP of the constant drive z = F x + b, which enters the membrane directly, not
    through the synaptic filter (so it does not depend on ``tau_syn``).

    Parameters
    ----------
    lags : ndarray
        Time since the drive started acting (or since the end of the last clamp), in units
        of tau; negative lags count as 0.
    neuron : NeuronConstants
        Supplies tau_m.

    Returns
    -------
    ndarray
        The potential in threshold units.

    Examples
    --------
    >>> import numpy as np
    >>> drive_kernel(np.array([0.0, 2.0]), NeuronConstants())
    array([0., 2.])
    >>> drive_kernel(np.array([2.0]), NeuronConstants(tau_m=2.0)).round(4)
    array([1.2642])
    """
    s = np.maximum(lags, 0.0)
    return np.asarray(s * _relative_expm1(s * neuron.leak_rate), dtype=np.float64)


def _frozen(array: NDArray[Any]) -> NDArray[Any]:
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy


@dataclass(frozen=True, eq=False)
class SampleSpikes:
    """Free-phase spikes of one sample, per forward layer.

    Arrays are copied, sorted by time and made read-only on construction.

    Parameters
    ----------
    times : tuple of ndarray of float64
        Per layer, spike times in units of tau from the start of the free phase, in
        ``[0, duration)``.
    neurons : tuple of ndarray of int64
        Per layer, the index (within its layer) of the neuron that emitted each spike.
    layer_sizes : tuple of int
        Number of neurons n_l of each layer.
    duration : float
        Length T of the free phase in units of tau.

    Examples
    --------
    >>> import numpy as np
    >>> spikes = SampleSpikes(
    ...     times=(np.array([0.5, 2.25, 3.0]),),
    ...     neurons=(np.array([0, 1, 0]),),
    ...     layer_sizes=(2,),
    ...     duration=4.0,
    ... )
    >>> spikes.counts()
    (array([2, 1]),)
    >>> spikes.rates()
    (array([0.5 , 0.25]),)
    >>> spikes.binned(2.0)[0]
    array([[1., 0.],
           [1., 1.]])
    """

    times: LayerArrays
    neurons: tuple[IntArray, ...]
    layer_sizes: tuple[int, ...]
    duration: float

    def __post_init__(self) -> None:
        owner = "SampleSpikes"
        duration = check_positive_float(owner, "duration", self.duration)
        sizes = self.layer_sizes
        if (
            not isinstance(sizes, (tuple, list))
            or len(sizes) == 0
            or any(
                isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes
            )
        ):
            raise ValidationError(
                f"{owner}: layer_sizes must be a non-empty tuple of positive integers, got "
                f"{describe(sizes)}."
            )
        n_layers = len(sizes)
        for name, value in (("times", self.times), ("neurons", self.neurons)):
            if not isinstance(value, (tuple, list)) or len(value) != n_layers:
                raise ValidationError(
                    f"{owner}: {name} must be a tuple with one array per layer ({n_layers} "
                    f"layers), got {describe(value)}."
                )
        times: list[FloatArray] = []
        neurons: list[IntArray] = []
        for layer, (layer_times, layer_neurons) in enumerate(
            zip(self.times, self.neurons, strict=True)
        ):
            t = np.asarray(layer_times, dtype=np.float64)
            i = np.asarray(layer_neurons)
            if t.ndim != 1 or i.shape != t.shape:
                raise ValidationError(
                    f"{owner}: times[{layer}] and neurons[{layer}] must be 1-D arrays of equal "
                    f"length, got shapes {t.shape} and {i.shape}."
                )
            if i.size and not np.issubdtype(i.dtype, np.integer):
                raise ValidationError(
                    f"{owner}: neurons[{layer}] must hold integer neuron indices, got dtype "
                    f"{i.dtype}."
                )
            if t.size and not (np.all(np.isfinite(t)) and t.min() >= 0 and t.max() < duration):
                raise ValidationError(
                    f"{owner}: times[{layer}] must lie in [0, duration) = [0, {duration:g}), got "
                    f"values in [{np.nanmin(t):g}, {np.nanmax(t):g}]."
                )
            if i.size and (i.min() < 0 or i.max() >= sizes[layer]):
                raise ValidationError(
                    f"{owner}: neurons[{layer}] must be indices in [0, {sizes[layer] - 1}], got "
                    f"values in [{i.min()}, {i.max()}]."
                )
            order = np.argsort(t, kind="stable")
            times.append(_frozen(t[order]))
            neurons.append(_frozen(i[order].astype(np.int64)))
        object.__setattr__(self, "times", tuple(times))
        object.__setattr__(self, "neurons", tuple(neurons))
        object.__setattr__(self, "layer_sizes", tuple(int(s) for s in sizes))
        object.__setattr__(self, "duration", duration)

    @property
    def n_layers(self) -> int:
        """Number N of forward layers."""
        return len(self.layer_sizes)

    def counts(self) -> tuple[IntArray, ...]:
        """Spike count of every neuron, per layer."""
        return tuple(
            np.bincount(neurons, minlength=size).astype(np.int64)
            for neurons, size in zip(self.neurons, self.layer_sizes, strict=True)
        )

    def rates(self) -> LayerArrays:
        """Average rate count / T of every neuron in spikes per tau, per layer."""
        return tuple(count / self.duration for count in self.counts())

    def grid_steps(self, bin_width: float) -> int:
        """Number of grid steps T / bin_width; refuses a bin width that does not divide T."""
        owner = "SampleSpikes.grid_steps"
        width = check_positive_float(owner, "bin_width", bin_width)
        ratio = self.duration / width
        steps = round(ratio)
        if steps < 1 or abs(ratio - steps) > _TIME_SLACK * max(1.0, ratio):
            raise ValidationError(
                f"{owner}: bin_width must divide the duration T = {self.duration:g} tau into a "
                f"whole number of steps, got bin_width = {bin_width!r} ({ratio:.6g} steps)."
            )
        return int(steps)

    def bin_indices(self, bin_width: float) -> tuple[IntArray, ...]:
        """Grid step [m w, (m + 1) w) of every spike, per layer."""
        n_bins = self.grid_steps(bin_width)
        return tuple(
            np.clip(np.floor(times / bin_width + _TIME_SLACK), 0, n_bins - 1).astype(np.int64)
            for times in self.times
        )

    def binned(self, bin_width: float) -> LayerArrays:
        """Spike counts on the grid of width ``bin_width``: per layer an (n_bins, n_l) array."""
        n_bins = self.grid_steps(bin_width)
        grids = []
        for bins, neurons, size in zip(
            self.bin_indices(bin_width), self.neurons, self.layer_sizes, strict=True
        ):
            grid = np.zeros((n_bins, size))
            np.add.at(grid, (bins, neurons), 1.0)
            grids.append(grid)
        return tuple(grids)

    @classmethod
    def from_recording(
        cls,
        recording: SpikeRecording,
        sample: int,
        *,
        layer_populations: Sequence[str] | None = None,
        tau: Any = None,
    ) -> SampleSpikes:
        """The free-phase spikes of one sample of a recording.

        The recording is a :class:`~fbsnn_brian.io.recording.SpikeRecording`.

        Parameters
        ----------
        recording : SpikeRecording
            A recording made with ``record_spikes=True`` (e.g. by :func:`fbsnn_brian.simulate`).
        sample : int
            Index of the sample in the recording.
        layer_populations : sequence of str, optional
            Names of the forward layers in order; default: every population whose role is
            ``'forward'`` (``layer_1`` .. ``layer_N``).
        tau : Quantity, optional
            The time unit; default: the recording's ``tau_s`` attribute.

        Examples
        --------
        >>> import numpy as np
        >>> from brian2 import ms
        >>> from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, simulate
        >>> net = FeedbackNetwork(n_inputs=2, layer_sizes=[3], n_classes=2, seed=0)
        >>> recording = simulate(
        ...     net, Protocol([FreePhase(duration=10 * ms)]), inputs=np.array([[0.5, 1.0]]),
        ...     device="numpy",
        ... )
        >>> spikes = SampleSpikes.from_recording(recording, 0)
        >>> spikes.duration, spikes.layer_sizes
        (10.0, (3,))
        >>> bool(np.allclose(spikes.rates()[0], recording.layer_rates()[0][0]))
        True
        """
        owner = "SampleSpikes.from_recording"
        if (
            isinstance(sample, bool)
            or not isinstance(sample, (int, np.integer))
            or not (0 <= sample < recording.n_samples)
        ):
            raise ValidationError(
                f"{owner}: sample must be an integer index in [0, {recording.n_samples - 1}], "
                f"got {describe(sample)}."
            )
        if tau is None:
            tau_s = float(recording.attrs["tau_s"])
        else:
            from brian2 import second

            from fbsnn_brian.validation import check_duration

            tau_s = float(check_duration(owner, "tau", tau) / second)
        by_name = {population.name: population for population in recording.populations}
        if layer_populations is None:
            names = [p.name for p in recording.populations if p.role == "forward"]
        else:
            names = list(layer_populations)
        unknown = [name for name in names if name not in by_name]
        if not names or unknown:
            raise ValidationError(
                f"{owner}: layer_populations must name populations of the recording "
                f"({sorted(by_name)}), got {describe(layer_populations)}."
            )
        if "free" not in recording.phase_names:
            raise ValidationError(
                f"{owner}: the recording has no 'free' phase (phases {recording.phase_names})."
            )
        phase = recording.phase_names.index("free")
        phase_start_s = float(np.sum(recording.phase_durations_s[:phase]))
        duration_s = float(recording.phase_durations_s[phase])
        start_s = sample * recording.sample_duration_s + phase_start_s
        slack_s = _TIME_SLACK * tau_s
        times: list[FloatArray] = []
        neurons: list[IntArray] = []
        for name in names:
            t = recording.spike_times[name]
            keep = (
                (recording.spike_samples[name] == sample)
                & (t >= start_s - slack_s)
                & (t < start_s + duration_s - slack_s)
            )
            times.append(np.clip((t[keep] - start_s) / tau_s, 0.0, None))
            neurons.append(recording.spike_neurons[name][keep].astype(np.int64))
            counted = np.bincount(neurons[-1], minlength=by_name[name].size)
            expected = np.rint(recording.rates_of(name, "free")[sample] * duration_s / tau_s)
            if not np.array_equal(counted, expected):
                raise ValidationError(
                    f"{owner}: the spike events of population {name!r} in sample {sample} do "
                    f"not match its recorded rates ({int(counted.sum())} events for "
                    f"{int(expected.sum())} spikes); record with record_spikes=True and pass "
                    "the tau the network was simulated with."
                )
        return cls(
            times=tuple(times),
            neurons=tuple(neurons),
            layer_sizes=tuple(by_name[name].size for name in names),
            duration=duration_s / tau_s,
        )
