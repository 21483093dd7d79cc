"""Prior-art generators that make frames directly from a caption (no Spliter, no embeddings): FRAME_BASELINES.

A frame baseline is one module plus one registration here: the dataclass of its study section (the study's
top-level `<name>:` key), its offline weight check, what it cannot render, and its model class. The module is
imported only when one of these is asked for, and diffusers only when a model is built, so `plan` and `doctor`
never load an ML library for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from spliter.registry import Registry, import_object

if TYPE_CHECKING:
    import numpy as np


class FrameBaseline(Protocol):
    """What the generate stage needs from a frame baseline: a caption and a seed -> frames, and its identity."""

    def render(self, prompt: str, frames: int, size: int, seed: int) -> np.ndarray:
        """uint8 (frames, size, size, 3) for one caption; the same seed gives the same video."""
        ...

    def identity(self) -> dict[str, Any]:
        """JSON-able description (weights folders, dtype, settings) recorded next to every video."""
        ...


@dataclass(frozen=True)
class FrameBaselineSpec:
    """One registered frame baseline (see FRAME_BASELINES and docs/extending.md)."""

    title: str  # its name in prose ("Text2Video-Zero")
    settings: str  # "module:Class": the frozen dataclass of the study's `<name>:` section
    model: str  # "module:Class" with .from_folder(settings, device=...) -> FrameBaseline
    # "module:function"(settings) -> one line per missing or incomplete weights folder, naming it and the fix;
    # configs and file names only, no weights read
    folder_problems: str
    # "module:function"(settings, frames, size) -> "<generate key>: why" for each generate setting it cannot
    # render (checked when the study loads)
    generate_problems: str
    folders: tuple[tuple[str, str], ...]  # (settings key, what that folder holds), for the study's messages and doctor

    def settings_class(self) -> type:
        return import_object(self.settings)

    def build(self, settings: Any, device: str = "auto") -> FrameBaseline:
        """The model of `settings` (its settings dataclass), loaded from its folders onto `device`."""
        return import_object(self.model).from_folder(settings, device=device)

    def problems(self, settings: Any) -> list[str]:
        return import_object(self.folder_problems)(settings)

    def generate_limits(self, settings: Any, frames: int, size: int) -> list[str]:
        return import_object(self.generate_problems)(settings, frames, size)


FRAME_BASELINES: Registry[FrameBaselineSpec] = Registry("frame baseline")

FRAME_BASELINES.register("text2video_zero", FrameBaselineSpec(
    title="Text2Video-Zero", settings="spliter.baselines.text2video_zero:Text2VideoZeroConfig",
    model="spliter.baselines.text2video_zero:Text2VideoZero",
    folder_problems="spliter.baselines.text2video_zero:settings_problems",
    generate_problems="spliter.baselines.text2video_zero:generate_problems",
    folders=(("folder", "Stable Diffusion 1.5 folder"),)))
FRAME_BASELINES.register("animatediff", FrameBaselineSpec(
    title="AnimateDiff", settings="spliter.baselines.animatediff:AnimateDiffConfig",
    model="spliter.baselines.animatediff:AnimateDiff",
    folder_problems="spliter.baselines.animatediff:settings_problems",
    generate_problems="spliter.baselines.animatediff:generate_problems",
    folders=(("folder", "Stable Diffusion 1.5 folder"), ("motion_adapter", "motion adapter folder"))))
