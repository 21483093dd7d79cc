"""METRIC_FAMILIES: the metric families a study selects by name (`metrics.select`), one registration each.

A family computes rows from a trial's generated videos and a score context: the harness object that hands
out what a family needs (held-out embeddings and rollouts, CLIP encoders, the FVD scorer with its reference
statistics), each built only when a family asks for it. Every row is made by a ``MetricSpec`` of
``metrics.registry``, whose name carries the protocol, level, direction, code version and ranked flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from metrics.lpips import lpips_rows
from metrics.paired import paired_rows
from metrics.suite import GeneratedSample, clip_rows, pixel_motion_rows, score_embeddings
from spliter.registry import Registry

Rows = list[dict[str, Any]]


class ScoreContext(Protocol):
    """What the harness provides to metric families for one trial."""

    seed: int  # seeds resampling (bootstrap intervals)
    device: Any  # where models run

    def rollouts(self) -> dict[str, Any]: ...  # mode ("step", "chain") -> rollout of the trial
    # split name -> the held-out records the reported scores use ("test" and "test_unseen"; "val" without a test split)
    def scored_splits(self) -> dict[str, Sequence[Any]]: ...
    def clip_encoders(self) -> Sequence[Any]: ...  # metrics.clip encoders of metrics.clip_encoders
    def fvd(self) -> tuple[Any, Any]: ...  # (metrics.fvd.FVDScorer, reference FeatureStats)
    def fid(self) -> tuple[Any, Any]: ...  # (metrics.fid.FrameFID, reference videos)
    def lpips(self) -> Any | None: ...  # metrics.lpips.FrameLPIPS of metrics.paired.lpips, None when not configured


@dataclass(frozen=True)
class MetricFamily:
    compute: Callable[[Sequence[GeneratedSample], ScoreContext], Rows]  # (videos, context) -> score rows
    needs_videos: bool  # scored on generated videos: not applicable when a study renders none
    description: str  # one line for docs and errors
    # scored on the trial's embedding rollouts: not applicable to a baseline that renders frames directly
    needs_embeddings: bool = False
    # rows named by each video's protocol (mode, start, split): scores every index entry, also entries that
    # name one rendered file under several protocols; the other families score each rendered file once
    protocol_rows: bool = False


METRIC_FAMILIES: Registry[MetricFamily] = Registry("metric family")
# What a study scores when its metrics section does not say (families that need videos are skipped when
# nothing is rendered).
DEFAULT_FAMILIES: tuple[str, ...] = ("embedding", "pixel_motion", "clip")


def _embedding(videos: Sequence[GeneratedSample], ctx: ScoreContext) -> Rows:
    """Both starts and, with two videos or more, shuffled text, per scored split (named in each metric)."""
    rows: Rows = []
    for split, records in ctx.scored_splits().items():
        if not records:
            raise ValueError(f"the store has no {split!r} videos to score; set data.val_fraction / test_fraction > 0")
        part = score_embeddings(ctx.rollouts(), records, device=ctx.device, start="both",
                                shuffled_text=len(records) >= 2)
        rows += [{**row, "metric": f"{row['metric'][:-1]},split={split}]"} for row in part]
    return rows


def _fvd(videos: Sequence[GeneratedSample], ctx: ScoreContext) -> Rows:
    scorer, reference = ctx.fvd()
    return [scorer.score([v.frames for v in videos], reference, seed=ctx.seed)]


def _fid(videos: Sequence[GeneratedSample], ctx: ScoreContext) -> Rows:
    scorer, reference = ctx.fid()
    return [scorer.score([v.frames for v in videos], reference)]


def _paired(videos: Sequence[GeneratedSample], ctx: ScoreContext) -> Rows:
    """Frame-paired ground-truth rows for every video that has a true video; the protocol tuple names them.
    LPIPS rows only when the study gives a backbone weights file (ctx.lpips())."""
    paired = [v for v in videos if v.truth is not None]
    if not paired:
        raise ValueError("no generated video has a true video to pair with; generate from real videos "
                         "(generate.prompts: store:test) or drop 'paired' from metrics.select")
    lpips = ctx.lpips()
    rows: Rows = []
    for video in paired:
        ids = {"prompt_id": video.prompt_id, "sample_idx": video.sample_idx, "gen_seed": video.gen_seed}
        try:
            rows += paired_rows(video.frames, video.truth, protocol=video.protocol, **ids)
            if lpips is not None:
                rows += lpips_rows(lpips, video.frames, video.truth, protocol=video.protocol, **ids)
        except ValueError as err:
            raise ValueError(f"video {video.label} {list(video.protocol)}: {err}") from err
    return rows


METRIC_FAMILIES.register("embedding", MetricFamily(
    _embedding, needs_videos=False, needs_embeddings=True,
    description="held-out embedding accuracy in step and chain mode, both starts, own and shuffled text, per split"))
METRIC_FAMILIES.register("pixel_motion", MetricFamily(
    lambda videos, ctx: pixel_motion_rows(videos), needs_videos=True,
    description="mean absolute pixel change between frames (a counterweight, never ranked)"))
METRIC_FAMILIES.register("clip", MetricFamily(
    lambda videos, ctx: clip_rows(videos, ctx.clip_encoders()), needs_videos=True,
    description="per CLIP encoder: temporal consistency, text alignment and embedding motion"))
METRIC_FAMILIES.register("fvd", MetricFamily(
    _fvd, needs_videos=True, description="FVD against the data source's real clips (metrics.fvd.FVDScorer)"))
METRIC_FAMILIES.register("fid", MetricFamily(
    _fid, needs_videos=True, description="frame FID against the data source's real clips (metrics.fid.FrameFID)"))
METRIC_FAMILIES.register("paired", MetricFamily(
    _paired, needs_videos=True, protocol_rows=True,
    description="PSNR/SSIM per frame, their slope, change cosine and motion ratio against the true video; LPIPS "
                "(metrics.paired.lpips) when a local backbone weights file is given"))
