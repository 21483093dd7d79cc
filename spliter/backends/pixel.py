"""A known-answer backend: the frame embedding is an exactly invertible linear map of the low-resolution frame.

``pixel-linear`` puts videos in a space where motion is carried exactly and rendered visibly:

* **frames** (``encode_frames``): area-downsample each uint8 frame to ``resolution`` x ``resolution`` x 3, scale
  to [0, 1], subtract 0.5 (mid-grey is the origin), flatten to P = 3·resolution² values ``x`` (row-major
  (y, x, rgb)), and embed ``e = Q x`` with ``Q`` a (D, P) matrix with orthonormal columns drawn from ``seed``
  (QR of a seeded Gaussian, signs fixed). ``D = dim >= P``; distances are kept exactly:
  ``|e1 - e2| = |x1 - x2|``, so the embedding MSE of a prediction *is* its low-resolution pixel MSE.
* **decode**: ``x = Qᵀ e`` (exact inverse on the image of Q; a component outside it is dropped), + 0.5,
  clipped to [0, 1], bilinearly upsampled to ``size`` and rounded to uint8. It ignores ``negative``,
  ``seeds``, ``steps`` and ``guidance``: there is no diffusion, the same embedding always gives the same
  image (they are accepted so every stage calls it unchanged).
* **text** (``encode_text``): the tiny random CLIP text tower of the tiny backend (transformers
  ``CLIPTextModelWithProjection``, width 32, weights from ``seed``, offline) over the real CLIP vocab, padded
  to ``text_tokens``; its hidden states (T, 32) and pooled projection (32) are mapped to D by one fixed
  seeded Gaussian matrix (32, D) / sqrt(32), so every channel has about unit variance.
* **prior** (``prior``): retrieval, not generation. The backend holds (caption embedding, first-frame
  embedding) pairs given by :meth:`PixelLinearBackend.fit_prior` (or :meth:`fit_prior_from_store`). A
  caption's key is its text tower states (T, 32) flattened and unit-normalised (the pooled embedding of a
  random tower barely separates captions); for a caption it takes the cosine similarity of its key to every
  held key, keeps the pairs within ``tie_tolerance`` of the best (identical captions tie exactly), and returns the
  first frame of the one the generation seed picks among them (uniformly, ``numpy.random.default_rng(seed)``).
  ``steps`` and ``guidance`` are ignored; ``negative`` is the zero embedding (the mid-grey image). An unfitted
  prior is an error, never a silent guess.

Feeding the prior: fit it on the videos a model may learn from, never on test videos, and before encoding
(every stored video's ``prior_embed`` comes from it); test captions then retrieve a training video's first
frame. The harness (``ablations.stages.encode``) fits it on the ``train`` split only:

* encode: choose the test videos first (hashed ids, ``data.test_fraction``), then
  ``backend.fit_prior([v.caption for v in train], backend.encode_frames(first_frames_of_train))``,
  ``encode_videos(rest, backend, ...)`` and ``encode_videos(test, backend, ..., split="test")``;
* generate (a fresh backend in another process, ``Resources.fitted_backend``):
  ``backend.fit_prior_from_store(store, ("train",))``, the same pairs at the store's fp16 precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from spliter.backends.base import frozen_dtype, resolve_device

TEXT_WIDTH = 32
DEFAULT_TEXT_TOKENS = 24


class PriorNotFitted(ValueError):
    """The retrieval prior was asked for a start before it was given any (caption, first frame) pairs."""


def orthonormal_columns(rows: int, cols: int, seed: int) -> torch.Tensor:
    """A (rows, cols) float64 matrix with orthonormal columns, a pure function of (rows, cols, seed)."""
    if rows < cols:
        raise ValueError(f"need rows >= cols for orthonormal columns, got {rows} x {cols}")
    generator = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=generator, dtype=torch.float64))
    # QR is unique up to column signs; fixing sign(diag R) > 0 makes Q depend only on the Gaussian draw.
    return q * torch.sign(torch.diagonal(r))[None, :]


@dataclass(frozen=True)
class PixelLinearOptions:
    """The study's `backend.options` for pixel-linear."""

    seed: int = 0  # seed of the orthonormal map and of the tiny random text tower
    resolution: int = 16  # side of the low-resolution frame the embedding is an exact linear map of
    dim: int | None = None  # embedding size (>= 3 * resolution**2; None: 768 or that minimum, whichever is larger)
    text_tokens: int = DEFAULT_TEXT_TOKENS  # text hidden-state tokens
    tie_tolerance: float = 1e-6  # retrieval prior: captions within this distance of the best are tied


