"""Stable Diffusion 1.5 in the hub layout, shared by the frame baselines built on it (Text2Video-Zero, AnimateDiff).

`folder_problems` checks a local folder offline (configs and weight file names, no weights read);
`tiny_components` builds SD-1.5's own classes with tiny configs and seeded random weights (tests). diffusers and
transformers are imported only by `tiny_components`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from spliter.backends.base import seeded_init

HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_FOLDER = "models/stable-diffusion-v1-5"
DTYPES = ("float16", "bfloat16", "float32")
# Component -> the config file that must be there; the model components must hold a weight file too.
COMPONENTS = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
              "tokenizer": "tokenizer_config.json", "scheduler": "scheduler_config.json"}
MODEL_COMPONENTS = ("unet", "vae", "text_encoder")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
TINY_TEXT_DIM = 32  # hidden size of the tiny CLIP text tower (the UNet's cross-attention width)
TINY_BLOCKS = (16, 32)  # the tiny UNet's (and a motion adapter's) channels per level


def download_fix(hub_id: str, folder: str | Path) -> str:
    return f"on a machine with internet run: hf download {hub_id} --local-dir {folder}"


def has_weight_file(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype: {dtype!r} is not one of {list(DTYPES)} (or null: fp16 on CUDA, fp32 elsewhere)")


def folder_problems(folder: str | Path | None, title: str, key: str) -> list[str]:
    """One line per problem of an SD-1.5 folder, naming it and the fix; `title` names the baseline, `key` its setting."""
    if not folder:
        return [f"{key}: not given; name the local SD-1.5 folder (hf download {HUB_ID} --local-dir "
                f"{DEFAULT_FOLDER} on a machine with internet)"]
    fix = download_fix(HUB_ID, folder)
    root = Path(folder).expanduser()
    if not (root / "model_index.json").is_file():
        return [f"{title} weights not found: expected a Stable Diffusion 1.5 folder (model_index.json, unet/, "
                f"vae/, text_encoder/, tokenizer/, scheduler/) at {root.resolve()}; {fix}"]
    try:
        index = json.loads((root / "model_index.json").read_text())
    except (OSError, ValueError):
        return [f"{title} folder {root}: model_index.json is not valid JSON; {fix}"]
    problems = []
    for name, config in COMPONENTS.items():
        sub = root / name
        where = f"{title} folder {root}: component {name!r}"
        if name not in index or not (sub / config).is_file():
            problems.append(f"{where} is missing ({sub / config} absent or {name} not in model_index.json); {fix}")
        elif name in MODEL_COMPONENTS and not has_weight_file(sub):
            problems.append(f"{where} has no weight file (.safetensors or .bin) in {sub}; {fix}")
    return problems


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """SD-1.5's classes with tiny configs (2x VAE, 2-level UNet, 32-d CLIP text tower), seeded weights, eval mode:
    {unet, vae, text_encoder, tokenizer}."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from spliter.backends.tokenizer import CLIP_BOS_ID, CLIP_EOS_ID, CLIP_VOCAB_SIZE, clip_tokenizer

    with seeded_init(seed):
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, block_out_channels=TINY_BLOCKS, layers_per_block=1,
            norm_num_groups=8, cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=4,
            # Self-attention in both levels, so the cross-frame attention processors have work to do.
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=TINY_BLOCKS, layers_per_block=1,
            norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            hidden_size=TINY_TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=77, bos_token_id=CLIP_BOS_ID,
            eos_token_id=CLIP_EOS_ID, pad_token_id=CLIP_EOS_ID))
    return {"unet": unet.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval(), "tokenizer": clip_tokenizer(77)}


def scheduler_kwargs() -> dict[str, Any]:
    """SD-1.5's noise schedule, as its scheduler config states it."""
    return {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
            "set_alpha_to_one": False, "steps_offset": 1}


def size_multiple(vae_scale_factor: int, unet_levels: int) -> int:
    """Frame sizes must be a multiple of this: the VAE's and the UNet's downsampling (and the pipelines' 8)."""
    return math.lcm(8, vae_scale_factor * 2 ** (unet_levels - 1))


class PipelineVideo:
    """What the SD-1.5 frame baselines share: the wrapped diffusers pipeline, its size rule, its output check."""

    title = "the pipeline"  # the baseline's name in messages

    def __init__(self, pipe: Any, config: Any, identity: dict[str, Any]) -> None:
        self.pipe, self.config = pipe, config
        self._identity = identity
        pipe.set_progress_bar_config(disable=True)

    @property
    def size_multiple(self) -> int:
        """Frame sizes must be a multiple of this: the VAE's and the UNet's downsampling (and the pipeline's 8)."""
        return size_multiple(self.pipe.vae_scale_factor, len(self.pipe.unet.config.block_out_channels))

    def check_size(self, size: int) -> None:
        if size % self.size_multiple:
            raise ValueError(f"size {size}: this {self.title} model renders multiples of {self.size_multiple} px")

    def as_uint8(self, video: Any, frames: int, size: int) -> np.ndarray:
        """The pipeline's float (frames, size, size, 3) output in [0, 1] as uint8; raises on a shape or a NaN."""
        video = np.asarray(video, dtype=np.float32)
        if video.shape != (frames, size, size, 3) or not np.isfinite(video).all():
            raise ValueError(f"{self.title} returned {video.shape} (finite: {bool(np.isfinite(video).all())}), "
                             f"expected ({frames}, {size}, {size}, 3) finite values; check its folders' weights")
        return np.round(np.clip(video, 0.0, 1.0) * 255.0).astype(np.uint8)
