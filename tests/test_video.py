"""spliter.data.video: decoding with real timestamps, sampling, crop/resize, atomic writers, typed errors."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from reports.gifs import write_gif
from spliter.data.video import (
    EmptyVideoFile,
    NoVideoStream,
    StillImage,
    TooFewFrames,
    TruncatedVideo,
    UnreadableCodec,
    VideoClip,
    VideoError,
    VideoNotFound,
    center_crop_square,
    read_video,
    resize_frames,
    sample_clip,
    write_mp4,
)

FPS = 12.0


def moving_square(frames: int = 24, height: int = 48, width: int = 64) -> np.ndarray:
    """A bright square sliding right by 2 px per frame over a dark gradient: every frame differs."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[..., 2] = np.linspace(20, 80, width, dtype=np.uint8)
    for k in range(frames):
        video[k, 16:32, 2 * k : 2 * k + 12] = (230, 200, 40)
    return video


def audio_only_file(path: Path) -> Path:
    """An mp4 container with one AAC stream and no video."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 16000
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    return path


@pytest.fixture
def mp4(tmp_path: Path) -> Path:
    return write_mp4(moving_square(), tmp_path / "clip.mp4", FPS)


def test_mp4_round_trip_keeps_count_size_timing_and_content(mp4: Path) -> None:
    source = moving_square()
    clip = read_video(mp4)
    assert clip.frames.shape == source.shape and clip.frames.dtype == np.uint8
    np.testing.assert_allclose(clip.times, np.arange(len(source)) / FPS, atol=1e-6)
    assert clip.fps == pytest.approx(FPS)
    assert clip.path == mp4
    assert np.abs(clip.frames.astype(int) - source).mean() < 4  # lossy but close (crf 18)


def test_gif_round_trip_keeps_duplicate_frames_and_timing(tmp_path: Path) -> None:
    source = moving_square(frames=10)
    source[4] = source[3]  # Pillow merges identical neighbours unless write_gif prevents it
    source[5] = source[3]
    clip = read_video(write_gif(source, tmp_path / "clip.gif", fps=8.0))
    assert clip.frames.shape == source.shape
    np.testing.assert_allclose(clip.times, np.arange(10) / 8.0, atol=0.0051)  # centisecond delays
    np.testing.assert_array_equal(clip.frames[4], clip.frames[3])
    assert np.abs(clip.frames.astype(int) - source).max() <= 8  # only palette quantisation


def test_writers_are_atomic_and_refuse_bad_input(tmp_path: Path) -> None:
    target = tmp_path / "out" / "v.mp4"
    write_mp4(moving_square(frames=3), target, 4.0)
    write_mp4(moving_square(frames=5), target, 4.0)  # replaces in place
    assert len(read_video(target)) == 5
    assert sorted(p.name for p in target.parent.iterdir()) == ["v.mp4"]  # no temporary files left
    with pytest.raises(ValueError, match="even"):
        write_mp4(moving_square(frames=3, height=47), tmp_path / "odd.mp4", 4.0)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(moving_square().astype(np.float32), tmp_path / "f.mp4", 4.0)
    with pytest.raises(ValueError, match="fps"):
        write_gif(moving_square(frames=3), tmp_path / "fast.gif", fps=100.0)
    assert not (tmp_path / "odd.mp4").exists() and not (tmp_path / "fast.gif").exists()


def test_fractional_fps_round_trips(tmp_path: Path) -> None:
    clip = read_video(write_mp4(moving_square(frames=10), tmp_path / "ntsc.mp4", 30000 / 1001))
    np.testing.assert_allclose(clip.times, np.arange(10) * 1001 / 30000, atol=1e-6)


def test_read_window_is_frame_exact_and_max_frames_caps(mp4: Path) -> None:
    full = read_video(mp4)
    part = read_video(mp4, start_s=0.5, end_s=1.5)
    keep = (full.times >= 0.5 - 1e-9) & (full.times < 1.5 - 1e-9)
    np.testing.assert_array_equal(part.times, full.times[keep])
    np.testing.assert_array_equal(part.frames, full.frames[keep])
    assert len(read_video(mp4, max_frames=5)) == 5
    with pytest.raises(TooFewFrames, match="clip.mp4"):
        read_video(mp4, start_s=10.0)


def test_seek_past_a_keyframe_drops_exactly_the_earlier_frames(msrvtt31: Path) -> None:
    # These clips have keyframes at 0 s and 4 s, so start_s=4.3 seeks to 4 s and must drop one frame.
    path = msrvtt31 / "videos" / "video7212.mp4"
    full = read_video(path)
    part = read_video(path, start_s=4.3)
    np.testing.assert_array_equal(part.times, full.times[13:])
    np.testing.assert_array_equal(part.frames, full.frames[13:])


def test_sample_by_fps_takes_the_frame_shown_at_each_tick(mp4: Path) -> None:
    clip = read_video(mp4)  # 24 frames at 12 fps
    slow = sample_clip(clip, fps=4.0)
    np.testing.assert_allclose(slow.times, np.arange(8) / 4.0)
    np.testing.assert_array_equal(slow.frames, clip.frames[::3])
    assert slow.fps == 4.0
    odd = sample_clip(clip, fps=5.0)  # ticks 0.2, 0.4 fall between source frames: take the one before
    np.testing.assert_array_equal(odd.frames[1], clip.frames[2])  # 0.2 s -> frame at 2/12 s
    np.testing.assert_array_equal(odd.frames[2], clip.frames[4])  # 0.4 s -> frame at 4/12 s


def test_sample_by_count_and_window(mp4: Path) -> None:
    clip = read_video(mp4)
    first = sample_clip(clip, n_frames=5, fps=6.0)
    np.testing.assert_array_equal(first.frames, clip.frames[0:10:2])
    spread = sample_clip(clip, n_frames=3)  # no fps: evenly spaced, first and last included
    np.testing.assert_array_equal(spread.times, clip.times[[0, 12, 23]])
    assert spread.fps == pytest.approx(2 / clip.times[23])
    window = sample_clip(clip, start_s=0.5, end_s=1.0)
    assert window.times[0] == pytest.approx(0.5) and window.times[-1] < 1.0 and len(window) == 6
    with pytest.raises(TooFewFrames, match="clip.mp4.*30 requested"):
        sample_clip(clip, n_frames=30)
    with pytest.raises(TooFewFrames, match="clip.mp4"):
        sample_clip(clip, n_frames=10, fps=6.0, start_s=1.0)
    with pytest.raises(TooFewFrames, match="window"):
        sample_clip(clip, start_s=5.0)


def test_center_crop_and_resize() -> None:
    frames = np.zeros((2, 224, 300, 3), np.uint8)
    frames[:, 56:168, 94:206] = 255  # the central 112x112 square
    assert center_crop_square(frames).shape == (2, 224, 224, 3)
    quarter = center_crop_square(frames, fraction=0.5)  # prior art: side min(w, h)//2
    assert quarter.shape == (2, 112, 112, 3) and quarter.min() == 255
    small = resize_frames(quarter, 64)
    assert small.shape == (2, 64, 64, 3) and small.dtype == np.uint8 and small.min() == 255
    assert resize_frames(frames, 32).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError):
        center_crop_square(frames, fraction=0.0)


def rotated_mp4(path: Path, degrees: int, frames: np.ndarray) -> Path:
    """An mp4 whose display matrix says: turn the stored frames `degrees` counter-clockwise to show them."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.set_display_rotation(degrees)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def _corner_block(frames: int = 4, height: int = 32, width: int = 64) -> np.ndarray:
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[:, :8, :8] = 255  # a white block in the top-left corner of the stored frame
    return video


