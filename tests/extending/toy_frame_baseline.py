"""A throw-away frame baseline for docs/extending.md's recipe: seeded noise frames, a folder that must exist."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_FRAMES = 4


@dataclass(frozen=True)
class ToyFramesSettings:
    folder: str | None = None  # a folder that must exist (stands for the weights)

    def __post_init__(self) -> None:
        if not self.folder:
            raise ValueError("folder: give the toy folder")


def settings_problems(settings: ToyFramesSettings) -> list[str]:
    folder = Path(settings.folder)
    return [] if folder.is_dir() else [f"toy frames folder {folder} not found; mkdir {folder}"]


def generate_problems(settings: ToyFramesSettings, frames: int, size: int) -> list[str]:
    return [] if frames <= MAX_FRAMES else [f"frames: the toy renders at most {MAX_FRAMES}, got {frames}"]


class ToyFrames:
    """Uniform noise frames drawn from the seed."""

    def __init__(self, settings: ToyFramesSettings) -> None:
        self.settings = settings

    @classmethod
    def from_folder(cls, settings: ToyFramesSettings, device: str = "auto") -> ToyFrames:
        return cls(settings)

    def render(self, prompt: str, frames: int, size: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)

    def identity(self) -> dict[str, Any]:
        return {"name": "toy_frames", **asdict(self.settings)}
