"""A throw-away backend for docs/extending.md's recipe: deterministic numpy 'CLIP' and a colour 'decoder'."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

DIM, TOKENS = 8, 4


@dataclass(frozen=True)
class ToyOptions:
    seed: int = 0  # seed of the random projections


class ToyBackend:
    """Text -> hash-seeded unit vectors; frames -> a fixed projection of colour statistics; embeds -> colours."""

    name = "toy"
    dim = DIM
    text_tokens = TOKENS

    def __init__(self, seed: int = 0, device: str = "auto") -> None:
        self.seed = seed
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.projection = np.random.default_rng(seed).standard_normal((6, DIM))

    def _text(self, caption: str) -> np.ndarray:
        digest = int.from_bytes(hashlib.sha256(f"{self.seed}:{caption}".encode()).digest()[:8], "little")
        return np.random.default_rng(digest).standard_normal((TOKENS + 1, DIM))

    def encode_text(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states = np.stack([self._text(c) for c in captions])
        return torch.from_numpy(states[:, :TOKENS]).float(), torch.from_numpy(states[:, TOKENS]).float()

    def prior(self, captions, seeds, steps, guidance):
        _, embed = self.encode_text(captions)
        noise = torch.stack([torch.from_numpy(np.random.default_rng(s).standard_normal(DIM)) for s in seeds])
        return embed + 0.1 * noise.float(), torch.zeros_like(embed)

    def encode_frames(self, frames) -> torch.Tensor:
        x = np.asarray(frames, dtype=np.float64) / 255.0
        stats = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)
        return torch.from_numpy(stats @ self.projection).float()

    def decode(self, embeds, negative, seeds, steps, guidance, size) -> np.ndarray:
        colour = (np.tanh(embeds[:, :3].numpy()) + 1.0) * 127.5
        return np.broadcast_to(colour[:, None, None, :], (len(colour), size, size, 3)).astype(np.uint8).copy()

    def identity(self) -> dict:
        return {"name": self.name, "seed": self.seed}
