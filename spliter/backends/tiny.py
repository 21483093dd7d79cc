"""A tiny, seeded, offline Kandinsky 2.2: the real pipeline classes with test-sized configs (embedding dim 32).

The configs are those of diffusers' own Kandinsky 2.2 pipeline tests (environment.md §5), with the real CLIP
vocab (49408 ids) and a 32-px image tower so that encoding hundreds of frames stays cheap on a CPU. The same
seed gives bit-identical weights, hence identical outputs, in any process.
"""

from __future__ import annotations

import torch
from diffusers import (
    DDIMScheduler,
    KandinskyV22Pipeline,
    KandinskyV22PriorPipeline,
    PriorTransformer,
    UnCLIPScheduler,
    UNet2DConditionModel,
    VQModel,
)
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from spliter.backends.base import frozen_dtype, resolve_device, seeded_init
from spliter.backends.kandinsky22 import DiffusersBackend, placed
from spliter.backends.tokenizer import CLIP_BOS_ID, CLIP_EOS_ID, CLIP_VOCAB_SIZE, clip_tokenizer

TINY_DIM = 32
TEXT_TOKENS = 77
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class TinyBackend(DiffusersBackend):
    """Kandinsky 2.2 pipelines with tiny random weights built from `seed`; decodes any multiple of 16 px."""

    def __init__(
        self,
        seed: int = 0,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str | None = None,
        image_size: int = 32,
        frame_batch_size: int = 64,
        decode_batch_size: int = 16,
    ) -> None:
        if image_size < 8 or image_size % 8:
            raise ValueError(f"image_size must be a positive multiple of 8 (the patch size), got {image_size}")
        target = resolve_device(device)
        precision = frozen_dtype(target, dtype)
        with seeded_init(seed):
            prior_pipe = _tiny_prior(image_size, target, precision)
            decoder_pipe = _tiny_decoder(target, precision)
        super().__init__(
            "tiny",
            prior_pipe,
            decoder_pipe,
            target,
            precision,
            {"seed": seed, "image_size": image_size},
            frame_batch_size=frame_batch_size,
            decode_batch_size=decode_batch_size,
        )


def _tiny_prior(image_size: int, device: torch.device, dtype: torch.dtype) -> KandinskyV22PriorPipeline:
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=TINY_DIM, num_layers=1)
    # clip_std starts at zero, which would make every prior output equal to clip_mean.
    prior.clip_std = torch.nn.Parameter(torch.ones_like(prior.clip_std))
    text = CLIPTextConfig(
        hidden_size=TINY_DIM,
        projection_dim=TINY_DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=TEXT_TOKENS,
        bos_token_id=CLIP_BOS_ID,
        eos_token_id=CLIP_EOS_ID,
        pad_token_id=CLIP_EOS_ID,
    )
    vision = CLIPVisionConfig(
        hidden_size=TINY_DIM,
        projection_dim=TINY_DIM,
        image_size=image_size,
        patch_size=8,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=5,
    )
    processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        resample=3,
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    )
    return KandinskyV22PriorPipeline(
        prior=placed(prior, device, dtype),
        text_encoder=placed(CLIPTextModelWithProjection(text), device, dtype),
        image_encoder=placed(CLIPVisionModelWithProjection(vision), device, dtype),
        tokenizer=clip_tokenizer(TEXT_TOKENS),
        scheduler=UnCLIPScheduler(
            variance_type="fixed_small_log", prediction_type="sample", clip_sample=True, clip_sample_range=10.0
        ),
        image_processor=processor,
    )


def _tiny_decoder(device: torch.device, dtype: torch.dtype) -> KandinskyV22Pipeline:
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=8,
        addition_embed_type="image",
        encoder_hid_dim=TINY_DIM,
        encoder_hid_dim_type="image_proj",
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=TINY_DIM,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    )
    # Three levels (4x downsampling) rather than the diffusers test config's two: like the real MoVQ, the
    # attention block then runs on a small latent grid, which makes 64 px decoding ~5x cheaper on a CPU.
    movq = VQModel(
        block_out_channels=(32, 32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        vq_embed_dim=4,
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )
    return KandinskyV22Pipeline(unet=placed(unet, device, dtype), scheduler=scheduler, movq=placed(movq, device, dtype))
