"""EmbeddingStore: round trip, append/resume, crash safety, validation on add and on open."""

import json

import pyarrow.parquet as pq
import pytest
import torch

from spliter.data.store import (
    MANIFEST_FILE,
    META_FILE,
    SHARD_DIR,
    CorruptStore,
    EmbeddingStore,
    InvalidVideo,
    StoreError,
    StoreNotFound,
)

T, D = 4, 6


def video(seed: int, frames: int = 5, negative: bool = True) -> dict:
    """Keyword arguments of a valid add() call for a small random video."""
    g = torch.Generator().manual_seed(seed)
    return {
        "caption": f"caption {seed}",
        "text_hidden": torch.randn(T, D, generator=g),
        "text_embed": torch.randn(D, generator=g),
        "prior_embed": torch.randn(D, generator=g),
        "frame_embeds": torch.randn(frames, D, generator=g),
        "frame_times": torch.arange(frames, dtype=torch.float64) * 0.25 + 0.1 * seed,
        "negative_prior_embed": torch.randn(D, generator=g) if negative else None,
    }


def write(path, n: int, shard_size: int = 3, **create) -> list[str]:
    ids = [f"v{i}" for i in range(n)]
    with EmbeddingStore.create(path, D, T, shard_size=shard_size, **create) as store:
        for i, video_id in enumerate(ids):
            store.add(video_id, split="val" if i % 3 == 2 else "train", fps=4.0, source=f"src{i}", **video(i))
    return ids


def test_round_trip_keeps_every_field_within_fp16_tolerance(tmp_path):
    write(tmp_path / "s", 5, meta={"backend": {"name": "tiny", "seed": 3}, "prior_steps": 2})
    store = EmbeddingStore.open(tmp_path / "s")
    assert (store.dim, store.text_tokens) == (D, T)
    assert store.meta == {"backend": {"name": "tiny", "seed": 3}, "prior_steps": 2}
    for i, record in enumerate(store):
        expected = video(i)
        assert record.video_id == f"v{i}" and record.caption == expected["caption"]
        assert record.split == ("val" if i % 3 == 2 else "train")
        assert record.fps == 4.0 and record.source == f"src{i}" and record.n_frames == 5
        for name in ("text_hidden", "text_embed", "prior_embed", "frame_embeds", "negative_prior_embed"):
            got = getattr(record, name)
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, expected[name], atol=2e-3, rtol=1e-3)
        assert record.frame_times.dtype == torch.float64
        assert torch.equal(record.frame_times, expected["frame_times"])


def test_manifest_has_one_row_per_video_with_its_shard(tmp_path):
    write(tmp_path / "s", 5, shard_size=2, meta={"backend": {"name": "tiny"}})
    rows = pq.read_table(tmp_path / "s" / MANIFEST_FILE).to_pylist()
    assert [r["video_id"] for r in rows] == [f"v{i}" for i in range(5)]
    assert [r["shard"] for r in rows] == ["shard-00000.safetensors"] * 2 + ["shard-00001.safetensors"] * 2 + [
        "shard-00002.safetensors"
    ]
    assert rows[0]["n_frames"] == 5 and rows[0]["duration_s"] == pytest.approx(1.0)
    assert rows[0]["backend"] == "tiny" and rows[0]["has_negative"] and (rows[0]["dim"], rows[0]["text_tokens"]) == (D, T)
    assert json.loads((tmp_path / "s" / META_FILE).read_text())["dim"] == D


def test_optional_fields_read_back_as_none(tmp_path):
    with EmbeddingStore.create(tmp_path / "s", D, T) as store:
        store.add("a", **video(0, negative=False))
    record = EmbeddingStore.open(tmp_path / "s").get("a")
    assert record.negative_prior_embed is None and record.fps is None and record.source is None


def test_split_ids_and_get(tmp_path):
    write(tmp_path / "s", 6)
    store = EmbeddingStore.open(tmp_path / "s")
    assert len(store) == 6
    assert store.ids() == [f"v{i}" for i in range(6)]
    assert store.ids("val") == ["v2", "v5"]
    assert [r.video_id for r in store.split("val")] == ["v2", "v5"]
    assert store.split("test") == []
    assert store.has("v3") and not store.has("nope")
    assert store.get("v4").caption == "caption 4"
    with pytest.raises(KeyError, match=r"^store .*: no video 'nope'; see store.ids\(\)"):
        store.get("nope")
    with pytest.raises(StoreError, match="unknown split 'valid'"):
        store.split("valid")


def test_drop_cache_forgets_decoded_shards_and_reads_them_again_equal(tmp_path):
    write(tmp_path / "s", 6)
    store = EmbeddingStore.open(tmp_path / "s")
    before = store.get("v4")
    assert store._shards  # the shard of v4 is held decoded
    store.drop_cache()
    assert not store._shards
    again = store.get("v4")
    assert torch.equal(again.text_hidden, before.text_hidden) and torch.equal(again.frame_embeds, before.frame_embeds)


