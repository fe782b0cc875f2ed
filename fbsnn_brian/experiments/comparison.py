"""``fbsnn compare``: every learning rule on the same architecture, data split and seeds.

A regime (:mod:`fbsnn_brian.experiments.regimes`) says which network each rule trains on:
``'ideal'`` puts every rule on the ideal IF network; ``'paper'`` puts each baseline on the
network of its own paper (ST-RSBP: LIF, exponential synapses, reset to rest; spike-based BP:
LIF; NA: LIF with synaptic traces) and SPIDE and IDE on the ideal one. Every rule's network has
the same architecture, and with the same seed the same initial weights.

For every rule and every seed (the seed sets the initial weights and the shuffling) the
comparison

* measures the alignment of the rule's update at the initial weights
  (:func:`alignment_measures`, first ``alignment_samples`` training samples, hidden
  parameters): with the ideal IDE at the same rates and with the ground truth;
* trains the network on the training split for ``epochs`` epochs, timing the training
  chunks (simulation plus the rule's numpy work: ``samples_per_s``);
* evaluates the test set once, after training (as ``fbsnn train`` does);
* measures the alignment again at the trained weights.

Per rule it states whether the rule is local, needs weight transport and is algebraically
IDE in this regime (:data:`~fbsnn_brian.experiments.regimes.ALGEBRAICALLY_IDE`), and measures
its memory per sample the same way for every rule, at T_f and 2 T_f on the first seed's
initial network (:mod:`fbsnn_brian.experiments.rule_memory`).

Over the seeds it summarises each rule's test accuracy (mean and sample sd) and the paired 95 %
t interval of its difference to SPIDE's accuracy with the same seed
(:mod:`fbsnn_brian.analysis.statistics`).

The result is an xarray Dataset over ``rule``, ``seed`` and ``state`` (``'initial'``,
``'trained'``), described by the CF conventions (:func:`fbsnn_brian.io.netcdf.describe_dataset`),
and a Markdown table (:func:`comparison_table`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from fbsnn_brian import reference
from fbsnn_brian.analysis.statistics import (
    format_interval,
    format_mean_sd,
    mean_sd,
    paired_interval,
)
from fbsnn_brian.build.free_run import simulate
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.alignment import (
    alignment_cosines,
    ground_truth,
    hidden_cosine,
    hidden_vector,
)
from fbsnn_brian.experiments.regimes import REGIMES, RuleRegime, rule_regime
from fbsnn_brian.experiments.rule_memory import rule_memory_per_sample
from fbsnn_brian.io.netcdf import describe_dataset
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import FreePhase, Protocol
from fbsnn_brian.rules.baselines import SampleSpikes
from fbsnn_brian.rules.learning_rules import RULES, LearningRule, rule_from_name
from fbsnn_brian.validation import check_choice, describe

__all__ = ["STATES", "alignment_measures", "compare_rules", "comparison_table", "rule_alignment"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
Split = tuple[FloatArray, NDArray[np.int64]]

#: The network states at which the alignment is measured.
STATES = ("initial", "trained")

#: The cosines of the table: with the ideal IDE at the same rates, and with the ground truth.
_COSINES = (
    "cosine_vs_ide",
    "cosine_vs_measured_ide",
    "cosine_vs_finite_difference",
    "measured_ide_vs_finite_difference",
)

#: Free phase (in tau) of each finite-difference evaluation of the ground truth.
FINITE_DIFFERENCE_TAU = 300.0

#: The rule every other rule's test accuracy is compared with, seed by seed.
REFERENCE_RULE = "spide"


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

    Returns
    -------
    dict
        ``cosine_vs_ide`` (mean over the samples with a finite cosine),
        ``per_sample_cosine_vs_ide``, ``n_samples`` and ``mean_hidden_update`` (the rule's
        update of the hidden parameters, averaged over the samples).
    """
    if rule.in_simulation:
        from fbsnn_brian.experiments.checks import gradient_alignment

        return gradient_alignment(network, protocol, inputs, labels, device=device)
    recording = simulate(network, Protocol([protocol.free_phase]), inputs=inputs, device=device)
    model = network.rate_model()
    cosines, updates = [], []
    for k in range(len(inputs)):
        spikes = SampleSpikes.from_recording(recording, k)
        estimate = rule.gradients(network, spikes, inputs[k], int(labels[k]))
        updates.append(hidden_vector(estimate, model.n_layers))
        rates = spikes.rates()
        exact = reference.ide_gradients_at_rates(
            model,
            inputs[k],
            rates,
            int(labels[k]),
            gates=reference.gates_from_rates(rates, ceiling=network.max_rate),
        )
        cosines.append(hidden_cosine(estimate, exact))
    finite = [c for c in cosines if np.isfinite(c)]
    return {
        "cosine_vs_ide": float(np.mean(finite)) if finite else float("nan"),
        "per_sample_cosine_vs_ide": cosines,
        "n_samples": len(cosines),
        "mean_hidden_update": np.mean(updates, axis=0),
    }


