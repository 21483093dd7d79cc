"""Fréchet distance between Gaussian fits of two feature sets, in float64, without scipy.linalg.sqrtm.

FD = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr sqrt(S1 S2).

Tr sqrt(S1 S2) is computed in the symmetric form: the eigenvalues of S1^(1/2) S2 S1^(1/2), from
``numpy.linalg.eigh`` of symmetric PSD matrices only, so the result is real by construction and stays
finite for rank-deficient covariances (N <= d). sqrtm is avoided on purpose: its scipy versions
gave negative or 1e28-sized FVDs (metrics.md §1.6) and its ``disp`` argument goes away in scipy 1.18.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Relative tolerance for "negative only by rounding"; values below -tol * scale mean a bug.
_NEGATIVE_TOL = 1e-6


class FeatureError(ValueError):
    """Features that cannot enter a Fréchet distance (wrong shape, too few, NaN/Inf)."""


class StatsFileError(ValueError):
    """A statistics file that is not a FeatureStats .npz."""


def as_features(x: Any, label: str = "features", min_samples: int = 2) -> np.ndarray:
    """Validated float64 (N, d) copy of a numpy array or torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise FeatureError(f"{label}: expected a 2-D (N, d) array, got shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise FeatureError(
            f"{label}: need at least {min_samples} samples for a covariance, got {arr.shape[0]}"
        )
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise FeatureError(f"{label}: {bad} of {arr.shape[0]} feature rows hold NaN/Inf; check the extractor")
    return arr


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) for symmetric PSD S1, S2.

    With S1 = V diag(w) V^T and B = V diag(sqrt w), B^T S2 B is similar to S1^(1/2) S2 S1^(1/2), so its
    (real, non-negative) eigenvalues are those of S1 S2; rounding-negative ones are clipped to 0.
    """
    w, v = np.linalg.eigh(s1)
    b = v * np.sqrt(np.clip(w, 0.0, None))
    m = b.T @ s2 @ b
    eig = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def _check_stats(mu: Any, sigma: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise FeatureError(
            f"{label}: mean must be (d,) and covariance (d, d); got {mu.shape} and {sigma.shape}"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise FeatureError(f"{label}: mean or covariance holds NaN/Inf")
    return mu, (sigma + sigma.T) / 2.0


def frechet_distance_from_stats(mu1: Any, s1: Any, mu2: Any, s2: Any) -> float:
    """Fréchet distance between N(mu1, s1) and N(mu2, s2); float64, never negative."""
    mu1, s1 = _check_stats(mu1, s1, "first set")
    mu2, s2 = _check_stats(mu2, s2, "second set")
    if mu1.shape != mu2.shape:
        raise FeatureError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    traces = float(np.trace(s1) + np.trace(s2))
    fd = mean_term + traces - 2.0 * trace_sqrt_product(s1, s2)
    scale = mean_term + traces
    if fd < -_NEGATIVE_TOL * max(scale, 1e-12):
        raise ArithmeticError(
            f"Fréchet distance came out clearly negative ({fd:.3e} at scale {scale:.3e}): a numerical bug"
        )
    return max(fd, 0.0)


class FeatureStats:
    """Streaming float64 mean and covariance of feature rows, saved to / loaded from ``.npz``.

    Batches are merged with the pairwise (Chan et al.) update of mean and centred scatter rather than raw
    sums of outer products: the same O(d^2) state, but no cancellation when the mean is large relative to
    the spread.
    """

    def __init__(self, dim: int, meta: Mapping[str, Any] | None = None) -> None:
        if int(dim) < 1:
            raise FeatureError(f"feature dimension must be positive, got {dim}")
        self.dim = int(dim)
        self.meta: dict[str, Any] = dict(meta or {})
        self.n = 0
        self._mean = np.zeros(self.dim, dtype=np.float64)
        self._scatter = np.zeros((self.dim, self.dim), dtype=np.float64)

    @classmethod
    def from_features(cls, features: Any, meta: Mapping[str, Any] | None = None) -> FeatureStats:
        arr = as_features(features, min_samples=1)
        return cls(arr.shape[1], meta).update(arr)

    def update(self, features: Any) -> FeatureStats:
        """Add a batch of (N, dim) feature rows; returns self."""
        batch = as_features(features, min_samples=1)
        if batch.shape[1] != self.dim:
            raise FeatureError(f"features have dimension {batch.shape[1]}, these statistics hold {self.dim}")
        m = batch.shape[0]
        batch_mean = batch.mean(axis=0)
        centred = batch - batch_mean
        total = self.n + m
        delta = batch_mean - self._mean
        self._scatter += centred.T @ centred + np.outer(delta, delta) * (self.n * m / total)
        self._mean += delta * (m / total)
        self.n = total
        return self

    @property
    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise FeatureError("no features added yet")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (ddof=1)."""
        if self.n < 2:
            raise FeatureError(f"need at least 2 feature rows for a covariance, have {self.n}")
        return self._scatter / (self.n - 1)

    def frechet_distance(self, other: FeatureStats) -> float:
        return frechet_distance_from_stats(self.mean, self.cov, other.mean, other.cov)

    def save(self, path: str | Path) -> Path:
        """Write ``n``, mean, scatter and the metadata (as JSON) to an ``.npz``; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise StatsFileError(f"{path}: statistics files must end in .npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta_json = json.dumps(self.meta, sort_keys=True, allow_nan=False)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, n=np.int64(self.n), mean=self._mean, scatter=self._scatter, meta=np.array(meta_json))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: feature statistics file not found; compute and save it first")
        try:
            with np.load(path, allow_pickle=False) as data:
                n, mean, scatter = int(data["n"]), data["mean"], data["scatter"]
                meta = json.loads(str(data["meta"]))
        except (KeyError, ValueError, OSError) as err:
            raise StatsFileError(
                f"{path}: not a FeatureStats file ({err}); recompute the statistics"
            ) from err
        if mean.ndim != 1 or scatter.shape != (mean.shape[0],) * 2 or n < 0:
            raise StatsFileError(f"{path}: inconsistent shapes {mean.shape} / {scatter.shape}; recompute")
        stats = cls(mean.shape[0], meta)
        stats.n, stats._mean, stats._scatter = n, mean.astype(np.float64), scatter.astype(np.float64)
        return stats


def frechet_distance(a: Any, b: Any) -> float:
    """Fréchet distance between two feature sets, (N, d) and (M, d), numpy or torch."""
    fa = as_features(a, "first feature set")
    fb = as_features(b, "second feature set")
    if fa.shape[1] != fb.shape[1]:
        raise FeatureError(f"feature dimensions differ: {fa.shape[1]} vs {fb.shape[1]}")
    return frechet_distance_from_stats(
        fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False)
    )


def frechet_distance_samples_to_stats(a: Any, mu_b: np.ndarray, s_b: np.ndarray) -> float:
    """Fréchet distance between the samples ``a`` (n, d) and N(mu_b, s_b); exact, and cheap when n <= d.

    With Xc the centred samples, S_a = Xcᵀ Xc / (n-1), so S_b^(1/2) S_a S_b^(1/2) = MᵀM / (n-1) with
    M = Xc S_b^(1/2): its non-zero eigenvalues are those of the n x n matrix Xc S_b Xcᵀ / (n-1). That costs
    O(n² d) instead of the O(d³) eigen-decomposition of the dense path (bootstrap resamples of small sets).
    """
    fa = as_features(a, "feature set")
    mu_b, s_b = _check_stats(mu_b, s_b, "reference statistics")
    n, d = fa.shape
    if n > d:
        return frechet_distance_from_stats(fa.mean(0), np.cov(fa, rowvar=False), mu_b, s_b)
    mu_a = fa.mean(0)
    xc = fa - mu_a
    m = xc @ s_b @ xc.T / (n - 1)
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None)).sum())
    diff = mu_a - mu_b
    mean_term = float(diff @ diff)
    traces = float((xc * xc).sum() / (n - 1) + np.trace(s_b))
    fd = mean_term + traces - 2.0 * trace_sqrt
    if fd < -_NEGATIVE_TOL * max(mean_term + traces, 1e-12):
        raise ArithmeticError(f"Fréchet distance came out clearly negative ({fd:.3e}): a numerical bug")
    return max(fd, 0.0)


def is_reliable(n: int, dim: int) -> bool:
    """The covariance of ``n`` samples in ``dim`` dimensions has full rank only if n > dim."""
    return int(n) > int(dim)


def frechet_bootstrap(
    a: Any,
    b: Any | FeatureStats,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the Fréchet distance, resampling the rows of each set.

    ``b`` may be fixed reference statistics (a FeatureStats); then only ``a`` is resampled.
    """
    if n_boot < 2 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_boot >= 2 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    fa = as_features(a, "first feature set")
    fixed = b if isinstance(b, FeatureStats) else None
    fb = None if fixed is not None else as_features(b, "second feature set")
    dim_b = fixed.dim if fixed is not None else fb.shape[1]
    if fa.shape[1] != dim_b:
        raise FeatureError(f"feature dimensions differ: {fa.shape[1]} vs {dim_b}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    if fixed is not None:
        mu_b, s_b = fixed.mean, fixed.cov
    for i in range(n_boot):
        ra = fa[rng.integers(0, fa.shape[0], fa.shape[0])]
        if fb is not None:
            rb = fb[rng.integers(0, fb.shape[0], fb.shape[0])]
            mu_b, s_b = rb.mean(0), np.cov(rb, rowvar=False)
        values[i] = frechet_distance_samples_to_stats(ra, mu_b, s_b)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)
