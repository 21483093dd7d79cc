"""Kandinsky 2.2 backends over the diffusers pipelines.

`DiffusersBackend` implements the Backend protocol on a `KandinskyV22PriorPipeline` (CLIP text and image
encoders, prior) and a `KandinskyV22Pipeline` (UNet decoder + MoVQ). Three ways to get the pipelines:
- `Kandinsky22Backend`: the real weights from local diffusers folders or the HF cache, never the network;
- `RandomKandinsky22Backend`: the real architectures with seeded random weights, for speed/memory figures;
- `spliter.backends.tiny.TinyBackend`: the same classes with tiny configs, for tests.
diffusers and transformers are imported only when pipelines are built, so a missing-weights error is
raised before any heavy import.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spliter.backends.base import WeightsNotFound, frozen_dtype, resolve_device, seeded_init

if TYPE_CHECKING:
    from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

PRIOR_HUB_ID = "kandinsky-community/kandinsky-2-2-prior"
DECODER_HUB_ID = "kandinsky-community/kandinsky-2-2-decoder"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ------------------------------------------------------------------------------------------------- backend


class DiffusersBackend:
    """The Backend protocol on Kandinsky 2.2 diffusers pipelines; either pipeline may be absent (None).

    Seeds become CPU `torch.Generator`s, one per row, so a row's result does not depend on the rest of the
    batch nor on the device the models run on.

    Memory knobs (spliter.backends.memory estimates their peak): ``dtype``; ``decode_batch_size`` images
    denoised together by the UNet (twice that many rows with classifier-free guidance) and
    ``movq_batch_size`` latents decoded together by the MoVQ, the larger working set at 512 px;
    ``attention_slicing`` computes attention one head slice at a time (diffusers' sliced processors;
    otherwise diffusers' default scaled-dot-product attention). ``prior_guidance``, when given, is the
    prior's guidance scale whatever the caller passes to ``prior`` (the decoder's is ``decode``'s own).
    """

    def __init__(
        self,
        name: str,
        prior_pipe: KandinskyV22PriorPipeline | None,
        decoder_pipe: KandinskyV22Pipeline | None,
        device: torch.device,
        dtype: torch.dtype,
        identity: dict[str, Any],
        frame_batch_size: int = 64,
        decode_batch_size: int = 4,
        movq_batch_size: int = 2,
        attention_slicing: bool = False,
        prior_guidance: float | None = None,
    ) -> None:
        if prior_pipe is None and decoder_pipe is None:
            raise ValueError(f"backend {name}: build at least one of the prior and decoder pipelines")
        self.name = name
        self.device = device
        self.dtype = dtype
        self.frame_batch_size = _positive(frame_batch_size, "frame_batch_size")
        self.decode_batch_size = _positive(decode_batch_size, "decode_batch_size")
        self.movq_batch_size = _positive(movq_batch_size, "movq_batch_size")
        self.prior_guidance = None if prior_guidance is None else float(prior_guidance)
        self._prior = prior_pipe
        self._decoder = decoder_pipe
        for pipe in (prior_pipe, decoder_pipe):
            if pipe is not None:
                pipe.set_progress_bar_config(disable=True)
                if attention_slicing:
                    pipe.enable_attention_slicing()
        if prior_pipe is not None:
            self.dim = int(prior_pipe.prior.config.embedding_dim)
            self.text_tokens = int(prior_pipe.tokenizer.model_max_length)
        else:
            self.dim = int(decoder_pipe.unet.config.encoder_hid_dim)
            self.text_tokens = 77
        self._identity = {"name": name, "dim": self.dim, "text_tokens": self.text_tokens, **identity}
        self._identity.update(dtype=str(dtype).removeprefix("torch."), device=device.type)
        if self.prior_guidance is not None:
            self._identity["prior_guidance"] = self.prior_guidance

    def identity(self) -> dict[str, Any]:
        """Name, weights, dtype and device type: enough to tell whether two stores are comparable."""
        return dict(self._identity)

    @property
    def prior_pipeline(self) -> KandinskyV22PriorPipeline | None:
        """The underlying prior pipeline (text/image encoders, prior), e.g. for benchmarks."""
        return self._prior

    @property
    def decoder_pipeline(self) -> KandinskyV22Pipeline | None:
        """The underlying decoder pipeline (UNet, MoVQ, scheduler), e.g. for benchmarks."""
        return self._decoder

    # ---------------------------------------------------------------------------------------- prior side

    @torch.no_grad()
    def encode_text(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(text_hidden (B,T,D), text_embed (B,D)): the prior's CLIP text tower, padded/truncated to T tokens."""
        pipe = self._need_prior("encode_text")
        captions = _captions(captions)
        tokens = pipe.tokenizer(
            captions, padding="max_length", max_length=self.text_tokens, truncation=True, return_tensors="pt"
        )
        # No attention mask, exactly as the prior pipeline encodes prompts (CLIP's causal mask makes it moot).
        out = pipe.text_encoder(tokens.input_ids.to(self.device))
        return _cpu(out.last_hidden_state), _cpu(out.text_embeds)

    @torch.no_grad()
    def prior(
        self, captions: Sequence[str], seeds: Sequence[int], steps: int, guidance: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prior_embed (B,D), negative (B,D)); negative is the prior pipeline's zero-image embedding.

        The guidance scale is ``prior_guidance`` when the backend was built with one, else ``guidance``.
        """
        pipe = self._need_prior("prior")
        captions = _captions(captions)
        generators = _generators(seeds, len(captions))
        out = pipe(
            prompt=captions,
            num_inference_steps=_positive(steps, "steps"),
            guidance_scale=float(guidance if self.prior_guidance is None else self.prior_guidance),
            generator=generators if len(generators) > 1 else generators[0],
            output_type="pt",
        )
        return _finite(_cpu(out.image_embeds), "prior embedding"), _cpu(out.negative_image_embeds)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) RGB frames -> CLIP image embeddings (N,D) via the prior's image processor."""
        pipe = self._need_prior("encode_frames")
        pixels = torch.as_tensor(frames)
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {pixels.dtype} {tuple(pixels.shape)}")
        chunks = []
        for start in range(0, len(pixels), self.frame_batch_size):
            batch = pixels[start : start + self.frame_batch_size].permute(0, 3, 1, 2)
            values = pipe.image_processor(batch, return_tensors="pt", input_data_format="channels_first").pixel_values
            chunks.append(pipe.image_encoder(values.to(self.device, self.dtype)).image_embeds)
        if not chunks:
            return torch.zeros(0, self.dim)
        return _cpu(torch.cat(chunks))

    # -------------------------------------------------------------------------------------- decoder side

    @torch.no_grad()
    def decode(
        self,
        embeds: torch.Tensor,
        negative: torch.Tensor,
        seeds: Sequence[int],
        steps: int,
        guidance: float,
        size: int,
    ) -> np.ndarray:
        """Image embeddings (N,D) -> uint8 images (N,size,size,3): UNet in chunks of decode_batch_size, then
        MoVQ in chunks of movq_batch_size, post-processed exactly as KandinskyV22Pipeline's output_type="np"."""
        pipe = self._need_decoder("decode")
        embeds = _finite(torch.as_tensor(embeds, dtype=torch.float32), "image embeddings to decode")
        negative = torch.as_tensor(negative, dtype=torch.float32)
        if embeds.ndim != 2 or embeds.shape[1] != self.dim or negative.shape != embeds.shape:
            raise ValueError(
                f"decode needs embeds and negative of shape (N, {self.dim}), got {tuple(embeds.shape)} "
                f"and {tuple(negative.shape)}"
            )
        generators = _generators(seeds, len(embeds))
        quantum = pipe.movq_scale_factor**2
        if size < quantum or size % quantum:
            raise ValueError(f"size must be a positive multiple of {quantum} for this decoder, got {size}")
        latents = []
        for start in range(0, len(embeds), self.decode_batch_size):
            stop = start + self.decode_batch_size
            gens = generators[start:stop]
            out = pipe(
                image_embeds=embeds[start:stop].to(self.device, self.dtype),
                negative_image_embeds=negative[start:stop].to(self.device, self.dtype),
                height=size,
                width=size,
                num_inference_steps=_positive(steps, "steps"),
                guidance_scale=float(guidance),
                generator=gens if len(gens) > 1 else gens[0],
                output_type="latent",
            )
            latents.append(out.images)
        if not latents:
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        latent = torch.cat(latents)
        images = []
        for start in range(0, len(latent), self.movq_batch_size):
            image = pipe.movq.decode(latent[start : start + self.movq_batch_size], force_not_quantize=True)["sample"]
            images.append((image * 0.5 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy())
        pixels = np.concatenate(images)
        if not np.isfinite(pixels).all():
            raise ValueError(
                f"backend {self.name} ({str(self.dtype).removeprefix('torch.')}): the decoder produced non-finite "
                "pixels; set backend.dtype: float32 in the study (the backend's dtype option)"
            )
        return np.round(pixels * 255.0).astype(np.uint8)

    # ------------------------------------------------------------------------------------------- helpers

    def _need_prior(self, method: str) -> KandinskyV22PriorPipeline:
        if self._prior is None:
            raise ValueError(f"backend {self.name} was built without the prior components, so {method} is unavailable")
        return self._prior

    def _need_decoder(self, method: str) -> KandinskyV22Pipeline:
        if self._decoder is None:
            raise ValueError(f"backend {self.name} was built without the decoder components, so {method} is unavailable")
        return self._decoder


def _captions(captions: Sequence[str]) -> list[str]:
    if isinstance(captions, str):
        raise TypeError("captions must be a sequence of strings, not one string")
    return [str(caption) for caption in captions]


def _generators(seeds: Sequence[int], count: int) -> list[torch.Generator]:
    seeds = [int(seed) for seed in seeds]
    if len(seeds) != count or count == 0:
        raise ValueError(f"need one seed per row: {count} rows, {len(seeds)} seeds")
    return [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]


def _positive(value: int, what: str) -> int:
    if int(value) < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return int(value)


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", torch.float32).contiguous()


def _finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.isfinite(tensor).all():
        raise ValueError(
            f"{what} contains NaN or inf; check the inputs, or set backend.options.dtype: float32 in the study "
            "(the backend's dtype option) if the model runs in float16"
        )
    return tensor


# -------------------------------------------------------------------------------------------- real weights


def weights_problem(source: str | os.PathLike, what: str, hub_id: str, cache_dir: str | None = None) -> str | None:
    """None when `source` (a diffusers folder or a hub id) is available offline, else the one-line reason.

    A source like "models/kandinsky-2-2-prior" could be a relative folder or a hub id: both are looked for,
    and the message names both, with the command that fetches the official weights into the folder.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    text = str(source)
    folder = Path(text).expanduser()
    if folder.is_dir() and (folder / "model_index.json").is_file():
        return None
    maybe_hub = not folder.exists() and bool(_HUB_ID.match(text))
    if maybe_hub and isinstance(try_to_load_from_cache(text, "model_index.json", cache_dir=cache), str):
        return None
    where = f"a diffusers folder at {folder.resolve()} (with model_index.json)"
    if maybe_hub:
        where += f" or {text!r} in the HF cache at {cache}"
    fetch = f"hf download {hub_id}" + ("" if text == hub_id else f" --local-dir {folder}")
    return f"Kandinsky 2.2 {what} weights not found: expected {where}; on a machine with internet run: {fetch}"


def missing_kandinsky_weights(
    prior: str | os.PathLike = PRIOR_HUB_ID,
    decoder: str | os.PathLike = DECODER_HUB_ID,
    cache_dir: str | None = None,
    **_: Any,
) -> list[str]:
    """The one-line problems of the prior and decoder sources (empty when both load offline)."""
    problems = (
        weights_problem(prior, "prior", PRIOR_HUB_ID, cache_dir),
        weights_problem(decoder, "decoder", DECODER_HUB_ID, cache_dir),
    )
    return [problem for problem in problems if problem is not None]


def kandinsky_folder_problems(
    prior: str | os.PathLike = PRIOR_HUB_ID,
    decoder: str | os.PathLike = DECODER_HUB_ID,
    cache_dir: str | None = None,
    **_: Any,
) -> list[str]:
    """check_kandinsky_folders for the registry's weight check, which passes every backend option."""
    return check_kandinsky_folders(prior, decoder, cache_dir)


# Components each pipeline needs, and the pipeline class its model_index.json must name.
PIPELINE_COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prior": (
        "KandinskyV22PriorPipeline",
        ("prior", "image_encoder", "text_encoder", "tokenizer", "scheduler", "image_processor"),
    ),
    "decoder": ("KandinskyV22Pipeline", ("unet", "movq", "scheduler")),
}
_MODEL_COMPONENTS = ("prior", "image_encoder", "text_encoder", "unet", "movq")
_CONFIG_FILES = {"scheduler": "scheduler_config.json", "image_processor": "preprocessor_config.json",
                 "tokenizer": "tokenizer_config.json"}
_WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".fp16.safetensors", ".fp16.bin")
_SANE_MAX_LENGTH = 100_000  # transformers' "no limit" sentinel is ~1e30, which overflows in the tokenizer


def resolve_folder(source: str | os.PathLike, cache_dir: str | None = None) -> Path | None:
    """The local folder holding `source`'s model_index.json (a folder or a cached hub snapshot), else None."""
    from huggingface_hub import constants, try_to_load_from_cache

    folder = Path(str(source)).expanduser()
    if (folder / "model_index.json").is_file():
        return folder
    if not folder.exists() and _HUB_ID.match(str(source)):
        found = try_to_load_from_cache(str(source), "model_index.json", cache_dir=cache_dir or constants.HF_HUB_CACHE)
        if isinstance(found, str):
            return Path(found).parent
    return None


def check_kandinsky_folders(
    prior: str | os.PathLike | None = PRIOR_HUB_ID,
    decoder: str | os.PathLike | None = DECODER_HUB_ID,
    cache_dir: str | None = None,
) -> list[str]:
    """One line per problem of the prior and decoder weight folders, each naming the folder and the fix.

    Reads configs (no weights): model_index.json names the right pipeline (prior and decoder not swapped),
    every component has its folder, config and weight files (a sharded index's shards included), the
    tokenizer loads with a finite max length, and the prior's embedding size is the decoder's image-embedding
    size (unet encoder_hid_dim) and the CLIP towers' projection size. None skips a side.
    """
    problems: list[str] = []
    configs: dict[str, dict[str, dict[str, Any]]] = {}
    for what, source in (("prior", prior), ("decoder", decoder)):
        if source is None:
            continue
        hub_id = PRIOR_HUB_ID if what == "prior" else DECODER_HUB_ID
        missing = weights_problem(source, what, hub_id, cache_dir)
        folder = None if missing else resolve_folder(source, cache_dir)
        if folder is None:
            problems.append(missing or f"Kandinsky 2.2 {what} weights not found at {source}")
            continue
        found, configs[what] = _check_pipeline_folder(folder, what, hub_id)
        problems += found
    if "prior" in configs and "decoder" in configs:
        problems += _check_sizes(configs["prior"], configs["decoder"], prior, decoder)
    return problems


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check_pipeline_folder(folder: Path, what: str, hub_id: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(problems, component -> config) of one diffusers pipeline folder."""
    fix = f"re-download it (hf download {hub_id} --local-dir {folder})"
    expected_class, components = PIPELINE_COMPONENTS[what]
    index = _read_json(folder / "model_index.json")
    if index is None:
        return [f"Kandinsky 2.2 {what} folder {folder}: model_index.json is not valid JSON; {fix}"], {}
    found_class = index.get("_class_name")
    if found_class != expected_class:
        other = next((w for w, (cls, _) in PIPELINE_COMPONENTS.items() if cls == found_class), None)
        hint = (f"it is the {other} folder: swap backend.prior and backend.decoder" if other
                else f"point backend.{what} at the {hub_id} folder")
        return [f"Kandinsky 2.2 {what} folder {folder}: model_index.json names {found_class!r}, "
                f"expected {expected_class!r}; {hint}"], {}
    problems, configs = [], {}
    for name in components:
        sub = folder / name
        where = f"Kandinsky 2.2 {what} folder {folder}: component {name!r}"
        if name not in index or not sub.is_dir():
            problems.append(f"{where} is missing ({sub} absent or not listed in model_index.json); {fix}")
            continue
        config_path = sub / _CONFIG_FILES.get(name, "config.json")
        config = _read_json(config_path)
        if config is None:
            problems.append(f"{where}: {config_path.name} missing or not valid JSON; {fix}")
            continue
        configs[name] = config
        if name in _MODEL_COMPONENTS:
            problem = _weights_problem(sub)
            if problem:
                problems.append(f"{where}: {problem}; {fix}")
        elif name == "tokenizer":
            problem = _tokenizer_problem(sub)
            if problem:
                problems.append(f"{where}: {problem}; {fix}")
    return problems, configs


def _weights_problem(sub: Path) -> str | None:
    """None when `sub` holds a weight file (or every shard its index lists), else what is missing."""
    for stem in _WEIGHT_STEMS:
        for suffix in _WEIGHT_SUFFIXES:
            if (sub / f"{stem}{suffix}").is_file():
                return None
            index = _read_json(sub / f"{stem}{suffix}.index.json")
            if index is not None:
                shards = sorted(set(index.get("weight_map", {}).values()))
                absent = [shard for shard in shards if not (sub / shard).is_file()]
                if not shards or absent:
                    return f"weight shards missing: {', '.join(absent[:3]) or 'the index lists none'}"
                return None
    return f"no weight file ({_WEIGHT_STEMS[0]}.safetensors, model.safetensors or a .bin) in {sub}"


def _tokenizer_problem(sub: Path) -> str | None:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(sub), local_files_only=True)
    except Exception as error:  # transformers raises many types for a broken tokenizer folder
        return f"the tokenizer does not load ({type(error).__name__}: {str(error).strip()[:120]})"
    ids = tokenizer("a photo of a cat", add_special_tokens=False).input_ids
    no_vocabulary = not ids or all(i == tokenizer.unk_token_id for i in ids)
    if no_vocabulary or not 0 < int(tokenizer.model_max_length) <= _SANE_MAX_LENGTH:
        return (f"the tokenizer has no usable vocabulary or max length ({len(tokenizer)} tokens, "
                f"model_max_length={tokenizer.model_max_length}): its vocabulary files are missing")
    return None


def _check_sizes(prior: dict[str, dict[str, Any]], decoder: dict[str, dict[str, Any]],
                 prior_source: Any, decoder_source: Any) -> list[str]:
    """Embedding sizes that must agree across the towers, the prior and the decoder's UNet."""
    sizes = {
        "prior/prior embedding_dim": prior.get("prior", {}).get("embedding_dim"),
        "prior/image_encoder projection_dim": prior.get("image_encoder", {}).get("projection_dim"),
        "prior/text_encoder projection_dim": prior.get("text_encoder", {}).get("projection_dim"),
        "decoder/unet encoder_hid_dim": decoder.get("unet", {}).get("encoder_hid_dim"),
    }
    known = {key: value for key, value in sizes.items() if value is not None}
    if len(set(known.values())) <= 1:
        return []
    listing = ", ".join(f"{key}={value}" for key, value in known.items())
    return [f"Kandinsky 2.2 prior {prior_source} and decoder {decoder_source} do not fit together: image "
            f"embedding sizes differ ({listing}); use the prior and decoder of one release (2.2)"]


class Kandinsky22Backend(DiffusersBackend):
    """The real Kandinsky 2.2 prior and decoder, loaded from local folders or the HF cache (never the network)."""

    def __init__(
        self,
        prior: str | os.PathLike = PRIOR_HUB_ID,
        decoder: str | os.PathLike = DECODER_HUB_ID,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str | None = None,
        cache_dir: str | None = None,
        frame_batch_size: int = 64,
        decode_batch_size: int = 4,
        movq_batch_size: int = 2,
        attention_slicing: bool = False,
        prior_guidance: float | None = None,
    ) -> None:
        problems = missing_kandinsky_weights(prior, decoder, cache_dir)
        if problems:
            raise WeightsNotFound(problems[0])
        from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

        target = resolve_device(device)
        precision = frozen_dtype(target, dtype)
        prior_pipe = _load(KandinskyV22PriorPipeline, prior, "prior", precision, cache_dir)
        decoder_pipe = _load(KandinskyV22Pipeline, decoder, "decoder", precision, cache_dir)
        super().__init__(
            "kandinsky22",
            prior_pipe.to(target),
            decoder_pipe.to(target),
            target,
            precision,
            {"prior": str(prior), "decoder": str(decoder)},
            frame_batch_size=frame_batch_size,
            decode_batch_size=decode_batch_size,
            movq_batch_size=movq_batch_size,
            attention_slicing=attention_slicing,
            prior_guidance=prior_guidance,
        )


def _dtype_keyword() -> str:
    """diffusers' name for the dtype to load in: `dtype` from 0.42 on (where `torch_dtype` prints a FutureWarning
    on every load), `torch_dtype` before (the only name older releases read)."""
    import diffusers
    from packaging.version import Version

    return "dtype" if Version(diffusers.__version__).release >= (0, 42) else "torch_dtype"


def _load(cls: type, source: str | os.PathLike, what: str, dtype: torch.dtype, cache_dir: str | None) -> Any:
    try:
        return cls.from_pretrained(str(source), **{_dtype_keyword(): dtype}, local_files_only=True, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsNotFound(
            f"Kandinsky 2.2 {what} at {source} could not be loaded ({reason}); re-download the complete folder"
        ) from error


# ------------------------------------------------------------------------------------------ random weights

# Public configs of the real models, for random-weight speed/memory measurements only.
# Decoder UNet (kandinsky-community/kandinsky-2-2-decoder unet/config.json). UNCERTAIN: block_out_channels.
# [384, 768, 1152, 1536] (the value of the diffusers conversion script for Kandinsky 2.1, whose UNet 2.2 keeps)
# gives 1.25 B parameters, matching the published "Latent Diffusion U-Net - 1.22B"; [384, 768, 1536, 3072],
# seen in one third-party fixture, would give 3.3 B. Override with unet_block_out_channels=...
REAL_UNET_CONFIG: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 8,
    "block_out_channels": (384, 768, 1152, 1536),
    "layers_per_block": 3,
    "cross_attention_dim": 768,
    "encoder_hid_dim": 1280,
    "encoder_hid_dim_type": "image_proj",
    "addition_embed_type": "image",
    "addition_embed_type_num_heads": 64,
    "attention_head_dim": 64,
    "resnet_time_scale_shift": "scale_shift",
    "down_block_types": ("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
    "up_block_types": ("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "sample_size": 64,
}
# MoVQ (decoder movq/config.json; the diffusers conversion script's MOVQ_CONFIG): 67.8 M parameters,
# matching the published "MoVQ encoder/decoder - 67M".
REAL_MOVQ_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "down_block_types": ("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
    "up_block_types": ("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
    "block_out_channels": (128, 256, 256, 512),
    "layers_per_block": 2,
    "num_vq_embeddings": 16384,
    "vq_embed_dim": 4,
    "norm_type": "spatial",
}
# Prior (prior/prior/config.json): PriorTransformer defaults with a 1280-d CLIP space: 1.03 B parameters,
# matching the published "Diffusion Image Prior - 1B". UNCERTAIN beyond embedding_dim: the remaining values
# are the diffusers defaults, which the published parameter count supports.
REAL_PRIOR_CONFIG: dict[str, Any] = {
    "num_attention_heads": 32,
    "attention_head_dim": 64,
    "num_layers": 20,
    "embedding_dim": 1280,
    "num_embeddings": 77,
    "additional_embeddings": 4,
}
# Schedulers (scheduler_config.json of each repo). The prior's UnCLIPScheduler is that of
# kandinsky-2-2-prior/scheduler/scheduler_config.json, which diffusers' own Kandinsky 2.2 prior tests
# (tests/pipelines/kandinsky2_2/test_kandinsky_prior.py) reproduce: clip_sample_range 10.0 (5.0 was the 2.1
# value). UNCERTAIN: the decoder's DDPM details beyond the beta schedule.
REAL_PRIOR_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "variance_type": "fixed_small_log",
    "prediction_type": "sample",
    "clip_sample": True,
    "clip_sample_range": 10.0,
}
REAL_DECODER_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "variance_type": "fixed_small",
}
# CLIP ViT-bigG/14 towers of the prior (text_encoder/ and image_encoder/ config.json, metrics.md §4).
REAL_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 1280,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "intermediate_size": 5120,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
REAL_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 1664,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "intermediate_size": 8192,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
COMPONENTS = ("prior", "decoder")


class RandomKandinsky22Backend(DiffusersBackend):
    """The real Kandinsky 2.2 architectures with seeded random weights (for speed and memory figures only).

    components=("decoder",) skips the ~10 GiB of CLIP ViT-bigG towers and the 1 B prior; the prior-side
    methods then raise.
    """

    def __init__(
        self,
        components: Sequence[str] = COMPONENTS,
        device: str | torch.device = "auto",
        dtype: torch.dtype | str | None = None,
        seed: int = 0,
        unet_block_out_channels: Sequence[int] | None = None,
        frame_batch_size: int = 16,
        decode_batch_size: int = 4,
        movq_batch_size: int = 2,
        attention_slicing: bool = False,
        prior_guidance: float | None = None,
    ) -> None:
        components = tuple(components)
        unknown = set(components) - set(COMPONENTS)
        if unknown or not components:
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {components}")
        target = resolve_device(device)
        precision = frozen_dtype(target, dtype)
        unet = dict(REAL_UNET_CONFIG)
        if unet_block_out_channels is not None:
            unet["block_out_channels"] = tuple(int(c) for c in unet_block_out_channels)
        with seeded_init(seed):
            prior_pipe = _random_prior(target, precision) if "prior" in components else None
            decoder_pipe = _random_decoder(unet, target, precision) if "decoder" in components else None
        super().__init__(
            "kandinsky22-random",
            prior_pipe,
            decoder_pipe,
            target,
            precision,
            {"seed": seed, "components": list(components), "unet_block_out_channels": list(unet["block_out_channels"])},
            frame_batch_size=frame_batch_size,
            decode_batch_size=decode_batch_size,
            movq_batch_size=movq_batch_size,
            attention_slicing=attention_slicing,
            prior_guidance=prior_guidance,
        )


def placed(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A frozen module on device/dtype; big ones are moved as soon as built, so the host holds one fp32 tower at a time."""
    # torch's own `to`: diffusers' override warns about fp32-only modules on every dtype cast, even when
    # the model has none.
    return torch.nn.Module.to(module, device=device, dtype=dtype).eval().requires_grad_(False)


def _random_prior(device: torch.device, dtype: torch.dtype) -> KandinskyV22PriorPipeline:
    from diffusers import KandinskyV22PriorPipeline, PriorTransformer, UnCLIPScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from spliter.backends.tokenizer import CLIP_BOS_ID, CLIP_EOS_ID, CLIP_VOCAB_SIZE, clip_tokenizer

    text = CLIPTextConfig(
        **REAL_TEXT_CONFIG,
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=77,
        bos_token_id=CLIP_BOS_ID,
        eos_token_id=CLIP_EOS_ID,
        pad_token_id=CLIP_EOS_ID,
    )
    return KandinskyV22PriorPipeline(
        prior=placed(PriorTransformer(**REAL_PRIOR_CONFIG), device, dtype),
        text_encoder=placed(CLIPTextModelWithProjection(text), device, dtype),
        image_encoder=placed(CLIPVisionModelWithProjection(CLIPVisionConfig(**REAL_VISION_CONFIG)), device, dtype),
        tokenizer=clip_tokenizer(77),
        scheduler=UnCLIPScheduler(**REAL_PRIOR_SCHEDULER),
        image_processor=CLIPImageProcessor(),  # 224 px, bicubic, OpenAI mean/std: the prior's own settings
    )


def _random_decoder(unet: dict[str, Any], device: torch.device, dtype: torch.dtype) -> KandinskyV22Pipeline:
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    return KandinskyV22Pipeline(
        unet=placed(UNet2DConditionModel(**unet), device, dtype),
        scheduler=DDPMScheduler(**REAL_DECODER_SCHEDULER),
        movq=placed(VQModel(**REAL_MOVQ_CONFIG), device, dtype),
    )
