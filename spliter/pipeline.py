"""Encode captioned videos into an embedding store, and render videos (uint8 frames) from prompts.

Encoding is handed a directory; rendering returns frames (writing them is the caller's business). Neither
knows anything of studies. Seeds are derived with `derive_seed` (sha256), so a
result depends only on its inputs, never on the order or batch it was computed in.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spliter.atomic import write_atomic
from spliter.backends.base import Backend
from spliter.data.datasets import CaptionedVideo
from spliter.data.store import EmbeddingStore
from spliter.data.video import (
    VideoClip,
    VideoError,
    center_crop_square,
    read_video,
    resize_frames,
    sample_clip,
)
from spliter.rollout import Rollout

NOISE_POLICIES = ("same", "per_frame")
# (embeds (F,D), negative (F,D), seeds) -> uint8 (F,size,size,3): the decoder render() calls per video.
FrameDecoder = Callable[[torch.Tensor, torch.Tensor, Sequence[int]], np.ndarray]
SKIPPED_FILE = "skipped.json"
# Extra seconds decoded past the last sampled tick, so the frame shown at that tick is always read.
_READ_MARGIN_S = 1.0


@dataclass
class EncodeReport:
    """What one encode_videos call did: how many videos it added, each skipped (video_id, reason), and each
    encoded video whose rotation metadata turned its frames upright (video_id, degrees counter-clockwise)."""

    encoded: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rotated: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Prompt:
    """A generation prompt; `id` names its output files, so it must be a plain file-name stem."""

    id: str
    text: str

    def __post_init__(self) -> None:
        if not self.id or self.id in {".", ".."} or any(c in self.id for c in "/\\\0"):
            raise ValueError(f"prompt id {self.id!r} must be a non-empty file-name stem without / or \\")


@dataclass(frozen=True)
class RenderSettings:
    """How prompts are rendered (everything but the prompt, the rollout and the backend)."""

    frames: int = 8  # frames per video
    dt: float = 0.25  # seconds between frames: the rollout is queried at times k·dt
    study_seed: int = 0  # root of every generation seed
    decoder_steps: int = 2  # denoising steps of the decoder
    guidance: float = 4.0  # classifier-free guidance of prior and decoder
    size: int = 64  # output pixels per side
    noise: str = "same"  # decoder noise: "same" for every frame (the prior art) or "per_frame"
    prior_steps: int = 2  # denoising steps of the prior

    def __post_init__(self) -> None:
        if self.noise not in NOISE_POLICIES:
            raise ValueError(f"noise must be one of {NOISE_POLICIES}, got {self.noise!r}")
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if not self.dt > 0:
            raise ValueError(f"dt must be a positive number of seconds, got {self.dt}")


@dataclass(frozen=True)
class RenderedVideo:
    """One rendered sample: its identity, uint8 (F, H, W, 3) frames and the record of how it was made."""

    prompt_id: str
    sample_idx: int
    gen_seed: int
    frames: np.ndarray
    record: dict[str, Any]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from the sha256 of the parts; ints and strings are tagged, so 1 and "1" differ."""
    tagged = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int | str | np.integer):
            raise TypeError(f"derive_seed takes ints and strings, got {type(part).__name__} {part!r}")
        tagged.append(f"s:{part}" if isinstance(part, str) else f"i:{int(part)}")
    digest = hashlib.sha256("\x1f".join(tagged).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# ------------------------------------------------------------------------------------------------- encoding


def assign_split(video_id: str, val_fraction: float, split_seed: int = 0) -> str:
    """'val' for a fixed pseudo-random val_fraction of ids (from split_seed and the id alone), else 'train'."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    return "val" if derive_seed(split_seed, video_id) / 2.0**63 < val_fraction else "train"


def load_frames(video: CaptionedVideo, frames: int, fps: float | None, size: int) -> VideoClip:
    """Decode (upright: rotation metadata applied), sample `frames` frames (at `fps`, or spread over the clip),
    centre-crop square, resize to `size`; the clip's `rotation` says by how much it was turned."""
    end_s = None if fps is None else (frames - 1) / fps + _READ_MARGIN_S
    clip = sample_clip(read_video(video.path, end_s=end_s), n_frames=frames, fps=fps)
    pixels = resize_frames(center_crop_square(clip.frames), size)
    return VideoClip(frames=np.ascontiguousarray(pixels), times=clip.times, fps=clip.fps, path=clip.path,
                     rotation=clip.rotation)


def encode_videos(
    videos: Sequence[CaptionedVideo],
    backend: Backend,
    store_path: str | os.PathLike,
    *,
    frames: int = 16,
    fps: float | None = None,
    size: int = 224,
    prior_seed: int = 0,
    prior_steps: int = 25,
    guidance: float = 4.0,
    batch_size: int = 16,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    progress: bool = True,
    splits: Mapping[str, str] | None = None,
) -> EncodeReport:
    """Encode videos into the store at store_path (created, or appended to: videos already there are skipped).

    Per video: `frames` frames -> frame embeddings; per caption (batched): text states and embedding, and the
    prior embedding from seed prior_seed. A video that cannot be read (any VideoError) is skipped with its
    reason; the skip list is returned and written to store_path/skipped.json. A video with rotation metadata
    is encoded upright and listed in the report's `rotated`. ``splits`` (video id -> split,
    e.g. from :func:`spliter.data.splits.assign_splits`) replaces the hashed val_fraction assignment.
    """
    if frames < 2:
        raise ValueError(f"frames must be >= 2 (a store needs motion), got {frames}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    meta = {
        "backend": backend.identity(),
        "frames": frames,
        "fps": fps,
        "size": size,
        "prior_seed": prior_seed,
        "prior_steps": prior_steps,
        "guidance": guidance,
    }
    store = EmbeddingStore.create(store_path, dim=backend.dim, text_tokens=backend.text_tokens, meta=meta)
    skipped: list[tuple[str, str]] = []
    rotated: list[tuple[str, int]] = []
    todo, seen = [], set()
    for video in videos:
        if video.video_id in seen:
            skipped.append((video.video_id, "duplicate video id in the listing; only its first entry is encoded"))
        elif not store.has(video.video_id):
            todo.append(video)
        seen.add(video.video_id)
    encoded = 0
    # Entries of one video file in a row (its captions as separate records) share its decoded frames.
    last: tuple[Path, VideoClip] | None = None
    with store, tqdm(total=len(todo), desc="encode", unit="video", disable=not progress) as bar:
        for batch in _chunks(todo, batch_size):
            loaded = []
            for video in batch:
                try:
                    if last is None or last[0] != Path(video.path):
                        last = (Path(video.path), load_frames(video, frames, fps, size))
                    loaded.append((video, last[1]))
                except VideoError as error:
                    skipped.append((video.video_id, str(error)))
                    continue
                if loaded[-1][1].rotation:
                    rotated.append((video.video_id, loaded[-1][1].rotation))
            encoded += _encode_batch(loaded, backend, store, prior_seed, prior_steps, guidance,
                                     lambda vid: splits[vid] if splits is not None
                                     else assign_split(vid, val_fraction, split_seed))
            bar.update(len(batch))
    write_atomic(Path(store_path) / SKIPPED_FILE,
                 json.dumps([{"video_id": v, "reason": r} for v, r in skipped], indent=2, sort_keys=True))
    return EncodeReport(encoded=encoded, skipped=skipped, rotated=rotated)


def _encode_batch(
    loaded: list[tuple[CaptionedVideo, VideoClip]],
    backend: Backend,
    store: EmbeddingStore,
    prior_seed: int,
    prior_steps: int,
    guidance: float,
    split_of: Callable[[str], str],
) -> int:
    if not loaded:
        return 0
    captions = [video.caption for video, _ in loaded]
    text_hidden, text_embed = backend.encode_text(captions)
    prior_embed, negative = backend.prior(captions, [prior_seed] * len(captions), prior_steps, guidance)
    clips = list({id(clip): clip for _, clip in loaded}.values())  # a clip shared by several entries once
    embeds = backend.encode_frames(np.concatenate([clip.frames for clip in clips])).split([len(c) for c in clips])
    frame_embeds = {id(clip): e for clip, e in zip(clips, embeds, strict=True)}
    for i, (video, clip) in enumerate(loaded):
        store.add(
            video.video_id,
            video.caption,
            text_hidden[i],
            text_embed[i],
            prior_embed[i],
            frame_embeds[id(clip)],
            torch.from_numpy(clip.times),
            split=split_of(video.video_id),
            negative_prior_embed=negative[i],
            fps=clip.fps,
            source=video.source,
        )
    return len(loaded)


# ----------------------------------------------------------------------------------------------- generation


def render(
    prompts: Sequence[Prompt],
    rollout: Rollout,
    backend: Backend,
    settings: RenderSettings,
    *,
    samples_per_prompt: int = 1,
    progress: bool = False,
    decode: FrameDecoder | None = None,
) -> Iterator[RenderedVideo]:
    """Render samples_per_prompt videos per prompt: prior -> rollout over times k·dt -> one decoder batch.

    gen_seed = derive_seed(study_seed, prompt.id, sample_idx) seeds the prior and the decoder noise:
    noise="same" gives every frame the noise of gen_seed (the prior art), "per_frame" frame i the noise of
    derive_seed(gen_seed, i). `decode(embeds, negative, seeds)` replaces the backend's decode with the
    settings' steps, guidance and size (e.g. one that skips repeated decodes). Yields the frames; writing
    files is the caller's business.
    """
    if samples_per_prompt < 1:
        raise ValueError(f"samples_per_prompt must be >= 1, got {samples_per_prompt}")
    ids = [prompt.id for prompt in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"prompt ids must be unique (they identify the videos), got duplicates in {ids}")
    if decode is None:
        def decode(embeds: torch.Tensor, negative: torch.Tensor, seeds: Sequence[int]) -> np.ndarray:
            return backend.decode(embeds, negative, seeds, settings.decoder_steps, settings.guidance, settings.size)
    times = torch.arange(settings.frames, dtype=torch.float64) * float(settings.dt)
    common = {
        "frames": settings.frames, "dt": float(settings.dt), "times": times.tolist(), "size": settings.size,
        "noise": settings.noise, "prior_steps": settings.prior_steps, "decoder_steps": settings.decoder_steps,
        "guidance": float(settings.guidance), "study_seed": settings.study_seed,
        "rollout": getattr(rollout, "name", type(rollout).__name__),
        "checkpoint_hash": getattr(rollout, "checkpoint_hash", None), "backend": backend.identity(),
    }  # fmt: skip
    with tqdm(total=len(prompts) * samples_per_prompt, desc="generate", unit="video", disable=not progress) as bar:
        for prompt in prompts:
            text_hidden, text_embed = backend.encode_text([prompt.text])
            for sample_idx in range(samples_per_prompt):
                gen_seed = derive_seed(settings.study_seed, prompt.id, sample_idx)
                prior_embed, negative = backend.prior([prompt.text], [gen_seed], settings.prior_steps,
                                                      settings.guidance)
                embeds = _roll(rollout, text_hidden, text_embed, prior_embed, times, prompt)
                seeds = frame_seeds(gen_seed, settings.frames, settings.noise)
                pixels = decode(embeds, negative.expand(settings.frames, -1), seeds)
                record = {"prompt": {"id": prompt.id, "text": prompt.text}, "sample_idx": sample_idx,
                          "gen_seed": gen_seed, "prior_seed": gen_seed, "seeds": seeds, **common}  # fmt: skip
                yield RenderedVideo(prompt.id, sample_idx, gen_seed, pixels, record)
                bar.update(1)


def frame_seeds(gen_seed: int, frames: int, noise: str) -> list[int]:
    """The decoder seed of each frame under a noise policy."""
    if noise == "same":
        return [gen_seed] * frames
    if noise == "per_frame":
        return [derive_seed(gen_seed, i) for i in range(frames)]
    raise ValueError(f"noise must be one of {NOISE_POLICIES}, got {noise!r}")


def _roll(
    rollout: Rollout,
    text_hidden: torch.Tensor,
    text_embed: torch.Tensor,
    start: torch.Tensor,
    times: torch.Tensor,
    prompt: Prompt,
) -> torch.Tensor:
    out = torch.as_tensor(rollout(text_hidden, text_embed, start, times)).detach().to("cpu", torch.float32)
    expected = (1, len(times), start.shape[1])
    if tuple(out.shape) != expected:
        raise ValueError(f"prompt {prompt.id!r}: rollout {rollout.name!r} returned shape {tuple(out.shape)}, expected {expected}")
    if not torch.isfinite(out).all():
        raise ValueError(f"prompt {prompt.id!r}: rollout {rollout.name!r} produced NaN/inf embeddings; check the checkpoint")
    return out[0]


# ------------------------------------------------------------------------------------------------- helpers


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
