"""The Trainer: batches of regime examples across many videos, validation split, early stopping, exact resume.

Fixes B12 and "Batching" of method.md §8 (one standard loop instead of the prior art's bookkeeping):

* **Examples.** Every epoch rebuilds each train video's examples (:func:`spliter.regimes.build_examples`) with a
  numpy generator seeded by ``(seed, epoch, video index)``, then shuffles all of them with one seeded by
  ``(seed, epoch)``: the batch order of an epoch is a pure function of ``(seed, epoch)``. A batch holds
  ``batch_size`` examples drawn across many videos; every example weighs the same in the loss.
* **Length: budgets, not epochs.** ``budget_steps`` (optimiser steps) or ``budget_examples`` (examples seen;
  the last batch is cut to fit) ends the run exactly there, also across resumes, whatever the regime: at a
  fixed epoch count base / back / rotate / diff / combined would take very different numbers of steps, so
  studies compare regimes at one budget. Without a budget, ``epochs`` passes. The LR schedule spans the
  run's planned steps. :class:`TrainResult` reports ``steps``, ``examples_seen`` and ``wall_s``.
* **Start states** per example source (``u`` is the example's anchor: the prior, or the base frame's true
  embedding when ``regime.start`` is "true", see :mod:`spliter.regimes`): ``prior`` ``u`` and the text ``H``; ``rotated_prior``
  ``u' = rotate(u, e_base, e_start, weight=cos(e_base, u))`` and ``H' = rotate(H, u, u', weight=cos(u, t))``;
  ``prediction`` the model run along the example's chain (base first), each hop from the previous prediction
  with ``H`` rotated from ``u`` to it (``weight=cos(u, t)``), under ``no_grad`` unless ``diff_grad="backprop"``,
  and in eval mode (no dropout, as in chain-mode inference); only the final prediction uses dropout.
  Steps are ``Δt_seconds / model_config.time_scale`` (the trainer has no time scale of its own).
* **Loss** :func:`spliter.losses.make_loss` in fp32; AdamW, gradient clipping, a per-step schedule (linear
  warm-up, then cosine decay to 0, or ``gamma`` per epoch, or constant).
* **Selection metric** (the only one): ``val_cosine`` = mean of cos(e_0 + (û_k - u), e_k) over every later
  frame k >= 1 of every validation video, where û_k is predicted in step mode from the caption's prior
  embedding ``u`` with step ``(t_k - t_0) / time_scale`` and the unrotated text, model in eval mode: the
  predicted displacement applied to the true first frame. It keeps the model on its training inputs
  (start = u) but does not depend on how far the prior lies from the first frame; an unchanged start scores
  the static baseline cos(e_0, e_k). With ``regime.start="true"`` it starts from e_0 itself,
  cos(f(H, e_0, Δt_k), e_k); ``"both"`` averages the two. Validation runs at each epoch end, or every
  ``val_every`` steps, and always at the end; ``best.pt`` holds the weights with the highest ``val_cosine``;
  training stops after ``patience`` validations without improvement (``None``: never, for equal budgets).
* **Validation videos**: the store's ``"val"`` split; when it has none, the ``"train"`` videos whose hashed id
  (sha256) falls below ``val_fraction`` (deterministic, independent of store order;
  :func:`spliter.data.splits.train_val_records`, which baseline fitting uses too).
* **Checkpoints** in ``checkpoint_dir`` (all written atomically): ``last.pt`` (configs, weights, optimiser,
  scheduler, python/numpy/torch RNG states, epoch, step in epoch, history, best so far) every
  ``checkpoint_every`` optimiser steps and at each epoch end; ``best.pt`` (:func:`spliter.models.save_spliter`
  with ``extra={"val_cosine", "epoch", "train_config"}``); ``history.json``. Calling :func:`train` again on the
  directory resumes: the epoch's batches are rebuilt, the done steps skipped, the RNG states restored, so the
  final weights and history equal those of an uninterrupted run (same device and thread count). The runtime
  fields (device, progress, deterministic, checkpoint_every, stop_after_steps, eval_batch_size, data_placement)
  may differ between the calls; any other change is refused (:class:`ResumeMismatch`). ``stop_after_steps`` (or an
  exception from the optional ``callback``) interrupts a run on purpose.

The store's ``"test"`` and ``"test_unseen"`` splits are never read. Both splits are held for the whole run by
:class:`VideoTensors`: text states, text embeddings and priors once per record, frame embeddings once per distinct
video (a video's caption records share them), in the store's fp16 (fp32 for values fp16 cannot hold), on the
training device or, by ``data_placement`` (:func:`data_storage`), on the host; each batch gathers its rows and
casts them to fp32 on the training device, so the numbers are those of holding everything there in fp32.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm.auto import tqdm

from spliter.atomic import atomic_path, write_atomic
from spliter.backends.base import resolve_device
from spliter.data.datasets import CAPTION_SEP, base_video_id, sampled_caption
from spliter.data.splits import train_val_records
from spliter.losses import LOSSES, make_loss
from spliter.models import Spliter, SpliterConfig, save_spliter
from spliter.regimes import Example, RegimeConfig, base_index, build_examples
from spliter.rotation import rotate

SCHEDULES: tuple[str, ...] = ("cosine", "exponential", "constant")
LAST, BEST, HISTORY = "last.pt", "best.pt", "history.json"
_FORMAT = "spliter-train-v1"
# TrainConfig fields that do not change what is computed (on CPU; on a GPU, device and deterministic kernels
# may change the last bits): a resumed run may differ in these.
_RUNTIME_FIELDS = ("device", "progress", "deterministic", "checkpoint_every", "stop_after_steps", "eval_batch_size",
                   "data_placement")
DATA_PLACEMENTS: tuple[str, ...] = ("auto", "device", "host")
# data_placement "auto" keeps the data on a CUDA device while it needs at most this share of the device's memory.
DEVICE_DATA_SHARE = 0.25
# Stream tags of the per-epoch numpy generators (distinct leading words keep the streams apart).
_VIDEO_STREAM, _SHUFFLE_STREAM = 1, 2


class ResumeMismatch(ValueError):
    """checkpoint_dir holds a run with another configuration or other videos."""


class TrainingDiverged(ValueError):
    """The loss or the validation metric became NaN/Inf."""


@dataclass
class TrainConfig:
    """Optimisation, validation and checkpointing of one training run (one trial seed)."""

    epochs: int = 20  # passes over the train videos; ignored when a budget is set
    budget_steps: int | None = None  # train exactly this many optimiser steps (replaces epochs)
    budget_examples: int | None = None  # train on exactly this many examples (the last batch is cut to fit)
    val_every: int | None = None  # validate every N optimiser steps (None: at each epoch end); always at the end
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_fraction: float = 0.05
    gamma: float = 0.9
    grad_clip: float = 1.0
    loss: str = "displacement"
    cos_weight: float = 1.0
    val_fraction: float = 0.2
    patience: int | None = 5
    seed: int = 0
    device: str = "auto"
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    progress: bool = True
    deterministic: bool = True
    checkpoint_every: int = 0
    stop_after_steps: int | None = None
    eval_batch_size: int = 256
    # One caption record per video per epoch, drawn from (seed, epoch, video) (data.captions_per_video: sampled;
    # records of one video are "<id>" and "<id>#c<i>", spliter.data.datasets.caption_record_id); False: every record
    caption_sampling: bool = False
    # Where the train/val tensors live (data_storage): "device", "host" (rows moved per batch) or "auto"
    data_placement: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.regime, dict):
            self.regime = RegimeConfig.from_dict(self.regime)
        ints = (("epochs", 1), ("batch_size", 1), ("seed", 0), ("checkpoint_every", 0), ("eval_batch_size", 1))
        for name, low in ints:
            _require_int(name, getattr(self, name), low)
        for name in ("patience", "stop_after_steps", "budget_steps", "budget_examples", "val_every"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), 1)
        for name, ok, what in (
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "in [0, 1)"),
            ("gamma", 0 < self.gamma <= 1, "in (0, 1]"),
            ("grad_clip", self.grad_clip >= 0, ">= 0 (0 turns clipping off)"),
            ("cos_weight", self.cos_weight >= 0, ">= 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
        ):
            if not (math.isfinite(float(getattr(self, name))) and ok):
                raise ValueError(f"TrainConfig.{name} must be {what}, got {getattr(self, name)!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule={self.schedule!r} is not one of {SCHEDULES}")
        if self.data_placement not in DATA_PLACEMENTS:
            raise ValueError(f"TrainConfig.data_placement={self.data_placement!r} is not one of {DATA_PLACEMENTS}")
        if self.loss not in LOSSES:
            raise ValueError(f"TrainConfig.loss={self.loss!r} is not one of {LOSSES}")
        if self.budget_steps is not None and self.budget_examples is not None:
            raise ValueError(
                "TrainConfig: set budget_steps or budget_examples, not both "
                f"(got {self.budget_steps} steps and {self.budget_examples} examples)"
            )

    @property
    def budgeted(self) -> bool:
        """Whether a step or example budget (not the epoch count) ends training."""
        return self.budget_steps is not None or self.budget_examples is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)


def _require_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"TrainConfig.{name} must be an integer >= {low}, got {value!r}")


@dataclass
class TrainResult:
    """Outcome of :func:`train`; ``checkpoint`` is best.pt. ``finished`` is False after ``stop_after_steps``."""

    best_epoch: int
    best_val_cosine: float
    history: list[dict]
    checkpoint: Path
    initial_val_cosine: float = float("nan")
    finished: bool = True
    stopped_early: bool = False
    global_step: int = 0
    examples_seen: int = 0
    wall_s: float = 0.0  # training time summed over every call that worked on the run (resumes included)
    best_step: int = -1

    @property
    def steps(self) -> int:
        """Optimiser steps taken (the budget, when one is set and training was not stopped early)."""
        return self.global_step


@dataclass(frozen=True)
class StepInfo:
    """What a ``callback`` sees after each optimiser step."""

    epoch: int
    step_in_epoch: int
    global_step: int
    loss: float
    lr: float


@dataclass
class LrSchedule:
    """Learning-rate factor per optimiser step (a callable object, so LambdaLR checkpoints it)."""

    kind: str
    warmup_steps: int
    total_steps: int
    steps_per_epoch: int
    gamma: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if self.kind == "exponential":
            return self.gamma ** (step // self.steps_per_epoch)
        return 1.0


select_device = resolve_device  # the one device selection lives in spliter.backends.base


# ----------------------------------------------------------------------------------------------- data


def split_videos(store: Any, val_fraction: float) -> tuple[Sequence[Any], Sequence[Any]]:
    """(train, val) records, read as iterated: the store's "val" split, or a hashed-id share of its "train" split."""
    return train_val_records(store, val_fraction)


