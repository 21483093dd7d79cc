"""Rollouts: step and chain modes of a Spliter, the static and mean-motion baselines, frame 0 = start."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spliter.data.store import EmbeddingStore
from spliter.models import Spliter, SpliterConfig, save_spliter
from spliter.rollout import (
    MeanMotionRollout,
    Rollout,
    RolloutConfig,
    SpliterRollout,
    StaticRollout,
    make_rollout,
)
from spliter.rotation import rotate

B, T, D = 2, 3, 8
TIMES = torch.tensor([0.0, 0.25, 0.4, 0.8, 1.0], dtype=torch.float64)


class FakeSpliter(nn.Module):
    """``start + step · velocity + text_gain · mean(text)``; records every call's inputs and mode."""

    def __init__(self, time_scale: float = 1.0, text_gain: float = 0.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(time_scale=time_scale)
        self.velocity = nn.Parameter(torch.linspace(-1.0, 1.0, D))
        self.text_gain = text_gain
        self.calls: list[dict] = []

    def forward(self, text_hidden, start, step):
        self.calls.append({"text": text_hidden.clone(), "start": start.clone(), "step": step.clone(),
                           "training": self.training, "grad": torch.is_grad_enabled()})
        return start + step[:, None] * self.velocity + self.text_gain * text_hidden.mean(1)


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, D, generator=g), torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)


def test_step_mode_is_one_batched_call_with_steps_in_time_scale_units():
    model = FakeSpliter(time_scale=0.5)
    h, t, u = inputs()
    out = SpliterRollout(model, RolloutConfig(mode="step"))(h, t, u, TIMES)
    assert out.shape == (B, 5, D) and out.dtype == torch.float32
    assert len(model.calls) == 1
    call = model.calls[0]
    assert torch.equal(call["step"], (TIMES[1:] / 0.5).float().repeat(B))
    assert torch.equal(call["start"], u.repeat_interleave(4, 0)) and torch.equal(call["text"], h.repeat_interleave(4, 0))
    assert not call["training"] and not call["grad"]
    assert torch.equal(out[:, 0], u)
    expected = u[:, None] + (TIMES[1:] / 0.5).float()[None, :, None] * model.velocity.detach()
    torch.testing.assert_close(out[:, 1:], expected)


def test_rollout_restores_the_models_training_mode():
    model = FakeSpliter()
    model.train()
    SpliterRollout(model)(*inputs(), TIMES)
    assert model.training and not model.calls[0]["training"]


def test_chain_mode_with_constant_displacement_accumulates_it():
    model = FakeSpliter(time_scale=2.0)
    h, t, u = inputs()
    out = SpliterRollout(model, RolloutConfig(mode="chain"))(h, t, u, TIMES)
    deltas = torch.diff(TIMES) / 2.0
    assert [float(c["step"][0]) for c in model.calls] == pytest.approx(deltas.tolist())
    assert all(c["step"].shape == (B,) for c in model.calls)
    for i, call in enumerate(model.calls):
        torch.testing.assert_close(call["start"], out[:, i])  # each step starts from the previous prediction
    expected = u[:, None] + (TIMES / 2.0).float()[None, :, None] * model.velocity.detach()
    torch.testing.assert_close(out, expected)
    assert torch.equal(out[:, 0], u)


def test_chain_with_zero_weight_leaves_the_text_untouched():
    h, _, _ = inputs()
    u = torch.zeros(B, D)
    u[:, 0] = 3.0
    t = torch.zeros(B, D)
    t[:, 1] = 2.0  # orthogonal to the start: cos = 0, so the blend weight is 0
    model = FakeSpliter(text_gain=0.3)
    SpliterRollout(model, RolloutConfig(mode="chain"))(h, t, u, TIMES)
    assert all(torch.equal(call["text"], h) for call in model.calls)

    turned = FakeSpliter(text_gain=0.3)
    SpliterRollout(turned, RolloutConfig(mode="chain"))(h, u.clone(), u, TIMES)  # text = start: weight 1
    assert torch.equal(turned.calls[0]["text"], h) and not torch.allclose(turned.calls[1]["text"], h)


