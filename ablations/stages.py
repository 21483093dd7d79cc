"""The four stages of a trial, each idempotent and atomic, behind one entry point: run_trial()."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablations.runfolder import (
    RunFolder,
    mark_done,
    stage_lock,
    stage_meta,
    stage_status,
    staging,
    write_config,
    write_json,
)
from ablations.study import Study, Trial, load_prompts, load_study, stable_hash

log = logging.getLogger(__name__)

STAGES = ("encode", "train", "generate", "score")
# Bump a stage's version when its code changes what it writes: its DONE hashes go stale and it reruns.
STAGE_VERSIONS = {"encode": 2, "train": 1, "generate": 1, "score": 2}


@dataclass
class RunContext:
    """Everything a stage needs besides the trial; picklable, so launchers can ship it to workers."""

    study_path: Path
    root: Path  # ROOT/<study>
    device: str = "auto"
    force: bool = False
    lock_wait_s: float = 3600.0
    progress: bool = False  # inner progress bars (the launcher shows one outer bar per stage)
    # Per-process cache of loaded backends and stores; never pickled to workers.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["cache"] = {}
        return state

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.root)

    def study(self) -> Study:
        key = ("study", str(self.study_path), self.study_path.stat().st_mtime_ns)
        if key not in self.cache:
            self.cache[key] = load_study(self.study_path)
        return self.cache[key]


@dataclass(frozen=True)
class StageOutcome:
    trial_id: str
    stage: str
    status: str  # ran | skipped | not-applicable
    wall_s: float


# ---------------------------------------------------------------- hashes: what each stage depends on


def encode_config(trial: Trial) -> dict:
    return {"data": trial.config["data"], "backend": trial.config["backend"], "version": STAGE_VERSIONS["encode"]}


def stage_config(trial: Trial, stage: str) -> dict:
    """The part of the resolved config a stage depends on (upstream stages included through their hashes)."""
    cfg = trial.config
    encode = encode_config(trial)
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
    if stage == "generate":
        return generate
    if stage == "score":
        return {"generate": stable_hash(generate), "metrics": cfg["metrics"], "version": STAGE_VERSIONS["score"]}
    raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")


def stage_hash(trial: Trial, stage: str) -> str:
    return stable_hash(stage_config(trial, stage))


def stage_dir(ctx: RunContext, trial: Trial, stage: str) -> Path:
    if stage == "encode":
        return ctx.folder.encode_dir(stage_hash(trial, "encode"))
    return ctx.folder.stage_dir(trial.trial_id, stage)


def applies(trial: Trial, stage: str) -> bool:
    if stage == "train":
        return trial.kind == "spliter"
    if stage == "generate":
        return bool(trial.config["generate"]["enabled"])
    return True


def status_of(ctx: RunContext, trial: Trial, stage: str) -> str:
    if not applies(trial, stage):
        return "-"
    return stage_status(stage_dir(ctx, trial, stage), stage_hash(trial, stage))


# ---------------------------------------------------------------- the entry point


def run_trial(ctx: RunContext, trial_id: str, stage: str) -> StageOutcome:
    """Run one stage of one trial if it is not already done with the same configuration."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")
    trial = ctx.study().trial(trial_id)
    if not applies(trial, stage):
        return StageOutcome(trial_id, stage, "not-applicable", 0.0)
    out = stage_dir(ctx, trial, stage)
    digest = stage_hash(trial, stage)
    if not ctx.force and stage_status(out, digest) == "done":
        return StageOutcome(trial_id, stage, "skipped", 0.0)
    _set_threads(trial)
    with stage_lock(out, ctx.lock_wait_s):
        # Another process may have finished it while we waited for the lock.
        if not ctx.force and stage_status(out, digest) == "done":
            return StageOutcome(trial_id, stage, "skipped", 0.0)
        started = time.time()
        runner = {"encode": _encode, "train": _train, "generate": _generate, "score": _score}[stage]
        work = out.with_name(out.name + ".partial")
        _reset_partial(work, digest, keep=stage in ("encode", "train") and not ctx.force)
        extra = runner(ctx, trial, work) or {}
        config = stage_config(trial, stage)
        write_config(work, {"stage_config": config, "trial_config": trial.config})
        device = _device_name(ctx)
        write_json(work / "meta.json", stage_meta(trial=trial, stage=stage, config_hash=digest, device=device,
                                                  started=started, extra=extra))
        with staging(out) as tmp:
            for item in work.iterdir():
                os.replace(item, tmp / item.name)
            mark_done(tmp, digest)
        shutil.rmtree(work, ignore_errors=True)
        return StageOutcome(trial_id, stage, "ran", time.time() - started)


