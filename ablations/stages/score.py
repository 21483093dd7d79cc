"""The score stage: the study's selected metric families (metrics.select) -> scores.jsonl.

Generated videos are read from the generate stage's lossless frames (.npz), never from the mp4.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ablations.sources import SOURCES
from ablations.stages.context import RunContext
from ablations.stages.generate import load_frames
from ablations.stages.plan import stage_dir
from ablations.stages.reference import ProtocolFVD, reference_set, reference_stats
from ablations.stages.resources import Resources
from ablations.study import FRAME_BASELINES, Trial
from metrics.families import METRIC_FAMILIES
from metrics.suite import GeneratedSample
from spliter.data.splits import TEST_SPLITS, train_val_records
from spliter.data.video import center_crop_square, read_video, resize_frames, sample_clip


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:
    rows = score_trial(TrialScoring(ctx, resources, trial))
    identity = {"study": trial.study, "trial_id": trial.trial_id, "variant": trial.variant, "seed": trial.seed}
    lines = [json.dumps({**identity, **row}, sort_keys=True, default=_json_default) for row in rows]
    (work / "scores.jsonl").write_text("\n".join(lines) + "\n")
    return {"n_rows": len(rows), "skipped_families": skipped_families(trial)}


def skipped_families(trial: Trial) -> dict[str, str]:
    """Selected families that do not apply to the trial, each with the reason (recorded in meta.json)."""
    skipped = {}
    for name in trial.config["metrics"]["select"]:
        family = METRIC_FAMILIES.get(name)
        if family.needs_videos and not trial.config["generate"]["enabled"]:
            skipped[name] = "nothing is rendered (generate.enabled: false)"
        elif family.needs_embeddings and trial.config.get("baseline") in FRAME_BASELINES:
            skipped[name] = f"{trial.config['baseline']} renders frames directly: it has no embeddings to score"
    return skipped


def score_trial(scoring: TrialScoring) -> list[dict[str, Any]]:
    """Rows of every selected family that applies (see skipped_families), in the order of metrics.select."""

    trial = scoring.trial
    skipped = skipped_families(trial)
    rows: list[dict[str, Any]] = []
    for name in trial.config["metrics"]["select"]:
        family = METRIC_FAMILIES.get(name)
        if name in skipped:
            continue
        videos = (scoring.videos if family.protocol_rows else scoring.rendered_videos) if family.needs_videos else []
        try:
            rows += family.compute(videos, scoring)
        except ValueError as err:
            raise ValueError(f"trial {trial.trial_id}, metric family {name!r}: {err}") from err
    if not rows:
        raise ValueError(f"trial {trial.trial_id}: metrics.select {trial.config['metrics']['select']} scores nothing")
    return rows


class TrialScoring:
    """metrics.families.ScoreContext for one trial, on this process's Resources."""

    def __init__(self, ctx: RunContext, resources: Resources, trial: Trial) -> None:
        self.ctx, self.resources, self.trial = ctx, resources, trial
        self.seed = int(trial.config["study_seed"])
        self.device = resources.device

    @cached_property
    def _index(self) -> list[dict[str, Any]]:
        return json.loads((stage_dir(self.ctx, self.trial, "generate") / "videos.json").read_text())

    @cached_property
    def videos(self) -> list[Any]:
        """Every entry of the generated-video index with its identity and protocol, from the lossless frames."""
        gen_dir = stage_dir(self.ctx, self.trial, "generate")
        return [GeneratedSample(item["prompt_id"], item["sample_idx"], item["gen_seed"], item["prompt"],
                                load_frames(gen_dir / item["npz"]),
                                truth=load_frames(gen_dir / item["truth_npz"]) if "truth_npz" in item else None,
                                protocol=generation_protocol(item)) for item in self._index]

    @cached_property
    def rendered_videos(self) -> list[Any]:
        """The videos once per rendered file: a frame baseline indexes one file under each mode (stages.frame_baseline)."""
        seen: set[str] = set()
        once = []
        for item, video in zip(self._index, self.videos, strict=True):
            if item["npz"] not in seen:
                seen.add(item["npz"])
                once.append(video)
        return once

    def rollouts(self) -> dict[str, Any]:
        return {mode: self.resources.rollout(self.trial, mode) for mode in ("step", "chain")}

    def scored_splits(self) -> dict[str, Sequence[Any]]:
        """test and test_unseen (those the store has); without a test split the trainer's val videos, named val."""
        store = self.resources.store(self.trial)
        splits = {name: store.split(name) for name in TEST_SPLITS if store.split(name)}
        if splits:
            return splits
        # Old stores have no test split: their scores come from the selection set, and the name says so.
        return {"val": list(train_val_records(store, self.trial.config["train"]["val_fraction"])[1])}

    def clip_encoders(self) -> list[Any]:
        return self.resources.clip_encoders(self.trial)

    def fvd(self) -> tuple[Any, Any]:
        """The FVD scorer and the streamed, cached statistics of the evaluation set's real clips (stages.reference)."""
        scorer = self.resources.fvd_scorer(self.trial)
        encode_dir = stage_dir(self.ctx, self.trial, "encode")
        # Without an `evaluation:` set, the reference clips are the held-out videos the scores use.
        held_out = [record.video_id for records in self.scored_splits().values() for record in records]
        reference = reference_set(self.trial.config, encode_dir, held_out)
        stats, skipped = reference_stats(scorer, reference, self.trial.config["generate"]["size"],
                                         self.ctx.root / "cache" / "fvd")
        return ProtocolFVD(scorer, reference.name, len(reference.videos), skipped), stats

    def fid(self) -> tuple[Any, list[np.ndarray]]:
        """The frame-FID scorer and the real reference clips."""
        return self.resources.frame_fid(self.trial), self.reference_videos()

    def lpips(self) -> Any | None:
        """The LPIPS scorer of metrics.paired.lpips, or None when the study gives no backbone file."""
        return self.resources.lpips(self.trial)

    def reference_videos(self) -> list[np.ndarray]:
        """Real clips of the study's data source, sampled like the generated videos (frames, rate, size)."""
        gen, data = self.trial.config["generate"], self.trial.config["data"]
        listing = SOURCES.get(data["source"]).videos(data, stage_dir(self.ctx, self.trial, "encode"))
        videos = []
        for video in listing.videos:
            clip = sample_clip(read_video(video.path), n_frames=gen["frames"], fps=1.0 / gen["dt"])
            videos.append(resize_frames(center_crop_square(clip.frames), gen["size"]))
        return videos


def generation_protocol(item: dict[str, Any]) -> tuple[str, ...]:
    """How a video of the index was made, as metric-name parameters: (mode, start=..., split=...) where known."""
    protocol = (item["mode"],) if "mode" in item else ()
    return protocol + tuple(f"{key}={item[key]}" for key in ("start", "split") if key in item)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
