"""The generate stage of a baseline that renders frames directly from the caption (spliter.baselines.FRAME_BASELINES).

Same prompts, seeds, frames, size and files as the Spliter variants (ablations.stages.generate): for each
prompt and sample, gen_seed = derive_seed(study_seed, prompt id, sample) seeds the pipeline, and the frames
go through `write_video` with the same index fields. Store prompts (`store:<split>`) are rendered from the
caption only, so their entries carry start "prior" (nothing of the true video is used, as for the Spliter's
prior start); the method has no rollout mode, so its one video per prompt and sample (one .npz) is indexed
once per mode of generate.modes, which gives its paired rows the metric names of the variants' rows
(`...,<mode>,start=prior,split=<split>]`). A `start: [true]`-only study therefore has no paired row of it to
compare. Families whose rows do not name the protocol score each rendered file once
(ablations.stages.score.TrialScoring.rendered_videos), so the copies never weigh in a mean or an FVD set.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ablations.runfolder import write_json
from ablations.stages.context import RunContext
from ablations.stages.generate import (
    DISPLAY_PROMPTS,
    store_entry,
    store_prompt_records,
    write_truth,
    write_video,
)
from ablations.stages.resources import Resources
from ablations.study import Trial, load_prompts, store_prompt_split
from spliter.pipeline import derive_seed

if TYPE_CHECKING:
    from spliter.baselines import FrameBaseline

PRIOR_START = "prior"  # the start a caption-only generator stands for


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:
    gen = trial.config["generate"]
    model = resources.frame_baseline(trial)
    videos = work / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    split = store_prompt_split(gen["prompts"])
    if split is not None:
        index = _store_prompts(ctx, resources, trial, work, split, model)
    else:
        index = _prompt_set(trial, model, videos)
    write_json(work / "videos.json", index)
    _, name, sha = load_prompts(gen)
    return {"n_videos": len(index), "prompt_set": name, "prompts_sha256": sha, "baseline": trial.config["baseline"]}


def _record(trial: Trial, model: FrameBaseline, prompt_id: str, text: str, sample_idx: int, gen_seed: int) -> dict:
    gen = trial.config["generate"]
    return {"prompt": {"id": prompt_id, "text": text}, "sample_idx": sample_idx, "gen_seed": gen_seed,
            "frames": gen["frames"], "size": gen["size"], "study_seed": trial.config["study_seed"],
            "baseline": trial.config["baseline"], "pipeline": model.identity()}


def _prompt_set(trial: Trial, model: FrameBaseline, videos: Path) -> list[dict]:
    gen = trial.config["generate"]
    index = []
    for prompt in load_prompts(gen)[0]:
        for sample_idx in range(gen["samples_per_prompt"]):
            gen_seed = derive_seed(trial.config["study_seed"], prompt.id, sample_idx)
            frames = model.render(prompt.text, gen["frames"], gen["size"], gen_seed)
            made = _record(trial, model, prompt.id, prompt.text, sample_idx, gen_seed)
            index.append(write_video(videos, f"{prompt.id}-{sample_idx}", frames, made, gen)
                         | {"prompt_id": prompt.id, "prompt": prompt.text, "sample_idx": sample_idx,
                            "gen_seed": gen_seed})
    return index


def _store_prompts(ctx: RunContext, resources: Resources, trial: Trial, work: Path, split: str,
                   model: FrameBaseline) -> list[dict]:
    gen = trial.config["generate"]
    records, listing = store_prompt_records(ctx, resources, trial, split)
    modes = list(gen.get("modes") or [gen["mode"]])
    truth_dir = work / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for number, record in enumerate(records):
        shown = number < DISPLAY_PROMPTS
        truth = write_truth(truth_dir, record, listing[record.video_id], trial, shown)
        for sample_idx in range(gen["samples_per_prompt"]):
            gen_seed = derive_seed(trial.config["study_seed"], record.video_id, sample_idx)
            frames = model.render(record.caption, gen["frames"], gen["size"], gen_seed)
            made = _record(trial, model, record.video_id, record.caption, sample_idx, gen_seed) | {
                "start": PRIOR_START, "modes": modes}
            written = write_video(work / "videos", f"{record.video_id}-{sample_idx}-{PRIOR_START}", frames, made, gen,
                                  shown)
            for mode in modes:
                # One file per video; the entries of the other modes name it without the files people look at.
                display = shown and mode == modes[0]
                fields = written if display else {k: v for k, v in written.items() if k not in ("gif", "mp4")}
                index.append(fields | store_entry(record, sample_idx, gen_seed, PRIOR_START, mode, split, truth, display))
    return index
