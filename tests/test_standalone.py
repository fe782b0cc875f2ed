"""cpp_standalone builds: the build cache, private run directories and the network loop."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms

from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol, simulate
from fbsnn_brian.build.devices.standalone import build_key, cache_root, clear_cache
from fbsnn_brian.build.free_run import FreeRunSimulation
from fbsnn_brian.io.datasets import load_digits


def simulation(seed: int = 0) -> FreeRunSimulation:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[10], n_classes=10, seed=seed)
    return FreeRunSimulation(
        network,
        Protocol([FreePhase(duration=10 * ms)]),
        device="cpp_standalone",
        chunk_size=3,
        record_spikes=False,
    )


def test_the_cache_is_reused_and_runs_stay_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FBSNN_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"
    inputs = load_digits().inputs[:3]
    first = simulation()
    rates = first.run(inputs).layer_rates()[0]
    build, _ = first._compile()
    assert not build.cache_hit and not first.build_cache_hit
    notice = capfd.readouterr().err
    assert "fbsnn: compiling the free-phase simulation for cpp_standalone" in notice
    entries = sorted((tmp_path / "cache" / "builds").glob("free_run-*[!k]"))
    assert len(entries) == 1 and entries[0].is_dir()
    # the run took place in a private copy, and left no value files behind
    assert Path(build.directory) != entries[0]
    before = set(os.listdir(Path(build.directory) / "static_arrays"))
    first.run(inputs)
    assert set(os.listdir(Path(build.directory) / "static_arrays")) == before

    second = simulation()  # same configuration: same cache entry, same results
    np.testing.assert_array_equal(second.run(inputs).layer_rates()[0], rates)
    second_build, _ = second._compile()
    assert second_build.cached and second_build.cache_hit and second.build_cache_hit
    assert "fbsnn: compiling" not in capfd.readouterr().err  # a cache hit compiles nothing
    assert second_build.directory != build.directory
    assert len(sorted((tmp_path / "cache" / "builds").glob("free_run-*[!k]"))) == 1

    # the network loop reads the CPU clock after the loop, not at every step
    source = (entries[0] / "network.cpp").read_text()
    loop = source[source.index("while(clock") : source.index("_globally_running = false")]
    assert "elapsed_realtime =" not in loop
    assert "elapsed_realtime =" in source

    work = Path(build.directory)
    del first, build
    gc.collect()
    assert not work.exists()  # the private directory goes with its simulation
    clear_cache()
    assert not (tmp_path / "cache" / "builds").exists()


_BUILD_IN_A_PROCESS = """
import hashlib, json, sys
from pathlib import Path
from brian2 import ms
from fbsnn_brian import FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian.build.free_run import FreeRunSimulation

