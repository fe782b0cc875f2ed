"""``fbsnn compare``: every learning rule on the same network, data split and seed.

For each rule of :data:`fbsnn_brian.rules.learning_rules.RULES` the comparison

* trains a fresh copy of the same network (same seed, so the same initial weights) on the same
  training split for the same number of epochs, and reports the test accuracy and the training
  samples/s (the wall time of the training chunks: simulation plus the rule's numpy work);
* measures, at the initial weights and on the same training samples, the cosine between the
  rule's update and the exact IDE gradient at the same free-phase rates, over the hidden
  parameters (F, W, W_fb, b; the readout's update is the same exact outer product for every
  rule, so it is left out);
* states whether the rule is local and whether it needs weight transport;
* measures the memory a rule needs per sample: the peak of the Python allocations while it
  computes one sample's gradient from the recorded spikes (``tracemalloc``), for the free phase
  of T_f and of 2 T_f, so the table shows how it grows with the phase length. SPIDE keeps its
  per-sample quantities in the simulation's state variables (counts and membranes per neuron,
  :func:`fbsnn_brian.analysis.measures.rule_memory`), which do not depend on T.

The result is an xarray Dataset over ``rule``, described by the CF conventions
(:func:`fbsnn_brian.io.recording.describe_dataset`), and a Markdown table.
"""

from __future__ import annotations

import copy
import time
import tracemalloc
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian import reference
from fbsnn_brian.analysis.measures import rule_memory
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.experiments.checks import vector_cosine
from fbsnn_brian.io.netcdf import describe_dataset
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import FreePhase, Protocol
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.learning_rules import RULES, LearningRule, rule_from_name

__all__ = ["compare_rules", "comparison_table", "rule_alignment", "rule_memory_per_sample"]

FloatArray = NDArray[np.float64]


def _hidden(gradients: reference.Gradients, n_layers: int) -> FloatArray:
    parts = [
        gradients.input_weights,
        *gradients.forward_weights,
        gradients.feedback_weights,
        *gradients.biases,
    ]
    return np.concatenate([np.ravel(part) for part in parts[: 2 * n_layers + 1]])


def rule_alignment(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    inputs: FloatArray,
    labels: NDArray[np.int64],
    *,
    device: str = "numpy",
) -> dict[str, Any]:
    """Per-sample cosine of a rule's update with the exact IDE gradient at the same rates.

    Recorded rules: the rule's gradient of each sample's recorded free phase against
    :func:`~fbsnn_brian.reference.ide_gradients_at_rates` at that sample's rates. SPIDE: the
    in-simulation update (:func:`fbsnn_brian.experiments.checks.gradient_alignment`).
    """
    if rule.in_simulation:
        from fbsnn_brian.experiments.checks import gradient_alignment

        return gradient_alignment(network, protocol, inputs, labels, device=device)
    recording = simulate(network, Protocol([protocol.free_phase]), inputs=inputs, device=device)
    model = network.rate_model()
    cosines = []
    for k in range(len(inputs)):
        spikes = SampleSpikes.from_recording(recording, k)
        estimate = rule.gradients(network, spikes, inputs[k], int(labels[k]))
        rates = spikes.rates()
        exact = reference.ide_gradients_at_rates(
            model,
            inputs[k],
            rates,
            int(labels[k]),
            gates=reference.gates_from_rates(rates, ceiling=network.max_rate),
        )
        cosines.append(
            vector_cosine(_hidden(estimate, model.n_layers), _hidden(exact, model.n_layers))
        )
    finite = [c for c in cosines if np.isfinite(c)]
    return {
        "cosine_vs_ide": float(np.mean(finite)) if finite else float("nan"),
        "per_sample_cosine_vs_ide": cosines,
        "n_samples": len(cosines),
    }


