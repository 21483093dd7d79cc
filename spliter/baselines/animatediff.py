"""AnimateDiff (Guo et al., 2023) through diffusers' `AnimateDiffPipeline`: Stable Diffusion 1.5 + a motion adapter.

The weights come from two local folders, never from the network: Stable Diffusion 1.5 in the hub layout (as for
Text2Video-Zero: spliter.baselines.sd15) and a diffusers `MotionAdapter` (`config.json` + weights, e.g.
guoyww/animatediff-motion-adapter-v1-5-2). The pipeline turns SD-1.5's `UNet2DConditionModel` into a
`UNetMotionModel` with the adapter's temporal modules. Their sinusoidal positional embedding has
`motion_max_seq_length` positions (32 for the published SD-1.5 adapters), so one call renders at most that many
frames: `generate_problems` refuses more when the study loads, reading the adapter's config when it is there.

The scheduler is DDIM built from the SD folder's scheduler config with AnimateDiff's overrides (beta_schedule
"linear", clip_sample off, timestep_spacing "linspace", steps_offset 1), as in diffusers' AnimateDiff docs and
the adapter's model card: the motion modules were trained on the linear beta schedule (not SD's scaled_linear),
and the authors sample with DDIM. Its eta = 0 steps are deterministic, so a video depends on the initial latent
alone, drawn from a CPU `torch.Generator` seeded with the caller's seed: the same on any device. One prompt is
rendered per call. diffusers and transformers are imported only when a pipeline is built, so `folder_problems`
answers offline checks without them. `random_pipeline` / `save_random_folders` build the same classes with tiny
configs and seeded random weights in the hub layouts (tests).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spliter.backends.base import seeded_init
from spliter.baselines import sd15

if TYPE_CHECKING:
    from diffusers import AnimateDiffPipeline

ADAPTER_HUB_ID = "guoyww/animatediff-motion-adapter-v1-5-2"
DEFAULT_ADAPTER = "models/animatediff-motion-adapter-v1-5-2"
#: MotionAdapter's default motion_max_seq_length, that of the published SD-1.5 adapters (v1-4, v1-5, v1-5-2,
#: v1-5-3): the limit assumed while the adapter's config.json is not there to read.
DEFAULT_MAX_FRAMES = 32
# DDIM as AnimateDiff samples (see the module docstring); applied over the SD folder's scheduler config.
SCHEDULER_OVERRIDES = {"beta_schedule": "linear", "clip_sample": False, "timestep_spacing": "linspace", "steps_offset": 1}
TINY_MAX_FRAMES = 8  # positional embedding length of the tiny random motion adapter


@dataclass(frozen=True)
class AnimateDiffConfig:
    """The study's `animatediff:` section; the defaults are those of diffusers' AnimateDiff docs."""

    folder: str | None = None  # the local SD-1.5 folder (hub layout); required
    motion_adapter: str | None = None  # the local MotionAdapter folder (config.json + weights); required
    steps: int = 25  # DDIM steps
    guidance: float = 7.5  # classifier-free guidance scale (1: no guidance, one UNet pass per step)
    dtype: str | None = None  # float16 | bfloat16 | float32 (None: fp16 on CUDA, fp32 elsewhere)

    def __post_init__(self) -> None:
        if not self.folder:
            raise ValueError(f"folder: give the local Stable Diffusion 1.5 folder (hub layout; e.g. hf download "
                             f"{sd15.HUB_ID} --local-dir {sd15.DEFAULT_FOLDER})")
        if not self.motion_adapter:
            raise ValueError(f"motion_adapter: give the local motion adapter folder (e.g. hf download "
                             f"{ADAPTER_HUB_ID} --local-dir {DEFAULT_ADAPTER})")
        if int(self.steps) < 1:
            raise ValueError(f"steps: must be >= 1, got {self.steps}")
        if not float(self.guidance) >= 1.0:
            raise ValueError(f"guidance: must be >= 1 (1 turns classifier-free guidance off), got {self.guidance}")
        sd15.check_dtype(self.dtype)


def adapter_problems(folder: str | Path | None) -> list[str]:
    """One line per problem of a motion adapter folder (config and weight file, no weights read), with the fix."""
    if not folder:
        return [f"animatediff.motion_adapter: not given; name the local motion adapter folder (hf download "
                f"{ADAPTER_HUB_ID} --local-dir {DEFAULT_ADAPTER} on a machine with internet)"]
    fix = sd15.download_fix(ADAPTER_HUB_ID, folder)
    root = Path(folder).expanduser()
    config = _adapter_config(root)
    if config is None:
        return [f"AnimateDiff motion adapter not found: expected a MotionAdapter folder (config.json and "
                f"diffusion_pytorch_model.safetensors) at {root.resolve()}; {fix}"]
    if config.get("_class_name") != "MotionAdapter":
        return [f"AnimateDiff motion adapter folder {root}: config.json is not a MotionAdapter's (_class_name "
                f"{config.get('_class_name')!r}); {fix}"]
    if not sd15.has_weight_file(root):
        return [f"AnimateDiff motion adapter folder {root} has no weight file (.safetensors or .bin); {fix}"]
    return []


def folder_problems(folder: str | Path | None, motion_adapter: str | Path | None) -> list[str]:
    """The problems of both folders (the SD-1.5 one, then the adapter), each line naming its folder and the fix."""
    return sd15.folder_problems(folder, "AnimateDiff", "animatediff.folder") + adapter_problems(motion_adapter)


def settings_problems(config: AnimateDiffConfig) -> list[str]:
    """folder_problems of the settings' folders (FRAME_BASELINES' weight check)."""
    return folder_problems(config.folder, config.motion_adapter)


def max_frames(motion_adapter: str | Path) -> int:
    """The adapter's motion_max_seq_length from its config.json; DEFAULT_MAX_FRAMES while it cannot be read."""
    config = _adapter_config(Path(motion_adapter).expanduser())
    return int((config or {}).get("motion_max_seq_length") or DEFAULT_MAX_FRAMES)


