"""The reference gate and a long refractory period: what the alignment measured, and why.

SPIDE's in-simulation gate shuts a neuron whose spike count reaches ``T_f / t_ref``. The exact
IDE gradient it is compared with must gate at the same clamp, ``tau / t_ref``. This script
measures, at the initial weights of the ideal 64-32-10 network on three digits, the cosine of
the spike-computed update with the exact gradient (hidden parameters) under both gates, for
``t_ref`` = 1 and 2 tau::

    python analysis/alignment_gate.py --out analysis/results/alignment_gate.json
"""

from __future__ import annotations

import argparse
import json
import sys

from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, reference, simulate
from fbsnn_brian.experiments.checks import parameter_arrays, spike_computed_updates, vector_cosine
from fbsnn_brian.io.datasets import load_digits
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def measure(refractory_tau: float, n_samples: int) -> dict[str, object]:
    digits = load_digits()
    inputs, labels = digits.inputs[:n_samples], digits.labels[:n_samples]
    network = FeedbackNetwork(
        n_inputs=64, layer_sizes=[32], n_classes=10, refractory=refractory_tau * ms, seed=0
    )
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.04),
    )
    updates = spike_computed_updates(network, protocol, inputs, labels, "numpy")
    free = simulate(network, Protocol([protocol.free_phase]), inputs=inputs, device="numpy")
    model = network.rate_model()
    n_hidden = sum(part.size for part in parameter_arrays(model)[: 2 * model.n_layers + 1])
    result: dict[str, object] = {"refractory_tau": refractory_tau, "max_rate": network.max_rate}
    for name, ceiling in (("gate_at_actual_clamp", network.max_rate), ("gate_at_1", 1.0)):
        cosines = []
        for k, update in enumerate(updates):
            rates = tuple(layer[k] for layer in free.layer_rates())
            gates = reference.gates_from_rates(rates, ceiling=ceiling)
            exact = reference.ide_gradients_at_rates(
                model, inputs[k], rates, int(labels[k]), gates=gates
            )
            cosines.append(vector_cosine(update[:n_hidden], exact.parameter_vector()[:n_hidden]))
        result[name] = [round(float(c), 4) for c in cosines]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="digits measured (default: 3)")
    parser.add_argument("--out", help="JSON file to write (default: print only)")
    args = parser.parse_args()
    results = {
        "command": " ".join(["python", *sys.argv]),
        "network": "64-32-10, ideal IF, seed 0, T_f = 30 tau, T_b = 100 tau, dt = tau/4",
        "measurements": [measure(t_ref, args.samples) for t_ref in (1.0, 2.0)],
    }
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
