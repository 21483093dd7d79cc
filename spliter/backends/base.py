"""The Backend protocol (text/frame encoders, prior, decoder), the registry entry and the factory by name.

Every backend returns float32 CPU tensors for embeddings and uint8 numpy arrays for images, whatever device and
dtype its frozen models run in (fp16 on CUDA, fp32 elsewhere). This module imports no ML library at import
time, so `missing_weights` (used by `spliter-bench doctor`) answers in milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from spliter.registry import import_object

if TYPE_CHECKING:
    import numpy as np
    import torch

@dataclass(frozen=True)
class BackendSpec:
    """One registered backend (see `spliter.backends.BACKENDS` and docs/extending.md)."""

    factory: str  # "module:Class" called as factory(device=..., **options); imported only when built
    options: type | str  # dataclass of the study's backend.options (or its "module:Class" path)
    random_weights: bool  # weights come from a seed: numbers measure the pipeline's mechanics, not quality
    missing_weights: str | None = None  # "module:function"(**options) -> problem lines; None: nothing to load
    description: str = ""  # one line for `doctor`

    def options_class(self) -> type:
        return import_object(self.options) if isinstance(self.options, str) else self.options


class WeightsNotFound(FileNotFoundError):
    """Model weights are not where the backend was told to look; the message says where and how to get them."""


@runtime_checkable
class Backend(Protocol):
    """What encoding and generation need from a text-to-image model (see docs/internals.md)."""

    name: str
    dim: int
    text_tokens: int
    device: torch.device
    dtype: torch.dtype

    def encode_text(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(text_hidden (B,T,D), text_embed (B,D)), float32 CPU."""
        ...

    def prior(
        self, captions: Sequence[str], seeds: Sequence[int], steps: int, guidance: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prior_embed (B,D), negative (B,D)), float32 CPU; row i depends only on captions[i] and seeds[i]."""
        ...

    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) RGB frames -> image embeddings (N,D), float32 CPU."""
        ...

    def decode(
        self,
        embeds: torch.Tensor,
        negative: torch.Tensor,
        seeds: Sequence[int],
        steps: int,
        guidance: float,
        size: int,
    ) -> np.ndarray:
        """Image embeddings (N,D) -> uint8 images (N,size,size,3); image i depends only on row i and seeds[i]."""
        ...

    def identity(self) -> dict[str, Any]:
        """JSON-able description (name, weights, dtype, ...) recorded in stores and run folders."""
        ...


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The one device selection: 'auto' -> cuda, then mps, then cpu; an explicit device must be available."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda[:i]' or 'mps'") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available: use 'auto' or 'cpu'")
    if chosen.type == "mps" and not mps_ok:
        raise ValueError(f"device {device!r} requested but MPS is not available: use 'auto' or 'cpu'")
    return chosen


def frozen_dtype(device: torch.device, dtype: torch.dtype | str | None = None) -> torch.dtype:
    """The dtype frozen models run in: the one asked for, else fp16 on CUDA and fp32 elsewhere."""
    import torch

    if dtype is not None:
        return getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return torch.float16 if device.type == "cuda" else torch.float32


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules from `seed` without touching the caller's global RNG state (random weights from a seed)."""
    import torch  # this module stays importable without torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