def _block_centre(frame: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(frame[..., 0] > 128)
    return float(rows.mean()), float(cols.mean())


@pytest.mark.parametrize(
    ("degrees", "rotation", "centre"),
    [(90, 90, (60, 4)), (-90, 270, (4, 28)), (180, 180, (28, 60))],  # counter-clockwise: top-left -> bottom-left
)
def test_rotation_metadata_is_applied_so_frames_are_upright(
    tmp_path: Path, degrees: int, rotation: int, centre: tuple[int, int]
) -> None:
    path = rotated_mp4(tmp_path / "phone.mp4", degrees, _corner_block())
    clip = read_video(path)
    assert clip.rotation == rotation
    assert clip.frames.shape[1:3] == ((32, 64) if rotation == 180 else (64, 32))
    assert _block_centre(clip.frames[0]) == pytest.approx(centre, abs=1.5)
    assert sample_clip(clip, n_frames=2).rotation == rotation
    raw = read_video(path, autorotate=False)  # as stored
    assert raw.rotation == 0 and raw.frames.shape[1:3] == (32, 64)
    assert _block_centre(raw.frames[0]) == pytest.approx((3.5, 3.5), abs=1.5)
    assert read_video(write_mp4(_corner_block(), tmp_path / "plain.mp4", FPS)).rotation == 0


def test_a_still_image_renamed_mp4_is_refused_by_name(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(moving_square(frames=1)[0]).save(tmp_path / "photo.mp4", format="PNG")
    with pytest.raises(StillImage, match=r"photo.mp4: a still image \(png\), not a video"):
        read_video(tmp_path / "photo.mp4")


def _write_moov_at_end_mp4(path: Path) -> None:
    """An mp4 with its index after the data (the default layout): cut short, it has no index at all."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in moving_square():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _halve(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"half-{path.name}")
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_truncated_files_raise_truncated_video(mp4: Path, tmp_path: Path) -> None:
    with pytest.raises(TruncatedVideo, match="half-clip.mp4"):  # index first: data ends mid-stream
        read_video(_halve(mp4))
    _write_moov_at_end_mp4(tmp_path / "late.mp4")
    with pytest.raises(TruncatedVideo, match="half-late.mp4.*incomplete"):
        read_video(_halve(tmp_path / "late.mp4"))


def test_missing_empty_garbage_and_audio_only_files(tmp_path: Path) -> None:
    with pytest.raises(VideoNotFound, match="nope.mp4") as missing:
        read_video(tmp_path / "nope.mp4")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, ValueError)
    with pytest.raises(VideoNotFound, match="not a regular file"):
        read_video(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(EmptyVideoFile, match="empty.mp4.*0 bytes"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UnreadableCodec, match="noise.mp4"):
        read_video(tmp_path / "noise.mp4")
    with pytest.raises(NoVideoStream, match="speech.m4a.*audio"):
        read_video(audio_only_file(tmp_path / "speech.m4a"))
    assert all(issubclass(e, VideoError) for e in (TruncatedVideo, TooFewFrames, UnreadableCodec))


def test_video_clip_validates_shapes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        VideoClip(np.zeros((2, 4, 4), np.uint8), np.zeros(2), 1.0, Path("x.mp4"))
    with pytest.raises(ValueError, match="times"):
        VideoClip(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3), 1.0, Path("x.mp4"))


def test_the_31_shared_msrvtt_clips_decode_to_16_frames_at_3_fps_112px(msrvtt31: Path) -> None:
    paths = sorted((msrvtt31 / "videos").glob("*.mp4"))
    assert len(paths) == 31
    for path in paths:
        clip = sample_clip(read_video(path), n_frames=16, fps=3.0)
        assert clip.frames.shape == (16, 112, 112, 3), path.name
        assert clip.fps == 3.0
        np.testing.assert_allclose(clip.times, np.arange(16) / 3.0, atol=1e-6)
        assert clip.frames.std() > 5, f"{path.name} decodes to a flat image"


def test_write_mp4_is_byte_identical_for_the_same_frames(tmp_path):
    """Datasets are rendered to mp4 by the harness; the same frames must give the same file, every time.

    x264's lookahead made small clips (32-64 px, the sizes the CPU studies use) come out differently from
    call to call within one process, depending on what else had been allocated; the study's embeddings
    then moved by up to 0.01. Heap churn between the writes makes that show up here.
    """
    rng = np.random.default_rng(0)
    for size in (32, 64):
        for clip in range(4):
            frames = moving_square(frames=8, height=size, width=size)
            frames = np.clip(frames.astype(int) + rng.integers(-20, 20, size=frames.shape), 0, 255).astype(np.uint8)
            first = write_mp4(frames, tmp_path / "a.mp4", fps=8.0).read_bytes()
            for i in range(6):
                churn = [np.empty(1000 * (i + 1) * (k + 1)) for k in range(5)]
                again = write_mp4(frames, tmp_path / f"b{i}.mp4", fps=8.0).read_bytes()
                assert again == first, f"{size} px clip {clip}: write {i + 1} differs from the first"
                del churn
