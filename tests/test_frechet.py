"""Fréchet distance: closed forms, invariances, sampling behaviour, streaming statistics."""

import numpy as np
import pytest
import torch

from metrics.frechet import (
    FeatureError,
    FeatureStats,
    StatsFileError,
    bootstrap_values,
    frechet_bootstrap,
    frechet_distance,
    frechet_distance_from_stats,
    is_reliable,
)


def random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def test_identical_stats_give_zero():
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal(16), random_spd(16, rng)
    assert abs(frechet_distance_from_stats(mu, s, mu, s)) < 1e-8


def test_equal_covariance_gives_squared_mean_difference():
    rng = np.random.default_rng(1)
    mu1, mu2, s = rng.standard_normal(12), rng.standard_normal(12), random_spd(12, rng)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance_from_stats(mu1, s, mu2, s) == pytest.approx(expected, rel=1e-9)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(2)
    sd1, sd2 = rng.uniform(0.1, 3, 10), rng.uniform(0.1, 3, 10)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((sd1 - sd2) ** 2)
    got = frechet_distance_from_stats(mu1, np.diag(sd1**2), mu2, np.diag(sd2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_d400_identity_vs_four_identity_example_is_404():
    d = 400
    got = frechet_distance_from_stats(np.zeros(d), np.eye(d), np.full(d, 0.1), 4 * np.eye(d))
    assert got == pytest.approx(404.0, rel=1e-10)


def test_commuting_covariances_and_rotation_invariance():
    rng = np.random.default_rng(3)
    d = 9
    q = random_rotation(d, rng)
    a, b = rng.uniform(0.2, 4, d), rng.uniform(0.2, 4, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance_from_stats(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)
    # A generic (non-commuting) pair keeps its distance under the same rotation of both sets.
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    plain = frechet_distance_from_stats(mu1, s1, mu2, s2)
    rotated = frechet_distance_from_stats(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert rotated == pytest.approx(plain, rel=1e-9)


def test_symmetric_and_agrees_with_eigvals_reference():
    rng = np.random.default_rng(4)
    for d in (3, 20, 64):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(d, rng), random_spd(d, rng)
        fd = frechet_distance_from_stats(mu1, s1, mu2, s2)
        assert frechet_distance_from_stats(mu2, s2, mu1, s1) == pytest.approx(fd, rel=1e-9)
        # torch-fidelity style: Tr sqrt(S1 S2) from the (real, non-negative) eigenvalues of S1 S2.
        tr_sqrt = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real)
        reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
        assert fd == pytest.approx(reference, rel=1e-6)


def test_a_set_against_itself_is_zero_and_never_negative():
    rng = np.random.default_rng(5)
    for n, d in ((50, 8), (30, 64), (5, 40)):
        x = rng.standard_normal((n, d)) * rng.uniform(0.01, 100)
        fd = frechet_distance(x, x)
        assert 0.0 <= fd < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_rank_deficient_sets_give_finite_non_negative_distance():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((10, 50)), rng.standard_normal((12, 50)) + 0.5
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 0


def test_sample_estimate_matches_closed_form_within_sampling_error():
    # d=8, N(0.5*1, I) vs N(0, 4I): true FD = 8*0.25 + 8*(2-1)^2 = 10. With N=20000 per set the
    # estimator's standard deviation is about 0.05 and its bias about 0.002, so 0.3 is ~6 sd.
    rng = np.random.default_rng(7)
    a = rng.standard_normal((20000, 8)) + 0.5
    b = 2.0 * rng.standard_normal((20000, 8))
    assert frechet_distance(a, b) == pytest.approx(10.0, abs=0.3)


def test_small_sample_bias_decreases_towards_the_true_value_at_d400():
    # metrics.md §1.5: N(0, I) vs N(0, 4I) in d=400, true FD 400; estimates 1521 / 996 / 477.
    rng = np.random.default_rng(8)
    estimates = []
    for n in (64, 256, 2048):
        a = rng.standard_normal((n, 400), dtype=np.float32)
        b = 2.0 * rng.standard_normal((n, 400), dtype=np.float32)
        estimates.append(frechet_distance(a, b))
    assert estimates[0] > estimates[1] > estimates[2] > 400.0
    assert estimates[2] == pytest.approx(400.0, rel=0.25)


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((40, 6)), rng.standard_normal((30, 6))
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        frechet_distance(a.astype(np.float32), b.astype(np.float32)), rel=1e-9
    )


@pytest.mark.parametrize(
    "a, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.ones((1, 2)), "at least 2"),
        (np.ones(5), "2-D"),
    ],
)
def test_bad_features_raise(a, match):
    with pytest.raises(FeatureError, match=match):
        frechet_distance(a, np.random.default_rng(0).standard_normal((5, 2)))


def test_dimension_mismatch_raises():
    with pytest.raises(FeatureError, match="dimensions differ"):
        frechet_distance(np.random.rand(5, 3), np.random.rand(5, 4))


def test_a_clearly_negative_result_is_reported_not_clamped():
    # Negative-definite "covariances" are refused before the formula; a negative result can then come only
    # from a numerical bug, which is raised rather than clamped.
    with pytest.raises(FeatureError, match="indefinite"):
        frechet_distance_from_stats(np.zeros(3), -np.eye(3), np.zeros(3), -np.eye(3))
    from metrics.frechet import _non_negative

    with pytest.raises(ArithmeticError, match="negative"):
        _non_negative(-1.0, 3.0)
    assert _non_negative(-1e-9, 3.0) == 0.0


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_streaming_stats_equal_numpy_cov(offset):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((57, 7)) * rng.uniform(0.5, 2, 7) + offset
    stats = FeatureStats(7)
    for lo, hi in ((0, 1), (1, 20), (20, 21), (21, 57)):
        stats.update(x[lo:hi])
    assert stats.n == 57
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-8, atol=1e-10)
    assert stats.frechet_distance(FeatureStats.from_features(x)) < 1e-8


