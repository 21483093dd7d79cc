"""The generate stage's decoder at its compute floor: every unique decode once per study (issue 13).

A decode is a function of its key: the bytes of the embedding row and of the negative row, the noise seed, the
decoder steps, guidance and size, and the backend's identity (name, weights, dtype, device type).

The backends are not batch-invariant at the last bit: on the CPU the tiny Kandinsky decodes a row alone and
in a batch of six up to 1 uint8 level apart (0.02 % of the values, docs/benchmarks.md), while the same call
(same rows, same shape) gives the same bytes every time. So the decoder deduplicates whole backend calls,
never rows inside one, and fixes the calls a video is decoded in, with or without deduplication:

1. frame 0 on its own (one row);
2. every row whose key is frame 0's takes frame 0's image (``static`` with shared noise: the whole video;
   with ``per_frame`` noise the seeds differ and nothing is merged);
3. the other rows in one call, in order.

Deduplication then reuses a call's images wherever the identical call was made before:

* frame 0 is the start embedding (every rollout returns it as frame 0 exactly), the same for every variant
  of a (prompt, sample, start): its call goes through a content-addressed cache under the study folder
  (``decode_cache/<call>.npy``), decoded by the first trial that needs it; a file lock per call makes
  concurrent workers decode it once; the write is atomic (spliter.atomic). Only frame 0 is cached: the other
  calls differ between trials (deterministic baselines already run once), and caching them would store
  every video twice.
* within a stage, a call identical to an earlier one (a deterministic baseline's chain video is its step
  video) is taken from a memo of recent calls bounded in bytes.

Rule 2 makes a video's pixels differ from decoding all its rows in one call by at most the backend's
batching noise, which is why the generate stage's version was bumped with it; deduplication itself changes
no byte (tests/test_decodes.py compares every frame with ``dedup=False``).

Each stage records in its summary (meta.json ``decodes``) how many frames it asked for, how many images the
backend decoded and how many came from the cache or the memo (which trial decodes a shared frame 0 depends on
the order trials run in, so these counts are not outputs), and writes ``decodes.json``, the keys it needed
(an output: the same for any order). `study_decodes` sums them into the study's decoded / unique ratio (1.0
when every unique decode ran exactly once).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from ablations.runfolder import write_atomic, write_json

CACHE_DIR = "decode_cache"  # under the study folder (ROOT/<study>/)
DECODES_FILE = "decodes.json"  # in each generate stage folder


@dataclass(frozen=True)
class DecodeSettings:
    """The decode arguments besides the rows: decoder steps, guidance and output size."""

    steps: int
    guidance: float
    size: int


@dataclass
class DecodeCounts:
    """What one generate stage decoded."""

    requested: int = 0  # frames of every video it rendered
    decoded: int = 0  # images the backend decoded
    from_cache: int = 0  # images read from the study's cache (frame 0 decoded by another trial)
    reused: int = 0  # images of a call identical to an earlier one of the stage
    keys: set[str] = field(default_factory=set)  # every unique decode the stage needed

    def summary(self) -> dict[str, int]:
        """The counts for the stage summary (meta.json)."""
        return {"requested": self.requested, "decoded": self.decoded, "from_cache": self.from_cache,
                "reused": self.reused, "unique": len(self.keys)}


class VideoDecoder:
    """``decoder(embeds (F,D), negative (F,D), seeds) -> uint8 (F,size,size,3)`` in the calls of the module
    docstring; with `dedup`, a call made before is not made again.

    ``cache`` (a folder) shares frame 0 across trials; None decodes it in every trial. ``memo_bytes`` bounds the
    images of earlier calls kept for reuse. ``dedup=False`` makes every call (the reference of the tests).
    """

    def __init__(self, backend: Any, settings: DecodeSettings, cache: Path | None, dedup: bool = True,
                 memo_bytes: int = 256 << 20) -> None:
        self.backend, self.settings, self.cache, self.dedup = backend, settings, cache, dedup
        self.counts = DecodeCounts()
        self._identity = json.dumps(backend.identity(), sort_keys=True, default=str)
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_bytes, self._memo_used = memo_bytes, 0

    def __call__(self, embeds: torch.Tensor, negative: torch.Tensor, seeds: Sequence[int]) -> np.ndarray:
        embeds = torch.as_tensor(embeds, dtype=torch.float32).contiguous()
        negative = torch.as_tensor(negative, dtype=torch.float32).contiguous()
        seeds = [int(seed) for seed in seeds]
        keys = [self.key(embeds[i], negative[i], seeds[i]) for i in range(len(embeds))]
        self.counts.requested += len(keys)
        self.counts.keys.update(keys)
        start = self._call(keys[:1], embeds[:1], negative[:1], seeds[:1], shared=True)
        images = np.repeat(start, len(keys), axis=0)
        later = [i for i, key in enumerate(keys) if key != keys[0]]
        if later:
            index = torch.tensor(later)
            images[later] = self._call([keys[i] for i in later], embeds[index], negative[index],
                                       [seeds[i] for i in later], shared=False)
        return images

    def _call(self, keys: list[str], embeds: torch.Tensor, negative: torch.Tensor, seeds: list[int],
              shared: bool) -> np.ndarray:
        """One backend call's images, from an identical earlier call when deduplicating (`shared`: the cache)."""
        if not self.dedup:
            return self._decode(embeds, negative, seeds)
        call = keys[0] if len(keys) == 1 else hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        if call in self._memo:
            self._memo.move_to_end(call)
            self.counts.reused += len(keys)
            return self._memo[call]
        if shared and self.cache is not None:
            images = self._cached(call, embeds, negative, seeds)
        else:
            images = self._decode(embeds, negative, seeds)
        self._remember(call, images)
        return images

    def _remember(self, call: str, images: np.ndarray) -> None:
        """Keep a call's images as the newest memo entry, dropping the oldest beyond memo_bytes."""
        self._memo[call] = images
        self._memo_used += images.nbytes
        while self._memo_used > self._memo_bytes:
            self._memo_used -= self._memo.popitem(last=False)[1].nbytes

    def key(self, embed: torch.Tensor, negative: torch.Tensor, seed: int) -> str:
        """The content address of one decode (128 bits of sha256 over every input)."""
        digest = hashlib.sha256()
        for part in (embed.numpy().tobytes(), negative.numpy().tobytes(),
                     json.dumps([int(seed), asdict(self.settings)], sort_keys=True).encode(), self._identity.encode()):
            digest.update(hashlib.sha256(part).digest())  # length-safe: each part hashed on its own
        return digest.hexdigest()[:32]

    def _cached(self, call: str, embeds: torch.Tensor, negative: torch.Tensor, seeds: list[int]) -> np.ndarray:
        """A call's images from the study cache, decoding and storing them first when no trial has yet."""
        assert self.cache is not None
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / f"{call}.npy"
        with FileLock(str(path) + ".lock"):
            images = _read_images(path, (len(seeds), self.settings.size, self.settings.size, 3))
            if images is not None:
                self.counts.from_cache += len(seeds)
                return images
            images = self._decode(embeds, negative, seeds)
            buffer = io.BytesIO()
            np.save(buffer, images, allow_pickle=False)
            write_atomic(path, buffer.getvalue())
            return images

    def _decode(self, embeds: torch.Tensor, negative: torch.Tensor, seeds: list[int]) -> np.ndarray:
        s = self.settings
        self.counts.decoded += len(seeds)
        return self.backend.decode(embeds, negative, seeds, s.steps, s.guidance, s.size)

    def write(self, folder: Path) -> dict[str, int]:
        """Write decodes.json (frames asked for, the unique keys) into the stage folder; the summary's counts."""
        write_json(folder / DECODES_FILE, {"requested": self.counts.requested, "keys": sorted(self.counts.keys)})
        return self.counts.summary()


def _read_images(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Cached uint8 images of `shape`, or None when absent or unreadable (they are then decoded again)."""
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return images if images.dtype == np.uint8 and images.shape == shape else None


@dataclass(frozen=True)
class StudyDecodes:
    """Decodes over every finished generate stage of a study folder."""

    stages: int
    requested: int
    decoded: int
    unique: int  # distinct keys over all stages

    @property
    def ratio(self) -> float:
        """decoded / unique: 1.0 when every unique decode ran exactly once."""
        return self.decoded / self.unique if self.unique else float("nan")


def study_decodes(root: Path) -> StudyDecodes | None:
    """Sum the finished generate stages of a study folder (ROOT/<study>); None when none recorded decodes."""
    stages = requested = decoded = 0
    keys: set[str] = set()
    for path in sorted(Path(root).glob(f"trials/*/generate/{DECODES_FILE}")):
        data = json.loads(path.read_text())
        meta = json.loads((path.parent / "meta.json").read_text())
        stages += 1
        requested += int(data["requested"])
        decoded += int(meta["decodes"]["decoded"])
        keys.update(data["keys"])
    return StudyDecodes(stages, requested, decoded, len(keys)) if stages else None
