"""Held-out embedding metrics: how well a rollout predicts the true frame embeddings of a video.

For each held-out video the rollout starts from its TRUE first-frame embedding (``start="true"``: the
prediction task in isolation, no prior error) or from the prior's embedding (``start="prior"``: as in
generation), and predicts at the video's own frame times shifted to start at 0. Horizon k is frame
index k >= 1 of the video; its time in seconds is in the row's extra.

Per horizon:
- cosine: cos(pred_k, true_k);
- displacement cosine: cos(pred_k - start, true_k - true_0), the direction of motion. A prediction that
  does not move (|pred_k - start| < 1e-6 |start|, e.g. the static baseline) scores 0: no agreement. A
  horizon where the TRUE video does not move is excluded and listed, since no direction exists there.
Per video: the means over horizons, and the error growth: least-squares slope of (1 - cosine) against
horizon time in seconds (needs two horizons).

Every metric names its start (``embed_cosine[step,start=true]``, ``...[step,start=prior]``); ``start="both"``
scores both. ``shuffled_text=True`` adds the same metrics with each video scored with ANOTHER video's text
(text states and text embedding; a seeded derangement of the records), named with a ``text=shuffled``
parameter (``embed_cosine[step,start=true,text=shuffled]``): the drop from the plain metric is how much a
rollout depends on its text. A rollout that ignores the text scores exactly the same under both.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from metrics.clip import EmbeddingError, unit_rows
from metrics.registry import EMBEDDING_STARTS, embedding_specs

_STILL_EPS = 1e-6  # relative norm below which a displacement counts as no motion
_BATCH = 64
SHUFFLED = "text=shuffled"


@dataclass
class EmbeddingReport:
    """Score rows plus (video_id, reason) for everything that could not be scored."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def horizon_cosines(pred: Any, true: Any) -> np.ndarray:
    """cos(pred_k, true_k) for k = 1 .. F-1 of two (F, D) trajectories."""
    p, t = unit_rows(pred, "prediction"), unit_rows(true, "true frames")
    if p.shape != t.shape:
        raise EmbeddingError(f"prediction {p.shape} and true frames {t.shape} differ in shape")
    return np.clip(np.einsum("fd,fd->f", p[1:], t[1:]), -1.0, 1.0)


