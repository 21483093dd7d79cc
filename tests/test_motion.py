"""Motion: zero for a still video, positive and ordered for moving ones."""

import numpy as np
import pytest

from metrics.clip import EmbeddingError
from metrics.motion import embedding_motion, pixel_motion


def test_still_video_has_zero_motion():
    frame = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    assert pixel_motion(np.repeat(frame, 5, axis=0)) == 0.0
    assert embedding_motion(
        np.tile(np.random.default_rng(1).standard_normal(8), (5, 1)) * 3.0
    ) == pytest.approx(0.0, abs=1e-12)


def test_pixel_motion_is_the_mean_absolute_frame_difference():
    frames = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    frames[1] = 255  # 0 -> 255 -> 10: differences 255 and 245, no uint8 wrap-around
    frames[2] = 10
    assert pixel_motion(frames) == pytest.approx(250.0)
    assert pixel_motion(frames, normalise=True) == pytest.approx(250.0 / 255.0)


def test_pixel_motion_grows_with_speed():
    # a smooth horizontal wave: a pan by more pixels changes each pixel by more
    wave = 127.5 + 127.5 * np.sin(2 * np.pi * np.arange(64) / 64)
    texture = np.broadcast_to(wave[None, :, None], (16, 64, 3)).round().astype(np.uint8)

    def pan(speed: int) -> np.ndarray:
        return np.stack([np.roll(texture, speed * t, axis=1) for t in range(6)])

    assert 0 < pixel_motion(pan(1)) < pixel_motion(pan(4))


def test_embedding_motion_is_the_chord_between_consecutive_unit_vectors():
    theta = 0.3
    ts = np.arange(6) * theta
    rotating = np.stack([np.cos(ts), np.sin(ts), np.zeros(6)], axis=1) * 5.0  # scale must not matter
    assert embedding_motion(rotating) == pytest.approx(np.sqrt(2 - 2 * np.cos(theta)), rel=1e-12)
    alternating = np.array([[1.0, 0.0], [0.0, 1.0]] * 3)
    assert embedding_motion(alternating) == pytest.approx(np.sqrt(2.0))


def test_one_frame_and_bad_inputs_raise():
    with pytest.raises(EmbeddingError, match="at least 2 frames"):
        pixel_motion(np.zeros((1, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(EmbeddingError, match="at least 2 frames"):
        embedding_motion(np.ones((1, 4)))
    with pytest.raises(EmbeddingError, match="uint8"):
        pixel_motion(np.zeros((3, 4, 4, 3), dtype=np.float32))
    with pytest.raises(EmbeddingError, match="NaN"):
        embedding_motion(np.array([[1.0, 0.0], [np.nan, 1.0]]))
