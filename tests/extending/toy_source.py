"""A throw-away data source for docs/extending.md's recipe: colour ramps written as mp4s, captioned by colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spliter.data.datasets import CaptionedVideo, DatasetListing
from spliter.data.video import write_mp4

COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "white": (1, 1, 1)}


def ramps(data: dict[str, Any], work: Path) -> DatasetListing:
    """`data.n_videos` clips that brighten from black to a colour over `data.frames` frames."""
    folder = work / "ramps"
    videos = []
    for i in range(data["n_videos"]):
        name, rgb = list(COLOURS.items())[i % len(COLOURS)]
        path = folder / f"ramp{i:03d}.mp4"
        if not path.exists():
            level = np.linspace(0.1, 1.0, data["frames"])[:, None, None, None] * np.array(rgb)[None, None, None]
            write_mp4((255 * np.broadcast_to(level, (data["frames"], 32, 32, 3))).astype(np.uint8), path, 8.0)
        videos.append(CaptionedVideo(f"ramp{i:03d}", f"a {name} light fades in", path, "ramps"))
    return DatasetListing(videos, problems=[])
