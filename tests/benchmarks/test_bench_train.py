"""Training throughput (examples per second inside the loop) per regime, at tiny and full embedding size.

Run: pytest tests/benchmarks/test_bench_train.py --benchmark-only -q -s

The rate is timed between the first and the last optimiser step of a short run (``stop_after_steps``), so store
loading, model construction and the initial validation pass are excluded; an example is one (start, target)
row of a batch, whatever its start source (a +diff row of depth k costs k extra no-grad forwards).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import torch

from spliter.data.synthetic import write_synthetic_store
from spliter.models import SpliterConfig
from spliter.regimes import RegimeConfig
from spliter.train import TrainConfig, train


@dataclass(frozen=True)
class Size:
    name: str
    dim: int
    tokens: int
    width: int
    videos: int
    frames: int
    steps: int
    rounds: int


SIZES = {
    "tiny": Size("tiny", dim=32, tokens=8, width=16, videos=40, frames=12, steps=30, rounds=2),
    "full": Size("full", dim=1280, tokens=77, width=32, videos=16, frames=16, steps=5, rounds=1),
}
REGIMES = {
    "base": RegimeConfig(),
    "back": RegimeConfig(back=True),
    "rotate": RegimeConfig(rotate=True),
    "diff1": RegimeConfig(diff=1),
    "diff2": RegimeConfig(diff=2),
    "combined": RegimeConfig(back=True, rotate=True, diff=2),
}
BATCH = 64
# One intra-op thread: on the shared 2-core machine a second thread made even the full-size step 2-3x slower.
THREADS = 1


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-train")
    return {
        s.name: write_synthetic_store(root / s.name, n_videos=s.videos, dim=s.dim, text_tokens=s.tokens,
                                      frames=s.frames, seed=0)
        for s in SIZES.values()
    }


@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("size", list(SIZES))
def test_bench_training_throughput(benchmark, stores, tmp_path, size, regime):
    s = SIZES[size]
    model_config = SpliterConfig(dim=s.dim, text_tokens=s.tokens, width=s.width, depth=2, heads=2, dropout=0.1)
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    rates: list[float] = []

    def run() -> None:
        stamps: list[float] = []
        config = TrainConfig(epochs=1, batch_size=BATCH, regime=REGIMES[regime], stop_after_steps=s.steps,
                             progress=False, device="cpu")
        directory = tmp_path / f"run{len(rates)}"
        train(model_config, config, stores[size], directory, callback=lambda info: stamps.append(time.perf_counter()))
        rates.append(BATCH * (len(stamps) - 1) / (stamps[-1] - stamps[0]))

    try:
        benchmark.pedantic(run, rounds=s.rounds, iterations=1)
    finally:
        torch.set_num_threads(previous)
    best = max(rates)
    benchmark.extra_info.update(examples_per_s=best, threads=THREADS)
    print(f"\n[train] {size} (D={s.dim}, T={s.tokens}, width={s.width}) {regime}: {best:,.0f} examples/s "
          f"({THREADS} thread, batch {BATCH})")
