"""Held-out embedding metrics on a hand-built 3-video store with known answers."""

import json
import math

import numpy as np
import pytest
import torch

from metrics.clip import EmbeddingError
from metrics.embedding import derangement, displacement_cosines, error_growth, horizon_cosines, score_rollouts
from spliter.data.store import EmbeddingStore
from spliter.rollout import MeanMotionRollout, StaticRollout

SQ2 = math.sqrt(2.0)

# D=3, values exact in fp16 so the store round-trips them unchanged.
VIDEOS = {
    # moves from x towards y; 4 frames at 4 fps
    "a": ([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0]], [0.0, 0.25, 0.5, 0.75], [0, 0, 1]),
    # does not move at all
    "b": ([[0, 0, 2]] * 4, [1.0, 1.25, 1.5, 1.75], [1, 0, 0]),
    # 3 frames at 2 fps, other times: batched separately
    "c": ([[0, 1, 0], [0, 1, 1], [0, 0, 1]], [0.0, 0.5, 1.0], [0, 1, 0]),
}


@pytest.fixture
def records(tmp_path):
    with EmbeddingStore.create(tmp_path / "store", dim=3, text_tokens=2, meta={"backend": "hand"}) as store:
        for vid, (frames, times, prior) in VIDEOS.items():
            store.add(
                vid,
                f"video {vid}",
                torch.ones(2, 3),
                torch.ones(3),
                torch.tensor(prior, dtype=torch.float32),
                torch.tensor(frames, dtype=torch.float32),
                torch.tensor(times),
                split="val",
                fps=4.0,
            )
    return EmbeddingStore.open(tmp_path / "store").split("val")


class Oracle:
    """Returns each video's true embeddings (found by its start, the true first frame)."""

    name = "oracle"

    def __init__(self, records):
        self.truth = {tuple(r.frame_embeds[0].tolist()): r.frame_embeds for r in records}

    def __call__(self, text_hidden, text_embed, start, times):
        return torch.stack([self.truth[tuple(s.tolist())][: len(times)] for s in start])


def drift():
    """start + t * (0, 1, 0): a constant motion along y."""
    return MeanMotionRollout(torch.tensor([0.0, 1.0, 0.0]))


def values(rows, metric, video, horizon=None):
    out = [
        r["value"]
        for r in rows
        if r["metric"] == metric
        and r["prompt_id"] == video
        and (horizon is None or json.loads(r["extra"]).get("horizon") == horizon)
    ]
    return out


def test_a_rollout_that_returns_the_truth_scores_exactly_one(records):
    report = score_rollouts({"step": Oracle(records)}, records)
    cosines = [r for r in report.rows if r["metric"].startswith("embed_cosine")]
    assert len(cosines) == (3 + 1) * 2 + (2 + 1)  # horizons + mean per video
    assert all(r["value"] == pytest.approx(1.0, abs=1e-6) for r in cosines)
    assert all(
        r["value"] == pytest.approx(1.0, abs=1e-6) for r in report.rows if "disp_cosine" in r["metric"]
    )
    assert all(
        r["value"] == pytest.approx(0.0, abs=1e-6) for r in report.rows if "error_growth" in r["metric"]
    )


def test_static_rollout_hand_computed(records):
    report = score_rollouts({"step": StaticRollout()}, records)
    rows = report.rows
    assert values(rows, "embed_cosine_h[step,start=true]", "a", 1) == [pytest.approx(1 / SQ2)]
    assert values(rows, "embed_cosine_h[step,start=true]", "a", 2) == [pytest.approx(0.0, abs=1e-7)]
    assert values(rows, "embed_cosine[step,start=true]", "a") == [pytest.approx(1 / SQ2 / 3)]
    # a prediction that does not move has no agreement in direction: 0, not NaN
    assert values(rows, "embed_disp_cosine[step,start=true]", "a") == [0.0]
    # 1 - cos = (1 - 1/sqrt2, 1, 1) at t = 0.25, 0.5, 0.75 s: least-squares slope sqrt(2) per second
    assert values(rows, "embed_error_growth[step,start=true]", "a") == [pytest.approx(SQ2)]
    # the still video: perfect cosines, no displacement direction at any horizon -> listed, not scored
    assert values(rows, "embed_cosine[step,start=true]", "b") == [pytest.approx(1.0)]
    assert values(rows, "embed_disp_cosine[step,start=true]", "b") == []
    assert values(rows, "embed_disp_cosine_h[step,start=true]", "b") == []
    assert [vid for vid, _ in report.skipped] == ["b"] and "does not move" in report.skipped[0][1]