network = FeedbackNetwork(n_inputs=8, layer_sizes=[4], n_classes=2, seed=0)
simulation = FreeRunSimulation(
    network, Protocol([FreePhase(duration=2 * ms)]), device="cpp_standalone", chunk_size=2,
    record_spikes=False,
)
build, _ = simulation._compile()
(project,) = [entry for entry in (Path(sys.argv[1]) / "builds").iterdir() if entry.is_dir()]
sources = {
    str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
    for path in sorted(project.rglob("*.cpp"))
}
print(json.dumps({"cache_hit": simulation.build_cache_hit, "sources": sources}))
"""


def test_a_build_is_a_cache_hit_in_another_process(tmp_path: Path) -> None:
    # Brian2 resets a run's clocks in the order of a set of Clock objects, which changes
    # with the hash seed; the same configuration must give the same code in every process,
    # so that a later process reuses the compiled binary without recompiling anything
    def build(hash_seed: str) -> tuple[dict[str, object], str]:
        environment = {**os.environ, "FBSNN_CACHE_DIR": str(tmp_path), "PYTHONHASHSEED": hash_seed}
        completed = subprocess.run(
            [sys.executable, "-c", _BUILD_IN_A_PROCESS, str(tmp_path)],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(completed.stdout.splitlines()[-1]), completed.stderr

    first, notice = build("0")
    assert not first["cache_hit"]
    assert "fbsnn: compiling the free-phase simulation for cpp_standalone" in notice
    for hash_seed in ("1", "2", "3"):
        later, notice = build(hash_seed)
        assert later["sources"] == first["sources"], f"PYTHONHASHSEED={hash_seed}"
        assert later["cache_hit"], f"PYTHONHASHSEED={hash_seed}"
        assert "fbsnn: compiling" not in notice


def test_the_key_follows_the_configuration() -> None:
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[10], n_classes=10, seed=0)
    key = build_key("free_run", {"network": network.config()})
    assert key == build_key("free_run", {"network": network.config()})
    other = FeedbackNetwork(n_inputs=64, layer_sizes=[11], n_classes=10, seed=0)
    assert key != build_key("free_run", {"network": other.config()})
    assert key != build_key("training", {"network": network.config()})


def test_runs_that_differ_only_in_their_seed_share_one_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every weight reaches the binary through run_args, so a sweep's seeds reuse one build;
    # the results must still be those of the seed's own weights
    monkeypatch.setenv("FBSNN_CACHE_DIR", str(tmp_path / "cache"))
    inputs = load_digits().inputs[:3]
    simulation(seed=0).run(inputs)
    second = simulation(seed=1)
    rates = second.run(inputs).layer_rates()[0]
    assert second._compile()[0].cached
    reference = simulate(
        FeedbackNetwork(n_inputs=64, layer_sizes=[10], n_classes=10, seed=1),
        Protocol([FreePhase(duration=10 * ms)]),
        inputs=inputs,
        device="numpy",
    )
    np.testing.assert_array_equal(rates, reference.layer_rates()[0])


def test_the_seed_stays_in_the_key_where_it_is_built_into_the_code() -> None:
    from fbsnn_brian.build.free_run import network_key
    from fbsnn_brian.model.biophysics import Biophysics

    def net(seed: int, biophysics: Biophysics | None = None) -> FeedbackNetwork:
        return FeedbackNetwork(
            n_inputs=8, layer_sizes=[4], n_classes=2, seed=seed, biophysics=biophysics
        )

    assert network_key(net(0)) == network_key(net(1))
    assert network_key(net(0), random_feedback=True) != network_key(net(1), random_feedback=True)
    spread = Biophysics(delay=1 * ms, delay_spread=0.5 * ms)
    assert network_key(net(0, spread)) != network_key(net(1, spread))


def _spike_counts(recording: object, population: str, n_samples: int, size: int) -> np.ndarray:
    counts = np.zeros((n_samples, size), dtype=np.int64)
    samples = recording.spike_samples[population]  # type: ignore[attr-defined]
    neurons = recording.spike_neurons[population]  # type: ignore[attr-defined]
    np.add.at(counts, (samples, neurons), 1)
    return counts


@pytest.mark.standalone
def test_cpp_standalone_spikes_exactly_as_the_runtime_simulation() -> None:
    # The ideal IF network (current input, instantaneous synapses, subtractive reset, no noise)
    # with two layers and the feedback loop, 40 digits in chunks of 16 (the last one padded):
    # the compiled binary and Brian2's numpy runtime run the same equations on the same grid,
    # and deliver each step's spikes synapse by synapse in the same order, so every spike
    # count, spike time and readout must be identical. Compared exactly because they were
    # (measured: 5926 and 2658 spikes, every time and readout value equal). Bit-identical
    # membranes are not guaranteed by the build: Brian2 compiles with -O3 -ffast-math
    # -march=native, which allows fused multiply-adds and reassociation and may change v in
    # its last bit, so a spike could move only if a membrane came within a few ulps of the
    # threshold at some step; if this test ever fails by single spikes, that is the first
    # suspect (compare with prefs.codegen.cpp.extra_compile_args_gcc without -ffast-math).
    network = FeedbackNetwork(n_inputs=64, layer_sizes=[32, 16], n_classes=10, seed=5)
    inputs = load_digits().inputs[:40]
    protocol = Protocol([FreePhase(duration=30 * ms)])
    # the same chunks on both devices: a spike's time is the chunk's start plus its time in
    # the chunk, so other chunk boundaries would change the times' last bit (not their step)
    runtime = simulate(network, protocol, inputs=inputs, device="numpy", chunk_size=16)
    compiled = simulate(network, protocol, inputs=inputs, device="cpp_standalone", chunk_size=16)
    for population, size in (("layer_1", 32), ("layer_2", 16)):
        counts = _spike_counts(runtime, population, 40, size)
        assert counts.sum() > 40 * size  # more than one spike per neuron and sample on average
        np.testing.assert_array_equal(_spike_counts(compiled, population, 40, size), counts)
        order = np.lexsort((runtime.spike_neurons[population], runtime.spike_times[population]))
        compiled_order = np.lexsort(
            (compiled.spike_neurons[population], compiled.spike_times[population])
        )
        np.testing.assert_array_equal(
            compiled.spike_times[population][compiled_order],
            runtime.spike_times[population][order],
        )
    np.testing.assert_array_equal(compiled.readout, runtime.readout)
