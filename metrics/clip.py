"""CLIP encoders for scoring and the temporal-consistency / text-alignment formulas (metrics.md §2).

Scales: consistency is a raw cosine in [-1, 1]; text alignment is 100 * cos (the CLIP-T / CLIPScore
scale), averaged over frames and *not* clamped at 0, so a negative agreement stays visible.

Encoders always run their own preprocessing on uint8 frames: EvalCrafter fed float 0-255 pixels
straight into CLIP, which saturates its scores near 100 (metrics.md §2).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from metrics.registry import CONSISTENCY_MODES

#: A 3.4 M-parameter open_clip config for CPU tests and benchmarks (environment.md §7).
TINY_VIT_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


class EmbeddingError(ValueError):
    """Embeddings or frames that a metric cannot use."""


class ClipWeightsNotFound(FileNotFoundError):
    """A local CLIP weights file that does not exist."""


@runtime_checkable
class ClipEncoder(Protocol):
    """Maps uint8 frames and captions into one space; outputs are float32 CPU, L2-normalised rows."""

    name: str

    def encode_images(self, frames: np.ndarray) -> torch.Tensor: ...

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor: ...


def unit_rows(x: Any, label: str = "embeddings") -> np.ndarray:
    """float64 (N, D) copy of ``x`` (numpy or torch) with every row scaled to unit length."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise EmbeddingError(f"{label}: expected a 2-D (N, D) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise EmbeddingError(f"{label}: NaN/Inf in the embeddings; check the encoder")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise EmbeddingError(f"{label}: rows {np.flatnonzero(norms[:, 0] == 0).tolist()} are zero vectors")
    return arr / norms


def _frame_embeddings(frame_embeds: Any, label: str) -> np.ndarray:
    f = unit_rows(frame_embeds, label)
    if f.shape[0] < 2:
        raise EmbeddingError(f"{label}: temporal metrics need at least 2 frames, got {f.shape[0]}")
    return f


def temporal_consistency(frame_embeds: Any, mode: str = "consecutive", label: str = "video") -> float:
    """Mean cosine between frame embeddings (F, D).

    ``consecutive``: pairs (t, t+1) (EvalCrafter CLIP-Temp, CLIP-F). ``first``: pairs (0, t), t >= 1.
    ``all_pairs``: every ordered pair i != j (Tune-A-Video / LOVEU). ``vbench``: mean over t >= 1 of
    (max(0, cos(f_t, f_t-1)) + max(0, cos(f_t, f_0))) / 2 (VBench subject/background consistency).
    """
    if mode not in CONSISTENCY_MODES:
        raise EmbeddingError(f"consistency mode must be one of {CONSISTENCY_MODES}, got {mode!r}")
    f = _frame_embeddings(frame_embeds, label)
    sims = np.clip(f @ f.T, -1.0, 1.0)
    n = f.shape[0]
    if mode == "consecutive":
        value = np.diagonal(sims, offset=1).mean()
    elif mode == "first":
        value = sims[0, 1:].mean()
    elif mode == "all_pairs":
        value = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    else:
        prev = np.maximum(np.diagonal(sims, offset=1), 0.0)
        first = np.maximum(sims[0, 1:], 0.0)
        value = (0.5 * (prev + first)).mean()
    return float(value)


def text_alignment(frame_embeds: Any, text_embed: Any, label: str = "video") -> float:
    """Mean over frames of 100 * cos(frame, caption); ``text_embed`` is (D,) or (1, D)."""
    f = unit_rows(frame_embeds, label)
    if hasattr(text_embed, "detach"):
        text_embed = text_embed.detach().cpu().double().numpy()
    text = unit_rows(np.asarray(text_embed, dtype=np.float64).reshape(1, -1), f"{label} caption")
    if text.shape[1] != f.shape[1]:
        raise EmbeddingError(
            f"{label}: frame embeddings are {f.shape[1]}-d but the caption's is {text.shape[1]}-d"
        )
    return float(100.0 * np.clip(f @ text[0], -1.0, 1.0).mean())


