"""ablations.validation: every range and relation a later stage relies on fails at load, key path first."""

import copy
from pathlib import Path

import pytest
import yaml

from ablations.schema import StudyError, from_dict, set_dotted
from ablations.study import STUDIES_DIR, StudyFile, expand_trials, load_study
from ablations.validation import (
    DECODER_SIZE_MULTIPLE,
    FVD_MIN_FRAMES,
    FVD_MIN_RESOLUTION,
    PRIOR_MIN_STEPS,
    safe_child,
    safe_name,
    validate_study,
)

# smoke without its matrix: shapes data, tiny backend, generation, embedding + CLIP + FVD metrics.
BASE = {key: value for key, value in yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text()).items()
        if key != "matrix"}  # fmt: skip
SYNTHETIC = {key: value for key, value in yaml.safe_load((STUDIES_DIR / "synthetic.yaml").read_text()).items()
             if key not in ("matrix", "expectations", "text_blind_of")}  # fmt: skip


def check(overrides: dict, base: dict = BASE, expand: bool = True) -> None:
    raw = copy.deepcopy(base)
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    spec = from_dict(StudyFile, raw)
    validate_study(spec, expand_trials(spec) if expand else None)


def fails(overrides: dict, key: str, allowed: str, base: dict = BASE, expand: bool = True) -> None:
    with pytest.raises(StudyError) as error:
        check(overrides, base, expand)
    message = str(error.value)
    assert message.startswith(f"{key}: "), message
    assert allowed in message, message


def test_the_base_study_and_its_edge_values_pass() -> None:
    check({})
    check({"data.fps": None, "generate.frames": 8, "metrics.fvd.frames": FVD_MIN_FRAMES})
    check({"data.frames": 2, "metrics.select": ["embedding", "pixel_motion", "clip"]})
    check({"generate.size": 16, "generate.fps": 50.0, "backend.prior_steps": PRIOR_MIN_STEPS})
    check({"data.val_fraction": 0.0, "metrics.select": ["pixel_motion", "clip", "fvd"]})  # nothing needs a validation split


@pytest.mark.parametrize("name", ["quickstart", "smoke", "synthetic", "paper"])
def test_the_shipped_studies_pass(name: str) -> None:
    study = load_study(name)
    validate_study(study.spec, study.trials)


@pytest.mark.parametrize("fps", [0, -8, 0.0])
def test_data_fps_must_be_positive_or_null(fps: float) -> None:
    fails({"data.fps": fps}, "data.fps", "> 0 (frames per second), or null")


@pytest.mark.parametrize("frames", [0, 1])
def test_data_frames_at_least_two(frames: int) -> None:
    fails({"data.frames": frames}, "data.frames", "an integer >= 2")


def test_data_n_videos_at_least_one() -> None:
    fails({"data.n_videos": 0}, "data.n_videos", "an integer >= 1")


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1])
def test_data_val_fraction_in_zero_one(fraction: float) -> None:
    fails({"data.val_fraction": fraction}, "data.val_fraction", "in [0, 1)")


def test_data_val_fraction_positive_when_embedding_metrics_need_validation_videos() -> None:
    fails({"data.val_fraction": 0.0}, "data.val_fraction", "(0, 1) while metrics.select has 'embedding'")


@pytest.mark.parametrize("size", [8, 63])
def test_shapes_size_even_and_at_least_16(size: int) -> None:
    fails({"data.size": size}, "data.size", ">= 16")


def test_synthetic_split_leaves_validation_and_training_videos() -> None:
    fails({"data.n_videos": 4, "data.val_fraction": 0.1}, "data.val_fraction", "rounds to 0 validation videos",
          base=SYNTHETIC)  # fmt: skip
    fails({"data.n_videos": 1, "data.val_fraction": 0.6}, "data.val_fraction", "leaves no training video", base=SYNTHETIC)
    fails({"data.dim": 1}, "data.dim", "an integer >= 2", base=SYNTHETIC)
    fails({"data.noise": -0.5}, "data.noise", ">= 0", base=SYNTHETIC)
    check({"backend.prior_steps": 1}, base=SYNTHETIC)  # no backend is built: its settings are not used