def test_stats_save_load_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(11)
    stats = FeatureStats.from_features(rng.standard_normal((30, 5)), meta={"extractor": "toy", "frames": 16})
    path = stats.save(tmp_path / "ref" / "stats.npz")
    loaded = FeatureStats.load(path)
    assert loaded.n == 30 and loaded.dim == 5 and loaded.meta == {"extractor": "toy", "frames": 16}
    assert np.array_equal(loaded.mean, stats.mean) and np.array_equal(loaded.cov, stats.cov)


def test_stats_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        FeatureStats.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(StatsFileError, match="other.npz"):
        FeatureStats.load(tmp_path / "other.npz")
    with pytest.raises(FeatureError, match="dimension 3"):
        FeatureStats(4).update(np.ones((2, 3)))
    with pytest.raises(FeatureError, match="at least 2"):
        _ = FeatureStats.from_features(np.ones((1, 4))).cov


def test_bootstrap_interval_holds_the_estimate_and_is_seeded():
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((200, 4)), rng.standard_normal((200, 4)) + 0.3
    fd = frechet_distance(a, b)
    low, high = frechet_bootstrap(a, b, n_boot=100, seed=3)
    assert low < fd < high
    assert frechet_bootstrap(a, b, n_boot=100, seed=3) == (low, high)
    assert frechet_bootstrap(a, b, n_boot=100, seed=4) != (low, high)
    # Reference statistics are resampled too (parametrically), so the interval is about as wide.
    fixed_low, fixed_high = frechet_bootstrap(a, FeatureStats.from_features(b), n_boot=100, seed=3)
    assert fixed_low < fd < fixed_high
    assert 0.6 < (fixed_high - fixed_low) / (high - low) < 1.6


def test_interval_holds_its_estimate_where_the_percentile_interval_missed_it():
    # The regime of the issue: far fewer generated samples than dimensions against fixed statistics,
    # where every resample's FD lies above the estimate.
    rng = np.random.default_rng(5)
    gen, ref = rng.standard_normal((30, 60)) + 0.2, FeatureStats.from_features(rng.standard_normal((500, 60)))
    fd = frechet_distance_from_stats(gen.mean(0), np.cov(gen, rowvar=False), ref.mean, ref.cov)
    estimate, values = bootstrap_values(gen, ref, n_boot=50, seed=0)
    assert estimate == pytest.approx(fd, rel=1e-6) and (values > fd).all()  # a percentile interval misses it
    low, high = frechet_bootstrap(gen, ref, n_boot=50, seed=0)
    assert 0.0 <= low <= fd <= high


