"""Training throughput of SPIDE: cpp_standalone vs runtime vs the discrete-time numpy reference.

All three train the same network (default: the MNIST network 784-256-10, T_f = 30 tau,
T_b = 100 tau, dt = tau/4, online learning) on the same samples, side by side in one process,
so the ratios hold on a shared, noisy machine. The compile time of cpp_standalone is reported
separately and not counted in its samples/s: once cold (an empty build cache, the default)
and once from the cache (a second simulation of the same configuration). Evaluation (free
phase only, cpp_standalone) is measured on the same network.

The network starts untrained; its firing rates (reported) set the event cost, so a trained
network, which fires more in the free phase and less in the perturbed one, runs at a somewhat
different speed.

    python benchmarks/train_throughput.py --json
    python benchmarks/train_throughput.py --dataset digits --layers 128 --json
    python benchmarks/train_throughput.py --threads 2 --json     # OpenMP
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from brian2 import ms, prefs

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian import reference as ref
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.build.training import TrainingSimulation
from fbsnn_brian.io.datasets import load_dataset
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity


def reference_throughput(network: FeedbackNetwork, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Samples/s of the discrete-time numpy SPIDE (one step = tau), gradient and update."""
    start = time.perf_counter()
    for x, label in zip(inputs, labels, strict=True):
        model = network.rate_model()
        gradients = ref.spide_gradients(
            model, x, int(label), n_steps_free=30, n_steps_backward=100, scale=4.0
        )
        network.input_weights = network.input_weights - 0.01 * gradients.input_weights
    return len(inputs) / (time.perf_counter() - start)


CACHED_BUILD = """
import sys
from brian2 import ms
from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.build.training import TrainingSimulation
hidden, n_inputs, n_classes, chunk = (int(v) for v in sys.argv[1:5])
protocol = Protocol(
    [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
    plasticity=SPIDEPlasticity(learning_rate=0.01, scale=4.0),
)
net = FeedbackNetwork(n_inputs=n_inputs, layer_sizes=[hidden], n_classes=n_classes, seed=0)
simulation = TrainingSimulation(net, protocol, device="cpp_standalone", chunk_size=chunk)
simulation._compile()
print(simulation.compile_time_s)
"""


def cached_compile_time(hidden: int, n_inputs: int, n_classes: int, chunk: int) -> float:
    """Compile time of the same configuration in a new Python process (cache hit)."""
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            CACHED_BUILD,
            *(str(v) for v in (hidden, n_inputs, n_classes, chunk)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(output.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="idx:data/mnist-t10k")
    parser.add_argument("--layers", type=int, default=256)
    parser.add_argument("--cpp-samples", type=int, default=400)
    parser.add_argument("--runtime-samples", type=int, default=10)
    parser.add_argument("--reference-samples", type=int, default=50)
    parser.add_argument("--evaluation-samples", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=200, help="training samples per run")
    parser.add_argument("--threads", type=int, default=0, help="OpenMP threads (0: off)")
    parser.add_argument(
        "--warm-cache", action="store_true", help="use the user's build cache (default: empty)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.warm_cache:
        os.environ["FBSNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="fbsnn_bench_cache_")
    prefs.devices.cpp_standalone.openmp_threads = args.threads

    data = load_dataset(args.dataset)
    inputs, labels = data.inputs, data.labels

    def network() -> FeedbackNetwork:
        return FeedbackNetwork(
            n_inputs=data.n_features, layer_sizes=[args.layers], n_classes=data.n_classes, seed=0
        )

    protocol = Protocol(
        [FreePhase(duration=30 * ms), PerturbedPhase(duration=100 * ms)],
        plasticity=SPIDEPlasticity(learning_rate=0.01, scale=4.0),
    )
    results: dict[str, object] = {
        "network": f"{data.n_features}-{args.layers}-{data.n_classes}",
        "dataset": args.dataset,
        "free_tau": 30,
        "perturbed_tau": 100,
        "dt_over_tau": 0.25,
        "openmp_threads": args.threads,
        "cold_cache": not args.warm_cache,
    }

    chunk = args.chunk
    cpp = TrainingSimulation(network(), protocol, device="cpp_standalone", chunk_size=chunk)
    start = time.perf_counter()
    cpp.train_chunk(inputs[:chunk], labels[:chunk], 0.01)  # includes the compilation
    first = time.perf_counter() - start
    start = time.perf_counter()
    n_cpp = 0
    for offset in range(chunk, chunk + args.cpp_samples, chunk):
        stats = cpp.train_chunk(
            inputs[offset : offset + chunk], labels[offset : offset + chunk], 0.01
        )
        n_cpp += chunk
    cpp_rate = n_cpp / (time.perf_counter() - start)
    results["cpp_standalone_compile_s"] = cpp.compile_time_s
    results["cpp_standalone_first_chunk_s"] = first
    results["cpp_standalone_samples_per_s"] = cpp_rate
    results["chunk_size"] = chunk
    results["mean_forward_rate"] = stats.forward_rate
    results["mean_backward_rate"] = stats.backward_rate
    # a later Python session with the same configuration: the build comes from the cache
    results["cpp_standalone_cached_compile_s"] = cached_compile_time(
        args.layers, data.n_features, data.n_classes, chunk
    )

    evaluation = FreeRunSimulation(
        network(),
        Protocol([FreePhase(duration=30 * ms)]),
        device="cpp_standalone",
        chunk_size=1000,
        record_spikes=False,
    )
    evaluation.run(inputs[:1000])  # includes the compilation
    results["evaluation_compile_s"] = evaluation.compile_time_s
    start = time.perf_counter()
    evaluation.run(inputs[: args.evaluation_samples])
    results["evaluation_samples_per_s"] = args.evaluation_samples / (time.perf_counter() - start)

    runtime = TrainingSimulation(network(), protocol, device="runtime")
    n_runtime = args.runtime_samples
    # warm Cython's code cache with a chunk of the same length (table sizes are in the code)
    runtime.train_chunk(inputs[n_runtime : 2 * n_runtime], labels[n_runtime : 2 * n_runtime], 0.01)
    start = time.perf_counter()
    runtime.train_chunk(inputs[:n_runtime], labels[:n_runtime], 0.01)
    runtime_rate = n_runtime / (time.perf_counter() - start)
    results["runtime_samples_per_s"] = runtime_rate

    n_reference = args.reference_samples
    reference_rate = reference_throughput(network(), inputs[:n_reference], labels[:n_reference])
    results["numpy_reference_samples_per_s"] = reference_rate
    results["cpp_standalone_vs_runtime"] = cpp_rate / runtime_rate
    results["cpp_standalone_vs_numpy_reference"] = cpp_rate / reference_rate
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:40s} {value}")


if __name__ == "__main__":
    main()
