"""GIF grids: rows = prompts, columns = variants (baselines first), one shared generation seed per row.

When the prompts are real videos (videos.parquet `truth_gif`, from `generate.prompts: store:<split>`), the first
column is the true video itself (TRUTH_COLUMN), so every generated tile is read against what it should show.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from reports.load import load_study_json, variant_order
from spliter.atomic import atomic_path

DEFAULT_TILE = 96
BACKGROUND = (255, 255, 255)
EMPTY_TILE = (225, 225, 225)
TEXT = (20, 20, 20)
SEED_TEXT = (110, 110, 110)
PAD = 4
TRUTH_COLUMN = "true video"  # the grid's first column where the prompts are real videos


class VideoFileMissing(FileNotFoundError):
    """videos.parquet names a GIF that is not on disk."""


class GridError(ValueError):
    """The grid cannot be built from the rows asked for."""


@dataclass(frozen=True)
class Cell:
    prompt_id: str
    variant: str
    gif: Path | None  # None: this variant has no video for this prompt
    gen_seed: int | None


def font_size(tile: int) -> int:
    return max(10, tile // 8)


def load_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def line_height(font: Any) -> int:
    left, top, right, bottom = font.getbbox("Hgjy")
    return bottom - top + 3


def grid_margins(tile: int = DEFAULT_TILE) -> tuple[int, int]:
    """(caption column width, header strip height) of a grid with tiles of `tile` px."""
    return max(120, 2 * tile), 2 * line_height(load_font(font_size(tile))) + 2 * PAD


def wrap_text(text: str, font: Any, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` px; over-long words are split (after a hyphen where one fits); the last kept
    line ends in … if cut."""
    words: list[str] = []
    for word in text.split():
        while font.getlength(word) > width and len(word) > 1:
            cut = 1
            while cut < len(word) - 1 and font.getlength(word[: cut + 1]) <= width:
                cut += 1
            hyphen = word.rfind("-", 0, cut)
            cut = hyphen + 1 if hyphen > 0 else cut
            words.append(word[:cut])
            word = word[cut:]
        words.append(word)
    lines: list[str] = []
    for word in words:
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        while lines[-1] and font.getlength(lines[-1] + "…") > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] += "…"
    return lines


def read_gif(path: Path) -> list[Image.Image]:
    """All frames of a GIF as RGB images."""
    if not path.exists():
        raise VideoFileMissing(
            f"{path} is listed in videos.parquet but missing: re-run the study's generate stage"
        )
    with Image.open(path) as image:
        return [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]


