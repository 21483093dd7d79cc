"""The GIF grid with real-video prompts: the true video is the first column; tiles keep each video's motion."""

from pathlib import Path

import numpy as np
import pandas as pd

from reports.gifs import TRUTH_COLUMN, gif_grid, grid_margins, select_cells, write_gif

TILE, SIZE, FRAMES = 32, 32, 6


def square(frames: int, step: int) -> np.ndarray:
    """A white square on grey that moves `step` px right per frame (0: frozen)."""
    video = np.full((frames, SIZE, SIZE, 3), 90, dtype=np.uint8)
    for k in range(frames):
        video[k, 12:20, 4 + k * step: 12 + k * step] = 255
    return video


def study_with_truth(root: Path) -> tuple[pd.DataFrame, dict]:
    rows = []
    write_gif(square(FRAMES, 3), root / "truth.gif", 4.0)
    for variant, step in (("static", 0), ("trained", 3)):
        write_gif(square(FRAMES, step), root / f"{variant}.gif", 4.0)
        rows.append({"variant": variant, "seed": 0, "prompt_id": "p0", "prompt": "a square moves right",
                     "sample_idx": 0, "gen_seed": 7, "gif": f"{variant}.gif", "truth_gif": "truth.gif", "fps": 4.0})
    return pd.DataFrame(rows), {"seeds": [0], "variant_order": ["static", "trained"], "baselines": ["static"]}


def tile_at(frame, column: int) -> np.ndarray:
    left, top = grid_margins(TILE)
    x = left + column * TILE
    return np.asarray(frame.convert("RGB"))[top:top + TILE, x:x + TILE].astype(float)


def test_the_true_video_is_the_first_column(tmp_path):
    videos, study = study_with_truth(tmp_path)
    rows, columns, cells = select_cells(videos, study, None, None)
    assert columns == [TRUTH_COLUMN, "static", "trained"]
    assert cells["p0", TRUTH_COLUMN].gif == Path("truth.gif")


def test_static_tiles_are_frozen_moving_tiles_move_and_tiles_are_pictures(tmp_path):
    videos, study = study_with_truth(tmp_path)
    frames = gif_grid(videos, tmp_path, tile=TILE, study=study)
    assert len(frames) == FRAMES
    first, last = frames[0], frames[-1]
    assert np.array_equal(tile_at(first, 1), tile_at(last, 1))  # static
    for column in (0, 2):  # truth and trained move
        assert np.abs(tile_at(first, column) - tile_at(last, column)).mean() > 5
    for column in range(3):
        gray = tile_at(last, column).mean(axis=-1)
        assert np.corrcoef(gray[:, :-1].ravel(), gray[:, 1:].ravel())[0, 1] > 0.8


def test_without_true_videos_there_is_no_truth_column(tmp_path):
    videos, study = study_with_truth(tmp_path)
    rows, columns, cells = select_cells(videos.drop(columns="truth_gif"), study, None, None)
    assert columns == ["static", "trained"]
    rows, columns, cells = select_cells(videos.assign(truth_gif=None), study, None, None)
    assert columns == ["static", "trained"]
