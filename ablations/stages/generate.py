"""The generate stage: the trial's rollout renders the prompt set; frames are kept losslessly for scoring.

Per video: `videos/<stem>.npz` (the decoded uint8 frames, what the score stage reads, so no score depends on
codec noise), `.mp4` and `.gif` for people, `.json` the record of how it was made; and `videos.json`, the index.
Frames are decoded through ablations.stages.decodes: each unique decode once per study (repeated rows once,
frame 0 through the study's decode cache); `decodes.json` and the summary's `decodes` say how many.

Two kinds of prompt set:

* a jsonl prompt set (`generate.prompts: motion-v1`): caption only; the backend's prior gives the start, the
  rollout runs on the grid k·dt; stem `<prompt_id>-<sample_idx>`.
* `generate.prompts: store:<split>` (e.g. `store:test`): every video of that store split is a prompt: its
  caption, its true first-frame embedding and its true frames. Each video is rendered once per start in
  `generate.start` ("true": its own first frame; "prior": the backend's prior for the caption, seeded by the
  generation seed) and per mode in `generate.modes`, on the true video's own time grid (its first
  `generate.frames` frame times), so frame k pairs with true frame k. The true frames (read from the data
  source at `generate.size`) are saved once per video under `truth/`; each index entry names them
  (`truth_npz`, `truth_gif`) with its `start` and `mode`, and the paired metric family scores every entry
  that has them. Stem `<prompt_id>-<sample_idx>-<start>-<mode>`. Only the entries people look at have a
  `gif`/`mp4` (see DISPLAY_PROMPTS); the others are scored only.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ablations.runfolder import write_atomic, write_json
from ablations.sources import SOURCES
from ablations.stages.context import RunContext
from ablations.stages.decodes import CACHE_DIR, DecodeSettings, VideoDecoder
from ablations.stages.plan import stage_dir
from ablations.stages.resources import Resources
from ablations.study import Trial, load_prompts, store_prompt_split
from reports.gifs import write_gif
from spliter.data.datasets import CaptionedVideo
from spliter.data.store import VideoRecord
from spliter.data.video import write_mp4
from spliter.pipeline import Prompt, RenderSettings, derive_seed, frame_seeds, render
from spliter.pipeline import load_frames as read_clip

FRAMES_KEY = "frames"  # the array's name inside each .npz
# Store prompts: videos people look at (mp4 + gif; the report's grid and strips) are those of the first start
# and the first mode of the first DISPLAY_PROMPTS videos; every video is scored from its lossless frames.
DISPLAY_PROMPTS = 8


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:
    gen = trial.config["generate"]
    split = store_prompt_split(gen["prompts"])
    if split is not None:
        return run_store_prompts(ctx, resources, trial, work, split)
    prompts, set_name, sha = load_prompts(gen)
    settings = render_settings(trial)
    backend = resources.backend(trial)
    decoder = video_decoder(ctx, backend, settings)
    texts = {p.id: p.text for p in prompts}
    videos = work / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    index = []
    for video in render([Prompt(p.id, p.text) for p in prompts], resources.rollout(trial, gen["mode"]),
                        backend, settings, samples_per_prompt=gen["samples_per_prompt"],
                        progress=ctx.progress, decode=decoder):
        stem = f"{video.prompt_id}-{video.sample_idx}"
        index.append(write_video(videos, stem, video.frames, video.record, gen)
                     | {"prompt_id": video.prompt_id, "prompt": texts[video.prompt_id], "sample_idx": video.sample_idx,
                        "gen_seed": video.gen_seed})
    write_json(work / "videos.json", index)
    return {"n_videos": len(index), "prompt_set": set_name, "prompts_sha256": sha, "decodes": decoder.write(work)}


def render_settings(trial: Trial) -> RenderSettings:
    gen = trial.config["generate"]
    return RenderSettings(frames=gen["frames"], dt=gen["dt"], study_seed=trial.config["study_seed"],
                          decoder_steps=gen["decoder_steps"], guidance=gen["guidance"], size=gen["size"],
                          noise=gen["noise"], prior_steps=trial.config["backend"]["prior_steps"])


def video_decoder(ctx: RunContext, backend: object, settings: RenderSettings) -> VideoDecoder:
    """The stage's decoder: repeated rows once, frame 0 through the study's cache (unless ctx.dedup is off)."""
    return VideoDecoder(backend, DecodeSettings(settings.decoder_steps, settings.guidance, settings.size),
                        ctx.root / CACHE_DIR if ctx.dedup else None, dedup=ctx.dedup)


def write_video(folder: Path, stem: str, frames: np.ndarray, record: dict, gen: dict, display: bool = True) -> dict:
    """Write one video's .npz/.json (and .mp4/.gif when `display`); its index fields (paths relative to the stage)."""
    save_frames(folder / f"{stem}.npz", frames)
    write_json(folder / f"{stem}.json", {**record, "fps": float(gen["fps"])})
    rel = folder.name
    fields = {"npz": f"{rel}/{stem}.npz", "frames": int(len(frames)), "size": int(frames.shape[1]), "fps": gen["fps"]}
    if display:
        write_mp4(frames, folder / f"{stem}.mp4", gen["fps"])
        write_gif(frames, folder / f"{stem}.gif", gen["fps"])
        fields |= {"gif": f"{rel}/{stem}.gif", "mp4": f"{rel}/{stem}.mp4"}
    return fields