def test_backend_prior_steps_at_least_the_scheduler_minimum() -> None:
    fails({"backend.prior_steps": 1}, "backend.prior_steps", f"an integer >= {PRIOR_MIN_STEPS}")


def test_backend_encode_size_positive() -> None:
    fails({"backend.encode_size": 0}, "backend.encode_size", "an integer >= 1")


def test_generate_size_is_a_multiple_the_decoder_accepts() -> None:
    fails({"generate.size": 63}, "generate.size", "not a multiple of 16, which the tiny decoder needs")
    fails({"generate.size": 96, "backend.name": "kandinsky22-random"}, "generate.size", "multiple of 64")
    check({"generate.size": 128, "backend.name": "kandinsky22-random"})


@pytest.mark.parametrize("fps", [0, -1.0, 60.0])
def test_generate_fps_in_the_gif_range(fps: float) -> None:
    fails({"generate.fps": fps}, "generate.fps", "in (0, 50]")


def test_generate_frames_dt_steps_and_counts() -> None:
    fails({"generate.frames": 1}, "generate.frames", "an integer >= 2")
    fails({"generate.dt": 0.0}, "generate.dt", "> 0 (seconds between generated frames)")
    fails({"generate.decoder_steps": 0}, "generate.decoder_steps", "an integer >= 1")
    fails({"generate.samples_per_prompt": 0}, "generate.samples_per_prompt", "an integer >= 1")
    fails({"generate.max_prompts": 0}, "generate.max_prompts", "an integer >= 1")


def test_fvd_frames_and_resolution_at_least_the_i3d_minimum() -> None:
    fails({"metrics.fvd.frames": 4}, "metrics.fvd.frames", f"an integer >= {FVD_MIN_FRAMES}")
    fails({"metrics.fvd.resolution": 16}, "metrics.fvd.resolution", f"an integer >= {FVD_MIN_RESOLUTION}")
    fails({"metrics.fvd.frames": 12}, "metrics.fvd.frames", "more than the 8 frames each video has")
    fails({"generate.frames": 4, "metrics.fvd.frames": FVD_MIN_FRAMES}, "metrics.fvd.frames",
          f"raise generate.frames to {FVD_MIN_FRAMES} or more")  # never an empty range such as "8 to 4"
    check({"metrics.fvd.frames": 4, "metrics.select": ["embedding", "pixel_motion", "clip"]})  # not computed: not checked


def test_lpips_needs_frames_at_least_its_nets_minimum() -> None:
    def lpips(net: str = "alex", **more) -> dict:
        return {"metrics.select": ["embedding", "paired"], "metrics.paired.lpips": {"weights": "a.pth", "net": net},
                **more}

    fails(lpips(**{"generate.size": 16}), "generate.size", "size >= 31 (alex: >= 31, vgg: >= 16, squeeze: >= 17)")
    check(lpips("vgg", **{"generate.size": 16}))
    check(lpips(**{"generate.size": 16, "metrics.select": ["embedding"]}))  # not computed: not checked
    fails(lpips(variants={"small": {"generate.size": 16}}), "variants.small (merged) -> generate.size", "size >= 31")


def test_fvd_needs_two_generated_videos() -> None:
    fails({"generate.max_prompts": 1}, "generate.samples_per_prompt", "needs at least 2 generated videos")
    check({"generate.max_prompts": 1, "generate.samples_per_prompt": 2})


def test_fvd_reference_clips_must_be_long_enough_for_the_generated_span() -> None:
    fails({"generate.dt": 0.5}, "generate.frames", "longer than the 1.88 s of the shapes videos")
    check({"generate.dt": 0.5, "data.frames": 32})


def test_a_study_that_scores_nothing_is_refused() -> None:
    fails({"metrics.select": []}, "metrics.select", "is empty, so the study scores nothing")
    fails({"metrics.select": ["pixel_motion", "clip", "fvd"], "generate.enabled": False}, "metrics.select",
          "score only generated videos and generate.enabled is false")  # fmt: skip
    fails({"metrics.select": ["clip"], "metrics.clip_encoders": []}, "metrics.select", "selects nothing to score")
    fails({"variants": {"blind": {"metrics.select": ["fvd"], "generate.enabled": False}}},
          "variants.blind (merged) -> metrics.select", "nothing is left to score")  # fmt: skip
    check({"metrics.select": ["embedding", "clip"], "generate.enabled": False})  # embedding needs no videos
    check({"metrics.select": ["pixel_motion", "clip"], "metrics.clip_encoders": []})  # pixel motion is scored


