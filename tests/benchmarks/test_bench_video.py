"""Decode throughput (frames/s) on the shared MSR-VTT clips and a generated clip; shapes generation (clips/s).

Run: pytest tests/benchmarks/test_bench_video.py --benchmark-only -q
Figures go to docs/benchmarks.md (video section); `extra_info` carries the throughput of each case.
"""

from pathlib import Path

import numpy as np
import pytest

from reports.gifs import write_gif
from spliter.data.shapes import write_shapes_dataset
from spliter.data.video import read_video, write_mp4


def _moving_noise(frames: int, size: int) -> np.ndarray:
    """Smooth-ish content that scrolls, so the encoder has real motion to code."""
    base = np.random.default_rng(0).integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    tile = np.kron(base, np.ones((4, 4, 1), np.uint8))
    return np.stack([np.roll(tile, 2 * k, axis=1) for k in range(frames)])


def test_bench_decode_msrvtt31(benchmark, msrvtt31: Path) -> None:
    paths = sorted((msrvtt31 / "videos").glob("*.mp4"))

    def decode_all() -> int:
        return sum(len(read_video(p)) for p in paths)

    frames = benchmark.pedantic(decode_all, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        videos=len(paths), frames=frames, frames_per_s=frames / benchmark.stats["median"]
    )


@pytest.mark.parametrize(("kind", "size"), [("mp4", 256), ("gif", 256)])
def test_bench_decode_generated(benchmark, tmp_path: Path, kind: str, size: int) -> None:
    writer = {"mp4": write_mp4, "gif": write_gif}[kind]
    path = writer(_moving_noise(64, size), tmp_path / f"clip.{kind}", 16.0)
    frames = benchmark.pedantic(lambda: len(read_video(path)), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(frames=frames, size=size, frames_per_s=frames / benchmark.stats["median"])


@pytest.mark.parametrize("kind", ["mp4", "gif"])
def test_bench_write(benchmark, tmp_path: Path, kind: str) -> None:
    writer = {"mp4": write_mp4, "gif": write_gif}[kind]
    clip = _moving_noise(64, 256)
    benchmark.pedantic(
        writer, args=(clip, tmp_path / f"w.{kind}", 16.0), rounds=3, iterations=1, warmup_rounds=1
    )
    benchmark.extra_info.update(frames=64, size=256, frames_per_s=64 / benchmark.stats["median"])


def test_bench_shapes_generation(benchmark, tmp_path: Path) -> None:
    n_videos = 100
    benchmark.pedantic(
        write_shapes_dataset,
        args=(tmp_path / "shapes",),
        kwargs={"n_videos": n_videos},
        rounds=3,
        iterations=1,
    )
    benchmark.extra_info.update(videos=n_videos, clips_per_s=n_videos / benchmark.stats["median"])
