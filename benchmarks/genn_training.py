"""SPIDE training on GeNN against the same definition on Brian2's runtime, side by side.

Runs in the genn environment (brian2genn 1.7, Brian2 2.5.x, numpy < 2) with GENN_PATH set.
One network trains with :class:`~fbsnn_brian.build.devices.genn_engines.GeNNTrainingSimulation`
(GeNN's
CPU backend unless ``--gpu``): the first chunk builds the project, the later chunks rerun its
binary. A copy trains on the first chunk with the same definition on Brian2's runtime device
(numpy target, brian2genn's schedule). Reports the build time, the samples/s of the reruns
(wall clock and GeNN's simulation loop), the runtime's samples/s and the ratio, the largest
weight difference between GeNN and runtime after the first chunk, the largest
``|w - w_back^T|`` and the peak memory.

    GENN_PATH=/path/to/genn-4.9.0 python benchmarks/genn_training.py --json
    GENN_PATH=... python benchmarks/genn_training.py --layers 32 --chunk 100 --chunks 4 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import numpy as np
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.build.devices.genn_engines import GeNNTrainingSimulation
from fbsnn_brian.build.devices.genn_training import GeNNTraining
from fbsnn_brian.io.datasets import load_dataset
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--layers", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=50, help="samples per GeNN run")
    parser.add_argument("--chunks", type=int, default=3, help="runs: one build, then reruns")
    parser.add_argument("--gpu", action="store_true", help="GeNN's CUDA backend")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.04, scale=4.0, weight_decay=1e-3),
    )

    def network() -> FeedbackNetwork:
        return FeedbackNetwork(
            n_inputs=data.n_features, layer_sizes=[args.layers], n_classes=data.n_classes, seed=0
        )

    def chunk(k: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(k * args.chunk, (k + 1) * args.chunk)
        return data.inputs[rows], data.labels[rows]

    on_genn, on_runtime = network(), network()
    rerun_wall = rerun_loop = 0.0
    mismatch = 0.0
    with tempfile.TemporaryDirectory(prefix="genn_bench_") as directory:
        simulation = GeNNTrainingSimulation(
            on_genn, protocol, chunk_size=args.chunk, use_GPU=args.gpu, directory=directory
        )
        start = time.perf_counter()
        simulation.train_chunk(*chunk(0), 0.04)
        build_and_first_run = time.perf_counter() - start
        first_chunk_weights = on_genn.weight_arrays()
        for k in range(1, args.chunks):
            start = time.perf_counter()
            simulation.train_chunk(*chunk(k), 0.04)
            rerun_wall += time.perf_counter() - start
            assert simulation.last_result is not None
            rerun_loop += simulation.last_result.simulation_time_s
            mismatch = max(mismatch, simulation.last_result.transport_mismatch)

    start = time.perf_counter()
    GeNNTraining(on_runtime, protocol).run_on_runtime(*chunk(0), 0.04)
    runtime_s = time.perf_counter() - start
    difference = max(
        float(np.max(np.abs(first_chunk_weights[name] - weights)))
        for name, weights in on_runtime.weight_arrays().items()
    )
    reruns = args.chunk * (args.chunks - 1)
    rerun_rate = reruns / rerun_wall if reruns else float("nan")
    runtime_rate = args.chunk / runtime_s
    result = {
        "network": f"{data.n_features}-{args.layers}-{data.n_classes}",
        "backend": "CUDA" if args.gpu else "CPU",
        "chunk": args.chunk,
        "chunks": args.chunks,
        "build_and_first_run_s": build_and_first_run,
        "compile_s": simulation.compile_time_s,
        "rerun_samples_per_s": rerun_rate,
        "rerun_simulation_loop_samples_per_s": reruns / rerun_loop if reruns else float("nan"),
        "runtime_numpy_samples_per_s": runtime_rate,
        "genn_rerun_vs_runtime": rerun_rate / runtime_rate,
        "max_weight_difference_genn_vs_runtime": difference,
        "transport_mismatch": mismatch,
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