def alignment_measures(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    inputs: FloatArray,
    labels: NDArray[np.int64],
    device: str,
    *,
    directions: int = 16,
    ground_truth_device: str = "cpp_standalone",
) -> dict[str, float]:
    """Every alignment measure of one (rule, seed, state): the one place that computes them.

    Each key becomes a variable over (``rule``, ``seed``, ``state``) of the comparison (it
    needs an entry in :data:`fbsnn_brian.io.netcdf.VOCABULARY`).

    Returns
    -------
    dict of str to float
        ``cosine_vs_ide``: mean over the samples of the cosine between the rule's update and
        the exact IDE gradient of the ideal rate model at the same free-phase rates, over the
        hidden parameters (:func:`rule_alignment`). Against the ground truth of the network
        the rule runs on (:func:`fbsnn_brian.experiments.alignment.ground_truth`, ``directions``
        random directions of finite differences over a free phase of 300 tau on
        ``ground_truth_device``), the rule's update averaged over the samples:
        ``cosine_vs_measured_ide``, ``cosine_vs_finite_difference`` and
        ``measured_ide_vs_finite_difference`` (NaN with ``directions`` 0).
    """
    ideal = rule_alignment(rule, network, protocol, inputs, labels, device=device)
    result = {"cosine_vs_ide": float(ideal["cosine_vs_ide"])}
    names = (
        "cosine_vs_measured_ide",
        "cosine_vs_finite_difference",
        "measured_ide_vs_finite_difference",
    )
    if directions == 0:
        return {**result, **dict.fromkeys(names, float("nan"))}
    truth = ground_truth(
        network,
        protocol,
        inputs,
        labels,
        n_directions=directions,
        duration_tau=FINITE_DIFFERENCE_TAU,
        device=ground_truth_device,
        seed=0,
    )
    cosines = alignment_cosines(ideal["mean_hidden_update"], truth)
    return {**result, **{name: float(cosines[name]) for name in names}}


@dataclass(frozen=True)
class _Training:
    """How one (rule, seed) trains: epochs, device, chunk (the recorded rules' mini-batch),
    seed of the shuffling, progress bars."""

    epochs: int
    device: str
    chunk_size: int
    seed: int
    progress: bool
    directions: int = 16


def _train_and_test(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    train: Split,
    test: Split,
    training: _Training,
) -> dict[str, float]:
    """Train ``network`` in place with one rule, then evaluate the test set once."""
    from fbsnn_brian.learning.trainer import Trainer

    inputs, labels = train
    trainer = Trainer(
        network,
        protocol,
        device=training.device,
        chunk_size=training.chunk_size,
        schedule="cosine",
        seed=training.seed,
        progress=training.progress,
        rule=rule,
    )
    # no validation set: the test set is evaluated once, after training (as runs.train_run)
    history = trainer.fit(inputs, labels, epochs=training.epochs)
    test_accuracy = trainer.evaluate(*test)["accuracy"]
    return {
        "test_accuracy": float(test_accuracy),
        "train_accuracy": float(history["train_accuracy"].values[-1]),
        "samples_per_s": float(len(inputs) * training.epochs / history["wall_time_s"].sum()),
    }


