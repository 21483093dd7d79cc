"""collect(): the run folder -> results/*.parquet + study.json (schema in docs/results.md)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ablations.protocol import evaluation_protocol
from ablations.runfolder import (
    git_state,
    library_versions,
    mark_done,
    stage_lock,
    stage_status,
    write_atomic,
    write_json,
)
from ablations.schema import to_dict
from ablations.sources import SOURCES
from ablations.stages.context import RunContext
from ablations.stages.plan import STAGES, applies, stage_dir, stage_hash
from ablations.study import FRAME_BASELINES, Study, load_prompts, stable_hash, store_prompt_split
from ablations.verdicts import judge, write_verdicts
from metrics.schema import (
    CURVE_COLUMNS,
    RESULT_FILES,
    RESULTS_VERSION,
    RUN_COLUMNS,
    SCORE_COLUMNS,
    SCORE_DTYPES,
    VIDEO_COLUMNS,
)
from spliter.atomic import atomic_path
from spliter.backends import BACKENDS

log = logging.getLogger(__name__)


class IncompleteResults(RuntimeError):
    """collect() was asked for a study whose stages are not all done."""


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _scores(ctx: RunContext, study: Study) -> pd.DataFrame:
    rows = []
    for trial in study.trials:
        path = stage_dir(ctx, trial, "score") / "scores.jsonl"
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    if frame["value"].isna().any():
        bad = frame[frame["value"].isna()].iloc[0]
        raise ValueError(f"score row without a value: trial {bad.trial_id}, metric {bad.metric}")
    frame["reliable"] = frame["reliable"].fillna(True)
    frame["extra"] = frame["extra"].fillna("{}")
    return frame.astype(SCORE_DTYPES)


def _runs(ctx: RunContext, study: Study) -> pd.DataFrame:
    rows = []
    for trial in study.trials:
        for stage in STAGES:
            meta_path = stage_dir(ctx, trial, stage) / "meta.json"
            if not meta_path.exists():
                continue
            meta = json.loads(meta_path.read_text())
            versions = meta.get("versions", {})
            rows.append({
                "study": study.name, "trial_id": trial.trial_id, "variant": trial.variant, "seed": trial.seed,
                "stage": stage, "status": "done", "config_hash": meta["config_hash"],
                "config_json": json.dumps(trial.config, sort_keys=True), "prompts_sha256": meta.get("prompts_sha256"),
                "git_sha": meta.get("git_sha"), "git_dirty": meta.get("git_dirty"), "python": versions.get("python"),
                "torch": versions.get("torch"), "diffusers": versions.get("diffusers"),
                "transformers": versions.get("transformers"), "open_clip": versions.get("open_clip_torch"),
                "device": meta.get("device"), "gpu_name": meta.get("gpu_name"), "dtype": meta.get("dtype"),
                "deterministic": meta.get("deterministic"), "started_at": meta.get("started_at"),
                "finished_at": meta.get("finished_at"), "wall_s": meta.get("wall_s"),
                "argv": " ".join(meta.get("argv", [])),
                # The training budget spent (train stage only): optimiser steps, examples seen, training time.
                "steps": meta.get("steps"), "examples": meta.get("examples"), "train_wall_s": meta.get("train_wall_s"),
            })
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def _curves(ctx: RunContext, study: Study) -> pd.DataFrame:
    rows = []
    for trial in study.trials:
        if trial.kind != "spliter":
            continue
        history = json.loads((stage_dir(ctx, trial, "train") / "history.json").read_text())
        for entry in history:
            for key, value in entry.items():
                split, _, metric = key.partition("_")
                if split in ("train", "val") and metric in ("loss", "cosine") and value is not None:
                    rows.append({"study": study.name, "trial_id": trial.trial_id, "variant": trial.variant,
                                 "seed": trial.seed, "epoch": int(entry["epoch"]), "split": split, "metric": metric,
                                 "value": float(value)})
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _videos(ctx: RunContext, study: Study) -> pd.DataFrame:
    rows = []
    for trial in study.trials:
        gen_dir = stage_dir(ctx, trial, "generate")
        index = gen_dir / "videos.json"
        if not trial.config["generate"]["enabled"]:
            continue
        for item in json.loads(index.read_text()):
            if "gif" not in item:  # scored only (ablations.stages.generate: store prompts beyond the display)
                continue
            rows.append({
                "study": study.name, "trial_id": trial.trial_id, "variant": trial.variant, "seed": trial.seed,
                **item,
                "gif": str((gen_dir / item["gif"]).relative_to(ctx.root)),
                "mp4": str((gen_dir / item["mp4"]).relative_to(ctx.root)),
                **({"truth_gif": str((gen_dir / item["truth_gif"]).relative_to(ctx.root))} if "truth_gif" in item else {}),
            })
    return pd.DataFrame(rows, columns=list(VIDEO_COLUMNS))


def study_protocol(ctx: RunContext, study: Study) -> dict:
    """The protocol block of the report: everything needed to say what the numbers mean."""
    spec = study.spec
    first = study.trials[0]
    sha, dirty = git_state()
    data: dict = {**to_dict(spec.data), "note": SOURCES.get(spec.data.source).note}
    encode_meta = stage_dir(ctx, first, "encode") / "meta.json"
    store = None
    if encode_meta.exists():
        from spliter.data.store import EmbeddingStore

        store = EmbeddingStore.open(stage_dir(ctx, first, "encode") / "store")
        data.update(n_train=len(store.split("train")), n_val=len(store.split("val")), dim=store.dim,
                    text_tokens=store.text_tokens, store_meta=store.meta)
    gen = first.config["generate"]
    uses_backend = SOURCES.get(spec.data.source).needs_backend or gen["enabled"]
    prompt_set = None
    if gen["enabled"]:
        prompts, name, digest = load_prompts(gen)
        split = store_prompt_split(gen["prompts"])
        # A store set's prompts are its split's videos (as many as the generate stage renders).
        n = len(prompts) if split is None else (
            None if store is None else len(store.ids(split)[: gen.get("max_prompts") or None]))
        prompt_set = {"name": name, "sha256": digest, "n": n}
    devices = sorted({json.loads((stage_dir(ctx, t, s) / "meta.json").read_text()).get("device", "?")
                      for t in study.trials for s in ("train", "score")
                      if (stage_dir(ctx, t, s) / "meta.json").exists()})
    variants = {}
    for trial in study.trials:
        variants.setdefault(trial.variant, trial.factors)
    return {
        "study": study.name,
        "description": spec.description,
        # The report's first screen: what the study asks and what world its numbers come from.
        "question": spec.question,
        "world": spec.world,
        "study_file": str(study.path),
        "prompt_set": prompt_set,
        # A synthetic store is written without a backend; with nothing rendered, no backend is involved at all.
        # random_weights: the backend's weights come from a seed, so its numbers measure mechanics, not quality.
        "backend": {**to_dict(spec.backend), "random_weights": BACKENDS.get(spec.backend.name).random_weights}
        if uses_backend else None,
        "data": data,
        "generation": gen,
        "rollout": first.config["rollout"],
        "metrics": first.config["metrics"],
        "seeds": list(spec.seeds),
        "study_seed": spec.study_seed,
        "git_sha": sha,
        "git_dirty": dirty,
        "versions": library_versions(),
        "device": ", ".join(devices) or "unknown",
        "variant_order": study.variant_order(),
        "baselines": list(spec.baselines),
        # Baselines that render frames directly (no embeddings): the report says why their embedding cells are empty.
        "frame_baselines": [name for name in spec.baselines if name in FRAME_BASELINES],
        "headline_metric": spec.headline_metric,
        # Matrix axis -> level names in file order; the first level is the axis's reference (docs/results.md).
        "axes": study.axes,
        "variants": variants,
        "evaluation_protocol": evaluation_protocol(ctx, study),
        "created_at": datetime.now(UTC).isoformat(),
    }


def skipped_videos(ctx: RunContext, study: Study) -> list[dict]:
    """Every source file the encode stages left out, with its reason ({"encode", "video", "reason"})."""
    rows, seen = [], set()
    for trial in study.trials:
        folder = stage_dir(ctx, trial, "encode")
        if folder in seen or not (folder / "skipped.json").exists():
            continue
        seen.add(folder)
        rows += [{"encode": folder.name, **item} for item in json.loads((folder / "skipped.json").read_text())]
    return rows


def results_key(ctx: RunContext, study: Study) -> str:
    """What the results tables are a function of: the study file and every needed stage's DONE (hash and time)."""
    stages = []
    for trial in study.trials:
        for stage in STAGES:
            if applies(trial, stage):
                done = stage_dir(ctx, trial, stage) / "DONE"
                stages.append([trial.trial_id, stage, done.read_text().strip(), done.stat().st_mtime_ns])
    return stable_hash({"study": study.path.read_text(), "stages": stages, "version": RESULTS_VERSION})


