"""data.captions_per_video: one (the first caption), all (a training record per caption), sampled (one caption
per video per epoch); held-out videos keep their first caption; a video's captions never straddle a split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ablations.cli import main
from ablations.stages.encode import caption_records, split_of
from ablations.study import StudyError, load_study
from spliter.data.datasets import CaptionedVideo, base_video_id, caption_record_id
from spliter.data.shapes import write_shapes_dataset
from spliter.data.store import EmbeddingStore
from spliter.regimes import RegimeConfig
from spliter.train import epoch_batches, sampled_records

DATA = {"val_fraction": 0.3, "split_seed": 0, "test_fraction": 0.0, "unseen_fraction": 0.0}


def videos(n: int = 12, captions: int = 3) -> list[CaptionedVideo]:
    return [CaptionedVideo(f"v{i}", f"clip {i} a", Path(f"v{i}.mp4"), "test",
                           captions=tuple(f"clip {i} {c}" for c in "abc"[:captions])) for i in range(n)]


@pytest.mark.parametrize("policy", ["all", "sampled"])
def test_train_videos_get_a_record_per_caption_and_held_out_videos_their_first(policy: str) -> None:
    listed = videos()
    entries, splits = caption_records(listed, {**DATA, "captions_per_video": policy}, None)
    by_video: dict[str, list[CaptionedVideo]] = {}
    for entry in entries:
        by_video.setdefault(base_video_id(entry.video_id), []).append(entry)
    held_out = 0
    for video in listed:
        split = split_of(video.video_id, DATA, None)  # the split "one" gives the video
        mine = by_video[video.video_id]
        assert {splits[e.video_id] for e in mine} == {split}  # never straddles a split
        if split == "train":
            assert [(e.video_id, e.caption) for e in mine] == [
                (caption_record_id(video.video_id, i), c) for i, c in enumerate(video.captions)]
        else:
            held_out += 1
            assert [(e.video_id, e.caption) for e in mine] == [(video.video_id, video.captions[0])]
    assert 0 < held_out < len(listed)


def test_one_keeps_the_listing_and_its_hashed_splits() -> None:
    listed = videos()
    assert caption_records(listed, {**DATA, "captions_per_video": "one"}, None) == (listed, None)
    assert caption_records(listed, DATA, None) == (listed, None)  # older trial configs have no key: "one"


def test_sampled_draws_one_caption_record_per_video_per_epoch_from_the_seed() -> None:
    ids = ["v1", "v1#c1", "v1#c2", "v2", "v3", "v3#c1"]
    per_epoch = [sampled_records(ids, epoch, seed=4) for epoch in range(40)]
    assert all(len({base_video_id(ids[i]) for i in chosen}) == len(chosen) == 3 for chosen in per_epoch)
    assert per_epoch == [sampled_records(ids, epoch, seed=4) for epoch in range(40)]
    assert {i for chosen in per_epoch for i in chosen} == set(range(len(ids)))  # every caption comes up
    assert per_epoch != [sampled_records(ids, epoch, seed=5) for epoch in range(40)]
    shuffled = ["v3#c1", "v2", "v1#c2", "v1", "v3", "v1#c1"]  # the draw follows the ids, not their order
    assert [sorted(shuffled[i] for i in sampled_records(shuffled, e, 4)) for e in range(5)] == [
        sorted(ids[i] for i in sampled_records(ids, e, 4)) for e in range(5)]


def test_epoch_batches_train_on_the_active_records_only() -> None:
    times = [np.arange(6, dtype=float) / 8 for _ in range(4)]
    batches = epoch_batches(times, RegimeConfig(pairs_per_video=2), 1.0, seed=0, epoch=0, batch_size=64, active=[1, 3])
    assert {vi for batch in batches for vi, _ in batch} == {1, 3}
    every = epoch_batches(times, RegimeConfig(pairs_per_video=2), 1.0, seed=0, epoch=0, batch_size=64)
    assert {vi for batch in every for vi, _ in batch} == {0, 1, 2, 3}


def study(folder: Path, **data) -> dict:
    return {
        "study": "captions", "seeds": [0],
        "data": {"source": "folder", "path": str(folder), "frames": 6, "fps": 8.0, "val_fraction": 0.3, **data},
        "backend": {"name": "tiny", "prior_steps": 2},
        "model": {"width": 8, "depth": 1, "heads": 2, "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 16, "patience": 1},
        "regime": {"pairs_per_video": 2},
        "generate": {"enabled": False},
        "metrics": {"select": ["embedding"]},
        "variants": {"base": {}}, "baselines": [], "controls": [],
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Shape videos whose captions.csv gives every video three captions."""
    root = write_shapes_dataset(tmp_path_factory.mktemp("corpus") / "shapes", n_videos=10, frames=6, size=32)
    with (root / "captions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (root / "captions.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["video_id", "caption"])
        writer.writeheader()
        for row in rows:
            # Two more captions that share no words with the first (so a prior must hold them to retrieve them).
            for caption in (row["caption"], f"take one of clip {row['video_id']}", f"take two of clip {row['video_id']}"):
                writer.writerow({"video_id": row["video_id"], "caption": caption})
    return root


