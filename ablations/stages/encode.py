"""The encode stage: the data source's captioned videos -> an embedding store (or the source writes one)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ablations.runfolder import write_json
from ablations.sources import SOURCES
from ablations.stages.context import RunContext
from ablations.stages.resources import Resources
from ablations.study import Trial
from spliter.data.splits import assign_splits
from spliter.data.store import EmbeddingStore
from spliter.pipeline import encode_videos

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
    splits = None
    if data["test_fraction"] > 0 or data["unseen_fraction"] > 0:
        # Held-out test videos (and whole captions for test_unseen); none of them reaches training.
        captions: dict[str, str] = {}
        for video in listing.videos:  # a duplicate id is encoded once (its first entry), see encode_videos
            captions.setdefault(video.video_id, video.caption)
        ids = list(captions)
        groups = list(captions.values()) if data["unseen_fraction"] > 0 else None
        splits = assign_splits(ids, groups, val_fraction=data["val_fraction"], test_fraction=data["test_fraction"],
                               unseen_fraction=data["unseen_fraction"], seed=data["split_seed"])
    report = encode_videos(
        listing.videos, resources.backend(trial), store_path, frames=data["frames"], fps=data["fps"],
        size=backend_cfg["encode_size"], prior_seed=backend_cfg["prior_seed"], prior_steps=backend_cfg["prior_steps"],
        guidance=backend_cfg["guidance"], val_fraction=data["val_fraction"], split_seed=data["split_seed"],
        progress=ctx.progress, splits=splits,
    )
    skipped = [{"video": v, "reason": r} for v, r in list(listing.problems) + list(report.skipped)]
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
