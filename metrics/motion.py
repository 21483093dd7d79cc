"""How much a video moves, so that a still video cannot win on consistency alone (metrics.md §7.1).

Both measures are 0 for a still video and grow with change between consecutive frames. They are
counterweights, not quality scores: read them next to temporal consistency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.clip import EmbeddingError, check_frames, unit_rows


def embedding_motion(frame_embeds: Any, label: str = "video") -> float:
    """Mean L2 distance between consecutive unit-normalised frame embeddings, in [0, 2].

    The chord length sqrt(2 - 2 cos) rather than 1 - cos: it is a distance (triangle inequality, so
    path lengths add up) and grows linearly, not quadratically, with small angles.
    """
    f = unit_rows(frame_embeds, label)
    if f.shape[0] < 2:
        raise EmbeddingError(f"{label}: motion needs at least 2 frames, got {f.shape[0]}")
    return float(np.linalg.norm(np.diff(f, axis=0), axis=1).mean())


def pixel_motion(frames: Any, normalise: bool = False, label: str = "video") -> float:
    """Mean absolute difference of consecutive uint8 frames, in 0-255 units (0-1 with ``normalise``).

    The same per-pair MAE as VBench temporal_flickering, without its "255 minus" inversion.
    """
    arr = check_frames(frames, label)
    if arr.shape[0] < 2:
        raise EmbeddingError(f"{label}: motion needs at least 2 frames, got {arr.shape[0]}")
    # int16 so that differences of uint8 values do not wrap around
    value = float(np.abs(np.diff(arr.astype(np.int16), axis=0)).mean())
    return value / 255.0 if normalise else value
