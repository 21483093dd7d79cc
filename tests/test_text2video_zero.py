"""Text2Video-Zero: tiny random SD-1.5 components in the hub layout, seeded rendering, the folder check, the settings."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from spliter.backends.base import WeightsNotFound
from spliter.baselines.text2video_zero import (
    Text2VideoZero,
    Text2VideoZeroConfig,
    folder_problems,
    save_random_folder,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return save_random_folder(tmp_path_factory.mktemp("t2vz") / "sd15", seed=0)


@pytest.fixture(scope="module")
def model(folder: Path) -> Text2VideoZero:
    config = Text2VideoZeroConfig(folder=str(folder), steps=2, guidance=2.0, t0=0, t1=1)
    return Text2VideoZero.from_folder(config, device="cpu")


def test_the_random_folder_has_the_sd15_hub_layout_and_passes_the_check(folder: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "TextToVideoZeroPipeline"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert name in index and (folder / name).is_dir()
    assert folder_problems(folder) == []


def test_the_tiny_pipeline_renders_the_requested_frames_and_size_the_same_for_a_seed(model: Text2VideoZero) -> None:
    video = model.render("a red ball moves to the right", frames=3, size=16, seed=7)
    assert video.shape == (3, 16, 16, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video, model.render("a red ball moves to the right", frames=3, size=16, seed=7))
    assert not np.array_equal(video, model.render("a red ball moves to the right", frames=3, size=16, seed=8))
    assert model.render("a red ball", frames=2, size=32, seed=7).shape == (2, 32, 32, 3)
    assert model.identity()["scheduler"] == "DDIMScheduler" and model.identity()["steps"] == 2


def test_rendering_prints_no_library_notice_a_user_cannot_act_on(model: Text2VideoZero) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning left (diffusers' meshgrid / grid_sample notices) fails here
        model.render("a red ball", frames=2, size=16, seed=1)


def test_rendering_refuses_one_frame_and_sizes_off_the_model_multiple(model: Text2VideoZero) -> None:
    with pytest.raises(ValueError, match="frames >= 2"):
        model.render("a ball", frames=1, size=16, seed=0)
    with pytest.raises(ValueError, match=f"multiples of {model.size_multiple} px"):
        model.render("a ball", frames=2, size=12, seed=0)


def test_a_missing_or_incomplete_folder_is_named_with_the_fix(tmp_path: Path, folder: Path) -> None:
    (problem,) = folder_problems(tmp_path / "nowhere")
    assert str((tmp_path / "nowhere").resolve()) in problem and "hf download" in problem
    with pytest.raises(WeightsNotFound, match="nowhere"):
        Text2VideoZero.from_folder(Text2VideoZeroConfig(folder=str(tmp_path / "nowhere")), device="cpu")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text((folder / "model_index.json").read_text())
    for name in ("vae", "text_encoder", "tokenizer", "scheduler"):
        (broken / name).symlink_to(folder / name)
    (broken / "unet").mkdir()
    (broken / "unet" / "config.json").write_text((folder / "unet" / "config.json").read_text())
    (problem,) = folder_problems(broken)
    assert "'unet' has no weight file" in problem and str(broken) in problem


@pytest.mark.parametrize("settings, key", [
    ({"t0": 5, "t1": 5}, "t0, t1, steps"),
    ({"steps": 2, "t0": 0, "t1": 2}, "t0, t1, steps"),
    ({"guidance": 1.0}, "guidance"),
    ({"dtype": "float64"}, "dtype"),
    ({"folder": None}, "folder"),
])
def test_settings_out_of_range_are_refused_naming_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Text2VideoZeroConfig(**{"folder": "models/sd15", **settings})


def test_a_stable_diffusion_folder_with_its_pndm_scheduler_loads_with_ddim(tmp_path: Path) -> None:
    """The hub's SD-1.5 layout: model_index.json of StableDiffusionPipeline, a PNDM scheduler, a feature extractor."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPImageProcessor

    from spliter.baselines.text2video_zero import random_pipeline

    tiny = random_pipeline(seed=1)
    pndm = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                         steps_offset=1, set_alpha_to_one=False)
    StableDiffusionPipeline(vae=tiny.vae, text_encoder=tiny.text_encoder, tokenizer=tiny.tokenizer, unet=tiny.unet,
                            scheduler=pndm, safety_checker=None, feature_extractor=CLIPImageProcessor(),
                            requires_safety_checker=False).save_pretrained(str(tmp_path / "sd15"))
    assert json.loads((tmp_path / "sd15" / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    loaded = Text2VideoZero.from_folder(Text2VideoZeroConfig(folder=str(tmp_path / "sd15"), steps=3, guidance=3.0,
                                                             t0=0, t1=2), device="cpu")
    assert type(loaded.pipe.scheduler).__name__ == "DDIMScheduler"
    assert loaded.render("a cat", frames=3, size=16, seed=0).shape == (3, 16, 16, 3)
