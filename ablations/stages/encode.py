"""The encode stage: the data source's captioned videos -> an embedding store (or the source writes one).

Besides the store it writes (schema in docs/results.md):
- skipped.json: every listed, unlisted, duplicate or unreadable file with its reason ({"video", "reason"});
- accepted.json: the videos in the store, each with its source file (path, size, mtime_ns), caption, split
  and the times of the sampled frames; stages that read source videos again (the FVD reference set) read
  exactly these;
- summary.json: counts (listed, accepted, skipped), the source's notes, and `rotated`: every accepted video
  whose rotation metadata turned its frames upright ({"video_id", "degrees"} counter-clockwise; each is
  also a warning), so a clip a player shows upright is never encoded sideways without notice.
The source files are part of the stage's identity (`data_identity`): a changed, added or repaired file makes
the stage stale, and the redo carries over the records of unchanged videos, so only those are encoded.

``data.test_fraction`` holds out a hashed share of the videos as the store's ``test`` split (never trained
on, never seen by a prior). A backend with a retrieval prior (``fit_prior``, e.g. pixel-linear) is fitted
here, before any video is encoded, on the caption and first frame of the ``train`` videos only; every later
process refits it from the store's ``train`` split (``Resources.fitted_backend``), which holds the same pairs.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ablations.runfolder import write_json
from ablations.sources import SOURCES
from ablations.stages.context import RunContext
from ablations.stages.resources import Resources
from ablations.study import Trial, stable_hash
from spliter.data.datasets import caption_record_id, long_captions
from spliter.data.splits import assign_splits
from spliter.data.store import EmbeddingStore, StoreError
from spliter.data.video import VideoError
from spliter.pipeline import assign_split, encode_videos, load_frames

log = logging.getLogger(__name__)
ACCEPTED, SKIPPED, SUMMARY = "accepted.json", "skipped.json", "summary.json"
# Fewest usable videos a study can train and score on (one train and one validation video).
MIN_USABLE = 2


class TooFewVideos(RuntimeError):
    """The data source left fewer usable videos than a study can run on."""


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:
    data = trial.config["data"]
    source = SOURCES.get(data["source"])
    store_path = work / "store"
    if source.store is not None:
        if store_path.exists():
            shutil.rmtree(store_path)
        store = source.store(data, store_path)
        write_json(work / SKIPPED, [])
        write_json(work / ACCEPTED, [])
        write_json(work / SUMMARY, {"listed": len(store), "accepted": len(store), "skipped": 0, "notes": [],
                                         "rotated": []})
        return {"n_videos": len(store), "skipped": 0}

    listing = source.videos(data, work)
    backend_cfg = trial.config["backend"]
    backend = resources.backend(trial)
    # The store's records: a video, or one per caption of a train video (data.captions_per_video).
    entries, splits = caption_records(listing.videos, data, held_out_splits(listing.videos, data))
    if hasattr(backend, "fit_prior"):  # on the train records, the pairs a later refit from the store sees
        fit_retrieval_prior(backend, entries, data, backend_cfg["encode_size"], splits)
    files = {v.video_id: _file_facts(v.path, work) for v in entries}
    previous = _previous_store(work, trial)
    carried = _reusable(previous, entries, files) if previous is not None else {}
    target = work / "new" if carried else store_path
    todo = [v for v in entries if v.video_id not in carried]
    report = encode_videos(
        todo, backend, target, frames=data["frames"], fps=data["fps"], size=backend_cfg["encode_size"],
        prior_seed=backend_cfg["prior_seed"], prior_steps=backend_cfg["prior_steps"], guidance=backend_cfg["guidance"],
        val_fraction=data["val_fraction"], split_seed=data["split_seed"], progress=ctx.progress, splits=splits,
    )
    if carried:
        _merge(store_path, previous, target, [v.video_id for v in entries])
        log.warning("encode: %d video(s) reused from the previous encode, %d encoded again or anew",
                    len(carried), report.encoded)
    rotated = [{"video_id": v, "degrees": d} for v, d in report.rotated] + _carried_rotations(work, carried)
    for item in rotated:
        log.warning("encode: %s has rotation metadata; its frames were turned %d degrees counter-clockwise "
                    "(upright, as players show it)", item["video_id"], item["degrees"])
    skipped = [{"video": v, "reason": r} for v, r in list(listing.problems) + list(report.skipped)]
    write_json(work / SKIPPED, skipped)
    for item in skipped:
        log.warning("encode: skipped %s: %s", item["video"], item["reason"])
    for note in listing.notes:
        log.warning("encode: %s", note)
    store = EmbeddingStore.open(store_path)
    accepted = _accepted(store, listing.videos, files)
    write_json(work / ACCEPTED, accepted)
    truncated = truncated_captions(resources.backend(trial), [v for v in listing.videos if store.has(v.video_id)])
    for item in truncated:
        log.warning("encode: the caption of %s has %d tokens; the text encoder keeps the first %d",
                    item["video_id"], item["tokens"], item["kept"])
    write_json(work / SUMMARY, {"listed": len(listing.videos), "accepted": len(accepted), "skipped": len(skipped),
                                "reused": len(carried), "notes": list(listing.notes), "truncated_captions": truncated,
                                "rotated": sorted(rotated, key=lambda item: item["video_id"])})
    if len(store) < MIN_USABLE:  # a store this small is not a finished encode: every later stage would fail less clearly
        first = f" (first: {skipped[0]['video']}: {skipped[0]['reason']})" if skipped else ""
        got = "no usable videos" if len(store) == 0 else f"only {len(store)} usable video(s)"
        raise TooFewVideos(
            f"data source {data['source']!r} gave {got}, fewer than the {MIN_USABLE} a study needs: "
            f"{len(skipped)} skipped{first}; see {work / SKIPPED}"
        )
    return {"n_videos": len(store), "skipped": len(skipped)}


def truncated_captions(backend: Any, videos: list) -> list[dict]:
    """Every caption the backend's text encoder truncates ({"video_id", "tokens", "kept"}); [] for a backend
    without a tokenizer (the tiny ones hash characters and truncate nothing)."""
    tokenizer = getattr(getattr(backend, "prior_pipeline", None), "tokenizer", None)
    if tokenizer is None:
        return []
    limit = int(backend.text_tokens)
    found = long_captions(videos, lambda caption: tokenizer(caption, truncation=False), limit=limit)
    return [{"video_id": video_id, "tokens": count, "kept": limit} for video_id, _, count in found]


def data_identity(trial: Trial, folder: Path) -> str | None:
    """What the encode read: the listing and each source file's size and mtime; None for a store source.

    `folder` is the stage folder (sources that render their videos keep them there).
    """
    data = trial.config["data"]
    source = SOURCES.get(data["source"])
    if source.store is not None:
        return None
    listing = source.videos(data, folder)
    return stable_hash({
        "videos": [[v.video_id, list(v.captions), _file_facts(v.path, folder)] for v in listing.videos],
        "problems": [list(p) for p in listing.problems],
    })


def _file_facts(path: Path, folder: Path) -> dict[str, Any]:
    """The source file as the identity sees it; paths inside the stage folder are relative (it is renamed)."""
    path = Path(path)
    shown = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
    try:
        stat = os.stat(path)
    except OSError:
        return {"path": shown, "size": None, "mtime_ns": None}
    return {"path": shown, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _previous_store(work: Path, trial: Trial) -> Path | None:
    """The store of this stage's finished folder when it was written with the same settings (a data redo)."""
    from ablations.stages.plan import stage_hash  # plan imports this module's siblings

    done = work.with_name(work.name.removesuffix(".partial"))
    marker = done / "DONE"
    if not marker.exists() or marker.read_text().strip() != stage_hash(trial, "encode"):
        return None
    if not (done / "store").is_dir() or not (done / ACCEPTED).exists():
        return None
    return done / "store"


