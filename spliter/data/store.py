"""EmbeddingStore: the one on-disk format every stage shares (architecture.md "The embedding store").

A store is a folder::

    meta.json                 {"format", "version", "dim", "text_tokens", "meta": user meta (backend identity,
                               prior seed/steps, ...)}
    manifest.parquet          one row per video, in insertion order (see MANIFEST_SCHEMA)
    shards/shard-NNNNN.safetensors
                              per video, keys "<video_id>/<field>": text_hidden (T,D), text_embed (D),
                              prior_embed (D), negative_prior_embed (D, optional), frame_embeds (F,D) in fp16;
                              frame_times (F,) in float64 seconds

Embeddings are stored in fp16 and handed back as float32 torch tensors (frame times stay float64).

Crash safety: a shard is written to a temporary file and moved into place with ``os.replace``; the manifest is
then rewritten the same way. The manifest is the source of truth: a shard or temporary file it does not
reference is ignored, so a killed writer loses at most the videos of the shard it had not flushed.
``EmbeddingStore.create`` on an existing store with the same dims and meta opens it for append, and
``store.has(video_id)`` lets an encoder skip the videos already done.

Validation, on ``add`` and on ``open``: shapes against (T, D), NaN/Inf (also after the fp16 conversion, where
values beyond ±65504 become inf), strictly increasing frame times, at least two frames, unique video ids, a
known split. Every error is one line that names the store, the video (or file) and what to do.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors
from torch import Tensor

from spliter.atomic import write_atomic

FORMAT = "spliter-embedding-store"
VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test", "test_unseen")  # see spliter.data.splits
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.parquet"
SHARD_DIR = "shards"
MIN_FRAMES = 2

MANIFEST_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("caption", pa.string()),
        ("split", pa.string()),
        ("n_frames", pa.int32()),
        ("fps", pa.float64()),
        ("duration_s", pa.float64()),
        ("source", pa.string()),
        ("shard", pa.string()),
        ("dim", pa.int32()),
        ("text_tokens", pa.int32()),
        ("has_negative", pa.bool_()),
        ("backend", pa.string()),
    ]
)

# Stored in fp16 (frame_times in float64); shapes are checked against (T, D, F) by _check_tensors.
_EMBED_FIELDS = ("text_hidden", "text_embed", "prior_embed", "negative_prior_embed", "frame_embeds")
_FP16_MAX = torch.finfo(torch.float16).max
# Round-to-nearest sends |x| >= 65520 (halfway between 65504 and the would-be 65536) to inf in fp16.
_FP16_OVERFLOW = 65520.0


class StoreError(ValueError):
    """A store or a video in it cannot be used; the message names the store, the video or file, and what to do."""


class StoreNotFound(StoreError, FileNotFoundError):
    """The store folder (or its meta.json) does not exist."""


class CorruptStore(StoreError):
    """A store file is unreadable or inconsistent with the manifest."""


class InvalidVideo(StoreError):
    """A video's tensors or metadata are unusable (bad shape, NaN/Inf, unsorted times, ...)."""


class VideoNotInStore(StoreError, KeyError):
    """``store.get`` of an id the store does not hold (also a KeyError, as for any lookup)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class VideoRecord:
    """One video's embeddings; float32 tensors, ``frame_times`` float64 seconds."""

    video_id: str
    caption: str
    split: str
    text_hidden: Tensor
    text_embed: Tensor
    prior_embed: Tensor
    negative_prior_embed: Tensor | None
    frame_embeds: Tensor
    frame_times: Tensor
    fps: float | None
    source: str | None

    @property
    def n_frames(self) -> int:
        return int(self.frame_embeds.shape[0])


def _backend_name(meta: dict[str, Any]) -> str | None:
    backend = meta.get("backend")
    if isinstance(backend, dict):
        backend = backend.get("name")
    return None if backend is None else str(backend)


def _json_roundtrip(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """The meta as it will read back from meta.json (tuples become lists), or a clear error."""
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as error:
        raise StoreError(f"{where}: meta must be JSON-serialisable ({error}); pass plain dicts, lists, str and numbers") from error



def _first_index(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape)]


# Element-wise work on one video's tensors goes through numpy: torch's intra-op thread pool costs more than
# the work itself at these sizes (~100k elements), by 10-100x on a busy machine.


def _half(t: Tensor) -> Tensor:
    return torch.from_numpy(t.numpy().astype(np.float16))


def _single(t: Tensor) -> Tensor:
    return torch.from_numpy(t.numpy().astype(np.float32))


