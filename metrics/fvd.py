"""Fréchet Video Distance with a real I3D, from local weight files only (metrics.md §1).

Two public weight files are supported, each with its own protocol name:

- ``videogpt``: ``i3d_pretrained_400.pt``, a state dict for :class:`metrics.i3d.InceptionI3d`
  (VideoGPT / TATS / cd-fvd ``'i3d'``);
- ``styleganv``: ``i3d_torchscript.pt``, StyleGAN-V's TorchScript port of the TF-Hub I3D, called as
  ``model(x, rescale=False, resize=False, return_features=True)`` on [-1, 1] clips.

Preprocessing is done here for both (first ``frames`` frames, resize to ``resolution``, scale to the
value range) so the two differ only in the weights. Features are the 400 time-averaged pre-softmax
Kinetics logits, in float64. FVDs from different protocols must never share a table, so every
protocol parameter that changes the number is part of the metric name.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from metrics.frechet import (
    FeatureStats,
    as_features,
    covariance,
    frechet_bootstrap,
    frechet_distance_from_stats,
    is_reliable,
)
from metrics.i3d import InceptionI3d, random_i3d
from metrics.registry import FRECHET_VERSION, MetricSpec, frechet_spec

I3D_DIM = 400

Weights = Literal["videogpt", "styleganv"]
ResizePolicy = Literal["squash", "short_side_crop"]
ValueRange = Literal["[-1,1]", "[0,1]"]

#: Expected file name and where it can be fetched by hand (never fetched by this code).
WEIGHT_SOURCES: dict[str, tuple[str, str]] = {
    "videogpt": (
        "i3d_pretrained_400.pt",
        "https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt "
        "(a copy is attached to the bytedance/pv3d release v1.0.0)",
    ),
    "styleganv": (
        "i3d_torchscript.pt",
        "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 (StyleGAN-V)",
    ),
}
_RANGE_TOKENS = {"[-1,1]": None, "[0,1]": "range0to1"}
#: Covariance divisor N - ddof of each protocol's reference code: VideoGPT/TATS use the unbiased
#: estimate, StyleGAN-V's FeatureStats.get_mean_cov divides the scatter by N.
PROTOCOL_DDOF: dict[str, int] = {"videogpt": 1, "styleganv": 0}
#: StyleGAN-V's fvd2048_16f: the set size papers report FVD at.
STANDARD_N_MIN = 2048
_TORCHSCRIPT_KWARGS = {"rescale": False, "resize": False, "return_features": True}


class VideoSetError(ValueError):
    """A video set that cannot be scored (too few frames, mixed frame sizes, wrong dtype, empty)."""


class I3DWeightsNotFound(FileNotFoundError):
    """The local I3D weights file is missing."""


class I3DWeightsError(ValueError):
    """A weights file that does not fit the protocol or the architecture."""


@dataclass(frozen=True)
class FVDProtocol:
    """Everything that changes an FVD number (besides N, which is its own column).

    A clip is ``frames`` frames taken every ``stride`` frames of the video as given, from its first
    frame: stride 1 (consecutive frames at the source rate) is the VideoGPT/StyleGAN-V protocol, so
    videos should be handed over at their source rate. The covariance divisor follows the weights'
    reference code (:data:`PROTOCOL_DDOF`).

    "Reliable" means the number can be compared with another of the same name: both sets hold at least
    ``n_min`` videos (and more than 400, below which the covariance is singular). FD is biased upwards
    by about Tr(S1)/N1 + Tr(S2)/N2, so two FVDs of different N differ even for the same model; at
    N = 401 the estimate for a known Gaussian pair in 400-d is about twice the true value (issue 12),
    at 2048, the StyleGAN-V convention (fvd2048_16f) papers report, the bias is small against model
    differences. ``n_min`` never changes the number, only the flag.
    """

    weights: Weights = "videogpt"  # which public I3D file (and its reference code's ddof)
    frames: int = 16  # clip length in frames fed to the I3D
    resolution: int = 224  # square input size of the I3D
    resize: ResizePolicy = "squash"  # how a non-square frame becomes square
    value_range: ValueRange = "[-1,1]"  # pixel range fed to the network
    stride: int = 1  # take every stride-th frame (1: consecutive frames at the source rate)
    n_min: int = STANDARD_N_MIN  # fewest videos per set for a reliable row

    @property
    def ddof(self) -> int:
        """Covariance divisor N - ddof of the weights' reference implementation."""
        return PROTOCOL_DDOF[self.weights]

    @property
    def span(self) -> int:
        """Source frames a clip covers: (frames - 1) * stride + 1."""
        return (self.frames - 1) * self.stride + 1

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_SOURCES:
            raise ValueError(f"FVD weights must be one of {sorted(WEIGHT_SOURCES)}, got {self.weights!r}")
        if self.resize not in ("squash", "short_side_crop"):
            raise ValueError(f"FVD resize must be 'squash' or 'short_side_crop', got {self.resize!r}")
        if self.value_range not in _RANGE_TOKENS:
            raise ValueError(f"FVD value_range must be one of {sorted(_RANGE_TOKENS)}, got {self.value_range!r}")
        # I3D halves time three times and space five times; below these it has nothing to pool.
        if self.frames < 8 or self.resolution < 32:
            raise ValueError(f"FVD needs frames >= 8 and resolution >= 32, got {self.frames}, {self.resolution}")
        if int(self.stride) < 1 or int(self.n_min) < 2:
            raise ValueError(f"FVD needs stride >= 1 and n_min >= 2, got stride={self.stride}, n_min={self.n_min}")

    def name_for(self, extractor: str) -> str:
        """``fvd[<extractor>,<frames>f,stride<k>,<resolution>,<resize>(,<range>)]``; [-1,1] is implicit."""
        return self.spec_for(extractor).name

    def spec_for(self, extractor: str) -> MetricSpec:
        params: list[object] = [extractor, f"{self.frames}f", f"stride{self.stride}", self.resolution, self.resize]
        if _RANGE_TOKENS[self.value_range]:
            params.append(_RANGE_TOKENS[self.value_range])
        return frechet_spec("fvd", *params, description="Fréchet video distance of I3D Kinetics-400 logits")

    @property
    def metric_name(self) -> str:
        """The name with the protocol's real weights, e.g. ``fvd[i3d-videogpt,16f,stride1,224,squash]``."""
        return self.name_for(f"i3d-{self.weights}")


