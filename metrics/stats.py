"""The Student-t interval of a mean (over seeds, videos or paired differences), used by metrics and reports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