class VideoTensors:
    """The records of one split, gathered per batch as fp32 rows on the training device.

    Layout (issue 12: data.captions_per_video all/sampled makes a store record of every caption, so a train video
    may have 20 records): text states, text embeddings and priors are kept once per record, frame embeddings once
    per distinct video (records whose frame embeddings and times are equal, a video's caption records, share one
    zero-padded row; records that differ keep their own), each tensor in fp16 when every value survives the round
    trip (store records do: the store keeps fp16) and in fp32 otherwise. The gathers (:meth:`text_hidden`,
    :meth:`text_embed`, :meth:`prior`, :meth:`frames`) index the rows of a batch, move them to ``device`` and cast
    them to fp32: the values of casting everything up front, so training is bit for bit what it was.
    ``storage`` is where the tensors live: ``device`` (default) or the host, with a transfer per batch
    (:func:`data_storage`). ``compact=False`` keeps the layout before issue 12 (fp32, a frame row per record),
    the reference the equality test and the memory benchmark compare against.
    """

    def __init__(self, records: Sequence[Any], device: torch.device | str, storage: torch.device | str | None = None,
                 compact: bool = True) -> None:
        self.device = torch.device(device)
        self.ids: list[str] = []
        self.times: list[np.ndarray] = []
        hidden, embed, prior = (_Rows(len(records), compact) for _ in range(3))
        frames = _FrameRows(share=compact)
        for i, record in enumerate(records):  # one pass: train_val_records reads a record each time it is iterated
            self.ids.append(record.video_id)
            self.times.append(np.asarray(_to_numpy(record.frame_times), dtype=np.float64))
            hidden.put(i, record.text_hidden)
            embed.put(i, record.text_embed)
            prior.put(i, record.prior_embed)
            frames.add(record.video_id, record.frame_embeds, self.times[-1])
        self.n_frames = [len(t) for t in self.times]
        self._text_hidden, self._text_embed, self._prior = hidden.tensor(), embed.tensor(), prior.tensor()
        rows = _Rows(len(frames.rows), compact, pad_to=max(self.n_frames, default=0))
        for i, row in enumerate(frames.rows):
            rows.put(i, row)
        self._frames, self._frame_row = rows.tensor(), torch.tensor(frames.row_of, dtype=torch.long)
        self.storage = torch.device("cpu")
        self.store_on(self.device if storage is None else storage)

    def store_on(self, storage: torch.device | str) -> VideoTensors:
        """Move the held tensors to ``storage`` (the training device or the host); returns self."""
        self.storage = torch.device(storage)
        for name in ("_text_hidden", "_text_embed", "_prior", "_frames", "_frame_row"):
            setattr(self, name, getattr(self, name).to(self.storage))
        return self

    @property
    def nbytes(self) -> int:
        """Bytes of the held tensors (where they are stored)."""
        held = (self._text_hidden, self._text_embed, self._prior, self._frames, self._frame_row)
        return sum(t.numel() * t.element_size() for t in held)

    @property
    def n_frame_rows(self) -> int:
        """Distinct frame rows held (one per video when its caption records share their frames)."""
        return int(self._frames.shape[0])

    @property
    def text_shape(self) -> tuple[int, int]:
        """(T, D) of the text states."""
        tokens, dim = self._text_hidden.shape[1:]
        return int(tokens), int(dim)

    def _gather(self, held: Tensor, *index: Tensor | int) -> Tensor:
        where = tuple(i.to(self.storage) if isinstance(i, Tensor) else i for i in index)
        return held[where].to(self.device).float()

    def text_hidden(self, rows: Tensor) -> Tensor:
        """(B, T, D) text states of records ``rows``."""
        return self._gather(self._text_hidden, rows)

    def text_embed(self, rows: Tensor) -> Tensor:
        """(B, D) text embeddings of records ``rows``."""
        return self._gather(self._text_embed, rows)

    def prior(self, rows: Tensor) -> Tensor:
        """(B, D) prior embeddings of records ``rows``."""
        return self._gather(self._prior, rows)

    def frames(self, rows: Tensor, index: Tensor | int) -> Tensor:
        """(B, D) frame ``index`` (per row, or one for all) of records ``rows``."""
        return self._gather(self._frames, self._frame_row[rows.to(self.storage)], index)

    def check_against(self, config: SpliterConfig, where: str) -> None:
        tokens, dim = self.text_shape
        if (tokens, dim) != (config.text_tokens, config.dim):
            raise ValueError(
                f"{where} holds text (T={tokens}, D={dim}) but the SpliterConfig expects "
                f"(text_tokens={config.text_tokens}, dim={config.dim}): build the model config from the store"
            )
        short = [vid for vid, n in zip(self.ids, self.n_frames, strict=True) if n < 2]
        if short:
            raise ValueError(f"{where}: videos {short[:5]} have fewer than 2 frames; re-encode them with more frames")


