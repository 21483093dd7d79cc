"""SpliterConfig + Spliter: predict the embedding of a frame ``step`` away from a start embedding (method.md §3).

A clean re-implementation of the prior-art families (fixes B8, B9):

* tokens: the T text hidden states (LayerNorm over channels), a start token ``Linear(start)`` (the start is
  L2-normalised and scaled to unit RMS first when ``normalize_start``), and a step token
  ``LeakyReLU(Linear(step))`` of the signed step;
* conditioning tokens (``cross_attention``): ``off`` none; ``additive`` the text tokens and the start token
  each plus their own projection of the step token (what the prior art's single-key attention computes);
  ``attention`` the start and step tokens attending over the text tokens (scaled multi-head);
* heads: ``simple`` a plain token-mixing MLP over [text, start, step, conditioning]; ``increment`` the same
  tokens through pre-norm residual token-mixing blocks; ``dual`` a base branch over [text, start, step] and a
  conditioning branch over the conditioning tokens (the start and step tokens when ``off``), merged along
  tokens and mixed by a final block. Every head ends in one token and a channel-mixing output projection;
* ``rotation_layer="plane"``: a learnable rotation of the text tokens and the start in the plane of (start, a
  predicted direction) by ``alpha · step`` (see :class:`spliter.layers.PlaneRotation`);
* ``text_input="constant"``: the text-blind control. The same layers and parameter count, but every video's
  text states are replaced by zeros, so the model can use only the start and the step;
* ``step_consistent=True``: the head's output is read as a mean velocity ``a(H, e, t)`` and the displacement
  is ``t · a(H, e, t)``, so ``f(H, e, 0) = e`` exactly for every head and any weights (the plain head has a
  zero-step offset once trained, which chain mode adds at every hop).

Heads are classes in the :data:`HEADS` registry (:class:`Head`): a new head is one class and one registration.

Output: ``start + displacement``. The training loss (spliter.losses) is on the displacement from the start, the
true displacements are small next to the embedding norm, and "nothing moves" is the natural prior; predicting
the displacement makes that prior the zero output (the output projection is zero-initialised, so a fresh model
returns ``start`` exactly) and keeps the output on the scale of the targets.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from spliter.atomic import atomic_path
from spliter.layers import (
    AdditiveConditioning,
    CrossAttention,
    MixerBlock,
    PlaneRotation,
    TokenLinear,
    TokenMixer,
)
from spliter.registry import Registry

ROTATION_LAYERS = ("off", "plane")
CROSS_ATTENTION = ("off", "additive", "attention")
TEXT_INPUTS = ("caption", "constant")


class Head(nn.Module):
    """A head's token mixing: ``(base (B, T+2, D), cond (B, C, D) or None) -> (B, tokens_out, D)``.

    ``base`` holds [text, start, step]; ``cond`` the conditioning tokens (None when ``cross_attention="off"``).
    A new head is one subclass plus one ``HEADS.register(name, cls)``.
    """

    tokens_out: int

    def __init__(self, config: SpliterConfig) -> None:
        super().__init__()


class SimpleHead(Head):
    """A plain token-mixing MLP over [text, start, step, conditioning]."""

    residual = False

    def __init__(self, config: SpliterConfig) -> None:
        super().__init__(config)
        c = config
        tokens_in = c.text_tokens + 2 + c.conditioning_tokens
        self.trunk = TokenMixer(c.dim, tokens_in, c.width, c.depth, c.dropout, residual=self.residual)
        self.tokens_out = self.trunk.tokens_out

    def forward(self, base: Tensor, cond: Tensor | None) -> Tensor:
        return self.trunk(base if cond is None else torch.cat((base, cond), 1))


class IncrementHead(SimpleHead):
    """The same tokens as ``simple`` through pre-norm residual token-mixing blocks."""

    residual = True


class DualHead(Head):
    """A base branch over [text, start, step], a conditioning branch (start and step tokens when ``off``), merged."""

    def __init__(self, config: SpliterConfig) -> None:
        super().__init__(config)
        c = config
        cond_tokens = c.conditioning_tokens or 2  # off: the start and step tokens themselves
        self.base_branch = TokenMixer(c.dim, c.text_tokens + 2, c.width, c.depth, c.dropout, residual=True)
        self.cond_branch = TokenMixer(c.dim, cond_tokens, c.width, c.depth, c.dropout, residual=True)
        merged = self.base_branch.tokens_out + self.cond_branch.tokens_out
        self.merge = MixerBlock(c.dim, merged, self.base_branch.tokens_out, c.dropout, residual=True)
        self.tokens_out = self.base_branch.tokens_out

    def forward(self, base: Tensor, cond: Tensor | None) -> Tensor:
        cond_in = cond if cond is not None else base[:, -2:]
        return self.merge(torch.cat((self.base_branch(base), self.cond_branch(cond_in)), 1))


HEADS: Registry[type[Head]] = Registry("head")
HEADS.register("simple", SimpleHead)
HEADS.register("increment", IncrementHead)
HEADS.register("dual", DualHead)


@dataclass
class SpliterConfig:
    """Architecture of a Spliter; ``time_scale`` (seconds per unit step) travels with every checkpoint."""

    head: str = "increment"  # a name in HEADS
    rotation_layer: str = "off"  # "off" | "plane" (PlaneRotation of the text and start)
    cross_attention: str = "off"  # "off" | "additive" | "attention"
    dim: int = 1280  # embedding width D (a fact of the store)
    text_tokens: int = 77  # text states T (a fact of the store)
    width: int = 256  # tokens of the first mixer block (halved per block)
    depth: int = 4  # mixer blocks per branch
    heads: int = 8  # attention heads (cross_attention="attention")
    dropout: float = 0.1  # dropout of hidden tokens (whole tokens, Dropout1d)
    time_scale: float = 1.0  # seconds per unit step
    normalize_start: bool = True  # the start token sees the start at unit RMS
    text_input: str = "caption"  # "caption": the text states; "constant": zeros (the text-blind control)
    step_consistent: bool = False  # displacement times the step, so f(H, e, 0) = e exactly

    def __post_init__(self) -> None:
        for name, allowed in (
            ("head", HEADS.names()),
            ("rotation_layer", ROTATION_LAYERS),
            ("cross_attention", CROSS_ATTENTION),
            ("text_input", TEXT_INPUTS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"SpliterConfig.{name}={getattr(self, name)!r} is not one of {allowed}")
        for name, low in (("dim", 2), ("text_tokens", 1), ("width", 1), ("depth", 1), ("heads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"SpliterConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.width >> (self.depth - 1) < 1:
            raise ValueError(
                f"SpliterConfig.width={self.width} is too small for depth={self.depth}: the token pyramid halves "
                f"per block, so width must be >= 2**(depth-1)={2 ** (self.depth - 1)}"
            )
        if self.cross_attention == "attention" and self.dim % self.heads:
            raise ValueError(
                f"SpliterConfig: dim={self.dim} must be divisible by heads={self.heads} for attention"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"SpliterConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not (math.isfinite(float(self.time_scale)) and float(self.time_scale) > 0):
            raise ValueError(
                f"SpliterConfig.time_scale must be a positive number of seconds, got {self.time_scale!r}"
            )
        for name in ("normalize_start", "step_consistent"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SpliterConfig.{name} must be a bool, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpliterConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"SpliterConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)

    @property
    def conditioning_tokens(self) -> int:
        """Number of conditioning tokens the cross-attention setting produces."""
        return {"off": 0, "additive": self.text_tokens + 1, "attention": 2}[self.cross_attention]


class Spliter(nn.Module):
    """``forward(text_hidden (B,T,D), start (B,D), step (B,)) -> (B,D)``: the predicted embedding.

    Floating inputs of any precision are computed in the model's parameter dtype; the output has the start's
    dtype (the displacement is cast back and added to the start as given).
    """

    def __init__(self, config: SpliterConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        dim = c.dim
        self.text_norm = nn.LayerNorm(dim)
        self.start_proj = nn.Linear(dim, dim)
        self.step_proj = nn.Linear(1, dim)
        self.rotation = PlaneRotation(dim) if c.rotation_layer == "plane" else None
        if c.cross_attention == "additive":
            self.add_text = AdditiveConditioning(dim)
            self.add_start = AdditiveConditioning(dim)
        elif c.cross_attention == "attention":
            self.attend = CrossAttention(dim, c.heads, c.dropout)
        self.head = HEADS.get(c.head)(c)
        self.collapse = TokenLinear(self.head.tokens_out, 1)
        self.out_proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def _check_inputs(self, text_hidden: Tensor, start: Tensor, step: Tensor) -> None:
        c = self.config
        if text_hidden.ndim != 3 or text_hidden.shape[1:] != (c.text_tokens, c.dim):
            raise ValueError(
                f"text_hidden must have shape (B, {c.text_tokens}, {c.dim}) for this Spliter, got {tuple(text_hidden.shape)}"
            )
        batch = text_hidden.shape[0]
        if start.shape != (batch, c.dim):
            raise ValueError(f"start must have shape ({batch}, {c.dim}), got {tuple(start.shape)}")
        if step.shape != (batch,):
            raise ValueError(
                f"step must have shape ({batch},) (signed step per example), got {tuple(step.shape)}"
            )
        for name, x in (("text_hidden", text_hidden), ("start", start)):
            if not x.is_floating_point():
                raise TypeError(f"Spliter.forward: {name} must be a floating-point tensor, got {x.dtype}")

    def _start_input(self, start: Tensor) -> Tensor:
        if not self.config.normalize_start:
            return start
        # Unit-RMS (= L2-normalised times sqrt(D)) so the start token is on the scale of the normalised text.
        return F.normalize(start, dim=-1) * math.sqrt(self.config.dim)

    def forward(self, text_hidden: Tensor, start: Tensor, step: Tensor) -> Tensor:
        self._check_inputs(text_hidden, start, step)
        dtype = self.out_proj.weight.dtype
        step = step.to(dtype)
        if self.config.text_input == "constant":
            # The text-blind control: same layers and parameters, every video sees the same (zero) text.
            text_hidden = torch.zeros_like(text_hidden, dtype=dtype)
        displacement = self._displacement(text_hidden.to(dtype), start.to(dtype), step)
        if self.config.step_consistent:
            # f(H, e, 0) = e exactly: the head predicts a mean velocity a(t), the displacement is t * a(t).
            displacement = step[:, None] * displacement
        return start + displacement.to(start.dtype)

    def _displacement(self, text: Tensor, start: Tensor, step: Tensor) -> Tensor:
        step_tok = F.leaky_relu(self.step_proj(step[:, None]), 0.01)
        start_in = self._start_input(start)
        if self.rotation is not None:
            cond = self.start_proj(start_in) + step_tok
            rotated = self.rotation(torch.cat((text, start_in[:, None]), 1), start_in, cond, step)
            text, start_in = rotated[:, :-1], rotated[:, -1]
        text = self.text_norm(text)
        start_tok = self.start_proj(start_in)
        base = torch.cat((text, start_tok[:, None], step_tok[:, None]), 1)
        mixed = self.head(base, self._conditioning(text, start_tok, step_tok))
        return self.out_proj(self.collapse(mixed).squeeze(1))

    def _conditioning(self, text: Tensor, start_tok: Tensor, step_tok: Tensor) -> Tensor | None:
        mode = self.config.cross_attention
        if mode == "additive":
            return torch.cat((self.add_text(text, step_tok), self.add_start(start_tok[:, None], step_tok)), 1)
        if mode == "attention":
            return self.attend(torch.stack((start_tok, step_tok), 1), text)
        return None


class CheckpointError(ValueError):
    """A Spliter checkpoint file is unreadable or incomplete."""


class CheckpointNotFound(FileNotFoundError):
    """A Spliter checkpoint file does not exist."""


def save_spliter(model: Spliter, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write one file: ``{"config": dict, "state_dict": ..., "extra": json-able dict}`` (atomic replace)."""
    extra = {} if extra is None else extra
    try:
        extra = json.loads(json.dumps(extra))
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_spliter: extra for {path} must be JSON-serialisable ({err})") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"config": model.config.to_dict(), "state_dict": state, "extra": extra}, tmp)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw ``{"config", "state_dict", "extra"}`` of a save_spliter file, validated (weights_only load)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f"Spliter checkpoint not found: {path} (train a model or fix the path)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/foreign files
        raise CheckpointError(
            f"Spliter checkpoint {path} is unreadable ({type(err).__name__}); re-create it"
        ) from err
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= set(payload):
        raise CheckpointError(
            f"Spliter checkpoint {path} lacks 'config'/'state_dict': not a save_spliter file"
        )
    payload.setdefault("extra", {})
    return payload


_LEGACY_HEAD_PREFIXES = ("trunk.", "base_branch.", "cond_branch.", "merge.")


def _upgrade_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoints written before the HEADS registry kept the head's layers at the top level."""
    return {f"head.{k}" if k.startswith(_LEGACY_HEAD_PREFIXES) else k: v for k, v in state.items()}


def load_spliter(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Spliter:
    """Rebuild the Spliter saved at path, in eval mode; errors name the file."""
    payload = read_checkpoint(path, map_location)
    try:
        model = Spliter(SpliterConfig.from_dict(payload["config"]))
        model.load_state_dict(_upgrade_state_dict(payload["state_dict"]), strict=True)
    except (ValueError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"Spliter checkpoint {path} does not match its config: {err}") from err
    return model.to(map_location).eval()
