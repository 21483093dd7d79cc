"""Peak GPU memory of generate (Kandinsky 2.2): weights plus the larger of the UNet and MoVQ working sets.

The working sets are live-tensor peaks measured by running the real architectures on the meta device
(:func:`live_peak_bytes`: shapes only, no memory, no compute), so they count every tensor alive at once
but not the CUDA context, the caching allocator's rounding or cuDNN workspaces: :data:`OVERHEAD` and
:data:`CUDA_CONTEXT_BYTES` stand for those. The meta path of attention materialises the attention matrix,
which SDPA on a GPU does not, so the activation figures are upper bounds. Activations grow with the
batch and with the pixel count: the MoVQ's exactly as (size / 512)^2; the UNet's between that and
(size / 512)^4 (its attention; measured 8.2, 38.8, 303 and 3625 MB per image at 128, 256, 512, 1024 px),
so the quadratic scaling is used below 512 px and the quartic above, both over-estimates.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

GIB = 1 << 30
#: Parameters of the real architectures (spliter.backends.kandinsky22 REAL_*_CONFIG; checked in tests).
PARAMETERS: dict[str, int] = {
    "prior": 1_026_225_920,
    "text_encoder": 694_659_840,
    "image_encoder": 1_844_907_264,
    "unet": 1_253_057_288,
    "movq": 67_832_495,
}
_SIDES = {"prior": ("prior", "text_encoder", "image_encoder"), "decoder": ("unet", "movq")}
#: Live activation bytes per generated image at 512 px in fp16 (tests/benchmarks/test_bench_memory.py):
#: the UNet runs each image twice (classifier-free guidance), the MoVQ once.
UNET_BYTES_PER_IMAGE_512 = 303_085_056
MOVQ_BYTES_PER_IMAGE_512 = 673_218_562
OVERHEAD = 1.2  # caching-allocator rounding, fragmentation and cuDNN workspace on top of live tensors
CUDA_CONTEXT_BYTES = GIB // 2  # CUDA context and kernels, resident before any tensor
_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
#: What a "16 GB" card offers to tensors (a T4 or V100-16GB reports 15 GiB, the rest is reserved).
CARD_16GB_BYTES = 15 * GIB


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one generate call: resident weights, each stage's working set, and the estimated peak."""

    weights: int  # parameters of the loaded components
    unet: int  # live activations of one UNet step over decode_batch_size images (CFG pairs)
    movq: int  # live activations of one MoVQ decode over movq_batch_size images
    peak: int  # (weights + larger working set) * OVERHEAD + CUDA context

    def fits(self, capacity_bytes: int) -> bool:
        return self.peak <= capacity_bytes

    def describe(self) -> str:
        return (f"weights {self.weights / GIB:.1f} GiB + max(UNet {self.unet / GIB:.2f}, MoVQ {self.movq / GIB:.2f}) "
                f"GiB, x{OVERHEAD} + context: peak ~{self.peak / GIB:.1f} GiB")


def dtype_bytes(dtype: torch.dtype | str) -> int:
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPE_BYTES:
        raise ValueError(f"backend.dtype must be one of {sorted(_DTYPE_BYTES)}, got {dtype!r}")
    return _DTYPE_BYTES[name]


def estimate_generate_memory(
    dtype: torch.dtype | str = "float16",
    decode_batch_size: int = 4,
    movq_batch_size: int = 2,
    size: int = 512,
    components: Sequence[str] = ("prior", "decoder"),
) -> MemoryEstimate:
    """Estimated peak GPU bytes of generating at `size` px with the backend's memory knobs."""
    if decode_batch_size < 1 or movq_batch_size < 1 or size < 1:
        raise ValueError(f"batch sizes and size must be positive, got {decode_batch_size}, {movq_batch_size}, {size}")
    width = dtype_bytes(dtype)
    weights = width * sum(PARAMETERS[part] for side in components for part in _SIDES[side])
    pixels = (size / 512) ** 2
    unet = round(UNET_BYTES_PER_IMAGE_512 * max(pixels, pixels**2) * width / 2 * decode_batch_size)
    movq = round(MOVQ_BYTES_PER_IMAGE_512 * pixels * width / 2 * movq_batch_size)
    working = max(unet, movq) if "decoder" in components else 0
    return MemoryEstimate(weights, unet, movq, round((weights + working) * OVERHEAD) + CUDA_CONTEXT_BYTES)


class _LivePeak(TorchDispatchMode):
    """Counts the bytes of storages created under it and alive at once (views share their base's)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        # Views and in-place ops return aliases of their inputs (an alias annotation in the schema).
        if any(ret.alias_info is not None for ret in func._schema.returns):
            return out
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                size = tensor.untyped_storage().nbytes()
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(tensor, self._free, size)
        return out

    def _free(self, size: int) -> None:
        self.live -= size


def live_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of tensors alive at once while `fn` runs (inputs and parameters made before are not counted)."""
    tracker = _LivePeak()
    with torch.no_grad(), tracker:
        fn()
    return tracker.peak
