"""EmbeddingStore write and read throughput at Kandinsky 2.2 sizes (D=1280, T=77, F=16), and rollout cost.

Run: pytest tests/benchmarks/test_bench_store.py --benchmark-only -q -s
"""

import itertools
import shutil

import pytest
import torch

from spliter.data.store import EmbeddingStore
from spliter.models import Spliter, SpliterConfig
from spliter.rollout import RolloutConfig, SpliterRollout

N_VIDEOS, D, T, F = 200, 1280, 77, 16


@pytest.fixture(scope="module")
def videos():
    g = torch.Generator().manual_seed(0)
    times = torch.arange(F, dtype=torch.float64) / 4.0
    return [
        {
            "video_id": f"v{i:04d}",
            "caption": f"caption {i}",
            "text_hidden": torch.randn(T, D, generator=g),
            "text_embed": torch.randn(D, generator=g),
            "prior_embed": torch.randn(D, generator=g),
            "negative_prior_embed": torch.randn(D, generator=g),
            "frame_embeds": torch.randn(F, D, generator=g),
            "frame_times": times,
            "split": "val" if i % 5 == 0 else "train",
            "fps": 4.0,
        }
        for i in range(N_VIDEOS)
    ]


def _write(path, videos) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with EmbeddingStore.create(path, D, T, meta={"backend": {"name": "bench"}}) as store:
        for video in videos:
            store.add(**video)


def _report(benchmark, case: str, n: int, unit: str = "videos") -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(case=case, median_s=median, per_s=n / median)
    print(f"\n[store] {case}: {median:.3f} s for {n} {unit} -> {n / median:,.0f} {unit}/s")


def test_bench_store_write(benchmark, videos, tmp_path):
    benchmark.pedantic(_write, args=(tmp_path / "s", videos), rounds=3, iterations=1, warmup_rounds=1)
    size = sum(p.stat().st_size for p in (tmp_path / "s").rglob("*") if p.is_file())
    benchmark.extra_info.update(store_bytes=size)
    print(f"\n[store] on disk: {size / 2**20:.1f} MiB ({size / N_VIDEOS / 2**10:.0f} KiB per video)")
    _report(benchmark, "write (add + flush, 64 per shard, fsync)", N_VIDEOS)


@pytest.mark.parametrize("validate", [True, False])
def test_bench_store_read_all(benchmark, videos, tmp_path, validate):
    _write(tmp_path / "s", videos)

    def read_all():
        store = EmbeddingStore.open(tmp_path / "s", validate=validate)
        return sum(record.n_frames for record in store)

    assert benchmark.pedantic(read_all, rounds=3, iterations=1, warmup_rounds=1) == N_VIDEOS * F
    _report(benchmark, f"open(validate={validate}) + iterate every record (fresh instance)", N_VIDEOS)


def test_bench_store_cached_get(benchmark, videos, tmp_path):
    _write(tmp_path / "s", videos)
    store = EmbeddingStore.open(tmp_path / "s")
    ids = itertools.cycle(store.ids())

    benchmark.pedantic(lambda: [store.get(next(ids)) for _ in range(N_VIDEOS)], rounds=5, iterations=1, warmup_rounds=1)
    _report(benchmark, "get() from the shard cache", N_VIDEOS)


@pytest.mark.parametrize("mode", ["step", "chain"])
def test_bench_rollout(benchmark, mode):
    g = torch.Generator().manual_seed(0)
    model = Spliter(SpliterConfig(dim=D, text_tokens=T, width=256, depth=4, dropout=0.0))
    h, t, u = torch.randn(4, T, D, generator=g), torch.randn(4, D, generator=g), torch.randn(4, D, generator=g)
    rollout = SpliterRollout(model, RolloutConfig(mode=mode, frames=F))
    times = rollout.config.times()
    out = benchmark.pedantic(rollout, args=(h, t, u, times), rounds=2, iterations=1, warmup_rounds=1)
    assert out.shape == (4, F, D)
    _report(benchmark, f"SpliterRollout {mode} (default increment head, B=4, F={F})", 4 * F, unit="frames")
