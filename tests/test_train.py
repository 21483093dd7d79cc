"""The Trainer on a tiny synthetic store: it learns, selects on validation, and resumes exactly."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from spliter.data.datasets import caption_record_id
from spliter.data.store import EmbeddingStore
from spliter.data.synthetic import write_synthetic_store
from spliter.models import Spliter, SpliterConfig, load_spliter, read_checkpoint
from spliter.regimes import Example, RegimeConfig
from spliter.rollout import MeanMotionRollout, RolloutConfig, SpliterRollout, StaticRollout
from spliter.rotation import rotate
from spliter.train import (
    LrSchedule,
    ResumeMismatch,
    TrainConfig,
    TrainingDiverged,
    VideoTensors,
    batch_inputs,
    data_storage,
    select_device,
    split_videos,
    train,
    validation_cosine,
)

DIM, TOKENS = 16, 4
MODEL = SpliterConfig(dim=DIM, text_tokens=TOKENS, width=8, depth=2, heads=2, dropout=0.0, time_scale=1.0)
COMBINED = RegimeConfig(back=True, rotate=True, diff=2, pairs_per_video=4)
# The learning run: all regime components on, so chain-mode rollouts see prediction-from-prediction starts.
LEARN = TrainConfig(epochs=15, batch_size=32, lr=5e-3, regime=COMBINED, progress=False, device="cpu")
# The resume runs: dropout on, so the torch RNG state must be restored too; 2 epochs of 24 steps.
RESUME_MODEL = replace(MODEL, dropout=0.1)
RESUME = TrainConfig(epochs=2, batch_size=16, lr=3e-3, progress=False, device="cpu",
                     regime=RegimeConfig(back=True, rotate=True, diff=2, pairs_per_video=2))


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "synthetic"
    write_synthetic_store(path, n_videos=32, dim=DIM, text_tokens=TOKENS, frames=8, seed=0)
    return path


@pytest.fixture(scope="module")
def store(store_path):
    from spliter.data.store import EmbeddingStore

    return EmbeddingStore.open(store_path)


@pytest.fixture(scope="module")
def learned(store, tmp_path_factory):
    directory = tmp_path_factory.mktemp("learned")
    return train(MODEL, LEARN, store, directory), directory


@pytest.fixture(scope="module")
def reference(store, tmp_path_factory):
    """An uninterrupted resume-config run, to compare interrupted-and-resumed runs against."""
    directory = tmp_path_factory.mktemp("reference")
    return train(RESUME_MODEL, RESUME, store, directory), directory


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_run(directory: Path, ref_directory: Path) -> None:
    mine, ref = weights(directory / "last.pt"), weights(ref_directory / "last.pt")
    assert mine.keys() == ref.keys()
    assert all(torch.equal(mine[k], ref[k]) for k in ref)
    best, ref_best = read_checkpoint(directory / "best.pt"), read_checkpoint(ref_directory / "best.pt")
    assert all(torch.equal(best["state_dict"][k], ref_best["state_dict"][k]) for k in ref_best["state_dict"])
    assert json.loads((directory / "history.json").read_text()) == json.loads((ref_directory / "history.json").read_text())


def rollout_cosine(rollout, records) -> float:
    """Mean cosine(predicted, true) over frames >= 1, starting from the TRUE first frame embedding."""
    total, count = 0.0, 0
    for r in records:
        out = rollout(r.text_hidden[None], r.text_embed[None], r.frame_embeds[:1], r.frame_times - r.frame_times[0])
        cos = F.cosine_similarity(out[0, 1:], r.frame_embeds[1:], dim=-1)
        total, count = total + float(cos.sum()), count + len(cos)
    return total / count


# ------------------------------------------------------------------------------------------- a full run


def test_a_run_writes_checkpoints_and_history_and_improves_val_cosine(learned, store):
    result, directory = learned
    assert {"last.pt", "best.pt", "history.json"} <= {p.name for p in directory.iterdir()}
    assert result.finished and result.checkpoint == directory / "best.pt"
    history = json.loads((directory / "history.json").read_text())
    assert history == result.history
    assert [h["epoch"] for h in history] == list(range(len(history)))
    assert all(math.isfinite(h["train_loss"]) and h["examples"] > 0 for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # Selection: best.pt is the epoch with the highest validation cosine, and it beats the untrained model.
    best = max(history, key=lambda h: h["val_cosine"])
    assert (result.best_epoch, result.best_val_cosine) == (best["epoch"], best["val_cosine"])
    assert result.best_val_cosine > result.initial_val_cosine + 0.01
    payload = read_checkpoint(result.checkpoint)
    assert payload["extra"]["epoch"] == result.best_epoch
    assert payload["extra"]["val_cosine"] == pytest.approx(result.best_val_cosine)
    assert TrainConfig.from_dict(payload["extra"]["train_config"]) == LEARN
    model = load_spliter(result.checkpoint)
    assert model.config == MODEL  # the time scale comes from the model config, stored with the weights
    assert validation_cosine(model, store.split("val")) == pytest.approx(result.best_val_cosine, abs=1e-6)


def test_the_initial_val_cosine_is_that_of_the_untrained_model(learned, store):
    torch.manual_seed(LEARN.seed)
    untrained = Spliter(MODEL)
    assert validation_cosine(untrained, store.split("val")) == pytest.approx(learned[0].initial_val_cosine, abs=1e-6)


@pytest.mark.parametrize("mode", ["step", "chain"])
def test_trained_spliter_beats_static_and_mean_motion_on_held_out_videos(learned, store, mode):
    val = store.split("val")
    model = load_spliter(learned[0].checkpoint)
    spliter = rollout_cosine(SpliterRollout(model, RolloutConfig(mode=mode)), val)
    static = rollout_cosine(StaticRollout(), val)
    mean_motion = rollout_cosine(MeanMotionRollout.fit(store, "train"), val)
    assert spliter > max(static, mean_motion) + 0.005, (spliter, static, mean_motion)


def test_calling_train_again_on_a_finished_run_returns_its_result_without_training(learned, store):
    result, directory = learned
    before = (directory / "last.pt").stat().st_mtime_ns
    again = train(MODEL, LEARN, store, directory)
    assert again == result
    assert (directory / "last.pt").stat().st_mtime_ns == before


# ------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("stop_after", [10, 24, 30])  # mid-epoch, at an epoch's last step, in epoch 2
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(store, reference, tmp_path, stop_after):
    partial = train(RESUME_MODEL, replace(RESUME, stop_after_steps=stop_after), store, tmp_path)
    assert not partial.finished and partial.global_step == stop_after
    resumed = train(RESUME_MODEL, replace(RESUME, checkpoint_every=7), store, tmp_path)
    ref_result, ref_dir = reference
    assert resumed.finished and resumed.global_step == ref_result.global_step
    assert resumed.history == ref_result.history
    assert_same_run(tmp_path, ref_dir)


def test_exception_in_a_callback_stops_the_run_and_resume_continues_from_the_last_checkpoint(
    store, reference, tmp_path
):
    seen = []

    def crash(info):
        seen.append(info)
        if info.global_step == 17:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RESUME_MODEL, replace(RESUME, checkpoint_every=5), store, tmp_path, callback=crash)
    assert [s.global_step for s in seen] == list(range(1, 18))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["progress"]["global_step"] == 15
    train(RESUME_MODEL, RESUME, store, tmp_path)
    assert_same_run(tmp_path, reference[1])


CHILD = textwrap.dedent(
    """
    import json, sys, time, torch
    from spliter.data.store import EmbeddingStore
    from spliter.models import SpliterConfig
    from spliter.train import TrainConfig, train
    store_path, directory, model_config, train_config = sys.argv[1:]
    slow = lambda info: time.sleep(0.05)  # leaves time to be killed mid-run
    train(SpliterConfig.from_dict(json.loads(model_config)), TrainConfig.from_dict(json.loads(train_config)),
          EmbeddingStore.open(store_path), directory, callback=slow)
    """
)


def test_a_sigkilled_run_resumes_to_the_same_weights(store_path, store, reference, tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    # deterministic=False spares the child torch's slow import of its compiler config; CPU kernels are
    # deterministic anyway, and the resumed run below keeps the default.
    child_config = replace(RESUME, checkpoint_every=3, deterministic=False)
    configs = [json.dumps(RESUME_MODEL.to_dict()), json.dumps(child_config.to_dict())]
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store_path), str(tmp_path), *configs], cwd=root, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "last.pt").exists():
            assert child.poll() is None, "the training subprocess exited before writing last.pt"
            assert time.monotonic() < deadline, "no last.pt after 60 s"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    progress = torch.load(tmp_path / "last.pt", weights_only=True)["progress"]
    assert not progress["done"] and 0 < progress["global_step"] < reference[0].global_step
    result = train(RESUME_MODEL, RESUME, store, tmp_path)
    assert result.history == reference[0].history
    assert_same_run(tmp_path, reference[1])


def test_resuming_with_other_settings_is_refused(store, reference, tmp_path):
    train(RESUME_MODEL, replace(RESUME, stop_after_steps=2), store, tmp_path)
    with pytest.raises(ResumeMismatch, match="different train config"):
        train(RESUME_MODEL, replace(RESUME, lr=1e-2), store, tmp_path)
    with pytest.raises(ResumeMismatch, match="different model config"):
        train(replace(RESUME_MODEL, time_scale=2.0), RESUME, store, tmp_path)
    # Runtime-only settings may change between the interrupted and the resumed call.
    train(RESUME_MODEL, replace(RESUME, progress=True, checkpoint_every=100, stop_after_steps=3), store, tmp_path)


# ------------------------------------------------------------------------------------------- regimes, losses


@pytest.mark.parametrize(
    "regime",
    [
        RegimeConfig(),
        RegimeConfig(back=True),
        RegimeConfig(rotate=True),
        RegimeConfig(rotate=True, rotation_convention="legacy_row", rotation_power=0.0),
        RegimeConfig(diff=1),
        RegimeConfig(diff=2),
        RegimeConfig(diff=2, diff_grad="backprop"),
        RegimeConfig(back=True, rotate=True, diff=2),
    ],
    ids=["base", "back", "rotate", "rotate-legacy-full", "diff1", "diff2", "diff2-backprop", "combined"],
)
@pytest.mark.parametrize("loss", ["displacement", "legacy"])
def test_every_regime_and_loss_trains_with_finite_loss(store, tmp_path, regime, loss):
    losses = []
    config = TrainConfig(epochs=1, batch_size=16, regime=replace(regime, pairs_per_video=3), loss=loss,
                         stop_after_steps=3, progress=False, device="cpu")
    result = train(RESUME_MODEL, config, store, tmp_path, callback=lambda info: losses.append(info.loss))
    assert result.global_step == 3 and len(losses) == 3
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in weights(tmp_path / "last.pt").items()
               if k.startswith("out_proj"))  # the zero-initialised output moved: gradients flowed


def test_backprop_through_the_chain_changes_the_update(store, tmp_path):
    def first_step(diff_grad):
        regime = RegimeConfig(diff=2, diff_grad=diff_grad, pairs_per_video=3)
        config = TrainConfig(epochs=1, batch_size=16, regime=regime, stop_after_steps=2, progress=False,
                             device="cpu")
        train(RESUME_MODEL, config, store, tmp_path / diff_grad)
        return weights(tmp_path / diff_grad / "last.pt")

    stop, backprop = first_step("stop"), first_step("backprop")
    assert any(not torch.equal(stop[k], backprop[k]) for k in stop)


# ------------------------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("diff_grad", ["stop", "backprop"])
def test_batch_start_states_follow_each_examples_record(store, diff_grad):
    """Each row's start state, text, step and true frames come from its own (video, way, start, target, chain)."""
    records = store.split("train")[:3]
    videos = VideoTensors(records, torch.device("cpu"))
    model = Spliter(replace(MODEL, dropout=0.0))
    torch.nn.init.normal_(model.out_proj.weight, std=0.1)  # a fresh model returns its start: make hops visible
    regime = RegimeConfig(rotation_power=2.0, diff_grad=diff_grad)
    t1 = records[1].frame_times.tolist()
    t2 = records[2].frame_times.tolist()
    batch = [
        (2, Example("back", 3, "rotated_prior", 1, (t2[1] - t2[3]) / 1.0)),
        (0, Example("normal", 0, "prior", 5, 0.0)),  # step deliberately not t5 - t0: rows carry their own step
        (1, Example("normal", 4, "prediction", 6, (t1[6] - t1[4]) / 1.0, (0, 2, 4))),
    ]
    got = batch_inputs(model, videos, batch, regime, time_scale=1.0)

    def rec(i):
        r = records[i]
        return r.text_hidden[None], r.prior_embed[None], r.text_embed[None], r.frame_embeds

    def cos(a, b):
        return F.cosine_similarity(a, b, dim=-1)

    # Rows come grouped by source: prediction, prior, rotated_prior.
    h, u, t, e = rec(1)
    state, text = u, h
    for a, b in ((0, 2), (2, 4)):
        state = model(text, state, torch.tensor([t1[b] - t1[a]], dtype=torch.float32))
        text = rotate(h, u, state, weight=cos(u, t), power=2.0)
    torch.testing.assert_close(got.start_state[0:1], state)
    torch.testing.assert_close(got.text[0:1], text)
    assert torch.equal(got.start_true[0], e[4]) and torch.equal(got.target_true[0], e[6])
    assert got.start_state.requires_grad == (diff_grad == "backprop")

    h, u, t, e = rec(0)
    assert torch.equal(got.start_state[1:2], u) and torch.equal(got.text[1:2], h)
    assert torch.equal(got.start_true[1], e[0]) and torch.equal(got.target_true[1], e[5])
    assert got.step[1] == 0.0

    h, u, t, e = rec(2)
    last = len(t2) - 1  # the back way's base frame
    u_rot = rotate(u, e[last][None], e[3][None], weight=cos(e[last][None], u), power=2.0)
    torch.testing.assert_close(got.start_state[2:3], u_rot)
    torch.testing.assert_close(got.text[2:3], rotate(h, u, u_rot, weight=cos(u, t), power=2.0))
    assert torch.equal(got.start_true[2], e[3]) and torch.equal(got.target_true[2], e[1])
    assert got.step[2] == pytest.approx(t2[1] - t2[3]) and got.step[2] < 0


