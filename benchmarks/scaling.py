"""How the cost of one SPIDE training sample grows with the network (cpp_standalone).

Trains 784-H-10 networks (MNIST inputs, T_f = 30 tau, T_b = 100 tau, dt = tau/4, online
learning) for H in 64..1024 and fits the exponent b of ``seconds per sample ~ synapses^b`` by
least squares on the log-log points. b <= 1 means the cost grows at most linearly with the
number of synapses. The firing rates of each network are reported too: the event cost is
proportional to spikes x fan-out, so rates that change with H move the points. With one hidden
layer every spike and every error event reaches the H synapses of the H x H feedback matrix, so
the number of synaptic operations per sample grows like H^2 while the synapse count is
784 H + H^2: a second exponent relates the cost to the operations actually done
(``forward rate x H x 30 + backward rate x H x 100`` events times H, plus one plasticity pass
over every synapse).

    python benchmarks/scaling.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.io.datasets import load_dataset
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="idx:data/mnist-t10k")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("FBSNN_CACHE_DIR", tempfile.mkdtemp(prefix="fbsnn_bench_cache_"))

    data = load_dataset(args.dataset)
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.01, scale=4.0),
    )
    points = []
    for hidden in args.hidden:
        network = FeedbackNetwork(
            n_inputs=data.n_features, layer_sizes=[hidden], n_classes=data.n_classes, seed=0
        )
        simulation = TrainingSimulation(
            network, protocol, device="cpp_standalone", chunk_size=args.chunk
        )
        simulation.train_chunk(data.inputs[: args.chunk], data.labels[: args.chunk], 0.01)
        start = time.perf_counter()
        forward = backward = 0.0
        n_chunks = 0
        for first in range(args.chunk, args.chunk + args.samples, args.chunk):
            stats = simulation.train_chunk(
                data.inputs[first : first + args.chunk],
                data.labels[first : first + args.chunk],
                0.01,
            )
            forward += stats.forward_rate
            backward += stats.backward_rate
            n_chunks += 1
        seconds = (time.perf_counter() - start) / (n_chunks * args.chunk)
        synapses = data.n_features * hidden + hidden * hidden + hidden * data.n_classes
        events = (forward / n_chunks * 30 + backward / n_chunks * 100) * hidden
        operations = events * hidden + synapses
        points.append(
            {
                "hidden": hidden,
                "synapses": synapses,
                "synaptic_operations_per_sample": operations,
                "seconds_per_sample": seconds,
                "samples_per_s": 1.0 / seconds,
                "compile_s": simulation.compile_time_s,
                "mean_forward_rate": forward / n_chunks,
                "mean_backward_rate": backward / n_chunks,
            }
        )
    log_synapses = np.log([p["synapses"] for p in points])
    log_seconds = np.log([p["seconds_per_sample"] for p in points])
    exponent = float(np.polyfit(log_synapses, log_seconds, 1)[0])
    log_operations = np.log([p["synaptic_operations_per_sample"] for p in points])
    results = {
        "points": points,
        "exponent_seconds_vs_synapses": exponent,
        "exponent_seconds_vs_synaptic_operations": float(
            np.polyfit(log_operations, log_seconds, 1)[0]
        ),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for point in points:
            print(point)
        print(f"exponent vs synapses: {exponent:.3f}")
        print(f"exponent vs operations: {results['exponent_seconds_vs_synaptic_operations']:.3f}")


if __name__ == "__main__":
    main()
