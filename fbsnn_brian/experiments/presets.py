"""Training presets per kind of data set, chosen on a validation split of the training part.

A preset is a subset of the run settings (the fields of
:class:`fbsnn_brian.experiments.settings.RunSettings`, which checks every preset against them
when it is imported); ``fbsnn train`` applies the preset of its data set (:func:`default_preset`)
over the defaults, and explicit options over the preset. Each preset was selected by
``analysis/select_presets.py``: for each candidate of a small grid and each seed, a network
trained on the training part minus a validation split carved from it, and the candidate with
the best mean final validation accuracy over the seeds was chosen. The test part was never
evaluated. The committed result files hold every run's per-epoch validation accuracy.

======== ===================================================== ===============================
preset   values                                                how chosen
======== ===================================================== ===============================
digits   layers [128], 30 epochs, lr 0.08, cosine, weight      grid lr {0.02, 0.04, 0.08} x
         decay 1e-3, no shifts; validation 98.80 +- 0.34 %     shift {0, 1}, seeds 0 and 1;
         (the former defaults, lr 0.04 with shifts:            1193 train / 209 validation of
         97.85 +- 1.01 %)                                      the 1402 training digits
mnist    layers [256], 5 epochs, lr 0.02, constant, no weight  grid lr {0.005, 0.01, 0.02},
         decay, no shifts; validation 97.40 % (lr 0.01: 96.50, 5 epochs (not 8: time), seed 0;
         lr 0.005: 95.60)                                      first 7000 / last 1000 of the
                                                               8000 training images
generic  layers [64], 30 epochs, lr 0.01, constant, weight     grid lr {0.01, 0.02, 0.04} x
         decay 1e-3, no shifts (no image augmentation);        {constant, cosine}, seeds 0, 1;
         validation 93.28 +- 3.17 % on two classes (64 %      breast cancer data (min-max
         majority); lr 0.04 ties, lower late-epoch mean        scaled npz), 377 / 67 of 444
======== ===================================================== ===============================

Commands and result files::

    python analysis/select_presets.py --preset digits --out analysis/results/presets_digits.json
    python analysis/select_presets.py --preset mnist --epochs 5 \\
        --out analysis/results/presets_mnist.json
    python analysis/select_presets.py --preset generic --out analysis/results/presets_generic.json
    python analysis/select_presets.py --preset generic --rescore \\
        --out analysis/results/presets_generic.json
"""

from __future__ import annotations

import copy

from fbsnn_brian.errors import ValidationError

__all__ = ["MNIST_FEATURES", "PRESETS", "PresetValue", "default_preset", "preset_settings"]

#: Number of features (28 x 28 pixels) of an IDX data set that gets the ``mnist`` preset.
MNIST_FEATURES = 784

#: The value of a setting a preset sets.
PresetValue = str | int | float | bool | list[int]

#: Run settings of each preset (fields of :class:`fbsnn_brian.experiments.settings.RunSettings`).
PRESETS: dict[str, dict[str, PresetValue]] = {
    "digits": {
        "layers": [128],
        "epochs": 30,
        "learning_rate": 0.08,
        "schedule": "cosine",
        "weight_decay": 0.001,
        "shift": 0,
    },
    "mnist": {
        "layers": [256],
        "epochs": 5,
        "learning_rate": 0.02,
        "schedule": "constant",
        "weight_decay": 0.0,
        "shift": 0,
    },
    "generic": {
        "layers": [64],
        "epochs": 30,
        "learning_rate": 0.01,
        "schedule": "constant",
        "weight_decay": 0.001,
        "shift": 0,
    },
}


def default_preset(dataset_spec: str, n_features: int) -> str:
    """Name the preset of a data set.

    Parameters
    ----------
    dataset_spec : str
        A data set spec of :func:`fbsnn_brian.io.datasets.load_dataset`.
    n_features : int
        Number of features per sample of that data set.

    Returns
    -------
    str
        ``'digits'`` for the digits, ``'mnist'`` for an ``idx:`` directory of 784-feature
        images, ``'generic'`` for everything else.

    Examples
    --------
    >>> default_preset("digits", 64)
    'digits'
    >>> default_preset("idx:/data/mnist", 784)
    'mnist'
    >>> default_preset("npz:/data/wine.npz", 13)
    'generic'
    """
    scheme = dataset_spec.partition(":")[0]
    if scheme == "digits":
        return "digits"
    if scheme == "idx" and n_features == MNIST_FEATURES:
        return "mnist"
    return "generic"


def preset_settings(name: object) -> dict[str, PresetValue]:
    """Return a copy of the run settings of preset ``name``.

    Parameters
    ----------
    name : str
        One of the keys of :data:`PRESETS` (any other value is refused).

    Returns
    -------
    dict
        The preset's settings (a deep copy, safe to change).

    Raises
    ------
    ValidationError
        If ``name`` is not a preset; the message names ``--preset``, the value and the allowed
        names.

    Examples
    --------
    >>> preset_settings("mnist")["learning_rate"]
    0.02
    """
    if not isinstance(name, str) or name not in PRESETS:
        allowed = ", ".join(repr(key) for key in PRESETS)
        raise ValidationError(f"--preset must be one of {allowed}, got {name!r}.")
    return copy.deepcopy(PRESETS[name])