def test_early_stopping_after_patience_epochs_without_improvement(store, tmp_path):
    # An lr far below fp32 resolution leaves the model (and so the val cosine) unchanged.
    config = TrainConfig(epochs=10, batch_size=64, lr=1e-20, patience=2, progress=False, device="cpu")
    result = train(MODEL, config, store, tmp_path)
    assert result.stopped_early and result.finished
    assert len(result.history) == 3 and result.best_epoch == 0


def test_divergence_is_raised_not_trained_through(store, tmp_path):
    config = TrainConfig(epochs=2, batch_size=16, lr=1e30, grad_clip=0.0, weight_decay=0.0, progress=False,
                         device="cpu")
    with pytest.raises(TrainingDiverged, match="lower lr"):
        train(MODEL, config, store, tmp_path)


def test_without_a_val_split_videos_are_split_by_hashed_id(tmp_path):
    store = write_synthetic_store(tmp_path / "noval", n_videos=40, dim=DIM, text_tokens=TOKENS, frames=3,
                                  val_fraction=0.0)
    assert store.split("val") == []
    train_records, val_records = split_videos(store, 0.25)
    train_ids, val_ids = {r.video_id for r in train_records}, {r.video_id for r in val_records}
    assert train_ids | val_ids == set(store.ids()) and not train_ids & val_ids
    assert 3 <= len(val_ids) <= 17  # about a quarter of 40
    assert {r.video_id for r in split_videos(store, 0.25)[1]} == val_ids  # deterministic
    assert val_ids < {r.video_id for r in split_videos(store, 0.6)[1]}  # a larger fraction keeps the smaller one
    tiny = write_synthetic_store(tmp_path / "one", n_videos=1, dim=DIM, text_tokens=TOKENS, frames=3,
                                 val_fraction=0.0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_videos(tiny, 0.01)


def test_a_model_config_that_does_not_fit_the_store_is_refused(store, tmp_path):
    with pytest.raises(ValueError, match="text_tokens=77"):
        train(replace(MODEL, text_tokens=77), RESUME, store, tmp_path)


def test_schedules_warm_up_then_decay():
    cosine = LrSchedule("cosine", warmup_steps=4, total_steps=20, steps_per_epoch=5, gamma=0.5)
    assert [cosine(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine(4) == 1.0 and cosine(12) == pytest.approx(0.5) and cosine(20) == pytest.approx(0.0)
    assert all(cosine(s) >= cosine(s + 1) for s in range(4, 20))
    exponential = LrSchedule("exponential", warmup_steps=0, total_steps=20, steps_per_epoch=5, gamma=0.5)
    assert [exponential(s) for s in (0, 4, 5, 9, 10, 19)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    assert LrSchedule("constant", 0, 20, 5, 0.5)(13) == 1.0


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu-of-my-dreams")


@pytest.mark.parametrize(
    "bad",
    [{"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"schedule": "linear"}, {"loss": "mse"}, {"val_fraction": 1.0},
     {"patience": 0}, {"seed": -1}, {"grad_clip": float("nan")}, {"data_placement": "gpu"}],
)
def test_invalid_train_configs_are_refused(bad):
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(**bad)


def test_train_config_round_trips_through_a_dict():
    assert TrainConfig.from_dict(LEARN.to_dict()) == LEARN
    assert TrainConfig.from_dict(json.loads(json.dumps(LEARN.to_dict()))).regime == COMBINED


# ------------------------------------------------------------------------------------------- budgets


REGIMES = {
    "base": RegimeConfig(pairs_per_video=3),
    "back": RegimeConfig(back=True, pairs_per_video=3),
    "rotate": RegimeConfig(rotate=True, pairs_per_video=3),
    "diff": RegimeConfig(diff=1, pairs_per_video=3),
    "combined": RegimeConfig(back=True, rotate=True, diff=1, pairs_per_video=3),
}


def test_every_regime_takes_the_same_number_of_steps_at_the_same_budget(store, tmp_path):
    steps: dict[str, int] = {}
    epochs_run: dict[str, int] = {}
    for name, regime in REGIMES.items():
        seen: list[int] = []
        config = TrainConfig(budget_steps=7, batch_size=16, regime=regime, patience=None, progress=False,
                             device="cpu")
        result = train(MODEL, config, store, tmp_path / name, callback=lambda info, seen=seen: seen.append(info.global_step))
        assert seen == list(range(1, 8)) and result.finished and not result.stopped_early
        steps[name], epochs_run[name] = result.steps, result.history[-1]["epoch"]
        assert result.history[-1]["steps"] == 7  # the end of the budget is validated
        assert result.examples_seen == sum(h["examples"] for h in result.history) and result.wall_s > 0
    assert set(steps.values()) == {7}
    assert epochs_run["base"] > epochs_run["combined"]  # epochs differ in length; the budget does not


def test_an_example_budget_is_met_exactly_by_cutting_the_last_batch(store, tmp_path):
    seen: list[int] = []
    config = TrainConfig(budget_examples=50, batch_size=16, regime=REGIMES["base"], patience=None, progress=False,
                         device="cpu")
    result = train(MODEL, config, store, tmp_path, callback=lambda info: seen.append(info.global_step))
    assert result.examples_seen == 50 and result.steps == 4 == len(seen)  # 16 + 16 + 16 + 2


@pytest.mark.parametrize("stop_after", [3, 9])
def test_a_resumed_budgeted_run_stops_exactly_at_the_budget(store, tmp_path, stop_after):
    config = TrainConfig(budget_steps=11, val_every=4, batch_size=16, regime=REGIMES["combined"], patience=None,
                         progress=False, device="cpu")
    reference = train(RESUME_MODEL, config, store, tmp_path / "ref")
    partial = train(RESUME_MODEL, replace(config, stop_after_steps=stop_after), store, tmp_path / "run")
    assert not partial.finished and partial.steps == stop_after
    resumed = train(RESUME_MODEL, config, store, tmp_path / "run")
    assert resumed.finished and resumed.steps == reference.steps == 11
    assert [h["steps"] for h in resumed.history] == [4, 8, 11]  # every val_every steps and at the end
    assert_same_run(tmp_path / "run", tmp_path / "ref")
    again = train(RESUME_MODEL, config, store, tmp_path / "run")
    assert again.steps == 11 and again.history == resumed.history


def test_the_schedule_spans_the_budget_not_the_epochs(store, tmp_path):
    config = TrainConfig(budget_steps=6, epochs=1, batch_size=16, warmup_fraction=0.0, regime=REGIMES["base"],
                         patience=None, progress=False, device="cpu")
    lrs: list[float] = []
    train(MODEL, config, store, tmp_path, callback=lambda info: lrs.append(info.lr))
    expected = [config.lr * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert lrs == pytest.approx(expected)


def test_budgets_are_validated():
    with pytest.raises(ValueError, match="budget_steps or budget_examples, not both"):
        TrainConfig(budget_steps=3, budget_examples=30)
    for name in ("budget_steps", "budget_examples", "val_every"):
        with pytest.raises(ValueError, match=f"TrainConfig.{name} must be an integer >= 1"):
            TrainConfig(**{name: 0})


# ------------------------------------------------------------------------------------------- splits


def _copy_store(source, path, extra_splits: dict[str, int] | None = None):
    """A copy of ``source`` plus, per extra split, that many wild videos (huge embeddings) in it."""
    from spliter.data.store import EmbeddingStore

    writer = EmbeddingStore.create(path, source.dim, source.text_tokens, meta=source.meta)
    for r in source:
        writer.add(r.video_id, r.caption, r.text_hidden, r.text_embed, r.prior_embed, r.frame_embeds,
                   r.frame_times, split=r.split)
    g = torch.Generator().manual_seed(0)
    template = next(iter(source))
    for split, count in (extra_splits or {}).items():
        for i in range(count):
            writer.add(f"{split}-{i}", "wild", 100 * torch.randn(template.text_hidden.shape, generator=g),
                       100 * torch.randn(source.dim, generator=g), 100 * torch.randn(source.dim, generator=g),
                       100 * torch.randn(template.frame_embeds.shape, generator=g), template.frame_times, split=split)
    writer.close()
    return EmbeddingStore.open(path)


def test_no_test_video_reaches_training_or_baseline_fitting(store, tmp_path):
    plain = _copy_store(store, tmp_path / "plain")
    wild = _copy_store(store, tmp_path / "wild", {"test": 3, "test_unseen": 3})
    config = TrainConfig(budget_steps=5, batch_size=16, regime=REGIMES["combined"], progress=False, device="cpu")
    train(RESUME_MODEL, config, plain, tmp_path / "a")
    train(RESUME_MODEL, config, wild, tmp_path / "b")
    assert_same_run(tmp_path / "b", tmp_path / "a")
    fitted = MeanMotionRollout.fit(wild, "train").velocity
    assert torch.equal(fitted, MeanMotionRollout.fit(plain, "train").velocity)


def test_without_a_val_split_mean_motion_fits_only_the_trainers_training_videos(tmp_path):
    store = write_synthetic_store(tmp_path / "s", n_videos=12, dim=DIM, text_tokens=TOKENS, frames=5,
                                  val_fraction=0.0)
    train_records, val_records = split_videos(store, 0.25)
    assert val_records and not store.split("val")
    from spliter.data.store import EmbeddingStore

    writer = EmbeddingStore.create(tmp_path / "only-train", store.dim, store.text_tokens, meta={})
    for r in train_records:
        writer.add(r.video_id, r.caption, r.text_hidden, r.text_embed, r.prior_embed, r.frame_embeds,
                   r.frame_times, split="val")
    writer.close()
    # Stored as "val" so that fit reads exactly these videos (a "train" split would lose its own hashed share).
    expected = MeanMotionRollout.fit(EmbeddingStore.open(tmp_path / "only-train"), "val")
    assert torch.equal(MeanMotionRollout.fit(store, "train", val_fraction=0.25).velocity, expected.velocity)


# ------------------------------------------------------------------------------------------- starts, chains


def test_a_true_anchor_starts_from_the_base_frame_itself(store):
    records = store.split("train")[:2]
    videos = VideoTensors(records, torch.device("cpu"))
    model = Spliter(MODEL)
    batch = [(0, Example("normal", 0, "prior", 3, 0.5, anchor="true")),
             (1, Example("back", 7, "prior", 2, -0.5, anchor="true")),
             (1, Example("normal", 0, "prior", 2, 0.5))]
    got = batch_inputs(model, videos, batch, RegimeConfig(), time_scale=1.0)
    assert torch.equal(got.start_state[0], records[0].frame_embeds[0])
    assert torch.equal(got.start_state[1], records[1].frame_embeds[7])
    assert torch.equal(got.start_state[2], records[1].prior_embed)


def test_chain_hops_are_made_without_dropout_and_the_last_prediction_with_it(store):
    records = store.split("train")[:2]
    videos = VideoTensors(records, torch.device("cpu"))
    model = Spliter(replace(MODEL, dropout=0.5))
    torch.nn.init.normal_(model.out_proj.weight, std=0.1)
    t = records[0].frame_times.tolist()
    batch = [(0, Example("normal", 2, "prediction", 4, t[4] - t[2], (0, 1, 2)))]
    model.train()
    states = {batch_inputs(model, videos, batch, RegimeConfig(diff=2), 1.0).start_state for _ in range(3)}
    model.eval()
    expected = batch_inputs(model, videos, batch, RegimeConfig(diff=2), 1.0).start_state
    assert all(torch.equal(s, expected) for s in states)
    assert model.training is False  # batch_inputs restores the mode it found
    model.train()
    batch_inputs(model, videos, batch, RegimeConfig(diff=2), 1.0)
    assert model.training


@pytest.mark.parametrize("start", ["true", "both"])
def test_validation_follows_the_regimes_start(store, start):
    model = Spliter(MODEL)
    torch.nn.init.normal_(model.out_proj.weight, std=0.1)
    val = store.split("val")
    prior, true = validation_cosine(model, val, start="prior"), validation_cosine(model, val, start="true")
    assert prior != true
    expected = true if start == "true" else 0.5 * (prior + true)
    assert validation_cosine(model, val, start=start) == pytest.approx(expected, abs=1e-12)


def test_a_run_written_before_the_budget_fields_existed_still_resumes(store, tmp_path):
    config = replace(RESUME, stop_after_steps=3)
    train(RESUME_MODEL, config, store, tmp_path)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    for name in ("budget_steps", "budget_examples", "val_every"):
        del payload["key"]["train_config"][name]
    del payload["key"]["train_config"]["regime"]["start"]
    del payload["key"]["model_config"]["step_consistent"]
    torch.save(payload, tmp_path / "last.pt")
    assert train(RESUME_MODEL, replace(RESUME, stop_after_steps=5), store, tmp_path).steps == 5
    with pytest.raises(ResumeMismatch, match="different train config"):
        train(RESUME_MODEL, replace(RESUME, budget_steps=9), store, tmp_path)


# ------------------------------------------------------------------------------------------- data layout (issue 12)

CAPTIONS = 3


@pytest.fixture(scope="module")
def caption_store(store, tmp_path_factory):
    """The synthetic store under data.captions_per_video all: three caption records per train video, each with its
    own text and prior and the video's frames, as encode writes them; the last video's third record has other
    frames (records of one video that differ must not be merged)."""
    path = tmp_path_factory.mktemp("captions") / "store"
    g = torch.Generator().manual_seed(3)
    train_ids = store.ids("train")
    with EmbeddingStore.create(path, DIM, TOKENS) as out:
        for r in store:
            for c in range(CAPTIONS if r.split == "train" else 1):
                def moved(x, c=c):
                    return x if c == 0 else x + 0.3 * torch.randn(x.shape, generator=g)
                odd = r.video_id == train_ids[-1] and c == CAPTIONS - 1
                frames = r.frame_embeds + 0.01 if odd else r.frame_embeds
                out.add(caption_record_id(r.video_id, c), f"{r.caption} ({c})", moved(r.text_hidden),
                        moved(r.text_embed), moved(r.prior_embed), frames, r.frame_times, split=r.split)
    return EmbeddingStore.open(path)


def test_caption_records_share_their_videos_frames_in_fp16_and_gather_the_same_fp32_values(caption_store):
    records = caption_store.split("train")
    compact, legacy = VideoTensors(records, "cpu"), VideoTensors(records, "cpu", compact=False)
    videos = len(records) // CAPTIONS
    assert legacy.n_frame_rows == len(records)
    assert compact.n_frame_rows == videos + 1  # one per video, and the differing record its own
    assert compact.nbytes < 0.6 * legacy.nbytes
    rows = torch.arange(len(records))
    for gather in ("text_hidden", "text_embed", "prior"):
        got = getattr(compact, gather)(rows)
        assert got.dtype == torch.float32 and torch.equal(got, getattr(legacy, gather)(rows))
    assert torch.equal(compact.text_hidden(rows), torch.stack([r.text_hidden for r in records]))
    for k in range(max(compact.n_frames)):
        assert torch.equal(compact.frames(rows, k), torch.stack([r.frame_embeds[k] for r in records]))
    ks = torch.tensor([i % 8 for i in range(len(records))])
    assert torch.equal(compact.frames(rows, ks), legacy.frames(rows, ks))


def test_values_fp16_cannot_hold_are_kept_in_fp32(caption_store):
    records = caption_store.split("val")[:2]
    fine = replace(records[0], text_hidden=records[0].text_hidden + 1e-4, frame_embeds=records[0].frame_embeds / 3)
    videos = VideoTensors([records[1], fine], "cpu")  # fp16 until the second record, fp32 from there
    rows = torch.tensor([0, 1])
    assert torch.equal(videos.text_hidden(rows), torch.stack([records[1].text_hidden, fine.text_hidden]))
    assert torch.equal(videos.frames(rows, 2), torch.stack([records[1].frame_embeds[2], fine.frame_embeds[2]]))


def test_the_data_layout_and_placement_leave_a_run_bit_identical(caption_store, tmp_path, monkeypatch):
    """Old layout (fp32, a frame row per record) vs shared fp16 frames, on the device vs on the host (resumed on
    the device half-way): the same weights, best checkpoint and history, every gather path used."""
    regime = RegimeConfig(back=True, rotate=True, diff=2, pairs_per_video=2, start="both")
    config = TrainConfig(epochs=2, batch_size=16, lr=3e-3, progress=False, device="cpu", regime=regime,
                         val_every=5, data_placement="device")
    train(RESUME_MODEL, config, caption_store, tmp_path / "compact")
    train(RESUME_MODEL, replace(config, data_placement="host", stop_after_steps=7), caption_store, tmp_path / "host")
    assert train(RESUME_MODEL, config, caption_store, tmp_path / "host").finished
    with monkeypatch.context() as patch:
        patch.setattr("spliter.train.VideoTensors", partial(VideoTensors, compact=False))
        result = train(RESUME_MODEL, config, caption_store, tmp_path / "legacy")
    assert result.examples_seen > 0 and len(result.history) >= 3
    assert_same_run(tmp_path / "compact", tmp_path / "legacy")
    assert_same_run(tmp_path / "host", tmp_path / "legacy")


def test_training_leaves_the_stores_shard_cache_empty(caption_store, tmp_path):
    """Once the tensors are built the store's decoded shards are not kept: they would double the host memory."""
    config = TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu")
    assert train(RESUME_MODEL, config, caption_store, tmp_path / "run").finished
    assert caption_store._shards == {}


def test_auto_placement_keeps_the_data_on_a_cuda_device_up_to_a_quarter_of_its_memory(monkeypatch):
    cuda, host = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: type("P", (), {"total_memory": 1000}))
    assert data_storage("auto", cuda, 250) == cuda and data_storage("auto", cuda, 251) == host
    assert data_storage("device", cuda, 10**12) == cuda and data_storage("host", cuda, 1) == host
    assert data_storage("auto", host, 10**12) == host  # on the CPU host and device memory are one
