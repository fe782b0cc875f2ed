"""Sweeps on Dask: a LocalCluster and a separately started scheduler give the same Dataset.

Every condition is summarised over seeds: mean ± sd of its test accuracy and the paired 95 %
t interval of its difference to the reference condition (the file's first).
"""

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
from fbsnn_brian.experiments.sweep import condition_summary, load_sweep_file, run_sweep
from fbsnn_brian.io.netcdf import read_dataset, write_dataset

# quantiles t(0.975, df) of Student's t by degrees of freedom df = n - 1, from the tables
T_975 = {1: 12.706205, 2: 4.302653}

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
    # one worker process: the results do not depend on the number of workers
    return run_sweep(spec, n_workers=1)


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
    for name in (
        "test_accuracy",
        "train_accuracy",
        "mean_forward_rate",
        "loop_gain",
        "status",
        "test_accuracy_mean",
        "test_accuracy_difference",
    ):
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
    from fbsnn_brian.experiments.runs import network_from_settings
    from fbsnn_brian.experiments.settings import RunSettings

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
        "no_feedback",
    ]
    assert spec["seeds"] == [0, 1, 2] and spec["base"]["epochs"] == 8
    assert spec["base"]["alignment_directions"] == 8
    assert spec["conditions"]["no_feedback"] == {"no_feedback": True}
    # every condition describes a valid network (a typo would only fail inside the sweep)
    networks = {
        name: network_from_settings(RunSettings.from_values({**spec["base"], **overrides}), 64, 10)
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
    # the paired interval of two seeds: mean difference +- t(0.975, 1) sd / sqrt(2)
    differences = 100 * (
        local_result["test_accuracy"].sel(condition="no_weight_transport").values
        - local_result["test_accuracy"].sel(condition="ideal").values
    )
    half = T_975[1] * differences.std(ddof=1) / np.sqrt(2)
    mean = differences.mean()
    interval = f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"
    assert (
        f"| test accuracy change vs ideal, paired 95 % interval (points) | reference | "
        f"{interval} | failed |"
    ) in table
    assert "| locality: backward weights | transpose | random, fixed | transpose |" in table
    assert "| feedback loop W_fb | learned | learned | learned |" in table
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


def test_the_sweep_reports_each_condition_against_the_reference(local_result: xr.Dataset) -> None:
    summary = condition_summary(local_result)
    for name in summary.data_vars:
        np.testing.assert_array_equal(local_result[name].values, summary[name].values)
    assert local_result.attrs["reference_condition"] == "ideal"
    ideal = local_result.sel(condition="ideal")
    accuracies = ideal["test_accuracy"].values
    assert float(ideal["test_accuracy_mean"]) == pytest.approx(accuracies.mean(), abs=1e-12)
    assert float(ideal["test_accuracy_sd"]) == pytest.approx(accuracies.std(ddof=1), abs=1e-12)
    assert float(ideal["test_accuracy_difference"]) == 0.0
    assert local_result["n_paired_seeds"].values.tolist() == [2, 2, 0]
    broken = local_result.sel(condition="broken")
    assert np.isnan(float(broken["test_accuracy_mean"]))
    assert np.isnan(float(broken["test_accuracy_difference"]))


def test_condition_summary_pairs_the_seeds_at_which_both_finished() -> None:
    # reference 0.90, 0.92, 0.94, 0.91; "lif" failed at seed 2: its differences pair seeds 0, 1
    # and 3 only (-0.05, -0.02, -0.03); "broken" failed everywhere
    sweep = xr.Dataset(
        {
            "test_accuracy": (
                ("condition", "seed"),
                [
                    [0.90, 0.92, 0.94, 0.91],
                    [0.85, 0.90, np.nan, 0.88],
                    [np.nan] * 4,
                ],
            )
        },
        coords={"condition": ["ideal", "lif", "broken"], "seed": [0, 1, 2, 3]},
    )
    summary = condition_summary(sweep)
    lif = summary.sel(condition="lif")
    assert float(lif["test_accuracy_mean"]) == pytest.approx(2.63 / 3, abs=1e-12)
    assert float(lif["test_accuracy_sd"]) == pytest.approx(np.std([0.85, 0.90, 0.88], ddof=1))
    differences = np.array([-0.05, -0.02, -0.03])
    half = T_975[2] * differences.std(ddof=1) / np.sqrt(3)
    assert float(lif["test_accuracy_difference"]) == pytest.approx(-0.1 / 3, abs=1e-12)
    # the quantile is given to 7 digits: the bounds agree to about 1e-7 of the half-width
    assert float(lif["test_accuracy_difference_low"]) == pytest.approx(-0.1 / 3 - half, abs=1e-8)
    assert float(lif["test_accuracy_difference_high"]) == pytest.approx(-0.1 / 3 + half, abs=1e-8)
    assert summary["n_paired_seeds"].values.tolist() == [4, 3, 0]
    ideal = summary.sel(condition="ideal")
    assert float(ideal["test_accuracy_difference_low"]) == 0.0
    assert np.isnan(float(summary.sel(condition="broken")["test_accuracy_mean"]))
    assert summary.attrs == {"reference_condition": "ideal", "interval_level": 0.95}


def test_seeds_default_to_three_and_the_command_line_overrides_them(tmp_path: Path) -> None:
    from fbsnn_brian.cli.parsers import build_parser

    text = SMALL.replace("seeds = [0, 1]\n", "")
    assert load_sweep_file(write(tmp_path, text))["seeds"] == [0, 1, 2]
    assert load_sweep_file(write(tmp_path, SMALL))["seeds"] == [0, 1]
    assert load_sweep_file(write(tmp_path, SMALL), n_seeds=4)["seeds"] == [0, 1, 2, 3]
    with pytest.raises(ValidationError, match="n_seeds .* must be a positive integer, got 0"):
        load_sweep_file(write(tmp_path, SMALL), n_seeds=0)
    assert build_parser().parse_args(["sweep", "file.toml", "--seeds", "5"]).seeds == 5
    assert build_parser().parse_args(["sweep", "file.toml"]).seeds is None


def test_the_sweep_command_runs_the_seeds_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fbsnn_brian.cli.main import main

    one_condition = (
        SMALL[: SMALL.index("[[sweep.conditions]]")] + '[[sweep.conditions]]\nname = "ideal"\n'
    )
    path = write(tmp_path, one_condition)
    out = tmp_path / "sweep.nc"
    status = main(
        ["sweep", str(path), "--seeds", "1", "--workers", "1", "--out", str(out), "--json"]
    )
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeds"] == [0] and result["reference_condition"] == "ideal"
    ideal = result["conditions"]["ideal"]
    assert len(ideal["test_accuracy"]) == 1 and ideal["sd"] is None  # one seed: no sd
    assert ideal["difference"] == 0.0 and ideal["difference_low"] is None
    assert list(read_dataset(out)["seed"].values) == [0]
