"""Rollouts: from a caption (text states, text embedding) and a start embedding to per-frame embeddings.

Every rollout maps ``(text_hidden (B,T,D), text_embed (B,D), start (B,D), times (F,) seconds)`` to
``(B,F,D)`` float32 on the CPU. ``times[0]`` must be 0 and frame 0 of the output *is* the start embedding
(the prior art decoded ``f(H, u, 0)`` there, method.md B22).

Spliter modes (method.md §6 items 2-3), with ``step = Δt_seconds / time_scale`` from the model's config:

* ``step``: every later frame from the start in one batched forward, ``û_i = f(H, u, times[i] / time_scale)``.
* ``chain`` ("generation from generation"): ``û_1 = f(H, u, Δ_1)``; for i >= 2 the previous prediction is the
  start and the text states are turned the way the embedding moved (method.md §4.6):
  ``H_i = rotate(H_a, v_from=u_a, v_to=û_{i-1}, weight=cos(u_a, t_a), power, convention)``,
  ``û_i = f(H_i, û_{i-1}, Δ_i)`` with ``Δ_i = (times[i] - times[i-1]) / time_scale``. ``anchor="fixed"`` keeps
  the anchors ``(u_a, H_a, t_a) = (u, H, t)``; ``"cumulative"`` moves them after each rotation, as the prior
  art's ``fix_text_emb=False`` did: ``t_a ← rotate(t_a, ...)``, ``u_a ← û_{i-1}``, ``H_a ← H_i``.

Baselines that need no training: ``static`` (the start for every frame) and ``mean_motion`` (the start plus the
mean training displacement per second times the elapsed time).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from spliter.data.splits import train_val_records
from spliter.models import load_spliter
from spliter.regimes import check_rotation_power
from spliter.rotation import CONVENTIONS, rotate

if TYPE_CHECKING:
    from spliter.data.store import EmbeddingStore

MODES = ("step", "chain")
ANCHORS = ("fixed", "cumulative")
KINDS = ("spliter", "static", "mean_motion")


@dataclass
class RolloutConfig:
    """How a Spliter is rolled out; ``frames`` and ``dt`` (seconds between frames) give the default time grid."""

    mode: str = "step"
    frames: int = 16
    dt: float = 0.25
    anchor: str = "fixed"
    rotation_power: float = 1.0
    rotation_convention: str = "column"

    def __post_init__(self) -> None:
        for name, allowed in (("mode", MODES), ("anchor", ANCHORS), ("rotation_convention", CONVENTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"RolloutConfig.{name}={getattr(self, name)!r} is not one of {allowed}")
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise ValueError(f"RolloutConfig.frames must be an integer >= 1, got {self.frames!r}")
        if not (math.isfinite(float(self.dt)) and float(self.dt) > 0):
            raise ValueError(f"RolloutConfig.dt must be a positive number of seconds, got {self.dt!r}")
        check_rotation_power("RolloutConfig", self.rotation_power)

    def times(self) -> Tensor:
        """The default time grid: ``frames`` times ``0, dt, 2 dt, ...`` seconds (float64)."""
        return torch.arange(self.frames, dtype=torch.float64) * float(self.dt)


@runtime_checkable
class Rollout(Protocol):
    """``rollout(text_hidden (B,T,D), text_embed (B,D), start (B,D), times (F,)) -> (B,F,D)``, frame 0 = start."""

    name: str

    def __call__(self, text_hidden: Tensor, text_embed: Tensor, start: Tensor, times: Tensor) -> Tensor: ...


def check_inputs(text_hidden: Tensor, text_embed: Tensor, start: Tensor, times: Tensor | list[float]) -> Tensor:
    """Validate a rollout's inputs; returns the times as a float64 CPU tensor."""
    if start.ndim != 2:
        raise ValueError(f"start must have shape (B, D), got {tuple(start.shape)}")
    batch, dim = start.shape
    if text_hidden.ndim != 3 or text_hidden.shape[0] != batch or text_hidden.shape[2] != dim:
        raise ValueError(f"text_hidden must have shape ({batch}, T, {dim}), got {tuple(text_hidden.shape)}")
    if text_embed.shape != (batch, dim):
        raise ValueError(f"text_embed must have shape ({batch}, {dim}), got {tuple(text_embed.shape)}")
    times = torch.as_tensor(times, dtype=torch.float64).detach().cpu()
    if times.ndim != 1 or times.numel() < 1:
        raise ValueError(f"times must be a non-empty 1-D tensor of seconds, got shape {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise ValueError(f"times must be finite, got {times.tolist()}")
    if float(times[0]) != 0.0:
        raise ValueError(f"times[0] must be 0 (frame 0 is the start embedding), got {float(times[0])}; pass times - times[0]")
    if bool((times[1:] <= times[:-1]).any()):
        raise ValueError(f"times must be strictly increasing, got {times.tolist()}")
    for name, x in (("text_hidden", text_hidden), ("text_embed", text_embed), ("start", start)):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} has NaN/Inf values; check the encoder or the previous stage")
    return times


