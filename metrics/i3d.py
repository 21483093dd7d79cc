"""Inflated 3D ConvNet (Inception-v1 I3D, Carreira & Zisserman 2017) as used for FVD.

Module and parameter names follow the public ``i3d_pretrained_400.pt`` state dict of VideoGPT/TATS
(the piergiaj/pytorch-i3d layout: ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_4b.b1b.bn.running_var``,
``logits.conv3d.bias``, ...), so that file loads with ``strict=True``. The layers reproduce that code:

- every convolution and pooling uses TensorFlow "SAME" padding computed from the input size (the
  extra row/column goes at the end), applied with zeros; pooling inputs are post-ReLU (>= 0), so zero
  padding never changes a maximum;
- BatchNorm eps is 1e-5, the value of the VideoGPT/TATS code that produced the published FVDs with that
  file (TF-Hub's Sonnet layers use 1e-3; pass ``bn_eps`` to change it);
- the head average-pools the final ``(T', H', W')`` map with a ``(2, 7, 7)`` window, stride 1, applies
  the 1x1x1 ``logits`` convolution and averages the logits over the remaining positions.

At 224 px and 16 frames the final map is exactly ``(2, 7, 7)`` and the head is the reference one. The
reference breaks on other sizes (a fixed ``AvgPool3d`` larger than the map); here the window is clipped
to the map and the logits are also averaged over space, so small test resolutions work. Such numbers
are not comparable to 224-px FVDs, which is why the resolution is part of every FVD metric name.

The module is eval-only (no dropout) and scriptable with ``torch.jit.script``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: Output widths (b0, b1a, b1b, b2a, b2b, b3b) of each Inception block, in network order.
INCEPTION_BLOCKS: tuple[tuple[str, int, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
FEATURE_CHANNELS = 1024  # channels of the Mixed_5c output
HEAD_WINDOW = (2, 7, 7)  # the reference AvgPool3d kernel


def tf_same_pad(x: torch.Tensor, kernel: list[int], stride: list[int]) -> torch.Tensor:
    """Zero-pad a (B, C, T, H, W) tensor as TensorFlow "SAME" does for ``kernel`` and ``stride``."""
    pad: list[int] = []
    for d in range(2, -1, -1):  # F.pad lists the last dimension first
        remainder = x.shape[d + 2] % stride[d]
        total = max(kernel[d] - (stride[d] if remainder == 0 else remainder), 0)
        pad.append(total // 2)
        pad.append(total - total // 2)
    return F.pad(x, pad)


class Unit3D(nn.Module):
    """SAME-padded Conv3d, then optional BatchNorm and ReLU (parameter names ``conv3d``, ``bn``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        relu: bool = True,
        batch_norm: bool = True,
        bias: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=0.001) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(tf_same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        if self.relu:
            x = F.relu(x)
        return x


class MaxPool3dSame(nn.Module):
    """Max pooling with TensorFlow "SAME" padding (no parameters)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(tf_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 3x3; pool -> 1x1), concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int], bn_eps: float = 1e-5) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0, bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, w1a, bn_eps=bn_eps)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, w2a, bn_eps=bn_eps)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b, bn_eps=bn_eps)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """I3D: ``forward(x (B, 3, T, H, W) in [-1, 1]) -> (B, num_classes)`` pre-softmax logits."""

    def __init__(self, num_classes: int = 400, in_channels: int = 3, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        blocks = dict((name, InceptionBlock(c_in, widths, bn_eps)) for name, c_in, widths in INCEPTION_BLOCKS)
        self.Mixed_3b = blocks["Mixed_3b"]
        self.Mixed_3c = blocks["Mixed_3c"]
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = blocks["Mixed_4b"]
        self.Mixed_4c = blocks["Mixed_4c"]
        self.Mixed_4d = blocks["Mixed_4d"]
        self.Mixed_4e = blocks["Mixed_4e"]
        self.Mixed_4f = blocks["Mixed_4f"]
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = blocks["Mixed_5b"]
        self.Mixed_5c = blocks["Mixed_5c"]
        self.logits = Unit3D(FEATURE_CHANNELS, num_classes, relu=False, batch_norm=False, bias=True)
        self.head_window = list(HEAD_WINDOW)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The Mixed_5c output (B, 1024, T', H', W'); T' = T/8, H' = H/32 (rounded up)."""
        x = self.MaxPool3d_2a_3x3(self.Conv3d_1a_7x7(x))
        x = self.MaxPool3d_3a_3x3(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)))
        x = self.MaxPool3d_4a_3x3(self.Mixed_3c(self.Mixed_3b(x)))
        x = self.Mixed_4f(self.Mixed_4e(self.Mixed_4d(self.Mixed_4c(self.Mixed_4b(x)))))
        x = self.MaxPool3d_5a_2x2(x)
        return self.Mixed_5c(self.Mixed_5b(x))

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Logits from Mixed_5c maps: (2, 7, 7) average pool (clipped to the map), 1x1x1 conv, mean."""
        window = [min(self.head_window[d], maps.shape[d + 2]) for d in range(3)]
        pooled = F.avg_pool3d(maps, window, stride=1)
        return self.logits(pooled).mean(dim=[2, 3, 4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_maps(x))


class StyleGANVDetector(nn.Module):
    """An I3D behind StyleGAN-V's TorchScript call signature (``i3d_torchscript.pt``).

    ``rescale`` maps 0-255 values to [-1, 1]; ``resize`` resizes (T, H, W) -> (T, size, size)
    trilinearly; ``return_features`` gives the pre-softmax logits, else the softmax probabilities.
    """

    def __init__(self, model: InceptionI3d, size: int = 224) -> None:
        super().__init__()
        self.model = model
        self.size = size

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = True
    ) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], self.size, self.size], mode="trilinear", align_corners=False)
        logits = self.model(x)
        return logits if return_features else torch.softmax(logits, dim=1)


def random_i3d(seed: int = 0, num_classes: int = 400) -> InceptionI3d:
    """An eval-mode I3D with seeded random weights whose activations keep an O(1) scale.

    Convolutions get He-normal weights; BatchNorm gets non-trivial affine parameters and running
    statistics, so that a save/load round trip that dropped any buffer would change the outputs.
    """
    gen = torch.Generator().manual_seed(int(seed))
    model = InceptionI3d(num_classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                module.weight.normal_(0.0, (2.0 / module.weight[0].numel()) ** 0.5, generator=gen)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1, generator=gen)
            elif isinstance(module, nn.BatchNorm3d):
                module.weight.normal_(1.0, 0.1, generator=gen)
                module.bias.normal_(0.0, 0.1, generator=gen)
                module.running_mean.normal_(0.0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
    return model.eval()


def public_state_dict(model: InceptionI3d) -> dict[str, torch.Tensor]:
    """The state dict as the public ``i3d_pretrained_400.pt`` stores it: no ``num_batches_tracked``."""
    return {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def save_state_dict(model: InceptionI3d, path: str | Path) -> Path:
    """Write ``model`` in the VideoGPT/TATS ``i3d_pretrained_400.pt`` format (a plain state dict)."""
    path = Path(path)
    torch.save(public_state_dict(model), path)
    return path


def save_styleganv_torchscript(model: InceptionI3d, path: str | Path, size: int = 224) -> Path:
    """Write ``model`` in the StyleGAN-V ``i3d_torchscript.pt`` format (scripted StyleGANVDetector)."""
    path = Path(path)
    torch.jit.script(StyleGANVDetector(model.eval(), size)).save(str(path))
    return path
