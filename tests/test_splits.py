"""Split assignment: fractions, seeded and order-free, whole caption groups held out as unseen."""

import pytest

from spliter.data.splits import assign_splits, train_val_records

IDS = [f"v{i:03d}" for i in range(120)]
GROUPS = [f"caption {i % 24}" for i in range(120)]  # 24 captions, 5 videos each


def by_split(mapping):
    out: dict[str, set] = {}
    for vid, split in mapping.items():
        out.setdefault(split, set()).add(vid)
    return out


def test_fractions_without_groups():
    splits = by_split(assign_splits(IDS, val_fraction=0.2, test_fraction=0.1, seed=0))
    assert {k: len(v) for k, v in splits.items()} == {"train": 84, "val": 24, "test": 12}


def test_the_assignment_is_seeded_and_independent_of_the_order():
    a = assign_splits(IDS, GROUPS, val_fraction=0.2, test_fraction=0.2, unseen_fraction=0.25, seed=3)
    b = assign_splits(IDS[::-1], GROUPS[::-1], val_fraction=0.2, test_fraction=0.2, unseen_fraction=0.25, seed=3)
    c = assign_splits(IDS, GROUPS, val_fraction=0.2, test_fraction=0.2, unseen_fraction=0.25, seed=4)
    assert a == b and a != c


def test_unseen_captions_never_reach_train_or_val_and_seen_test_captions_all_do():
    mapping = assign_splits(IDS, GROUPS, val_fraction=0.2, test_fraction=0.2, unseen_fraction=0.25, seed=0)
    group = dict(zip(IDS, GROUPS, strict=True))
    captions = {split: {group[v] for v in vids} for split, vids in by_split(mapping).items()}
    whole = {g for g in captions["test_unseen"] if all(mapping[v] == "test_unseen" for v in IDS if group[v] == g)}
    assert len(whole) >= 6  # a quarter of the 24 captions held out with all their videos
    assert not captions["test_unseen"] & captions["train"]
    assert captions["test"] <= captions["train"]


def test_a_test_video_whose_caption_lost_all_its_train_videos_is_marked_unseen():
    ids, groups = ["a", "b", "c", "d", "e", "f"], ["x", "x", "y", "y", "z", "solo"]
    for seed in range(20):
        mapping = assign_splits(ids, groups, val_fraction=0.2, test_fraction=0.4, seed=seed)
        trained = {g for v, g in zip(ids, groups, strict=True) if mapping[v] == "train"}
        for v, g in zip(ids, groups, strict=True):
            if mapping[v] == "test":
                assert g in trained
            if mapping[v] == "test_unseen":
                assert g not in trained


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "must be < 1"),
    ({"val_fraction": -0.1}, "val_fraction must be in"),
    ({"unseen_fraction": 0.5}, "needs groups"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        assign_splits(IDS, **kwargs)


def test_duplicate_ids_and_mismatched_groups_are_refused():
    with pytest.raises(ValueError, match="unique"):
        assign_splits(["a", "a", "b"])
    with pytest.raises(ValueError, match="one group per video"):
        assign_splits(IDS, GROUPS[:-1])


def test_train_val_records_are_read_from_the_store_only_when_iterated(tmp_path, monkeypatch):
    import torch

    from spliter.data.synthetic import write_synthetic_store

    store = write_synthetic_store(tmp_path / "s", n_videos=12, dim=8, text_tokens=2, frames=3, val_fraction=0.0)
    reads: list[str] = []
    get = store.get
    monkeypatch.setattr(store, "get", lambda video_id: reads.append(video_id) or get(video_id))
    train, val = train_val_records(store, 0.3)
    assert reads == [] and len(train) + len(val) == 12 and len(val) > 0
    assert [r.video_id for r in train] == train.ids == sorted(train.ids) and reads == train.ids
    assert not set(train.ids) & set(val.ids)
    assert [r.video_id for r in train[1:3]] == train.ids[1:3]
    assert torch.equal(val[0].text_hidden, get(val.ids[0]).text_hidden)
