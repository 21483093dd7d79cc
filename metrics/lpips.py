"""LPIPS (Zhang et al. 2018) per frame pair, with the backbone read from a local torchvision weights file.

The network is torchmetrics' LPIPS module (``_LPIPS``: ImageNet scaling layer, the backbone's feature slices,
unit-normalised channel differences, the shipped linear heads ``lpips_models/<net>.pth``, spatial mean, sum
over layers). torchmetrics would fetch the backbone's ImageNet weights from the network; here it is built
with random weights (``pnet_rand``, torchvision's ``weights=None``) and then loaded from the file the study
names, so nothing is ever downloaded. The file is torchvision's own state dict (``features.*``; the
``classifier.*`` keys of the full file are not used by LPIPS and are ignored):

- ``alex``: alexnet, ``alexnet-owt-7be5be79.pth``, sha256 7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02;
- ``vgg``: vgg16, ``vgg16-397923af.pth``, sha256 397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0;
- ``squeeze``: squeezenet1_1, ``squeezenet1_1-b8a52dc0.pth``, sha256 starting with b8a52dc0.

torchvision names each file by the first 8 hex digits of its sha256 (``Backbone.sha256_prefix``).

Frames are uint8 (F, H, W, 3) and are mapped to LPIPS's [-1, 1] input range as ``x / 127.5 - 1``. Lower is
better: 0 for identical frames. Per pair of videos, ``lpips`` is the mean over frames ``first``.. (as the other
paired metrics, metrics.paired) with ``extra.per_frame``, and ``lpips_slope`` the least-squares slope of the
per-frame values (positive when the video drifts away from the truth along the horizon); both rows carry the
net and the weights' sha256 in ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics.fvd import file_sha256, read_state_dict
from metrics.paired import check_pair, slope
from metrics.registry import MetricSpec, protocol_name

LPIPS_VERSION = "1"
DOWNLOAD_PAGE = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class Backbone:
    architecture: str  # torchvision.models constructor
    file: str  # torchvision's file name; its 8 hex digits are the start of the file's sha256
    min_size: int  # smallest square frame the feature slices accept (each pooling needs a non-empty output)

    @property
    def sha256_prefix(self) -> str:
        return self.file.rsplit("-", 1)[1].split(".")[0]

    def describe(self) -> str:
        return f"torchvision's {self.architecture} state dict ({self.file} from {DOWNLOAD_PAGE})"


BACKBONES: dict[str, Backbone] = {
    "alex": Backbone("alexnet", "alexnet-owt-7be5be79.pth", 31),
    "vgg": Backbone("vgg16", "vgg16-397923af.pth", 16),
    "squeeze": Backbone("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", 17),
}
LPIPS_NETS: tuple[str, ...] = tuple(BACKBONES)

# base name -> (higher is better, description)
LPIPS_METRICS: dict[str, tuple[bool, str]] = {
    "lpips": (False, "mean per-frame LPIPS against the true video (0 = identical)"),
    "lpips_slope": (False, "least-squares slope of per-frame LPIPS (per frame); positive when it drifts away"),
}


class LPIPSWeightsError(ValueError):
    """A backbone weights file that is missing, unreadable or of another architecture."""


def backbone(net: str) -> Backbone:
    if net not in BACKBONES:
        raise LPIPSWeightsError(f"LPIPS net must be one of {list(LPIPS_NETS)}, got {net!r}")
    return BACKBONES[net]


def expected_features(net: str) -> dict[str, torch.Size]:
    """Key (without ``features.``) -> shape of the backbone's feature layers; built on the meta device (no init)."""
    import torchvision

    with torch.device("meta"):
        features = getattr(torchvision.models, backbone(net).architecture)(weights=None).features
    return {key: value.shape for key, value in features.state_dict().items()}