def test_writer_reads_its_queued_videos_before_they_are_flushed(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", D, T, shard_size=10)
    store.add("a", **video(0))
    assert store.ids() == ["a"]
    torch.testing.assert_close(store.get("a").prior_embed, video(0)["prior_embed"], atol=2e-3, rtol=1e-3)
    assert EmbeddingStore.open(tmp_path / "s").ids() == []  # nothing on disk until the shard is flushed
    store.close()
    assert EmbeddingStore.open(tmp_path / "s").ids() == ["a"]


def test_create_on_an_existing_store_appends(tmp_path):
    path = tmp_path / "s"
    write(path, 4, meta={"prior_seed": 0})
    with EmbeddingStore.create(path, D, T, meta={"prior_seed": 0}, shard_size=3) as store:
        assert store.ids() == ["v0", "v1", "v2", "v3"]
        todo = [f"v{i}" for i in range(7) if not store.has(f"v{i}")]
        for video_id in todo:
            store.add(video_id, **video(int(video_id[1:])))
    reopened = EmbeddingStore.open(path)
    assert todo == ["v4", "v5", "v6"]
    assert reopened.ids() == [f"v{i}" for i in range(7)]
    torch.testing.assert_close(reopened.get("v5").text_embed, video(5)["text_embed"], atol=2e-3, rtol=1e-3)


def test_create_with_other_dims_or_meta_refuses(tmp_path):
    path = tmp_path / "s"
    write(path, 1, meta={"prior_seed": 0})
    with pytest.raises(StoreError, match=r"dim=6, text_tokens=4 but dim=8"):
        EmbeddingStore.create(path, 8, T, meta={"prior_seed": 0})
    with pytest.raises(StoreError, match=r"different meta \(keys \['prior_seed'\]"):
        EmbeddingStore.create(path, D, T, meta={"prior_seed": 1})


def test_create_refuses_a_non_empty_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="not an embedding store"):
        EmbeddingStore.create(tmp_path, D, T)


def test_a_killed_writer_loses_only_the_unflushed_shard(tmp_path):
    path = tmp_path / "s"
    store = EmbeddingStore.create(path, D, T, shard_size=2)
    for i in range(3):
        store.add(f"v{i}", **video(i))
    # Simulate a crash: no close(); plus leftovers of an interrupted shard and manifest write.
    (path / SHARD_DIR / ".shard-00001.safetensors.tmp-999").write_bytes(b"half a shard")
    (path / f".{MANIFEST_FILE}.tmp-999").write_bytes(b"half a manifest")
    del store
    reopened = EmbeddingStore.open(path)
    assert reopened.ids() == ["v0", "v1"]
    with EmbeddingStore.create(path, D, T, shard_size=2) as resumed:
        resumed.add("v2", **video(2))
    assert EmbeddingStore.open(path).ids() == ["v0", "v1", "v2"]


def test_shard_not_in_the_manifest_is_ignored_and_not_reused(tmp_path):
    path = tmp_path / "s"
    write(path, 2, shard_size=2)
    orphan = path / SHARD_DIR / "shard-00001.safetensors"  # flushed, but the manifest update never happened
    orphan.write_bytes((path / SHARD_DIR / "shard-00000.safetensors").read_bytes())
    with EmbeddingStore.create(path, D, T, shard_size=2) as store:
        assert store.ids() == ["v0", "v1"]
        store.add("v2", **video(2))
    rows = pq.read_table(path / MANIFEST_FILE).to_pylist()
    assert rows[-1]["shard"] == "shard-00002.safetensors"
    assert EmbeddingStore.open(path).get("v2").caption == "caption 2"


def test_read_only_store_refuses_add(tmp_path):
    write(tmp_path / "s", 1)
    with pytest.raises(StoreError, match="read-only"):
        EmbeddingStore.open(tmp_path / "s").add("x", **video(9))


def bad_inputs():
    def change(**kw):
        return lambda v: {**v, **kw}

    times = torch.tensor([0.0, 0.5, 1.0, 1.5, 1.5], dtype=torch.float64)
    nan_frames = video(0)["frame_embeds"].clone()
    nan_frames[2, 3] = float("nan")
    return {
        "wrong dim": (change(text_embed=torch.zeros(D + 1)), r"text_embed has shape \(7,\), expected \(6,\)"),
        "wrong tokens": (change(text_hidden=torch.zeros(T + 1, D)), r"text_hidden has shape \(5, 6\), expected \(4, 6\)"),
        "frames vs times": (change(frame_times=torch.arange(4.0)), r"frame_embeds has shape \(5, 6\), expected \(4, 6\)"),
        "nan": (change(frame_embeds=nan_frames), r"frame_embeds has 1 NaN/Inf value\(s\) \(first at \[2, 3\]\)"),
        "inf": (change(prior_embed=torch.full((D,), float("inf"))), r"prior_embed has 6 NaN/Inf"),
        "beyond fp16": (change(text_embed=torch.full((D,), 7e4)), r"text_embed has values beyond the fp16 range"),
        "unsorted": (change(frame_times=times), r"frame_times are not strictly increasing at index 4 \(1.5 then 1.5\)"),
        "one frame": (
            change(frame_embeds=torch.zeros(1, D), frame_times=torch.zeros(1)),
            r"has 1 frame\(s\), at least 2 are needed",
        ),
    }


