"""Intervals over seeds: hand-computed t intervals, bootstrap behaviour, paired differences."""

import numpy as np
import pytest

from metrics.stats import bootstrap_ci, mean_ci, paired_difference_ci

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


def test_bootstrap_ci_brackets_the_statistic_and_is_seeded():
    values = np.random.default_rng(0).normal(10.0, 2.0, 40)
    ci = bootstrap_ci(values, n_boot=500, seed=1)
    assert ci.estimate == pytest.approx(values.mean()) and ci.low < ci.estimate < ci.high
    # the bootstrap width of a mean is close to the normal-theory one (2 * 1.96 * se)
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert tuple(bootstrap_ci(values, n_boot=500, seed=1)) == tuple(ci)
    median = bootstrap_ci(values, stat=np.median, n_boot=200, seed=1)
    assert median.estimate == pytest.approx(np.median(values))


def test_bootstrap_of_constant_values_is_a_point():
    ci = bootstrap_ci([2.0, 2.0, 2.0], n_boot=50)
    assert tuple(ci) == (2.0, 2.0, 2.0)


def test_paired_difference_uses_the_pairs():
    a = [0.80, 0.85, 0.90]
    b = [0.70, 0.76, 0.79]  # differences 0.10, 0.09, 0.11: mean 0.10, sd 0.01, se 0.005774
    mean, low, high = paired_difference_ci(a, b)
    assert mean == pytest.approx(0.10)
    assert (low, high) == pytest.approx(
        (0.10 - T_TABLE[2] * 0.005774, 0.10 + T_TABLE[2] * 0.005774), abs=1e-4
    )
    # unpaired the spread of a and b themselves would swamp the 0.1 difference
    assert low > 0 and mean_ci(a).low < mean_ci(b).high
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference_ci([1.0, 2.0], [1.0])