def read_backbone(path: str | Path, net: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision state dict file (prefix removed), checked against ``net``."""
    path, spec = Path(path).expanduser(), backbone(net)
    wanted = f"expected {spec.describe()} for LPIPS net '{net}'"
    if not path.is_file():
        raise LPIPSWeightsError(f"{path}: LPIPS backbone weights not found; {wanted}")
    state = read_state_dict(path, LPIPSWeightsError, wanted)
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    foreign = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    expected = expected_features(net)
    missing, unexpected = sorted(set(expected) - set(features)), sorted(set(features) - set(expected))
    wrong = sorted(k for k in set(expected) & set(features) if tuple(features[k].shape) != tuple(expected[k]))
    if missing or unexpected or foreign or wrong:
        found = "; ".join(part for part in (
            missing and f"missing features.{missing[0]} (+{len(missing) - 1} more)",
            unexpected and f"unexpected features.{unexpected[0]}",
            foreign and f"unexpected {foreign[0]}",
            wrong and f"features.{wrong[0]} has shape {tuple(features[wrong[0]].shape)}, not {tuple(expected[wrong[0]])}",
        ) if part)  # fmt: skip
        raise LPIPSWeightsError(f"{path}: not the {spec.architecture} backbone ({found}); {wanted}")
    return features


def load_backbone(model: nn.Module, features: Mapping[str, torch.Tensor]) -> None:
    """Load torchvision ``features`` tensors into the LPIPS network's slices, which hold those layers by index."""
    used: set[str] = set()
    for part in model.net.modules():
        if not isinstance(part, nn.Sequential):
            continue
        for index, layer in part.named_children():
            own = {k[len(index) + 1 :]: v for k, v in features.items() if k.startswith(f"{index}.")}
            layer.load_state_dict(own, strict=True)
            used.update(f"{index}.{k}" for k in own)
    if used != set(features):  # every parameterised layer sits in a slice; a torchmetrics change would break that
        raise LPIPSWeightsError(f"LPIPS slices do not use the backbone layers {sorted(set(features) - used)[:3]}")


def lpips_network(net: str) -> nn.Module:
    """torchmetrics' eval-mode LPIPS module: shipped linear heads, random backbone (torchvision weights=None)."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    return _NoTrainLpips(pretrained=True, net=net, pnet_rand=True).eval()


def to_lpips_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float32 (F, 3, H, W) in LPIPS's [-1, 1] range (0 -> -1, 255 -> 1)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


class FrameLPIPS:
    """LPIPS of frame pairs with one net and one backbone file; ``weights_id`` is the file's sha256."""

    def __init__(self, model: nn.Module, net: str, weights_id: str, *, device: str | torch.device = "cpu",
                 batch_size: int = 32) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model.to(device).eval()
        self.net, self.weights_id = net, weights_id
        self.device, self.batch_size = torch.device(device), batch_size

    @classmethod
    def from_file(cls, path: str | Path, net: str = "alex", *, device: str | torch.device = "cpu",
                  batch_size: int = 32) -> FrameLPIPS:  # fmt: skip
        """The scorer with the backbone of ``path`` (a torchvision state dict of ``net``'s architecture)."""
        features = read_backbone(path, net)
        model = lpips_network(net)
        load_backbone(model, features)
        return cls(model, net, file_sha256(Path(path).expanduser()), device=device, batch_size=batch_size)

    def frames(self, generated: Any, truth: Any) -> np.ndarray:
        """(F,) float64 LPIPS of each frame pair of two uint8 (F, H, W, 3) videos of one shape."""
        gen, true = check_pair(generated, truth, 0)
        if min(gen.shape[1:3]) < backbone(self.net).min_size:
            raise LPIPSWeightsError(f"LPIPS '{self.net}' needs frames of at least {backbone(self.net).min_size} px, "
                                    f"got {gen.shape[1]}x{gen.shape[2]}; generate larger frames or pick another net")
        out = []
        with torch.no_grad():
            for start in range(0, len(gen), self.batch_size):
                a, b = (to_lpips_input(v[start : start + self.batch_size]).to(self.device) for v in (gen, true))
                out.append(self.model(a, b).reshape(-1).to("cpu", torch.float64))
        return torch.cat(out).numpy()


def lpips_spec(base: str, net: str, size: int, first: int = 1, protocol: tuple[str, ...] = ()) -> MetricSpec:
    """``lpips[<net>,<size>px,frames<first>+,<protocol>...]`` (and ``lpips_slope[...]``)."""
    if base not in LPIPS_METRICS:
        raise LPIPSWeightsError(f"unknown LPIPS metric {base!r}; choose one of {', '.join(LPIPS_METRICS)}")
    higher, description = LPIPS_METRICS[base]
    name = protocol_name(base, net, f"{size}px", f"frames{first}+", *protocol)
    return MetricSpec(name, "video", higher, LPIPS_VERSION, description)


def lpips_rows(scorer: FrameLPIPS, generated: Any, truth: Any, first: int = 1, protocol: tuple[str, ...] = (),
               **ids: Any) -> list[dict[str, Any]]:  # fmt: skip
    """The ``lpips`` and ``lpips_slope`` rows of one video pair over frames ``first``.."""
    gen, true = check_pair(generated, truth, first)
    values = scorer.frames(gen, true)[first:]
    extra = {"net": scorer.net, "weights": scorer.weights_id}
    n, size = len(values), gen.shape[1]
    return [
        lpips_spec("lpips", scorer.net, size, first, protocol).row(
            float(values.mean()), n, extra={**extra, "per_frame": values.tolist()}, **ids),
        lpips_spec("lpips_slope", scorer.net, size, first, protocol).row(slope(values), n, extra=extra, **ids),
    ]  # fmt: skip
