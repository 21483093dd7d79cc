"""I3D feature throughput for FVD (videos/s) on CPU with random weights, and the preprocessing alone.

Run: pytest tests/benchmarks/test_bench_fvd.py --benchmark-only -q
Figures go to docs/benchmarks.md (FVD section); `extra_info` carries the throughput of each case.
"""

from pathlib import Path

import numpy as np
import pytest

from metrics.fvd import FVDProtocol, I3DFeatureExtractor, preprocess_videos
from metrics.i3d import random_i3d, save_state_dict, save_styleganv_torchscript

PROTOCOL = FVDProtocol()  # 16 frames, 224 px: the standard FVD input
BATCH = 2


def _clips(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, PROTOCOL.frames, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("weights", ["videogpt", "styleganv"])
def test_bench_i3d_features(benchmark, tmp_path: Path, weights: str) -> None:
    """One batch of 2 videos through the full extractor (preprocess + I3D), loaded from a weights file."""
    model = random_i3d(0)
    protocol = FVDProtocol(weights=weights)
    if weights == "videogpt":
        path = save_state_dict(model, tmp_path / "i3d_pretrained_400.pt")
    else:
        path = save_styleganv_torchscript(model, tmp_path / "i3d_torchscript.pt")
    extractor = I3DFeatureExtractor.from_file(path, protocol, batch_size=BATCH)
    clips = _clips(BATCH, PROTOCOL.resolution)
    benchmark.pedantic(extractor.features, args=(clips,), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(batch=BATCH, frames=PROTOCOL.frames, size=PROTOCOL.resolution,
                                videos_per_s=BATCH / benchmark.stats["median"])


def test_bench_preprocess_512_to_224(benchmark) -> None:
    """Frame selection, bilinear resize 512 -> 224 and scaling for 8 videos of 16 frames."""
    clips = _clips(8, 512)
    benchmark.pedantic(preprocess_videos, args=(clips, PROTOCOL), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(videos=8, videos_per_s=8 / benchmark.stats["median"])