def _reusable(previous: Path, videos: list, files: dict[str, dict]) -> dict[str, bool]:
    """Videos of the previous store whose source file and captions are unchanged and whose record reads back."""
    import json

    try:
        old = EmbeddingStore.open(previous, validate=False)
        before = {item["video_id"]: item for item in json.loads((previous.parent / ACCEPTED).read_text())}
    except (StoreError, OSError, ValueError):
        return {}
    keep = {}
    for video in videos:
        item = before.get(video.video_id)
        if item is None or item["file"] != files[video.video_id] or item["caption"] != video.caption:
            continue
        try:
            old.get(video.video_id)
        except (StoreError, OSError, ValueError, KeyError):
            # A damaged record: no carry-over at all, so the redo equals a fresh encode bit for bit.
            return {}
        keep[video.video_id] = True
    return keep


def _carried_rotations(work: Path, carried: dict[str, bool]) -> list[dict]:
    """The rotated entries of the previous summary for the videos carried over from it (not decoded again)."""
    import json

    if not carried:
        return []
    previous = work.with_name(work.name.removesuffix(".partial")) / SUMMARY
    try:
        before = json.loads(previous.read_text()).get("rotated", [])
    except (OSError, ValueError):
        return []
    return [item for item in before if item["video_id"] in carried]


def _merge(store_path: Path, previous: Path, new: Path, order: list[str]) -> None:
    """store_path <- the previous and the new records in listing order (the order a fresh encode writes)."""
    old, fresh = EmbeddingStore.open(previous, validate=False), EmbeddingStore.open(new)
    if store_path.exists():
        shutil.rmtree(store_path)  # a merge killed half-way is redone from its two inputs
    with EmbeddingStore.create(store_path, dim=fresh.dim, text_tokens=fresh.text_tokens, meta=fresh.meta) as merged:
        for video_id in order:
            source = fresh if fresh.has(video_id) else old if old.has(video_id) else None
            if source is None:
                continue
            r = source.get(video_id)
            merged.add(r.video_id, r.caption, r.text_hidden, r.text_embed, r.prior_embed, r.frame_embeds,
                       r.frame_times, split=r.split, negative_prior_embed=r.negative_prior_embed, fps=r.fps,
                       source=r.source)
    if (new / "skipped.json").exists():
        shutil.copy2(new / "skipped.json", store_path / "skipped.json")
    shutil.rmtree(new)


