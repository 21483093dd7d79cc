"""Metric speed: Fréchet distance at FVD/FID sizes, CLIP consistency + alignment throughput.

Run: pytest tests/benchmarks/test_bench_metrics.py --benchmark-only -q -s
"""

import numpy as np
import pytest

from metrics.clip import OpenClipEncoder, register_open_clip_config
from metrics.frechet import frechet_bootstrap, frechet_distance, frechet_distance_from_stats
from metrics.suite import GeneratedSample, score_generated

N = 2048


def _features(dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((N, dim), dtype=np.float32)


@pytest.mark.parametrize("dim", [400, 2048])
def test_bench_frechet_from_features(benchmark, dim):
    a, b = _features(dim, 0), 2.0 * _features(dim, 1)
    rounds = 3 if dim == 400 else 1
    value = benchmark.pedantic(frechet_distance, args=(a, b), rounds=rounds, iterations=1)
    assert value > 0
    s = benchmark.stats.stats.median
    benchmark.extra_info.update(seconds=s)
    print(f"\n[frechet] {N} vs {N} at d={dim}: {s:.2f} s (features -> covariances -> distance)")


@pytest.mark.parametrize("dim", [400, 2048])
def test_bench_frechet_from_stats(benchmark, dim):
    a, b = _features(dim, 0).astype(np.float64), 2.0 * _features(dim, 1).astype(np.float64)
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    rounds = 3 if dim == 400 else 1
    benchmark.pedantic(frechet_distance_from_stats, args=stats, rounds=rounds, iterations=1)
    s = benchmark.stats.stats.median
    print(f"\n[frechet] from stats at d={dim}: {s:.2f} s (two eigh)")


def test_bench_frechet_bootstrap_d400(benchmark):
    a, b = _features(400, 0), 2.0 * _features(400, 1)
    benchmark.pedantic(frechet_bootstrap, args=(a, b), kwargs={"n_boot": 10}, rounds=1, iterations=1)
    s = benchmark.stats.stats.median
    print(f"\n[frechet] bootstrap 2048 vs 2048 at d=400: {s / 10:.2f} s per resample")


def _videos(n_videos: int, frames: int, size: int) -> list[GeneratedSample]:
    rng = np.random.default_rng(0)
    return [
        GeneratedSample(
            f"p{i}", 0, i, f"caption {i}", rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
        )
        for i in range(n_videos)
    ]


@pytest.mark.parametrize("model, size, n_videos", [("tiny-vit", 64, 8), ("ViT-B-32", 224, 2)])
def test_bench_clip_scoring_throughput(benchmark, model, size, n_videos):
    register_open_clip_config("tiny-vit")
    encoder = OpenClipEncoder(model, allow_random=True)
    videos = _videos(n_videos, 16, size)
    rows = benchmark.pedantic(
        score_generated, args=(videos, [encoder]), rounds=2, iterations=1, warmup_rounds=1
    )
    assert len(rows) == n_videos * 6
    s = benchmark.stats.stats.median
    fps = n_videos * 16 / s
    benchmark.extra_info.update(frames_per_s=fps)
    print(
        f"\n[clip] {model} random init, {size}px: {fps:.1f} frames/s (3 consistency modes, alignment, motion)"
    )
