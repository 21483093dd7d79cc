"""run_trial(): one stage of one trial, idempotent and atomic (lock, .partial folder, meta.json, DONE)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ablations.runfolder import (
    mark_done,
    stage_lock,
    stage_meta,
    stage_status,
    staging,
    write_config,
    write_json,
)
from ablations.stages import encode, generate, score, train
from ablations.stages.context import RunContext
from ablations.stages.plan import STAGES, applies, stage_config, stage_dir, stage_hash
from ablations.stages.resources import Resources
from ablations.study import Trial

# stage -> body(ctx, resources, trial, work folder) -> extra fields for meta.json
BODIES: dict[str, Callable[[RunContext, Resources, Trial, Path], dict]] = {
    "encode": encode.run, "train": train.run, "generate": generate.run, "score": score.run,
}
# Stages whose .partial folder is resumed after a kill (the store and the checkpoints pick up where they were).
RESUMABLE = ("encode", "train")


@dataclass(frozen=True)
class StageOutcome:
    trial_id: str
    stage: str
    status: str  # ran | skipped | not-applicable
    wall_s: float


def run_trial(ctx: RunContext, trial_id: str, stage: str, resources: Resources | None = None) -> StageOutcome:
    """Run one stage of one trial if it is not already done with the same configuration."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")
    resources = resources or Resources(ctx)
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
        work = out.with_name(out.name + ".partial")
        _reset_partial(work, digest, keep=stage in RESUMABLE and not ctx.force)
        extra = BODIES[stage](ctx, resources, trial, work) or {}
        write_config(work, {"stage_config": stage_config(trial, stage), "trial_config": trial.config})
        meta = stage_meta(trial=trial, stage=stage, config_hash=digest, device=str(resources.device),
                          started=started, extra={**extra, "resources": resources.facts()})
        write_json(work / "meta.json", meta)
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
    torch.set_num_threads(int(trial.config["resources"]["threads"]))