def _assemble(start: Tensor, later: Tensor) -> Tensor:
    """(B,F,D) float32 CPU with frame 0 exactly the start and frames 1.. from ``later`` (B,F-1,D)."""
    start = start.detach().to("cpu", torch.float32)
    return torch.cat((start[:, None], later.detach().to("cpu", torch.float32)), dim=1)


class StaticRollout:
    """The start embedding for every frame."""

    name = "static"

    def __call__(self, text_hidden: Tensor, text_embed: Tensor, start: Tensor, times: Tensor) -> Tensor:
        times = check_inputs(text_hidden, text_embed, start, times)
        later = start.detach().to("cpu", torch.float32)[:, None].expand(-1, len(times) - 1, -1)
        return _assemble(start, later)


class MeanMotionRollout:
    """``start + (t / time_scale) · velocity``: the same straight-line motion for every caption."""

    name = "mean_motion"

    def __init__(self, velocity: Tensor, time_scale: float = 1.0) -> None:
        velocity = torch.as_tensor(velocity).detach().to("cpu", torch.float32)
        if velocity.ndim != 1 or not bool(torch.isfinite(velocity).all()):
            raise ValueError(f"velocity must be a finite (D,) tensor, got shape {tuple(velocity.shape)}")
        if not (math.isfinite(float(time_scale)) and float(time_scale) > 0):
            raise ValueError(f"time_scale must be a positive number of seconds, got {time_scale!r}")
        self.velocity = velocity
        self.time_scale = float(time_scale)

    @classmethod
    def fit(cls, store: EmbeddingStore, split: str = "train", val_fraction: float = 0.2) -> MeanMotionRollout:
        """Least-squares velocity per second over a split: minimises Σ ‖(e_k - e_0) - (t_k - t_0) v‖².

        ``split="train"`` means the trainer's training videos (:func:`spliter.data.splits.train_val_records`):
        without a "val" split in the store, the ``val_fraction`` share the trainer validates on is left out
        (pass the study's ``TrainConfig.val_fraction``).
        """
        records = train_val_records(store, val_fraction)[0] if split == "train" else store.split(split)
        num = torch.zeros(store.dim, dtype=torch.float64)
        den = 0.0
        for record in records:
            elapsed = record.frame_times - record.frame_times[0]
            num += elapsed @ (record.frame_embeds - record.frame_embeds[0]).double()
            den += float((elapsed**2).sum())
        if den == 0.0:
            raise ValueError(f"store {store.path}: split {split!r} has no videos to fit mean_motion on; use another split")
        return cls((num / den).float(), time_scale=1.0)

    def __call__(self, text_hidden: Tensor, text_embed: Tensor, start: Tensor, times: Tensor) -> Tensor:
        times = check_inputs(text_hidden, text_embed, start, times)
        if start.shape[1] != self.velocity.shape[0]:
            raise ValueError(f"start has D={start.shape[1]} but the mean_motion velocity has D={self.velocity.shape[0]}")
        steps = (times[1:] / self.time_scale).float()
        later = start.detach().to("cpu", torch.float32)[:, None] + steps[None, :, None] * self.velocity
        return _assemble(start, later)