def expected_weights(protocol: FVDProtocol) -> str:
    """One line naming the protocol's weight file and its source."""
    name, source = WEIGHT_SOURCES[protocol.weights]
    return f"{name} (protocol '{protocol.weights}'; download it by hand from {source})"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_torchscript(path: str | Path) -> bool:
    """TorchScript archives hold ``constants.pkl`` and ``code/``; ``torch.save`` archives do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


# --- video sets ----------------------------------------------------------------------------------


def check_video_set(videos: Sequence[np.ndarray] | np.ndarray, frames: int | None, label: str) -> tuple[int, int]:
    """Validate uint8 (F, H, W, 3) videos sharing H x W, each with >= ``frames`` frames; returns (H, W).

    ``frames=None`` only asks for at least one frame. Errors name the set and the video index.
    """
    if len(videos) == 0:
        raise VideoSetError(f"{label}: empty video set")
    sizes: dict[tuple[int, int], list[int]] = {}
    for i, video in enumerate(videos):
        arr = np.asarray(video)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise VideoSetError(
                f"{label}, video {i}: expected uint8 (F, H, W, 3) frames, got {arr.dtype} {arr.shape}"
            )
        need = 1 if frames is None else frames
        if arr.shape[0] < need:
            raise VideoSetError(
                f"{label}, video {i}: has {arr.shape[0]} frames, the protocol needs {need}; "
                "generate or sample longer clips"
            )
        sizes.setdefault((arr.shape[1], arr.shape[2]), []).append(i)
    if len(sizes) > 1:
        listing = "; ".join(f"{h}x{w}: videos {idx[:5]}" for (h, w), idx in sizes.items())
        raise VideoSetError(f"{label}: videos must share one frame size, found {listing}")
    return next(iter(sizes))


def resize_frames(x: torch.Tensor, resolution: int, policy: ResizePolicy) -> torch.Tensor:
    """Bilinear (no antialias, as TF ``resize_bilinear``) resize of (N, C, H, W) to a square.

    ``squash`` resizes straight to ``resolution`` (TF reference, TATS); ``short_side_crop`` scales the
    shorter side to ``resolution``, the longer to the ceiling of its scaled length (VideoGPT's
    ``preprocess_single``), and centre-crops. Equal on square input.
    """
    h, w = x.shape[-2:]
    size = (resolution, resolution) if policy == "squash" else short_side_size(h, w, resolution)
    if (h, w) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    top, left = (x.shape[-2] - resolution) // 2, (x.shape[-1] - resolution) // 2
    return x[..., top : top + resolution, left : left + resolution]


def short_side_size(h: int, w: int, resolution: int) -> tuple[int, int]:
    """(H', W') with the shorter side at ``resolution`` and the longer at the ceiling of its scaled length."""
    if h < w:
        return resolution, math.ceil(w * resolution / h)
    return math.ceil(h * resolution / w), resolution


def preprocess_videos(videos: Sequence[np.ndarray] | np.ndarray, protocol: FVDProtocol) -> torch.Tensor:
    """uint8 (N, F, H, W, 3) -> float32 (N, 3, frames, R, R) in the protocol's value range."""
    clips = np.stack([np.asarray(v)[: protocol.span : protocol.stride] for v in videos])
    n, t, h, w, _ = clips.shape
    x = torch.from_numpy(clips).reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float()
    x = resize_frames(x, protocol.resolution, protocol.resize)
    x = x / 127.5 - 1.0 if protocol.value_range == "[-1,1]" else x / 255.0
    r = protocol.resolution
    return x.reshape(n, t, 3, r, r).permute(0, 2, 1, 3, 4).contiguous()