def data_storage(placement: str, device: torch.device, nbytes: int) -> torch.device:
    """Where the training data of ``nbytes`` (both splits, :attr:`VideoTensors.nbytes`) lives for ``placement``.

    "device": on the training device; "host": in host memory, each batch's rows moved to the device; "auto": on
    the device when it is not a CUDA device (host and device memory are one) or when the data takes at most
    ``DEVICE_DATA_SHARE`` (a quarter) of the CUDA device's total memory, else on the host. The placement never
    changes the values a batch sees.
    """
    if placement == "host":
        return torch.device("cpu")
    if placement == "device" or device.type != "cuda":
        return device
    total = torch.cuda.get_device_properties(device).total_memory
    return device if nbytes <= DEVICE_DATA_SHARE * total else torch.device("cpu")


class _FrameRows:
    """The distinct fp32 frame-embedding rows and each record's row, built record by record.

    Records of one base video id (its caption records) share a row only when their frame embeddings and times
    are equal, so different data is never merged; ``share=False``: a row per record.
    """

    def __init__(self, share: bool) -> None:
        self.share = share
        self.rows: list[Tensor] = []
        self.row_of: list[int] = []
        self._times: list[np.ndarray] = []
        self._by_video: dict[str, list[int]] = {}  # base video id -> its rows

    def add(self, record_id: str, frame_embeds: Any, times: np.ndarray) -> None:
        frames = torch.as_tensor(frame_embeds).float()
        mine = self._by_video.setdefault(base_video_id(record_id), []) if self.share else []
        same = (i for i in mine if np.array_equal(self._times[i], times) and torch.equal(self.rows[i], frames))
        match = next(same, None)
        if match is None:
            match = len(self.rows)
            self.rows.append(frames)
            self._times.append(times)
            mine.append(match)
        self.row_of.append(match)