def run_store_prompts(ctx: RunContext, resources: Resources, trial: Trial, work: Path, split: str) -> dict:
    """Render every video of the store's `split` from each start in generate.start, in each generate.modes."""
    gen = trial.config["generate"]
    records, listing = store_prompt_records(ctx, resources, trial, split)
    backend = resources.fitted_backend(trial)
    settings = render_settings(trial)
    decoder = video_decoder(ctx, backend, settings)
    modes = list(gen.get("modes") or [gen["mode"]])
    rollouts = {mode: resources.rollout(trial, mode) for mode in modes}
    videos, truth_dir = work / "videos", work / "truth"
    videos.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for number, record in enumerate(records):
        frames = gen["frames"]
        shown = number < DISPLAY_PROMPTS
        truth_fields = write_truth(truth_dir, record, listing[record.video_id], trial, shown)
        times = (record.frame_times[:frames] - record.frame_times[0]).to(torch.float64)
        for sample_idx in range(gen["samples_per_prompt"]):
            gen_seed = derive_seed(settings.study_seed, record.video_id, sample_idx)
            # The prior (seeded by the generation seed, shared by every variant) also gives the decoder's negative.
            prior, negative = backend.prior([record.caption], [gen_seed], settings.prior_steps, settings.guidance)
            starts = {"true": record.frame_embeds[:1].float(), "prior": prior}
            for start in gen["start"]:
                for mode in modes:
                    embeds = rollouts[mode](record.text_hidden[None].float(), record.text_embed[None].float(),
                                            starts[start], times)[0].detach().to("cpu", torch.float32)
                    if not torch.isfinite(embeds).all():
                        raise ValueError(f"video {record.video_id}: rollout ({mode}) produced NaN/inf embeddings; "
                                         "check the checkpoint")
                    seeds = frame_seeds(gen_seed, frames, settings.noise)
                    pixels = decoder(embeds, negative.expand(frames, -1), seeds)
                    stem = f"{record.video_id}-{sample_idx}-{start}-{mode}"
                    made = {"prompt": {"id": record.video_id, "text": record.caption}, "sample_idx": sample_idx,
                            "gen_seed": gen_seed, "start": start, "mode": mode, "times": times.tolist(),
                            "seeds": seeds, "rollout": getattr(rollouts[mode], "name", mode),
                            "checkpoint_hash": getattr(rollouts[mode], "checkpoint_hash", None),
                            "backend": backend.identity(), "study_seed": settings.study_seed}
                    display = shown and start == gen["start"][0] and mode == modes[0]
                    index.append(write_video(videos, stem, pixels, made, gen, display)
                                 | store_entry(record, sample_idx, gen_seed, start, mode, split, truth_fields, display))
    write_json(work / "videos.json", index)
    return {"n_videos": len(index), "prompt_set": gen["prompts"],
            "prompts_sha256": load_prompts(gen)[2], "starts": list(gen["start"]), "modes": modes,
            "decodes": decoder.write(work)}


def store_prompt_records(ctx: RunContext, resources: Resources, trial: Trial,
                         split: str) -> tuple[list[VideoRecord], dict[str, CaptionedVideo]]:
    """The store's `split` videos to render (generate.max_prompts of them) and the data source's listing by id."""
    gen, data = trial.config["generate"], trial.config["data"]
    records = resources.store(trial).split(split)
    if gen.get("max_prompts"):
        records = records[: gen["max_prompts"]]
    if not records:
        raise ValueError(f"generate.prompts {gen['prompts']!r}: the store has no {split} videos; "
                         f"set data.test_fraction > 0 (or use a jsonl prompt set)")
    listing = {v.video_id: v for v in SOURCES.get(data["source"]).videos(data, stage_dir(ctx, trial, "encode")).videos}
    for record in records:
        if record.video_id not in listing:
            raise ValueError(f"store video {record.video_id!r} is not in data source {data['source']!r} any more; "
                             "re-run the encode stage (--force)")
        if len(record.frame_times) < gen["frames"]:
            raise ValueError(f"video {record.video_id}: generate.frames {gen['frames']} is more than its "
                             f"{len(record.frame_times)} stored frames (data.frames); lower generate.frames")
    return records, listing


def write_truth(folder: Path, record: VideoRecord, video: CaptionedVideo, trial: Trial, display: bool) -> dict:
    """The true video's first generate.frames frames (read from the source at generate.size), written once."""
    gen, data = trial.config["generate"], trial.config["data"]
    truth = read_clip(video, data["frames"], data["fps"], gen["size"]).frames[: gen["frames"]]
    return write_video(folder, record.video_id, truth, {"video_id": record.video_id, "truth": True}, gen,
                       display=display)


def store_entry(record: VideoRecord, sample_idx: int, gen_seed: int, start: str, mode: str, split: str, truth: dict,
                display: bool) -> dict:
    """The index fields of a video rendered for a store prompt (the paired family reads truth_npz)."""
    return {"prompt_id": record.video_id, "prompt": record.caption, "sample_idx": sample_idx, "gen_seed": gen_seed,
            "start": start, "mode": mode, "split": split, "truth_npz": truth["npz"]} | (
        {"truth_gif": truth["gif"]} if display else {})


def save_frames(path: Path, frames: np.ndarray) -> None:
    """uint8 (F, H, W, 3) frames, compressed losslessly, written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{FRAMES_KEY: np.ascontiguousarray(frames, dtype=np.uint8)})
    write_atomic(path, buffer.getvalue())


def load_frames(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return data[FRAMES_KEY]
