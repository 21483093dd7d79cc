"""Text2Video-Zero (Khachatryan et al., 2023) through diffusers' `TextToVideoZeroPipeline` on Stable Diffusion 1.5.

The weights come from a local folder in the hub layout of SD-1.5 (`model_index.json`, `unet/`, `vae/`,
`text_encoder/`, `tokenizer/`, `scheduler/`; `safety_checker/` and `feature_extractor/` are not loaded), never
from the network. The scheduler is always DDIM, built from the folder's scheduler config: the method is defined
on DDIM's deterministic (eta = 0) steps, and its t0/t1 index DDIM's timesteps. `random_pipeline` builds the same
classes with tiny configs and seeded random weights, and `save_random_folder` writes them in that layout (tests).

One prompt is rendered per pipeline call (the pipeline's cross-frame attention assumes one prompt and the
classifier-free pair), from a CPU `torch.Generator` seeded with the caller's seed: the initial latent, the
re-noising of the warped frames and hence the video depend on the seed alone, on any device.
diffusers and transformers are imported only when a pipeline is built, so `folder_problems` answers offline
checks without them.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spliter.baselines import sd15

if TYPE_CHECKING:
    from diffusers import TextToVideoZeroPipeline

HUB_ID = sd15.HUB_ID


@dataclass(frozen=True)
class Text2VideoZeroConfig:
    """The study's `text2video_zero:` section; the defaults are the paper's (and diffusers') settings."""

    folder: str | None = None  # the local SD-1.5 folder (hub layout); required
    steps: int = 50  # DDIM steps
    guidance: float = 7.5  # classifier-free guidance scale; must be > 1 (the cross-frame attention needs the pair)
    # Global translation per frame, in pixels of a 512-px frame (the pipeline's flow field is 512 x 512 and
    # normalised by it, so the same value moves the content the same fraction of the frame at any size)
    motion_field_strength_x: float = 12.0
    motion_field_strength_y: float = 12.0
    t0: int = 44  # the warp happens at DDIM step index steps - 1 - t0 (counted from the end), 0 <= t0 < t1
    t1: int = 47  # the first frame's latent is re-noised from t0 back to t1 (t1 < steps)
    dtype: str | None = None  # float16 | bfloat16 | float32 (None: fp16 on CUDA, fp32 elsewhere)

    def __post_init__(self) -> None:
        if not self.folder:
            raise ValueError(f"folder: give the local Stable Diffusion 1.5 folder (hub layout; e.g. hf download "
                             f"{HUB_ID} --local-dir models/stable-diffusion-v1-5)")
        if not 0 <= int(self.t0) < int(self.t1) < int(self.steps):
            raise ValueError(f"t0, t1, steps: need 0 <= t0 < t1 < steps (indices into the DDIM steps from the end), "
                             f"got t0={self.t0}, t1={self.t1}, steps={self.steps}")
        if not float(self.guidance) > 1.0:
            raise ValueError(f"guidance: must be > 1 (the pipeline's cross-frame attention assumes the classifier-free "
                             f"pair of batches), got {self.guidance}")
        sd15.check_dtype(self.dtype)


def folder_problems(folder: str | Path | None) -> list[str]:
    """One line per problem of an SD-1.5 folder (configs and weight files, no weights read), naming it and the fix."""
    return sd15.folder_problems(folder, "Text2Video-Zero", "text2video_zero.folder")


def settings_problems(config: Text2VideoZeroConfig) -> list[str]:
    """folder_problems of the settings' folder (FRAME_BASELINES' weight check)."""
    return folder_problems(config.folder)


def generate_problems(config: Text2VideoZeroConfig, frames: int, size: int) -> list[str]:
    """What of the study's generate settings it cannot render: it warps the first frame into >= 1 others."""
    problems = []
    if frames < 2:
        problems.append(f"frames: text2video_zero warps the first frame into the others: needs frames >= 2, got {frames}")
    if size % 8:
        problems.append(f"size: text2video_zero renders sizes that are a multiple of 8, got {size}")
    return problems


class Text2VideoZero(sd15.PipelineVideo):
    """A TextToVideoZeroPipeline with a study's settings: a caption and a seed -> uint8 frames."""

    title = "Text2Video-Zero"
    pipe: TextToVideoZeroPipeline

    @classmethod
    def from_folder(cls, config: Text2VideoZeroConfig, device: str = "auto") -> Text2VideoZero:
        """Load the folder's components (DDIM from its scheduler config); a problem of the folder raises first."""
        from diffusers import DDIMScheduler, TextToVideoZeroPipeline

        from spliter.backends.base import WeightsNotFound, frozen_dtype, resolve_device

        problems = folder_problems(config.folder)
        if problems:
            raise WeightsNotFound(problems[0])
        target = resolve_device(device)
        dtype = frozen_dtype(target, config.dtype)
        folder = str(Path(config.folder).expanduser())
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
        pipe = TextToVideoZeroPipeline.from_pretrained(
            folder, scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            dtype=dtype, local_files_only=True)
        pipe.to(target)
        return cls(pipe, config, {"name": "text2video_zero", "folder": folder, "dtype": str(dtype).removeprefix("torch."),
                                  "scheduler": "DDIMScheduler"})

    def render(self, prompt: str, frames: int, size: int, seed: int) -> np.ndarray:
        """uint8 (frames, size, size, 3) for one caption; the same seed gives the same video."""
        import torch

        if frames < 2:
            raise ValueError(f"Text2Video-Zero warps the first frame into the others: give frames >= 2, got {frames}")
        self.check_size(size)
        cfg = self.config
        with warnings.catch_warnings():
            # Two notices from inside diffusers' pipeline (its own calls of meshgrid and grid_sample), about
            # defaults it relies on: nothing a user of this suite can change.
            warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"Default grid_sample and affine_grid behavior", category=UserWarning)
            out = self.pipe(
                prompt=prompt, video_length=frames, height=size, width=size, num_inference_steps=cfg.steps,
                guidance_scale=cfg.guidance, generator=torch.Generator("cpu").manual_seed(int(seed)),
                motion_field_strength_x=cfg.motion_field_strength_x,
                motion_field_strength_y=cfg.motion_field_strength_y, t0=cfg.t0, t1=cfg.t1, output_type="np")
        return self.as_uint8(out.images, frames, size)

    def identity(self) -> dict[str, Any]:
        """JSON-able description recorded next to every video (weights folder, dtype, the settings)."""
        return {**asdict(self.config), **self._identity}


# ---------------------------------------------------------------------------------------- tiny random weights


def random_pipeline(seed: int = 0) -> TextToVideoZeroPipeline:
    """The pipeline's own classes with tiny configs (sd15.tiny_components) and seeded weights, with DDIM."""
    from diffusers import DDIMScheduler, TextToVideoZeroPipeline

    return TextToVideoZeroPipeline(**sd15.tiny_components(seed), scheduler=DDIMScheduler(**sd15.scheduler_kwargs()),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_random_folder(folder: str | Path, seed: int = 0) -> Path:
    """Write `random_pipeline(seed)` as an SD-1.5-layout folder (model_index.json + components); returns it."""
    folder = Path(folder)
    random_pipeline(seed).save_pretrained(str(folder), safe_serialization=True)
    return folder
