"""The train stage: the encode stage's store -> a trained Spliter (checkpoints/best.pt, history.json)."""

from __future__ import annotations

from pathlib import Path

from ablations.runfolder import write_json
from ablations.stages.context import RunContext
from ablations.stages.resources import Resources
from ablations.study import Trial
from spliter.models import SpliterConfig
from spliter.regimes import RegimeConfig
from spliter.train import TrainConfig, train


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:

    store = resources.store(trial)
    cfg = trial.config
    # The model's width in embedding space is a fact of the data, not a choice of the study.
    model_config = SpliterConfig(**{**cfg["model"], "dim": store.dim, "text_tokens": store.text_tokens})
    # data.captions_per_video: sampled -> one caption record per video per epoch (the encode stage wrote them).
    sampled = cfg["data"].get("captions_per_video", "one") == "sampled"
    train_config = TrainConfig(**cfg["train"], seed=cfg["seed"], device=ctx.device, progress=ctx.progress,
                               regime=RegimeConfig(**cfg["regime"]), caption_sampling=sampled)
    result = train(model_config, train_config, store, work / "checkpoints")
    history = [dict(row) for row in result.history]
    write_json(work / "history.json", history)
    # The budget actually spent (runs.parquet budget columns): compared across variants, never assumed.
    return {"best_epoch": result.best_epoch, "best_val_cosine": result.best_val_cosine, "epochs_run": len(history),
            "steps": result.global_step, "examples": result.examples_seen, "train_wall_s": round(result.wall_s, 3),
            "best_step": result.best_step}
