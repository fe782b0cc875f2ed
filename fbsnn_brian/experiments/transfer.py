"""Measured transfer functions: a neuron configuration's rate against a constant input current.

:func:`measure_transfer` simulates, in Brian2, a population of isolated neurons of the
network's configuration (neuron model, leak, refractory period, reset, noise, dt, rate
estimate: everything of :meth:`FeedbackNetwork.config` except the layer sizes, the weights and
the seed of the weights) with no synapse between them, each driven by one constant current of a
grid through its bias. Its stationary rates, in spikes per tau, form the
:class:`~fbsnn_brian.reference.TransferFunction` of the measured rate model
(:mod:`fbsnn_brian.reference.measured`).

In a network the input is not constant: it arrives as spikes, whose fluctuations let a
leaky neuron fire below its threshold current and smooth the onset of its curve. With
``input_sigma`` the isolated neurons receive membrane noise of the same long-time variance
(the diffusion approximation of shot noise: ``sigma^2 = sum_j w_j^2 a_j`` per tau for jumps
``w_j`` arriving at rates ``a_j``), added to the configuration's own noise: white noise for
instantaneous synapses, Ornstein-Uhlenbeck noise with the correlation time ``tau_syn`` for the
filtering synapses (variance ``sigma^2 tau / (2 tau_syn)``, the same diffusion), or in the
configuration's own noise model where it has one. What it does not contain: a conductance
synapse's drive also depends on the membrane, and delays do not change a stationary rate; the
finite differences of :mod:`fbsnn_brian.experiments.alignment` include both.

Tables are cached per configuration, grid and duration in ``<cache>/transfer/`` (the build
cache's root, :func:`fbsnn_brian.build.devices.cache.cache_root`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
from brian2 import second
from numpy.typing import NDArray

from fbsnn_brian.build.devices.cache import cache_root
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.files import write_npz_atomically
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import FreePhase, Protocol
from fbsnn_brian.reference import TransferFunction

__all__ = ["DEFAULT_CURRENTS", "measure_transfer", "with_input_noise"]

logger = logging.getLogger(__name__)

#: Input currents of the default grid (threshold units per tau): -2 to 8 in steps of 0.025,
#: from below the noise's reach of threshold to beyond the saturation of the neuron models.
DEFAULT_CURRENTS = np.round(np.linspace(-2.0, 8.0, 401), 6)


def with_input_noise(network: FeedbackNetwork, input_sigma: float) -> FeedbackNetwork:
    """The network's configuration with membrane noise equivalent to input fluctuations.

    ``input_sigma`` is the white-noise amplitude (threshold units per sqrt(tau)) of the
    fluctuations; see the module docstring for how it joins the configuration's noise.
    """
    if not np.isfinite(input_sigma) or input_sigma < 0:
        raise ValidationError(
            f"with_input_noise: input_sigma must be a finite number >= 0, got {input_sigma!r}."
        )
    if input_sigma == 0:
        return network
    config = network.config()
    physics = dict(config["biophysics"])
    own = physics["noise_sigma"]
    tau_s = config["tau_s"]
    if physics["noise_tau_s"] is None and own > 0:
        correlation = None  # the configuration's white noise
    elif physics["noise_tau_s"] is not None and own > 0:
        correlation = physics["noise_tau_s"]
    elif physics["synapse"] == "instantaneous":
        correlation = None
    else:
        correlation = physics["tau_syn_s"]
    added = input_sigma**2 if correlation is None else input_sigma**2 * tau_s / (2 * correlation)
    physics["noise_sigma"] = float(np.sqrt(own**2 + added))
    physics["noise_tau_s"] = correlation
    config["biophysics"] = physics
    return FeedbackNetwork.from_config(config)


def _isolated_network(network: FeedbackNetwork, currents: NDArray[np.float64]) -> FeedbackNetwork:
    config = network.config()
    config.update(n_inputs=1, layer_sizes=[len(currents)], n_classes=2, seed=0)
    # a stationary rate is read as the spike count over the whole phase
    config["rate_estimate"] = "average"
    isolated = FeedbackNetwork.from_config(config)
    arrays = {name: np.zeros_like(value) for name, value in isolated.weight_arrays().items()}
    arrays["biases_0"] = np.asarray(currents, dtype=np.float64)
    isolated.set_weight_arrays(arrays)
    return isolated


def _cache_path(
    network: FeedbackNetwork, currents: NDArray[np.float64], duration_tau: float
) -> Any:
    config = network.config()
    for key in ("n_inputs", "layer_sizes", "n_classes", "seed", "rate_estimate"):
        config.pop(key, None)
    text = json.dumps(
        {"network": config, "currents": currents.tolist(), "duration_tau": duration_tau},
        sort_keys=True,
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return cache_root() / "transfer" / f"transfer-{digest}.npz"


def measure_transfer(
    network: FeedbackNetwork,
    *,
    currents: Any = None,
    duration_tau: float = 2000.0,
    device: str = "runtime",
    noise_seed: int = 0,
    input_sigma: float = 0.0,
    cache: bool = True,
) -> TransferFunction:
    """The stationary rate of the network's neuron configuration against a constant current.

    Parameters
    ----------
    network : FeedbackNetwork
        Its neuron configuration is measured (weights and layer sizes are not used).
    currents : array_like, optional
        Increasing grid of input currents, threshold units per tau (default
        :data:`DEFAULT_CURRENTS`).
    duration_tau : float
        Simulated time per current, in tau (default 2000: a rate resolution of 0.0005).
    device : str
        Brian2 device of the measurement (runtime devices need no compiler).
    noise_seed : int
        Seed of the membrane noise, if the configuration has any.
    input_sigma : float
        Amplitude of the input fluctuations to add as membrane noise (see the module
        docstring; default 0: constant input), rounded to 0.005.
    cache : bool
        Read and write the table in the cache.

    Returns
    -------
    TransferFunction

    Examples
    --------
    >>> from brian2 import ms
    >>> net = FeedbackNetwork(n_inputs=2, layer_sizes=[3], n_classes=2)
    >>> transfer = measure_transfer(net, currents=[0.0, 0.5, 1.0, 2.0, 3.0], duration_tau=40,
    ...                             device="numpy", cache=False)
    >>> transfer.rates.tolist()
    [0.0, 0.25, 0.5, 1.0, 1.0]
    """
    owner = "measure_transfer"
    grid = DEFAULT_CURRENTS if currents is None else np.asarray(currents, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 3 or np.any(np.diff(grid) <= 0):
        raise ValidationError(
            f"{owner}: currents must be at least 3 strictly increasing values, got {currents!r}."
        )
    if not np.isfinite(duration_tau) or duration_tau <= 0:
        raise ValidationError(
            f"{owner}: duration_tau must be a positive number of tau, got {duration_tau!r}."
        )
    if not np.isfinite(input_sigma) or input_sigma < 0:
        raise ValidationError(
            f"{owner}: input_sigma must be a finite number >= 0, got {input_sigma!r}."
        )
    network = with_input_noise(network, round(float(input_sigma) / 0.005) * 0.005)
    path = _cache_path(network, grid, float(duration_tau))
    if cache and path.exists():
        with np.load(path) as saved:
            return TransferFunction(grid, saved["rates"])
    isolated = _isolated_network(network, grid)
    phase = FreePhase(duration=duration_tau * network.tau)
    simulation = FreeRunSimulation(
        isolated,
        Protocol([phase]),
        device=device,
        chunk_size=1,
        record_spikes=False,
        noise_seed=noise_seed if network.biophysics.has_noise else None,
    )
    recording = simulation.run(np.zeros((1, 1)))
    rates = np.asarray(recording.layer_rates()[0][0], dtype=np.float64)
    logger.info(
        "measured the transfer function of %d currents over %g tau (%.1f s simulated)",
        grid.size,
        duration_tau,
        float(duration_tau * network.tau / second),
    )
    if cache:
        write_npz_atomically(path, {"currents": grid, "rates": rates})
    return TransferFunction(grid, rates)
