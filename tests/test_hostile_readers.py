"""Hostile and odd inputs: a catalogue of bad and odd-but-valid files, built here, through the readers and decoder.

Good files (odd but valid) decode; every bad one is either reported by the folder reader in `.problems` or
raises a VideoError whose first line starts with the file's path, written verbatim (markup characters and
unicode included). The catalogue is tiny (32 px, a few frames) so the module runs in seconds.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_video import audio_only_file, rotated_mp4

from reports.gifs import write_gif
from spliter.data.datasets import DatasetError, read_folder
from spliter.data.video import (
    EmptyVideoFile,
    NoVideoStream,
    StillImage,
    TooFewFrames,
    TruncatedVideo,
    UnreadableCodec,
    VideoClip,
    VideoError,
    read_video,
    sample_clip,
    write_mp4,
)

FRAMES, FPS = 8, 8.0  # what the decoder is asked for: 8 frames at 8 fps (0.875 s of video)
MARKUP = "clip[red]x[bold]y"
UNICODE = "vidéo_日本語"


def frames(count: int = 12, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (count, height, width, 3), dtype=np.uint8)


def encoded(path: Path, video: np.ndarray, codec: str, container: str, pix_fmt: str, fmt: str = "rgb24") -> Path:
    """Frames through any PyAV encoder (for sizes and formats write_mp4 refuses on purpose)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(int(FPS)))
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], pix_fmt
        for frame in video:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=fmt)))
        out.mux(stream.encode())
    return path


