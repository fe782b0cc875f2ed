"""Sweeps on Dask: a LocalCluster and a separately started scheduler give the same Dataset."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fbsnn_brian import ValidationError
from fbsnn_brian.experiments.sweep import load_sweep_file, run_sweep
from fbsnn_brian.io.netcdf import read_dataset, write_dataset

SMALL = """
[data]
dataset = "digits"
train_size = 40
test_size = 20
[network]
layers = [8]
[protocol]
free_tau = 10.0
perturbed_tau = 10.0
[training]
epochs = 1
device = "numpy"
shift = 0
chunk_size = 20
[sweep]
seeds = [0, 1]
[[sweep.conditions]]
name = "ideal"
[[sweep.conditions]]
name = "no_weight_transport"
feedback = "random"
[[sweep.conditions]]
name = "broken"
neuron = "izhikevich"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def local_result(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    spec = load_sweep_file(write(tmp_path_factory.mktemp("sweep"), SMALL))
    return run_sweep(spec, n_workers=2)


def test_a_local_sweep_runs_every_pair_and_records_the_failure(local_result: xr.Dataset) -> None:
    assert list(local_result["condition"].values) == ["ideal", "no_weight_transport", "broken"]
    assert list(local_result["seed"].values) == [0, 1]
    ok = local_result.sel(condition=["ideal", "no_weight_transport"])
    assert np.all(ok["status"].values == "ok")
    accuracy = ok["test_accuracy"].values
    assert np.all((accuracy >= 0.0) & (accuracy <= 1.0))
    assert np.all(ok["samples_per_s"].values > 0) and np.all(ok["loop_gain"].values < 1)
    broken = local_result.sel(condition="broken")
    assert np.all(broken["status"].values == "failed")
    assert np.all(np.isnan(broken["test_accuracy"].values))
    assert all("neuron must be one of 'if', 'lif'" in e for e in broken["error"].values)
    assert json.loads(local_result.attrs["conditions"])["broken"] == {"neuron": "izhikevich"}


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_the_sweep_dataset_round_trips(
    local_result: xr.Dataset, tmp_path: Path, suffix: str
) -> None:
    loaded = read_dataset(write_dataset(local_result, tmp_path / f"sweep{suffix}"))
    xr.testing.assert_identical(loaded, local_result)


def test_a_separate_scheduler_gives_the_same_dataset(
    local_result: xr.Dataset, tmp_path: Path
) -> None:
    dask = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--scheduler-file", str(info), "--port", "0", "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        worker = subprocess.Popen(
            [dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        spec = load_sweep_file(write(tmp_path, SMALL))
        remote = run_sweep(spec, scheduler=address)
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    assert remote.attrs["scheduler"] == address
    for name in ("test_accuracy", "train_accuracy", "mean_forward_rate", "loop_gain", "status"):
        np.testing.assert_array_equal(remote[name].values, local_result[name].values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[data]\ndataset = 'digits'\n", "needs a [sweep] table"),
        ("[sweep]\nseeds = [1, 1]\n", "seeds must be a list of distinct non-negative integers"),
        ("[sweep]\nseeds = [-1]\n", "seeds must be a list of distinct non-negative integers"),
        ("[sweep]\n[[sweep.conditions]]\nlayers = [3]\n", "#1 needs a name"),
        (
            "[sweep]\n[[sweep.conditions]]\nname = 'a'\nneurons = 'lif'\n",
            "#1 ('a'): unknown settings ['neurons']",
        ),
        (
            "[sweep]\n[[sweep.conditions]]\nname = 'a'\n[[sweep.conditions]]\nname = 'a'\n",
            "#2: the name 'a' is used twice",
        ),
        ("[trainig]\n[sweep]\n", "unknown table [trainig]"),
    ],
)
def test_bad_sweep_files_are_reported(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_sweep_file(write(tmp_path, text))
    assert message in str(info.value)


def test_the_shipped_plausibility_sweep_loads_and_its_conditions_build() -> None:
    from fbsnn_brian.experiments.runs import DEFAULTS, network_from_settings

    spec = load_sweep_file(Path(__file__).parents[1] / "protocols" / "plausibility.toml")
    assert list(spec["conditions"]) == [
        "ideal_if",
        "lif_leak",
        "lif_weighted_rate",
        "exponential_synapse",
        "conductance_synapse",
        "delays",
        "long_refractory",
        "reset_to_rest",
        "membrane_noise",
        "dale_law",
        "no_weight_transport",
        "weak_feedback_loop",
    ]
    assert spec["seeds"] == [0, 1, 2] and spec["base"]["epochs"] == 15
    # every condition describes a valid network (a typo would only fail inside the sweep)
    networks = {
        name: network_from_settings({**DEFAULTS, **spec["base"], **overrides}, 64, 10)
        for name, overrides in spec["conditions"].items()
    }
    assert networks["dale_law"].biophysics.excitatory_fraction == 0.8
    assert networks["delays"].biophysics.has_delays
    assert not networks["ideal_if"].biophysics.has_delays


def test_the_claims_table_reports_the_sweep(local_result: xr.Dataset, tmp_path: Path) -> None:
    from fbsnn_brian.experiments.claims import claims_table

    table = claims_table(local_result)
    lines = table.splitlines()
    assert lines[0] == "| claim | ideal | no_weight_transport | broken |"
    accuracy = local_result["test_accuracy"].sel(condition="ideal").values * 100
    expected = f"{accuracy.mean():.2f} ± {accuracy.std(ddof=1):.2f}"
    assert f"| spike-only computation: test accuracy (%) | {expected} |" in table
    assert "| locality: backward weights | transpose | random, fixed | transpose |" in table
    assert "| 20 tau = 80 steps |" in table  # T_f + T_b of the sweep file, dt = tau/4
    assert "failed |" in table and "2 failed runs" in table
    # the script writes the same table
    path = write_dataset(local_result, tmp_path / "sweep.nc")
    script = Path(__file__).parents[1] / "analysis" / "claims_table.py"
    out = tmp_path / "claims.md"
    figure = tmp_path / "conditions.png"
    subprocess.run(
        [sys.executable, str(script), str(path), "--out", str(out), "--figure", str(figure)],
        check=True,
    )
    assert out.read_text() == table
    assert figure.stat().st_size > 1000