def generate_problems(config: AnimateDiffConfig, frames: int, size: int) -> list[str]:
    """What of the study's generate settings it cannot render: more frames than the motion module has positions."""
    problems = []
    limit = max_frames(config.motion_adapter)
    if frames > limit:
        source = Path(config.motion_adapter) / "config.json"
        read = f"its {source}" if _adapter_config(Path(config.motion_adapter).expanduser()) else \
            f"the published SD-1.5 adapters' value; {source} is not there yet"
        problems.append(f"frames: {frames} is more than the {limit} frames AnimateDiff's motion module has positional "
                        f"embeddings for (motion_max_seq_length, {read}); lower generate.frames")
    if size % 8:
        problems.append(f"size: animatediff renders sizes that are a multiple of 8, got {size}")
    return problems


def _adapter_config(root: Path) -> dict | None:
    try:
        config = json.loads((root / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


#: What diffusers' ModelMixin.to logs when UNetMotionModel.from_unet2d casts the new UNet to the 2-D UNet's dtype:
#: it names the modules to keep in float32 even when there are none, a notice about nothing.
EMPTY_FP32_NOTICE = "There are modules in UNetMotionModel that should be kept in float32: []."


@contextlib.contextmanager
def without_empty_fp32_notice() -> Iterator[None]:
    """Drops exactly EMPTY_FP32_NOTICE from diffusers' model logger inside the block (nothing else, nowhere else)."""
    logger = logging.getLogger("diffusers.models.modeling_utils")

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(EMPTY_FP32_NOTICE)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


class AnimateDiff(sd15.PipelineVideo):
    """An AnimateDiffPipeline with a study's settings: a caption and a seed -> uint8 frames."""

    title = "AnimateDiff"
    pipe: AnimateDiffPipeline

    @classmethod
    def from_folder(cls, config: AnimateDiffConfig, device: str = "auto") -> AnimateDiff:
        """Load both folders (DDIM with AnimateDiff's overrides); a problem of either folder raises first."""
        from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

        from spliter.backends.base import WeightsNotFound, frozen_dtype, resolve_device

        problems = settings_problems(config)
        if problems:
            raise WeightsNotFound(problems[0])
        target = resolve_device(device)
        dtype = frozen_dtype(target, config.dtype)
        folder = str(Path(config.folder).expanduser())
        adapter_folder = str(Path(config.motion_adapter).expanduser())
        adapter = MotionAdapter.from_pretrained(adapter_folder, dtype=dtype, local_files_only=True)
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True,
                                                  **SCHEDULER_OVERRIDES)
        with without_empty_fp32_notice():
            pipe = AnimateDiffPipeline.from_pretrained(folder, motion_adapter=adapter, scheduler=scheduler,
                                                       feature_extractor=None, dtype=dtype, local_files_only=True)
        pipe.to(target)
        return cls(pipe, config, {"name": "animatediff", "folder": folder, "motion_adapter": adapter_folder,
                                  "dtype": str(dtype).removeprefix("torch."), "scheduler": "DDIMScheduler",
                                  "scheduler_overrides": SCHEDULER_OVERRIDES})

    @property
    def max_frames(self) -> int:
        """Frames one call renders at most: the motion module's positional embedding length."""
        return int(self.pipe.unet.config.motion_max_seq_length)

    def render(self, prompt: str, frames: int, size: int, seed: int) -> np.ndarray:
        """uint8 (frames, size, size, 3) for one caption; the same seed gives the same video."""
        import torch

        if not 1 <= frames <= self.max_frames:
            raise ValueError(f"frames {frames}: AnimateDiff's motion module renders 1 to {self.max_frames} frames "
                             "(its positional embedding length, motion_max_seq_length)")
        self.check_size(size)
        cfg = self.config
        out = self.pipe(prompt=prompt, num_frames=frames, height=size, width=size, num_inference_steps=cfg.steps,
                        guidance_scale=cfg.guidance, generator=torch.Generator("cpu").manual_seed(int(seed)),
                        output_type="np")
        return self.as_uint8(np.asarray(out.frames)[0], frames, size)

    def identity(self) -> dict[str, Any]:
        """JSON-able description recorded next to every video (weights folders, dtype, scheduler, the settings)."""
        return {**asdict(self.config), **self._identity, "max_frames": self.max_frames}


# ---------------------------------------------------------------------------------------- tiny random weights


def random_components(seed: int = 0) -> dict[str, Any]:
    """The pipeline's components: tiny SD-1.5 classes (sd15.tiny_components), a tiny MotionAdapter, DDIM."""
    from diffusers import DDIMScheduler, MotionAdapter

    components = sd15.tiny_components(seed)
    with seeded_init(seed + 1):  # its own stream: the SD components stay those of the same seed elsewhere
        adapter = MotionAdapter(block_out_channels=sd15.TINY_BLOCKS, motion_layers_per_block=1,
                                motion_num_attention_heads=2, motion_norm_num_groups=8,
                                motion_max_seq_length=TINY_MAX_FRAMES, use_motion_mid_block=True)
    scheduler = DDIMScheduler(**{**sd15.scheduler_kwargs(), **SCHEDULER_OVERRIDES})
    return {**components, "motion_adapter": adapter.eval(), "scheduler": scheduler}


def random_pipeline(seed: int = 0) -> AnimateDiffPipeline:
    """An AnimateDiffPipeline of `random_components(seed)`."""
    from diffusers import AnimateDiffPipeline

    return AnimateDiffPipeline(**random_components(seed))


def save_random_folders(root: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """`random_components(seed)` as ROOT/sd15 (a StableDiffusionPipeline folder, the hub's SD-1.5 layout, with
    SD's own schedule) and ROOT/motion_adapter (a MotionAdapter folder); returns (sd15 folder, adapter folder)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    root = Path(root)
    parts = random_components(seed)
    adapter = parts.pop("motion_adapter")
    parts["scheduler"] = DDIMScheduler(**sd15.scheduler_kwargs())
    StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(str(root / "sd15"), safe_serialization=True)
    adapter.save_pretrained(str(root / "motion_adapter"), safe_serialization=True)
    return root / "sd15", root / "motion_adapter"