class PixelLinearBackend:
    """Frames <-> embeddings by a seeded orthogonal map of the low-resolution frame; tiny CLIP text; retrieval prior."""

    name = "pixel-linear"

    def __init__(
        self,
        seed: int = 0,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str | None = None,
        resolution: int = 16,
        dim: int | None = None,
        text_tokens: int = DEFAULT_TEXT_TOKENS,
        tie_tolerance: float = 1e-6,
    ) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
            raise ValueError(f"pixel-linear: resolution must be an integer >= 2, got {resolution!r}")
        pixels = 3 * resolution * resolution
        dim = pixels if dim is None else dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < pixels:
            raise ValueError(
                f"pixel-linear: dim must be an integer >= 3·resolution² = {pixels} (the map must be invertible), got {dim!r}"
            )
        if isinstance(text_tokens, bool) or not isinstance(text_tokens, int) or text_tokens < 3:
            raise ValueError(f"pixel-linear: text_tokens must be an integer >= 3 (bos, a word, eos), got {text_tokens!r}")
        if not tie_tolerance >= 0:
            raise ValueError(f"pixel-linear: tie_tolerance must be >= 0, got {tie_tolerance!r}")
        self.seed, self.resolution, self.dim, self.text_tokens = int(seed), resolution, dim, text_tokens
        self.tie_tolerance = float(tie_tolerance)
        # The maps are tiny; they run on the CPU in float32 whatever device is asked for (it is recorded only).
        self.device = resolve_device(device)
        self.dtype = frozen_dtype(torch.device("cpu"), dtype)
        self._basis = orthonormal_columns(dim, pixels, self.seed).float()  # (D, P)
        text_map = torch.randn(TEXT_WIDTH, dim, generator=torch.Generator().manual_seed(self.seed + 1))
        self._text_map = text_map / TEXT_WIDTH**0.5  # (32, D)
        self._tokenizer, self._text_encoder = _tiny_text_tower(self.seed, text_tokens)
        self._prior_keys = torch.zeros(0, text_tokens * TEXT_WIDTH)  # unit caption keys (N, T·32)
        self._prior_values = torch.zeros(0, dim)  # first-frame embeddings (N, D)

    # ----------------------------------------------------------------------------------------------- text

    @torch.no_grad()
    def encode_text(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(text_hidden (B,T,D), text_embed (B,D)): tiny CLIP text tower states mapped to D channels."""
        captions = _captions(captions)
        if not captions:
            return torch.zeros(0, self.text_tokens, self.dim), torch.zeros(0, self.dim)
        tokens = self._tokenizer(
            captions, padding="max_length", max_length=self.text_tokens, truncation=True, return_tensors="pt"
        )
        out = self._text_encoder(tokens.input_ids)
        return out.last_hidden_state.float() @ self._text_map, out.text_embeds.float() @ self._text_map

    @torch.no_grad()
    def _caption_keys(self, captions: list[str]) -> torch.Tensor:
        """Unit (B, T·32) keys of the prior: the tower's token states, flattened (before the map to D)."""
        tokens = self._tokenizer(
            captions, padding="max_length", max_length=self.text_tokens, truncation=True, return_tensors="pt"
        )
        states = self._text_encoder(tokens.input_ids).last_hidden_state.float()
        return F.normalize(states.reshape(len(captions), -1), dim=-1)

    # ---------------------------------------------------------------------------------------------- prior

    def fit_prior(self, captions: Sequence[str], first_frame_embeds: torch.Tensor) -> None:
        """Hold these (caption, first-frame embedding) pairs for retrieval (replacing any held before)."""
        captions = _captions(captions)
        values = torch.as_tensor(first_frame_embeds).detach().to("cpu", torch.float32)
        if values.ndim != 2 or values.shape != (len(captions), self.dim):
            raise ValueError(
                f"pixel-linear fit_prior: need one first-frame embedding of dim {self.dim} per caption "
                f"({len(captions)}), got shape {tuple(values.shape)}"
            )
        if not captions:
            raise ValueError("pixel-linear fit_prior: got no pairs; pass the captions and first frames of the train videos")
        if not torch.isfinite(values).all():
            raise ValueError("pixel-linear fit_prior: first_frame_embeds contain NaN/inf; re-encode the frames")
        self._prior_keys = self._caption_keys(captions)
        self._prior_values = values.clone()

    def fit_prior_from_store(self, store: Any, splits: Sequence[str] = ("train", "val")) -> int:
        """Fit the prior on the caption and first frame of every video of ``splits`` in an EmbeddingStore; returns N."""
        records = [record for split in splits for record in store.split(split)]
        if not records:
            raise ValueError(f"pixel-linear: store {getattr(store, 'path', '')} has no videos in splits {list(splits)} to fit the prior on")
        self.fit_prior([r.caption for r in records], torch.stack([r.frame_embeds[0] for r in records]))
        return len(records)

    @property
    def prior_size(self) -> int:
        """How many (caption, first frame) pairs the prior retrieves from."""
        return int(self._prior_values.shape[0])

    @torch.no_grad()
    def prior(
        self, captions: Sequence[str], seeds: Sequence[int], steps: int, guidance: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(first frame of the nearest held caption (B,D), zero negative (B,D)); steps and guidance are ignored."""
        captions = _captions(captions)
        seeds = [int(seed) for seed in seeds]
        if len(seeds) != len(captions):
            raise ValueError(f"need one seed per caption: {len(captions)} captions, {len(seeds)} seeds")
        if self.prior_size == 0:
            raise PriorNotFitted(
                "pixel-linear: the retrieval prior holds no (caption, first frame) pairs; call "
                "backend.fit_prior(captions, first_frame_embeds) or backend.fit_prior_from_store(store) first"
            )
        similarity = self._caption_keys(captions) @ self._prior_keys.T  # (B, N)
        picks = []
        for row, seed in zip(similarity, seeds, strict=True):
            ties = torch.nonzero(row >= row.max() - self.tie_tolerance).flatten().numpy()
            picks.append(int(ties[np.random.default_rng(seed).integers(len(ties))]))
        start = self._prior_values[picks].clone()
        return start, torch.zeros_like(start)

    # --------------------------------------------------------------------------------------------- frames

    def downsample(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) -> float32 (N, resolution, resolution, 3) in [0, 1] by area averaging."""
        pixels = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {pixels.dtype} {tuple(pixels.shape)}")
        if pixels.shape[1] < self.resolution or pixels.shape[2] < self.resolution:
            raise ValueError(
                f"frames of {pixels.shape[1]}x{pixels.shape[2]} px are smaller than the backend's "
                f"{self.resolution}x{self.resolution} grid; encode at size >= {self.resolution}"
            )
        chw = pixels.permute(0, 3, 1, 2).float() / 255.0
        return F.adaptive_avg_pool2d(chw, self.resolution).permute(0, 2, 3, 1).contiguous()

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) RGB frames -> embeddings Q (x - 0.5) (N,D), float32 CPU."""
        low = self.downsample(frames)
        return (low.reshape(len(low), -1) - 0.5) @ self._basis.T

    def to_low_resolution(self, embeds: torch.Tensor) -> torch.Tensor:
        """Embeddings (N,D) -> float32 (N, resolution, resolution, 3) in [0, 1] (inverse map, clipped)."""
        embeds = torch.as_tensor(embeds, dtype=torch.float32)
        if embeds.ndim != 2 or embeds.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (N, {self.dim}), got {tuple(embeds.shape)}")
        if not torch.isfinite(embeds).all():
            raise ValueError("image embeddings to decode contain NaN or inf; check the rollout")
        flat = embeds @ self._basis + 0.5
        return flat.clamp(0.0, 1.0).reshape(len(embeds), self.resolution, self.resolution, 3)

    @torch.no_grad()
    def decode(
        self,
        embeds: torch.Tensor,
        negative: torch.Tensor,
        seeds: Sequence[int],
        steps: int,
        guidance: float,
        size: int,
    ) -> np.ndarray:
        """Embeddings (N,D) -> uint8 (N,size,size,3): inverse map, bilinear upsampling; negative/seeds/steps/guidance unused."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer number of pixels, got {size!r}")
        low = self.to_low_resolution(embeds)
        if len(seeds) != len(low):
            raise ValueError(f"need one seed per row: {len(low)} rows, {len(seeds)} seeds")
        if not len(low):
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        chw = low.permute(0, 3, 1, 2)
        if size != self.resolution:
            chw = F.interpolate(chw, size=(size, size), mode="bilinear", align_corners=False)
        return (chw.permute(0, 2, 3, 1).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()

    def identity(self) -> dict[str, Any]:
        """Name, map, text tower and the prior's pool size: enough to tell whether two stores are comparable."""
        return {
            "name": self.name, "seed": self.seed, "resolution": self.resolution, "dim": self.dim,
            "text_tokens": self.text_tokens, "text_tower": f"tiny-clip-{TEXT_WIDTH}@seed{self.seed}",
            "tie_tolerance": self.tie_tolerance, "dtype": "float32", "device": "cpu",
        }  # fmt: skip


def _tiny_text_tower(seed: int, text_tokens: int) -> tuple[Any, Any]:
    """The tiny backend's random CLIP text tower (width 32, 5 layers) from ``seed``, with its tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from spliter.backends.tokenizer import CLIP_BOS_ID, CLIP_EOS_ID, CLIP_VOCAB_SIZE, clip_tokenizer

    config = CLIPTextConfig(
        hidden_size=TEXT_WIDTH, projection_dim=TEXT_WIDTH, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=5, vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=text_tokens,
        bos_token_id=CLIP_BOS_ID, eos_token_id=CLIP_EOS_ID, pad_token_id=CLIP_EOS_ID,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = CLIPTextModelWithProjection(config).eval()
    return clip_tokenizer(text_tokens), encoder


def _captions(captions: Sequence[str]) -> list[str]:
    if isinstance(captions, str):
        raise TypeError("captions must be a sequence of strings, not one string")
    return [str(caption) for caption in captions]
