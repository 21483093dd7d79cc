"""metrics.paired: per-frame PSNR / SSIM against the true video, their slope, and motion compared with the truth."""

import json
import math

import numpy as np
import pytest

from metrics.clip import EmbeddingError
from metrics.paired import (
    PSNR_CAP,
    change_cosine,
    frame_psnr,
    frame_ssim,
    motion_ratio,
    paired_rows,
    paired_scores,
    slope,
)


def flat(values: list[int], size: int = 16) -> np.ndarray:
    """A video whose frame k is the constant grey level values[k]."""
    return np.stack([np.full((size, size, 3), v, dtype=np.uint8) for v in values])


def test_psnr_matches_a_hand_computation() -> None:
    truth = flat([100, 100, 100])
    generated = flat([100, 110, 130])  # errors 0, 10, 30 on every pixel
    hand = [PSNR_CAP, 10 * math.log10(255**2 / 100), 10 * math.log10(255**2 / 900)]
    np.testing.assert_allclose(frame_psnr(generated, truth), hand, rtol=1e-6)
    # An error on a quarter of the pixels only: MSE = 40² / 4.
    half = truth.copy()
    half[:, :8, :8] += 40
    np.testing.assert_allclose(frame_psnr(half, truth), 10 * math.log10(255**2 / 400), rtol=1e-6)


def test_ssim_matches_a_hand_computation_on_constant_frames() -> None:
    # Constant frames have zero variance, so SSIM reduces to the luminance term (2 mx my + C1) / (mx² + my² + C1).
    truth, generated = flat([100, 100]), flat([100, 160])
    c1 = (0.01 * 255) ** 2
    hand = [1.0, (2 * 100 * 160 + c1) / (100**2 + 160**2 + c1)]
    np.testing.assert_allclose(frame_ssim(generated, truth), hand, rtol=1e-6)


def test_slope_is_the_least_squares_trend_per_frame() -> None:
    assert slope([3.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert slope([1.0, 0.0, 1.0]) == pytest.approx(0.0)
    assert slope([4.0]) == 0.0


def moving_square(shift: int, frames: int = 5, size: int = 24) -> np.ndarray:
    video = np.full((frames, size, size, 3), 50, dtype=np.uint8)
    for k in range(frames):
        x = 8 + shift * k
        video[k, 8:14, x : x + 6] = 220
    return video


def test_change_cosine_and_motion_ratio_compare_the_motion_with_the_truth() -> None:
    truth = moving_square(+2)
    assert change_cosine(truth, truth)[1:] == pytest.approx(np.ones(4))
    frozen = np.repeat(truth[:1], len(truth), axis=0)
    assert np.all(change_cosine(frozen, truth) == 0.0) and motion_ratio(frozen, truth) == 0.0
    # Moving the other way shares only the vacated pixels with the truth: at most half of the change.
    backwards = moving_square(-2)
    assert np.all(change_cosine(backwards, truth)[1:] <= 0.5 + 1e-12)
    assert motion_ratio(moving_square(+1), truth) == pytest.approx(0.5)


def test_scores_skip_the_given_first_frame_and_rows_carry_the_protocol() -> None:
    truth = moving_square(+2, size=16)
    generated = np.repeat(truth[:1], len(truth), axis=0)
    scores = paired_scores(generated, truth)
    assert scores["psnr"][0] == pytest.approx(np.mean(frame_psnr(generated, truth)[1:]))
    assert len(scores["psnr"][1]) == 4
    rows = {row["metric"]: row for row in paired_rows(generated, truth, prompt_id="p", sample_idx=0)}
    assert set(rows) == {f"{base}[16px,frames1+]" for base in scores}
    assert json.loads(rows["psnr[16px,frames1+]"]["extra"])["per_frame"] == pytest.approx(scores["psnr"][1])
    assert json.loads(rows["motion_ratio[16px,frames1+]"]["extra"]) == {"ranked": False}
    assert rows["ssim[16px,frames1+]"]["n"] == 4 and rows["ssim[16px,frames1+]"]["prompt_id"] == "p"


def test_identical_videos_score_finite_maxima() -> None:
    truth = moving_square(+2, size=16)
    scores = paired_scores(truth, truth)
    assert scores["psnr"][0] == PSNR_CAP and scores["ssim"][0] == pytest.approx(1.0)
    assert scores["motion_ratio"][0] == pytest.approx(1.0)


def test_bad_pairs_are_refused_with_a_clear_message() -> None:
    with pytest.raises(EmbeddingError, match="one shape"):
        paired_scores(flat([1, 2]), flat([1, 2, 3]))
    with pytest.raises(EmbeddingError, match="uint8"):
        paired_scores(flat([1, 2]).astype(np.float32), flat([1, 2]))
    with pytest.raises(EmbeddingError, match="does not move"):
        motion_ratio(flat([1, 2]), flat([5, 5]))
    with pytest.raises(EmbeddingError, match="11x11"):
        frame_ssim(flat([1, 2], size=8), flat([1, 2], size=8))


def test_rows_are_named_by_the_protocol_of_the_video() -> None:
    truth = moving_square(+2, size=16)
    rows = paired_rows(truth, truth, protocol=("chain", "start=prior", "split=test"))
    assert {row["metric"] for row in rows} == {f"{base}[16px,frames1+,chain,start=prior,split=test]"
                                               for base in paired_scores(truth, truth)}  # fmt: skip