def _device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class SpliterRollout:
    """A trained Spliter rolled out in step or chain mode (see the module docstring)."""

    def __init__(self, model: nn.Module, config: RolloutConfig | None = None) -> None:
        self.model = model
        self.config = config or RolloutConfig()
        self.time_scale = float(model.config.time_scale)
        mode = self.config.mode
        self.name = "spliter-step" if mode == "step" else f"spliter-chain-{self.config.anchor}"

    def __call__(self, text_hidden: Tensor, text_embed: Tensor, start: Tensor, times: Tensor) -> Tensor:
        times = check_inputs(text_hidden, text_embed, start, times)
        device = _device(self.model)
        h, t, u = (x.detach().to(device, torch.float32) for x in (text_hidden, text_embed, start))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                if self.config.mode == "step":
                    later = self._step(h, u, times)
                else:
                    later = self._chain(h, t, u, times)
        finally:
            self.model.train(was_training)
        return _assemble(start, later)

    def _step(self, h: Tensor, u: Tensor, times: Tensor) -> Tensor:
        batch, n = u.shape[0], len(times) - 1
        if n == 0:
            return u.new_empty((batch, 0, u.shape[1]))
        steps = (times[1:] / self.time_scale).to(u.device, torch.float32)
        out = self.model(h.repeat_interleave(n, 0), u.repeat_interleave(n, 0), steps.repeat(batch))
        return out.view(batch, n, -1)

    def _chain(self, h: Tensor, t: Tensor, u: Tensor, times: Tensor) -> Tensor:
        c = self.config
        steps = ((times[1:] - times[:-1]) / self.time_scale).to(u.device, torch.float32)
        u_a, h_a, t_a = u, h, t
        previous, h_i = u, h
        predictions = []
        for i, step in enumerate(steps):
            if i > 0:
                weight = F.cosine_similarity(u_a, t_a, dim=-1)
                turn = {"v_from": u_a, "v_to": previous, "weight": weight, "power": c.rotation_power,
                        "convention": c.rotation_convention}
                h_i = rotate(h_a, **turn)
                if c.anchor == "cumulative":
                    t_a = rotate(t_a, **turn)
                    u_a, h_a = previous, h_i
            previous = self.model(h_i, previous, step.expand(u.shape[0]))
            predictions.append(previous)
        return torch.stack(predictions, 1) if predictions else u.new_empty((u.shape[0], 0, u.shape[1]))


def make_rollout(
    kind: str,
    *,
    model: nn.Module | str | os.PathLike | None = None,
    config: RolloutConfig | None = None,
    store: EmbeddingStore | None = None,
    split: str = "train",
    val_fraction: float = 0.2,
    velocity: Tensor | None = None,
    time_scale: float = 1.0,
) -> Rollout:
    """A rollout by kind: ``spliter`` (a model or checkpoint path, + config), ``static``, or ``mean_motion``
    (a given velocity per ``time_scale`` seconds, or fitted on ``store``'s ``split``)."""
    if kind == "spliter":
        if model is None:
            raise ValueError("make_rollout('spliter') needs model= (a Spliter or a checkpoint path)")
        if isinstance(model, str | os.PathLike):
            model = load_spliter(model)
        return SpliterRollout(model, config)
    if kind == "static":
        return StaticRollout()
    if kind == "mean_motion":
        if velocity is not None:
            return MeanMotionRollout(velocity, time_scale)
        if store is None:
            raise ValueError("make_rollout('mean_motion') needs velocity= or store= to fit it on")
        return MeanMotionRollout.fit(store, split, val_fraction)
    raise ValueError(f"unknown rollout kind {kind!r}; use one of {KINDS}")
