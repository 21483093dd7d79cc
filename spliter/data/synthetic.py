"""A synthetic embedding store with known trajectories: tests the method against a known answer.

Two worlds (``world=``): ``"fair"`` (below, :func:`_fair_world`), where the start carries nothing about the
caption and the caption controls only the dynamics, and ``"legacy"`` (the default, kept so existing studies
and tests reproduce), where the start embedding leans towards the caption's text direction, so a text-blind
model can read the caption's class from the start.

``world="fair"`` generative process (all draws from ``numpy.random.default_rng(seed)``):

* Fixed tables: ``FAIR_DIRECTIONS`` unit direction vectors ``d_c``, token projections and offsets (as below)
  and a text projection. A caption is a latent ``(family, direction c, speed ω)``, one of
  ``len(FAMILIES) x FAIR_DIRECTIONS x len(FAIR_SPEEDS)`` groups, each used about equally often; its text is
  ``"<family> toward direction <c> at speed <ω>"`` and its hidden states ``H_j = p_j + W_j z`` with
  ``z = onehot(family) ⊕ onehot(c) ⊕ onehot(ω)``, so an unseen combination is made of seen parts.
* Start ``s = unit(g)``, ``g ~ N(0, I/D)``: independent of the caption. ``n = unit(d_c - (d_c·s) s)`` is the
  caption's direction seen from the start. Trajectories (``EMBED_NORM`` long unless stated):

  - ``rotate``: constant plane rotation, angle ``θ = ω t`` in the plane (s, n);
  - ``two_phase``: rotation towards ``d_c`` until ``PHASE_SWITCH_S`` seconds, then from the point reached
    towards ``d_{c+1 mod C}`` at the same speed;
  - ``accelerate``: rotation towards ``d_c`` with angle ``θ = ω t² / ACCEL_TIME_S`` (speed growing from 0);
  - ``drift``: a straight line, ``s + ω t n`` (not on the sphere: the norm grows), i.e. the caption sets the
    direction and the speed of the motion, nothing else.
* Frame noise, frame times and ``prior_embed`` as in the legacy world, except that the prior's noise is
  ``prior_noise`` (frame 0 + a draw ``EMBED_NORM · prior_noise · N(0, I/D)``), so starting from the prior
  and from the true frame differ.
* Splits from :func:`spliter.data.splits.assign_splits` with the caption as the group: ``unseen_fraction`` of
  the caption groups go to ``test_unseen`` (never seen in training), then ``val_fraction`` / ``test_fraction``
  of the rest to ``val`` / ``test`` (captions seen in training).

So a text-blind model can know neither the direction nor the speed nor the family, ``mean_motion`` only the
average drift, and ``static`` nothing; a model that reads the text can predict every family.

``world="legacy"`` generative process (all draws from ``numpy.random.default_rng(seed)``, so the store is a function of its
arguments; ``N(0, I/D)`` vectors have norm ≈ 1):

* Fixed tables, drawn once per store: a unit plane direction ``d_c`` per motion class (``MOTION_CLASSES``),
  token projections ``W_j`` (D x Z) and token offsets ``p_j`` (D) per text position j, a text projection
  ``A`` (D x Z), and one negative prior embedding (the "empty caption"), ``EMBED_NORM`` long.
* Per video i: a latent ``z = onehot(class) ⊕ onehot(speed)`` (Z = classes + speeds); every (class, speed)
  pair occurs about equally often, in shuffled order. Caption ``"video i: class c moving at speed ω"``.
* Text: hidden states ``H_j = p_j + W_j z`` (a deterministic function of z, hence of the caption's class and
  speed) and ``text_embed = EMBED_NORM · unit(A z)``.
* Start direction ``s = unit(unit(A z) + g)`` with ``g ~ N(0, I/D)``, so the start is related to the text as a
  prior sample is (cosine ≈ 0.7), but differs per video.
* Motion: a rotation in the plane of ``s`` and ``n = unit(d_c - (d_c·s) s)`` at ``ω`` radians per second
  (``SPEEDS``): ``e(t) = EMBED_NORM · (cos(ωt) s + sin(ωt) n)``. Frame k is ``e(t_k)`` plus noise
  ``EMBED_NORM · noise · N(0, I/D)`` (``noise`` is the noise norm relative to the embedding norm).
* Frame times: each video has its own rate ``fps · U(0.8, 1.25)`` and jittered times
  ``t_0 = 0, t_k = (k + U(-0.3, 0.3)) / fps_video``, strictly increasing, so one unit of time is a second,
  not a frame.
* ``prior_embed`` = frame 0 plus another noise draw of the same size.

So the motion is predictable from the text hidden states (which give ``d_c`` and ``ω``) and the start, while
the mean displacement over videos mostly cancels: a trained Spliter should beat ``mean_motion``.
Splits: ``round(n_videos · val_fraction)`` videos (at least one when the fraction is positive and there are
two or more videos), chosen at random, are "val"; the rest "train".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from spliter.data.splits import assign_splits
from spliter.data.store import EmbeddingStore, StoreError

MOTION_CLASSES = 4
SPEEDS: tuple[float, ...] = (0.15, 0.3, 0.45)  # radians per second
EMBED_NORM = 20.0  # not 1: code must not assume unit embeddings
FPS_RANGE = (0.8, 1.25)
TIME_JITTER = 0.3  # in frame intervals; below 0.5 keeps the times strictly increasing
START_TEXT_MIX = 1.0  # weight of the text direction in the start direction (cosine ≈ 1/sqrt(2))
WORLDS: tuple[str, ...] = ("legacy", "fair")
FAMILIES: tuple[str, ...] = ("rotate", "two_phase", "accelerate", "drift")
FAIR_DIRECTIONS = 6
FAIR_SPEEDS: tuple[float, ...] = (0.2, 0.4, 0.6)  # radians (or EMBED_NORM-relative units) per second
PHASE_SWITCH_S = 1.25  # two_phase: seconds before the turn
ACCEL_TIME_S = 2.5  # accelerate: seconds at which the angle equals that of constant rotation


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _check_args(n_videos: int, dim: int, text_tokens: int, frames: int, fps: float, val_fraction: float,
                noise: float) -> None:
    for name, value, low in (("n_videos", n_videos, 1), ("dim", dim, 2), ("text_tokens", text_tokens, 1),
                             ("frames", frames, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"write_synthetic_store: {name} must be an integer >= {low}, got {value!r}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"write_synthetic_store: fps must be a positive number, got {fps!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"write_synthetic_store: val_fraction must be in [0, 1), got {val_fraction!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"write_synthetic_store: noise must be >= 0, got {noise!r}")


def write_synthetic_store(
    path: str | os.PathLike,
    n_videos: int = 64,
    dim: int = 32,
    text_tokens: int = 8,
    frames: int = 12,
    fps: float = 4.0,
    val_fraction: float = 0.25,
    noise: float = 0.02,
    seed: int = 0,
    world: str = "legacy",
    test_fraction: float = 0.0,
    unseen_fraction: float = 0.0,
    prior_noise: float = 0.1,
) -> EmbeddingStore:
    """Write (or finish writing) the synthetic store at ``path`` and return it opened read-only.

    Re-running with the same arguments on a complete or partly written store adds only the missing videos;
    different arguments on an existing store raise a StoreError (the arguments are the store's meta).
    ``test_fraction``, ``unseen_fraction`` and ``prior_noise`` apply to ``world="fair"`` only.
    """
    _check_args(n_videos, dim, text_tokens, frames, fps, val_fraction, noise)
    if world not in WORLDS:
        raise ValueError(f"write_synthetic_store: world={world!r} is not one of {WORLDS}")
    if world == "fair":
        return _fair_world(Path(path), n_videos, dim, text_tokens, frames, fps, val_fraction, noise, seed,
                           test_fraction, unseen_fraction, prior_noise)
    if test_fraction or unseen_fraction:
        raise ValueError("write_synthetic_store: test_fraction/unseen_fraction need world='fair' "
                         "(the legacy world has train and val only)")
    rng = np.random.default_rng(seed)
    n_speeds = len(SPEEDS)
    z_dim = MOTION_CLASSES + n_speeds
    scale = 1.0 / math.sqrt(dim)

    class_dirs = _unit(rng.standard_normal((MOTION_CLASSES, dim)))
    token_proj = rng.standard_normal((text_tokens, dim, z_dim)) / math.sqrt(z_dim)
    token_offset = rng.standard_normal((text_tokens, dim))
    text_proj = rng.standard_normal((dim, z_dim))
    negative = EMBED_NORM * _unit(rng.standard_normal(dim))

    combos = np.arange(n_videos) % (MOTION_CLASSES * n_speeds)
    combos = combos[rng.permutation(n_videos)]
    n_val = round(n_videos * val_fraction)
    if val_fraction > 0 and n_videos >= 2:
        n_val = min(max(n_val, 1), n_videos - 1)
    val = set(rng.permutation(n_videos)[:n_val].tolist())

    meta = {
        "backend": {"name": "synthetic", "dim": dim, "text_tokens": text_tokens},
        "synthetic": {"n_videos": n_videos, "frames": frames, "fps": fps, "val_fraction": val_fraction,
                      "noise": noise, "seed": seed, "motion_classes": MOTION_CLASSES, "speeds": list(SPEEDS),
                      "embed_norm": EMBED_NORM},
    }
    path = Path(path)
    try:
        writer = EmbeddingStore.create(path, dim=dim, text_tokens=text_tokens, meta=meta)
    except StoreError as error:
        raise StoreError(f"{error} (write_synthetic_store: pass the original arguments or a new path)") from error
    with writer:
        for i, combo in enumerate(combos.tolist()):
            cls, speed_idx = divmod(combo, n_speeds)
            # Per-video draws happen even for videos already stored, so every video is the same on resume.
            g = rng.standard_normal(dim) * scale
            video_fps = fps * rng.uniform(*FPS_RANGE)
            jitter = rng.uniform(-TIME_JITTER, TIME_JITTER, frames)
            frame_noise = rng.standard_normal((frames, dim)) * scale
            prior_noise = rng.standard_normal(dim) * scale
            video_id = f"synth-{i:05d}"
            if writer.has(video_id):
                continue
            z = np.zeros(z_dim)
            z[cls] = 1.0
            z[MOTION_CLASSES + speed_idx] = 1.0
            speed = SPEEDS[speed_idx]
            text_dir = _unit(text_proj @ z)
            hidden = token_offset + np.einsum("tdz,z->td", token_proj, z)
            start = _unit(START_TEXT_MIX * text_dir + g)
            normal = _unit(class_dirs[cls] - (class_dirs[cls] @ start) * start)
            times = (np.arange(frames) + jitter) / video_fps
            times[0] = 0.0
            angle = speed * times[:, None]
            clean = EMBED_NORM * (np.cos(angle) * start + np.sin(angle) * normal)
            frame_embeds = clean + EMBED_NORM * noise * frame_noise
            writer.add(
                video_id,
                caption=f"video {i}: class {cls} moving at speed {speed:.2f}",
                text_hidden=torch.from_numpy(hidden).float(),
                text_embed=torch.from_numpy(EMBED_NORM * text_dir).float(),
                prior_embed=torch.from_numpy(frame_embeds[0] + EMBED_NORM * noise * prior_noise).float(),
                frame_embeds=torch.from_numpy(frame_embeds).float(),
                frame_times=torch.from_numpy(times),
                split="val" if i in val else "train",
                negative_prior_embed=torch.from_numpy(negative).float(),
                fps=video_fps,
                source="synthetic",
            )
    return EmbeddingStore.open(path)


def _frame_times(rng: np.random.Generator, frames: int, fps: float) -> tuple[np.ndarray, float]:
    video_fps = fps * rng.uniform(*FPS_RANGE)
    times = (np.arange(frames) + rng.uniform(-TIME_JITTER, TIME_JITTER, frames)) / video_fps
    times[0] = 0.0
    return times, video_fps


def _toward(start: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The unit vector in the plane (start, direction) orthogonal to the unit ``start``."""
    return _unit(direction - (direction @ start) * start)


def fair_trajectory(family: str, start: np.ndarray, directions: np.ndarray, c: int, speed: float,
                    times: np.ndarray) -> np.ndarray:
    """Clean (F, D) frames of one fair-world video from the unit start (see the module docstring)."""
    n = _toward(start, directions[c])
    t = times[:, None]
    if family == "drift":
        return EMBED_NORM * (start + speed * t * n)
    if family == "rotate":
        angle = speed * t
    elif family == "accelerate":
        angle = speed * t**2 / ACCEL_TIME_S
    elif family == "two_phase":
        first = np.minimum(t, PHASE_SWITCH_S) * speed
        turn = np.cos(PHASE_SWITCH_S * speed) * start + np.sin(PHASE_SWITCH_S * speed) * n
        n2 = _toward(turn, directions[(c + 1) % len(directions)])
        second = np.maximum(t - PHASE_SWITCH_S, 0.0) * speed
        early = np.cos(first) * start + np.sin(first) * n
        late = np.cos(second) * turn + np.sin(second) * n2
        return EMBED_NORM * np.where(t <= PHASE_SWITCH_S, early, late)
    else:
        raise ValueError(f"unknown dynamics family {family!r}; use one of {FAMILIES}")
    return EMBED_NORM * (np.cos(angle) * start + np.sin(angle) * n)


def _fair_world(path: Path, n_videos: int, dim: int, text_tokens: int, frames: int, fps: float,
                val_fraction: float, noise: float, seed: int, test_fraction: float, unseen_fraction: float,
                prior_noise: float) -> EmbeddingStore:
    if not (math.isfinite(prior_noise) and prior_noise >= 0):
        raise ValueError(f"write_synthetic_store: prior_noise must be >= 0, got {prior_noise!r}")
    rng = np.random.default_rng(seed)
    sizes = (len(FAMILIES), FAIR_DIRECTIONS, len(FAIR_SPEEDS))
    z_dim = sum(sizes)
    scale = 1.0 / math.sqrt(dim)
    directions = _unit(rng.standard_normal((FAIR_DIRECTIONS, dim)))
    token_proj = rng.standard_normal((text_tokens, dim, z_dim)) / math.sqrt(3)
    token_offset = rng.standard_normal((text_tokens, dim))
    text_proj = rng.standard_normal((dim, z_dim))
    negative = EMBED_NORM * _unit(rng.standard_normal(dim))
    n_groups = math.prod(sizes)
    combos = (np.arange(n_videos) % n_groups)[rng.permutation(n_videos)]
    latents = [np.unravel_index(int(k), sizes) for k in combos]
    ids = [f"synth-{i:05d}" for i in range(n_videos)]
    captions = [f"{FAMILIES[f]} toward direction {c} at speed {FAIR_SPEEDS[v]:.2f}" for f, c, v in latents]
    splits = assign_splits(ids, captions, val_fraction=val_fraction, test_fraction=test_fraction,
                           unseen_fraction=unseen_fraction, seed=int(rng.integers(2**31)))
    meta = {
        "backend": {"name": "synthetic", "dim": dim, "text_tokens": text_tokens},
        "synthetic": {"world": "fair", "n_videos": n_videos, "frames": frames, "fps": fps,
                      "val_fraction": val_fraction, "test_fraction": test_fraction,
                      "unseen_fraction": unseen_fraction, "noise": noise, "prior_noise": prior_noise, "seed": seed,
                      "families": list(FAMILIES), "directions": FAIR_DIRECTIONS, "speeds": list(FAIR_SPEEDS),
                      "phase_switch_s": PHASE_SWITCH_S, "accel_time_s": ACCEL_TIME_S, "embed_norm": EMBED_NORM},
    }
    try:
        writer = EmbeddingStore.create(path, dim=dim, text_tokens=text_tokens, meta=meta)
    except StoreError as error:
        raise StoreError(f"{error} (write_synthetic_store: pass the original arguments or a new path)") from error
    with writer:
        for video_id, caption, (f, c, v) in zip(ids, captions, latents, strict=True):
            # Per-video draws happen even for videos already stored, so every video is the same on resume.
            start = _unit(rng.standard_normal(dim))
            times, video_fps = _frame_times(rng, frames, fps)
            frame_noise = rng.standard_normal((frames, dim)) * scale
            prior_draw = rng.standard_normal(dim) * scale
            if writer.has(video_id):
                continue
            z = np.zeros(z_dim)
            z[[f, sizes[0] + c, sizes[0] + sizes[1] + v]] = 1.0
            clean = fair_trajectory(FAMILIES[f], start, directions, c, FAIR_SPEEDS[v], times)
            frame_embeds = clean + EMBED_NORM * noise * frame_noise
            writer.add(
                video_id,
                caption=caption,
                text_hidden=torch.from_numpy(token_offset + np.einsum("tdz,z->td", token_proj, z)).float(),
                text_embed=torch.from_numpy(EMBED_NORM * _unit(text_proj @ z)).float(),
                prior_embed=torch.from_numpy(frame_embeds[0] + EMBED_NORM * prior_noise * prior_draw).float(),
                frame_embeds=torch.from_numpy(frame_embeds).float(),
                frame_times=torch.from_numpy(times),
                split=splits[video_id],
                negative_prior_embed=torch.from_numpy(negative).float(),
                fps=video_fps,
                source="synthetic",
            )
    return EmbeddingStore.open(path)
