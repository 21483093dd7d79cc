"""Memory the trainer's VideoTensors holds under data.captions_per_video all, at Kandinsky 2.2 sizes (issue 12).

Run: pytest tests/benchmarks/test_bench_train_memory.py --benchmark-only -q -s

N videos x C caption records each (T=77 text tokens, D=1280, F=16 frames; the records of a video share its frame
embeddings, as encode writes them), built in the layout before issue 12 (``compact=False``: fp32, a frame row per
record) and in the current one (fp16 where lossless, a frame row per video). ``held`` is the exact byte count of
the tensors held (checked against the per-record and per-video formulas used for the extrapolation); ``rss`` is
the process's resident-memory growth while building, for comparison (it includes allocator slack).

``test_bench_build_peak_rss`` builds the train split's tensors from a store of the same records, in a fresh
process each, the old way (every record read into fp32, then stacked in fp32) and the current one (records
streamed from the store by train_val_records into the compact layout), and reports the peak resident memory
above the process's size after opening the store; both include the store's cache of the fp16 shards it read.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

import psutil
import pytest
import torch

from spliter.data.datasets import caption_record_id
from spliter.data.store import EmbeddingStore, VideoRecord
from spliter.train import VideoTensors

N_VIDEOS, CAPTIONS, T, D, F = 200, 20, 77, 1280, 16
# Full MSR-VTT train (7,010 videos x 20 captions): the extrapolation, not a measurement.
FULL_VIDEOS = 7010
GIB = 2**30
LAYOUTS = {"old": False, "new": True}


def per_record_and_video(compact: bool) -> tuple[int, int]:
    """(bytes per record, bytes per video) of a layout: text states, text embedding, prior, frames, and the
    record -> frame-row index (8 bytes a record, which the old layout, one row per record, did not need)."""
    if not compact:
        return 4 * (T * D + 2 * D + F * D) + 8, 0
    return 2 * (T * D + 2 * D) + 8, 2 * F * D


@pytest.fixture(scope="module")
def records() -> list[VideoRecord]:
    g = torch.Generator().manual_seed(0)
    # A few distinct text states reused across records keep the fixture itself small; VideoTensors copies each.
    texts = [torch.randn(T, D, generator=g).half().float() for _ in range(8)]
    vectors = [torch.randn(D, generator=g).half().float() for _ in range(8)]
    times = torch.arange(F, dtype=torch.float64) / 4.0
    out = []
    for v in range(N_VIDEOS):
        frames = torch.randn(F, D, generator=g).half().float()
        for c in range(CAPTIONS):
            i = (v * CAPTIONS + c) % len(texts)
            out.append(VideoRecord(caption_record_id(f"v{v:04d}", c), f"caption {c}", "train", texts[i], vectors[i],
                                   vectors[-1 - i], None, frames.clone(), times, 4.0, None))
    return out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_bench_video_tensors_memory(benchmark, records, layout: str) -> None:
    compact = LAYOUTS[layout]
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    videos = benchmark.pedantic(lambda: VideoTensors(records, "cpu", compact=compact), rounds=1, iterations=1)
    rss = process.memory_info().rss - before
    per_record, per_video = per_record_and_video(compact)
    assert videos.nbytes == len(records) * per_record + N_VIDEOS * per_video
    full = FULL_VIDEOS * CAPTIONS * per_record + FULL_VIDEOS * per_video
    benchmark.extra_info.update(layout=layout, records=len(records), frame_rows=videos.n_frame_rows,
                                held_bytes=videos.nbytes, rss_growth_bytes=rss, bytes_per_record=per_record,
                                bytes_per_video=per_video, full_msrvtt_gib_extrapolated=round(full / GIB, 2))
    print(f"\n[train memory] {layout}: {N_VIDEOS} videos x {CAPTIONS} captions -> {videos.n_frame_rows} frame rows, "
          f"held {videos.nbytes / GIB:.3f} GiB ({videos.nbytes / len(records) / 1024:.0f} KiB per record), "
          f"RSS +{rss / GIB:.3f} GiB, built in {benchmark.stats.stats.median:.2f} s; "
          f"extrapolated to {FULL_VIDEOS} x {CAPTIONS}: {full / GIB:.1f} GiB")
    del videos


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import psutil
    from spliter.data.splits import train_val_records
    from spliter.data.store import EmbeddingStore
    from spliter.train import VideoTensors
    store = EmbeddingStore.open(sys.argv[1])
    base = psutil.Process().memory_info().rss
    if sys.argv[2] == "old":
        videos = VideoTensors(list(store.split("train")), "cpu", compact=False)
    else:
        videos = VideoTensors(train_val_records(store, 0.2)[0], "cpu")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"base": base, "peak": peak, "held": videos.nbytes, "records": len(videos.ids)}))
""")


@pytest.fixture(scope="module")
def store_path(records, tmp_path_factory):
    """The benchmark's records in a store (their own text per record: the store keeps what it is given), plus
    ten one-caption val videos, so train_val_records' train split is exactly the 4,000 records."""
    path = tmp_path_factory.mktemp("train-memory") / "store"
    g = torch.Generator().manual_seed(1)
    with EmbeddingStore.create(path, D, T) as store:
        for r in records:
            store.add(r.video_id, r.caption, torch.randn(T, D, generator=g), r.text_embed, r.prior_embed,
                      r.frame_embeds, r.frame_times, split="train")
        for v in range(10):
            r = records[v * CAPTIONS]
            store.add(f"val{v}", r.caption, r.text_hidden, r.text_embed, r.prior_embed, r.frame_embeds,
                      r.frame_times, split="val")
    return path


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_bench_build_peak_rss(benchmark, store_path, layout: str) -> None:
    def build() -> dict:
        done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(store_path), layout], capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout)

    out = benchmark.pedantic(build, rounds=1, iterations=1)
    assert out["records"] == N_VIDEOS * CAPTIONS
    growth = out["peak"] - out["base"]
    benchmark.extra_info.update(layout=layout, peak_growth_bytes=growth, held_bytes=out["held"])
    print(f"\n[train memory] build from the store, {layout}: peak RSS +{growth / GIB:.2f} GiB above the opened "
          f"store ({out['held'] / GIB:.2f} GiB held), {benchmark.stats.stats.median:.1f} s with process start")