class _Rows:
    """``count`` rows (as fp32 values) put into one tensor, zero-padded to ``pad_to`` along their first axis.

    ``compact``: in fp16 while every value survives the round trip exactly (then the gathers' fp32 cast gives the
    same values back), in fp32 from the first row that does not (the rows before it convert exactly); else fp32.
    """

    def __init__(self, count: int, compact: bool, pad_to: int | None = None) -> None:
        self.count, self.compact, self.pad_to = count, compact, pad_to
        self._out: Tensor | None = None

    def put(self, index: int, row: Any) -> None:
        value = torch.as_tensor(row).float()
        if self._out is None:
            shape = value.shape if self.pad_to is None else (self.pad_to, *value.shape[1:])
            make = torch.empty if self.pad_to is None else torch.zeros
            self._out = make(self.count, *shape, dtype=torch.float16 if self.compact else torch.float32)
        if self._out.dtype == torch.float16 and not torch.equal(value.half().float(), value):
            self._out = self._out.float()
        self._out[index, : len(value)] = value

    def tensor(self) -> Tensor:
        if self._out is None:
            raise ValueError("VideoTensors needs at least one record")
        return self._out


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def epoch_batches(
    times: Sequence[np.ndarray], regime: RegimeConfig, time_scale: float, seed: int, epoch: int, batch_size: int,
    active: Sequence[int] | None = None,
) -> list[list[tuple[int, Example]]]:
    """The epoch's batches of (video index, example): a pure function of (seed, epoch) and the data.

    ``active``: the indices of the videos (records) this epoch trains on; None: all of them.
    """
    items: list[tuple[int, Example]] = []
    for vi in range(len(times)) if active is None else active:
        rng = np.random.default_rng([seed, epoch, _VIDEO_STREAM, vi])
        items += [(vi, e) for e in build_examples(times[vi], regime, time_scale, rng)]
    order = np.random.default_rng([seed, epoch, _SHUFFLE_STREAM]).permutation(len(items))
    shuffled = [items[i] for i in order]
    return [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]


