"""SPIDE training on GeNN against the same definition on Brian2's runtime, side by side.

Runs in the genn environment (brian2genn 1.7, Brian2 2.5.x, numpy < 2) with GENN_PATH set:
both train copies of one network on the same samples, one GeNN build (CPU backend unless
``--gpu``) and one runtime run (numpy target, brian2genn's schedule). Reports the GeNN build
time, the samples/s of GeNN's simulation loop and of the whole build-and-run, the runtime's
samples/s, their ratio, the largest weight difference between the two results and the
largest ``|w - w_back^T|`` of the GeNN run.

    GENN_PATH=/path/to/genn-4.9.0 python benchmarks/genn_training.py --json
    GENN_PATH=... python benchmarks/genn_training.py --layers 128 --samples 100 --json
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
from fbsnn_brian.datasets import load_dataset
from fbsnn_brian.genn_training import GeNNTraining
from fbsnn_brian.learning import PerturbedPhase, SPIDEPlasticity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--layers", type=int, default=128)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--runtime-samples", type=int, default=10)
    parser.add_argument("--gpu", action="store_true", help="GeNN's CUDA backend")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    inputs, labels = data.inputs[: args.samples], data.labels[: args.samples]
    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.04, scale=4.0, weight_decay=1e-3),
    )

    def network() -> FeedbackNetwork:
        return FeedbackNetwork(
            n_inputs=data.n_features, layer_sizes=[args.layers], n_classes=data.n_classes, seed=0
        )

    on_genn = network()
    with tempfile.TemporaryDirectory(prefix="genn_bench_") as directory:
        start = time.perf_counter()
        genn = GeNNTraining(on_genn, protocol).run(
            inputs, labels, 0.04, directory=directory, use_GPU=args.gpu
        )
        genn_wall = time.perf_counter() - start

    # the runtime reference on the first samples only (it is slow); a GeNN run on the same
    # prefix gives the weight difference
    prefix = slice(0, args.runtime_samples)
    on_runtime, on_genn_prefix = network(), network()
    start = time.perf_counter()
    GeNNTraining(on_runtime, protocol).run_on_runtime(inputs[prefix], labels[prefix], 0.04)
    runtime_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="genn_bench_") as directory:
        GeNNTraining(on_genn_prefix, protocol).run(
            inputs[prefix], labels[prefix], 0.04, directory=directory, use_GPU=args.gpu
        )
    difference = max(
        float(np.max(np.abs(on_genn_prefix.weight_arrays()[name] - weights)))
        for name, weights in on_runtime.weight_arrays().items()
    )
    genn_loop = args.samples / genn.simulation_time_s
    runtime_rate = args.runtime_samples / runtime_s
    result = {
        "network": f"{data.n_features}-{args.layers}-{data.n_classes}",
        "samples": args.samples,
        "backend": "CUDA" if args.gpu else "CPU",
        "genn_build_and_run_s": genn_wall,
        "genn_compile_s": genn.build_time_s - genn.simulation_time_s,
        "genn_simulation_samples_per_s": genn_loop,
        "genn_samples_per_s_including_build": args.samples / genn_wall,
        "runtime_numpy_samples_per_s": runtime_rate,
        "genn_loop_vs_runtime": genn_loop / runtime_rate,
        "max_weight_difference_genn_vs_runtime": difference,
        "transport_mismatch": genn.transport_mismatch,
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