def test_chain_fixed_anchor_rotates_the_original_text_towards_each_prediction():
    h, t, u = inputs()
    config = RolloutConfig(mode="chain", anchor="fixed", rotation_power=2.0)
    model = FakeSpliter(text_gain=0.5)
    out = SpliterRollout(model, config)(h, t, u, TIMES)
    weight = F.cosine_similarity(u, t, dim=-1)
    for i in range(1, 4):
        expected = rotate(h, v_from=u, v_to=out[:, i], weight=weight, power=2.0)
        torch.testing.assert_close(model.calls[i]["text"], expected)


def test_chain_cumulative_anchor_moves_the_anchors():
    h, t, u = inputs()
    model = FakeSpliter(text_gain=0.5)
    out = SpliterRollout(model, RolloutConfig(mode="chain", anchor="cumulative"))(h, t, u, TIMES)
    c0 = F.cosine_similarity(u, t, dim=-1)
    h2 = rotate(h, u, out[:, 1], weight=c0)
    t2 = rotate(t, u, out[:, 1], weight=c0)
    h3 = rotate(h2, out[:, 1], out[:, 2], weight=F.cosine_similarity(out[:, 1], t2, dim=-1))
    torch.testing.assert_close(model.calls[1]["text"], h2)
    torch.testing.assert_close(model.calls[2]["text"], h3)

    fixed_model = FakeSpliter(text_gain=0.5)
    fixed = SpliterRollout(fixed_model, RolloutConfig(mode="chain", anchor="fixed"))(h, t, u, TIMES)
    torch.testing.assert_close(fixed[:, :3], out[:, :3])  # identical until the anchors first move
    assert (fixed[:, 3:] - out[:, 3:]).abs().max() > 1e-4


def test_legacy_row_convention_turns_the_text_the_other_way():
    h, t, u = inputs()
    column, legacy = FakeSpliter(text_gain=0.5), FakeSpliter(text_gain=0.5)
    SpliterRollout(column, RolloutConfig(mode="chain"))(h, t, u, TIMES)
    SpliterRollout(legacy, RolloutConfig(mode="chain", rotation_convention="legacy_row"))(h, t, u, TIMES)
    assert not torch.allclose(column.calls[1]["text"], legacy.calls[1]["text"])


def tiny_spliter(time_scale: float = 0.5) -> Spliter:
    model = Spliter(SpliterConfig(dim=D, text_tokens=T, width=4, depth=2, heads=2, dropout=0.5, time_scale=time_scale))
    with torch.no_grad():
        model.out_proj.weight.normal_(0, 0.5)  # a fresh Spliter predicts no motion; give it some
    return model


@pytest.mark.parametrize("mode", ["step", "chain"])
def test_real_spliter_matches_direct_forwards_in_eval_mode(mode):
    model = tiny_spliter()
    h, t, u = inputs()
    model.train()
    out = SpliterRollout(model, RolloutConfig(mode=mode))(h, t, u, TIMES)
    model.eval()
    with torch.no_grad():
        if mode == "step":
            direct = [model(h, u, torch.full((B,), float(s) / 0.5)) for s in TIMES[1:]]
        else:
            direct = [model(h, u, torch.full((B,), 0.25 / 0.5))]
    assert torch.equal(out[:, 0], u)
    torch.testing.assert_close(out[:, 1], direct[0])
    if mode == "step":
        torch.testing.assert_close(out[:, 1:], torch.stack(direct, 1))
    assert (out[:, -1] - u).abs().max() > 1e-3


def test_static_repeats_the_start():
    h, t, u = inputs()
    out = StaticRollout()(h, t, u, TIMES)
    assert out.shape == (B, 5, D)
    assert torch.equal(out, u[:, None].expand(B, 5, D))


