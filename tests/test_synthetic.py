"""Synthetic store: deterministic, the documented generative process, motion that depends on the caption."""

import re

import pytest
import torch
from torch.nn import functional as F

from spliter.data.store import EmbeddingStore, StoreError
from spliter.data.synthetic import EMBED_NORM, MOTION_CLASSES, SPEEDS, write_synthetic_store

SMALL = {"n_videos": 24, "dim": 16, "text_tokens": 5, "frames": 6}


def motion(caption: str) -> tuple[int, float]:
    match = re.fullmatch(r"video \d+: class (\d+) moving at speed ([\d.]+)", caption)
    assert match, caption
    return int(match[1]), float(match[2])


def test_same_seed_gives_identical_tensors_and_another_seed_does_not(tmp_path):
    a = write_synthetic_store(tmp_path / "a", **SMALL, seed=3)
    b = write_synthetic_store(tmp_path / "b", **SMALL, seed=3)
    c = write_synthetic_store(tmp_path / "c", **SMALL, seed=4)
    assert a.ids() == b.ids()
    for ra, rb in zip(a, b, strict=True):
        assert (ra.caption, ra.split) == (rb.caption, rb.split)
        for name in ("text_hidden", "text_embed", "prior_embed", "negative_prior_embed", "frame_embeds", "frame_times"):
            assert torch.equal(getattr(ra, name), getattr(rb, name)), name
    assert not torch.equal(a.get("synth-00000").frame_embeds, c.get("synth-00000").frame_embeds)


def test_sizes_splits_and_meta(tmp_path):
    store = write_synthetic_store(tmp_path / "s", **SMALL, val_fraction=0.25)
    assert isinstance(store, EmbeddingStore) and len(store) == 24
    assert (store.dim, store.text_tokens) == (16, 5)
    assert len(store.ids("val")) == 6 and len(store.ids("train")) == 18
    record = store.get("synth-00000")
    assert record.text_hidden.shape == (5, 16) and record.frame_embeds.shape == (6, 16)
    assert record.frame_times.shape == (6,) and record.negative_prior_embed.shape == (16,)
    assert store.meta["backend"]["name"] == "synthetic" and store.meta["synthetic"]["seed"] == 0
    assert {motion(r.caption) for r in store} == {(c, s) for c in range(MOTION_CLASSES) for s in SPEEDS}


def test_a_tiny_validation_fraction_still_gives_one_val_video(tmp_path):
    store = write_synthetic_store(tmp_path / "s", **{**SMALL, "n_videos": 4}, val_fraction=0.01)
    assert len(store.ids("val")) == 1


def test_frame_times_start_at_zero_are_uneven_and_fps_varies(tmp_path):
    store = write_synthetic_store(tmp_path / "s", **SMALL, fps=4.0)
    gaps = torch.cat([torch.diff(r.frame_times) for r in store])
    assert all(float(r.frame_times[0]) == 0.0 for r in store)
    assert float(gaps.min()) > 0 and float(gaps.std()) > 0.01
    assert len({round(r.fps, 6) for r in store}) == len(store)
    assert all(0.8 * 4.0 <= r.fps <= 1.25 * 4.0 for r in store)


def test_noise_free_frames_rotate_at_the_captioned_speed(tmp_path):
    store = write_synthetic_store(tmp_path / "s", **SMALL, noise=0.0)
    for record in store:
        _, speed = motion(record.caption)
        e = record.frame_embeds
        torch.testing.assert_close(e.norm(dim=-1), torch.full((6,), EMBED_NORM), rtol=1e-3, atol=1e-2)
        angle = torch.arccos(F.cosine_similarity(e[1:], e[:1].expand_as(e[1:]), dim=-1).clamp(-1, 1))
        torch.testing.assert_close(angle.double(), speed * record.frame_times[1:], atol=2e-3, rtol=0)
        torch.testing.assert_close(record.prior_embed, e[0], atol=2e-2, rtol=0)


