"""Statistics over seeds: mean +- sd and paired 95 % intervals of a difference.

A comparison of rules or conditions trains every arm with the same seeds (same initial weights,
same shuffling), so the accuracies are paired by seed. The interval of the difference of an
arm to the reference arm is the paired t interval: the mean of the per-seed differences plus or
minus ``t(0.975, n - 1) * sd / sqrt(n)``. With one seed there is no interval (NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from fbsnn_brian.errors import ValidationError

__all__ = ["mean_sd", "paired_interval", "format_mean_sd", "format_interval"]

FloatArray = NDArray[np.float64]


def _values(owner: str, name: str, values: Any) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValidationError(f"{owner}: {name} must hold at least one value, got none.")
    return array


def mean_sd(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for a single value).

    Examples
    --------
    >>> mean_sd([0.9, 0.8, 1.0])
    (0.9, 0.1)
    """
    array = _values("mean_sd", "values", values)
    sd = float(np.std(array, ddof=1)) if array.size > 1 else float("nan")
    return round(float(array.mean()), 12), round(sd, 12)


def paired_interval(values: Any, reference: Any, *, level: float = 0.95) -> dict[str, float]:
    """Paired t interval of ``mean(values - reference)`` over seeds.

    Parameters
    ----------
    values, reference : array_like, shape (n_seeds,)
        The arm's and the reference arm's measurement, seed by seed.
    level : float
        Confidence level of the two-sided interval (default 0.95).

    Returns
    -------
    dict
        ``difference`` (mean of the per-seed differences), ``low``, ``high`` (NaN with one
        seed) and ``n_seeds``.

    Examples
    --------
    >>> interval = paired_interval([0.90, 0.92, 0.91], [0.95, 0.96, 0.95])
    >>> round(interval["difference"], 4), interval["low"] < interval["difference"] < 0
    (-0.0433, True)
    """
    owner = "paired_interval"
    first = _values(owner, "values", values)
    second = _values(owner, "reference", reference)
    if first.shape != second.shape:
        raise ValidationError(
            f"{owner}: values and reference must be paired seed by seed, got {first.size} and "
            f"{second.size} values."
        )
    if not 0 < level < 1:
        raise ValidationError(f"{owner}: level must be in (0, 1), got {level!r}.")
    differences = first - second
    n = differences.size
    mean = float(differences.mean())
    if n < 2:
        return {"difference": mean, "low": float("nan"), "high": float("nan"), "n_seeds": n}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * differences.std(ddof=1) / np.sqrt(n))
    return {"difference": mean, "low": mean - half, "high": mean + half, "n_seeds": n}


def format_mean_sd(values: Any, *, scale: float = 1.0, digits: int = 2) -> str:
    """``'mean ± sd'`` of ``values * scale`` (``'mean'`` alone for one value)."""
    mean, sd = mean_sd(np.asarray(values, dtype=np.float64) * scale)
    return f"{mean:.{digits}f}" if np.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def format_interval(interval: dict[str, float], *, scale: float = 1.0, digits: int = 2) -> str:
    """``'+d [low, high]'`` of a :func:`paired_interval` (``'+d'`` without an interval)."""
    difference = interval["difference"] * scale
    if np.isnan(interval["low"]):
        return f"{difference:+.{digits}f}"
    low, high = interval["low"] * scale, interval["high"] * scale
    return f"{difference:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
