"""What the harness calls: score generated videos, held-out embeddings, and sets against a reference.

Every function returns validated score rows (``MetricSpec.row``); the harness adds study, trial_id,
variant and seed.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from metrics.clip import ClipEncoder, EmbeddingError, check_frames, temporal_consistency, text_alignment
from metrics.embedding import score_rollouts
from metrics.frechet import (
    FeatureStats,
    as_features,
    frechet_bootstrap,
    frechet_distance,
    frechet_distance_from_stats,
    is_reliable,
)
from metrics.motion import embedding_motion, pixel_motion
from metrics.registry import (
    FRECHET_VERSION,
    MetricSpec,
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


def score_generated(
    videos: Sequence[GeneratedSample],
    encoders: Sequence[ClipEncoder],
    *,
    modes: Sequence[str] = DEFAULT_MODES,
) -> list[dict[str, Any]]:
    """Per video: pixel motion, and per encoder temporal consistency (each mode), text alignment and
    embedding motion. Captions are encoded once per encoder."""
    frames = [_checked_frames(v) for v in videos]
    rows: list[dict[str, Any]] = []
    motion = pixel_motion_spec()
    for video, f in zip(videos, frames, strict=True):
        ids = {"prompt_id": video.prompt_id, "sample_idx": video.sample_idx, "gen_seed": video.gen_seed}
        rows.append(motion.row(pixel_motion(f, label=f"video {video.label}"), f.shape[0], **ids))
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


def score_embeddings(
    rollouts: Mapping[str, Any],
    records: Sequence[Any],
    horizons: Sequence[int] | None = None,
    *,
    start: str = "true",
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Held-out embedding rows for each rollout mode; what could not be scored is warned about by name."""
    report = score_rollouts(rollouts, records, horizons=horizons, start=start, device=device)
    if report.skipped:
        listing = "; ".join(f"{vid}: {reason}" for vid, reason in report.skipped)
        warnings.warn(
            f"embedding metrics skipped parts of {len(report.skipped)} videos: {listing}", stacklevel=2
        )
    return report.rows


def check_uniform_set(videos: Sequence[GeneratedSample]) -> tuple[int, int, int]:
    """The common (frames, height, width) of a set; a video that differs is named in the error."""
    if not videos:
        raise EmbeddingError("empty video set: nothing to compare against the reference")
    shapes = {v.label: _checked_frames(v).shape[:3] for v in videos}
    common, _ = Counter(shapes.values()).most_common(1)[0]
    odd = [f"{label} {shape}" for label, shape in shapes.items() if shape != common]
    if odd:
        raise EmbeddingError(
            f"a set must share frames x height x width {common}; these videos differ: {', '.join(odd)}"
        )
    return common


def _set_spec(scorer: Any) -> MetricSpec:
    name = str(scorer.name)
    if "[" not in name:
        raise ValueError(
            f"feature scorer name {name!r} must be the metric name with its protocol, e.g. "
            "fvd[i3d-videogpt,16f,224] (metrics.registry.fvd_spec)"
        )
    return MetricSpec(
        name,
        "set",
        False,
        str(getattr(scorer, "version", FRECHET_VERSION)),
        "Fréchet distance between generated and reference features",
    )


def score_set(
    videos: Sequence[GeneratedSample],
    scorer: FeatureScorer,
    reference: np.ndarray | FeatureStats,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """One set-level Fréchet row: generated ``videos`` vs ``reference`` features (N, dim) or stats.

    ``reliable`` is False unless both sets have more samples than feature dimensions; the percentile
    bootstrap interval goes into extra (with fixed reference statistics only the generated set is
    resampled).
    """
    frames, height, width = check_uniform_set(videos)
    feats = as_features(
        scorer.features([v.frames for v in videos]), f"{scorer.name} features of the generated set"
    )
    if feats.shape != (len(videos), scorer.dim):
        raise EmbeddingError(
            f"{scorer.name}: features have shape {feats.shape}, expected ({len(videos)}, {scorer.dim})"
        )
    if isinstance(reference, FeatureStats):
        n_ref = reference.n
        value = frechet_distance_from_stats(
            feats.mean(0), np.cov(feats, rowvar=False), reference.mean, reference.cov
        )
    else:
        reference = as_features(reference, f"{scorer.name} reference features")
        n_ref = reference.shape[0]
        value = frechet_distance(feats, reference)
    low, high = frechet_bootstrap(feats, reference, n_boot=n_boot, seed=seed, level=level)
    extra = {
        "ci_low": low,
        "ci_high": high,
        "n_boot": n_boot,
        "level": level,
        "seed": seed,
        "n_reference": int(n_ref),
        "dim": int(scorer.dim),
        "frames": frames,
        "height": height,
        "width": width,
    }
    reliable = is_reliable(min(len(videos), n_ref), scorer.dim)
    return [_set_spec(scorer).row(value, len(videos), reliable=reliable, extra=extra)]