def rule_memory_per_sample(
    rule: LearningRule,
    network: FeedbackNetwork,
    free_phase: FreePhase,
    x: FloatArray,
    y: int,
) -> float:
    """Peak bytes allocated while the rule computes one sample's gradient (or SPIDE's state).

    The spikes are recorded first and the rule runs once on them before the measurement, so
    that one-off work it caches across samples (ST-RSBP's Monte Carlo correction table for a
    window length) is not counted; what is measured is what the rule builds per sample.
    """
    if rule.in_simulation:
        usage = rule_memory(network)
        return float(usage["bytes_per_neuron"] * network.n_neurons)
    recording = simulate(network, Protocol([free_phase]), inputs=x[None, :], device="numpy")
    spikes = SampleSpikes.from_recording(recording, 0)
    rule.gradients(network, spikes, x, y)  # fills the rule's caches
    tracemalloc.start()
    try:
        rule.gradients(network, spikes, x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return float(peak)


def _measure_rule(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    train: tuple[FloatArray, NDArray[np.int64]],
    test: tuple[FloatArray, NDArray[np.int64]],
    *,
    epochs: int,
    device: str,
    chunk_size: int,
    seed: int,
    progress: bool,
    alignment_samples: int,
) -> dict[str, Any]:
    """Train a copy of ``network`` with one rule and measure it (one row of the comparison)."""
    from fbsnn_brian.learning.trainer import Trainer

    inputs, labels = train
    free = protocol.free_phase
    length = float(free.duration / network.tau)
    chosen = slice(0, alignment_samples)
    alignment = rule_alignment(
        rule, network, protocol, inputs[chosen], labels[chosen], device="numpy"
    )
    memory = rule_memory_per_sample(rule, network, free, inputs[0], int(labels[0]))
    double = FreePhase(duration=2 * length * network.tau)
    memory_double = rule_memory_per_sample(rule, network, double, inputs[0], int(labels[0]))
    trained = copy.deepcopy(network)
    start = time.perf_counter()
    trainer = Trainer(
        trained,
        protocol,
        device=device,
        chunk_size=chunk_size,
        schedule="cosine",
        seed=seed,
        progress=progress,
        rule=rule,
    )
    history = trainer.fit(inputs, labels, epochs=epochs, validation=test)
    return {
        "test_accuracy": float(history["test_accuracy"].values[-1]),
        "train_accuracy": float(history["train_accuracy"].values[-1]),
        "samples_per_s": float(len(inputs) * epochs / history["wall_time_s"].sum()),
        "cosine_vs_ide": alignment["cosine_vs_ide"],
        "local": rule.local,
        "weight_transport": rule.weight_transport,
        "memory_bytes_per_sample": memory,
        "memory_bytes_per_sample_double_phase": memory_double,
        "free_phase_tau": length,
        "wall_time_s": time.perf_counter() - start,
    }


def compare_rules(
    network: FeedbackNetwork,
    protocol: Protocol,
    train: tuple[FloatArray, NDArray[np.int64]],
    test: tuple[FloatArray, NDArray[np.int64]],
    *,
    epochs: int,
    rules: list[str] | None = None,
    free_tau: dict[str, float] | None = None,
    device: str = "cpp_standalone",
    chunk_size: int = 16,
    recorded_plasticity: Any = None,
    alignment_samples: int = 20,
    progress: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Train every rule on copies of ``network`` and measure them side by side.

    Parameters
    ----------
    network : FeedbackNetwork
        Copied for every rule (same initial weights).
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity (learning rate, weight decay,
        momentum for every rule).
    train, test : (inputs, labels)
    epochs : int
    rules : list of str, optional
        Default: every rule of :data:`~fbsnn_brian.rules.learning_rules.RULES`.
    free_tau : dict of str to float, optional
        A shorter free phase (in tau) for some rules, e.g. ``{'na': 10}`` (NA's cost grows
        with the square of the window); the others use the protocol's.
    device : str
        Device of the simulations (training and evaluation).
    chunk_size : int
        Samples per chunk of the recorded rules, which is also their mini-batch (SPIDE runs
        online, one update per sample, in chunks of 200).
    recorded_plasticity : SPIDEPlasticity, optional
        Optimiser settings of the recorded rules (default: the protocol's); mini-batch
        rules usually want a larger step and momentum than SPIDE's online SGD.
    alignment_samples : int
        Training samples on which the cosine with the exact gradient is measured.
    """

    names = list(RULES) if rules is None else [rule_from_name(name).name for name in rules]
    lengths = free_tau or {}
    measures: dict[str, list[Any]] = {}
    summaries = []
    for name in names:
        rule = rule_from_name(name)
        summaries.append(rule.summary)
        length = lengths.get(name, float(protocol.free_phase.duration / network.tau))
        plasticity = (
            protocol.plasticity
            if rule.in_simulation or recorded_plasticity is None
            else recorded_plasticity
        )
        rule_protocol = Protocol(
            [FreePhase(duration=length * network.tau), *protocol.phases[1:]],
            plasticity=plasticity,
        )
        measured = _measure_rule(
            rule,
            network,
            rule_protocol,
            train,
            test,
            epochs=epochs,
            device=device,
            chunk_size=chunk_size if not rule.in_simulation else 200,
            seed=seed,
            progress=progress,
            alignment_samples=alignment_samples,
        )
        for key, value in measured.items():
            measures.setdefault(key, []).append(value)
    data = {key: ("rule", np.asarray(values)) for key, values in measures.items()}
    data["summary"] = ("rule", np.asarray(summaries, dtype=str))
    result = xr.Dataset(
        data,
        coords={"rule": names},
        attrs={
            "title": "fbsnn_brian rule comparison",
            "network": network.config_json(),
            "protocol": protocol.to_json(),
            "epochs": epochs,
            "chunk_size": chunk_size,
            "alignment_samples": alignment_samples,
            "device": device,
            "n_train": len(train[0]),
            "n_test": len(test[0]),
        },
    )
    return describe_dataset(result, where="compare_rules")


def comparison_table(result: xr.Dataset) -> str:
    """Markdown table of :func:`compare_rules`' Dataset, one row per rule."""
    header = (
        "| rule | test accuracy (%) | training samples/s | cosine with exact IDE gradient | "
        "local | weight transport | memory per sample (T_f) | memory per sample (2 T_f) |"
    )
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    for name in result["rule"].values:
        entry = result.sel(rule=name)

        def kib(value: Any) -> str:
            return f"{float(value) / 1024:.1f} KiB"

        rows.append(
            f"| {name} | {100 * float(entry['test_accuracy']):.2f} | "
            f"{float(entry['samples_per_s']):.0f} | {float(entry['cosine_vs_ide']):.3f} | "
            f"{'yes' if bool(entry['local']) else 'no'} | "
            f"{'yes' if bool(entry['weight_transport']) else 'no'} | "
            f"{kib(entry['memory_bytes_per_sample'])} | "
            f"{kib(entry['memory_bytes_per_sample_double_phase'])} |"
        )
    notes = (
        f"\n{int(result.attrs['n_train'])} training and {int(result.attrs['n_test'])} test "
        f"samples, {int(result.attrs['epochs'])} epochs, same network and seed for every rule. "
        "Cosines over the hidden parameters at the initial weights, mean over "
        f"{int(result.attrs['alignment_samples'])} training samples. Memory: peak allocation "
        "of the rule's numpy work for one sample, caches excluded (SPIDE: its per-neuron "
        "state variables). "
        "Free phase per rule (tau): "
        + ", ".join(
            f"{name} {float(t):g}"
            for name, t in zip(result["rule"].values, result["free_phase_tau"].values, strict=True)
        )
        + ".\n"
    )
    return "\n".join(rows) + "\n" + notes
