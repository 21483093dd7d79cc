"""Text-to-image backends: the Backend protocol and BACKENDS, the registry every caller builds them through.

A backend is one module plus one registration here: its options dataclass (the study's `backend.options`),
the import path of its factory, of its offline weight check, and whether its weights are random. The factory
module is imported only when that backend is built: importing `spliter.backends.tiny` pulls in diffusers and
transformers (~4 s alone, ~20 s on a loaded 2-core machine), which `plan` and `doctor` never need.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from spliter.backends.base import Backend, BackendSpec, WeightsNotFound, frozen_dtype, resolve_device
from spliter.registry import Registry, UnknownComponent, import_object

BACKENDS: Registry[BackendSpec] = Registry("backend")


@dataclass(frozen=True)
class SeededOptions:
    seed: int = 0  # seed of the random weights


@dataclass(frozen=True)
class Kandinsky22Options:
    prior: str = "kandinsky-community/kandinsky-2-2-prior"  # local folder or hub id (HF cache) of the prior
    decoder: str = "kandinsky-community/kandinsky-2-2-decoder"  # local folder or hub id (HF cache) of the decoder
    cache_dir: str | None = None  # HF cache folder (None: the default cache)
    dtype: str | None = None  # float16 | bfloat16 | float32 (None: fp16 on CUDA, fp32 elsewhere)
    frame_batch_size: int = 64  # frames per image-encoder call (encode)
    decode_batch_size: int = 4  # images per UNet call (each runs twice: classifier-free guidance)
    movq_batch_size: int = 2  # images per MoVQ decode, the largest working set at 512 px
    attention_slicing: bool = False  # diffusers attention slicing: less memory, slower
    prior_guidance: float | None = None  # the prior's guidance scale in generate (None: the decoder's)

    def __post_init__(self) -> None:
        _check_memory_knobs(self)


@dataclass(frozen=True)
class RandomKandinsky22Options:
    seed: int = 0  # seed of the random weights
    dtype: str | None = None  # float16 | bfloat16 | float32 (None: fp16 on CUDA, fp32 elsewhere)
    frame_batch_size: int = 16  # frames per image-encoder call (encode)
    decode_batch_size: int = 4  # images per UNet call (each runs twice: classifier-free guidance)
    movq_batch_size: int = 2  # images per MoVQ decode
    attention_slicing: bool = False  # diffusers attention slicing: less memory, slower
    prior_guidance: float | None = None  # the prior's guidance scale in generate (None: the decoder's)

    def __post_init__(self) -> None:
        _check_memory_knobs(self)


DTYPES = ("float16", "bfloat16", "float32")


def _check_memory_knobs(options: Any) -> None:
    """A dtype torch has and positive batch sizes; the study names the key when this raises."""
    if options.dtype is not None and options.dtype not in DTYPES:
        raise ValueError(f"dtype: {options.dtype!r} is not one of {list(DTYPES)} (or null: fp16 on CUDA, fp32 elsewhere)")
    for key in ("frame_batch_size", "decode_batch_size", "movq_batch_size"):
        if int(getattr(options, key)) < 1:
            raise ValueError(f"{key}: must be >= 1, got {getattr(options, key)}")


BACKENDS.register("tiny", BackendSpec(
    factory="spliter.backends.tiny:TinyBackend", options=SeededOptions, random_weights=True,
    description="tiny Kandinsky 2.2 pipelines with random weights built from a seed"))
BACKENDS.register("kandinsky22", BackendSpec(
    factory="spliter.backends.kandinsky22:Kandinsky22Backend", options=Kandinsky22Options, random_weights=False,
    missing_weights="spliter.backends.kandinsky22:kandinsky_folder_problems",
    description="Kandinsky 2.2 prior + decoder from local folders or the HF cache"))
BACKENDS.register("kandinsky22-random", BackendSpec(
    factory="spliter.backends.kandinsky22:RandomKandinsky22Backend", options=RandomKandinsky22Options, random_weights=True,
    description="the real Kandinsky 2.2 architectures with random weights built from a seed"))
BACKENDS.register("pixel-linear", BackendSpec(
    factory="spliter.backends.pixel:PixelLinearBackend", options="spliter.backends.pixel:PixelLinearOptions",
    random_weights=False,
    description="known-answer world: embedding = an exact orthonormal map of the 16x16 frame; retrieval prior"))


def make_backend(name: str, device: str = "auto", **options: Any) -> Backend:
    """Build the registered backend called `name` with its options."""
    cls = import_object(backend_spec(name).factory)
    try:
        inspect.signature(cls).bind(device=device, **options)
    except TypeError as error:
        raise ValueError(f"backend {name!r}: {error}; see {cls.__module__}.{cls.__name__} for its options") from None
    return cls(device=device, **options)


def missing_weights(name: str, **options: Any) -> list[str]:
    """One line per weight folder the backend `name` needs and cannot find (empty when it can be built)."""
    check = backend_spec(name).missing_weights
    return [] if check is None else list(import_object(check)(**options))


def backend_spec(name: str) -> BackendSpec:
    """The registry entry of `name`; an unknown name is a ValueError listing the registered ones."""
    try:
        return BACKENDS.get(name)
    except UnknownComponent as err:
        raise ValueError(str(err)) from None


__all__ = [
    "BACKENDS", "Backend", "BackendSpec", "Kandinsky22Options", "RandomKandinsky22Options", "SeededOptions", "WeightsNotFound", "backend_spec",
    "frozen_dtype", "make_backend", "missing_weights", "resolve_device",
]
