"""The fbsnn command line."""

from __future__ import annotations

import json

import pytest

from fbsnn_brian.cli.main import main


def test_check_equilibrium_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "check",
            "equilibrium",
            "--layers",
            "40",
            "--duration",
            "100",
            "--samples",
            "3",
            "--device",
            "numpy",
            "--json",
        ]
    )
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "mean_abs_error",
        "max_abs_error",
        "duration_tau",
        "n_neurons",
        "n_samples",
        "device",
        "wall_time_s",
    ):
        assert key in result
    assert result["n_neurons"] == 40 and result["n_samples"] == 3 and result["duration_tau"] == 100
    # 1/(2T) quantisation plus the transient: well below 0.01 at T = 100 tau
    assert result["mean_abs_error"] < 0.01
    # silent neurons are exact and dilute the mean; the active ones carry the whole error
    assert 0 < result["n_active"] < result["n_rates"] == 40 * 3
    inactive = result["n_rates"] - result["n_active"]
    assert result["active_mean_abs_error"] * result["n_active"] == pytest.approx(
        result["mean_abs_error"] * result["n_rates"], abs=inactive * 1e-2
    )
    assert result["active_mean_abs_error"] > result["mean_abs_error"]


def test_check_equilibrium_multilayer_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["check", "equilibrium", "--layers", "20,10", "--samples", "2", "--device", "numpy"])
        == 0
    )
    out = capsys.readouterr().out
    assert "mean |a - a*|" in out and "[20, 10]" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "gpu"], "device must be one of"),
        (["--inputs", "100"], "--inputs must be between 1 and 64"),
        (["--duration", "-3"], "--duration must be a positive number of tau"),
        (["--neuron", "izh"], "neuron must be one of 'if', 'lif'"),
    ],
)
def test_bad_arguments_give_one_clear_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["check", "equilibrium", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fbsnn: error:") and message in err
    assert "Traceback" not in err


def test_bad_layer_list_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "equilibrium", "--layers", "10,x"])
    assert info.value.code == 2
    assert "--layers must be comma-separated positive integers" in capsys.readouterr().err