def test_resources_in_range() -> None:
    fails({"resources.threads": 0}, "resources.threads", "an integer >= 1")
    fails({"resources.cpu": 0}, "resources.cpu", "> 0")
    fails({"resources.workers": 0}, "resources.workers", 'an integer >= 1 or "auto"')
    fails({"resources.workers": "many"}, "resources.workers", 'an integer >= 1 or "auto"')
    check({"resources.workers": "auto"}, BASE, True)


def test_seeds_not_empty() -> None:
    fails({"seeds": []}, "seeds", "at least one training seed", expand=False)


def test_a_variant_override_is_checked_in_its_merged_section() -> None:
    fails({"variants": {"big": {"generate.size": 63}}}, "variants.big (merged) -> generate.size", "multiple of 16")
    fails({"variants": {"few": {"generate.max_prompts": 1}}}, "variants.few (merged) -> generate.samples_per_prompt",
          "at least 2")  # fmt: skip


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "..", "-rf", ".hidden", "x..y", "", "clip[red]", "naïve"])
def test_study_and_variant_names_are_plain_names(name: str) -> None:
    fails({"study": name}, "study", "not a plain name", expand=False)
    fails({"variants": {name: {}}}, f"variants.{name}", "not a plain name", expand=False)
    fails({"matrix": {"axis": {name: {}}}}, f"matrix.axis.{name}", "not a plain name", expand=False)


def test_safe_names_pass() -> None:
    for name in ("quickstart", "paper-v2", "run_3.1", "A"):
        assert safe_name(name, "study") == name


def test_safe_child_stays_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    assert safe_child(root, "quickstart", "trials", "base-s0-1234abcd") == root.resolve() / "quickstart/trials/base-s0-1234abcd"
    with pytest.raises(StudyError, match=r"^\.\./\.\./escaped: resolves to .* outside the run root"):
        safe_child(root, "../../escaped")
    with pytest.raises(StudyError, match="absolute path"):
        safe_child(root, "/etc")
    (root / "link").symlink_to(tmp_path)  # a link inside the root that points out of it
    with pytest.raises(StudyError, match="outside the run root"):
        safe_child(root, "link", "x")


# --------------------------------------------------------- the limits are the ones the consuming code enforces


def test_prior_min_steps_is_the_unclip_scheduler_minimum() -> None:
    from diffusers import UnCLIPScheduler

    UnCLIPScheduler().set_timesteps(PRIOR_MIN_STEPS)
    with pytest.raises(ZeroDivisionError):
        UnCLIPScheduler().set_timesteps(PRIOR_MIN_STEPS - 1)


def test_decoder_size_multiples_are_the_movq_quanta() -> None:
    import torch

    from spliter.backends.kandinsky22 import REAL_MOVQ_CONFIG
    from spliter.backends.tiny import _tiny_decoder

    tiny = _tiny_decoder(torch.device("cpu"), torch.float32)
    assert tiny.movq_scale_factor**2 == DECODER_SIZE_MULTIPLE["tiny"]
    real = 2 ** (len(REAL_MOVQ_CONFIG["block_out_channels"]) - 1)
    assert real**2 == DECODER_SIZE_MULTIPLE["kandinsky22"] == DECODER_SIZE_MULTIPLE["kandinsky22-random"]


def test_fvd_minimums_are_the_protocols() -> None:
    from metrics.fvd import FVDProtocol

    FVDProtocol(frames=FVD_MIN_FRAMES, resolution=FVD_MIN_RESOLUTION)
    with pytest.raises(ValueError, match="frames >= 8"):
        FVDProtocol(frames=FVD_MIN_FRAMES - 1)
    with pytest.raises(ValueError, match="resolution >= 32"):
        FVDProtocol(resolution=FVD_MIN_RESOLUTION - 1)
