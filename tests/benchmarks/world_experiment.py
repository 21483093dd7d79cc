"""The pixel world end to end at library level: shapes -> pixel-linear -> store -> Spliter -> rollout -> PSNR/SSIM.

Used by tests/benchmarks/test_bench_world.py (timings, the verdict over seeds) and tests/test_world.py (the
micro version). Nothing here is a harness: it calls the library the way the encode / train / generate / score
stages do, with a test split chosen by hashed id and a text-blind control (the same store with every video's
text states replaced by those of one fixed caption).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from metrics.paired import paired_scores
from spliter.backends.pixel import PixelLinearBackend
from spliter.data.datasets import read_folder
from spliter.data.shapes import write_shapes_dataset
from spliter.data.store import EmbeddingStore
from spliter.models import SpliterConfig, load_spliter
from spliter.pipeline import derive_seed, encode_videos, load_frames
from spliter.regimes import RegimeConfig
from spliter.rollout import MeanMotionRollout, RolloutConfig, SpliterRollout, StaticRollout
from spliter.train import TrainConfig, train

AXES = ("left_to_right", "right_to_left", "up", "down")
BLIND_CAPTION = "a shape on a background"


@dataclass(frozen=True)
class WorldConfig:
    """The shapes world and its encoding."""

    n_videos: int = 120  # clips rendered (test and val taken out by hashed id)
    frames: int = 12  # frames per clip (all of them encoded)
    fps: float = 6.0  # clip frame rate (times in seconds)
    size: int = 32  # render and scoring size in pixels
    seed: int = 0  # shapes generation seed
    motions: tuple[str, ...] = AXES  # motions cycled over clips
    backgrounds: tuple[str, ...] = ("plain",)  # backgrounds drawn from
    start_box: tuple[float, float] = (0.4, 0.6)  # where shape centres start (fraction of the frame)
    resolution: int = 16  # backend grid
    test_fraction: float = 0.2  # share of clips held out for test
    val_fraction: float = 0.2  # share of the rest used for checkpoint selection


@dataclass(frozen=True)
class ModelSettings:
    """The Spliter and its training."""

    width: int = 32
    depth: int = 2
    epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    pairs_per_video: int = 4
    regime: dict = field(default_factory=lambda: {"back": True, "rotate": True, "diff": 1})
    cross_attention: str = "off"
    rotation_layer: str = "off"


@dataclass
class World:
    """A built world: backend, stores (main = train + val, test) and the true test frames at the scoring size."""

    config: WorldConfig
    backend: PixelLinearBackend
    store: EmbeddingStore
    blind_store: EmbeddingStore
    test_store: EmbeddingStore
    test_frames: dict[str, np.ndarray]
    val_frames: dict[str, np.ndarray]
    timings: dict[str, float]


def is_test(video_id: str, fraction: float, seed: int = 0) -> bool:
    return derive_seed(seed, "test", video_id) / 2.0**63 < fraction


def build_world(root: Path, config: WorldConfig) -> World:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    write_shapes_dataset(root / "shapes", n_videos=config.n_videos, frames=config.frames, size=config.size,
                         fps=config.fps, seed=config.seed, motions=config.motions, backgrounds=config.backgrounds,
                         start_box=tuple(config.start_box))
    timings["render"] = time.perf_counter() - clock
    videos = read_folder(root / "shapes").videos
    test = [v for v in videos if is_test(v.video_id, config.test_fraction)]
    rest = [v for v in videos if not is_test(v.video_id, config.test_fraction)]
    clock = time.perf_counter()
    backend = PixelLinearBackend(seed=0, device="cpu", resolution=config.resolution)
    timings["backend"] = time.perf_counter() - clock
    clock = time.perf_counter()
    pixels = {v.video_id: load_frames(v, config.frames, None, config.size).frames for v in videos}
    timings["read"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # The prior retrieves from the videos a model may learn from (train + val), never from test videos.
    backend.fit_prior([v.caption for v in rest], backend.encode_frames(np.stack([pixels[v.video_id][0] for v in rest])))
    kwargs = {"frames": config.frames, "size": config.size, "prior_steps": 1, "progress": False}
    encode_videos(rest, backend, root / "store", val_fraction=config.val_fraction, **kwargs)
    encode_videos(test, backend, root / "test-store", val_fraction=0.0, **kwargs)
    timings["encode"] = time.perf_counter() - clock
    store, test_store = EmbeddingStore.open(root / "store"), EmbeddingStore.open(root / "test-store")
    blind = text_blind_copy(store, root / "blind-store", backend)
    return World(config, backend, store, blind, test_store,
                 {v.video_id: pixels[v.video_id] for v in test},
                 {r.video_id: pixels[r.video_id] for r in store.split("val")}, timings)


def text_blind_copy(store: EmbeddingStore, path: Path, backend: PixelLinearBackend) -> EmbeddingStore:
    """The same store with every video's text states and text embedding those of BLIND_CAPTION."""
    hidden, embed = backend.encode_text([BLIND_CAPTION])
    with EmbeddingStore.create(path, dim=store.dim, text_tokens=store.text_tokens, meta=store.meta) as out:
        for r in store:
            out.add(r.video_id, BLIND_CAPTION, hidden[0], embed[0], r.prior_embed, r.frame_embeds, r.frame_times,
                    split=r.split, negative_prior_embed=r.negative_prior_embed, fps=r.fps, source=r.source)
    return EmbeddingStore.open(path)