# --- feature extraction --------------------------------------------------------------------------


class I3DFeatureExtractor:
    """Videos -> (N, 400) float64 I3D logits under one protocol, in batches, without gradients."""

    dim = I3D_DIM

    def __init__(
        self,
        model: torch.nn.Module,
        protocol: FVDProtocol,
        *,
        tag: str,
        weights_id: str,
        call_kwargs: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model.to(device).eval()
        self.protocol = protocol
        self.tag = tag
        self.weights_id = weights_id
        self.call_kwargs = dict(call_kwargs or {})
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        protocol: FVDProtocol = FVDProtocol(),
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
    ) -> I3DFeatureExtractor:
        """Load ``i3d_pretrained_400.pt`` (state dict) or ``i3d_torchscript.pt`` (TorchScript).

        The format is read from the file and must match ``protocol.weights``; nothing is downloaded.
        """
        path = Path(path)
        if path.is_dir():
            path = path / WEIGHT_SOURCES[protocol.weights][0]
        if not path.is_file():
            raise I3DWeightsNotFound(f"{path}: I3D weights not found; expected {expected_weights(protocol)}")
        scripted = is_torchscript(path)
        if scripted != (protocol.weights == "styleganv"):
            found = "a TorchScript module (StyleGAN-V format)" if scripted else "a state dict (VideoGPT/TATS format)"
            raise I3DWeightsError(
                f"{path}: is {found} but protocol weights={protocol.weights!r} expects "
                f"{WEIGHT_SOURCES[protocol.weights][0]}; set the protocol to match the file"
            )
        if scripted:
            model = torch.jit.load(str(path), map_location=device)
            kwargs: Mapping[str, Any] = _TORCHSCRIPT_KWARGS
        else:
            model = _load_state_dict_model(path)
            kwargs = {}
        return cls(model, protocol, tag=f"i3d-{protocol.weights}", weights_id=file_sha256(path),
                   call_kwargs=kwargs, device=device, batch_size=batch_size)

    @classmethod
    def random(
        cls,
        seed: int = 0,
        protocol: FVDProtocol = FVDProtocol(),
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
    ) -> I3DFeatureExtractor:
        """A seeded random-weight I3D: exercises the protocol; its numbers are never a quality score."""
        return cls(random_i3d(seed), protocol, tag=f"i3d-random{seed}", weights_id=f"random-seed{seed}",
                   device=device, batch_size=batch_size)

    def features(self, videos: Sequence[np.ndarray] | np.ndarray, label: str = "video set") -> np.ndarray:
        """(N, 400) float64 logits of uint8 (F, H, W, 3) videos (``protocol.frames`` frames, every ``stride``)."""
        check_video_set(videos, self.protocol.span, label)
        out = []
        with torch.no_grad():
            for start in range(0, len(videos), self.batch_size):
                x = preprocess_videos(videos[start : start + self.batch_size], self.protocol).to(self.device)
                logits = self.model(x, **self.call_kwargs)
                out.append(logits.detach().to("cpu", torch.float64).numpy())
        feats = np.concatenate(out)
        if feats.shape != (len(videos), self.dim):
            raise I3DWeightsError(f"{self.tag}: the model returned {feats.shape}, expected ({len(videos)}, 400)")
        return as_features(feats, f"{self.tag} features of {label}", min_samples=1)

    __call__ = features


