"""FVD in the harness by a named protocol: evaluation clips only, consecutive frames at the source rate by default,
short clips skipped and listed, statistics streamed and cached, n_min applied to the row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ablations.stages.reference import (
    ProtocolFVD,
    ReferenceSet,
    ReferenceVideo,
    reference_set,
    reference_stats,
)
from metrics.fvd import FVDProtocol, FVDScorer, I3DFeatureExtractor
from spliter.data.video import write_mp4

PROTOCOL = FVDProtocol(frames=8, resolution=32, n_min=64)


def ramp(n_frames: int, size: int = 32) -> np.ndarray:
    """Frame k is grey level 10 * k: which source frames a clip took is readable from its pixels."""
    return np.stack([np.full((size, size, 3), 10 * k, np.uint8) for k in range(n_frames)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    lengths = {"long1": 20, "long2": 18, "long3": 16, "short": 5}
    return {name: write_mp4(ramp(n), root / f"{name}.mp4", fps=8.0) for name, n in lengths.items()}


@pytest.fixture(scope="module")
def scorer() -> FVDScorer:
    return FVDScorer(I3DFeatureExtractor.random(0, PROTOCOL), PROTOCOL)


def as_set(corpus: dict[str, Path], names: list[str]) -> ReferenceSet:
    return ReferenceSet("evaluation", [ReferenceVideo(name, corpus[name]) for name in names])


@pytest.mark.parametrize("stride", [1, 2])
def test_clips_are_consecutive_source_frames_at_the_stride(corpus: dict[str, Path], stride: int) -> None:
    reference = as_set(corpus, ["long1"])
    (batch,) = list(reference.clips(frames=8, stride=stride, size=16))
    (clip,) = batch
    assert clip.shape == (8, 16, 16, 3)
    levels = clip[:, 8, 8, 0].astype(int)
    assert np.abs(levels - 10 * stride * np.arange(8)).max() <= 3  # codec noise only


def test_a_clip_too_short_for_the_protocol_is_skipped_and_listed(corpus: dict[str, Path]) -> None:
    reference = as_set(corpus, ["long1", "short", "long3"])
    clips = [clip for batch in reference.clips(frames=8, stride=2, size=16) for clip in batch]
    assert len(clips) == 2  # 8 frames at stride 2 span 15 source frames: long3 (16) has them, short (5) not
    (skipped,) = reference.skipped
    assert skipped["video"] == "short" and "too short: 5 frames, the protocol needs 15" in skipped["reason"]


def test_reference_statistics_are_streamed_cached_and_keep_their_skip_list(
        corpus: dict[str, Path], scorer: FVDScorer, tmp_path: Path) -> None:
    stats, skipped = reference_stats(scorer, as_set(corpus, list(corpus)), 32, tmp_path)
    assert stats.n == 3 and [s["video"] for s in skipped] == ["short"]
    assert len(list(tmp_path.glob("fvd-ref-*.npz"))) == 1

    class Unread(ReferenceSet):
        def clips(self, *args, **kwargs):  # the cached statistics must be used without reading a clip
            raise AssertionError("clips were read although the statistics are cached")
            yield  # a generator, like ReferenceSet.clips: it fails only when iterated

    again, skipped_again = reference_stats(scorer, Unread("evaluation", as_set(corpus, list(corpus)).videos), 32,
                                           tmp_path)
    assert again.n == 3 and skipped_again == skipped
    np.testing.assert_array_equal(again.mean, stats.mean)
    other, _ = reference_stats(scorer, as_set(corpus, ["long1", "long2"]), 32, tmp_path)
    assert other.n == 2  # another set is another cache file
    assert len(list(tmp_path.glob("fvd-ref-*.npz"))) == 2


def test_rows_name_the_stride_carry_the_weights_hash_and_say_the_n_a_trustworthy_number_needs(
        corpus: dict[str, Path], scorer: FVDScorer, tmp_path: Path) -> None:
    stats, skipped = reference_stats(scorer, as_set(corpus, list(corpus)), 32, tmp_path)
    generated = [ramp(8)[::-1].copy(), ramp(8), ramp(8)[:, ::-1].copy()]
    row = ProtocolFVD(scorer, "evaluation", 4, skipped).score(generated, stats, n_boot=20, seed=0)
    assert row["metric"] == "fvd[i3d-random0,8f,stride1,32,squash]"
    extra = json.loads(row["extra"])
    assert extra["weights"] == "random-seed0" and extra["protocol"]["stride"] == 1
    assert not row["reliable"] and extra["n_min"] == 64 and extra["n_needed"] == 64
    assert "needs 64 videos in each set (61 more in the smaller one)" in extra["reliability"]
    assert extra["reference_set"] == "evaluation" and extra["n_reference_listed"] == 4
    assert extra["reference_skipped"] == 1 and extra["reference_skipped_videos"][0]["video"] == "short"


def test_the_reference_is_the_stores_val_split_without_an_evaluation_section(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    (root / "videos").mkdir(parents=True)
    (root / "captions.csv").write_text("video_id,caption\na,x\nb,y\nc,z\n")
    for name in "abc":
        (root / "videos" / f"{name}.mp4").write_bytes(b"\0")
    config = {"data": {"source": "folder", "path": str(root), "caption_column": "caption"}}
    chosen = reference_set(config, tmp_path, ["c", "a"])
    assert chosen.name == "val split" and [v.video_id for v in chosen.videos] == ["a", "c"]
    with pytest.raises(RuntimeError, match=r"val videos \['gone'\] are no longer listed"):
        reference_set(config, tmp_path, ["gone"])
    evaluation = {**config, "evaluation": config["data"]}
    assert [v.video_id for v in reference_set(evaluation, tmp_path, ["a"]).videos] == ["a", "b", "c"]