@pytest.mark.parametrize("case", list(bad_inputs()))
def test_add_rejects_bad_input_naming_the_video(tmp_path, case):
    edit, message = bad_inputs()[case]
    store = EmbeddingStore.create(tmp_path / "s", D, T)
    with pytest.raises(InvalidVideo, match=rf"^store .*: video 'bad': {message}.*re-encode this video$"):
        store.add("bad", **edit(video(0)))
    assert len(store) == 0


def test_fp16_overflow_boundary(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", D, T)
    store.add("edge", **{**video(0), "text_embed": torch.full((D,), 65519.0, dtype=torch.float64)})
    assert torch.isfinite(store.get("edge").text_embed).all()
    with pytest.raises(InvalidVideo, match=r"video 'over': text_embed has values beyond the fp16 range"):
        store.add("over", **{**video(0), "text_embed": torch.full((D,), 65520.0, dtype=torch.float64)})


def test_bfloat16_input_is_accepted(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", D, T)
    store.add("bf", **{**video(0), "frame_embeds": video(0)["frame_embeds"].bfloat16()})
    torch.testing.assert_close(store.get("bf").frame_embeds, video(0)["frame_embeds"], atol=2e-2, rtol=1e-2)


def test_add_rejects_duplicates_and_unknown_splits(tmp_path):
    store = EmbeddingStore.create(tmp_path / "s", D, T, shard_size=1)
    store.add("a", **video(0))
    with pytest.raises(InvalidVideo, match="video 'a': is already in the store"):
        store.add("a", **video(1))
    with pytest.raises(InvalidVideo, match="video 'b': unknown split 'dev'"):
        store.add("b", split="dev", **video(1))
    assert store.ids() == ["a"]


def test_open_missing_store_or_meta(tmp_path):
    with pytest.raises(StoreNotFound, match="no such folder"):
        EmbeddingStore.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        EmbeddingStore.open(tmp_path / "empty")


def test_open_corrupt_manifest_names_the_file(tmp_path):
    write(tmp_path / "s", 2)
    (tmp_path / "s" / MANIFEST_FILE).write_bytes(b"not parquet at all")
    with pytest.raises(CorruptStore, match=r"manifest\.parquet is unreadable"):
        EmbeddingStore.open(tmp_path / "s")


def test_open_corrupt_meta_names_the_file(tmp_path):
    write(tmp_path / "s", 1)
    (tmp_path / "s" / META_FILE).write_text("{ truncated")
    with pytest.raises(CorruptStore, match=r"meta\.json is unreadable"):
        EmbeddingStore.open(tmp_path / "s")


def test_open_corrupt_shard_names_the_file(tmp_path):
    write(tmp_path / "s", 2)
    shard = tmp_path / "s" / SHARD_DIR / "shard-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CorruptStore, match=r"shard .*shard-00000\.safetensors is unreadable"):
        EmbeddingStore.open(tmp_path / "s")
    lazy = EmbeddingStore.open(tmp_path / "s", validate=False)  # manifest-only checks; the shard fails on read
    with pytest.raises(CorruptStore, match="shard-00000"):
        lazy.get("v0")


def test_open_missing_shard_names_the_video(tmp_path):
    write(tmp_path / "s", 4, shard_size=2)
    (tmp_path / "s" / SHARD_DIR / "shard-00001.safetensors").unlink()
    with pytest.raises(CorruptStore, match=r"video 'v2': its shard .*shard-00001\.safetensors is missing"):
        EmbeddingStore.open(tmp_path / "s")


def test_open_finds_a_bad_tensor_written_behind_the_stores_back(tmp_path):
    from safetensors.torch import load_file, save_file

    write(tmp_path / "s", 2)
    shard = tmp_path / "s" / SHARD_DIR / "shard-00000.safetensors"
    tensors = load_file(shard)
    tensors["v1/frame_times"] = torch.tensor([0.0, 0.5, 0.4, 1.0, 2.0], dtype=torch.float64)
    save_file(tensors, shard)
    with pytest.raises(InvalidVideo, match=r"video 'v1' \(shard shard-00000.safetensors\): frame_times are not strictly increasing at index 2 \(0.5 then 0.4\); re-encode"):
        EmbeddingStore.open(tmp_path / "s")