def read_state_dict(path: Path, error: type[Exception], fix: str) -> Mapping[str, torch.Tensor]:
    """The tensors of a weights file (tensors only: weights_only), or `error` naming the file and `fix`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise error(f"{path}: cannot be read as a state dict ({err}); {fix}") from err
    if not isinstance(state, Mapping):
        raise error(f"{path}: holds a {type(state).__name__}, not a state dict; {fix}")
    return state


def _load_state_dict_model(path: Path) -> InceptionI3d:
    state = read_state_dict(path, I3DWeightsError, "re-download the file")
    model = InceptionI3d(I3D_DIM)
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise I3DWeightsError(
            f"{path}: not an InceptionI3d(400) state dict; missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.load_state_dict(dict(state), strict=True)
    return model.eval()


def _key_mismatch(model: torch.nn.Module, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    # num_batches_tracked is absent from the public file; BatchNorm fills it in when loading.
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    return sorted(expected - given), sorted(given - expected)


# --- scoring -------------------------------------------------------------------------------------


class FVDScorer:
    """FVD of generated videos against reference videos, features or cached statistics.

    ``name``, ``dim`` and ``features(videos)`` satisfy :class:`metrics.suite.FeatureScorer`.
    """

    dim = I3D_DIM
    version = FRECHET_VERSION

    @property
    def ddof(self) -> int:
        """Covariance divisor of the protocol, for callers that compute the distance themselves."""
        return self.protocol.ddof

    def __init__(self, extractor: I3DFeatureExtractor, protocol: FVDProtocol) -> None:
        if extractor.protocol != protocol:
            raise ValueError(f"extractor protocol {extractor.protocol} differs from the scorer's {protocol}")
        self.extractor = extractor
        self.protocol = protocol
        self.spec = protocol.spec_for(extractor.tag)
        self.name = self.spec.name

    def features(self, videos: Sequence[np.ndarray] | np.ndarray, label: str = "video set") -> np.ndarray:
        return self.extractor(videos, label)

    def cache_key(self, key_parts: Mapping[str, Any] | Sequence[Any]) -> str:
        """sha256 of protocol + weights identity + reference-set identity + code version."""
        identity = {
            "protocol": asdict(self.protocol),
            "extractor": self.name,
            "weights": self.extractor.weights_id,
            "set": key_parts,
            "version": self.version,
        }
        text = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def reference_stats(
        self,
        source: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
        cache_dir: str | Path,
        key_parts: Mapping[str, Any] | Sequence[Any],
    ) -> FeatureStats:
        """Statistics of a reference set, read from ``cache_dir`` when computed before.

        ``source`` is the reference videos, their (N, 400) features, or an iterable of batches of
        either (e.g. a generator reading clips from disk): batches are folded into running float64
        statistics one at a time (:meth:`accumulate`), so memory does not grow with the number of
        clips. ``key_parts`` identify the set (dataset, video ids, clip sampling, ...): a different
        identity is a different file. A cached file is returned without touching ``source``.
        """
        key = self.cache_key(key_parts)
        path = Path(cache_dir) / f"fvd-ref-{key}.npz"
        if path.is_file():
            stats = FeatureStats.load(path)
            if stats.meta.get("cache_key") != key or stats.dim != self.dim:
                raise ValueError(f"{path}: cached statistics belong to another set or protocol; delete the file")
            return stats
        meta = {"cache_key": key, "metric": self.name, "protocol": asdict(self.protocol),
                "weights": self.extractor.weights_id, "set": key_parts}
        batches = [source] if isinstance(source, (np.ndarray, torch.Tensor, Sequence)) else source
        stats = self.accumulate(batches, json.loads(json.dumps(meta, default=str)))
        stats.save(path)  # atomic, with a unique temporary name: concurrent writers never expose a partial file
        return stats

    def accumulate(
        self, batches: Iterable[Any], meta: Mapping[str, Any] | None = None, label: str = "reference set"
    ) -> FeatureStats:
        """Running statistics of an iterable of batches (videos or (n, 400) features), one batch in memory."""
        stats = FeatureStats(self.dim, meta)
        for i, batch in enumerate(batches):
            stats.update(_as_feature_source(batch, self, f"{label}, batch {i}"))
        if stats.n < 2:
            raise VideoSetError(f"{label}: need at least 2 videos for reference statistics, got {stats.n}")
        return stats

    def score(
        self,
        gen_videos: Sequence[np.ndarray] | np.ndarray,
        reference: FeatureStats | Sequence[np.ndarray] | np.ndarray,
        *,
        n_boot: int = 200,
        seed: int = 0,
        level: float = 0.95,
    ) -> dict[str, Any]:
        """One set-level score row; the basic bootstrap interval resamples both sets (metrics.frechet).

        ``reliable`` is True only when both sets hold at least ``protocol.n_min`` (and more than 400) videos.
        """
        gen = self.features(gen_videos, "generated set")
        if gen.shape[0] < 2:
            raise VideoSetError(f"generated set: FVD needs at least 2 videos, got {gen.shape[0]}")
        ref = reference if isinstance(reference, FeatureStats) else FeatureStats.from_features(
            _as_feature_source(reference, self, "reference set"))
        if ref.dim != self.dim or ref.n < 2:
            raise VideoSetError(f"reference statistics: need dim {self.dim} and n >= 2, got {ref.dim}, {ref.n}")
        ddof = self.protocol.ddof
        value = frechet_distance_from_stats(gen.mean(0), covariance(gen, ddof), ref.mean, ref.covariance(ddof))
        low, high = frechet_bootstrap(gen, ref, n_boot=n_boot, seed=seed, level=level, ddof=ddof)
        n = gen.shape[0]
        reliable = is_reliable(min(n, ref.n), self.dim) and min(n, ref.n) >= self.protocol.n_min
        extra = {"ci_low": low, "ci_high": high, "n_boot": n_boot, "level": level, "seed": seed,
                 "n_reference": int(ref.n), "dim": self.dim, "protocol": asdict(self.protocol),
                 "weights": self.extractor.weights_id}
        return self.spec.row(value, n, reliable=reliable, extra=extra)


def _as_feature_source(source: Any, scorer: FVDScorer, label: str = "reference set") -> np.ndarray:
    """(N, 400) features from either features (2-D float) or videos (uint8 clips)."""
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray) and source.ndim == 2:
        feats = as_features(source, f"{label} features")
        if feats.shape[1] != scorer.dim:
            raise VideoSetError(f"{label} features have dimension {feats.shape[1]}, I3D gives {scorer.dim}")
        return feats
    return scorer.features(source, label)