def test_drift_rollout_hand_computed_with_modes_kept_apart(records):
    report = score_rollouts({"step": drift(), "chain": StaticRollout()}, records)
    rows = report.rows
    # pred_1 = (1, .25, 0) vs (1, 1, 0): cos = 1.25 / (sqrt(1.0625) sqrt 2)
    assert values(rows, "embed_cosine_h[step,start=true]", "a", 1) == [
        pytest.approx(1.25 / math.sqrt(1.0625) / SQ2, rel=1e-6)
    ]
    # displacement (0, t, 0) vs (0,1,0), (-1,1,0), (-1,1,0): cos 1, 1/sqrt2, 1/sqrt2
    assert values(rows, "embed_disp_cosine_h[step,start=true]", "a", 3) == [pytest.approx(1 / SQ2, rel=1e-6)]
    assert values(rows, "embed_disp_cosine[step,start=true]", "a") == [pytest.approx((1 + SQ2) / 3, rel=1e-6)]
    # video c (2 fps): pred_2 = (0, 2, 0) vs (0, 0, 1): cos 0; displacement (0,1,0) vs (0,-1,1): -1/sqrt2
    assert values(rows, "embed_cosine_h[step,start=true]", "c", 2) == [pytest.approx(0.0, abs=1e-7)]
    assert values(rows, "embed_disp_cosine_h[step,start=true]", "c", 2) == [pytest.approx(-1 / SQ2, rel=1e-6)]
    extra = json.loads(
        next(
            r["extra"]
            for r in rows
            if r["metric"] == "embed_cosine_h[step,start=true]"
            and r["prompt_id"] == "c"
            and '"horizon": 2' in r["extra"]
        )
    )
    assert extra == {"horizon": 2, "mode": "step", "start": "true", "time_s": 1.0}
    assert values(rows, "embed_disp_cosine[chain,start=true]", "a") == [0.0]
    row = next(r for r in rows if r["metric"] == "embed_cosine[step,start=true]" and r["prompt_id"] == "a")
    assert (row["level"], row["n"], row["sample_idx"], row["gen_seed"]) == ("video", 3, None, None)


def test_prior_start_begins_at_the_prior_embedding(records):
    rows = score_rollouts({"step": StaticRollout()}, records, start="prior").rows
    # video a's prior is z, orthogonal to every frame of a
    assert values(rows, "embed_cosine[step,start=prior]", "a") == [pytest.approx(0.0, abs=1e-7)]
    # video c's prior equals its first frame: same numbers as the true start
    assert values(rows, "embed_cosine_h[step,start=prior]", "c", 1) == [pytest.approx(1 / SQ2, rel=1e-6)]


def test_horizon_selection_and_errors(records):
    video_a = [r for r in records if r.video_id == "a"]
    rows = score_rollouts({"step": StaticRollout()}, video_a, horizons=[2, 1]).rows
    assert sorted(
        json.loads(r["extra"])["horizon"] for r in rows if r["metric"].startswith("embed_cosine_h")
    ) == [1, 2]
    with pytest.raises(EmbeddingError, match="video c has 3 frames"):
        score_rollouts({"step": StaticRollout()}, records, horizons=[3])
    with pytest.raises(EmbeddingError, match="no held-out videos"):
        score_rollouts({"step": StaticRollout()}, [])


def test_broken_rollouts_are_reported(records):
    class Short(StaticRollout):
        def __call__(self, *args):
            return super().__call__(*args)[:, :2]

    class Nan(StaticRollout):
        def __call__(self, *args):
            return super().__call__(*args) * float("nan")

    with pytest.raises(EmbeddingError, match="returned shape"):
        score_rollouts({"step": Short()}, records)
    with pytest.raises(EmbeddingError, match="NaN"):
        score_rollouts({"chain": Nan()}, records)


