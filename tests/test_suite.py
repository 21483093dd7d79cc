"""The harness entry points: rows per generated video and per held-out video."""

import json

import numpy as np
import pytest
import torch

from metrics.clip import EmbeddingError, OpenClipEncoder, register_open_clip_config, temporal_consistency
from metrics.motion import embedding_motion, pixel_motion
from metrics.registry import ROW_COLUMNS
from metrics.suite import GeneratedSample, clip_rows, pixel_motion_rows, score_embeddings, score_generated
from spliter.data.store import EmbeddingStore
from spliter.data.synthetic import write_synthetic_store
from spliter.rollout import MeanMotionRollout, StaticRollout


def still(n_frames=4, size=32, seed=0):
    frame = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    return np.repeat(frame, n_frames, axis=0)


def pan(n_frames=4, size=32, seed=0):
    texture = np.kron(
        np.random.default_rng(seed).integers(0, 256, (4, 8, 3)), np.ones((size // 4, size // 4, 1))
    )
    return np.stack([texture[:, 2 * t : 2 * t + size] for t in range(n_frames)]).astype(np.uint8)


@pytest.fixture(scope="module")
def encoders():
    register_open_clip_config("tiny-vit")
    return [OpenClipEncoder("tiny-vit", allow_random=True, seed=s) for s in (0, 1)]


def test_score_generated_rows_per_video_and_encoder(encoders):
    videos = [
        GeneratedSample("p-still", 0, 11, "a still square", still()),
        GeneratedSample("p-pan", 1, 12, "a moving square", pan()),
    ]
    rows = score_generated(videos, encoders)
    assert all(tuple(r) == ROW_COLUMNS for r in rows)
    assert len(rows) == 2 * (1 + 2 * (3 + 1 + 1))
    by = {(r["metric"], r["prompt_id"]): r for r in rows}
    name = encoders[0].name
    assert {r["metric"] for r in rows} >= {
        f"clip_temporal_consecutive[{name}]",
        f"clip_temporal_first[{name}]",
        f"clip_temporal_all_pairs[{name}]",
        f"clip_text_alignment[{name}]",
        f"embedding_motion[{name}]",
        "pixel_motion[mad255]",
    }
    row = by[(f"clip_temporal_all_pairs[{name}]", "p-pan")]
    assert (row["sample_idx"], row["gen_seed"], row["n"]) == (1, 12, 4)
    assert json.loads(row["extra"]) == {"encoder": name}
    emb = encoders[0].encode_images(pan())
    assert row["value"] == pytest.approx(temporal_consistency(emb, "all_pairs"), rel=1e-6)
    assert by[(f"embedding_motion[{name}]", "p-pan")]["value"] == pytest.approx(
        embedding_motion(emb), rel=1e-6
    )
    text = encoders[0].encode_text(["a moving square"])[0]
    expected_alignment = float(100 * (emb @ text).mean())
    assert by[(f"clip_text_alignment[{name}]", "p-pan")]["value"] == pytest.approx(
        expected_alignment, rel=1e-5
    )
    # a still video: perfectly consistent, and the motion metrics say so
    assert by[(f"clip_temporal_consecutive[{name}]", "p-still")]["value"] == pytest.approx(1.0, abs=1e-6)
    assert by[(f"embedding_motion[{name}]", "p-still")]["value"] == pytest.approx(0.0, abs=1e-3)
    assert by[("pixel_motion[mad255]", "p-still")]["value"] == 0.0
    assert by[("pixel_motion[mad255]", "p-pan")]["value"] == pytest.approx(pixel_motion(pan()))
    assert by[(f"clip_temporal_consecutive[{encoders[1].name}]", "p-pan")]["value"] != pytest.approx(
        by[(f"clip_temporal_consecutive[{name}]", "p-pan")]["value"], abs=1e-9
    )


@pytest.mark.parametrize(
    "frames, match",
    [(still(n_frames=1), "p-7-2: has 1 frame"), (still().astype(np.float32), "p-7-2.*uint8")],
)
def test_score_generated_names_the_bad_video(encoders, frames, match):
    videos = [GeneratedSample("ok", 0, 1, "x", still()), GeneratedSample("p-7", 2, 3, "x", frames)]
    with pytest.raises(EmbeddingError, match=match):
        score_generated(videos, encoders[:1])


def test_score_embeddings_on_a_synthetic_store(tmp_path):
    store = write_synthetic_store(tmp_path / "store", n_videos=8, dim=8, text_tokens=3, frames=5, seed=0)
    records = store.split("val")
    rollouts = {"static": StaticRollout(), "mean_motion": MeanMotionRollout.fit(store, "train")}
    rows = score_embeddings(rollouts, records, horizons=[1, 4])
    per_video = {r["metric"] for r in rows if r["prompt_id"] == records[0].video_id}
    assert {
        "embed_cosine_h[static,start=true]",
        "embed_cosine[mean_motion,start=true]",
        "embed_error_growth[static,start=true]",
    } <= per_video
    horizons = sorted(
        json.loads(r["extra"])["horizon"]
        for r in rows
        if r["metric"] == "embed_cosine_h[static,start=true]" and r["prompt_id"] == records[0].video_id
    )
    assert horizons == [1, 4]
    # the true videos rotate away from their first frame: the static baseline's error grows with horizon
    assert all(r["value"] > 0 for r in rows if r["metric"] == "embed_error_growth[static,start=true]")
    assert all(r["value"] == 0 for r in rows if r["metric"] == "embed_disp_cosine[static,start=true]")


def test_score_embeddings_warns_about_what_it_skips(tmp_path):
    with EmbeddingStore.create(tmp_path / "s", dim=2, text_tokens=1) as store:
        store.add(
            "frozen",
            "x",
            torch.ones(1, 2),
            torch.ones(2),
            torch.ones(2),
            torch.ones(3, 2),
            torch.tensor([0.0, 0.5, 1.0]),
            split="val",
        )
    records = EmbeddingStore.open(tmp_path / "s").split("val")
    with pytest.warns(UserWarning, match="frozen"):
        rows = score_embeddings({"step": StaticRollout()}, records)
    assert not [r for r in rows if "disp_cosine" in r["metric"]]


def test_score_generated_is_pixel_motion_then_clip_rows(encoders):
    videos = [GeneratedSample("p0", 0, 1, "a cat", pan()), GeneratedSample("p1", 0, 2, "a dog", still())]
    assert score_generated(videos, encoders) == pixel_motion_rows(videos) + clip_rows(videos, encoders)
    assert [row["prompt_id"] for row in pixel_motion_rows(videos)] == ["p0", "p1"]
    assert clip_rows(videos, []) == []
