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

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from diffusers import TextToVideoZeroPipeline

HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DTYPES = ("float16", "bfloat16", "float32")
# Component -> the config file that must be there; the model components must hold a weight file too.
COMPONENTS = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
              "tokenizer": "tokenizer_config.json", "scheduler": "scheduler_config.json"}
MODEL_COMPONENTS = ("unet", "vae", "text_encoder")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
TINY_TEXT_DIM = 32  # hidden size of the tiny CLIP text tower (the UNet's cross-attention width)


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
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype: {self.dtype!r} is not one of {list(DTYPES)} (or null: fp16 on CUDA, fp32 elsewhere)")


def folder_problems(folder: str | Path | None) -> list[str]:
    """One line per problem of an SD-1.5 folder (configs and weight files, no weights read), naming it and the fix."""
    if not folder:
        return [f"text2video_zero.folder: not given; name the local SD-1.5 folder (hf download {HUB_ID} "
                "--local-dir models/stable-diffusion-v1-5 on a machine with internet)"]
    fix = f"on a machine with internet run: hf download {HUB_ID} --local-dir {folder}"
    root = Path(folder).expanduser()
    if not (root / "model_index.json").is_file():
        return [f"Text2Video-Zero weights not found: expected a Stable Diffusion 1.5 folder (model_index.json, unet/, "
                f"vae/, text_encoder/, tokenizer/, scheduler/) at {root.resolve()}; {fix}"]
    try:
        index = json.loads((root / "model_index.json").read_text())
    except (OSError, ValueError):
        return [f"Text2Video-Zero folder {root}: model_index.json is not valid JSON; {fix}"]
    problems = []
    for name, config in COMPONENTS.items():
        sub = root / name
        where = f"Text2Video-Zero folder {root}: component {name!r}"
        if name not in index or not (sub / config).is_file():
            problems.append(f"{where} is missing ({sub / config} absent or {name} not in model_index.json); {fix}")
        elif name in MODEL_COMPONENTS and not any(any(sub.glob(p)) for p in _WEIGHT_PATTERNS):
            problems.append(f"{where} has no weight file (.safetensors or .bin) in {sub}; {fix}")
    return problems


class Text2VideoZero:
    """A TextToVideoZeroPipeline with a study's settings: a caption and a seed -> uint8 frames."""

    def __init__(self, pipe: TextToVideoZeroPipeline, config: Text2VideoZeroConfig, identity: dict[str, Any]) -> None:
        self.pipe, self.config = pipe, config
        self._identity = identity
        pipe.set_progress_bar_config(disable=True)

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

    @property
    def size_multiple(self) -> int:
        """Frame sizes must be a multiple of this: the VAE's and the UNet's downsampling (and the pipeline's 8)."""
        down = 2 ** (len(self.pipe.unet.config.block_out_channels) - 1)
        return int(np.lcm(8, self.pipe.vae_scale_factor * down))

    def render(self, prompt: str, frames: int, size: int, seed: int) -> np.ndarray:
        """uint8 (frames, size, size, 3) for one caption; the same seed gives the same video."""
        import torch

        if frames < 2:
            raise ValueError(f"Text2Video-Zero warps the first frame into the others: give frames >= 2, got {frames}")
        if size % self.size_multiple:
            raise ValueError(f"size {size}: this Text2Video-Zero model renders multiples of {self.size_multiple} px")
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
        images = np.asarray(out.images, dtype=np.float32)
        if images.shape != (frames, size, size, 3) or not np.isfinite(images).all():
            raise ValueError(f"Text2Video-Zero returned {images.shape} (finite: {bool(np.isfinite(images).all())}), "
                             f"expected ({frames}, {size}, {size}, 3) finite values; check the folder's weights")
        return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)

    def identity(self) -> dict[str, Any]:
        """JSON-able description recorded next to every video (weights folder, dtype, the settings)."""
        return {**self._identity, **asdict(self.config)}


# ---------------------------------------------------------------------------------------- tiny random weights


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def random_pipeline(seed: int = 0) -> TextToVideoZeroPipeline:
    """The pipeline's own classes with tiny configs (2x VAE, 2-level UNet, 32-d CLIP text tower) and seeded weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoZeroPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from spliter.backends.tokenizer import CLIP_BOS_ID, CLIP_EOS_ID, CLIP_VOCAB_SIZE, clip_tokenizer

    with _seeded(seed):
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            norm_num_groups=8, cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=4,
            # Self-attention in both levels, so the cross-frame attention processors have work to do.
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            hidden_size=TINY_TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=77, bos_token_id=CLIP_BOS_ID,
            eos_token_id=CLIP_EOS_ID, pad_token_id=CLIP_EOS_ID))
    # SD-1.5's noise schedule.
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return TextToVideoZeroPipeline(vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=clip_tokenizer(77),
                                   unet=unet.eval(), scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def save_random_folder(folder: str | Path, seed: int = 0) -> Path:
    """Write `random_pipeline(seed)` as an SD-1.5-layout folder (model_index.json + components); returns it."""
    folder = Path(folder)
    random_pipeline(seed).save_pretrained(str(folder), safe_serialization=True)
    return folder