def corrupted_mid_stream(path: Path) -> Path:
    data = bytearray(write_mp4(frames(24), path, FPS).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(1).bytes(2000)
    path.write_bytes(bytes(data))
    return path


# name -> (how to make it in videos/, the verdict: None = decodes, else the VideoError class)
def _catalogue(videos: Path) -> dict[str, type[VideoError] | None]:
    good = write_mp4(frames(), videos / "good.mp4", FPS)
    write_mp4(frames(), videos / "twin.mp4", FPS)
    write_mp4(frames(), videos / "twin.webm", FPS)  # same stem: reported, never read
    write_mp4(frames(), videos / "unlisted.mp4", FPS)  # no row: reported, never read
    (videos / "zero_byte.mp4").write_bytes(b"")
    (videos / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (videos / "garbage.mp4").write_bytes(np.random.default_rng(2).bytes(3000))
    (videos / f"{MARKUP}.mp4").write_bytes(np.random.default_rng(3).bytes(3000))
    audio_only_file(videos / "audio_only.mp4")
    write_mp4(frames(1), videos / "one_frame.mp4", FPS)
    write_mp4(frames(2), videos / "short_0.2s.mp4", 10.0)  # two frames at 10 fps: 0.2 s
    Image.fromarray(frames(1)[0]).save(videos / "png_renamed.mp4", format="PNG")
    corrupted_mid_stream(videos / "mid_corrupt.mp4")
    write_mp4(frames(height=64, width=32), videos / "portrait.mp4", FPS)
    gray = np.random.default_rng(4).integers(0, 255, (12, 32, 32), dtype=np.uint8)
    encoded(videos / "grayscale.mkv", gray, "ffv1", "matroska", "gray", fmt="gray")
    rotated_mp4(videos / "rotated.mp4", -90, frames(height=32, width=64))
    encoded(videos / "odd_65x63.mp4", frames(height=63, width=65), "libx264", "mp4", "yuv444p")
    write_mp4(frames(), videos / f"{UNICODE}.mp4", FPS)
    write_gif(frames(), videos / "anim.gif", FPS)
    encoded(videos / "vp9.webm", frames(), "libvpx-vp9", "webm", "yuv420p")
    return {
        "good": None, "twin": None, "portrait": None, "grayscale": None, "rotated": None, "odd_65x63": None,
        UNICODE: None, "anim": None, "vp9": None,
        "zero_byte": EmptyVideoFile, "truncated": TruncatedVideo, "garbage": UnreadableCodec,
        MARKUP: UnreadableCodec, "audio_only": NoVideoStream, "one_frame": TooFewFrames,
        "short_0.2s": TooFewFrames, "png_renamed": StillImage, "mid_corrupt": TruncatedVideo,
    }  # fmt: skip


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, type[VideoError] | None]]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "videos").mkdir()
    verdicts = _catalogue(root / "videos")
    rows = [f"{name},a caption for {name}" for name in verdicts] + ["missing,a video that is not there"]
    (root / "captions.csv").write_text("video_id,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root, verdicts


def decode(path: Path) -> VideoClip:
    """What the encode stage asks of a file: FRAMES frames at FPS."""
    return sample_clip(read_video(path), n_frames=FRAMES, fps=FPS)


def test_the_reader_lists_every_captioned_file_and_reports_the_rest_by_name(catalogue) -> None:
    root, verdicts = catalogue
    listing = read_folder(root)
    assert [v.video_id for v in listing.videos] == list(verdicts)  # the reader lists; decoding judges content
    assert listing.videos[list(verdicts).index(MARKUP)].path.name == f"{MARKUP}.mp4"
    assert listing.videos[list(verdicts).index(UNICODE)].path.name == f"{UNICODE}.mp4"
    problems = dict(listing.problems)
    assert set(problems) == {"missing", "twin.webm", "unlisted.mp4"}
    assert "no video file missing{" in problems["missing"]
    assert "same name stem as" in problems["twin.webm"] and str(root / "videos" / "twin.mp4") in problems["twin.webm"]
    assert str(root / "videos" / "unlisted.mp4") in problems["unlisted.mp4"] and "captions.csv" in problems["unlisted.mp4"]


def test_odd_but_valid_files_decode(catalogue) -> None:
    root, verdicts = catalogue
    shapes = {}
    for video in read_folder(root).videos:
        if verdicts[video.video_id] is None:
            clip = decode(video.path)
            assert clip.frames.shape[0] == FRAMES and clip.frames.dtype == np.uint8, video.video_id
            shapes[video.video_id] = clip.frames.shape[1:3]
    assert shapes["portrait"] == (64, 32)
    assert shapes["odd_65x63"] == (63, 65)
    assert shapes["rotated"] == (64, 32)  # stored 32x64 with a quarter-turn in its metadata: turned upright
    assert read_video(root / "videos" / "rotated.mp4").rotation == 270
    gray = decode(root / "videos" / "grayscale.mkv").frames
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_every_bad_file_raises_its_kind_with_the_path_first(catalogue) -> None:
    root, verdicts = catalogue
    seen = set()
    for video in read_folder(root).videos:
        kind = verdicts[video.video_id]
        if kind is None:
            continue
        with pytest.raises(VideoError) as error:
            decode(video.path)
        assert type(error.value) is kind, f"{video.path.name}: {type(error.value).__name__}: {error.value}"
        first_line = str(error.value).splitlines()[0]
        assert first_line.startswith(f"{video.path}: "), first_line  # verbatim, brackets and unicode included
        seen.add(video.video_id)
    assert len(seen) == 9 and MARKUP in seen


def test_bad_index_files_fail_with_one_message_naming_captions_csv(tmp_path: Path) -> None:
    write_mp4(frames(), tmp_path / "videos" / "a.mp4", FPS)
    captions = tmp_path / "captions.csv"
    cases = {
        "video_id,caption\n": "has a header but no rows",
        "": "the file is empty",
        "id,text\na,hello\n": "missing required column(s) video_id, caption",
    }
    for text, reason in cases.items():
        captions.write_text(text, encoding="utf-8")
        with pytest.raises(DatasetError) as error:
            read_folder(tmp_path)
        assert str(error.value).startswith(f"{captions}: ") and reason in str(error.value)
    captions.write_bytes("video_id,caption\na,le garçon saute\n".encode("latin-1"))
    with pytest.raises(DatasetError) as error:
        read_folder(tmp_path)
    assert str(error.value).startswith(f"{captions}: not valid utf-8 text (byte 0xe7 on line 2)")
    assert "re-save it as UTF-8" in str(error.value)
