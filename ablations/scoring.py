"""The score stage's content: a trial's `metrics` section -> rows from the metrics package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ablations.runfolder import write_atomic
from ablations.stages import (
    RunContext,
    backend_for,
    rollout_for,
    source_videos,
    stage_dir,
    stage_hash,
    store_for,
)
from ablations.study import Trial


def score_trial(ctx: RunContext, trial: Trial) -> list[dict[str, Any]]:
    metrics = trial.config["metrics"]
    rows: list[dict[str, Any]] = []
    if metrics["embedding"]:
        rows += embedding_rows(ctx, trial)
    if trial.config["generate"]["enabled"]:
        samples = generated_samples(ctx, trial)
        encoders = clip_encoders(ctx, trial)
        if encoders:
            from metrics.suite import score_generated

            rows += score_generated(samples, encoders)
        if metrics["fvd"]["enabled"]:
            rows += fvd_rows(ctx, trial, samples)
    if not rows:
        raise ValueError(f"trial {trial.trial_id}: the metrics section selects nothing to score")
    return rows


def embedding_rows(ctx: RunContext, trial: Trial) -> list[dict[str, Any]]:
    """Held-out embedding metrics on the store's validation videos, in step and chain mode."""
    from metrics.suite import score_embeddings
    from spliter.train import select_device

    records = store_for(ctx, trial).split("val")
    if not records:
        raise ValueError(f"trial {trial.trial_id}: the store has no validation videos; set data.val_fraction > 0")
    rollouts = {mode: rollout_for(ctx, trial, mode) for mode in ("step", "chain")}
    return score_embeddings(rollouts, records, device=select_device(ctx.device))


def _read_frames(gen_dir: Path, item: dict) -> np.ndarray:
    """Lossless frames when the generate stage kept them, else the decoded mp4 (codec noise: see docs)."""
    raw = (gen_dir / item["mp4"]).with_suffix(".npy")
    if raw.exists():
        return np.load(raw)
    from spliter.data.video import read_video

    return read_video(gen_dir / item["mp4"]).frames


def generated_samples(ctx: RunContext, trial: Trial) -> list:
    from metrics.suite import GeneratedSample

    gen_dir = stage_dir(ctx, trial, "generate")
    index = json.loads((gen_dir / "videos.json").read_text())
    return [
        GeneratedSample(item["prompt_id"], item["sample_idx"], item["gen_seed"], item["prompt"], _read_frames(gen_dir, item))
        for item in index
    ]


def clip_encoders(ctx: RunContext, trial: Trial) -> list:
    from metrics.clip import BackendClipEncoder, OpenClipEncoder, register_open_clip_config

    encoders = []
    for spec in trial.config["metrics"]["clip_encoders"]:
        if spec == "backend":
            encoders.append(BackendClipEncoder(backend_for(ctx, trial)))
            continue
        model, _, weights = spec.removeprefix("openclip:").partition("@")
        key = ("openclip", spec, ctx.device)
        if key not in ctx.cache:
            if model == "tiny-vit":
                register_open_clip_config("tiny-vit")
            if weights == "random":
                ctx.cache[key] = OpenClipEncoder(model, pretrained=None, allow_random=True, seed=0, device="cpu")
            else:
                ctx.cache[key] = OpenClipEncoder(model, pretrained=weights, device=_device(ctx))
        encoders.append(ctx.cache[key])
    return encoders


def _device(ctx: RunContext) -> str:
    from spliter.train import select_device

    return str(select_device(ctx.device))


def fvd_scorer(ctx: RunContext, trial: Trial):
    from metrics.fvd import FVDProtocol, FVDScorer, I3DFeatureExtractor

    cfg = trial.config["metrics"]["fvd"]
    protocol = FVDProtocol(weights=cfg["protocol"], frames=cfg["frames"], resolution=cfg["resolution"],
                           resize=cfg["resize"])
    key = ("fvd", json.dumps(cfg, sort_keys=True))
    if key not in ctx.cache:
        if cfg["weights"] == "random":
            extractor = I3DFeatureExtractor.random(seed=0, protocol=protocol, device=_device(ctx))
        else:
            extractor = I3DFeatureExtractor.from_file(cfg["weights"], protocol=protocol, device=_device(ctx))
        ctx.cache[key] = FVDScorer(extractor, protocol)
    return ctx.cache[key]


def reference_videos(ctx: RunContext, trial: Trial) -> list[np.ndarray]:
    """Real clips of the study's data source, sampled like the generated videos (frames, rate, size)."""
    from spliter.data.video import center_crop_square, read_video, resize_frames, sample_clip

    gen = trial.config["generate"]
    listing = source_videos(trial, stage_dir(ctx, trial, "encode"))
    videos = []
    for video in listing.videos:
        clip = sample_clip(read_video(video.path), n_frames=gen["frames"], fps=1.0 / gen["dt"])
        videos.append(resize_frames(center_crop_square(clip.frames), gen["size"]))
    return videos


def fvd_rows(ctx: RunContext, trial: Trial, samples: list) -> list[dict[str, Any]]:
    """FVD of the trial's generated set against the data source's real clips; reference features are cached."""
    from metrics.frechet import FeatureStats
    from metrics.suite import score_set

    scorer = fvd_scorer(ctx, trial)
    gen = trial.config["generate"]
    # The reference set's identity: which real clips (the encode stage's data), sampled how.
    key = scorer.cache_key({"encode": stage_hash(trial, "encode"), "frames": gen["frames"], "dt": gen["dt"],
                            "size": gen["size"]})
    cache = ctx.root / "cache" / "fvd" / f"{key[:16]}.npz"
    if cache.exists():
        reference = FeatureStats.load(cache)
    else:
        features = scorer.features(reference_videos(ctx, trial))
        reference = FeatureStats.from_features(features, meta={"scorer": scorer.name, "n": int(len(features))})
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp.npz")
        reference.save(tmp)
        write_atomic(cache, tmp.read_bytes())
        tmp.unlink()
    return score_set(samples, scorer, reference, seed=trial.config["study_seed"])
