"""Confidence intervals over seeds and samples: Student t for means, percentile bootstrap otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval; unpacks as ``(estimate, low, high)``.

    ``defined`` is False when the interval could not be estimated (a single value): then
    ``low == high == estimate`` and the interval must not be read as zero uncertainty.
    """

    estimate: float
    low: float
    high: float
    n: int
    level: float
    method: str

    @property
    def defined(self) -> bool:
        return self.n >= 2

    def __iter__(self) -> Iterator[float]:
        return iter((self.estimate, self.low, self.high))


def _values(values: Sequence[float] | np.ndarray, label: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{label}: need at least one value for an interval")
    if not np.isfinite(arr).all():
        raise ValueError(f"{label}: NaN/Inf among {arr.size} values; fix the scores before summarising")
    return arr


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Mean with a Student-t interval (e.g. over training seeds); one value gives an undefined interval."""
    _check_level(level)
    arr = _values(values)
    mean = float(arr.mean())
    if arr.size == 1:
        return Interval(mean, mean, mean, 1, level, "t")
    half = scipy_stats.t.ppf((1.0 + level) / 2.0, arr.size - 1) * arr.std(ddof=1) / np.sqrt(arr.size)
    return Interval(mean, mean - float(half), mean + float(half), int(arr.size), level, "t")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``stat`` over resampled values."""
    _check_level(level)
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    arr = _values(values)
    estimate = float(stat(arr))
    rng = np.random.default_rng(seed)
    draws = np.array([float(stat(arr[rng.integers(0, arr.size, arr.size)])) for _ in range(n_boot)])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), int(arr.size), level, "bootstrap-percentile")


def paired_difference_ci(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, level: float = 0.95
) -> Interval:
    """Student-t interval of mean(a - b) for values paired by position (the same seeds)."""
    arr_a, arr_b = _values(a, "a"), _values(b, "b")
    if arr_a.shape != arr_b.shape:
        raise ValueError(f"paired values need equal lengths, got {arr_a.size} and {arr_b.size}")
    return mean_ci(arr_a - arr_b, level)
