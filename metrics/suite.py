"""What the harness calls: score generated videos, held-out embeddings, and sets against a reference.

Every function returns validated score rows (``MetricSpec.row``); the harness adds study, trial_id,
variant and seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from metrics.clip import ClipEncoder, EmbeddingError, check_frames, temporal_consistency, text_alignment
from metrics.embedding import score_rollouts
from metrics.motion import embedding_motion, pixel_motion
from metrics.registry import (
    clip_alignment_spec,
    clip_consistency_spec,
    embedding_motion_spec,
    pixel_motion_spec,
)

DEFAULT_MODES: tuple[str, ...] = ("consecutive", "first", "all_pairs")


@dataclass(frozen=True)
class GeneratedSample:
    """One generated video with its identity; ``frames`` are uint8 (F, H, W, 3)."""

    prompt_id: str
    sample_idx: int
    gen_seed: int
    caption: str
    frames: np.ndarray
    truth: np.ndarray | None = None  # the true video it is frame-paired with (prompts from real videos), uint8
    protocol: tuple[str, ...] = ()  # how it was made, named in paired metrics (e.g. "step", "start=true", "split=test")

    @property
    def label(self) -> str:
        return f"{self.prompt_id}-{self.sample_idx}"


@runtime_checkable
class FeatureScorer(Protocol):
    """A set-level feature extractor (e.g. metrics.fvd): ``name`` is the metric name with its protocol."""

    name: str
    dim: int

    def features(self, videos: list[np.ndarray]) -> np.ndarray: ...


def _checked_frames(video: GeneratedSample) -> np.ndarray:
    frames = check_frames(video.frames, f"video {video.label}")
    if frames.shape[0] < 2:
        raise EmbeddingError(
            f"video {video.label}: has {frames.shape[0]} frame; temporal metrics need at least 2"
        )
    return frames


def pixel_motion_rows(videos: Sequence[GeneratedSample]) -> list[dict[str, Any]]:
    """Per video: mean absolute pixel change between consecutive frames."""
    motion = pixel_motion_spec()
    rows = []
    for video in videos:
        f = _checked_frames(video)
        ids = {"prompt_id": video.prompt_id, "sample_idx": video.sample_idx, "gen_seed": video.gen_seed}
        rows.append(motion.row(pixel_motion(f, label=f"video {video.label}"), f.shape[0], **ids))
    return rows


def clip_rows(
    videos: Sequence[GeneratedSample],
    encoders: Sequence[ClipEncoder],
    *,
    modes: Sequence[str] = DEFAULT_MODES,
) -> list[dict[str, Any]]:
    """Per encoder and video: temporal consistency (each mode), text alignment and embedding motion.
    Captions are encoded once per encoder."""
    frames = [_checked_frames(v) for v in videos]
    rows: list[dict[str, Any]] = []
    if not videos:
        return rows
    captions = sorted({v.caption for v in videos})
    for encoder in encoders:
        consistency = {mode: clip_consistency_spec(mode, encoder.name) for mode in modes}
        alignment, emb_motion = clip_alignment_spec(encoder.name), embedding_motion_spec(encoder.name)
        text = dict(zip(captions, encoder.encode_text(captions), strict=True))
        for video, f in zip(videos, frames, strict=True):
            e, n = encoder.encode_images(f), f.shape[0]
            label = f"video {video.label} ({encoder.name})"
            ids = {"prompt_id": video.prompt_id, "sample_idx": video.sample_idx, "gen_seed": video.gen_seed}
            extra = {"encoder": encoder.name}
            for mode, spec in consistency.items():
                rows.append(spec.row(temporal_consistency(e, mode, label=label), n, extra=extra, **ids))
            rows.append(
                alignment.row(text_alignment(e, text[video.caption], label=label), n, extra=extra, **ids)
            )
            rows.append(emb_motion.row(embedding_motion(e, label=label), n, extra=extra, **ids))
    return rows


def score_generated(
    videos: Sequence[GeneratedSample],
    encoders: Sequence[ClipEncoder],
    *,
    modes: Sequence[str] = DEFAULT_MODES,
) -> list[dict[str, Any]]:
    """pixel_motion_rows, then clip_rows: every per-video metric of the suite."""
    return pixel_motion_rows(videos) + clip_rows(videos, encoders, modes=modes)


def score_embeddings(
    rollouts: Mapping[str, Any],
    records: Sequence[Any],
    horizons: Sequence[int] | None = None,
    *,
    start: str = "true",
    device: str | torch.device = "cpu",
    shuffled_text: bool = False,
) -> list[dict[str, Any]]:
    """Held-out embedding rows for each rollout mode; what could not be scored is warned about by name."""
    report = score_rollouts(rollouts, records, horizons=horizons, start=start, device=device,
                            shuffled_text=shuffled_text)
    if report.skipped:
        listing = "; ".join(f"{vid}: {reason}" for vid, reason in report.skipped)
        warnings.warn(
            f"embedding metrics skipped parts of {len(report.skipped)} videos: {listing}", stacklevel=2
        )
    return report.rows
