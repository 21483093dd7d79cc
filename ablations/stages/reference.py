"""FVD's reference set by a named protocol: the evaluation set's real clips, streamed, with a skip list.

The evaluation set is the study's `evaluation:` section when it has one, else the held-out (val) videos of the
training store, i.e. clips the encode stage accepted and no Spliter trained its weights on. A clip is
`metrics.fvd.frames` frames taken every `stride` frames of the source at its own rate (stride 1: consecutive
frames, the VideoGPT / StyleGAN-V protocol), centre-cropped and resized like the generated videos. A clip that is
too short or cannot be read is skipped and listed, never raised. Clips are read a batch at a time, so memory does
not grow with the size of the set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ablations.runfolder import write_json
from ablations.sources import SOURCES
from spliter.data.video import VideoError, center_crop_square, read_video, resize_frames

BATCH = 8  # clips per batch handed to the I3D (the only clips held in memory at once)


@dataclass(frozen=True)
class ReferenceVideo:
    video_id: str
    path: Path


@dataclass
class ReferenceSet:
    """Which real videos form the reference, where they came from, and which clips were left out."""

    name: str  # "evaluation" (the study's evaluation section) or "val split" (the training store's)
    videos: list[ReferenceVideo]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"video", "reason"} as the clips are read

    def identity(self) -> dict[str, Any]:
        """What the cached statistics depend on besides the protocol."""
        return {"set": self.name, "videos": [[v.video_id, str(v.path)] for v in self.videos]}

    def clips(self, frames: int, stride: int, size: int) -> Iterator[list[np.ndarray]]:
        """Batches of uint8 (frames, size, size, 3) clips; skipped videos are appended to `skipped`."""
        span = (frames - 1) * stride + 1
        batch: list[np.ndarray] = []
        for video in self.videos:
            try:
                source = read_video(video.path, max_frames=span).frames
            except VideoError as err:
                self.skipped.append({"video": video.video_id, "reason": f"unreadable: {err}"})
                continue
            if len(source) < span:
                self.skipped.append({"video": video.video_id, "reason": (
                    f"too short: {len(source)} frames, the protocol needs {span} ({frames} frames, stride {stride})")})
                continue
            batch.append(resize_frames(center_crop_square(source[:span:stride]), size))
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def reference_set(trial_config: dict[str, Any], encode_dir: Path, val_ids: Sequence[str]) -> ReferenceSet:
    """The evaluation section's videos, else the store's val split (`val_ids`) of the training source."""
    evaluation = trial_config.get("evaluation")
    if evaluation is not None:
        listing = SOURCES.get(evaluation["source"]).videos(evaluation, encode_dir)
        return ReferenceSet("evaluation", [ReferenceVideo(v.video_id, Path(v.path)) for v in listing.videos])
    data = trial_config["data"]
    listing = SOURCES.get(data["source"]).videos(data, encode_dir)
    by_id = {v.video_id: Path(v.path) for v in listing.videos}
    missing = [vid for vid in val_ids if vid not in by_id]
    if missing:
        raise RuntimeError(f"FVD reference: the store's val videos {missing[:5]} are no longer listed by data source "
                           f"{data['source']!r}; re-run encode (spliter-bench encode --force)")
    return ReferenceSet("val split", [ReferenceVideo(vid, by_id[vid]) for vid in sorted(val_ids)])


def skipped_path(cache: Path, key: str) -> Path:
    """The skip list written next to the cached statistics `fvd-ref-<key>.npz`."""
    return cache / f"fvd-ref-{key}.skipped.json"


def reference_stats(scorer: Any, reference: ReferenceSet, size: int, cache: Path) -> tuple[Any, list[dict]]:
    """Streamed, cached reference statistics for `scorer`'s protocol, and the clips that were skipped."""
    protocol = scorer.protocol
    key_parts = {**reference.identity(), "size": size, "stride": protocol.stride, "frames": protocol.frames}
    key = scorer.cache_key(key_parts)
    listing = skipped_path(cache, key)
    computed = not (cache / f"fvd-ref-{key}.npz").is_file()  # metrics.fvd's file name for the statistics
    stats = scorer.reference_stats(reference.clips(protocol.frames, protocol.stride, size), cache, key_parts)
    if computed or not listing.is_file():
        if not computed:  # statistics from before skip lists were kept: say so rather than claim none
            reference.skipped.append({"video": "?", "reason": "skip list not recorded with the cached statistics"})
        write_json(listing, reference.skipped)
    return stats, json.loads(listing.read_text())


class ProtocolFVD:
    """An FVDScorer whose rows also say the reference set, its skip list and the n a trustworthy number needs."""

    def __init__(self, scorer: Any, reference: str, n_reference_videos: int, skipped: list[dict]) -> None:
        self.scorer, self.reference, self.skipped = scorer, reference, skipped
        self.n_reference_videos = n_reference_videos
        self.name, self.protocol = scorer.name, scorer.protocol

    def score(self, gen_videos: Any, reference: Any, **kwargs: Any) -> dict[str, Any]:
        row = self.scorer.score(gen_videos, reference, **kwargs)
        extra = json.loads(row["extra"])
        n_min = int(self.protocol.n_min)
        short = max(0, n_min - min(int(row["n"]), int(extra["n_reference"])))
        extra.update(
            reference_set=self.reference, n_reference_listed=self.n_reference_videos,
            reference_skipped=len(self.skipped), reference_skipped_videos=self.skipped[:20],
            n_min=n_min, n_needed=n_min,
            reliability=("both sets hold at least n_min videos" if row["reliable"] else
                         f"unreliable: a trustworthy number needs {n_min} videos in each set "
                         f"({short} more in the smaller one); FD is biased upwards at small N"))
        return {**row, "extra": json.dumps(extra, sort_keys=True, allow_nan=False)}