def test_metric_helpers_directly():
    true = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(horizon_cosines(true, true), [1.0, 1.0])
    cos, valid = displacement_cosines(np.array([[1.0, 0, 0], [1, 0, 0], [0, 0, 3]]), true, true[0])
    # (-1, 0, 3) vs (-1, 0, 1): 4 / (sqrt 10 sqrt 2); displacements are compared unnormalised
    np.testing.assert_allclose(cos, [0.0, 4 / math.sqrt(20)])
    assert valid.tolist() == [True, True]
    assert error_growth([1, 2, 3], [0.1, 0.3, 0.5]) == pytest.approx(0.2)
    with pytest.raises(EmbeddingError, match="two distinct"):
        error_growth([1.0], [0.5])


def test_both_starts_are_scored_and_named(records):
    rows = score_rollouts({"step": StaticRollout()}, records, start="both").rows
    names = {r["metric"] for r in rows}
    assert {"embed_cosine[step,start=true]", "embed_cosine[step,start=prior]"} <= names
    alone = score_rollouts({"step": StaticRollout()}, records, start="prior").rows
    assert [r for r in rows if r["metric"].endswith("start=prior]")] == alone


def test_a_derangement_moves_every_video_and_is_seeded():
    for n in (2, 3, 10):
        perm = derangement(n, seed=4)
        assert sorted(perm) == list(range(n)) and all(p != i for i, p in enumerate(perm))
        assert perm == derangement(n, seed=4)
    assert derangement(10, 0) != derangement(10, 1)
    with pytest.raises(EmbeddingError, match="at least 2 videos"):
        derangement(1, 0)


class TextDirection:
    """Moves the start along its own text embedding at unit speed: uses the text, as a trained model should."""

    name = "text-direction"

    def __call__(self, text_hidden, text_embed, start, times):
        return start[:, None] + times.float()[None, :, None] * text_embed[:, None]


def _moving_along_text(tmp_path):
    """Videos that move exactly along their (distinct) text embedding."""
    with EmbeddingStore.create(tmp_path / "moving", dim=3, text_tokens=2, meta={}) as store:
        for i, direction in enumerate(([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, -1.0])):
            d = torch.tensor(direction)
            start = torch.tensor([1.0, 1.0, 1.0]) - d
            times = torch.tensor([0.0, 0.5, 1.0])
            store.add(f"v{i}", f"toward {direction}", d.expand(2, 3) * (i + 1), d, start,
                      start + times[:, None] * d, times, split="test")
    return EmbeddingStore.open(tmp_path / "moving").split("test")


def test_shuffled_text_lowers_a_text_reading_rollout_and_leaves_a_text_blind_spliter_unchanged(tmp_path):
    from spliter.models import Spliter, SpliterConfig
    from spliter.rollout import RolloutConfig, SpliterRollout

    videos = _moving_along_text(tmp_path)

    def means(rollouts):
        rows = score_rollouts(rollouts, videos, shuffled_text=True, shuffle_seed=3).rows
        return {m: np.mean([r["value"] for r in rows if r["metric"] == m]) for m in {r["metric"] for r in rows}}

    reading = means({"step": TextDirection()})
    assert reading["embed_cosine[step,start=true]"] == pytest.approx(1.0)
    assert reading["embed_cosine[step,start=true,text=shuffled]"] < reading["embed_cosine[step,start=true]"] - 0.05

    blind = Spliter(SpliterConfig(dim=3, text_tokens=2, width=4, depth=1, heads=1, dropout=0.0,
                                  text_input="constant", step_consistent=True))
    torch.nn.init.normal_(blind.out_proj.weight, std=0.3)
    rollouts = {mode: SpliterRollout(blind, RolloutConfig(mode=mode)) for mode in ("step", "chain")}
    scores = means(rollouts)
    for mode in ("step", "chain"):
        plain = scores[f"embed_cosine[{mode},start=true]"]
        assert scores[f"embed_cosine[{mode},start=true,text=shuffled]"] == plain  # exactly
        assert plain != pytest.approx(1.0)