def sampled_records(ids: Sequence[str], epoch: int, seed: int) -> list[int]:
    """Per video (its caption records grouped by base id, in caption order), the index of the epoch's caption."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for index, record in enumerate(ids):
        base = base_video_id(record)
        caption = 0 if record == base else int(record[len(base) + len(CAPTION_SEP):])
        groups.setdefault(base, []).append((caption, index))
    chosen = []
    for base, members in groups.items():
        members.sort()
        chosen.append(members[sampled_caption(base, len(members), epoch, seed)][1])
    return sorted(chosen)


# ----------------------------------------------------------------------------------------------- batch


@dataclass
class BatchInputs:
    """Model inputs and loss targets of one batch, rows grouped by start source."""

    text: Tensor
    start_state: Tensor
    step: Tensor
    start_true: Tensor
    target_true: Tensor


def _base_frames(videos: VideoTensors, vi: Tensor, examples: Sequence[Example]) -> Tensor:
    """Index of each example's base frame (first on the normal way, last on the back way)."""
    return torch.tensor([base_index(e.way, videos.n_frames[v]) for v, e in zip(vi.tolist(), examples, strict=True)])


def _anchor(videos: VideoTensors, vi: Tensor, examples: Sequence[Example]) -> Tensor:
    """The state standing for each example's base frame: the prior ``u`` or the base frame's true embedding."""
    true = torch.tensor([e.anchor == "true" for e in examples], device=videos.device)
    return torch.where(true[:, None], videos.frames(vi, _base_frames(videos, vi, examples)), videos.prior(vi))


def _rotated_prior(
    videos: VideoTensors, vi: Tensor, examples: Sequence[Example], regime: RegimeConfig
) -> tuple[Tensor, Tensor]:
    """+R start (method.md §4.4): u rotated like the image moved from the base frame; the text rotated u -> u'."""
    start = torch.tensor([e.start_index for e in examples])
    e_base, e_start = videos.frames(vi, _base_frames(videos, vi, examples)), videos.frames(vi, start)
    u, hidden, text = _anchor(videos, vi, examples), videos.text_hidden(vi), videos.text_embed(vi)
    kw = {"power": regime.rotation_power, "convention": regime.rotation_convention}
    u_rot = rotate(u, e_base, e_start, weight=F.cosine_similarity(e_base, u, dim=-1), **kw)
    return rotate(hidden, u, u_rot, weight=F.cosine_similarity(u, text, dim=-1), **kw), u_rot


def _chain_state(
    model: Spliter,
    videos: VideoTensors,
    vi: Tensor,
    examples: Sequence[Example],
    regime: RegimeConfig,
    time_scale: float,
) -> tuple[Tensor, Tensor]:
    """+diff start (method.md §4.5): the prediction for each example's start frame along its chain, and the text.

    The chain's hops run in eval mode (no dropout), as chain-mode inference does: the start states the model
    learns from are the ones it will meet at inference. Only the final prediction from that state is made with
    the model's training-mode dropout.
    """
    u, hidden, text = _anchor(videos, vi, examples), videos.text_hidden(vi), videos.text_embed(vi)
    weight = F.cosine_similarity(u, text, dim=-1)
    kw = {"power": regime.rotation_power, "convention": regime.rotation_convention}
    state, cond = u, hidden
    was_training = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(regime.diff_grad == "backprop" and torch.is_grad_enabled()):
            for hop in range(1, len(examples[0].chain)):
                steps = [
                    (videos.times[v][e.chain[hop]] - videos.times[v][e.chain[hop - 1]]) / time_scale
                    for v, e in zip(vi.tolist(), examples, strict=True)
                ]
                state = model(cond, state, torch.tensor(steps, dtype=torch.float32, device=videos.device))
                cond = rotate(hidden, u, state, weight=weight, **kw)
    finally:
        model.train(was_training)
    return cond, state


def batch_inputs(
    model: Spliter,
    videos: VideoTensors,
    batch: Sequence[tuple[int, Example]],
    regime: RegimeConfig,
    time_scale: float,
) -> BatchInputs:
    """Start states, texts, steps and true frames of a batch (rows regrouped by start source and chain length)."""
    groups: dict[tuple[str, int], list[tuple[int, Example]]] = {}
    for item in batch:
        groups.setdefault((item[1].start_source, len(item[1].chain)), []).append(item)
    device = videos.device
    parts: list[BatchInputs] = []
    for (source, _), rows in sorted(groups.items()):
        vi = torch.tensor([v for v, _ in rows])  # record indices stay on the host: the gathers move them
        examples = [e for _, e in rows]
        if source == "prior":
            text, state = videos.text_hidden(vi), _anchor(videos, vi, examples)
        elif source == "rotated_prior":
            text, state = _rotated_prior(videos, vi, examples, regime)
        else:
            text, state = _chain_state(model, videos, vi, examples, regime, time_scale)
        start = torch.tensor([e.start_index for e in examples])
        target = torch.tensor([e.target_index for e in examples])
        step = torch.tensor([e.step for e in examples], dtype=torch.float32, device=device)
        parts.append(BatchInputs(text, state, step, videos.frames(vi, start), videos.frames(vi, target)))
    return BatchInputs(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(BatchInputs)))


