"""Fuzzing the public entry points: malformed values raise FbsnnError subclasses, nothing else.

Hypothesis draws values of every awkward kind (wrong shapes and dtypes, NaN and infinities,
strings, None, nested lists, booleans, huge numbers, random TOML text) and feeds them to the
constructors, setters and functions a user calls. A value may be accepted; if it is refused,
the refusal must be an FbsnnError (usually a ValidationError) and never a bare TypeError,
IndexError or a Brian2 traceback. The example counts keep the whole module to seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from brian2 import ms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fbsnn_brian import FbsnnError, FeedbackNetwork, FreePhase, Protocol
from fbsnn_brian import reference as ref
from fbsnn_brian.experiments.run_file import load_run_file
from fbsnn_brian.io.datasets import Dataset, load_dataset
from fbsnn_brian.learning.augmentation import RandomShift
from fbsnn_brian.learning.trainer import Trainer
from fbsnn_brian.model.plasticity import PerturbedPhase, SPIDEPlasticity
from fbsnn_brian.validation import check_choice, check_positive_float, check_positive_int

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.just(np.nan),
    st.just(3 * ms),
)
arrays = st.one_of(
    hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
        elements=None,
    ),
    st.lists(st.one_of(st.floats(), st.text(max_size=2), st.none()), max_size=5),
    st.lists(st.lists(st.floats(-2, 2), max_size=4), max_size=4),
)
anything = st.one_of(scalars, arrays)


def only_fbsnn_errors(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except FbsnnError:
        pass


@FUZZ
@given(value=anything)
def test_validators(value: Any) -> None:
    only_fbsnn_errors(check_positive_int, "fuzz", "n", value)
    only_fbsnn_errors(check_positive_float, "fuzz", "x", value)
    only_fbsnn_errors(check_positive_float, "fuzz", "x", value, allow_zero=True)
    only_fbsnn_errors(check_choice, "fuzz", "name", value, ("if", "lif"))


@FUZZ
@given(
    name=st.sampled_from(
        [
            "n_inputs",
            "layer_sizes",
            "n_classes",
            "neuron",
            "tau",
            "dt",
            "refractory",
            "theta",
            "feedback_gain",
            "seed",
            "input_coding",
            "tau_m",
        ]
    ),
    value=anything,
)
def test_network_configuration(name: str, value: Any) -> None:
    settings_ = {"n_inputs": 4, "layer_sizes": [3], "n_classes": 2}
    settings_[name] = value
    only_fbsnn_errors(FeedbackNetwork, **settings_)


@FUZZ
@given(
    name=st.sampled_from(
        ["input_weights", "feedback_weights", "readout_weights", "readout_bias", "biases"]
    ),
    value=anything,
)
def test_weight_setters_and_inputs(name: str, value: Any) -> None:
    network = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
    before = {key: array.copy() for key, array in network.weight_arrays().items()}
    try:
        setattr(network, name, value)
    except FbsnnError:
        # a refused value loses nothing: every weight is unchanged
        for key, array in network.weight_arrays().items():
            np.testing.assert_array_equal(array, before[key])
    only_fbsnn_errors(network.check_inputs, value)


@FUZZ
@given(value=anything, other=anything)
def test_plasticity_phases_and_protocols(value: Any, other: Any) -> None:
    only_fbsnn_errors(FreePhase, duration=value)
    only_fbsnn_errors(PerturbedPhase, duration=30 * ms, threshold=value, event_size=other)
    for name in ("learning_rate", "scale", "weight_decay", "momentum", "batch_size"):
        only_fbsnn_errors(SPIDEPlasticity, **{name: value})
    only_fbsnn_errors(SPIDEPlasticity, loss=value, feedback=other)
    only_fbsnn_errors(Protocol, value)
    only_fbsnn_errors(RandomShift, max_shift=value, probability=other)


@FUZZ
@given(inputs=anything, labels=anything)
def test_datasets_and_training_inputs(inputs: Any, labels: Any) -> None:
    only_fbsnn_errors(Dataset, inputs=inputs, labels=labels, n_classes=3, name="fuzz")
    network = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0)
    protocol = Protocol(
        [FreePhase(duration=2 * ms), PerturbedPhase(duration=2 * ms)],
        plasticity=SPIDEPlasticity(),
    )
    trainer = Trainer(network, protocol, device="numpy", progress=False)
    # only the validation runs: every malformed pair is refused before a simulation starts
    try:
        trainer.fit(inputs, labels, epochs=1)
    except FbsnnError:
        return
    assert np.asarray(inputs).shape[1:] == (4,)


@FUZZ
@given(x=anything, label=anything)
def test_reference_functions(x: Any, label: Any) -> None:
    model = FeedbackNetwork(n_inputs=4, layer_sizes=[3], n_classes=2, seed=0).rate_model()
    only_fbsnn_errors(ref.fixed_point, model, x)
    only_fbsnn_errors(ref.ide_gradients, model, x, label)


@FUZZ
@given(spec=st.one_of(st.text(max_size=30), scalars))
def test_dataset_specs(spec: Any) -> None:
    if isinstance(spec, str) and spec == "digits":
        return
    only_fbsnn_errors(load_dataset, spec)


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=80),
        st.lists(
            st.tuples(
                st.sampled_from(["data", "network", "protocol", "training", "other"]),
                st.sampled_from(["epochs", "layers", "dataset", "learning_rate", "bogus"]),
                st.sampled_from(['"x"', "1", "1.5", "[1, 2]", "[]", "true", "{a = 1}", "[1.5]"]),
            ),
            max_size=4,
        ).map(lambda rows: "".join(f"[{t}]\n{k} = {v}\n" for t, k, v in rows)),
    )
)
def test_run_files(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "run.toml"
    path.write_text(text)
    only_fbsnn_errors(load_run_file, path)