def displacement_cosines(pred: Any, true: Any, start: Any) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, valid) for k = 1 .. F-1: cos(pred_k - start, true_k - true_0); invalid where the
    true video does not move; 0 where the prediction does not move."""
    p = np.asarray(torch.as_tensor(pred).double().cpu())
    t = np.asarray(torch.as_tensor(true).double().cpu())
    s = np.asarray(torch.as_tensor(start).double().cpu()).reshape(-1)
    dp, dt = p[1:] - s, t[1:] - t[0]
    np_, nt = np.linalg.norm(dp, axis=1), np.linalg.norm(dt, axis=1)
    valid = nt >= _STILL_EPS * np.linalg.norm(t[0])
    moving = np_ >= _STILL_EPS * np.linalg.norm(s)
    denom = np.where(valid & moving, np_ * nt, 1.0)
    cos = np.where(valid & moving, np.einsum("fd,fd->f", dp, dt) / denom, 0.0)
    return np.clip(cos, -1.0, 1.0), valid


def error_growth(times: Sequence[float] | np.ndarray, errors: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of ``errors`` against ``times`` (needs two distinct times)."""
    x, y = np.asarray(times, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if x.shape != y.shape or x.size < 2 or np.ptp(x) == 0:
        raise EmbeddingError(f"error growth needs at least two distinct horizon times, got {x.tolist()}")
    xc = x - x.mean()
    return float(xc @ (y - y.mean()) / (xc @ xc))


def _relative_times(record: Any) -> np.ndarray:
    times = np.asarray(torch.as_tensor(record.frame_times).double().cpu()).reshape(-1)
    if times.size < 2:
        raise EmbeddingError(f"video {record.video_id}: needs at least 2 frames, has {times.size}")
    return times - times[0]


def _stack(records: Sequence[Any], attr: str, device: str | torch.device) -> torch.Tensor:
    return torch.stack([torch.as_tensor(getattr(r, attr)).float() for r in records]).to(device)


def _predict_batch(
    rollout: Any, batch: Sequence[Any], times: np.ndarray, start: str, device: str | torch.device
) -> torch.Tensor:
    """(B, F, D) predictions for videos that share their relative frame times."""
    if start == "true":
        begin = torch.stack([torch.as_tensor(r.frame_embeds)[0].float() for r in batch]).to(device)
    else:
        begin = _stack(batch, "prior_embed", device)
    seconds = torch.as_tensor(times, dtype=torch.float64)  # rollouts take CPU seconds
    with torch.no_grad():
        pred = rollout(
            _stack(batch, "text_hidden", device), _stack(batch, "text_embed", device), begin, seconds
        )
    expected = (len(batch), len(times), begin.shape[1])
    if tuple(pred.shape) != expected:
        raise EmbeddingError(
            f"rollout {getattr(rollout, 'name', rollout)!r} returned shape {tuple(pred.shape)} "
            f"for videos {[r.video_id for r in batch]}, expected {expected}"
        )
    return pred.detach().float().cpu()


def predict(
    rollout: Any, records: Sequence[Any], start: str = "true", device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """Rollout predictions (F, D) per record at its own relative frame times, batched by equal times."""
    if start not in EMBEDDING_STARTS:
        raise EmbeddingError(f"start must be one of {EMBEDDING_STARTS}, got {start!r}")
    rel_times = [_relative_times(r) for r in records]
    groups: dict[bytes, list[int]] = {}
    for i, times in enumerate(rel_times):
        groups.setdefault(times.tobytes(), []).append(i)
    out: dict[int, torch.Tensor] = {}
    for members in groups.values():
        for lo in range(0, len(members), _BATCH):
            idx = members[lo : lo + _BATCH]
            pred = _predict_batch(rollout, [records[i] for i in idx], rel_times[idx[0]], start, device)
            out.update(zip(idx, pred, strict=True))
    return [out[i] for i in range(len(records))]


def score_rollout(
    rollout: Any,
    records: Sequence[Any],
    mode: str,
    *,
    horizons: Sequence[int] | None = None,
    start: str = "true",
    device: str | torch.device = "cpu",
    shuffled: bool = False,
) -> EmbeddingReport:
    """Per-horizon and per-video rows for one rollout ``mode`` over held-out ``records``.

    ``shuffled=True``: the records already carry another video's text; rows get the ``text=shuffled`` names.
    """
    specs = embedding_specs(mode, start)
    if shuffled:
        specs = {kind: _shuffled_spec(spec) for kind, spec in specs.items()}
    report = EmbeddingReport()
    predictions = predict(rollout, records, start, device)
    for record, pred in zip(records, predictions, strict=True):
        vid = str(record.video_id)
        true = torch.as_tensor(record.frame_embeds).float()
        n_frames = true.shape[0]
        ks = np.arange(1, n_frames) if horizons is None else np.asarray(sorted(set(horizons)), dtype=int)
        if ks.size == 0 or ks.min() < 1 or ks.max() >= n_frames:
            raise EmbeddingError(
                f"video {vid} has {n_frames} frames, so horizons must lie in 1..{n_frames - 1}; "
                f"got {ks.tolist()}"
            )
        if not torch.isfinite(pred).all():
            raise EmbeddingError(f"rollout {mode!r} predicted NaN/Inf for video {vid}")
        begin = true[0] if start == "true" else torch.as_tensor(record.prior_embed).float()
        times = _relative_times(record)
        cos = horizon_cosines(pred, true)[ks - 1]
        disp, valid = displacement_cosines(pred, true, begin)
        disp, valid = disp[ks - 1], valid[ks - 1]
        base = {"mode": mode, "start": start}
        for k, c, d, ok in zip(ks.tolist(), cos, disp, valid, strict=True):
            extra = {**base, "horizon": k, "time_s": float(times[k])}
            report.rows.append(specs["cosine_h"].row(c, 1, prompt_id=vid, extra=extra))
            if ok:
                report.rows.append(specs["disp_cosine_h"].row(d, 1, prompt_id=vid, extra=extra))
        report.rows.append(specs["cosine"].row(cos.mean(), ks.size, prompt_id=vid, extra=base))
        excluded = ks[~valid].tolist()
        if valid.any():
            extra = {**base, "excluded_horizons": excluded} if excluded else base
            report.rows.append(
                specs["disp_cosine"].row(disp[valid].mean(), int(valid.sum()), prompt_id=vid, extra=extra)
            )
        if excluded:
            reason = (
                f"{mode}: displacement cosine skips horizons {excluded}: the true video does not move there"
            )
            report.skipped.append((vid, reason))
        if ks.size >= 2:
            slope = error_growth(times[ks], 1.0 - cos)
            report.rows.append(specs["error_growth"].row(slope, ks.size, prompt_id=vid, extra=base))
        else:
            report.skipped.append((vid, f"{mode}: error growth needs two horizons, has {ks.tolist()}"))
    return report


def _shuffled_spec(spec: Any) -> Any:
    """The same metric scored with another video's text: ``base[mode,start=...,text=shuffled]``."""
    return replace(spec, name=f"{spec.name[:-1]},{SHUFFLED}]",
                   description=f"{spec.description}; each video scored with another video's text")


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n) with no fixed point (Sattolo's algorithm: one random n-cycle)."""
    if n < 2:
        raise EmbeddingError(f"shuffled-text scoring needs at least 2 videos, got {n}")
    rng = np.random.default_rng(seed)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(i))  # j < i: never in place
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def with_shuffled_text(records: Sequence[Any], seed: int) -> list[Any]:
    """Copies of the records, record i carrying the text of record ``derangement(n, seed)[i]``."""
    perm = derangement(len(records), seed)
    out = []
    for record, other in zip(records, (records[j] for j in perm), strict=True):
        moved = copy.copy(record)
        moved.text_hidden, moved.text_embed = other.text_hidden, other.text_embed
        out.append(moved)
    return out


def _starts(start: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(start, str):
        return EMBEDDING_STARTS if start == "both" else (start,)
    return tuple(start)


def score_rollouts(
    rollouts: Mapping[str, Any],
    records: Sequence[Any],
    *,
    horizons: Sequence[int] | None = None,
    start: str | Sequence[str] = "true",
    device: str | torch.device = "cpu",
    shuffled_text: bool = False,
    shuffle_seed: int = 0,
) -> EmbeddingReport:
    """``score_rollout`` for every (mode, rollout, start) triple, rows and skips concatenated.

    ``start``: "true", "prior", "both" or a sequence of them. ``shuffled_text`` adds the ``text=shuffled``
    rows (derangement seeded by ``shuffle_seed``, the same for every rollout).
    """
    if not records:
        raise EmbeddingError("no held-out videos to score; check the store's split")
    report = EmbeddingReport()
    passes = [(records, False)]
    if shuffled_text:
        passes.append((with_shuffled_text(records, shuffle_seed), True))
    for begin in _starts(start):
        for mode, rollout in rollouts.items():
            for group, shuffled in passes:
                part = score_rollout(rollout, group, mode, horizons=horizons, start=begin, device=device,
                                     shuffled=shuffled)
                report.rows.extend(part.rows)
                if not shuffled:
                    report.skipped.extend(part.skipped)
    return report
