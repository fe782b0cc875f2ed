"""Shared fixtures: Brian2's global state is reset around every test."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from brian2 import prefs
from brian2.devices.device import set_device

from fbsnn_brian.io.datasets import load_digits


@pytest.fixture(autouse=True)
def brian2_runtime_state() -> Iterator[None]:
    """Each test starts and ends in runtime mode with the numpy code target."""
    set_device("runtime")
    previous = prefs.codegen.target
    prefs.codegen.target = "numpy"
    yield
    set_device("runtime")
    prefs.codegen.target = previous


@pytest.fixture(scope="session")
def digits_inputs() -> np.ndarray:
    """The digits' inputs in [0, 1] (1797 x 64)."""
    return load_digits().inputs


@pytest.fixture(scope="session")
def digits_labels() -> np.ndarray:
    """The digits' labels (1797 integers in [0, 10))."""
    return load_digits().labels