def test_text_states_are_a_function_of_the_captioned_motion(tmp_path):
    store = write_synthetic_store(tmp_path / "s", **SMALL)
    by_motion: dict = {}
    for record in store:
        by_motion.setdefault(motion(record.caption), []).append(record.text_hidden)
    firsts = [group[0] for group in by_motion.values()]
    for group in by_motion.values():
        assert all(torch.equal(h, group[0]) for h in group)
    assert all(not torch.equal(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1:])


def test_trajectories_move_and_their_direction_depends_on_the_class(tmp_path):
    store = write_synthetic_store(tmp_path / "s", n_videos=48, dim=32, text_tokens=4, frames=8)
    directions: dict[int, list[torch.Tensor]] = {}
    for record in store:
        e = record.frame_embeds
        assert float(F.cosine_similarity(e[1:], e[:-1], dim=-1).max()) < 0.9999
        cls, _ = motion(record.caption)
        directions.setdefault(cls, []).append(F.normalize(e[-1] - e[0], dim=0))
    means = torch.stack([F.normalize(torch.stack(d).mean(0), dim=0) for d in directions.values()])
    within = [float(torch.stack(d).mean(0).norm()) for d in directions.values()]
    between = means @ means.T - torch.eye(len(means))
    assert min(within) > 0.5  # same class: displacements point the same way
    assert float(between.max()) < 0.5  # different classes: different planes


def test_rerun_completes_a_partial_store_and_refuses_other_arguments(tmp_path):
    full = write_synthetic_store(tmp_path / "full", **SMALL)
    path = tmp_path / "partial"
    store = EmbeddingStore.create(path, SMALL["dim"], SMALL["text_tokens"], meta=full.meta)
    for record in list(full)[:5]:
        store.add(record.video_id, record.caption, record.text_hidden, record.text_embed, record.prior_embed,
                  record.frame_embeds, record.frame_times, split=record.split,
                  negative_prior_embed=record.negative_prior_embed, fps=record.fps, source=record.source)
    store.close()
    resumed = write_synthetic_store(path, **SMALL)
    assert resumed.ids() == full.ids()
    assert torch.equal(resumed.get("synth-00020").frame_embeds, full.get("synth-00020").frame_embeds)
    with pytest.raises(StoreError, match="pass the original arguments or a new path"):
        write_synthetic_store(path, **SMALL, seed=1)


@pytest.mark.parametrize("bad", [{"frames": 1}, {"val_fraction": 1.0}, {"fps": 0.0}, {"noise": -1.0}])
def test_bad_arguments_are_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        write_synthetic_store(tmp_path / "s", **{**SMALL, **bad})


@pytest.mark.slow
def test_a_trained_spliter_beats_mean_motion_on_held_out_videos(tmp_path):
    from spliter.models import SpliterConfig, load_spliter
    from spliter.rollout import make_rollout
    from spliter.train import TrainConfig, train

    store = write_synthetic_store(tmp_path / "s", n_videos=128)
    result = train(
        SpliterConfig(dim=32, text_tokens=8, width=32, depth=2, heads=2, dropout=0.0),
        TrainConfig(epochs=60, batch_size=32, lr=3e-3, patience=None, progress=False, device="cpu"),
        store,
        tmp_path / "ckpt",
    )

    def error(rollout) -> float:
        errors = []
        for record in store.split("val"):
            times = record.frame_times - record.frame_times[0]
            out = rollout(record.text_hidden[None], record.text_embed[None], record.frame_embeds[:1], times)[0]
            errors.append(((out[1:] - record.frame_embeds[1:]).norm(dim=-1) / EMBED_NORM).mean())
        return float(torch.stack(errors).mean())

    spliter = error(make_rollout("spliter", model=load_spliter(result.checkpoint)))
    mean_motion = error(make_rollout("mean_motion", store=store))
    assert spliter < 0.5 * mean_motion


# ------------------------------------------------------------------------------------------- the fair world

FAIR = {"n_videos": 96, "dim": 32, "text_tokens": 5, "frames": 8, "world": "fair", "val_fraction": 0.15,
        "test_fraction": 0.15, "unseen_fraction": 0.2}