def _nonfinite(t: Tensor) -> np.ndarray:
    """Boolean mask of the NaN/Inf entries of a CPU tensor."""
    a = t.numpy()
    if a.dtype == np.float16:  # all-ones exponent bits = inf or NaN; integer ops beat emulated fp16 compares
        return (a.view(np.uint16) & 0x7C00) == 0x7C00
    return ~np.isfinite(a)


class EmbeddingStore:
    """A folder of per-video embeddings. Build with :meth:`create` (writer) or :meth:`open` (read-only)."""

    def __init__(self, path: Path, dim: int, text_tokens: int, meta: dict[str, Any], writable: bool,
                 shard_size: int = 64) -> None:
        self.path = path
        self.dim = dim
        self.text_tokens = text_tokens
        self.meta = meta
        self.shard_size = shard_size
        self._writable = writable
        self._rows: list[dict[str, Any]] = []  # flushed manifest rows, insertion order
        self._where: dict[str, int] = {}  # video_id -> index into _rows + _pending
        self._pending: list[tuple[dict[str, Any], dict[str, Tensor]]] = []
        self._shards: dict[str, dict[str, Tensor]] = {}  # decoded shard cache (fp16 / float64 tensors)
        self._validated: set[str] = set()
        self._next_shard = 0

    # ------------------------------------------------------------------------------------------ construction

    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, text_tokens: int, meta: dict[str, Any] | None = None,
               shard_size: int = 64) -> EmbeddingStore:
        """A writable store at ``path``: a new one, or an existing one with the same dims and meta (append)."""
        path = Path(path)
        for name, value in (("dim", dim), ("text_tokens", text_tokens), ("shard_size", shard_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StoreError(f"store {path}: {name} must be a positive integer, got {value!r}")
        meta = _json_roundtrip(meta or {}, f"store {path}")
        if (path / META_FILE).exists():
            store = cls._load(path, writable=True, validate=True, shard_size=shard_size)
            store._check_same(dim, text_tokens, meta)
            return store
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StoreError(
                f"store {path}: exists and is not an embedding store (no {META_FILE}); choose a new or empty folder"
            )
        (path / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        header = {"format": FORMAT, "version": VERSION, "dim": dim, "text_tokens": text_tokens, "meta": meta}
        store = cls(path, dim, text_tokens, meta, writable=True, shard_size=shard_size)
        store._write_manifest([])
        write_atomic(path / META_FILE, json.dumps(header, indent=2, sort_keys=True).encode(), fsync=True)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, validate: bool = True) -> EmbeddingStore:
        """A read-only store. ``validate`` checks every shard now; otherwise each shard is checked when first read."""
        return cls._load(Path(path), writable=False, validate=validate)

    @classmethod
    def _load(cls, path: Path, writable: bool, validate: bool, shard_size: int = 64) -> EmbeddingStore:
        if not path.is_dir():
            raise StoreNotFound(f"store {path}: no such folder; check the path or encode videos into it first")
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise StoreNotFound(f"store {path}: {META_FILE} is missing, so this is not an embedding store; check the path")
        try:
            header = json.loads(meta_path.read_text())
            if header.get("format") != FORMAT:
                raise ValueError(f"format is {header.get('format')!r}, expected {FORMAT!r}")
            if header.get("version") != VERSION:
                raise ValueError(f"format version {header.get('version')!r}; this code reads version {VERSION}")
            dim, text_tokens, meta = int(header["dim"]), int(header["text_tokens"]), dict(header["meta"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise CorruptStore(f"store {path}: {meta_path} is unreadable ({error}); re-encode into a new folder") from error
        store = cls(path, dim, text_tokens, meta, writable=writable, shard_size=shard_size)
        store._read_manifest()
        if validate:
            store.validate()
        return store

    def _check_same(self, dim: int, text_tokens: int, meta: dict[str, Any]) -> None:
        if (dim, text_tokens) != (self.dim, self.text_tokens):
            raise StoreError(
                f"store {self.path}: holds dim={self.dim}, text_tokens={self.text_tokens} but dim={dim}, "
                f"text_tokens={text_tokens} were asked for; use a new folder for a different backend"
            )
        if meta != self.meta:
            keys = sorted(k for k in set(meta) | set(self.meta) if meta.get(k) != self.meta.get(k))
            raise StoreError(
                f"store {self.path}: was written with different meta (keys {keys} differ); "
                f"resume with the same settings or use a new folder"
            )

    # -------------------------------------------------------------------------------------------- manifest

    def _read_manifest(self) -> None:
        manifest = self.path / MANIFEST_FILE
        if not manifest.is_file():
            raise CorruptStore(f"store {self.path}: {manifest} is missing; re-encode into a new folder")
        try:
            table = pq.read_table(manifest)
        except (pa.ArrowException, OSError) as error:
            raise CorruptStore(f"store {self.path}: {manifest} is unreadable ({error}); re-encode into a new folder") from error
        missing = [name for name in MANIFEST_SCHEMA.names if name not in table.column_names]
        if missing:
            raise CorruptStore(f"store {self.path}: {manifest} lacks columns {missing}; re-encode into a new folder")
        rows = table.select(MANIFEST_SCHEMA.names).to_pylist()
        shard_files = {p.name for p in (self.path / SHARD_DIR).glob("shard-*.safetensors")}
        for row in rows:
            self._check_row(row, shard_files)
            self._where[row["video_id"]] = len(self._rows)
            self._rows.append(row)
        indices = [int(name[len("shard-"):-len(".safetensors")]) for name in shard_files
                   if name[len("shard-"):-len(".safetensors")].isdigit()]
        self._next_shard = max(indices, default=-1) + 1

    def _check_row(self, row: dict[str, Any], shard_files: set[str]) -> None:
        video = f"store {self.path}: video {row['video_id']!r}"
        fix = "re-encode into a new folder"
        if row["video_id"] in self._where:
            raise CorruptStore(f"{video}: appears twice in {MANIFEST_FILE}; {fix}")
        if row["split"] not in SPLITS:
            raise CorruptStore(f"{video}: unknown split {row['split']!r} in {MANIFEST_FILE} (allowed {SPLITS}); {fix}")
        if (row["dim"], row["text_tokens"]) != (self.dim, self.text_tokens):
            raise CorruptStore(
                f"{video}: manifest dims (D={row['dim']}, T={row['text_tokens']}) differ from {META_FILE} "
                f"(D={self.dim}, T={self.text_tokens}); {fix}"
            )
        if row["n_frames"] is None or row["n_frames"] < MIN_FRAMES:
            raise CorruptStore(f"{video}: has {row['n_frames']} frames, at least {MIN_FRAMES} are needed; re-encode this video")
        if row["shard"] not in shard_files:
            raise CorruptStore(f"{video}: its shard {self.path / SHARD_DIR / row['shard']} is missing; {fix}")

    def _write_manifest(self, rows: list[dict[str, Any]]) -> None:
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), buffer)
        write_atomic(self.path / MANIFEST_FILE, buffer.getvalue().to_pybytes(), fsync=True)

    # ------------------------------------------------------------------------------------------------ write

    def add(
        self,
        video_id: str,
        caption: str,
        text_hidden: Tensor,
        text_embed: Tensor,
        prior_embed: Tensor,
        frame_embeds: Tensor,
        frame_times: Tensor,
        split: str = "train",
        negative_prior_embed: Tensor | None = None,
        fps: float | None = None,
        source: str | None = None,
    ) -> None:
        """Validate one video and queue it; a full shard (``shard_size`` videos) is flushed to disk."""
        if not self._writable:
            raise StoreError(f"store {self.path}: opened read-only; use EmbeddingStore.create(path, ...) to append")
        if not isinstance(video_id, str) or not video_id:
            raise InvalidVideo(f"store {self.path}: video id {video_id!r} must be a non-empty string")
        video = f"store {self.path}: video {video_id!r}"
        if video_id in self._where:
            raise InvalidVideo(f"{video}: is already in the store; skip it (store.has(id)) or give it a new id")
        if split not in SPLITS:
            raise InvalidVideo(f"{video}: unknown split {split!r}; use one of {SPLITS}")
        if not isinstance(caption, str):
            raise InvalidVideo(f"{video}: caption must be a string, got {type(caption).__name__}")
        if fps is not None and not (math.isfinite(float(fps)) and float(fps) > 0):
            raise InvalidVideo(f"{video}: fps must be a positive number or None, got {fps!r}")
        given = {"text_hidden": text_hidden, "text_embed": text_embed, "prior_embed": prior_embed,
                 "negative_prior_embed": negative_prior_embed, "frame_embeds": frame_embeds}
        tensors: dict[str, Tensor] = {}
        for name, value in given.items():
            if value is None:
                continue
            x = torch.as_tensor(value).detach().cpu()
            if not x.is_floating_point():
                raise InvalidVideo(f"{video}: {name} must be a floating-point tensor, got {x.dtype}")
            tensors[name] = x if x.dtype in (torch.float16, torch.float32, torch.float64) else x.float()
        tensors["frame_times"] = torch.as_tensor(frame_times).detach().cpu().to(torch.float64, copy=True)
        fix = "fix the input or re-encode this video"
        self._check_tensors(video, tensors, fix, n_frames=None)
        for name in _EMBED_FIELDS:
            if name in tensors:
                overflow = np.abs(tensors[name].numpy()) >= _FP16_OVERFLOW
                if overflow.any():
                    raise InvalidVideo(
                        f"{video}: {name} has values beyond the fp16 range (|x| > {_FP16_MAX:g}, first at "
                        f"{_first_index(overflow)}) that would be stored as inf; rescale or re-encode this video"
                    )
                tensors[name] = _half(tensors[name])
        times = tensors["frame_times"]
        row = {
            "video_id": video_id, "caption": caption, "split": split, "n_frames": int(times.shape[0]),
            "fps": None if fps is None else float(fps), "duration_s": float(times[-1] - times[0]),
            "source": None if source is None else str(source), "shard": None, "dim": self.dim,
            "text_tokens": self.text_tokens, "has_negative": negative_prior_embed is not None,
            "backend": _backend_name(self.meta),
        }
        self._where[video_id] = len(self._rows) + len(self._pending)
        self._pending.append((row, tensors))
        if len(self._pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write the queued videos as one new shard, then the manifest (each atomically)."""
        if not self._pending:
            return
        name = f"shard-{self._next_shard:05d}.safetensors"
        payload = {f"{row['video_id']}/{field}": t for row, tensors in self._pending for field, t in tensors.items()}
        rows = [{**row, "shard": name} for row, _ in self._pending]
        write_atomic(self.path / SHARD_DIR / name, save_tensors(payload, metadata={"format": FORMAT}), fsync=True)
        self._write_manifest(self._rows + rows)  # if this fails, the shard is an ignored orphan
        self._rows.extend(rows)
        self._shards[name] = payload
        self._validated.add(name)
        self._pending.clear()
        self._next_shard += 1

    def close(self) -> None:
        """Flush what is queued; a writer must be closed (or used as a context manager) to keep the last shard."""
        if self._writable:
            self.flush()
            self._writable = False

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        # Flushed even on an exception: every queued video was validated, so resuming can skip it.
        self.close()

    # ------------------------------------------------------------------------------------------------- read

    def __len__(self) -> int:
        return len(self._rows) + len(self._pending)

    def __iter__(self) -> Iterator[VideoRecord]:
        for video_id in self.ids():
            yield self.get(video_id)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._where

    def has(self, video_id: str) -> bool:
        return video_id in self._where

    def _all_rows(self) -> list[dict[str, Any]]:
        return self._rows + [row for row, _ in self._pending]

    def ids(self, split: str | None = None) -> list[str]:
        """Video ids in insertion order, optionally of one split."""
        if split is not None:
            self._check_split_name(split)
        return [row["video_id"] for row in self._all_rows() if split is None or row["split"] == split]

    def split(self, name: str) -> list[VideoRecord]:
        """The records of one split ("train", "val" or "test"), in insertion order."""
        return [self.get(video_id) for video_id in self.ids(name)]

    def _check_split_name(self, name: str) -> None:
        if name not in SPLITS:
            raise StoreError(f"store {self.path}: unknown split {name!r}; use one of {SPLITS}")

    def manifest(self) -> list[dict[str, Any]]:
        """A copy of the manifest rows (flushed and queued), in insertion order."""
        return [dict(row) for row in self._all_rows()]

    def drop_cache(self) -> None:
        """Forget the decoded shards (each is read again when next asked for); written shards stay on disk."""
        self._shards.clear()

    def get(self, video_id: str) -> VideoRecord:
        """One video's record (float32 embeddings, float64 times)."""
        index = self._where.get(video_id)
        if index is None:
            raise VideoNotInStore(f"store {self.path}: no video {video_id!r}; see store.ids() for what it holds")
        if index < len(self._rows):
            row = self._rows[index]
            shard = self._shard(row["shard"])
            tensors = {field: shard[f"{video_id}/{field}"] for field in (*_EMBED_FIELDS, "frame_times")
                       if f"{video_id}/{field}" in shard}
        else:
            row, tensors = self._pending[index - len(self._rows)]
        negative = tensors.get("negative_prior_embed")
        return VideoRecord(
            video_id=video_id,
            caption=row["caption"],
            split=row["split"],
            text_hidden=_single(tensors["text_hidden"]),
            text_embed=_single(tensors["text_embed"]),
            prior_embed=_single(tensors["prior_embed"]),
            negative_prior_embed=None if negative is None else _single(negative),
            frame_embeds=_single(tensors["frame_embeds"]),
            frame_times=tensors["frame_times"].clone(),
            fps=row["fps"],
            source=row["source"],
        )

    def _shard(self, name: str) -> dict[str, Tensor]:
        cached = self._shards.get(name)
        if cached is None:
            cached = self._read_shard(name)
            self._shards[name] = cached
        return cached

    def _read_shard(self, name: str) -> dict[str, Tensor]:
        file = self.path / SHARD_DIR / name
        try:
            tensors = load_file(file)
        except (SafetensorError, OSError, RuntimeError, ValueError) as error:
            raise CorruptStore(f"store {self.path}: shard {file} is unreadable ({error}); re-encode into a new folder") from error
        if name not in self._validated:
            self._check_shard(name, tensors)
            self._validated.add(name)
        return tensors

    def validate(self) -> None:
        """Check every shard against the manifest (shapes, dtypes, NaN/Inf, frame order); raise on the first problem."""
        for name in dict.fromkeys(row["shard"] for row in self._rows):
            if name not in self._validated:
                self._read_shard(name)

    def _check_shard(self, name: str, tensors: dict[str, Tensor]) -> None:
        fix = "re-encode this video into a new store"
        for row in self._rows:
            if row["shard"] != name:
                continue
            video_id = row["video_id"]
            video = f"store {self.path}: video {video_id!r} (shard {name})"
            fields = [*_EMBED_FIELDS, "frame_times"]
            if not row["has_negative"]:
                fields.remove("negative_prior_embed")
            record: dict[str, Tensor] = {}
            for field in fields:
                t = tensors.get(f"{video_id}/{field}")
                if t is None:
                    raise CorruptStore(f"{video}: tensor {field!r} is missing from the shard; {fix}")
                expected = torch.float64 if field == "frame_times" else torch.float16
                if t.dtype != expected:
                    raise CorruptStore(f"{video}: {field} is stored as {t.dtype}, expected {expected}; {fix}")
                record[field] = t
            self._check_tensors(video, record, fix, n_frames=row["n_frames"])

    def _check_tensors(self, video: str, tensors: dict[str, Tensor], fix: str, n_frames: int | None) -> None:
        """Shapes, finiteness and frame-time order of one video's tensors; raises InvalidVideo naming it."""
        T, D = self.text_tokens, self.dim
        times = tensors["frame_times"]
        if times.ndim != 1:
            raise InvalidVideo(f"{video}: frame_times must have shape (F,), got {tuple(times.shape)}; {fix}")
        F = int(times.shape[0])
        if F < MIN_FRAMES:
            raise InvalidVideo(f"{video}: has {F} frame(s), at least {MIN_FRAMES} are needed; {fix}")
        if n_frames is not None and F != n_frames:
            raise InvalidVideo(f"{video}: has {F} frame times but the manifest says {n_frames} frames; {fix}")
        shapes = {"text_hidden": (T, D), "text_embed": (D,), "prior_embed": (D,),
                  "negative_prior_embed": (D,), "frame_embeds": (F, D)}
        for name, shape in shapes.items():
            if name in tensors and tuple(tensors[name].shape) != shape:
                raise InvalidVideo(
                    f"{video}: {name} has shape {tuple(tensors[name].shape)}, expected {shape} "
                    f"(T={T}, D={D}, F={F} frame times); {fix}"
                )
        for name, t in tensors.items():
            bad = _nonfinite(t)
            if bad.any():
                raise InvalidVideo(
                    f"{video}: {name} has {int(bad.sum())} NaN/Inf value(s) (first at {_first_index(bad)}); {fix}"
                )
        steps = times[1:] - times[:-1]
        if bool((steps <= 0).any()):
            i = int((steps <= 0).nonzero()[0]) + 1
            raise InvalidVideo(
                f"{video}: frame_times are not strictly increasing at index {i} "
                f"({float(times[i - 1]):g} then {float(times[i]):g}); {fix}"
            )

    def __repr__(self) -> str:
        mode = "writable" if self._writable else "read-only"
        return f"EmbeddingStore({str(self.path)!r}, videos={len(self)}, dim={self.dim}, text_tokens={self.text_tokens}, {mode})"
