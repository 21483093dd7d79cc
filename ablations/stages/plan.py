"""What each stage depends on (its hash), where it writes, whether it applies to a trial, and its status."""

from __future__ import annotations

from pathlib import Path

from ablations.stages.context import RunContext
from ablations.study import FRAME_BASELINES, Trial, stable_hash

STAGES = ("encode", "train", "generate", "score")
# Bump a stage's version when its code changes what it writes: its DONE hashes go stale and it reruns.
# generate 2: frames.npz (lossless) next to the mp4; score 3: scores read frames.npz, FVD rows carry the I3D
# weights identity, metric families are selected by name.
# train 2: meta.json records steps/examples/train_wall_s; score 4: embedding rows per split, both starts, shuffled text.
# generate 3: frame 0 decoded on its own call and rows equal to it copied (ablations.stages.decodes), which moves
# pixels by at most the backend's batching noise; decodes.json.
STAGE_VERSIONS = {"encode": 2, "train": 2, "generate": 3, "score": 4}


def stage_config(trial: Trial, stage: str) -> dict:
    """The part of the resolved config a stage depends on (upstream stages included through their hashes)."""
    cfg = trial.config
    encode = {"data": cfg["data"], "backend": cfg["backend"], "version": STAGE_VERSIONS["encode"]}
    if stage == "encode":
        return encode
    train = {
        "encode": stable_hash(encode),
        "kind": cfg["kind"],
        "seed": cfg["seed"],
        "model": cfg.get("model"),
        "train": cfg.get("train"),
        "regime": cfg.get("regime"),
        "baseline": cfg.get("baseline"),
        "version": STAGE_VERSIONS["train"],
    }
    if stage == "train":
        return train
    generate = {
        "train": stable_hash(train),
        "rollout": cfg["rollout"],
        "generate": cfg["generate"],
        "study_seed": cfg["study_seed"],
        "version": STAGE_VERSIONS["generate"],
    }
    if cfg.get("baseline") in FRAME_BASELINES:  # its settings, under its name: every other trial keeps its hash
        generate[cfg["baseline"]] = cfg[cfg["baseline"]]
    if stage == "generate":
        return generate
    if stage == "score":
        score = {"generate": stable_hash(generate), "metrics": cfg["metrics"], "version": STAGE_VERSIONS["score"]}
        if "evaluation" in cfg:  # FVD's reference clips come from the evaluation set
            score["evaluation"] = cfg["evaluation"]
        return score
    raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")


def stage_hash(trial: Trial, stage: str) -> str:
    return stable_hash(stage_config(trial, stage))


def stage_dir(ctx: RunContext, trial: Trial, stage: str) -> Path:
    """Encode folders are shared by every trial with the same data and backend; the others are per trial."""
    if stage == "encode":
        return ctx.folder.encode_dir(stage_hash(trial, "encode"))
    return ctx.folder.stage_dir(trial.trial_id, stage)


def applies(trial: Trial, stage: str) -> bool:
    if stage == "train":
        return trial.kind == "spliter"
    if stage == "generate":
        return bool(trial.config["generate"]["enabled"])
    return True
