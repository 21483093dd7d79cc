"""spliter.data.shapes: a deterministic captioned dataset of moving coloured shapes, written as real mp4s."""

import csv
from pathlib import Path

import numpy as np
import pytest

from spliter.data.datasets import read_folder
from spliter.data.shapes import (
    BACKGROUNDS,
    MOTIONS,
    SHAPES,
    START_BOX,
    plan_clip,
    render_clip,
    write_shapes_dataset,
)
from spliter.data.video import read_video


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_videos=50, frames=16, size=64, fps=8.0, seed=0)


def rows(root: Path) -> list[dict[str, str]]:
    with open(root / "captions.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def saturated(frame: np.ndarray) -> np.ndarray:
    """Pixels far from grey: the shape (backgrounds have R = G = B)."""
    return (frame.max(axis=-1).astype(int) - frame.min(axis=-1)) > 80


def colour_mass(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: centroid (x, y) and area of the saturated pixels (backgrounds are grey, shapes are not)."""
    mask = saturated(frames)
    y, x = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    area = mask.sum(axis=(1, 2))
    centroid = np.stack([(mask * x).sum(axis=(1, 2)) / area, (mask * y).sum(axis=(1, 2)) / area], axis=1)
    return centroid, area


def test_dataset_reads_back_with_read_folder(dataset: Path) -> None:
    listing = read_folder(dataset)
    assert len(listing.videos) == 50 and listing.problems == []
    assert list(rows(dataset)[0]) == ["video_id", "caption", "motion", "shape", "color", "background"]
    clip = read_video(listing.videos[0].path)
    assert clip.frames.shape == (16, 64, 64, 3) and clip.fps == pytest.approx(8.0)


def test_same_seed_gives_identical_captions_and_frames(dataset: Path, tmp_path: Path) -> None:
    again = write_shapes_dataset(tmp_path / "again", n_videos=9, seed=0)  # also: a prefix of the 50
    assert rows(again) == rows(dataset)[:9]
    for name in ("shape00000.mp4", "shape00007.mp4"):
        np.testing.assert_array_equal(
            read_video(again / "videos" / name).frames, read_video(dataset / "videos" / name).frames
        )
    other = write_shapes_dataset(tmp_path / "other", n_videos=9, seed=1)
    assert [r["caption"] for r in rows(other)] != [r["caption"] for r in rows(again)]


def test_every_clip_changes_over_time(dataset: Path) -> None:
    for row in rows(dataset)[:18]:
        frames = read_video(dataset / "videos" / f"{row['video_id']}.mp4").frames.astype(int)
        change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
        assert (change > 0.05).all(), f"{row['video_id']} ({row['caption']}) has a still step"


def test_motion_matches_the_caption(dataset: Path) -> None:
    checked = set()
    for row in rows(dataset)[:18]:
        frames = read_video(dataset / "videos" / f"{row['video_id']}.mp4").frames
        centroid, area = colour_mass(frames)
        x, y = centroid.T
        first, last = slice(0, 3), slice(-3, None)
        moved = {"x": x[last].mean() - x[first].mean(), "y": y[last].mean() - y[first].mean()}
        motion = row["motion"]
        far = 0.2 * 64  # TRAVEL is 0.3 of the frame; the first and last three frames are averaged
        expected = {
            "left_to_right": moved["x"] > far, "right_to_left": moved["x"] < -far,
            "up": moved["y"] < -far, "down": moved["y"] > far,
            "diagonal": abs(moved["x"]) > far and abs(moved["y"]) > far,
            "grow": area[-1] > 2.5 * area[0], "shrink": area[0] > 2.5 * area[-1],
            "rotate": abs(moved["x"]) < 2 and abs(moved["y"]) < 2,
            "color_change": abs(moved["x"]) < 2 and abs(moved["y"]) < 2,
        }[motion]  # fmt: skip
        assert expected, f"{row['video_id']}: '{row['caption']}' but moved {moved}, area {area[0]}->{area[-1]}"
        checked.add(motion)
    assert checked == set(MOTIONS)


def test_the_first_frame_does_not_tell_the_direction() -> None:
    # From the same generator state, opposite motions draw the same shape at the same place: only the caption
    # (and the later frames) say which way it goes, so a text-blind model cannot know the direction.
    background = np.full((64, 64), 128.0)
    for pair in (("left_to_right", "right_to_left"), ("up", "down"), ("grow", "shrink")):
        clips = [plan_clip(motion, 8, 64, np.random.default_rng([3, 7])) for motion in pair]
        first, other = (render_clip(clip, background) for clip in clips)
        np.testing.assert_array_equal(first[0], other[0])
        assert np.abs(first[-1].astype(int) - other[-1]).mean() > 1.0, pair
        assert clips[0].caption != clips[1].caption
    starts = [plan_clip(m, 8, 64, np.random.default_rng([0, i])).centre[0] for i in range(40) for m in ("up", "down")]
    assert np.all((np.asarray(starts) >= START_BOX[0] * 64) & (np.asarray(starts) <= START_BOX[1] * 64))


def test_motions_and_backgrounds_can_be_restricted(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path, n_videos=6, frames=4, size=32, motions=("up", "down"), backgrounds=("plain",))
    table = rows(root)
    assert [r["motion"] for r in table] == ["up", "down"] * 3 and {r["background"] for r in table} == {"plain"}
    with pytest.raises(ValueError, match="unknown motions"):
        write_shapes_dataset(tmp_path / "bad", n_videos=1, motions=("sideways",))
    with pytest.raises(ValueError, match="non-empty"):
        write_shapes_dataset(tmp_path / "bad", n_videos=1, backgrounds="plain")


def test_rotation_and_colour_change_are_visible(dataset: Path) -> None:
    by_motion = {r["motion"]: r for r in rows(dataset)}
    rotating = read_video(dataset / "videos" / f"{by_motion['rotate']['video_id']}.mp4").frames
    assert (saturated(rotating[0]) != saturated(rotating[-1])).mean() > 0.01  # silhouette turned
    recolour = read_video(dataset / "videos" / f"{by_motion['color_change']['video_id']}.mp4").frames
    mask = saturated(recolour[0]) & saturated(recolour[-1])
    assert np.abs(recolour[0][mask].astype(int) - recolour[-1][mask]).mean() > 40


def test_captions_cover_every_motion_shape_and_background(dataset: Path) -> None:
    table = rows(dataset)
    assert {r["motion"] for r in table} == set(MOTIONS)
    assert {r["shape"] for r in table} == set(SHAPES)
    assert {r["background"] for r in table} == set(BACKGROUNDS)
    phrases = {
        "left_to_right": "moves from left to right", "right_to_left": "moves from right to left",
        "up": "moves up", "down": "moves down", "diagonal": "moves diagonally", "grow": "grows",
        "shrink": "shrinks", "rotate": "rotates", "color_change": "changes color from",
    }  # fmt: skip
    for r in table:
        assert phrases[r["motion"]] in r["caption"], r
        assert r["shape"] in r["caption"] and f"{BACKGROUNDS[r['background']]} background" in r["caption"], r
        assert r["color"].split(" to ")[0] in r["caption"], r


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_shapes_dataset(tmp_path, n_videos=1, size=63)
    with pytest.raises(ValueError, match="frames"):
        write_shapes_dataset(tmp_path, n_videos=1, frames=1)