def _scored_headline(metric: str, scored: set[str]) -> str:
    """The headline as named, or with the split the embedding rows carry (test first, then the val fallback)."""
    if metric in scored or not metric.endswith("]"):
        return metric
    for split in ("test", "val"):
        named = f"{metric[:-1]},split={split}]"
        if named in scored:
            return named
    return metric


def collect(ctx: RunContext, study: Study | None = None, force: bool = False) -> Path:
    """Write results/{runs,scores,curves,videos}.parquet and study.json; refuses when a stage is not done.

    results/DONE holds `results_key`: when it matches and every file is there, nothing is rewritten (unless
    `force`), so rerunning a finished study leaves its results and report untouched.
    """
    study = study or ctx.study()
    missing = [
        f"{t.trial_id}/{s}"
        for t in study.trials
        for s in STAGES
        if applies(t, s) and stage_status(stage_dir(ctx, t, s), stage_hash(t, s)) != "done"
    ]
    if missing:
        raise IncompleteResults(
            f"cannot collect study '{study.name}': {len(missing)} stage(s) not done, e.g. {missing[:3]}; "
            f"run `spliter-bench run {study.path}` first"
        )
    out = ctx.folder.results
    # Two runs of one study meet here: one collects, the other waits and then finds the results current.
    with stage_lock(out, ctx.lock_wait_s):
        key = results_key(ctx, study)
        if not force and stage_status(out, key) == "done" and all((out / name).exists() for name in RESULT_FILES):
            return out
        _write_results(ctx, study, out, key)
    return out


def _write_results(ctx: RunContext, study: Study, out: Path, key: str) -> None:
    """Every results file, then summary.json, then results/DONE (only when all of them are written)."""
    from reports.summary import write_summary  # reports never import the harness; the harness may call them

    (out / "DONE").unlink(missing_ok=True)
    scores = _scores(ctx, study)
    _write_parquet(scores, out / "scores.parquet")
    _write_parquet(_runs(ctx, study), out / "runs.parquet")
    _write_parquet(_curves(ctx, study), out / "curves.parquet")
    _write_parquet(_videos(ctx, study), out / "videos.parquet")
    protocol = study_protocol(ctx, study)
    protocol["headline_metric"] = _scored_headline(protocol["headline_metric"], set(scores["metric"]))
    if protocol["headline_metric"] not in set(scores["metric"]):
        log.warning("headline_metric %r was not scored; the report picks its own", protocol["headline_metric"])
        protocol["headline_metric"] = None
    protocol["skipped"] = skipped_videos(ctx, study)
    write_json(out / "study.json", protocol)
    write_verdicts(judge(scores, study.spec.expectations), out)
    write_atomic(ctx.root / "study.yaml", study.path.read_text())
    write_summary(ctx.root)
    mark_done(out, key)
