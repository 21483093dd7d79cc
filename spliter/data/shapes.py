"""A procedural captioned-video dataset: coloured shapes that move, grow, shrink, rotate or change colour.

Every clip is drawn with numpy from a signed distance (anti-aliased edges), written as a real H.264 mp4,
and described by a caption that states what happens, e.g. "a red circle moves from left to right on a
striped background". Clip i depends only on (seed, i), so the same seed gives identical captions and frames,
and a larger dataset starts with the clips of a smaller one. Backgrounds are grey (R = G = B) so that the
shape is the only coloured mass in the frame.

The first frame does not tell the motion: every translating clip starts in the same central box, whatever
its direction, and travels ``TRAVEL`` of the frame per axis; grow and shrink start from the same radius
range; with the same generator state, opposite motions have the same first frame (only the caption says
which way it goes). A text-blind predictor can therefore not know the direction. ``TRAVEL`` is large and
the shapes big enough that the motion survives a 16x16 downsampling (several low-resolution pixels).
"""

from __future__ import annotations

import colorsys
import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from spliter.atomic import atomic_path
from spliter.data.video import write_mp4

# Number of polygon sides (0 = circle).
SHAPES: dict[str, int] = {"circle": 0, "triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}
# Hue in degrees; all colours are fully saturated and bright enough to stand out on grey.
COLOURS: dict[str, float] = {
    "red": 0.0, "orange": 28.0, "yellow": 55.0, "green": 120.0,
    "cyan": 185.0, "blue": 225.0, "purple": 275.0, "pink": 320.0,
}  # fmt: skip
BACKGROUNDS: dict[str, str] = {
    "plain": "plain", "stripes": "striped", "checker": "checkered", "noise": "noisy", "gradient": "gradient",
}  # fmt: skip
MOTIONS: tuple[str, ...] = (
    "left_to_right", "right_to_left", "up", "down", "diagonal", "grow", "shrink", "rotate", "color_change",
)  # fmt: skip
_DIAGONALS = {  # (start corner, end corner) in unit coordinates, y pointing down
    "from the top left to the bottom right": ((0, 0), (1, 1)),
    "from the bottom right to the top left": ((1, 1), (0, 0)),
    "from the top right to the bottom left": ((1, 0), (0, 1)),
    "from the bottom left to the top right": ((0, 1), (1, 0)),
}
CAPTION_COLUMNS = ("video_id", "caption", "motion", "shape", "color", "background")
# Unit direction (x, y), y pointing down, and caption phrase of every straight-line motion.
_DIRECTIONS: dict[str, tuple[tuple[float, float], str]] = {
    "left_to_right": ((1.0, 0.0), "moves from left to right"),
    "right_to_left": ((-1.0, 0.0), "moves from right to left"),
    "up": ((0.0, -1.0), "moves up"),
    "down": ((0.0, 1.0), "moves down"),
}
TRAVEL = 0.3  # distance a translating shape's centre travels per moving axis, as a fraction of the frame
START_BOX = (0.4, 0.6)  # where every translating shape's centre starts (fraction of the frame, both axes)


@dataclass(frozen=True)
class ShapeClip:
    """Per-frame geometry of one clip: centre (F, 2) px, circumradius (F,) px, angle (F,) rad, rgb (F, 3) 0-255."""

    shape: str
    centre: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    rgb: np.ndarray
    caption: str
    motion: str
    color: str
    background: str


def write_shapes_dataset(
    root: str | os.PathLike,
    n_videos: int = 200,
    frames: int = 16,
    size: int = 64,
    fps: float = 8.0,
    seed: int = 0,
    motions: Sequence[str] = MOTIONS,
    backgrounds: Sequence[str] = tuple(BACKGROUNDS),
    start_box: tuple[float, float] = START_BOX,
) -> Path:
    """Write root/videos/shapeNNNNN.mp4 and root/captions.csv (video_id,caption,motion,shape,color,background).

    Clip i has motion ``motions[i % len(motions)]``, a background drawn from ``backgrounds``, and its shape
    centre starts uniformly in ``start_box`` (a fraction of the frame, both axes; equal ends fix it).
    """
    if not 0.0 <= start_box[0] <= start_box[1] <= 1.0:
        raise ValueError(f"start_box must be (low, high) with 0 <= low <= high <= 1, got {start_box!r}")
    if n_videos < 1 or frames < 2:
        raise ValueError(f"need n_videos >= 1 and frames >= 2, got n_videos={n_videos}, frames={frames}")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number >= 16 (H.264 needs even sizes), got {size}")
    motions, backgrounds = _subset("motions", motions, MOTIONS), _subset("backgrounds", backgrounds, tuple(BACKGROUNDS))
    root = Path(root)
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_videos):
        rng = np.random.default_rng([seed, i])
        clip = plan_clip(motions[i % len(motions)], frames, size, rng, backgrounds, start_box)
        video_id = f"shape{i:05d}"
        write_mp4(render_clip(clip, _background(clip.background, size, rng)), videos / f"{video_id}.mp4", fps)
        rows.append((video_id, clip.caption, clip.motion, clip.shape, clip.color, clip.background))
    with atomic_path(root / "captions.csv") as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CAPTION_COLUMNS)
        writer.writerows(rows)
    return root