def _reset_partial(work: Path, digest: str, keep: bool) -> None:
    """A .partial folder survives a kill so encode/train resume; it is wiped when its config changed."""
    marker = work / ".hash"
    if work.exists() and not (keep and marker.exists() and marker.read_text() == digest):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest)


def _set_threads(trial: Trial) -> None:
    import torch

    torch.set_num_threads(int(trial.config["resources"]["threads"]))


def _device_name(ctx: RunContext) -> str:
    from spliter.train import select_device

    return str(select_device(ctx.device))


# ---------------------------------------------------------------- shared helpers


def backend_for(ctx: RunContext, trial: Trial):
    """The trial's backend, built once per process."""
    from spliter.backends import make_backend

    cfg = trial.config["backend"]
    key = ("backend", json.dumps(cfg, sort_keys=True), ctx.device)
    if key not in ctx.cache:
        ctx.cache[key] = make_backend(cfg["name"], device=ctx.device, **cfg["options"])
    return ctx.cache[key]


def store_for(ctx: RunContext, trial: Trial):
    from spliter.data.store import EmbeddingStore

    path = stage_dir(ctx, trial, "encode") / "store"
    if stage_status(path.parent, stage_hash(trial, "encode")) != "done":
        raise RuntimeError(f"trial {trial.trial_id}: the encode stage is not done ({path.parent}); run it first")
    key = ("store", str(path))
    if key not in ctx.cache:
        ctx.cache[key] = EmbeddingStore.open(path)
    return ctx.cache[key]


def source_videos(trial: Trial, work: Path):
    """The captioned videos of the study's data source (a source may render them into `work`)."""
    from ablations.sources import SOURCES

    data = trial.config["data"]
    source = SOURCES.get(data["source"])
    if source.videos is None:
        raise ValueError(f"data.source {data['source']!r} has no video files")
    return source.videos(data, work)


# ---------------------------------------------------------------- stages


def _encode(ctx: RunContext, trial: Trial, work: Path) -> dict:
    data = trial.config["data"]
    store_path = work / "store"
    from ablations.sources import SOURCES

    source = SOURCES.get(data["source"])
    if source.store is not None:
        if store_path.exists():
            shutil.rmtree(store_path)
        store = source.store(data, store_path)
        write_json(work / "skipped.json", [])
        return {"n_videos": len(store), "skipped": 0}
    from spliter.pipeline import encode_videos

    listing = source_videos(trial, work)
    backend_cfg = trial.config["backend"]
    report = encode_videos(
        listing.videos, backend_for(ctx, trial), store_path, frames=data["frames"], fps=data["fps"],
        size=backend_cfg["encode_size"], prior_seed=backend_cfg["prior_seed"], prior_steps=backend_cfg["prior_steps"],
        guidance=backend_cfg["guidance"], val_fraction=data["val_fraction"], split_seed=data["split_seed"],
        progress=ctx.progress,
    )
    skipped = [{"video": v, "reason": r} for v, r in list(listing.problems) + list(report.skipped)]
    write_json(work / "skipped.json", skipped)
    for item in skipped:
        log.warning("encode: skipped %s: %s", item["video"], item["reason"])
    from spliter.data.store import EmbeddingStore

    n_videos = len(EmbeddingStore.open(store_path))
    if n_videos == 0:  # an empty store is not a finished encode: every later stage would fail less clearly
        first = f" (first: {skipped[0]['video']}: {skipped[0]['reason']})" if skipped else ""
        raise RuntimeError(
            f"data source {data['source']!r} gave no usable videos: {len(skipped)} skipped{first}; "
            f"see {work / 'skipped.json'}"
        )
    return {"n_videos": n_videos, "skipped": len(skipped)}


