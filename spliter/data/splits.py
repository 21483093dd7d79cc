"""Which videos train, select and score: split assignment and the trainer's train/val records.

Splits (:data:`spliter.data.store.SPLITS`): ``train`` (optimiser steps, mean_motion fitting), ``val``
(checkpoint selection and early stopping), ``test`` (scores; every caption also occurs in train) and
``test_unseen`` (scores; a caption never seen in training). Nothing from either test split reaches training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from spliter.data.datasets import base_video_id

TEST_SPLITS: tuple[str, ...] = ("test", "test_unseen")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"assign_splits: {name} must be in [0, 1), got {value!r}")


def _take(n: int, fraction: float) -> int:
    """round(n * fraction), at least one when the fraction is positive and n > 1."""
    k = round(n * fraction)
    return max(k, 1) if fraction > 0 and n > 1 else k


def assign_splits(
    video_ids: Sequence[str],
    groups: Sequence[Hashable] | None = None,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    unseen_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, str]:
    """Video id -> split, a function of the ids (as a set), the groups and the seed.

    ``groups`` (one per video, e.g. the caption or a caption latent) lets whole groups be held out:
    ``unseen_fraction`` of the distinct groups go entirely to ``test_unseen``. Of the remaining videos,
    ``val_fraction`` and ``test_fraction`` (of those remaining) go to ``val`` and ``test``, chosen at random.
    A ``test`` video whose group then has no ``train`` video is relabelled ``test_unseen``, so ``test``
    means "caption seen in training" exactly. Without groups every test video is ``test``.
    """
    ids = [str(v) for v in video_ids]
    if len(set(ids)) != len(ids):
        raise ValueError("assign_splits: video ids must be unique")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction),
                        ("unseen_fraction", unseen_fraction)):
        _check_fraction(name, value)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"assign_splits: val_fraction + test_fraction must be < 1 to leave training videos, got "
            f"{val_fraction} + {test_fraction}"
        )
    if groups is not None and len(groups) != len(ids):
        raise ValueError(f"assign_splits: {len(groups)} groups for {len(ids)} videos; pass one group per video")
    if groups is None and unseen_fraction > 0:
        raise ValueError("assign_splits: unseen_fraction > 0 needs groups (which videos share a caption)")
    rng = np.random.default_rng(seed)
    order = sorted(range(len(ids)), key=lambda i: ids[i])  # independent of the caller's order
    group_of = {ids[i]: (None if groups is None else groups[i]) for i in order}
    split: dict[str, str] = {}
    if unseen_fraction > 0:
        distinct = sorted(set(group_of.values()), key=repr)
        held = {distinct[i] for i in rng.permutation(len(distinct))[: _take(len(distinct), unseen_fraction)]}
        if len(held) == len(distinct):
            raise ValueError(f"assign_splits: unseen_fraction={unseen_fraction} holds out every group; lower it")
        split = {v: "test_unseen" for v, g in group_of.items() if g in held}
    rest = [ids[i] for i in order if ids[i] not in split]
    shuffled = [rest[i] for i in rng.permutation(len(rest))]
    n_val, n_test = _take(len(rest), val_fraction), _take(len(rest), test_fraction)
    if n_val + n_test >= len(rest):
        raise ValueError(f"assign_splits: {len(rest)} videos are too few for val/test fractions "
                         f"{val_fraction}/{test_fraction} and at least one training video")
    for k, vid in enumerate(shuffled):
        split[vid] = "val" if k < n_val else "test" if k < n_val + n_test else "train"
    if groups is not None:
        trained = {group_of[v] for v, s in split.items() if s == "train"}
        for vid, name in split.items():
            if name == "test" and group_of[vid] not in trained:
                split[vid] = "test_unseen"
    return {vid: split[vid] for vid in ids}


def _hash_fraction(video_id: str) -> float:
    return int.from_bytes(hashlib.sha256(video_id.encode("utf-8")).digest()[:8], "big") / 2.0**64


class StoredRecords(Sequence):
    """A store's records in a given id order, each read when accessed: a split without all of it in memory at
    once (with a record per caption, the fp32 records of MSR-VTT's train split would take ~70 GB)."""

    def __init__(self, store: Any, ids: Sequence[str]) -> None:
        self.store, self.ids = store, list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return StoredRecords(self.store, self.ids[index])
        return self.store.get(self.ids[index])


def train_val_records(store: Any, val_fraction: float) -> tuple[StoredRecords, StoredRecords]:
    """(train, val) records, sorted by id: the store's "val" split, or a hashed-id share of its "train" split.

    The one definition of the training videos: the trainer and baseline fitting both use it, so a video the
    trainer holds out for validation never fits a baseline. The test splits are never read. The records are
    read from the store as they are iterated (:class:`StoredRecords`).
    """
    where = getattr(store, "path", "the embedding store")
    pool = sorted(store.ids("train"))
    val = sorted(store.ids("val"))
    if not val:  # hashed by the video, so a video's caption records (spliter.data.datasets) stay together
        val = [r for r in pool if _hash_fraction(base_video_id(r)) < val_fraction]
        pool = [r for r in pool if _hash_fraction(base_video_id(r)) >= val_fraction]
        if not val:
            raise ValueError(
                f"{where}: no 'val' split and val_fraction={val_fraction} put none of its {len(pool)} train videos "
                "into validation; raise val_fraction or encode with a val split"
            )
    if not pool:
        raise ValueError(f"{where}: no training videos (split 'train' is empty after the validation split)")
    return StoredRecords(store, pool), StoredRecords(store, val)