def train_model(store: EmbeddingStore, out: Path, settings: ModelSettings, seed: int) -> Path:
    model = SpliterConfig(head="increment", dim=store.dim, text_tokens=store.text_tokens, width=settings.width,
                          depth=settings.depth, heads=2, dropout=0.0, cross_attention=settings.cross_attention,
                          rotation_layer=settings.rotation_layer)
    config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                         patience=settings.epochs, seed=seed, device="cpu", progress=False,
                         regime=RegimeConfig(pairs_per_video=settings.pairs_per_video, **settings.regime))
    return train(model, config, store, out).checkpoint


def score_rollout(world: World, rollout, records, truth: dict[str, np.ndarray], blind: bool = False) -> dict[str, float]:
    """Mean per-video PSNR / SSIM (frames 1..F-1) of a rollout from each video's true first frame."""
    hidden, embed = world.backend.encode_text([BLIND_CAPTION])
    values: dict[str, list[float]] = {}
    for r in records:
        text_hidden = hidden if blind else r.text_hidden[None]
        text_embed = embed if blind else r.text_embed[None]
        times = r.frame_times - r.frame_times[0]
        out = rollout(text_hidden, text_embed, r.frame_embeds[:1], times)[0]
        generated = world.backend.decode(out, out, [0] * len(out), 1, 1.0, world.config.size)
        for name, (value, _) in paired_scores(generated, truth[r.video_id]).items():
            values.setdefault(name, []).append(value)
    return {name: float(np.mean(v)) for name, v in values.items()}


def evaluate(world: World, checkpoints: dict[str, Path], split: str = "test") -> dict[str, dict[str, float]]:
    """Scores of every trained variant (step and chain) and of both baselines on the test (or val) videos."""
    records = list(world.test_store) if split == "test" else world.store.split("val")
    truth = world.test_frames if split == "test" else world.val_frames
    results = {
        "static": score_rollout(world, StaticRollout(), records, truth),
        "mean_motion": score_rollout(world, MeanMotionRollout.fit(world.store, "train"), records, truth),
    }
    for name, path in checkpoints.items():
        model = load_spliter(path)
        for mode in ("step", "chain"):
            rollout = SpliterRollout(model, RolloutConfig(mode=mode))
            results[f"{name}/{mode}"] = score_rollout(world, rollout, records, truth, blind=name.startswith("text_blind"))
    return results


def run_seeds(world: World, root: Path, settings: ModelSettings, seeds: tuple[int, ...], split: str = "test"):
    rows = []
    for seed in seeds:
        clock = time.perf_counter()
        trained = train_model(world.store, root / f"ckpt-{seed}", settings, seed)
        blind = train_model(world.blind_store, root / f"blind-{seed}", settings, seed)
        train_s = (time.perf_counter() - clock) / 2
        clock = time.perf_counter()
        result = evaluate(world, {"combined": trained, "text_blind": blind}, split)
        rows.append({"seed": seed, "train_s": train_s, "eval_s": time.perf_counter() - clock, "scores": result})
    return rows


def summarise(rows, metric: str = "psnr") -> dict[str, tuple[float, float, float]]:
    from metrics.stats import mean_ci

    names = rows[0]["scores"].keys()
    out = {}
    for name in names:
        values = [row["scores"][name][metric] for row in rows]
        if len(set(values)) == 1:
            out[name] = (values[0], values[0], values[0])
        else:
            ci = mean_ci(values)
            out[name] = (ci.estimate, ci.low, ci.high)
    return out


def replace_settings(settings: ModelSettings, **changes) -> ModelSettings:
    return replace(settings, **changes)


torch.set_num_threads(1)