def run_policy(tmp_path: Path, corpus: Path, policy: str) -> tuple[EmbeddingStore, dict]:
    path = tmp_path / f"{policy}.yaml"
    path.write_text(yaml.safe_dump(study(corpus, captions_per_video=policy)))
    out = tmp_path / policy
    assert main(["run", str(path), "--out", str(out), "--no-report"]) == 0
    (store_dir,) = (out / "captions" / "encode").glob("*/store")
    (meta,) = (out / "captions" / "trials").glob("base-*/train/meta.json")
    return EmbeddingStore.open(store_dir), json.loads(meta.read_text())


def test_each_policy_reaches_the_store_and_the_trainer(tmp_path: Path, corpus: Path) -> None:
    one, one_meta = run_policy(tmp_path, corpus, "one")
    every, every_meta = run_policy(tmp_path, corpus, "all")
    sampled, sampled_meta = run_policy(tmp_path, corpus, "sampled")
    n_train, n_held = len(one.split("train")), len(one.split("val"))
    assert len(one) == 10 and n_train and n_held
    assert len(every.split("train")) == 3 * n_train and len(every.split("val")) == n_held
    assert [r.caption for r in every.split("val")] == [r.caption for r in one.split("val")]  # first captions
    assert sorted(sampled.ids()) == sorted(every.ids())  # the same records; the trainer draws among them
    train = every.split("train")
    frames = {base_video_id(r.video_id): r.frame_embeds for r in train if r.video_id == base_video_id(r.video_id)}
    assert all(np.array_equal(r.frame_embeds, frames[base_video_id(r.video_id)]) for r in train)  # encoded once
    assert every_meta["examples"] == 3 * one_meta["examples"]  # a record per caption
    assert sampled_meta["examples"] == one_meta["examples"]  # one caption per video per epoch


def test_the_policy_is_validated_and_one_keeps_trial_ids(tmp_path: Path, corpus: Path) -> None:
    def ids(**data) -> set[str]:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(study(corpus, **data)))
        return {t.trial_id for t in load_study(path).trials}

    assert ids() == ids(captions_per_video="one") != ids(captions_per_video="all")
    with pytest.raises(StudyError, match="data.captions_per_video: 'first' is not one of"):
        ids(captions_per_video="first")
    synthetic = study(corpus, captions_per_video="all")
    synthetic["data"] = {"source": "synthetic", "captions_per_video": "all"}
    (tmp_path / "y.yaml").write_text(yaml.safe_dump(synthetic))
    with pytest.raises(StudyError, match="writes its store itself"):
        load_study(tmp_path / "y.yaml")


def test_a_retrieval_prior_fitted_at_encode_equals_its_refit_from_the_store_under_all(tmp_path: Path,
                                                                                      corpus: Path) -> None:
    """pixel-linear's prior is fitted on the train records before encoding and refitted from the store later:
    with a record per caption both must hold the same (caption, first frame) pairs."""
    import torch

    from spliter.backends import make_backend

    spec = study(corpus, captions_per_video="all")
    spec["backend"] = {"name": "pixel-linear", "encode_size": 32, "guidance": 1.0}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["encode", str(path), "--out", str(tmp_path / "runs")]) == 0
    (store_dir,) = (tmp_path / "runs" / "captions" / "encode").glob("*/store")
    store = EmbeddingStore.open(store_dir)
    train = store.split("train")
    assert any(r.video_id != base_video_id(r.video_id) for r in train)
    refit = make_backend("pixel-linear", device="cpu")
    assert refit.fit_prior_from_store(store, ("train",)) == len(train)
    prior, _ = refit.prior([r.caption for r in train], [0] * len(train), 2, 1.0)
    torch.testing.assert_close(prior, torch.stack([r.prior_embed for r in train]), atol=2e-3, rtol=0)
