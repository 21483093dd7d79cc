"""Frame FID: torchmetrics ``FrechetInceptionDistance`` over every frame of every video (metrics.md §3).

The feature extractor is either torch-fidelity's Inception-v3 loaded from a LOCAL
``weights-inception-2015-12-05-6726825d.pth`` (never downloaded: a missing file is an error naming it
and its source) or any ``nn.Module`` with a ``num_features`` attribute that maps uint8 (B, 3, H, W)
frames to (B, num_features) features. The number is torchmetrics' own; ``frame_features`` exposes the
same features so that :func:`metrics.frechet.frechet_distance` can cross-check it.

Frames of one video are correlated, so N frames overstate the effective sample size: the row reports
frames (``n``) and videos (``extra``), and ``reliable`` needs more frames than feature dimensions in
both sets (2048 for Inception pool3).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics.frechet import as_features, is_reliable
from metrics.fvd import check_video_set
from metrics.registry import FRECHET_VERSION, MetricSpec, frechet_spec

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FEATURES = (64, 192, 768, 2048)


class InceptionWeightsNotFound(FileNotFoundError):
    """The local torch-fidelity Inception weights file is missing."""


@dataclass(frozen=True)
class FIDProtocol:
    """What changes a frame-FID number besides N.

    ``feature``: Inception layer width (2048 = pool3, the standard). ``antialias=False`` is
    torch-fidelity's TF1-compatible resize to 299 (classic FID); torchmetrics >= 1.8 defaults to True,
    which gives different numbers. ``frames``: the first frames of each video (None = all).
    """

    feature: int = 2048
    antialias: bool = False
    frames: int | None = None

    def __post_init__(self) -> None:
        if self.feature not in INCEPTION_FEATURES:
            raise ValueError(f"FID feature must be one of {INCEPTION_FEATURES}, got {self.feature}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"FID frames must be positive or None, got {self.frames}")

    def spec_for(self, extractor: str, resize: str) -> MetricSpec:
        frames = "allf" if self.frames is None else f"{self.frames}f"
        return frechet_spec("fid", extractor, resize, frames, description="Fréchet distance of per-frame features")

    @property
    def inception_resize(self) -> str:
        return "299-antialias" if self.antialias else "299-tf1"


def inception_weights_path(path: str | Path) -> Path:
    """The weights file itself, or the expected file inside a directory; raises if it is not there."""
    path = Path(path)
    if path.is_dir():
        path = path / INCEPTION_WEIGHTS_FILE
    if not path.is_file():
        raise InceptionWeightsNotFound(
            f"{path}: Inception weights not found; place {INCEPTION_WEIGHTS_FILE} there "
            f"(download it by hand from {INCEPTION_WEIGHTS_URL})"
        )
    return path


def _fid_class() -> type:
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance


class FrameFID:
    """Frame FID of a generated video set against a reference video set (one score row)."""

    version = FRECHET_VERSION

    def __init__(
        self,
        metric: Any,
        spec: MetricSpec,
        protocol: FIDProtocol,
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.metric = metric.to(device)
        self.spec = spec
        self.name = spec.name
        self.protocol = protocol
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.dim = int(metric.real_features_sum.shape[0])

    @classmethod
    def from_weights(
        cls,
        weights_path: str | Path,
        protocol: FIDProtocol = FIDProtocol(),
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> FrameFID:
        """torch-fidelity's Inception-v3 from a local weights file (or a directory holding it)."""
        path = inception_weights_path(weights_path)
        if importlib.util.find_spec("torch_fidelity") is None:
            raise ModuleNotFoundError("frame FID with Inception weights needs torch-fidelity (pip install torch-fidelity)")
        metric = _fid_class()(feature=protocol.feature, feature_extractor_weights_path=str(path),
                              antialias=protocol.antialias)
        spec = protocol.spec_for(f"inception-{protocol.feature}", protocol.inception_resize)
        return cls(metric, spec, protocol, batch_size=batch_size, device=device)

    @classmethod
    def random(cls, seed: int = 0, protocol: FIDProtocol = FIDProtocol(), *, device: str | torch.device = "cpu") -> FrameFID:
        """A seeded random frame encoder (16 features): exercises the protocol; never a quality number."""
        return cls.from_module(RandomFrameEncoder(seed), f"random{seed}", protocol, device=device)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        name: str,
        protocol: FIDProtocol = FIDProtocol(),
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> FrameFID:
        """Any frame encoder with ``num_features``: uint8 (B, 3, H, W) -> (B, num_features).

        ``name`` identifies the encoder and its weights in the metric name; frames reach it at their
        own size (resize token ``native``). ``protocol.feature`` and ``antialias`` do not apply.
        """
        if not isinstance(getattr(module, "num_features", None), int):
            raise ValueError(f"frame encoder {name!r} needs an int num_features attribute (its output width)")
        metric = _fid_class()(feature=module.eval())
        return cls(metric, protocol.spec_for(name, "native"), protocol, batch_size=batch_size, device=device)

    def _frame_batches(self, videos: Sequence[np.ndarray] | np.ndarray, label: str):
        """uint8 (B, 3, H, W) tensors over the first ``protocol.frames`` frames of every video."""
        check_video_set(videos, self.protocol.frames, label)
        pending: list[np.ndarray] = []  # streamed video by video: a whole set of frames may not fit in memory
        for video in videos:
            pending.extend(np.asarray(video)[: self.protocol.frames])
            while len(pending) >= self.batch_size:
                chunk, pending = pending[: self.batch_size], pending[self.batch_size :]
                yield torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).to(self.device)
        if pending:
            yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).to(self.device)

    def frame_features(self, videos: Sequence[np.ndarray] | np.ndarray, label: str = "video set") -> np.ndarray:
        """(total frames, dim) float64 features from the metric's own extractor, as ``update`` sees them."""
        with torch.no_grad():
            feats = [self.metric.inception(batch).reshape(batch.shape[0], -1).double().cpu().numpy()
                     for batch in self._frame_batches(videos, label)]
        return as_features(np.concatenate(feats), f"{self.name} features of {label}", min_samples=1)

    def score(
        self,
        gen_videos: Sequence[np.ndarray] | np.ndarray,
        ref_videos: Sequence[np.ndarray] | np.ndarray,
    ) -> dict[str, Any]:
        """One set-level row: torchmetrics FID between all generated and all reference frames."""
        self.metric.reset()
        counts = {}
        with torch.no_grad():
            for real, videos, label in ((True, ref_videos, "reference set"), (False, gen_videos, "generated set")):
                counts[real] = 0
                for batch in self._frame_batches(videos, label):
                    self.metric.update(batch, real=real)
                    counts[real] += batch.shape[0]
            if min(counts.values()) < 2:
                raise ValueError(f"{self.name}: needs at least 2 frames per set, got {counts}")
            value = float(self.metric.compute())
        if not np.isfinite(value):
            raise ArithmeticError(f"{self.name}: torchmetrics returned {value}; check the frames and features")
        n_gen, n_ref = counts[False], counts[True]
        reliable = is_reliable(min(n_gen, n_ref), self.dim)
        extra = {"n_videos": len(gen_videos), "n_reference_frames": n_ref, "n_reference_videos": len(ref_videos),
                 "dim": self.dim, "protocol": asdict(self.protocol),
                 "note": "n counts frames; frames of one video are correlated"}
        return self.spec.row(value, n_gen, reliable=reliable, extra=extra)


class RandomFrameEncoder(nn.Module):
    """uint8 (B, 3, H, W) frames -> (B, 16) features of a seeded random convolution, averaged over space."""

    num_features = 16

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, self.num_features, 5, stride=2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) / 8.0)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(frames.float() / 255.0)).mean(dim=(2, 3))