def _accepted(store: EmbeddingStore, videos: list, files: dict[str, dict]) -> list[dict]:
    rows = []
    for video in videos:
        if store.has(video.video_id):
            record = store.get(video.video_id)
            rows.append({"video_id": video.video_id, "path": str(video.path), "file": files[video.video_id],
                         "caption": video.caption, "split": record.split,
                         "frame_times": [round(float(t), 6) for t in record.frame_times]})
    return rows


def held_out_splits(videos: list[Any], data: dict) -> dict[str, str] | None:
    """Video id -> split when the study holds out test videos (and whole captions for test_unseen), else None
    (the hashed train/val assignment of encode_videos). None of the held-out videos reaches training."""
    if data["test_fraction"] <= 0 and data["unseen_fraction"] <= 0:
        return None
    captions: dict[str, str] = {}
    for video in videos:  # a duplicate id is encoded once (its first entry), see encode_videos
        captions.setdefault(video.video_id, video.caption)
    groups = list(captions.values()) if data["unseen_fraction"] > 0 else None
    return assign_splits(list(captions), groups, val_fraction=data["val_fraction"], test_fraction=data["test_fraction"],
                         unseen_fraction=data["unseen_fraction"], seed=data["split_seed"])


def caption_records(videos: list[Any], data: dict,
                    splits: dict[str, str] | None) -> tuple[list[Any], dict[str, str] | None]:
    """The entries encode_videos writes under data.captions_per_video, and their splits (None: hashed as before).

    "one": the videos as listed (their first caption). "all" and "sampled": every caption of a *train* video
    becomes its own store record (`caption_record_id`: "<video_id>#c<i>", the first keeps the id), in that
    video's split, so no split separates a video's captions; the trainer uses them all, or ("sampled") one per
    video per epoch (spliter.train). Held-out videos keep their first caption only: selection and scores are
    comparable across policies, and each test video is rendered once.

    Why records rather than a multi-caption record: the store's format and every reader stay as they are. The
    cost is the text states (T x D per caption; MSR-VTT's 20 captions x 77 x 1280 fp16 is ~3.9 MB per video) and,
    on disk, a copy of the frame embeddings per caption; frames are decoded and encoded once per video
    (encode_videos reuses a video's frames for its consecutive entries). The trainer (spliter.train.VideoTensors)
    holds the text states in fp16 and a video's frames once: ~200 KB per caption record, 26.7 GiB for the full
    MSR-VTT train split (7,010 x 20 records, extrapolated in docs/benchmarks.md), which its data_placement "auto"
    keeps in host memory unless it fits a quarter of the GPU.
    """
    policy = data.get("captions_per_video", "one")
    if policy == "one":
        return list(videos), splits
    entries, entry_splits = [], {}
    for video in videos:
        split = split_of(video.video_id, data, splits)
        count = len(video.captions) if split == "train" else 1
        for index, caption in enumerate(video.captions[:count]):
            record = caption_record_id(video.video_id, index)
            entries.append(replace(video, video_id=record, caption=caption, captions=(caption,)))
            entry_splits[record] = split
    return entries, entry_splits


def fit_retrieval_prior(backend: Any, videos: list[Any], data: dict, size: int,
                        splits: dict[str, str] | None = None) -> int:
    """Fit a retrieval prior on the caption and first frame of the videos that land in ``train``; returns N."""
    train = [v for v in videos if split_of(v.video_id, data, splits) == "train"]
    if not train:
        raise ValueError(f"data source {data['source']!r}: no train videos to fit the backend's retrieval prior on; "
                         "lower data.val_fraction / data.test_fraction or add videos")
    captions, firsts = [], []
    for video in train:
        try:
            firsts.append(load_frames(video, 2, data["fps"], size).frames[0])
        except VideoError:  # skipped (with its reason) by encode_videos as well
            continue
        captions.append(video.caption)
    if not firsts:
        raise ValueError(f"data source {data['source']!r}: none of its train videos can be read; see skipped.json")
    backend.fit_prior(captions, backend.encode_frames(np.stack(firsts)))
    return len(captions)


def split_of(video_id: str, data: dict, splits: dict[str, str] | None) -> str:
    """The split encode puts `video_id` in (the held-out assignment, else the hashed train/val one)."""
    return splits[video_id] if splits is not None else assign_split(video_id, data["val_fraction"], data["split_seed"])
