"""Video and GIF I/O with PyAV and Pillow: decode to uint8 frames with real timestamps, sample, crop, write.

Timestamps come from each frame's pts × time_base, in seconds, relative to the stream's first frame, so
variable-frame-rate files keep their true timing. Rotation metadata (the stream's display matrix, as phones
write it) is applied, so frames come out upright as players show them; `VideoClip.rotation` says by how much.
Every failure a user can cause is a `VideoError` subclass whose one-line message names the file, the reason,
and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from spliter.atomic import atomic_path

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".gif")
"""Extensions `read_video` is meant for (any container FFmpeg can demux works)."""

# Time comparisons tolerate float rounding of pts × time_base (far below any frame interval).
_EPS = 1e-6
# A GIF stores frame delays in centiseconds, so 50 fps (2 cs per frame) is the fastest it can represent well.


class VideoError(ValueError):
    """A video file cannot be used; the message names the file, the reason and what to do."""


class VideoNotFound(VideoError, FileNotFoundError):
    """The path does not exist or is not a file."""


class EmptyVideoFile(VideoError):
    """The file has zero bytes."""


class TruncatedVideo(VideoError):
    """The container is recognisable but its data ends early or is damaged."""


class NoVideoStream(VideoError):
    """The container holds no video stream (e.g. audio only)."""


class TooFewFrames(VideoError):
    """Fewer frames are available than were asked for."""


class UnreadableCodec(VideoError):
    """FFmpeg cannot demux or decode the file."""


class StillImage(VideoError):
    """The file is a single image (e.g. a PNG renamed .mp4), not a video."""


@dataclass
class VideoClip:
    """Decoded frames with their timestamps.

    frames: uint8 (F, H, W, 3) RGB. times: float64 (F,) seconds on the source's clock (0 = its first frame).
    fps: the mean rate of the frames, (F-1)/(times[-1]-times[0]) (the stream's declared rate for a single
    frame); the target rate after resampling by fps. GIF delays are centiseconds, so a GIF's rate is approximate.
    rotation: degrees counter-clockwise (0, 90, 180 or 270) by which the decoded frames were turned to honour
    the file's rotation metadata (0 when it has none, or when read with autorotate=False).
    """

    frames: np.ndarray
    times: np.ndarray
    fps: float
    path: Path
    rotation: int = 0

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be uint8 (F, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
        if self.times.shape != (len(self.frames),):
            raise ValueError(f"{self.path}: times shape {self.times.shape} does not match {len(self.frames)} frames")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


# ----------------------------------------------------------------------------------------------- reading


def read_video(
    path: str | os.PathLike,
    max_frames: int | None = None,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    autorotate: bool = True,
) -> VideoClip:
    """Decode a video (mp4/webm/avi/mov/mkv/gif) to RGB frames.

    start_s/end_s (seconds on the source clock) bound the decoded window [start_s, end_s): with a start, the
    reader seeks to the keyframe before it and decodes forward, dropping earlier frames, so the result is
    frame-exact. max_frames caps how many frames are decoded (from the window start). autorotate turns the
    frames by the file's rotation metadata (to the nearest quarter turn; flips are not applied).
    """
    path = Path(path)
    _check_file(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"{path}: max_frames must be >= 1, got {max_frames}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ValueError(f"{path}: end_s={end_s} must be greater than start_s={start_s}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise _open_error(path, error) from error
    with container:
        if _is_image_format(container.format.name):
            raise StillImage(
                f"{path}: a still image ({container.format.name.removesuffix('_pipe')}), not a video; "
                "pass a video file or remove this one"
            )
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise NoVideoStream(f"{path}: no video stream (streams found: {kinds}); pass a file that contains video")
        stream = container.streams.video[0]
        nominal = _stream_rate(stream)
        frames, times, rotation = _decode(container, stream, path, nominal, max_frames, start_s, end_s)
    fps = _mean_rate(times) or nominal
    if fps is None:
        raise UnreadableCodec(f"{path}: the stream declares no frame rate and one frame cannot give one")
    quarter_turns = round(rotation / 90) % 4 if autorotate else 0
    if quarter_turns:
        frames = np.ascontiguousarray(np.rot90(frames, k=quarter_turns, axes=(1, 2)))
    return VideoClip(frames=frames, times=times, fps=fps, path=path, rotation=90 * quarter_turns)


def _is_image_format(name: str) -> bool:
    # FFmpeg's single-image demuxers: png_pipe, jpeg_pipe, bmp_pipe, webp_pipe, ... and image2.
    return name.endswith("_pipe") or name == "image2"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoNotFound(f"{path}: video file not found; check the path or the dataset folder")
    if not path.is_file():
        raise VideoNotFound(f"{path}: not a regular file; pass the path of a video file")
    if path.stat().st_size == 0:
        raise EmptyVideoFile(f"{path}: file is empty (0 bytes); re-download or re-export it")


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    nominal: float | None,
    max_frames: int | None,
    start_s: float | None,
    end_s: float | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(frames, times, rotation): rotation is the first frame's display-matrix angle, degrees counter-clockwise."""
    time_base = float(stream.time_base) if stream.time_base else None
    origin_pts = stream.start_time if stream.start_time is not None else None
    if start_s is not None and start_s > 0 and time_base:
        base = origin_pts or 0
        try:
            container.seek(base + int(start_s / time_base), stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            pass  # unseekable input: decode from the start and drop the frames before start_s
        origin_pts = base

    frames: list[np.ndarray] = []
    times: list[float] = []
    rotation = 0.0
    last_time = None
    try:
        for frame in container.decode(stream):
            if frame.pts is not None and time_base:
                if origin_pts is None:
                    origin_pts = frame.pts
                t = float((frame.pts - origin_pts) * stream.time_base)  # exact rational, then float
            else:
                # No pts (rare raw streams): assume a constant rate after the previous frame.
                if nominal is None:
                    raise UnreadableCodec(f"{path}: frames carry no timestamps and the stream no frame rate")
                t = 0.0 if last_time is None else last_time + 1.0 / nominal
            last_time = t
            if start_s is not None and t < start_s - _EPS:
                continue
            if end_s is not None and t >= end_s - _EPS:
                break
            if not frames:
                rotation = float(getattr(frame, "rotation", 0) or 0)
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(t)
            if max_frames is not None and len(frames) >= max_frames:
                break
    except av.error.FFmpegError as error:
        promised = stream.frames or 0
        if frames or promised > len(frames):
            raise TruncatedVideo(
                f"{path}: data ends or is damaged after {len(frames)} frames ({_reason(error)}); "
                "re-download or re-encode the file"
            ) from error
        raise UnreadableCodec(
            f"{path}: cannot decode the {stream.codec_context.name} stream ({_reason(error)}); "
            "re-encode it to H.264 mp4"
        ) from error
    if not frames:
        if stream.frames and start_s is None and end_s is None:
            raise TruncatedVideo(
                f"{path}: header promises {stream.frames} frames but none decode; re-download or re-encode the file"
            )
        window = "" if start_s is None and end_s is None else f" in the window [{start_s}, {end_s}) s"
        raise TooFewFrames(f"{path}: no video frames{window}; pick another file or window")
    return np.stack(frames), np.asarray(times, dtype=np.float64), rotation


def _mean_rate(times: np.ndarray) -> float | None:
    """Frames per second over the span of `times`, or None for fewer than two distinct times."""
    span = float(times[-1] - times[0]) if len(times) else 0.0
    return (len(times) - 1) / span if span > 0 else None


def _stream_rate(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate:
            return float(rate)
    return None


# Magic bytes of containers we read: a file starting with one of these that FFmpeg still cannot open is
# damaged (usually cut short, e.g. an mp4 without its trailing `moov` index), not an unknown format.
def _has_container_signature(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(12)
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")  # mp4 / mov
        or head[:4] == b"\x1a\x45\xdf\xa3"  # matroska / webm (EBML)
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] == b"GIF8"
    )


def _open_error(path: Path, error: av.error.FFmpegError) -> VideoError:
    if isinstance(error, FileNotFoundError):
        return VideoNotFound(f"{path}: video file not found; check the path or the dataset folder")
    if _has_container_signature(path):
        return TruncatedVideo(
            f"{path}: the container header is present but the file is incomplete or damaged ({_reason(error)}); "
            "re-download or re-encode the file"
        )
    return UnreadableCodec(
        f"{path}: not a video format FFmpeg can read ({_reason(error)}); convert it to H.264 mp4"
    )


def _reason(error: av.error.FFmpegError) -> str:
    return getattr(error, "strerror", None) or str(error)


# ---------------------------------------------------------------------------------------------- sampling


def sample_clip(
    clip: VideoClip,
    n_frames: int | None = None,
    fps: float | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> VideoClip:
    """Restrict a clip to [start_s, end_s), then resample and/or take n_frames.

    - fps given: the output clock is t0 + k/fps (t0 = first frame in the window) up to the window's last
      frame; each output frame is the source frame shown at that instant (the nearest at or before it), and
      `times` are those clock ticks, so timing error is below one source frame interval. Asking for more than
      the source rate repeats frames.
    - n_frames with fps: the first n_frames of that clock. n_frames alone: n_frames source frames evenly
      spaced over the window (first and last included), with their source times; `fps` is then their mean rate.
    Raises TooFewFrames (naming the file) when the window holds fewer frames than asked for.
    """
    if n_frames is not None and n_frames < 1:
        raise ValueError(f"{clip.path}: n_frames must be >= 1, got {n_frames}")
    if fps is not None and not fps > 0:
        raise ValueError(f"{clip.path}: fps must be > 0, got {fps}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ValueError(f"{clip.path}: end_s={end_s} must be greater than start_s={start_s}")

    keep = np.ones(len(clip), dtype=bool)
    if start_s is not None:
        keep &= clip.times >= start_s - _EPS
    if end_s is not None:
        keep &= clip.times < end_s - _EPS
    frames, times = clip.frames[keep], clip.times[keep]
    window = "" if start_s is None and end_s is None else f" in the window [{start_s}, {end_s}) s"
    if len(times) == 0:
        raise TooFewFrames(f"{clip.path}: no frames{window}; widen the window or pick another video")
    out_fps = clip.fps

    if fps is not None:
        ticks = times[0] + np.arange(int(np.floor((times[-1] - times[0]) * fps + _EPS)) + 1) / fps
        if n_frames is not None:
            if len(ticks) < n_frames:
                raise TooFewFrames(
                    f"{clip.path}: only {len(ticks)} frames at {fps:g} fps{window} "
                    f"({times[-1] - times[0]:.2f} s), {n_frames} requested; lower n_frames or fps"
                )
            ticks = ticks[:n_frames]
        shown = np.searchsorted(times, ticks + _EPS, side="right") - 1
        frames, times, out_fps = frames[shown], ticks, float(fps)
    elif n_frames is not None:
        if len(times) < n_frames:
            raise TooFewFrames(
                f"{clip.path}: only {len(times)} frames{window}, {n_frames} requested; lower n_frames"
            )
        picked = np.round(np.linspace(0, len(times) - 1, n_frames)).astype(int)
        frames, times = frames[picked], times[picked]
        out_fps = _mean_rate(times) or clip.fps
    return VideoClip(
        frames=np.ascontiguousarray(frames), times=times.astype(np.float64), fps=out_fps, path=clip.path,
        rotation=clip.rotation,
    )


# -------------------------------------------------------------------------------------------- transforms


def center_crop_square(frames: np.ndarray, fraction: float = 1.0) -> np.ndarray:
    """Centre square crop of (..., H, W, C) frames with side int(min(H, W) × fraction).

    fraction=0.5 reproduces the prior art's crop of side min(w, h)//2 (112×112 from 224-px-high clips).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    height, width = frames.shape[-3], frames.shape[-2]
    side = max(1, int(min(height, width) * fraction))
    top, left = (height - side) // 2, (width - side) // 2
    return frames[..., top : top + side, left : left + side, :]


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (F, H, W, 3) frames to (F, size, size, 3) with Pillow bicubic (antialiased when shrinking).

    Non-square input is stretched; crop with center_crop_square first to keep the aspect ratio.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BICUBIC)) for f in frames]
    )


# ----------------------------------------------------------------------------------------------- writing


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float, crf: int = 18) -> Path:
    """Write uint8 (F, H, W, 3) frames as H.264 (libx264, yuv420p) mp4, atomically; returns the path.

    yuv420p (the format every player accepts) needs even width and height, so odd sizes are refused rather
    than padded: reading the file back gives exactly F frames of H×W at times k/fps.
    """
    frames = _check_frames(frames, path)
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(
            f"{path}: H.264 yuv420p needs an even frame size, got {width}x{height}; crop or resize to even"
        )
    rate = _fps_fraction(fps, path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as container:
            # A dataset written twice must decode to the same frames (seeds -> same numbers). Threaded x264
            # output differs between runs on a loaded machine, and x264's lookahead (mb-tree) made small
            # clips differ from call to call even on one thread: both are off.
            options = {"crf": str(crf), "threads": "1", "x264-params": "rc-lookahead=0"}
            stream = container.add_stream("libx264", rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
    return Path(path)


def _check_frames(frames: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{path}: frames must be non-empty uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)


def _fps_fraction(fps: float, path: str | os.PathLike) -> Fraction:
    if not fps > 0:
        raise ValueError(f"{path}: fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)

