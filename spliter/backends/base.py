"""The Backend protocol (text/frame encoders, prior, decoder) and the factory that builds a backend by name.

Every backend returns float32 CPU tensors for embeddings and uint8 numpy arrays for images, whatever device and
dtype its frozen models run in (fp16 on CUDA, fp32 elsewhere). This module imports no ML library at import
time, so `missing_weights` (used by `spliter-bench doctor`) answers in milliseconds.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

BACKENDS = {
    "tiny": ("spliter.backends.tiny", "TinyBackend"),
    "kandinsky22": ("spliter.backends.kandinsky22", "Kandinsky22Backend"),
    "kandinsky22-random": ("spliter.backends.kandinsky22", "RandomKandinsky22Backend"),
    "pixel-linear": ("spliter.backends.pixel", "PixelLinearBackend"),
}
"""Backend name -> (module, class); modules are imported only when that backend is asked for."""


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


def make_backend(name: str, device: str = "auto", **options: Any) -> Backend:
    """Build the backend called `name` ("tiny", "kandinsky22", "kandinsky22-random") with its options."""
    cls = _backend_class(name)
    try:
        inspect.signature(cls).bind(device=device, **options)
    except TypeError as error:
        raise ValueError(f"backend {name!r}: {error}; see {cls.__module__}.{cls.__name__} for its options") from None
    return cls(device=device, **options)


def missing_weights(name: str, **options: Any) -> list[str]:
    """One line per weight folder the backend `name` needs and cannot find (empty when it can be built)."""
    _backend_class_path(name)
    if name != "kandinsky22":
        return []
    from spliter.backends.kandinsky22 import missing_kandinsky_weights

    return missing_kandinsky_weights(**options)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda, then mps, then cpu; anything else is passed to torch.device."""
    import torch

    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def frozen_dtype(device: torch.device, dtype: torch.dtype | str | None = None) -> torch.dtype:
    """The dtype frozen models run in: the one asked for, else fp16 on CUDA and fp32 elsewhere."""
    import torch

    if dtype is not None:
        return getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return torch.float16 if device.type == "cuda" else torch.float32


def _backend_class_path(name: str) -> tuple[str, str]:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def _backend_class(name: str) -> type:
    module, attr = _backend_class_path(name)
    return getattr(importlib.import_module(module), attr)
