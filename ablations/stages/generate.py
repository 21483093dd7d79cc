"""The generate stage: the trial's rollout renders the prompt set; frames are kept losslessly for scoring.

Per video: `videos/<prompt_id>-<sample_idx>.npz` (the decoded uint8 frames, what the score stage reads, so no
score depends on codec noise), `.mp4` and `.gif` for people, `.json` the record of how it was made; and
`videos.json`, the index.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ablations.runfolder import write_atomic, write_json
from ablations.stages.context import RunContext
from ablations.stages.resources import Resources
from ablations.study import Trial, load_prompts
from reports.gifs import write_gif
from spliter.data.video import write_mp4
from spliter.pipeline import Prompt, RenderSettings, render

FRAMES_KEY = "frames"  # the array's name inside each .npz


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:

    gen = trial.config["generate"]
    prompts, set_name, sha = load_prompts(gen)
    settings = RenderSettings(frames=gen["frames"], dt=gen["dt"], study_seed=trial.config["study_seed"],
                              decoder_steps=gen["decoder_steps"], guidance=gen["guidance"], size=gen["size"],
                              noise=gen["noise"], prior_steps=trial.config["backend"]["prior_steps"])
    texts = {p.id: p.text for p in prompts}
    videos = work / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    index = []
    for video in render([Prompt(p.id, p.text) for p in prompts], resources.rollout(trial, gen["mode"]),
                        resources.backend(trial), settings, samples_per_prompt=gen["samples_per_prompt"],
                        progress=ctx.progress):
        stem = f"{video.prompt_id}-{video.sample_idx}"
        save_frames(videos / f"{stem}.npz", video.frames)
        write_mp4(video.frames, videos / f"{stem}.mp4", gen["fps"])
        write_gif(video.frames, videos / f"{stem}.gif", gen["fps"])
        write_json(videos / f"{stem}.json", {**video.record, "fps": float(gen["fps"])})
        index.append({"prompt_id": video.prompt_id, "prompt": texts[video.prompt_id], "sample_idx": video.sample_idx,
                      "gen_seed": video.gen_seed, "npz": f"videos/{stem}.npz", "gif": f"videos/{stem}.gif",
                      "mp4": f"videos/{stem}.mp4", "frames": gen["frames"], "size": gen["size"], "fps": gen["fps"]})
    write_json(work / "videos.json", index)
    return {"n_videos": len(index), "prompt_set": set_name, "prompts_sha256": sha}


def save_frames(path: Path, frames: np.ndarray) -> None:
    """uint8 (F, H, W, 3) frames, compressed losslessly, written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{FRAMES_KEY: np.ascontiguousarray(frames, dtype=np.uint8)})
    write_atomic(path, buffer.getvalue())


def load_frames(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return data[FRAMES_KEY]
