"""The encode stage: the data source's captioned videos -> an embedding store (or the source writes one).

``data.test_fraction`` holds out a hashed share of the videos as the store's ``test`` split (never trained
on, never seen by a prior). A backend with a retrieval prior (``fit_prior``, e.g. pixel-linear) is fitted
here, before any video is encoded, on the caption and first frame of the ``train`` videos only; every later
process refits it from the store's ``train`` split (``Resources.fitted_backend``), which holds the same pairs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ablations.runfolder import write_json
from ablations.sources import SOURCES
from ablations.stages.context import RunContext
from ablations.stages.resources import Resources
from ablations.study import Trial
from spliter.data.store import EmbeddingStore
from spliter.data.video import VideoError
from spliter.pipeline import assign_split, derive_seed, encode_videos, load_frames

log = logging.getLogger(__name__)


def run(ctx: RunContext, resources: Resources, trial: Trial, work: Path) -> dict:
    data = trial.config["data"]
    source = SOURCES.get(data["source"])
    store_path = work / "store"
    if source.store is not None:
        if store_path.exists():
            shutil.rmtree(store_path)
        store = source.store(data, store_path)
        write_json(work / "skipped.json", [])
        return {"n_videos": len(store), "skipped": 0}

    listing = source.videos(data, work)
    backend_cfg = trial.config["backend"]
    backend = resources.backend(trial)
    test = [v for v in listing.videos if is_test(v.video_id, data.get("test_fraction", 0.0), data["split_seed"])]
    rest = [v for v in listing.videos if v not in test]
    if hasattr(backend, "fit_prior"):
        fit_retrieval_prior(backend, rest, data, backend_cfg["encode_size"])
    settings = dict(frames=data["frames"], fps=data["fps"], size=backend_cfg["encode_size"],
                    prior_seed=backend_cfg["prior_seed"], prior_steps=backend_cfg["prior_steps"],
                    guidance=backend_cfg["guidance"], val_fraction=data["val_fraction"], split_seed=data["split_seed"],
                    progress=ctx.progress)
    report = encode_videos(rest, backend, store_path, **settings)
    reports = [report] + ([encode_videos(test, backend, store_path, split="test", **settings)] if test else [])
    skipped = [{"video": v, "reason": r} for v, r in list(listing.problems) + [s for r in reports for s in r.skipped]]
    write_json(work / "skipped.json", skipped)
    for item in skipped:
        log.warning("encode: skipped %s: %s", item["video"], item["reason"])
    n_videos = len(EmbeddingStore.open(store_path))
    if n_videos == 0:  # an empty store is not a finished encode: every later stage would fail less clearly
        first = f" (first: {skipped[0]['video']}: {skipped[0]['reason']})" if skipped else ""
        raise RuntimeError(
            f"data source {data['source']!r} gave no usable videos: {len(skipped)} skipped{first}; "
            f"see {work / 'skipped.json'}"
        )
    return {"n_videos": n_videos, "skipped": len(skipped)}


def is_test(video_id: str, fraction: float, split_seed: int) -> bool:
    """A fixed pseudo-random `fraction` of ids (from the split seed and the id alone) is held out for test."""
    return fraction > 0 and derive_seed(split_seed, "test", video_id) / 2.0**63 < fraction


def fit_retrieval_prior(backend: Any, videos: list[Any], data: dict, size: int) -> int:
    """Fit a retrieval prior on the caption and first frame of the videos that land in ``train``; returns N."""
    train = [v for v in videos if assign_split(v.video_id, data["val_fraction"], data["split_seed"]) == "train"]
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
