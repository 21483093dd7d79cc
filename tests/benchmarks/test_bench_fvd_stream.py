"""Peak host memory of FVD reference statistics streamed from clip batches vs held in memory.

Run: pytest tests/benchmarks/test_bench_fvd_stream.py --benchmark-only -q
Clips (8 frames, 64 px, a random I3D) are made batch by batch by a generator, as a reader of clips from
disk would; tracemalloc records the peak of numpy allocations (the clips and features). `extra_info`
carries the peak in MiB per number of clips: streamed it stays flat, a list of all clips grows with N.
"""

import tracemalloc

import numpy as np
import pytest

from metrics.fvd import FVDProtocol, FVDScorer, I3DFeatureExtractor

PROTOCOL = FVDProtocol(frames=8, resolution=32)
BATCH = 4


def clip_batches(n_clips: int):
    rng = np.random.default_rng(0)
    for start in range(0, n_clips, BATCH):
        yield rng.integers(0, 256, (min(BATCH, n_clips - start), 8, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("n_clips", [8, 32])
@pytest.mark.parametrize("mode", ["streamed", "in_memory"])
def test_bench_reference_stats_peak_memory(benchmark, n_clips: int, mode: str) -> None:
    scorer = FVDScorer(I3DFeatureExtractor.random(0, PROTOCOL, batch_size=BATCH), PROTOCOL)

    def run() -> int:
        tracemalloc.start()
        if mode == "streamed":
            stats = scorer.accumulate(clip_batches(n_clips))
        else:
            stats = scorer.accumulate([np.concatenate(list(clip_batches(n_clips)))])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert stats.n == n_clips
        return peak

    peak = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(n_clips=n_clips, mode=mode, peak_mib=round(peak / 2**20, 2))