@pytest.mark.parametrize("d, expected", [(2, (0.90, 0.98)), (5, (0.90, 0.98))])
def test_interval_covers_the_true_distance_of_known_gaussians(d, expected):
    rng = np.random.default_rng(d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = np.eye(d), np.diag(np.linspace(0.5, 2.0, d))
    true = frechet_distance_from_stats(mu1, s1, mu2, s2)
    reps, hits = 200, 0
    for rep in range(reps):
        a, b = rng.multivariate_normal(mu1, s1, 60), rng.multivariate_normal(mu2, s2, 60)
        low, high = frechet_bootstrap(a, b, n_boot=200, seed=rep)
        hits += low <= true <= high
    assert expected[0] <= hits / reps <= expected[1]


@pytest.mark.parametrize("n, d", [(50, 3), (4, 6)])
def test_parametric_reference_draws_have_the_right_mean_and_spread(n, d):
    from metrics.frechet import _parametric_stats

    rng = np.random.default_rng(n)
    stats = FeatureStats.from_features(rng.standard_normal((n, d)) @ random_spd(d, rng) + 3.0)
    means, covs = _parametric_stats(stats, np.random.default_rng(0), 4000, ddof=1)
    assert np.allclose(covs.mean(0), stats.cov, atol=0.1 * np.abs(stats.cov).max())  # E[W(S, n-1)] = (n-1) S
    assert np.allclose(np.cov(means, rowvar=False), stats.cov / n, atol=0.1 * np.abs(stats.cov).max() / n)
    assert np.linalg.matrix_rank(covs[0]) == min(d, n - 1)


def test_indefinite_covariances_are_refused_with_the_set_named():
    s = np.diag([1.0, 2.0, -0.5])
    with pytest.raises(FeatureError, match=r"second set: covariance is indefinite.*recompute"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(3), s)
    nearly = np.eye(3) - 1e-12 * np.ones((3, 3))  # rounding-sized negative parts pass
    assert frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(3), nearly) >= 0.0


def test_ddof_is_the_covariance_divisor():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((20, 3)), rng.standard_normal((30, 3)) * 2
    stats = FeatureStats.from_features(a)
    assert np.allclose(stats.covariance(0), np.cov(a, rowvar=False, ddof=0))
    assert np.allclose(stats.covariance(1), stats.cov)
    by_n = frechet_distance_from_stats(a.mean(0), np.cov(a.T, ddof=0), b.mean(0), np.cov(b.T, ddof=0))
    assert frechet_distance(a, b, ddof=0) == pytest.approx(by_n, rel=1e-12)
    assert frechet_distance(a, b, ddof=0) != pytest.approx(frechet_distance(a, b), rel=1e-6)
    with pytest.raises(ValueError, match="ddof must be 0"):
        frechet_distance(a, b, ddof=2)


def test_reliability_needs_more_samples_than_dimensions():
    assert is_reliable(401, 400) and not is_reliable(400, 400) and not is_reliable(31, 400)


@pytest.mark.parametrize("n", [3, 12, 40])
def test_samples_to_stats_equals_the_dense_path_for_few_and_many_samples(n):
    from metrics.frechet import frechet_distance_samples_to_stats

    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 16)) * 2.0 + 1.0
    ref = rng.normal(size=(64, 16))
    mu_b, s_b = ref.mean(0), np.cov(ref, rowvar=False)
    dense = frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), mu_b, s_b)
    # The dense path takes square roots of rounding-noise eigenvalues of a rank-deficient covariance
    # (sqrt(1e-16) = 1e-8 each), so agreement is to ~1e-8, not machine precision.
    assert frechet_distance_samples_to_stats(a, mu_b, s_b) == pytest.approx(dense, rel=1e-6)
