"""AnimateDiff: tiny random SD-1.5 + motion adapter folders in the hub layouts, seeded rendering, the motion module's
frame limit, the folder checks, the settings."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from spliter.backends.base import WeightsNotFound
from spliter.baselines.animatediff import (
    ADAPTER_HUB_ID,
    DEFAULT_MAX_FRAMES,
    EMPTY_FP32_NOTICE,
    TINY_MAX_FRAMES,
    AnimateDiff,
    AnimateDiffConfig,
    folder_problems,
    generate_problems,
    max_frames,
    random_components,
    save_random_folders,
    without_empty_fp32_notice,
)

PROMPT = "a red ball moves to the right"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    return save_random_folders(tmp_path_factory.mktemp("animatediff"), seed=0)


@pytest.fixture(scope="module")
def model(folders: tuple[Path, Path]) -> AnimateDiff:
    sd15, adapter = folders
    return AnimateDiff.from_folder(AnimateDiffConfig(folder=str(sd15), motion_adapter=str(adapter), steps=2,
                                                     guidance=2.0), device="cpu")


def test_the_random_folders_have_the_hub_layouts_and_pass_the_check(folders: tuple[Path, Path]) -> None:
    sd15, adapter = folders
    assert json.loads((sd15 / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    assert json.loads((adapter / "config.json").read_text())["_class_name"] == "MotionAdapter"
    assert folder_problems(sd15, adapter) == []


def test_the_tiny_pipeline_renders_the_requested_frames_and_size_the_same_for_a_seed(model: AnimateDiff) -> None:
    video = model.render(PROMPT, frames=3, size=16, seed=7)
    assert video.shape == (3, 16, 16, 3) and video.dtype == np.uint8 and video.std() > 0
    np.testing.assert_array_equal(video, model.render(PROMPT, frames=3, size=16, seed=7))
    assert not np.array_equal(video, model.render(PROMPT, frames=3, size=16, seed=8))
    assert model.render("a red ball", frames=2, size=24, seed=7).shape == (2, 24, 24, 3)


def test_it_runs_the_motion_unet_with_ddim_on_animatediffs_linear_schedule(model: AnimateDiff) -> None:
    assert type(model.pipe.unet).__name__ == "UNetMotionModel"
    scheduler = model.pipe.scheduler
    assert type(scheduler).__name__ == "DDIMScheduler" and scheduler.config.beta_schedule == "linear"
    assert scheduler.config.clip_sample is False and scheduler.config.timestep_spacing == "linspace"
    identity = model.identity()
    assert identity["max_frames"] == TINY_MAX_FRAMES and identity["steps"] == 2 and identity["dtype"] == "float32"


def test_rendering_refuses_more_frames_than_the_motion_module_has_positions_and_off_multiple_sizes(
        model: AnimateDiff) -> None:
    assert model.max_frames == TINY_MAX_FRAMES
    with pytest.raises(ValueError, match=f"1 to {TINY_MAX_FRAMES} frames"):
        model.render("a ball", frames=TINY_MAX_FRAMES + 1, size=16, seed=0)
    with pytest.raises(ValueError, match=f"multiples of {model.size_multiple} px"):
        model.render("a ball", frames=2, size=12, seed=0)


def test_rendering_and_loading_print_no_library_notice_a_user_cannot_act_on(
        folders: tuple[Path, Path], model: AnimateDiff) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.render("a red ball", frames=2, size=16, seed=1)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("diffusers.models.modeling_utils")
    logger.addHandler(handler)
    try:
        sd15, adapter = folders
        AnimateDiff.from_folder(AnimateDiffConfig(folder=str(sd15), motion_adapter=str(adapter)), device="cpu")
        assert not [r for r in records if r.getMessage().startswith(EMPTY_FP32_NOTICE)]
        with without_empty_fp32_notice():
            logger.warning("another notice")  # only the empty-list notice is dropped
        from diffusers import UNetMotionModel

        parts = random_components(seed=0)
        UNetMotionModel.from_unet2d(parts["unet"], parts["motion_adapter"])  # outside the block: diffusers logs it
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert "another notice" in messages and any(m.startswith(EMPTY_FP32_NOTICE) for m in messages)


def test_a_missing_adapter_or_missing_weights_are_named_with_the_fix(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    sd15, adapter = folders
    (problem,) = folder_problems(sd15, tmp_path / "nowhere")
    assert str((tmp_path / "nowhere").resolve()) in problem and f"hf download {ADAPTER_HUB_ID}" in problem
    with pytest.raises(WeightsNotFound, match="nowhere"):
        AnimateDiff.from_folder(AnimateDiffConfig(folder=str(sd15), motion_adapter=str(tmp_path / "nowhere")),
                                device="cpu")
    empty = tmp_path / "adapter"
    empty.mkdir()
    shutil.copy(adapter / "config.json", empty / "config.json")
    (problem,) = folder_problems(sd15, empty)
    assert "has no weight file" in problem and str(empty) in problem and "--local-dir" in problem
    broken = tmp_path / "sd15"
    shutil.copytree(sd15, broken)
    for weights in (broken / "vae").glob("*.safetensors"):
        weights.unlink()
    (problem,) = folder_problems(broken, adapter)
    assert "'vae' has no weight file" in problem and str(broken) in problem and "AnimateDiff" in problem
    assert len(folder_problems(tmp_path / "no-sd15", tmp_path / "no-adapter")) == 2  # both folders, one line each


def test_the_frame_limit_is_the_adapters_positional_embedding_length_else_the_published_one(
        tmp_path: Path, folders: tuple[Path, Path]) -> None:
    sd15, adapter = folders
    assert max_frames(adapter) == TINY_MAX_FRAMES and max_frames(tmp_path / "absent") == DEFAULT_MAX_FRAMES == 32
    tiny = AnimateDiffConfig(folder=str(sd15), motion_adapter=str(adapter))
    assert generate_problems(tiny, TINY_MAX_FRAMES, 16) == []
    (problem,) = generate_problems(tiny, TINY_MAX_FRAMES + 1, 16)
    assert problem.startswith("frames: 9 is more than the 8 frames") and str(adapter / "config.json") in problem
    absent = AnimateDiffConfig(folder="models/sd15", motion_adapter=str(tmp_path / "absent"))
    frames, size = generate_problems(absent, 33, 20)
    assert frames.startswith("frames: 33 is more than the 32 frames") and "not there yet" in frames
    assert size.startswith("size: ") and "multiple of 8" in size


@pytest.mark.parametrize("settings, key", [
    ({"folder": None}, "folder"),
    ({"motion_adapter": ""}, "motion_adapter"),
    ({"steps": 0}, "steps"),
    ({"guidance": 0.5}, "guidance"),
    ({"dtype": "float64"}, "dtype"),
])
def test_settings_out_of_range_are_refused_naming_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}: "):
        AnimateDiffConfig(**{"folder": "models/sd15", "motion_adapter": "models/adapter", **settings})