# ----------------------------------------------------------------------------------------------- validation


def _val_cosine(model: Spliter, videos: VideoTensors, time_scale: float, batch_size: int, start: str = "prior"
                ) -> float:
    """The selection metric for a regime's start: from the prior, from the true first frame, or their mean."""
    if start == "both":
        return 0.5 * (_val_cosine_from(model, videos, time_scale, batch_size, "prior")
                      + _val_cosine_from(model, videos, time_scale, batch_size, "true"))
    return _val_cosine_from(model, videos, time_scale, batch_size, start)


@torch.no_grad()
def _val_cosine_from(model: Spliter, videos: VideoTensors, time_scale: float, batch_size: int, start: str) -> float:
    was_training = model.training
    model.eval()
    rows = [(vi, k) for vi, n in enumerate(videos.n_frames) for k in range(1, n)]
    total = 0.0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        vi = torch.tensor([v for v, _ in chunk])
        k = torch.tensor([f for _, f in chunk])
        step = torch.tensor([(videos.times[v][f] - videos.times[v][0]) / time_scale for v, f in chunk],
                            dtype=torch.float32, device=videos.device)
        first = videos.frames(vi, 0)
        prior = videos.prior(vi) if start == "prior" else first
        pred = model(videos.text_hidden(vi), prior, step)
        # The predicted displacement from the prior, applied to the true first frame: what the model is trained
        # to produce, measured independently of how far the prior lies from the first frame (a random-weight
        # prior lies far). An unchanged start scores exactly the static baseline, cos(e_0, e_k).
        moved = first + (pred.float() - prior.float())
        total += float(F.cosine_similarity(moved, videos.frames(vi, k), dim=-1).double().sum())
    model.train(was_training)
    return total / len(rows)


def validation_cosine(
    model: Spliter, records: Sequence[Any], device: torch.device | str | None = None, batch_size: int = 256,
    start: str = "prior",
) -> float:
    """The selection metric: mean over val videos and frames k >= 1 of cos(e_0 + (f(H, u, Δt_k) - u), e_k).

    ``start="true"`` starts from the true first frame instead of ``u`` (then it is cos(f(H, e_0, Δt_k), e_k));
    ``"both"`` is the mean of the two. The trainer uses its regime's ``start``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    return _val_cosine(model, VideoTensors(records, device), model.config.time_scale, batch_size, start)


# ----------------------------------------------------------------------------------------------- state


@dataclass
class _Progress:
    """Loop position and bookkeeping; everything here goes into last.pt."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_examples: int = 0
    last_lr: float = 0.0
    history: list[dict] = field(default_factory=list)
    best_val_cosine: float = -math.inf
    best_epoch: int = -1
    epochs_since_best: int = 0
    initial_val_cosine: float = float("nan")
    done: bool = False
    stopped_early: bool = False
    examples_seen: int = 0
    wall_s: float = 0.0
    best_step: int = -1


