"""Frame-paired ground-truth metrics: a generated video against the true video it should reproduce.

Both videos are uint8 (F, H, W, 3) of the same shape, frame k of one paired with frame k of the other (the
generation started from the true video's first frame, or from a prior, on the true video's time grid).
Per pair of videos:

* ``psnr`` per frame, ``10 log10(255² / MSE)`` over all pixels and channels (torchmetrics functional, data
  range 255), capped at ``PSNR_CAP`` dB for identical frames so that no score is infinite; ``ssim`` per frame
  (torchmetrics functional: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 255, channels
  averaged). The row value is the mean over the scored frames; ``extra.per_frame`` holds the list.
* ``psnr_slope`` / ``ssim_slope``: the least-squares slope of the per-frame values against the frame index
  (units per frame); negative when quality decays along the horizon.
* ``motion_ratio``: mean absolute consecutive-frame difference of the generated video over that of the true
  video (1 = as much pixel motion as the truth, 0 = frozen); a counterweight, never ranked.
* ``change_cosine``: per frame k, the cosine between the generated change ``g_k - g_0`` and the true change
  ``t_k - t_0`` (flattened pixels); 1 when the video changes where and how the truth does, 0 for a frozen
  video, and at most about 0.5 for a shape that moves the other way (only the vacated pixels agree).

Frame 0 is skipped by default (``first=1``): from a true start it is the true frame itself. The frames scored
are named in the protocol (``frames1+``), with the frame size (``32px``). LPIPS (metrics.lpips) is scored only
when the study names a local backbone weights file (``metrics.paired.lpips``); nothing is ever downloaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metrics.clip import EmbeddingError, check_frames
from metrics.registry import MetricSpec, protocol_name

PAIRED_VERSION = "1"
PSNR_CAP = 100.0  # dB; the PSNR of an MSE of 255² · 1e-10, reported for identical frames
_MIN_MSE = 255.0**2 * 10 ** (-PSNR_CAP / 10)

# base name -> (higher is better, ranked, description)
PAIRED_METRICS: dict[str, tuple[bool, bool, str]] = {
    "psnr": (True, True, "mean per-frame PSNR (dB) against the true video"),
    "ssim": (True, True, "mean per-frame SSIM against the true video"),
    "psnr_slope": (True, True, "least-squares slope of per-frame PSNR (dB per frame)"),
    "ssim_slope": (True, True, "least-squares slope of per-frame SSIM (per frame)"),
    "change_cosine": (True, True, "mean cosine of the generated and the true change from frame 0"),
    "motion_ratio": (True, False, "pixel motion of the generated video over that of the true video"),
}


def check_pair(generated: Any, truth: Any, first: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Both videos as uint8 (F,H,W,3) arrays of one shape; raises naming what differs."""
    gen, true = check_frames(generated, "generated video"), check_frames(truth, "true video")
    if gen.shape != true.shape:
        raise EmbeddingError(
            f"paired metrics need the generated and the true video in one shape, got {gen.shape} and {true.shape}; "
            "generate on the true video's frame count and size"
        )
    if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < gen.shape[0]:
        raise EmbeddingError(f"first frame to score must be an integer in [0, {gen.shape[0]}), got {first!r}")
    return gen, true


def _nchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).double()


def frame_psnr(generated: Any, truth: Any) -> np.ndarray:
    """(F,) PSNR in dB per frame pair, capped at PSNR_CAP."""
    gen, true = check_pair(generated, truth, 0)
    mse = ((_nchw(gen) - _nchw(true)) ** 2).mean(dim=(1, 2, 3)).clamp_min(_MIN_MSE)
    # torchmetrics computes exactly this; calling it per frame with the same floor keeps the cap explicit.
    from torchmetrics.functional.image import peak_signal_noise_ratio

    equal = mse <= _MIN_MSE
    values = peak_signal_noise_ratio(_nchw(gen), _nchw(true), data_range=255.0, reduction="none", dim=(1, 2, 3))
    return torch.where(equal, torch.full_like(mse, PSNR_CAP), values.double()).numpy()


