"""gifs: grid layout (rows = prompts, columns = variants), padding by holding frames, seed choice, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageSequence
from test_build import write_tiny_gif

from reports import gifs

TILE = 32
STUDY = {
    "study": "g",
    "seeds": [0, 1],
    "baselines": ["static"],
    "variant_order": ["static", "base"],
    "variants": {},
}
COLOURS = {("static", 0): (200, 0, 0), ("base", 0): (0, 200, 0), ("base", 1): (0, 0, 200)}


def video_row(variant: str, seed: int, prompt_id: str, sample_idx: int, gif: str, frames: int) -> dict:
    return {
        "study": "g", "trial_id": f"{variant}-s{seed}-00000000", "variant": variant, "seed": seed,
        "prompt_id": prompt_id, "prompt": f"prompt {prompt_id} with quite a few words to wrap around",
        "sample_idx": sample_idx, "gen_seed": 10 * sample_idx + int(prompt_id[1:]), "gif": gif,
        "mp4": gif.replace(".gif", ".mp4"), "frames": frames, "size": 16, "fps": 4.0,
    }  # fmt: skip


@pytest.fixture
def videos(tmp_path: Path) -> pd.DataFrame:
    """base (listed first, 5 frames) and static (3 frames) for two prompts; decoys at seed 1 and sample 1."""
    rows = []
    for (variant, seed), colour in COLOURS.items():
        for prompt_id in ("p0", "p1"):
            for sample_idx in (0, 1):
                frames = 5 if variant == "base" else 3
                gif = f"trials/{variant}-s{seed}/generate/{prompt_id}-{sample_idx}.gif"
                shade = colour if sample_idx == 0 else (255, 255, 0)
                write_tiny_gif(tmp_path / gif, frames, shade)
                rows.append(video_row(variant, seed, prompt_id, sample_idx, gif, frames))
    return pd.DataFrame(rows[::-1])  # reversed: the order must come from study.json, not the table


def tile_colour(frame: Image.Image, row: int, column: int) -> tuple[int, int, int]:
    caption, header = gifs.grid_margins(TILE)
    return frame.getpixel((caption + column * TILE + TILE - 3, header + row * TILE + TILE - 3))


def test_grid_size_and_frame_count(videos: pd.DataFrame, tmp_path: Path) -> None:
    frames = gifs.gif_grid(videos, tmp_path, tile=TILE, study=STUDY)
    caption, header = gifs.grid_margins(TILE)
    assert len(frames) == 5  # the longest video
    assert {frame.size for frame in frames} == {(caption + 2 * TILE, header + 2 * TILE)}


def test_columns_follow_the_study_with_sample_0_of_the_first_seed(
    videos: pd.DataFrame, tmp_path: Path
) -> None:
    first = gifs.gif_grid(videos, tmp_path, tile=TILE, study=STUDY)[0]
    for row in range(2):
        assert np.allclose(tile_colour(first, row, 0), COLOURS["static", 0], atol=12)
        assert np.allclose(tile_colour(first, row, 1), COLOURS["base", 0], atol=12)


def test_grid_animates_and_short_videos_hold_their_last_frame(videos: pd.DataFrame, tmp_path: Path) -> None:
    frames = [np.asarray(frame) for frame in gifs.gif_grid(videos, tmp_path, tile=TILE, study=STUDY)]
    caption, header = gifs.grid_margins(TILE)
    static_tile = (slice(header, header + TILE), slice(caption, caption + TILE))
    base_tile = (slice(header, header + TILE), slice(caption + TILE, caption + 2 * TILE))
    assert not np.array_equal(frames[0], frames[-1])
    assert not np.array_equal(frames[1][static_tile], frames[2][static_tile])  # static still moving
    assert np.array_equal(frames[2][static_tile], frames[4][static_tile])  # then held
    assert not np.array_equal(frames[3][base_tile], frames[4][base_tile])


def test_written_gif_reads_back_with_the_same_frames(videos: pd.DataFrame, tmp_path: Path) -> None:
    path = gifs.write_gif_grid(videos, tmp_path, tmp_path / "out" / "grid.gif", tile=TILE, study=STUDY)
    with Image.open(path) as image:
        frames = list(ImageSequence.Iterator(image))
        assert len(frames) == 5 and image.info["duration"] == 250  # the videos' 4 fps
        assert image.size == (gifs.grid_margins(TILE)[0] + 2 * TILE, gifs.grid_margins(TILE)[1] + 2 * TILE)


def test_prompt_strips_are_one_row_each(videos: pd.DataFrame, tmp_path: Path) -> None:
    paths = gifs.write_prompt_strips(videos, tmp_path, tmp_path / "strips", tile=TILE, study=STUDY, fps=8)
    assert [path.name for path in paths] == ["prompt-p1.gif", "prompt-p0.gif"]
    with Image.open(paths[0]) as image:
        assert image.size[1] == gifs.grid_margins(TILE)[1] + TILE


def test_a_missing_cell_is_a_grey_tile(videos: pd.DataFrame, tmp_path: Path) -> None:
    partial = videos[~((videos["variant"] == "static") & (videos["prompt_id"] == "p1"))]
    frame = gifs.gif_grid(partial, tmp_path, prompts=["p0", "p1"], tile=TILE, study=STUDY)[0]
    assert tile_colour(frame, 1, 0) == gifs.EMPTY_TILE
    assert np.allclose(tile_colour(frame, 0, 0), COLOURS["static", 0], atol=12)


def test_a_missing_video_file_is_a_clear_error(videos: pd.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "trials/base-s0/generate/p0-0.gif").unlink()
    with pytest.raises(FileNotFoundError, match=r"base-s0/generate/p0-0\.gif is listed in videos\.parquet"):
        gifs.gif_grid(videos, tmp_path, tile=TILE, study=STUDY)


def test_unknown_prompt_or_variant_is_a_clear_error(videos: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no videos for prompt\(s\) \['p9'\]"):
        gifs.gif_grid(videos, tmp_path, prompts=["p9"], tile=TILE, study=STUDY)
    with pytest.raises(ValueError, match=r"variant\(s\) \['rot'\]"):
        gifs.gif_grid(videos, tmp_path, variants=["rot"], tile=TILE, study=STUDY)


def test_study_order_is_read_from_the_study_folder_when_not_given(
    videos: pd.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="study.json"):
        gifs.gif_grid(videos, tmp_path, tile=TILE)


def test_wrap_text_fits_the_width_and_marks_a_cut() -> None:
    font = gifs.load_font(12)
    lines = gifs.wrap_text("a fairly long prompt about a dog chasing a red ball in the park", font, 80, 2)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 80 for line in lines)
    assert gifs.wrap_text("supercalifragilistic", font, 30, 9) == [
        line for line in gifs.wrap_text("supercalifragilistic", font, 30, 9) if font.getlength(line) <= 30
    ]
    assert "".join(gifs.wrap_text("supercalifragilistic", font, 30, 9)) == "supercalifragilistic"


def test_wrap_text_splits_long_variant_names_after_a_hyphen() -> None:
    font = gifs.load_font(12)
    width = int(font.getlength("combined-plane-at"))
    lines = gifs.wrap_text("combined-plane-attention", font, width, 2)
    assert lines == ["combined-plane-", "attention"]


def test_the_one_gif_writer_keeps_still_frames_and_shares_a_palette(tmp_path: Path) -> None:
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    frames[:, :, :4] = (200, 30, 30)  # a still video: every frame equal
    path = gifs.write_gif(frames, tmp_path / "still.gif", fps=8.0)
    with Image.open(path) as image:
        assert image.n_frames == 4  # Pillow would merge equal neighbours into one frame
        decoded = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)]
    assert all(np.array_equal(f, frames[0]) for f in decoded)
    with pytest.raises(gifs.GridError, match="fps"):
        gifs.write_gif(frames, tmp_path / "fast.gif", fps=100.0)