def _measure_seed(
    rule: LearningRule,
    network: FeedbackNetwork,
    protocol: Protocol,
    data: tuple[Split, Split],
    *,
    alignment_samples: int,
    training: _Training,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """One (rule, seed): per-seed measures and the alignment at each of :data:`STATES`."""
    train, test = data
    logger.info("compare: %s, seed %d", rule.name, training.seed)
    start = time.perf_counter()
    chosen = (train[0][:alignment_samples], train[1][:alignment_samples])
    # the finite differences: built once per network where the device compiles
    where = "cpp_standalone" if training.device == "cpp_standalone" else "runtime"
    alignment = {
        "initial": alignment_measures(
            rule,
            network,
            protocol,
            *chosen,
            "numpy",
            directions=training.directions,
            ground_truth_device=where,
        )
    }
    trained = copy.deepcopy(network)
    measures = _train_and_test(rule, trained, protocol, train, test, training)
    alignment["trained"] = alignment_measures(
        rule,
        trained,
        protocol,
        *chosen,
        "numpy",
        directions=training.directions,
        ground_truth_device=where,
    )
    measures["wall_time_s"] = time.perf_counter() - start
    return measures, alignment


def _rule_protocol(
    rule: LearningRule,
    regime: RuleRegime,
    protocol: Protocol,
    free_tau: float | None,
    recorded_plasticity: Any,
    tau: Any,
) -> Protocol:
    """The protocol a rule trains with: its free phase and its optimiser settings."""
    length = free_tau if free_tau is not None else regime.free_tau
    duration = protocol.free_phase.duration if length is None else length * tau
    plasticity = (
        protocol.plasticity
        if rule.in_simulation or recorded_plasticity is None
        else recorded_plasticity
    )
    return Protocol([FreePhase(duration=duration), *protocol.phases[1:]], plasticity=plasticity)


def _rule_properties(
    rule: LearningRule,
    regime: RuleRegime,
    network: FeedbackNetwork,
    protocol: Protocol,
    train: Split,
) -> dict[str, Any]:
    """What does not depend on the seed: the rule's properties, network and memory per sample.

    The memory is measured on ``network`` (the first seed's, at its initial weights) with the
    first training sample, for the rule's free phase T_f and for 2 T_f.
    """
    double = Protocol(
        [FreePhase(duration=2 * protocol.free_phase.duration), *protocol.phases[1:]],
        plasticity=protocol.plasticity,
    )
    x, y = train[0][0], int(train[1][0])
    return {
        "local": rule.local,
        "weight_transport": rule.weight_transport,
        "algebraically_ide": regime.algebraically_ide,
        "memory_bytes_per_sample": rule_memory_per_sample(rule, network, protocol, x, y),
        "memory_bytes_per_sample_double_phase": rule_memory_per_sample(rule, network, double, x, y),
        "free_phase_tau": float(protocol.free_phase.duration / network.tau),
        "summary": rule.summary,
        "rule_network": regime.describe(),
    }


def _checked_seeds(seeds: Any) -> list[int]:
    owner = "compare_rules"
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValidationError(
            f"{owner}: seeds must be a non-empty sequence of non-negative integers such as "
            f"[0, 1, 2], got {describe(seeds)}."
        )
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValidationError(
                f"{owner}: every seed must be a non-negative integer, got {describe(seed)} in "
                f"{describe(seeds)}."
            )
    if len(set(seeds)) != len(seeds):
        raise ValidationError(
            f"{owner}: seeds must be distinct (each is one paired run), got {describe(seeds)}."
        )
    return [int(seed) for seed in seeds]


def compare_rules(
    network: FeedbackNetwork,
    protocol: Protocol,
    train: Split,
    test: Split,
    *,
    epochs: int,
    rules: list[str] | None = None,
    regime: str = "ideal",
    seeds: Sequence[int] = (0, 1, 2),
    free_tau: dict[str, float] | None = None,
    device: str = "cpp_standalone",
    chunk_size: int = 16,
    recorded_plasticity: Any = None,
    alignment_samples: int = 20,
    directions: int = 16,
    progress: bool = False,
) -> xr.Dataset:
    """Train every rule with every seed on its regime's network and measure them side by side.

    Parameters
    ----------
    network : FeedbackNetwork
        The template: only its architecture and scales are used (``RuleRegime.network``).
    protocol : Protocol
        ``[FreePhase, PerturbedPhase]`` with a SPIDEPlasticity (the optimiser of every rule).
    train, test : (inputs, labels)
    epochs : int
    rules : list of str, optional
        Default: every rule of :data:`~fbsnn_brian.rules.learning_rules.RULES`.
    regime : {'ideal', 'paper'}
        The network of each rule (:mod:`fbsnn_brian.experiments.regimes`).
    seeds : sequence of int
        Every rule trains once with each seed (initial weights and shuffling).
    free_tau : dict of str to float, optional
        A free phase (in tau) for some rules, e.g. ``{'na': 10}`` (else the regime's or the
        protocol's).
    device : str
        Device of the training and the test (and of the finite differences if standalone).
    chunk_size : int
        Samples per chunk (mini-batch) of the recorded rules; SPIDE learns online.
    recorded_plasticity : SPIDEPlasticity, optional
        Optimiser of the recorded rules (default: the protocol's).
    alignment_samples, directions : int
        Training samples of the alignment; finite-difference directions (0: ideal IDE only).
    progress : bool
        Progress bars of the training.

    Returns
    -------
    xarray.Dataset
        See the module docstring; :func:`comparison_table` prints it.
    """
    check_choice("compare_rules", "regime", regime, REGIMES)
    seed_list = _checked_seeds(seeds)
    names = list(RULES) if rules is None else [rule_from_name(name).name for name in rules]
    lengths = free_tau or {}
    rule_rows: list[dict[str, Any]] = []
    seed_rows: list[list[dict[str, float]]] = []  # [rule][seed]
    state_rows: list[list[dict[str, dict[str, float]]]] = []  # [rule][seed][state]
    for name in names:
        rule, spec = rule_from_name(name), rule_regime(regime, name)
        rule_protocol = _rule_protocol(
            rule, spec, protocol, lengths.get(name), recorded_plasticity, network.tau
        )
        first = spec.network(network, seed=seed_list[0])
        rule_rows.append(_rule_properties(rule, spec, first, rule_protocol, train))
        # SPIDE learns online, one update per sample, in chunks of 200
        chunk = 200 if rule.in_simulation else chunk_size
        measured = [
            _measure_seed(
                rule,
                spec.network(network, seed=seed),
                rule_protocol,
                (train, test),
                alignment_samples=alignment_samples,
                training=_Training(epochs, device, chunk, seed, progress, directions),
            )
            for seed in seed_list
        ]
        seed_rows.append([measures for measures, _ in measured])
        state_rows.append([alignment for _, alignment in measured])
    result = xr.Dataset(
        _stacked(rule_rows, seed_rows, state_rows),
        coords={"rule": names, "seed": seed_list, "state": list(STATES)},
        attrs={
            "title": "fbsnn_brian rule comparison",
            "regime": regime,
            "reference_rule": REFERENCE_RULE,
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
    return describe_dataset(_with_summaries(result), where="compare_rules")


def _stacked(
    rule_rows: list[dict[str, Any]],
    seed_rows: list[list[dict[str, float]]],
    state_rows: list[list[dict[str, dict[str, float]]]],
) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Data variables over ``rule``; ``rule`` and ``seed``; ``rule``, ``seed`` and ``state``."""
    per_rule = {key: np.asarray([row[key] for row in rule_rows]) for key in rule_rows[0]}
    per_seed = {
        key: np.asarray([[row[key] for row in rows] for rows in seed_rows])
        for key in seed_rows[0][0]
    }
    per_state = {
        key: np.asarray(
            [[[row[state][key] for state in STATES] for row in rows] for rows in state_rows]
        )
        for key in state_rows[0][0][STATES[0]]
    }
    return {
        **{key: (("rule",), values) for key, values in per_rule.items()},
        **{key: (("rule", "seed"), values) for key, values in per_seed.items()},
        **{key: (("rule", "seed", "state"), values) for key, values in per_state.items()},
    }


def _with_summaries(result: xr.Dataset) -> xr.Dataset:
    """Add each rule's mean and sd of the test accuracy over seeds and its paired interval."""
    accuracy = result["test_accuracy"]
    names = [str(name) for name in result["rule"].values]
    summaries: dict[str, list[float]] = {}
    for name in names:
        mean, sd = mean_sd(accuracy.sel(rule=name).values)
        interval = (
            paired_interval(
                accuracy.sel(rule=name).values, accuracy.sel(rule=REFERENCE_RULE).values
            )
            if REFERENCE_RULE in names
            else {"difference": np.nan, "low": np.nan, "high": np.nan}
        )
        for key, value in (
            ("test_accuracy_mean", mean),
            ("test_accuracy_sd", sd),
            ("test_accuracy_difference_to_spide", interval["difference"]),
            ("test_accuracy_difference_to_spide_low", interval["low"]),
            ("test_accuracy_difference_to_spide_high", interval["high"]),
        ):
            summaries.setdefault(key, []).append(float(value))
    return result.assign({key: ("rule", np.asarray(v)) for key, v in summaries.items()})


def _kib(value: Any) -> str:
    return f"{float(value) / 1024:.1f} KiB"


def comparison_table(result: xr.Dataset) -> str:
    """Markdown table of :func:`compare_rules`' Dataset, one row per rule.

    Accuracies are mean ± sd over the seeds in %, the difference to SPIDE is the mean
    per-seed difference in percentage points with its paired 95 % t interval, and the
    samples/s and cosines (initial / trained) are mean ± sd over the seeds.
    """
    header = (
        "| rule | test accuracy (%) | difference to SPIDE (pp, 95 % interval) | "
        "training samples/s | cosine with ideal IDE | cosine with measured IDE | "
        "cosine with finite differences | measured IDE vs finite differences | "
        "algebraically IDE | local | weight transport | memory per sample (T_f) | "
        "memory per sample (2 T_f) |"
    )
    rows = [header, "|" + "---|" * 13]
    for name in result["rule"].values:
        entry = result.sel(rule=name)
        difference = {
            key: float(entry[f"test_accuracy_difference_to_spide{suffix}"])
            for key, suffix in (("difference", ""), ("low", "_low"), ("high", "_high"))
        }
        compared = (
            "reference"
            if name == REFERENCE_RULE
            else "n/a"
            if np.isnan(difference["difference"])
            else format_interval(difference, scale=100)
        )
        cosines = [
            " / ".join(
                "n/a"
                if not np.isfinite(entry[measure].sel(state=state).values).any()
                else format_mean_sd(entry[measure].sel(state=state).values, digits=3)
                for state in STATES
            )
            for measure in _COSINES
        ]
        rows.append(
            f"| {name} | {format_mean_sd(entry['test_accuracy'].values, scale=100)} | "
            f"{compared} | {format_mean_sd(entry['samples_per_s'].values, digits=0)} | "
            + "".join(f"{cell} | " for cell in cosines)
            + " | ".join(
                "yes" if bool(entry[key]) else "no"
                for key in ("algebraically_ide", "local", "weight_transport")
            )
            + f" | {_kib(entry['memory_bytes_per_sample'])} | "
            f"{_kib(entry['memory_bytes_per_sample_double_phase'])} |"
        )
    return "\n".join(rows) + "\n" + _table_notes(result)


def _table_notes(result: xr.Dataset) -> str:
    """The notes under the table: data, seeds, what each column measures, each rule's network."""
    seeds = [int(seed) for seed in result["seed"].values]
    epochs = int(result.attrs["epochs"])
    networks = "; ".join(
        f"{name}: {entry} (free phase {float(tau):g} tau)"
        for name, entry, tau in zip(
            result["rule"].values,
            result["rule_network"].values,
            result["free_phase_tau"].values,
            strict=True,
        )
    )
    return (
        f"\n{result.attrs['regime']} regime. {int(result.attrs['n_train'])} training and "
        f"{int(result.attrs['n_test'])} test samples, {epochs} epoch{'' if epochs == 1 else 's'}, "
        f"seeds {', '.join(map(str, seeds))} (the same initial weights and shuffling for every "
        "rule); the test set is evaluated once, after training. Networks: "
        f"{networks}. Cosines over the hidden parameters, each as initial / trained weights, "
        f"on {int(result.attrs['alignment_samples'])} training samples: with the exact IDE "
        "gradient of the ideal rate model at the same rates (mean over the samples), and, for "
        "the rule's update averaged over the samples, with the ground truth of the network the "
        "rule runs on (fbsnn_brian.experiments.alignment: the measured rate model's IDE "
        "gradient and finite differences of the simulated loss), and how the two ground "
        "truths agree. Memory per sample: bytes of one sample's state while the rule forms "
        "its update (recorded rules: the raster and the peak of their numpy work; SPIDE: its "
        "per-sample state variables in the Brian2 training network), on the first seed's "
        "initial network.\n"
    )