def frame_ssim(generated: Any, truth: Any) -> np.ndarray:
    """(F,) SSIM per frame pair (torchmetrics functional, Gaussian 11/1.5, data range 255)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    gen, true = check_pair(generated, truth, 0)
    if min(gen.shape[1:3]) < 11:
        raise EmbeddingError(f"SSIM needs frames of at least 11x11 px (its window), got {gen.shape[1]}x{gen.shape[2]}")
    # float32: torch's float64 conv2d on CPU (the Gaussian window) is ~50x slower and gains nothing here.
    values = structural_similarity_index_measure(
        _nchw(gen).float(), _nchw(true).float(), data_range=255.0, reduction="none"
    )
    return values.double().numpy()


def slope(values: np.ndarray) -> float:
    """Least-squares slope of values against their index (0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return 0.0
    index = np.arange(values.size, dtype=np.float64)
    index -= index.mean()
    return float((index * (values - values.mean())).sum() / (index**2).sum())


def change_cosine(generated: Any, truth: Any) -> np.ndarray:
    """(F,) cosine of (g_k - g_0) and (t_k - t_0) per frame; 0 where either change is zero (frame 0 included)."""
    gen, true = check_pair(generated, truth, 0)
    g = (gen.astype(np.float64) - gen[0]).reshape(len(gen), -1)
    t = (true.astype(np.float64) - true[0]).reshape(len(true), -1)
    norms = np.linalg.norm(g, axis=1) * np.linalg.norm(t, axis=1)
    return np.where(norms > 0, (g * t).sum(axis=1) / np.where(norms > 0, norms, 1.0), 0.0)


def motion_ratio(generated: Any, truth: Any) -> float:
    """Mean |consecutive frame difference| of the generated video over that of the true video."""
    gen, true = check_pair(generated, truth, 0)
    if len(gen) < 2:
        raise EmbeddingError("motion_ratio needs at least 2 frames")
    moved = [float(np.abs(np.diff(v.astype(np.int16), axis=0)).mean()) for v in (gen, true)]
    if moved[1] == 0:
        raise EmbeddingError("motion_ratio: the true video does not move, so no ratio exists; score moving videos")
    return moved[0] / moved[1]


def paired_scores(generated: Any, truth: Any, first: int = 1) -> dict[str, tuple[float, list[float] | None]]:
    """base metric name -> (value, per-frame values or None) over frames ``first``.. of the pair."""
    gen, true = check_pair(generated, truth, first)
    psnr, ssim = frame_psnr(gen, true)[first:], frame_ssim(gen, true)[first:]
    change = change_cosine(gen, true)[first:]
    return {
        "psnr": (float(psnr.mean()), psnr.tolist()),
        "ssim": (float(ssim.mean()), ssim.tolist()),
        "psnr_slope": (slope(psnr), None),
        "ssim_slope": (slope(ssim), None),
        "change_cosine": (float(change.mean()), change.tolist()),
        "motion_ratio": (motion_ratio(gen, true), None),
    }


def paired_spec(base: str, size: int, first: int = 1, protocol: tuple[str, ...] = ()) -> MetricSpec:
    """The MetricSpec of one paired metric at a frame size, scoring frames ``first``.., named with ``protocol``
    (how the video was made: mode, start=..., split=...)."""
    if base not in PAIRED_METRICS:
        raise EmbeddingError(f"unknown paired metric {base!r}; choose one of {', '.join(PAIRED_METRICS)}")
    higher, ranked, description = PAIRED_METRICS[base]
    name = protocol_name(base, f"{size}px", f"frames{first}+", *protocol)
    return MetricSpec(name, "video", higher, PAIRED_VERSION, description, ranked=ranked)


def paired_rows(
    generated: Any,
    truth: Any,
    first: int = 1,
    protocol: tuple[str, ...] = (),
    **ids: Any,
) -> list[dict[str, Any]]:
    """One score row per paired metric for one video pair; ``ids`` (prompt_id, sample_idx, gen_seed) go in each row."""
    gen, true = check_pair(generated, truth, first)
    rows = []
    for base, (value, per_frame) in paired_scores(gen, true, first).items():
        extra = {"per_frame": per_frame} if per_frame is not None else {}
        rows.append(paired_spec(base, gen.shape[1], first, protocol).row(value, len(gen) - first, extra=extra, **ids))
    return rows