def plan_clip(
    motion: str,
    frames: int,
    size: int,
    rng: np.random.Generator,
    backgrounds: Sequence[str] = tuple(BACKGROUNDS),
    start_box: tuple[float, float] = START_BOX,
) -> ShapeClip:
    """Draw shape, colour, background and the per-frame trajectory for one motion kind."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    shapes = [s for s in SHAPES if not (motion == "rotate" and SHAPES[s] == 0)]  # a turning circle looks still
    shape = str(rng.choice(shapes))
    colour, other = (str(c) for c in rng.choice(list(COLOURS), size=2, replace=False))
    background = str(rng.choice(list(backgrounds)))
    t = np.linspace(0.0, 1.0, frames)
    radius = np.full(frames, size * rng.uniform(0.14, 0.18))
    # The same central box for every motion, so the first frame says nothing about the direction.
    centre = np.tile(rng.uniform(*start_box, size=2) * size, (frames, 1))
    angle = np.full(frames, rng.uniform(0, 2 * np.pi))
    hues = np.full(frames, COLOURS[colour])
    phrase = {"grow": "grows", "shrink": "shrinks"}.get(motion, "")

    if motion in _DIRECTIONS:
        direction, phrase = _DIRECTIONS[motion]
        centre = centre + TRAVEL * size * t[:, None] * np.asarray(direction)
    elif motion == "diagonal":
        phrase_key = str(rng.choice(list(_DIAGONALS)))
        start, end = (np.asarray(p, float) for p in _DIAGONALS[phrase_key])
        centre = centre + TRAVEL * size * t[:, None] * (end - start)
        phrase = f"moves diagonally {phrase_key}"
    elif motion in ("grow", "shrink"):
        # Same starting radius range both ways: the first frame does not tell growing from shrinking.
        factor = 1.9 if motion == "grow" else 0.45
        radius = radius[0] * (1.0 + t * (factor - 1.0))
    elif motion == "rotate":
        # At most half a symmetry period, so the turn is never ambiguous; larger turn for rounder shapes.
        turn = np.pi / SHAPES[shape] * rng.uniform(0.8, 1.0)
        clockwise = bool(rng.integers(2))
        radius[:] = size * rng.uniform(0.22, 0.3)
        centre[:] = size / 2
        angle = angle + (1 if clockwise else -1) * t * turn  # y points down: growing angle turns clockwise
        phrase = f"rotates {'clockwise' if clockwise else 'counterclockwise'}"
    else:  # color_change: along the shorter way round the hue circle, so saturation never drops
        delta = (COLOURS[other] - COLOURS[colour] + 180.0) % 360.0 - 180.0
        hues = COLOURS[colour] + t * delta

    rgb = np.array([colorsys.hsv_to_rgb((h % 360.0) / 360.0, 0.85, 0.95) for h in hues]) * 255.0
    where = f"on {_article(BACKGROUNDS[background])} {BACKGROUNDS[background]} background"
    if motion == "color_change":
        caption = f"a {shape} changes color from {colour} to {other} {where}"
        colour = f"{colour} to {other}"
    else:
        caption = f"{_article(colour)} {colour} {shape} {phrase} {where}"
    return ShapeClip(shape, centre, radius, angle, rgb, caption, motion, colour, background)


def render_clip(clip: ShapeClip, background: np.ndarray) -> np.ndarray:
    """Composite the shape over a (size, size) grey background: uint8 (F, size, size, 3)."""
    size = background.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    dx = x[None] - clip.centre[:, 0, None, None]
    dy = y[None] - clip.centre[:, 1, None, None]
    sides = SHAPES[clip.shape]
    if sides == 0:
        distance = np.hypot(dx, dy) - clip.radius[:, None, None]
    else:
        # Convex polygon: the largest signed distance to its edge lines (exact inside, close outside).
        normals = clip.angle[:, None] + np.pi / sides + 2 * np.pi / sides * np.arange(sides)[None, :]  # (F, n)
        apothem = clip.radius * np.cos(np.pi / sides)
        along = dx[:, None] * np.cos(normals)[..., None, None] + dy[:, None] * np.sin(normals)[..., None, None]
        distance = along.max(axis=1) - apothem[:, None, None]
    alpha = np.clip(0.5 - distance, 0.0, 1.0)[..., None]  # one-pixel anti-aliased edge
    out = background[None, :, :, None] * (1.0 - alpha) + clip.rgb[:, None, None, :] * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _subset(name: str, chosen: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """``chosen`` as a tuple, refused when empty, a bare string, or naming something not in ``allowed``."""
    if isinstance(chosen, str) or not chosen:
        raise ValueError(f"{name} must be a non-empty list of names from {', '.join(allowed)}, got {chosen!r}")
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; choose from {', '.join(allowed)}")
    return tuple(chosen)


def _background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grey (size, size) float image in 0-255 of the given kind."""
    base, contrast = rng.uniform(60, 190), rng.uniform(25, 45)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    phi = rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
    along = x * np.cos(phi) + y * np.sin(phi)
    makers: dict[str, Callable[[], np.ndarray]] = {
        "plain": lambda: np.zeros((size, size)),
        "stripes": lambda: np.clip(3.0 * np.sin(2 * np.pi * along / rng.uniform(6, 12)), -1, 1),
        "checker": lambda: _checker(x, y, int(rng.integers(6, 13))),
        "noise": lambda: _smooth_noise(size, rng),
        "gradient": lambda: 2.0 * (along - along.min()) / max(np.ptp(along), 1.0) - 1.0,
    }
    return np.clip(base + contrast * makers[kind](), 0, 255)


def _checker(x: np.ndarray, y: np.ndarray, cell: int) -> np.ndarray:
    return np.where((x // cell + y // cell) % 2 == 0, -1.0, 1.0)


def _smooth_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """Blotchy noise in [-1, 1]: a coarse random grid upsampled bicubically (cheap to encode, visibly textured)."""
    coarse = rng.uniform(0, 255, size=(max(2, size // 8),) * 2).astype(np.uint8)
    fine = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    return fine / 127.5 - 1.0


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
