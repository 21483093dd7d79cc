"""run_trial(): one stage of one trial, idempotent and atomic (lock, .partial folder, meta.json, DONE).

A DONE stage vouches for its outputs: its MANIFEST.json records every output (size, mtime, sha256) and the
identities of its inputs (the source data for encode, the upstream stages' outputs for the others). A stage
whose outputs no longer match, or whose inputs changed, is stale: it is redone (with a warning), or, when the
run context says not to redo, named with the command that redoes it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ablations.runfolder import (
    mark_done,
    output_problem,
    read_manifest,
    stage_lock,
    stage_meta,
    stage_status,
    staging,
    write_config,
    write_json,
    write_manifest,
)
from ablations.stages import encode, frame_baseline, generate, score, train
from ablations.stages.context import RunContext
from ablations.stages.plan import STAGES, applies, stage_config, stage_dir, stage_hash
from ablations.stages.resources import Resources
from ablations.study import FRAME_BASELINES, Trial, stable_hash

log = logging.getLogger(__name__)


def _generate(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:
    """A baseline that renders frames itself has its own generate body; every other trial renders embeddings."""
    body = frame_baseline.run if trial.config.get("baseline") in FRAME_BASELINES else generate.run
    return body(ctx, resources, trial, work)


# stage -> body(ctx, resources, trial, work folder) -> extra fields for meta.json
BODIES: dict[str, Callable[[RunContext, Resources, Trial, Path], dict]] = {
    "encode": encode.run, "train": train.run, "generate": _generate, "score": score.run,
}
# Stages whose .partial folder is resumed after a kill (the store and the checkpoints pick up where they were).
RESUMABLE = ("encode", "train")


@dataclass(frozen=True)
class StageOutcome:
    trial_id: str
    stage: str
    status: str  # ran | skipped | not-applicable
    wall_s: float


class StageStale(RuntimeError):
    """A DONE stage no longer matches its outputs or inputs, and the run was asked not to redo stages."""


def stage_state(ctx: RunContext, trial: Trial, stage: str) -> tuple[str, str]:
    """(done | stale | pending, why): done only when the DONE hash, the outputs and the inputs all match."""
    out = stage_dir(ctx, trial, stage)
    status = stage_status(out, stage_hash(trial, stage))
    if status != "done":
        return status, "its settings changed" if status == "stale" else ""
    manifest = read_manifest(out)
    if manifest is None:  # finished before manifests existed: trusted as it is
        return "done", ""
    problem = output_problem(out, manifest)
    if problem:
        return "stale", f"output damaged: {problem}"
    try:
        inputs = _inputs(ctx, trial, stage, out)
    except Exception as error:  # noqa: BLE001 - an unreadable input is a reason to redo, whose error then names it
        return "stale", f"input unreadable: {error}"
    changed = sorted(k for k in set(inputs) | set(manifest.get("inputs", {})) if inputs.get(k) != manifest["inputs"].get(k))
    if changed:
        return "stale", f"input changed: {', '.join(changed)}"
    return "done", ""


def plan_state(ctx: RunContext, trial: Trial, stage: str) -> tuple[str, str]:
    """What a run would do with a stage: (done | stale | missing, why), ('-', '') where it does not apply.

    stale: the DONE hash is another configuration's, an output fails the manifest, or an input changed;
    missing: no DONE (never run, or its folder was removed). A run redoes both.
    """
    if not applies(trial, stage):
        return "-", ""
    state, why = stage_state(ctx, trial, stage)
    return ("missing" if state == "pending" else state), why


def _inputs(ctx: RunContext, trial: Trial, stage: str, folder: Path) -> dict[str, str]:
    """The identities a stage's outputs are a function of, besides its settings."""
    if stage == "encode":
        identity = encode.data_identity(trial, folder)
        return {} if identity is None else {"data": identity}
    inputs = {}
    for upstream in STAGES[: STAGES.index(stage)]:
        if applies(trial, upstream):
            manifest = read_manifest(stage_dir(ctx, trial, upstream))
            inputs[upstream] = (manifest or {}).get("identity") or "unrecorded"
    return inputs


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
    if not ctx.force and _current(ctx, trial, stage, locked=False):
        return StageOutcome(trial_id, stage, "skipped", 0.0)
    _set_threads(trial)
    with stage_lock(out, ctx.lock_wait_s):
        # Another process may have finished it while we waited for the lock.
        if not ctx.force and _current(ctx, trial, stage, locked=True):
            return StageOutcome(trial_id, stage, "skipped", 0.0)
        started = time.time()
        work = out.with_name(out.name + ".partial")
        upstream = _inputs(ctx, trial, stage, out) if stage != "encode" else {}
        _reset_partial(work, digest + stable_hash(upstream), keep=stage in RESUMABLE and not ctx.force)
        if stage == "train":
            _drop_torn_checkpoint(work / "checkpoints")
        extra = BODIES[stage](ctx, resources, trial, work) or {}
        write_config(work, {"stage_config": stage_config(trial, stage), "trial_config": trial.config})
        meta = stage_meta(trial=trial, stage=stage, config_hash=digest, device=str(resources.device),
                          started=started, extra={**extra, "resources": resources.facts()})
        write_json(work / "meta.json", meta)
        inputs = _inputs(ctx, trial, stage, work) if stage == "encode" else upstream
        with staging(out) as tmp:
            for item in work.iterdir():
                os.replace(item, tmp / item.name)
            write_manifest(tmp, inputs)
            mark_done(tmp, digest)
        shutil.rmtree(work, ignore_errors=True)
        return StageOutcome(trial_id, stage, "ran", time.time() - started)


def _current(ctx: RunContext, trial: Trial, stage: str, locked: bool) -> bool:
    """True when done; a stale stage is announced and, when damaged, its folder is removed before the redo.

    Only the holder of the stage's lock announces and removes: another process may be redoing it right now.
    """
    state, why = stage_state(ctx, trial, stage)
    if state != "stale" or not why.startswith(("output", "input")) or not (locked or not ctx.redo):
        return state == "done"
    out = stage_dir(ctx, trial, stage)
    if not ctx.redo:
        raise StageStale(
            f"stage {stage} of trial {trial.trial_id} is stale ({why}); redo it with "
            f"`spliter-bench run {ctx.study_path} --out {ctx.root.parent}` (without --no-redo)"
        )
    log.warning("stage %s of trial %s is stale (%s); redoing it", stage, trial.trial_id, why)
    if why.startswith("output"):  # nothing of a damaged folder is reused
        (out / "DONE").unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
    return False


def _drop_torn_checkpoint(checkpoints: Path) -> None:
    """A last.pt that does not load (torn by a kill or a full disk) restarts the trial instead of failing it."""
    last = checkpoints / "last.pt"
    if not last.exists():
        return
    try:
        torch.load(last, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for truncated files
        # There is no older checkpoint to fall back to (train keeps one last.pt); training is deterministic,
        # so restarting gives the run an uninterrupted run would have given.
        log.warning("%s is unreadable (%s: %s); restarting this trial's training", last, type(error).__name__, error)
        shutil.rmtree(checkpoints)


def _reset_partial(work: Path, digest: str, keep: bool) -> None:
    """A .partial folder survives a kill so encode/train resume; it is wiped when its config changed."""
    marker = work / ".hash"
    if work.exists() and not (keep and marker.exists() and marker.read_text() == digest):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest)


def _set_threads(trial: Trial) -> None:
    torch.set_num_threads(int(trial.config["resources"]["threads"]))