def check_frames(frames: Any, label: str = "frames") -> np.ndarray:
    """uint8 (N, H, W, 3) numpy view of ``frames``; anything else raises naming ``label``."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise EmbeddingError(
            f"{label}: frames must be uint8 in 0-255, got {arr.dtype}; convert floats in [0, 1] with "
            "(x * 255).round().astype(np.uint8)"
        )
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise EmbeddingError(f"{label}: frames must be (N, H, W, 3), got shape {arr.shape}")
    return arr


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.detach().float().cpu(), dim=-1)


def register_open_clip_config(name: str, config: Mapping[str, Any] = TINY_VIT_CONFIG) -> None:
    """Make ``name`` a known open_clip architecture (idempotent).

    Uses the public ``open_clip.add_model_config`` with a JSON file in a temporary folder rather than
    writing into the private ``_MODEL_CONFIGS`` dict: the JSON route is the documented one and survives
    open_clip refactors; the folder may go away afterwards because the config is read immediately.
    """
    import open_clip

    known = open_clip.get_model_config(name)
    if known is not None:
        if known != dict(config):
            raise ValueError(f"open_clip already has a different config named {name!r}; pick another name")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps(dict(config)))
        open_clip.add_model_config(path)


@dataclass(frozen=True)
class OpenClipSpec:
    """``openclip:<model>[/<pretrained tag>]@<weights file | random>`` as a study names an encoder."""

    model: str  # open_clip architecture, e.g. ViT-L-14
    tag: str | None  # open_clip pretrained tag the checkpoint was trained as; fixes preprocessing and QuickGELU
    weights: str  # local checkpoint file, or "random" (smoke tests only)

    @property
    def random(self) -> bool:
        return self.weights == "random"


def parse_open_clip_spec(spec: str) -> OpenClipSpec:
    """Parse ``openclip:ViT-L-14/laion2b_s32b_b82k@/path/to/open_clip_pytorch_model.bin`` (or ``@random``)."""
    form = "openclip:<model>[/<pretrained tag>]@<weights file or 'random'>"
    if not isinstance(spec, str) or not spec.startswith("openclip:") or "@" not in spec:
        raise ValueError(f"CLIP encoder {spec!r}: expected {form}, e.g. openclip:ViT-L-14/laion2b_s32b_b82k@weights.bin")
    model_tag, _, weights = spec.removeprefix("openclip:").partition("@")
    model, _, tag = model_tag.partition("/")
    if not model or not weights or "/" in tag or (model_tag.endswith("/") and not tag):
        raise ValueError(f"CLIP encoder {spec!r}: expected {form}")
    return OpenClipSpec(model, tag or None, weights)


def open_clip_pretrained_cfg(model_name: str, tag: str) -> dict[str, Any]:
    """The tag's own preprocessing and activation from open_clip's pretrained table (no download).

    Returns mean, std, interpolation, resize_mode and quick_gelu; an unknown tag lists the known ones.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(
            f"open_clip {model_name}: unknown pretrained tag {tag!r}; known tags: {', '.join(known) or 'none'}"
        )
    keys = ("mean", "std", "interpolation", "resize_mode")
    return {**{key: cfg[key] for key in keys}, "quick_gelu": bool(cfg.get("quick_gelu"))}


class OpenClipEncoder:
    """An open_clip model from a local weights file (never downloads), or random init for tests.

    ``tag`` is the open_clip pretrained tag the checkpoint was trained as: its preprocessing (mean/std,
    interpolation, resize mode) and QuickGELU are applied as open_clip applies them when it loads that tag,
    and it is part of the name, so two checkpoints give two metric names. An architecture with published
    tags needs one for a weights file (without it, open_clip would silently use OpenAI's preprocessing).
    ``name`` is ``openclip:<model>[/<tag>]`` for a weights file (``label`` replaces ``<model>[/<tag>]``) and
    ``openclip:<model>[/<tag>]:random<seed>`` for a random initialisation.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | Path | None = None,
        *,
        tag: str | None = None,
        device: str | torch.device = "cpu",
        allow_random: bool = False,
        seed: int = 0,
        batch_size: int = 32,
        label: str | None = None,
    ) -> None:
        import open_clip

        if pretrained is None and not allow_random:
            raise ValueError(
                f"open_clip {model_name}: no weights file given; pass pretrained=<local file> "
                "(allow_random=True is for tests only)"
            )
        if pretrained is not None and not Path(pretrained).is_file():
            raise ClipWeightsNotFound(
                f"open_clip {model_name}: weights file {pretrained} not found; place the open_clip checkpoint "
                "(e.g. open_clip_pytorch_model.bin or .safetensors) there; nothing is downloaded"
            )
        published = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained is not None and tag is None and published:
            raise ValueError(
                f"open_clip {model_name}: name the pretrained tag the checkpoint {pretrained} was trained as, "
                f"e.g. openclip:{model_name}/{published[0]}@{pretrained}; its preprocessing and QuickGELU depend "
                f"on it (known tags: {', '.join(published)})"
            )
        options: dict[str, Any] = {}
        if tag is not None:
            cfg = open_clip_pretrained_cfg(model_name, tag)
            options = {"image_mean": cfg["mean"], "image_std": cfg["std"], "image_interpolation": cfg["interpolation"],
                       "image_resize_mode": cfg["resize_mode"], "force_quick_gelu": cfg["quick_gelu"]}
        with torch.random.fork_rng(devices=[]):  # random init must not disturb the caller's RNG
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None if pretrained is None else str(pretrained), device=device, **options
            )
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.tag = tag
        suffix = label or (model_name if tag is None else f"{model_name}/{tag}")
        self.name = f"openclip:{suffix}" if pretrained is not None else f"openclip:{suffix}:random{seed}"

    @classmethod
    def from_spec(cls, spec: str | OpenClipSpec, *, device: str | torch.device = "cpu", seed: int = 0,
                  batch_size: int = 32) -> OpenClipEncoder:
        """The encoder a study names, ``openclip:<model>[/<tag>]@<file | random>``."""
        parsed = parse_open_clip_spec(spec) if isinstance(spec, str) else spec
        return cls(parsed.model, None if parsed.random else parsed.weights, tag=parsed.tag, device=device,
                   allow_random=parsed.random, seed=seed, batch_size=batch_size)

    @torch.inference_mode()
    def encode_images(self, frames: np.ndarray) -> torch.Tensor:
        from PIL import Image

        arr = check_frames(frames)
        out = []
        for lo in range(0, arr.shape[0], self.batch_size):
            batch = torch.stack([self.preprocess(Image.fromarray(f)) for f in arr[lo : lo + self.batch_size]])
            out.append(_normalised(self.model.encode_image(batch.to(self.device))))
        return torch.cat(out)

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return _normalised(self.model.encode_text(tokens))


class BackendClipEncoder:
    """The backend's own image/text towers (for Kandinsky 2.2: bigG, the space the Spliter predicts in)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = f"backend:{backend.name}"

    def encode_images(self, frames: np.ndarray) -> torch.Tensor:
        return _normalised(self.backend.encode_frames(check_frames(frames)))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        _, text_embed = self.backend.encode_text(list(texts))
        return _normalised(text_embed)