def fair_latent(caption: str) -> tuple[str, int, float]:
    match = re.fullmatch(r"(\w+) toward direction (\d+) at speed ([\d.]+)", caption)
    assert match, caption
    return match[1], int(match[2]), float(match[3])


def test_the_fair_start_carries_nothing_about_the_caption_unlike_the_legacy_one(tmp_path):
    def mean_start_text_cosine(store):
        return float(torch.stack([F.cosine_similarity(r.frame_embeds[0], r.text_embed, dim=0) for r in store]).mean())

    fair = write_synthetic_store(tmp_path / "fair", **{**FAIR, "noise": 0.0})
    legacy = write_synthetic_store(tmp_path / "legacy", n_videos=96, dim=32, text_tokens=5, frames=8, noise=0.0)
    assert mean_start_text_cosine(legacy) > 0.5
    assert abs(mean_start_text_cosine(fair)) < 0.1
    # Same caption, different starts: the start is drawn per video, not per caption.
    by_caption: dict[str, list] = {}
    for r in fair:
        by_caption.setdefault(r.caption, []).append(r.frame_embeds[0])
    starts = next(v for v in by_caption.values() if len(v) > 1)
    assert float(F.cosine_similarity(starts[0], starts[1], dim=0)) < 0.9


def test_every_fair_family_follows_its_documented_trajectory(tmp_path):
    from spliter.data.synthetic import ACCEL_TIME_S, FAMILIES, PHASE_SWITCH_S

    store = write_synthetic_store(tmp_path / "s", **{**FAIR, "noise": 0.0})
    seen = set()
    for r in store:
        family, _, speed = fair_latent(r.caption)
        seen.add(family)
        e, t = r.frame_embeds.double(), r.frame_times
        angle = torch.arccos(F.cosine_similarity(e[1:], e[:1].expand_as(e[1:]), dim=-1).clamp(-1, 1))
        if family == "rotate":
            torch.testing.assert_close(angle, speed * t[1:], atol=2e-3, rtol=0)
        elif family == "accelerate":
            torch.testing.assert_close(angle, speed * t[1:] ** 2 / ACCEL_TIME_S, atol=2e-3, rtol=0)
        elif family == "drift":
            torch.testing.assert_close(e.norm(dim=-1), EMBED_NORM * torch.sqrt(1 + (speed * t) ** 2), rtol=1e-3, atol=0)
        else:
            assert family == "two_phase"
            early = t <= PHASE_SWITCH_S
            torch.testing.assert_close(angle[early[1:]], speed * t[1:][early[1:]], atol=2e-3, rtol=0)
        if family != "drift":
            torch.testing.assert_close(e.norm(dim=-1), torch.full_like(t, EMBED_NORM), rtol=1e-3, atol=0)
    assert seen == set(FAMILIES)


def test_fair_splits_hold_out_whole_captions_and_the_prior_is_a_noisy_first_frame(tmp_path):
    store = write_synthetic_store(tmp_path / "s", **FAIR)
    captions = {s: {r.caption for r in store.split(s)} for s in ("train", "val", "test", "test_unseen")}
    assert all(captions.values())
    assert not captions["test_unseen"] & captions["train"]
    assert captions["test"] <= captions["train"]
    assert store.meta["synthetic"]["world"] == "fair"
    gaps = [float((r.prior_embed - r.frame_embeds[0]).norm()) / EMBED_NORM for r in store]
    assert 0.05 < sum(gaps) / len(gaps) < 0.2  # prior_noise = 0.1 by default
    again = write_synthetic_store(tmp_path / "again", **FAIR)
    assert [(r.video_id, r.split, r.caption) for r in again] == [(r.video_id, r.split, r.caption) for r in store]


def test_test_splits_need_the_fair_world(tmp_path):
    with pytest.raises(ValueError, match="need world='fair'"):
        write_synthetic_store(tmp_path / "s", **SMALL, test_fraction=0.2)
    with pytest.raises(ValueError, match="world='flat' is not one of"):
        write_synthetic_store(tmp_path / "s", **SMALL, world="flat")