def _rng_state() -> dict[str, Any]:
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, key.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextmanager
def _deterministic(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the run; the previous global setting is restored afterwards."""
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for reproducible GEMMs
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _resume_key(model_config: SpliterConfig, config: TrainConfig, train_ids: list[str], val_ids: list[str]) -> dict:
    """What must match for a checkpoint directory to be resumed."""
    train_dict = {k: v for k, v in config.to_dict().items() if k not in _RUNTIME_FIELDS}
    ids_hash = hashlib.sha256(json.dumps([train_ids, val_ids]).encode()).hexdigest()
    return {"model_config": model_config.to_dict(), "train_config": train_dict, "videos": ids_hash}


def _same_setting(stored: Any, current: Any, default: Any) -> bool:
    """Equal, where a field the stored run did not have yet (an older version) counts as its default."""
    if not (isinstance(stored, dict) and isinstance(current, dict) and isinstance(default, dict)):
        return stored == current
    for name, value in current.items():
        if name not in stored:
            if name not in default or value != default[name]:
                return False
        elif not _same_setting(stored[name], value, default.get(name)):
            return False
    return set(stored) <= set(current)



# ----------------------------------------------------------------------------------------------- loop


class _Run:
    """One call of :func:`train`: model, optimiser, scheduler and progress, with save/restore of all of them."""

    def __init__(
        self, model_config: SpliterConfig, config: TrainConfig, train: VideoTensors, val: VideoTensors, directory: Path,
        device: torch.device,
    ) -> None:
        self.model_config, self.config, self.train_data, self.val_data = model_config, config, train, val
        self.directory, self.device = directory, device
        self.time_scale = float(model_config.time_scale)
        self.key = _resume_key(model_config, config, train.ids, val.ids)
        first = self.batches(0)
        self.steps_per_epoch, self.examples_per_epoch = len(first), sum(len(b) for b in first)
        self.loss_fn = make_loss(config.loss, config.cos_weight)

        _seed_everything(config.seed)
        self.model = Spliter(model_config).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        total = self.planned_steps()
        schedule = LrSchedule(config.schedule, round(config.warmup_fraction * total), total, self.steps_per_epoch,
                              config.gamma)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.progress = _Progress()
        self._clock = time.perf_counter()  # wall time is added to progress.wall_s at every save
        if (directory / LAST).exists():
            self.load()
        else:
            self.progress.initial_val_cosine = self.validate()

    def planned_steps(self) -> int:
        """Optimiser steps of the whole run (without early stopping): the budget, or epochs x steps per epoch."""
        c = self.config
        if c.budget_steps is not None:
            return c.budget_steps
        if c.budget_examples is not None:
            # Every epoch holds the same number of examples (fixed per-component budgets per video).
            full, rest = divmod(c.budget_examples, self.examples_per_epoch)
            return full * self.steps_per_epoch + math.ceil(rest / c.batch_size)
        return self.steps_per_epoch * c.epochs

    def budget_reached(self) -> bool:
        p, c = self.progress, self.config
        if c.budget_steps is not None:
            return p.global_step >= c.budget_steps
        if c.budget_examples is not None:
            return p.examples_seen >= c.budget_examples
        return False

    def batches(self, epoch: int) -> list[list[tuple[int, Example]]]:
        c = self.config
        active = sampled_records(self.train_data.ids, epoch, c.seed) if c.caption_sampling else None
        return epoch_batches(self.train_data.times, c.regime, self.time_scale, c.seed, epoch, c.batch_size, active)

    def validate(self) -> float:
        c = self.config
        value = _val_cosine(self.model, self.val_data, self.time_scale, c.eval_batch_size, c.regime.start)
        if not math.isfinite(value):
            raise TrainingDiverged(f"{self.directory}: validation cosine is {value}; lower lr or check the store")
        return value

    # -- checkpoints

    def save(self) -> None:
        now = time.perf_counter()
        self.progress.wall_s += now - self._clock
        self._clock = now
        payload = {
            "format": _FORMAT,
            "key": self.key,
            "train_config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(),
            "progress": asdict(self.progress),
        }
        with atomic_path(self.directory / LAST) as tmp:
            torch.save(payload, tmp)
        history = json.dumps(self.progress.history, indent=1)
        write_atomic(self.directory / HISTORY, history)

    def load(self) -> None:
        path = self.directory / LAST
        try:
            payload = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # torch raises many types for truncated/foreign files
            raise ResumeMismatch(f"{path} is unreadable ({type(err).__name__}); delete it to restart") from err
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ResumeMismatch(f"{path} is not a spliter training checkpoint; use another checkpoint_dir")
        defaults = {"model_config": SpliterConfig().to_dict(), "train_config": TrainConfig().to_dict(), "videos": None}
        for part in ("model_config", "train_config", "videos"):
            if not _same_setting(payload["key"][part], self.key[part], defaults[part]):
                raise ResumeMismatch(
                    f"{path} was written by a run with a different {part.replace('_', ' ')}; "
                    "use a new checkpoint_dir (or the original settings) to resume"
                )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.progress = _Progress(**payload["progress"])
        _set_rng_state(payload["rng"])

    def save_best(self, val: float, epoch: int) -> None:
        extra = {"val_cosine": val, "epoch": epoch, "train_config": self.config.to_dict()}
        save_spliter(self.model, self.directory / BEST, extra=extra)

    # -- loop

    def step(self, batch: Sequence[tuple[int, Example]]) -> float:
        inputs = batch_inputs(self.model, self.train_data, batch, self.config.regime, self.time_scale)
        pred = self.model(inputs.text, inputs.start_state, inputs.step)
        loss = self.loss_fn(pred.float(), inputs.start_state.float(), inputs.start_true, inputs.target_true)
        value = loss.item()
        if not math.isfinite(value):
            ids = sorted({self.train_data.ids[v] for v, _ in batch})[:5]
            raise TrainingDiverged(
                f"{self.directory}: loss is {value} at epoch {self.progress.epoch} step {self.progress.step_in_epoch} "
                f"(videos {ids}...); lower lr or check the store"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return value

    def checkpoint_validation(self) -> None:
        """Validate, record a history row for the steps since the last one, keep best.pt, decide early stopping."""
        p, c = self.progress, self.config
        val = self.validate()
        p.history.append({
            "epoch": p.epoch,
            "train_loss": p.epoch_loss_sum / max(1, p.epoch_examples),
            "val_cosine": val,
            "lr": p.last_lr,
            "steps": p.global_step,
            "examples": p.epoch_examples,
        })
        if val > p.best_val_cosine:
            p.best_val_cosine, p.best_epoch, p.best_step, p.epochs_since_best = val, p.epoch, p.global_step, 0
            self.save_best(val, p.epoch)
        else:
            p.epochs_since_best += 1
        p.epoch_loss_sum, p.epoch_examples = 0.0, 0
        p.stopped_early = c.patience is not None and p.epochs_since_best >= c.patience

    def run(self, callback: Callable[[StepInfo], None] | None) -> bool:
        """Train to the end (True) or until ``stop_after_steps`` (False).

        The end is the budget (steps or examples, exact also across resumes), else ``epochs``; early stopping
        (``patience`` validations without improvement) may end it sooner.
        """
        while not self.progress.done:
            if self.run_epoch(callback):
                return False
        return True

    def run_epoch(self, callback: Callable[[StepInfo], None] | None) -> bool:
        """The rest of the current epoch; True when ``stop_after_steps`` interrupted it."""
        p, c = self.progress, self.config
        batches = self.batches(p.epoch)
        self.model.train()
        total = "budget" if c.budgeted else str(c.epochs)
        bar = tqdm(total=len(batches), initial=p.step_in_epoch, desc=f"epoch {p.epoch + 1}/{total}",
                   disable=not c.progress, leave=False, dynamic_ncols=True)
        with bar:
            for index in range(p.step_in_epoch, len(batches)):
                batch = batches[index]
                if c.budget_examples is not None:
                    batch = batch[: c.budget_examples - p.examples_seen]
                p.last_lr = self.optimizer.param_groups[0]["lr"]
                loss = self.step(batch)
                p.epoch_loss_sum += loss * len(batch)
                p.epoch_examples += len(batch)
                p.examples_seen += len(batch)
                p.step_in_epoch, p.global_step = index + 1, p.global_step + 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                budget_done = self.budget_reached()
                if budget_done or (c.val_every is not None and p.global_step % c.val_every == 0):
                    self.checkpoint_validation()
                    p.done = budget_done or p.stopped_early
                if p.done or (c.checkpoint_every and p.global_step % c.checkpoint_every == 0):
                    self.save()
                if callback is not None:
                    callback(StepInfo(p.epoch, p.step_in_epoch, p.global_step, loss, p.last_lr))
                if p.done:
                    return False
                if c.stop_after_steps is not None and p.global_step >= c.stop_after_steps:
                    self.save()
                    return True
        if c.val_every is None:
            self.checkpoint_validation()
        p.epoch, p.step_in_epoch = p.epoch + 1, 0
        p.done = p.stopped_early or (not c.budgeted and p.epoch >= c.epochs)
        if p.done and not (p.history and p.history[-1]["steps"] == p.global_step):
            self.checkpoint_validation()  # the end always has a validation (and its history row)
        self.save()
        return False

    def result(self, finished: bool) -> TrainResult:
        p = self.progress
        return TrainResult(
            best_epoch=p.best_epoch,
            best_val_cosine=p.best_val_cosine,
            history=[dict(h) for h in p.history],
            checkpoint=self.directory / BEST,
            initial_val_cosine=p.initial_val_cosine,
            finished=finished,
            stopped_early=p.stopped_early,
            global_step=p.global_step,
            examples_seen=p.examples_seen,
            wall_s=p.wall_s,
            best_step=p.best_step,
        )


def train(
    model_config: SpliterConfig,
    train_config: TrainConfig,
    store: Any,
    checkpoint_dir: str | os.PathLike,
    *,
    callback: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train a Spliter on the store's train videos, select on its val videos; resumes from checkpoint_dir/last.pt.

    ``callback`` (optional) is called after every optimiser step; an exception from it stops the run, which
    resumes from the last checkpoint on the next call.
    """
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    device = select_device(train_config.device)
    where = str(getattr(store, "path", "the embedding store"))
    train_records, val_records = split_videos(store, train_config.val_fraction)
    host = torch.device("cpu")
    train_data, val_data = VideoTensors(train_records, device, host), VideoTensors(val_records, device, host)
    if hasattr(store, "drop_cache"):  # the tensors hold what training needs; the store's shard cache (fp16 copies
        store.drop_cache()  # of every record read, ~32 GiB for MSR-VTT train x 20 captions) would sit idle
    storage = data_storage(train_config.data_placement, device, train_data.nbytes + val_data.nbytes)
    for data in (train_data, val_data):
        data.check_against(model_config, where)
        data.store_on(storage)
    with _deterministic(train_config.deterministic, device):
        run = _Run(model_config, train_config, train_data, val_data, directory, device)
        finished = run.run(callback)
    return run.result(finished)