def fit_tile(frame: Image.Image, tile: int) -> Image.Image:
    """Resize to fit a tile × tile square, keeping the aspect ratio (letterboxed)."""
    scale = tile / max(frame.size)
    size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
    resized = frame.resize(size, Image.Resampling.LANCZOS)
    if size == (tile, tile):
        return resized
    canvas = Image.new("RGB", (tile, tile), BACKGROUND)
    canvas.paste(resized, ((tile - size[0]) // 2, (tile - size[1]) // 2))
    return canvas


def select_cells(
    videos: pd.DataFrame, study: dict[str, Any], prompts: Sequence[str] | None, variants: Sequence[str] | None
) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    """Rows, columns and the video per cell: sample_idx 0 of the first training seed (else the lowest seed)."""
    if videos.empty:
        raise GridError("videos.parquet has no rows: the study rendered no videos")
    rows = list(prompts) if prompts is not None else list(dict.fromkeys(videos["prompt_id"]))
    columns = list(variants) if variants is not None else variant_order(study, videos["variant"].unique())
    for name, wanted, known in (
        ("prompt", rows, videos["prompt_id"]),
        ("variant", columns, videos["variant"]),
    ):
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise GridError(f"videos.parquet has no videos for {name}(s) {unknown}")
    first_seed = (study.get("seeds") or [None])[0]
    chosen = videos[videos["sample_idx"] == 0].assign(_other_seed=lambda frame: frame["seed"] != first_seed)
    chosen = chosen.sort_values(["_other_seed", "seed"]).drop_duplicates(["prompt_id", "variant"])
    by_key = {(row.prompt_id, row.variant): row for row in chosen.itertuples()}
    cells = {}
    for prompt_id in rows:
        for variant in columns:
            row = by_key.get((prompt_id, variant))
            gen_seed = None if row is None or pd.isna(row.gen_seed) else int(row.gen_seed)
            cells[prompt_id, variant] = Cell(
                prompt_id, variant, None if row is None else Path(row.gif), gen_seed
            )
    truth = true_videos(videos)
    if truth and TRUTH_COLUMN not in columns:
        columns = [TRUTH_COLUMN, *columns]
        for prompt_id in rows:
            cells[prompt_id, TRUTH_COLUMN] = Cell(prompt_id, TRUTH_COLUMN, truth.get(prompt_id), None)
    return rows, columns, cells


def true_videos(videos: pd.DataFrame) -> dict[str, Path]:
    """prompt_id -> the GIF of its true video, for prompts that are real videos (empty otherwise)."""
    if "truth_gif" not in videos.columns:
        return {}
    known = videos.dropna(subset=["truth_gif"]).drop_duplicates("prompt_id")
    return {row.prompt_id: Path(row.truth_gif) for row in known.itertuples() if row.truth_gif}


def gif_grid(
    videos: pd.DataFrame,
    study_root: str | Path,
    prompts: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    tile: int = DEFAULT_TILE,
    study: dict[str, Any] | None = None,
) -> list[Image.Image]:
    """Grid frames; shorter videos hold their last frame until the longest one ends."""
    root = Path(study_root)
    study = study if study is not None else load_study_json(root / "results" / "study.json")
    rows, columns, cells = select_cells(videos, study, prompts, variants)
    clips = {
        key: [fit_tile(frame, tile) for frame in read_gif(root / cell.gif)]
        for key, cell in cells.items()
        if cell.gif
    }
    base = draw_frame(rows, columns, cells, videos, tile)
    length = max((len(clip) for clip in clips.values()), default=1)
    caption_width, header_height = grid_margins(tile)
    frames = []
    for index in range(length):
        frame = base.copy()
        for (prompt_id, variant), clip in clips.items():
            position = (
                caption_width + columns.index(variant) * tile,
                header_height + rows.index(prompt_id) * tile,
            )
            frame.paste(clip[min(index, len(clip) - 1)], position)
        frames.append(frame)
    return frames


def draw_frame(
    rows: list[str], columns: list[str], cells: dict[tuple[str, str], Cell], videos: pd.DataFrame, tile: int
) -> Image.Image:
    """The still part of the grid: variant names on top, wrapped prompts on the left, empty tiles grey."""
    caption_width, header_height = grid_margins(tile)
    font = load_font(font_size(tile))
    height = line_height(font)
    image = Image.new(
        "RGB", (caption_width + len(columns) * tile, header_height + len(rows) * tile), BACKGROUND
    )
    draw = ImageDraw.Draw(image)
    for column, variant in enumerate(columns):
        for line_index, line in enumerate(wrap_text(variant, font, tile - PAD, 2)):
            x = caption_width + column * tile + (tile - font.getlength(line)) / 2
            draw.text((x, PAD + line_index * height), line, fill=TEXT, font=font)
    texts = dict(zip(videos["prompt_id"], videos["prompt"], strict=True))
    for row, prompt_id in enumerate(rows):
        top = header_height + row * tile
        seeds = {cells[prompt_id, variant].gen_seed for variant in columns
                 if cells[prompt_id, variant].gif and variant != TRUTH_COLUMN}
        seed = f"gen_seed {seeds.pop()}" if len(seeds) == 1 else "gen_seeds differ"
        seed_lines = wrap_text(seed, font, caption_width - 2 * PAD, 2)
        room = max(1, (tile - PAD) // height - len(seed_lines))
        lines = wrap_text(str(texts[prompt_id]), font, caption_width - 2 * PAD, room)
        for line_index, line in enumerate(lines):
            draw.text((PAD, top + PAD + line_index * height), line, fill=TEXT, font=font)
        for line_index, line in enumerate(seed_lines):
            draw.text((PAD, top + PAD + (len(lines) + line_index) * height), line, fill=SEED_TEXT, font=font)
        for column, variant in enumerate(columns):
            if cells[prompt_id, variant].gif is None:
                box = (
                    caption_width + column * tile,
                    top,
                    caption_width + (column + 1) * tile - 1,
                    top + tile - 1,
                )
                draw.rectangle(box, fill=EMPTY_TILE)
                draw.text((box[0] + PAD, top + tile // 2), "no video", fill=TEXT, font=font)
    return image


GIF_MAX_FPS = 50.0  # GIF delays are whole centiseconds
GIF_COLOURS = 255  # the 256th palette entry is reserved, see gif_images


def write_gif(frames: np.ndarray | Sequence[Image.Image], path: str | Path, fps: float) -> Path:
    """The one GIF writer: uint8 (F, H, W, 3) frames (or RGB images) as a looping GIF; returns the path.

    One 255-colour palette is shared by all frames (no flicker). Each delay is rounded so that frame k still
    starts at round(100·k/fps) cs, within 5 ms of k/fps. Identical consecutive frames stay separate frames
    (Pillow would otherwise merge them, and a still video would lose its length).
    """
    array = np.stack([np.asarray(f.convert("RGB")) for f in frames]) if _are_images(frames) else np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise GridError(f"{path}: frames must be non-empty uint8 (F, H, W, 3), got {array.dtype} {array.shape}")
    if not 0 < fps <= GIF_MAX_FPS:
        raise GridError(f"{path}: GIF delays are in centiseconds, so fps must be in (0, {GIF_MAX_FPS:g}], got {fps}")
    starts = [round(100 * k / fps) for k in range(len(array) + 1)]
    durations = [10 * (b - a) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    images = gif_images(np.ascontiguousarray(array))
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0, duration=durations,
                       optimize=False)
    return Path(path)


def _are_images(frames: Any) -> bool:
    return isinstance(frames, Sequence) and len(frames) > 0 and isinstance(frames[0], Image.Image)


def gif_images(frames: np.ndarray) -> list[Image.Image]:
    """Palette images of uint8 (F, H, W, 3) frames, sharing one palette, no two consecutive ones equal."""
    count, height, width, _ = frames.shape
    # Quantise once over a (subsampled) mosaic of all frames so every frame uses the same colours.
    step = max(1, int(np.sqrt(count * height * width / 1_000_000)))
    sub = frames[:, ::step, ::step]
    palette_image = Image.fromarray(np.ascontiguousarray(sub.reshape(-1, sub.shape[2], 3))).quantize(
        GIF_COLOURS, dither=Image.Dither.NONE)
    palette = list(palette_image.getpalette() or [])[: 3 * GIF_COLOURS]
    palette += [0] * (3 * GIF_COLOURS - len(palette))
    images = []
    for k, frame in enumerate(frames):
        index = np.array(Image.fromarray(frame).quantize(palette=palette_image, dither=Image.Dither.NONE))
        # Pillow drops a frame identical to the previous one. Entry 255 aliases the colour of pixel (0, 0)
        # and odd frames use it there: consecutive frames then always differ in data, never in colour.
        corner = int(index[0, 0])
        if k % 2:
            index[0, 0] = GIF_COLOURS
        image = Image.fromarray(index, mode="P")
        image.putpalette(palette + palette[3 * corner : 3 * corner + 3])
        images.append(image)
    return images


def grid_fps(videos: pd.DataFrame, fps: float | None) -> float:
    """The given fps, else the videos' own (so motion plays at its real speed), else 8."""
    if fps is not None:
        return fps
    rates = pd.to_numeric(videos.get("fps", pd.Series(dtype=float)), errors="coerce").dropna()
    return float(rates.median()) if len(rates) else 8.0


def write_gif_grid(
    videos: pd.DataFrame, study_root: str | Path, path: str | Path, fps: float | None = None, **grid: Any
) -> Path:
    """gif_grid(...) written to `path`; `grid` takes gif_grid's keyword arguments."""
    return write_gif(gif_grid(videos, study_root, **grid), path, grid_fps(videos, fps))


def prompt_strip(
    videos: pd.DataFrame, study_root: str | Path, prompt_id: str, **grid: Any
) -> list[Image.Image]:
    """One prompt across all variants: a one-row grid."""
    return gif_grid(videos, study_root, prompts=[prompt_id], **grid)


def write_prompt_strips(
    videos: pd.DataFrame, study_root: str | Path, out_dir: str | Path, fps: float | None = None, **grid: Any
) -> list[Path]:
    """One GIF per prompt, named `prompt-<prompt_id>.gif`."""
    prompts = grid.pop("prompts", None) or list(dict.fromkeys(videos["prompt_id"]))
    return [
        write_gif(prompt_strip(videos, study_root, prompt_id, **grid), Path(out_dir) / f"prompt-{slug(prompt_id)}.gif",
                  grid_fps(videos, fps))
        for prompt_id in prompts
    ]  # fmt: skip


def slug(text: str) -> str:
    """A file-name-safe version of a metric or prompt id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"