def _train(ctx: RunContext, trial: Trial, work: Path) -> dict:
    from spliter.models import SpliterConfig
    from spliter.regimes import RegimeConfig
    from spliter.train import TrainConfig, train

    store = store_for(ctx, trial)
    cfg = trial.config
    # The model's width in embedding space is a fact of the data, not a choice of the study.
    model_config = SpliterConfig(**{**cfg["model"], "dim": store.dim, "text_tokens": store.text_tokens})
    train_config = TrainConfig(**cfg["train"], seed=cfg["seed"], device=ctx.device, progress=ctx.progress,
                               regime=RegimeConfig(**cfg["regime"]))
    result = train(model_config, train_config, store, work / "checkpoints")
    history = [dict(row) for row in result.history]
    write_json(work / "history.json", history)
    return {"best_epoch": result.best_epoch, "best_val_cosine": result.best_val_cosine, "epochs_run": len(history)}


def rollout_for(ctx: RunContext, trial: Trial, mode: str):
    """The trial's rollout in the given mode: a trained Spliter or a baseline."""
    from spliter.rollout import MeanMotionRollout, RolloutConfig, SpliterRollout, StaticRollout

    if trial.kind == "baseline":
        if trial.config["baseline"] == "static":
            return StaticRollout()
        return MeanMotionRollout.fit(store_for(ctx, trial), split="train")
    from spliter.models import load_spliter
    from spliter.train import select_device

    checkpoint = stage_dir(ctx, trial, "train") / "checkpoints" / "best.pt"
    model = load_spliter(checkpoint, map_location=select_device(ctx.device))
    rollout = SpliterRollout(model, RolloutConfig(**{**trial.config["rollout"], "mode": mode}))
    # Recorded next to every generated video, so a video names the exact weights that made it.
    rollout.checkpoint_hash = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    return rollout


def _generate(ctx: RunContext, trial: Trial, work: Path) -> dict:
    from spliter.pipeline import Prompt, generate_videos

    gen = trial.config["generate"]
    prompts, set_name, sha = load_prompts(gen)
    backend = backend_for(ctx, trial)
    videos = generate_videos(
        [Prompt(p.id, p.text) for p in prompts], rollout_for(ctx, trial, gen["mode"]), backend, work / "videos",
        samples_per_prompt=gen["samples_per_prompt"], frames=gen["frames"], dt=gen["dt"],
        study_seed=trial.config["study_seed"], decoder_steps=gen["decoder_steps"], guidance=gen["guidance"],
        size=gen["size"], noise=gen["noise"], fps=gen["fps"], prior_steps=trial.config["backend"]["prior_steps"],
        progress=ctx.progress,
    )
    texts = {p.id: p.text for p in prompts}
    index = [
        {"prompt_id": v.prompt_id, "prompt": texts[v.prompt_id], "sample_idx": v.sample_idx, "gen_seed": v.gen_seed,
         "gif": f"videos/{Path(v.gif).name}", "mp4": f"videos/{Path(v.mp4).name}", "frames": gen["frames"],
         "size": gen["size"], "fps": gen["fps"]}
        for v in videos
    ]
    write_json(work / "videos.json", index)
    return {"n_videos": len(index), "prompt_set": set_name, "prompts_sha256": sha}


def _score(ctx: RunContext, trial: Trial, work: Path) -> dict:
    from ablations.scoring import score_trial

    rows = score_trial(ctx, trial)
    identity = {"study": trial.study, "trial_id": trial.trial_id, "variant": trial.variant, "seed": trial.seed}
    lines = [json.dumps({**identity, **row}, sort_keys=True, default=_json_default) for row in rows]
    (work / "scores.jsonl").write_text("\n".join(lines) + "\n")
    return {"n_rows": len(rows)}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