def linear_store(path, velocity: torch.Tensor) -> EmbeddingStore:
    g = torch.Generator().manual_seed(1)
    with EmbeddingStore.create(path, D, T) as store:
        for i in range(4):
            times = torch.cumsum(torch.rand(6, generator=g, dtype=torch.float64) + 0.1, 0) + 3.0  # uneven, t0 != 0
            e0 = torch.randn(D, generator=g)
            frames = e0 + (times - times[0])[:, None].float() * velocity
            store.add(f"v{i}", "c", torch.zeros(T, D), torch.ones(D), e0, frames, times, split="val" if i == 3 else "train")
    return EmbeddingStore.open(path)


def test_mean_motion_fit_recovers_the_velocity_of_linear_trajectories(tmp_path):
    velocity = torch.linspace(-0.5, 0.7, D)
    store = linear_store(tmp_path / "s", velocity)
    rollout = MeanMotionRollout.fit(store)
    torch.testing.assert_close(rollout.velocity, velocity, atol=3e-3, rtol=0)
    record = store.get("v3")
    times = record.frame_times - record.frame_times[0]
    out = rollout(record.text_hidden[None], record.text_embed[None], record.frame_embeds[:1], times)
    torch.testing.assert_close(out[0], record.frame_embeds, atol=1e-2, rtol=0)
    assert torch.equal(out[0, 0], record.frame_embeds[0])


def test_mean_motion_time_scale_and_empty_split(tmp_path):
    h, t, u = inputs()
    velocity = torch.ones(D)
    out = MeanMotionRollout(velocity, time_scale=0.5)(h, t, u, TIMES)
    torch.testing.assert_close(out[:, -1], u + 2.0 * velocity)
    store = linear_store(tmp_path / "s", velocity)
    with pytest.raises(ValueError, match="split 'test' has no videos"):
        MeanMotionRollout.fit(store, split="test")


@pytest.mark.parametrize(
    ("times", "message"),
    [([0.5, 1.0], r"times\[0\] must be 0"), ([0.0, 0.5, 0.5], "strictly increasing"), ([0.0, float("nan")], "finite")],
)
def test_bad_times_are_rejected(times, message):
    with pytest.raises(ValueError, match=message):
        StaticRollout()(*inputs(), torch.tensor(times))


def test_single_frame_is_just_the_start():
    h, t, u = inputs()
    for rollout in (StaticRollout(), SpliterRollout(FakeSpliter()), SpliterRollout(FakeSpliter(), RolloutConfig(mode="chain"))):
        out = rollout(h, t, u, torch.zeros(1))
        assert out.shape == (B, 1, D) and torch.equal(out[:, 0], u)


def test_make_rollout_builds_each_kind(tmp_path):
    model = tiny_spliter()
    save_spliter(model, tmp_path / "m.pt")
    from_path = make_rollout("spliter", model=tmp_path / "m.pt", config=RolloutConfig(mode="chain"))
    assert isinstance(from_path, SpliterRollout) and from_path.name == "spliter-chain-fixed"
    assert from_path.time_scale == 0.5
    torch.testing.assert_close(from_path(*inputs(), TIMES), SpliterRollout(model, RolloutConfig(mode="chain"))(*inputs(), TIMES))
    assert make_rollout("static").name == "static"
    fitted = make_rollout("mean_motion", store=linear_store(tmp_path / "s", torch.ones(D)))
    assert isinstance(fitted, MeanMotionRollout) and isinstance(fitted, Rollout)
    assert torch.equal(make_rollout("mean_motion", velocity=torch.ones(D)).velocity, torch.ones(D))
    with pytest.raises(ValueError, match="unknown rollout kind 'magic'"):
        make_rollout("magic")
    with pytest.raises(ValueError, match="needs model="):
        make_rollout("spliter")


def test_config_validates_and_gives_the_time_grid():
    assert RolloutConfig(frames=4, dt=0.5).times().tolist() == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="anchor"):
        RolloutConfig(anchor="sliding")
    with pytest.raises(ValueError, match="dt"):
        RolloutConfig(dt=0.0)
