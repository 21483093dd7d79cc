"""spliter.pipeline: encoding captioned videos into a store, and generating videos through a rollout."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_video import audio_only_file, rotated_mp4

from spliter.backends.tiny import TinyBackend
from spliter.data.datasets import CaptionedVideo, read_folder
from spliter.data.shapes import write_shapes_dataset
from spliter.data.store import EmbeddingStore
from spliter.pipeline import (
    EncodeReport,
    Prompt,
    RenderSettings,
    assign_split,
    derive_seed,
    encode_videos,
    frame_seeds,
    load_frames,
    render,
)
from spliter.rollout import StaticRollout

SOURCE_FPS = 8.0


@pytest.fixture(scope="module")
def tiny() -> TinyBackend:
    return TinyBackend(seed=0, device="cpu")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> list[CaptionedVideo]:
    root = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(root, n_videos=6, frames=12, size=32, fps=SOURCE_FPS, seed=0)
    return read_folder(root).videos


def encode(videos: list[CaptionedVideo], backend: TinyBackend, store: Path, **options) -> EncodeReport:
    settings = {"frames": 4, "fps": 4.0, "size": 32, "prior_steps": 2, "batch_size": 4, "progress": False}
    return encode_videos(videos, backend, store, **(settings | options))


class DriftRollout:
    """start + t · direction: every frame a different embedding, deterministic."""

    name = "drift"

    def __init__(self, dim: int = 32) -> None:
        self.direction = torch.linspace(-1.0, 1.0, dim)

    def __call__(self, text_hidden, text_embed, start, times):
        return start[:, None] + times.float()[None, :, None] * self.direction


# ------------------------------------------------------------------------------------------------- seeds


def test_derive_seed_is_a_stable_hash_of_typed_parts() -> None:
    assert derive_seed(0, "p1", 3) == derive_seed(0, "p1", 3)
    assert derive_seed(0, "p1", 3) != derive_seed(0, "p1", 4) != derive_seed(1, "p1", 4)
    assert derive_seed(1) != derive_seed("1")
    assert derive_seed(np.int64(7), "x") == derive_seed(7, "x")
    assert all(0 <= derive_seed(i) < 2**63 for i in range(100))
    with pytest.raises(TypeError, match="float"):
        derive_seed(0.5)


def test_split_assignment_depends_on_seed_and_id_only() -> None:
    ids = [f"video{i}" for i in range(2000)]
    splits = [assign_split(v, 0.2, split_seed=0) for v in ids]
    assert 0.17 < splits.count("val") / len(ids) < 0.23
    assert splits == [assign_split(v, 0.2, split_seed=0) for v in ids]
    assert splits != [assign_split(v, 0.2, split_seed=1) for v in ids]
    assert {assign_split(v, 0.0) for v in ids} == {"train"} and {assign_split(v, 1.0) for v in ids} == {"val"}


def test_noise_policies_give_shared_or_distinct_seeds() -> None:
    assert frame_seeds(11, 3, "same") == [11, 11, 11]
    per_frame = frame_seeds(11, 3, "per_frame")
    assert len(set(per_frame)) == 3 and 11 not in per_frame
    with pytest.raises(ValueError, match="noise"):
        frame_seeds(11, 3, "fresh")


# ---------------------------------------------------------------------------------------------- encoding


def test_encode_writes_every_video_with_sampled_times(shapes, tiny, tmp_path: Path) -> None:
    report = encode(shapes, tiny, tmp_path / "store", val_fraction=0.5)
    assert report == EncodeReport(encoded=6, skipped=[])
    assert json.loads((tmp_path / "store" / "skipped.json").read_text()) == []
    store = EmbeddingStore.open(tmp_path / "store")
    assert len(store) == 6 and store.dim == 32 and store.text_tokens == 77
    assert store.meta["backend"] == tiny.identity() and store.meta["frames"] == 4
    record = store.get(shapes[0].video_id)
    assert record.caption == shapes[0].caption and record.source == shapes[0].source
    assert record.frame_embeds.shape == (4, 32) and record.text_hidden.shape == (77, 32)
    np.testing.assert_allclose(np.asarray(record.frame_times), [0.0, 0.25, 0.5, 0.75], atol=1e-6)
    assert record.fps == pytest.approx(4.0)
    assert not torch.allclose(record.frame_embeds[0], record.frame_embeds[-1], atol=1e-3)  # the shape moves
    for video in shapes:
        assert store.get(video.video_id).split == assign_split(video.video_id, 0.5, split_seed=0)
    # The store holds (in fp16) exactly what the backend computes for the same frames and caption.
    expected_text = tiny.encode_text([shapes[0].caption])[1][0]
    torch.testing.assert_close(record.text_embed, expected_text, atol=2e-3, rtol=2e-3)
    expected_prior = tiny.prior([shapes[0].caption], [0], steps=2, guidance=4.0)[0][0]
    torch.testing.assert_close(record.prior_embed, expected_prior, atol=2e-3, rtol=2e-3)


def test_encoding_resumes_where_it_stopped(shapes, tiny, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert encode(shapes[:2], tiny, store).encoded == 2
    first = EmbeddingStore.open(store).get(shapes[0].video_id).frame_embeds
    assert encode(shapes, tiny, store).encoded == 4
    assert encode(shapes, tiny, store).encoded == 0
    reopened = EmbeddingStore.open(store)
    assert sorted(reopened.ids()) == sorted(v.video_id for v in shapes)
    assert torch.equal(reopened.get(shapes[0].video_id).frame_embeds, first)
    with pytest.raises(ValueError, match="meta"):  # other settings never mix into one store
        encode(shapes, tiny, store, frames=5)


def test_every_bad_file_kind_is_skipped_with_its_reason_while_the_rest_encode(shapes, tiny, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    data = shapes[0].path.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    bad = {  # video id -> (file, what the reason must say)
        "missing": (tmp_path / "missing.mp4", "missing.mp4"),
        "empty": (empty, "0 bytes"),
        "truncated": (truncated, "truncated.mp4"),
        "garbage": (garbage, "garbage.mp4"),
        "audio": (audio_only_file(tmp_path / "audio.m4a"), "audio.m4a"),
    }
    videos = [shapes[2], *(CaptionedVideo(vid, "bad", path, "test") for vid, (path, _) in bad.items()), shapes[3]]
    report = encode(videos, tiny, tmp_path / "store", frames=12, fps=None)
    assert report.encoded == 2
    assert [video_id for video_id, _ in report.skipped] == list(bad)
    reasons = dict(report.skipped)
    for video_id, (_, says) in bad.items():
        assert says in reasons[video_id] and "\n" not in reasons[video_id], (video_id, reasons[video_id])
    written = json.loads((tmp_path / "store" / "skipped.json").read_text())
    assert [(row["video_id"], row["reason"]) for row in written] == report.skipped
    assert sorted(EmbeddingStore.open(tmp_path / "store").ids()) == sorted([shapes[2].video_id, shapes[3].video_id])


def test_a_clip_too_short_for_the_frame_clock_is_skipped(shapes, tiny, tmp_path: Path) -> None:
    report = encode(shapes[:2], tiny, tmp_path / "store", frames=8, fps=2.0)  # needs 3.5 s of a 1.5 s clip
    assert report.encoded == 0 and [v for v, _ in report.skipped] == [v.video_id for v in shapes[:2]]
    assert all("frames" in reason for _, reason in report.skipped)


def test_a_video_with_rotation_metadata_is_encoded_upright_and_reported(shapes, tiny, tmp_path: Path) -> None:
    stored = np.zeros((12, 32, 64, 3), np.uint8)
    stored[:, :8, 40:48] = 255  # a block at the top of the stored (landscape) frame, right of its centre
    phone = CaptionedVideo("phone", "a phone clip", rotated_mp4(tmp_path / "phone.mp4", 90, stored), "test")
    report = encode([shapes[0], phone], tiny, tmp_path / "store", frames=4, fps=None)
    assert report.encoded == 2 and report.rotated == [("phone", 90)]
    clip = load_frames(phone, 4, None, 32)
    assert clip.rotation == 90
    rows, cols = np.nonzero(clip.frames[0, ..., 0] > 128)
    # a quarter turn counter-clockwise puts it top-left of the centre crop (unturned: top-right; clockwise:
    # bottom-right)
    assert rows.mean() < 12 and cols.mean() < 12


def test_duplicate_ids_are_encoded_once(shapes, tiny, tmp_path: Path) -> None:
    report = encode([shapes[0], shapes[0]], tiny, tmp_path / "store")
    assert report.encoded == 1 and [v for v, _ in report.skipped] == [shapes[0].video_id]


def test_a_shapes_dataset_of_50_clips_encodes(tiny, tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "shapes", n_videos=50, frames=16, size=32, fps=8.0, seed=1)
    report = encode(read_folder(root).videos, tiny, tmp_path / "store", frames=16, fps=None, batch_size=16)
    assert report == EncodeReport(encoded=50, skipped=[])
    store = EmbeddingStore.open(tmp_path / "store")
    assert len(store) == 50 and {len(r.frame_times) for r in store} == {16}
    assert 0 < len(store.split("val")) < 50


def test_the_31_shared_msrvtt_clips_encode(msrvtt31: Path, tiny, tmp_path: Path) -> None:
    listing = read_folder(msrvtt31, caption_column="caption_uniform")
    report = encode(listing.videos, tiny, tmp_path / "store", frames=16, fps=3.0, size=64, batch_size=16)
    assert report == EncodeReport(encoded=31, skipped=[])
    store = EmbeddingStore.open(tmp_path / "store")
    assert len(store) == 31
    record = next(iter(store))
    assert record.frame_embeds.shape == (16, 32)
    np.testing.assert_allclose(np.asarray(record.frame_times), np.arange(16) / 3.0, atol=1e-6)


# -------------------------------------------------------------------------------------------- generation


PROMPTS = [Prompt("p0", "a red circle moves right"), Prompt("p1", "a blue square grows")]


def generate(tiny, rollout=None, samples_per_prompt: int = 2, prompts=PROMPTS, **options) -> list:
    settings = RenderSettings(**({"frames": 8, "size": 32, "decoder_steps": 2} | options))
    return list(render(prompts, rollout or DriftRollout(), tiny, settings, samples_per_prompt=samples_per_prompt))


def test_render_returns_uint8_frames_and_a_record_per_sample(tiny) -> None:
    videos = generate(tiny, study_seed=3)
    assert [(v.prompt_id, v.sample_idx) for v in videos] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    for video in videos:
        assert video.gen_seed == derive_seed(3, video.prompt_id, video.sample_idx)
        assert video.frames.shape == (8, 32, 32, 3) and video.frames.dtype == np.uint8
        meta = video.record
        assert meta["prompt"] == {"id": video.prompt_id, "text": PROMPTS[int(video.prompt_id[1])].text}
        assert meta["seeds"] == [video.gen_seed] * 8 and meta["noise"] == "same"
        assert meta["rollout"] == "drift" and meta["backend"] == tiny.identity()
        assert (meta["size"], meta["frames"], meta["dt"], meta["decoder_steps"]) == (32, 8, 0.25, 2)
        json.dumps(meta)  # the record is written next to the video as JSON
    frames = videos[0].frames
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.5  # the drift shows


def test_same_seeds_give_identical_frames_and_other_seeds_differ(tiny) -> None:
    quick = {"samples_per_prompt": 1, "frames": 4, "size": 16, "decoder_steps": 1}
    first = generate(tiny, study_seed=0, **quick)
    again = generate(tiny, study_seed=0, **quick)
    other = generate(tiny, study_seed=1, **quick)
    for x, y, z in zip(first, again, other, strict=True):
        assert np.array_equal(x.frames, y.frames)
        assert np.abs(x.frames.astype(int) - z.frames).mean() > 1


def test_noise_policy_same_freezes_a_static_video_and_per_frame_does_not(tiny) -> None:
    static = StaticRollout()
    quick = {"samples_per_prompt": 1, "size": 16, "decoder_steps": 1}
    same = generate(tiny, rollout=static, noise="same", **quick)
    fresh = generate(tiny, rollout=static, noise="per_frame", **quick)
    frozen, varied = same[0].frames, fresh[0].frames
    assert all(np.array_equal(frame, frozen[0]) for frame in frozen)
    assert np.abs(varied[1:].astype(int) - varied[:1]).mean() > 1
    assert fresh[0].record["seeds"] == frame_seeds(same[0].gen_seed, 8, "per_frame")


def test_render_decodes_each_video_through_the_decoder_it_is_given(tiny) -> None:
    calls = []

    def decode(embeds, negative, seeds):
        calls.append((tuple(embeds.shape), tuple(negative.shape), list(seeds)))
        return np.full((len(embeds), 16, 16, 3), len(calls), np.uint8)

    settings = RenderSettings(frames=4, size=16, decoder_steps=1)
    videos = list(render(PROMPTS, DriftRollout(), tiny, settings, samples_per_prompt=1, decode=decode))
    assert [call[:2] for call in calls] == [((4, 32), (4, 32))] * 2  # one call per video, every frame
    assert [call[2] for call in calls] == [v.record["seeds"] for v in videos]
    assert [int(v.frames[0, 0, 0, 0]) for v in videos] == [1, 2]  # its frames are the decoder's


def test_render_rejects_bad_requests(tiny) -> None:
    with pytest.raises(ValueError, match="noise"):
        generate(tiny, noise="fresh")
    with pytest.raises(ValueError, match="unique"):
        generate(tiny, prompts=[PROMPTS[0], PROMPTS[0]])
    with pytest.raises(ValueError, match="file-name stem"):
        Prompt("a/b", "text")

    class Broken(DriftRollout):
        name = "broken"

        def __call__(self, text_hidden, text_embed, start, times):
            return super().__call__(text_hidden, text_embed, start, times) * float("nan")

    with pytest.raises(ValueError, match="p0.*broken.*NaN"):
        generate(tiny, rollout=Broken())
