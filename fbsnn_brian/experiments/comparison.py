"""``fbsnn compare``: every learning rule on the same architecture, data split and seeds.

A regime (:mod:`fbsnn_brian.experiments.regimes`) says which network each rule trains on:
``'ideal'`` puts every rule on the ideal IF network; ``'paper'`` puts each baseline on the
network of its own paper (ST-RSBP: LIF, exponential synapses, reset to rest; spike-based BP:
LIF; NA: LIF with synaptic traces) and SPIDE and IDE on the ideal one. Every rule's network has
the same architecture, and with the same seed the same initial weights.

For every rule and every seed (the seed sets the initial weights and the shuffling) the
comparison

* measures the alignment of the rule's update at the initial weights
  (:func:`~fbsnn_brian.experiments.rule_alignment.alignment_measures`, on the first
  ``alignment_samples`` training samples): the cosine with the exact IDE gradient at the same
  free-phase rates, and the cosines with the ground truth of the network the rule runs on,
  over the hidden parameters (F, W, W_fb, b; the readout's update is the same exact outer
  product for every rule, so it is left out);
* trains the network on the training split for ``epochs`` epochs, timing the training
  chunks (simulation plus the rule's numpy work: ``samples_per_s``);
* evaluates the test set once, after training (as ``fbsnn train`` does);
* measures the alignment again at the trained weights.

Per rule it states whether the rule is local, whether it needs weight transport and whether
its update is algebraically the exact IDE gradient in this regime
(:data:`~fbsnn_brian.experiments.regimes.ALGEBRAICALLY_IDE` gives each reason), and measures
the memory the rule needs per sample, the same way for every rule: the bytes of the arrays that
hold one sample's state while the rule forms its update (recorded rules: the raster and the
peak of their numpy work; SPIDE: its per-sample state variables, read from the Brian2 training
network), for the free phase of T_f and of 2 T_f, on the first seed's initial network
(:mod:`fbsnn_brian.experiments.rule_memory`).

Over the seeds it summarises each rule's test accuracy (mean and sample sd) and the paired 95 %
t interval of its difference to SPIDE's accuracy with the same seed
(:mod:`fbsnn_brian.analysis.statistics`).

The result is an xarray Dataset over ``rule``, ``seed`` and ``state`` (``'initial'``,
``'trained'``), described by the CF conventions (:func:`fbsnn_brian.io.netcdf.describe_dataset`),
and a Markdown table (:func:`comparison_table`). The alignment measures live in
:mod:`fbsnn_brian.experiments.rule_alignment`, the summaries over seeds and the table in
:mod:`fbsnn_brian.experiments.comparison_results`; both are re-exported here.
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

from fbsnn_brian.build.devices.registry import get_device_spec
from fbsnn_brian.errors import ValidationError
from fbsnn_brian.experiments.comparison_results import (
    REFERENCE_RULE,
    STATES,
    comparison_table,
    with_summaries,
)
from fbsnn_brian.experiments.regimes import REGIMES, RuleRegime, rule_regime
from fbsnn_brian.experiments.rule_alignment import alignment_measures, rule_alignment
from fbsnn_brian.experiments.rule_memory import rule_memory_per_sample
from fbsnn_brian.io.netcdf import describe_dataset
from fbsnn_brian.model.network import FeedbackNetwork
from fbsnn_brian.model.protocol import FreePhase, Protocol
from fbsnn_brian.rules.learning_rules import RULES, LearningRule, rule_from_name
from fbsnn_brian.validation import check_choice, describe

__all__ = [
    "STATES",
    "alignment_measures",
    "compare_rules",
    "comparison_table",
    "rule_alignment",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
Split = tuple[FloatArray, NDArray[np.int64]]


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
    # the finite differences, on the device the registry names for this one
    where = get_device_spec("compare_rules", training.device, "train").ground_truth
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
        The training and the test split: inputs of shape (n_samples, n_inputs) and their
        integer labels.
    epochs : int
        Training epochs of every rule with every seed.
    rules : list of str, optional
        Default: every rule of :data:`~fbsnn_brian.rules.learning_rules.RULES`.
    regime : {'ideal', 'paper'}
        The network of each rule (:mod:`fbsnn_brian.experiments.regimes`).
    seeds : sequence of int
        Every rule trains once with each seed (initial weights and shuffling).
    free_tau : dict of str to float, optional
        A free phase (in tau) for some rules, e.g. ``{'na': 10}``; the others use their
        regime's (ST-RSBP in ``'paper'``: 100) or else the protocol's.
    device : str
        A name in :data:`fbsnn_brian.build.devices.registry.REGISTRY` that serves training:
        the device of the training and the test; the finite differences run on its
        ground-truth device (:attr:`~fbsnn_brian.build.devices.registry.Device.ground_truth`).
    chunk_size : int
        Samples per chunk of the recorded rules: their mini-batch (SPIDE learns online).
    recorded_plasticity : SPIDEPlasticity, optional
        Optimiser settings of the recorded rules (default: the protocol's).
    alignment_samples : int
        Training samples on which the alignment is measured.
    directions : int
        Random directions of the finite differences of the ground truth (0: the ideal IDE's
        cosine only).
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
    return describe_dataset(with_summaries(result), where="compare_rules")


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
