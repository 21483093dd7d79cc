"""FVD: protocol names, preprocessing, both public weight formats, scoring and the reference cache."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from metrics.frechet import FeatureStats, frechet_distance
from metrics.fvd import (
    FVDProtocol,
    FVDScorer,
    I3DFeatureExtractor,
    I3DWeightsError,
    I3DWeightsNotFound,
    VideoSetError,
    check_video_set,
    is_torchscript,
    preprocess_videos,
    short_side_size,
)
from metrics.i3d import random_i3d, save_state_dict, save_styleganv_torchscript

# Tiny protocols: 8 frames at 32 px keep a CPU forward pass around 0.1 s per video.
TINY = FVDProtocol(weights="videogpt", frames=8, resolution=32)
TINY_SGV = dataclasses.replace(TINY, weights="styleganv")


def videos(seed: int, n: int = 3, frames: int = 8, size: int = 32, width: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, frames, size, width or size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """One random I3D saved in both public formats (state dict and StyleGAN-V TorchScript)."""
    root = tmp_path_factory.mktemp("weights")
    model = random_i3d(seed=7)
    return {
        "model": model,
        "videogpt": save_state_dict(model, root / "i3d_pretrained_400.pt"),
        "styleganv": save_styleganv_torchscript(model, root / "i3d_torchscript.pt", size=32),
    }


@pytest.fixture(scope="module")
def scorer(weight_files) -> FVDScorer:
    return FVDScorer(I3DFeatureExtractor.from_file(weight_files["videogpt"], TINY, batch_size=4), TINY)


def test_default_metric_name_carries_the_protocol():
    assert FVDProtocol().metric_name == "fvd[i3d-videogpt,16f,stride1,224,squash]"
    assert FVDProtocol(weights="styleganv", resize="short_side_crop").metric_name == (
        "fvd[i3d-styleganv,16f,stride1,224,short_side_crop]"
    )


def test_names_differ_when_any_parameter_differs():
    base = FVDProtocol()
    variants = [
        base,
        dataclasses.replace(base, weights="styleganv"),
        dataclasses.replace(base, frames=10),
        dataclasses.replace(base, resolution=128),
        dataclasses.replace(base, resize="short_side_crop"),
        dataclasses.replace(base, value_range="[0,1]"),
        dataclasses.replace(base, stride=2),
    ]
    assert len({p.metric_name for p in variants}) == len(variants)
    # n_min only moves the reliable flag, never the number
    assert dataclasses.replace(base, n_min=2048).metric_name == base.metric_name


@pytest.mark.parametrize("field, value", [("weights", "tfhub"), ("resize", "pad"), ("value_range", "[0,255]"),
                                          ("frames", 4), ("resolution", 16), ("stride", 0), ("n_min", 1)])
def test_invalid_protocol_fields_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        FVDProtocol(**{field: value})


def test_preprocess_layout_range_and_frame_selection():
    clip = videos(0, n=2, frames=12, size=32)
    x = preprocess_videos(clip, TINY)
    assert x.shape == (2, 3, 8, 32, 32) and x.dtype == torch.float32
    expected = torch.from_numpy(clip[1, 3, 5, 7].astype(np.float32)) / 127.5 - 1  # video 1, frame 3, (5, 7)
    assert torch.allclose(x[1, :, 3, 5, 7], expected)
    changed = clip.copy()
    changed[:, 8:] = 0  # frames past the protocol's 8 never matter
    assert torch.equal(preprocess_videos(changed, TINY), x)
    black_white = np.stack([np.zeros((8, 32, 32, 3), np.uint8), np.full((8, 32, 32, 3), 255, np.uint8)])
    y = preprocess_videos(black_white, TINY)
    assert y[0].eq(-1).all() and y[1].eq(1).all()
    z = preprocess_videos(black_white, dataclasses.replace(TINY, value_range="[0,1]"))
    assert z[0].eq(0).all() and z[1].eq(1).all()


def test_squash_equals_crop_on_square_frames_and_differs_otherwise():
    crop = dataclasses.replace(TINY, resize="short_side_crop")
    square = videos(1, n=2, size=48)
    assert torch.equal(preprocess_videos(square, TINY), preprocess_videos(square, crop))
    wide = np.zeros((1, 8, 32, 64, 3), np.uint8)
    wide[:, :, :, :16] = 255  # a white band on the left quarter: cropped away, squashed in
    assert preprocess_videos(wide, crop).eq(-1).all()
    squashed = preprocess_videos(wide, TINY)
    assert squashed[..., :7].eq(1).all() and squashed[..., 9:].eq(-1).all()


def test_short_side_takes_the_ceiling_like_videogpt():
    assert short_side_size(21, 50, 32) == (32, 77)  # 50 * 32 / 21 = 76.2: VideoGPT's math.ceil, not round
    assert short_side_size(50, 21, 32) == (77, 32)
    assert short_side_size(30, 45, 32) == (32, 48)


def test_stride_takes_every_kth_frame_and_needs_the_span():
    strided = dataclasses.replace(TINY, stride=2)
    assert strided.span == 15 and strided.metric_name == "fvd[i3d-videogpt,8f,stride2,32,squash]"
    clip = videos(3, n=1, frames=16)
    assert torch.equal(preprocess_videos(clip, strided), preprocess_videos(clip[:, ::2], TINY))
    extractor = I3DFeatureExtractor.random(0, strided)
    with pytest.raises(VideoSetError, match="has 12 frames, the protocol needs 15"):
        extractor.features(videos(3, n=1, frames=12))


def test_ddof_follows_the_weights_reference_code(weight_files):
    assert TINY.ddof == 1 and TINY_SGV.ddof == 0
    sgv = FVDScorer(I3DFeatureExtractor.from_file(weight_files["styleganv"], TINY_SGV), TINY_SGV)
    gen, ref = videos(40), sgv.features(videos(41))
    row = sgv.score(gen, ref, n_boot=2)
    assert row["value"] == pytest.approx(frechet_distance(sgv.features(gen), ref, ddof=0), rel=1e-7)
    assert row["value"] != pytest.approx(frechet_distance(sgv.features(gen), ref, ddof=1), rel=1e-3)


def test_the_standard_protocol_is_reliable_from_2048_videos_and_n_min_never_changes_the_name():
    assert FVDProtocol().n_min == 2048
    assert dataclasses.replace(TINY, n_min=10).metric_name == TINY.metric_name


def test_video_set_errors_name_the_video():
    good = list(videos(2, n=3))
    with pytest.raises(VideoSetError, match=r"generated, video 1: has 5 frames.*needs 8"):
        check_video_set([good[0], good[1][:5], good[2]], 8, "generated")
    with pytest.raises(VideoSetError, match=r"one frame size.*32x32.*24x24: videos \[2\]"):
        check_video_set([good[0], good[1], videos(3, n=1, size=24)[0]], 8, "generated")
    with pytest.raises(VideoSetError, match="video 0: expected uint8"):
        check_video_set([good[0].astype(np.float32)], 8, "generated")
    with pytest.raises(VideoSetError, match="empty"):
        check_video_set([], 8, "generated")
    assert check_video_set(good, 8, "generated") == (32, 32)


@pytest.mark.parametrize("weights, filename, source", [
    ("videogpt", "i3d_pretrained_400.pt", "songweige/TATS"),
    ("styleganv", "i3d_torchscript.pt", "dropbox.com"),
])
def test_missing_weights_name_the_file_and_its_source(tmp_path, weights, filename, source):
    protocol = dataclasses.replace(TINY, weights=weights)
    with pytest.raises(I3DWeightsNotFound, match=rf"{filename}.*{source}") as info:
        I3DFeatureExtractor.from_file(tmp_path, protocol)  # a directory: looks for the protocol's file
    assert isinstance(info.value, FileNotFoundError) and str(tmp_path) in str(info.value)


def test_format_detection_and_mismatch(weight_files, tmp_path):
    assert is_torchscript(weight_files["styleganv"]) and not is_torchscript(weight_files["videogpt"])
    with pytest.raises(I3DWeightsError, match="state dict.*styleganv"):
        I3DFeatureExtractor.from_file(weight_files["videogpt"], TINY_SGV)
    with pytest.raises(I3DWeightsError, match="TorchScript.*videogpt"):
        I3DFeatureExtractor.from_file(weight_files["styleganv"], TINY)
    partial = dict(torch.load(weight_files["videogpt"], weights_only=True))
    del partial["logits.conv3d.bias"]
    torch.save(partial, tmp_path / "broken.pt")
    with pytest.raises(I3DWeightsError, match=r"missing \['logits.conv3d.bias'\]"):
        I3DFeatureExtractor.from_file(tmp_path / "broken.pt", TINY)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(I3DWeightsError, match="garbage.pt"):
        I3DFeatureExtractor.from_file(tmp_path / "garbage.pt", TINY)


def test_both_formats_give_the_in_memory_features(weight_files):
    clips = videos(4, n=2, size=24)  # resized up to the protocol's 32 px
    with torch.no_grad():
        expected = weight_files["model"](preprocess_videos(clips, TINY)).double().numpy()
    for protocol in (TINY, TINY_SGV):
        extractor = I3DFeatureExtractor.from_file(weight_files[protocol.weights], protocol, batch_size=2)
        feats = extractor.features(clips)
        assert feats.shape == (2, 400) and feats.dtype == np.float64
        np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
        assert extractor.tag == f"i3d-{protocol.weights}" and len(extractor.weights_id) == 64


def test_batch_size_does_not_change_features(weight_files):
    clips = videos(5, n=2)
    one = I3DFeatureExtractor.from_file(weight_files["videogpt"], TINY, batch_size=1).features(clips)
    two = I3DFeatureExtractor.from_file(weight_files["videogpt"], TINY, batch_size=2).features(clips)
    np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-4)  # float32 kernels vary with batch


def test_fvd_of_a_set_with_itself_is_zero_and_other_sets_are_farther(scorer):
    gen = videos(10)
    gen_feats = scorer.features(gen)
    self_row = scorer.score(gen, gen_feats, n_boot=2)
    assert self_row["value"] < 1e-6 * np.trace(np.cov(gen_feats, rowvar=False))
    # smooth gradients are a different distribution from uniform noise
    ramp = np.broadcast_to(np.linspace(0, 255, 32).astype(np.uint8)[None, None, None, :, None], (3, 8, 32, 32, 3))
    far = np.clip(ramp.astype(int) + np.arange(3)[:, None, None, None, None] * 20, 0, 255).astype(np.uint8)
    near_fvd = frechet_distance(gen_feats, scorer.features(videos(11)))
    assert 0 < near_fvd < frechet_distance(gen_feats, scorer.features(far))


def test_score_row_contents(scorer):
    gen, ref = videos(12), scorer.features(videos(13))
    row = scorer.score(gen, ref, n_boot=4, seed=3)
    assert row["metric"] == "fvd[i3d-videogpt,8f,stride1,32,squash]" == scorer.name
    assert row["level"] == "set" and row["higher_is_better"] is False and row["n"] == 3
    assert row["reliable"] is False  # 4 videos cannot fill a 400-d covariance
    extra = json.loads(row["extra"])
    assert extra["ci_low"] <= extra["ci_high"] and extra["n_boot"] == 4 and extra["n_reference"] == 3
    assert row["value"] == pytest.approx(frechet_distance(scorer.features(gen), ref), rel=1e-7)
    assert extra["protocol"]["frames"] == 8 and extra["weights"] == scorer.extractor.weights_id
    with pytest.raises(VideoSetError, match="at least 2 videos"):
        scorer.score(videos(12, n=1), videos(13), n_boot=2)


def test_random_extractor_is_named_as_random():
    extractor = I3DFeatureExtractor.random(seed=2, protocol=TINY)
    assert FVDScorer(extractor, TINY).name == "fvd[i3d-random2,8f,stride1,32,squash]"
    with pytest.raises(ValueError, match="differs"):
        FVDScorer(extractor, TINY_SGV)


def test_reference_stats_are_cached_by_protocol_weights_and_set(scorer, tmp_path):
    ref = videos(20)
    stats = scorer.reference_stats(ref, tmp_path, {"dataset": "toy", "ids": [0, 1, 2]})
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and stats.n == 3 and not list(tmp_path.glob(".*"))
    # second call reads the cache: the (invalid) source is never touched
    cached = scorer.reference_stats([], tmp_path, {"dataset": "toy", "ids": [0, 1, 2]})
    np.testing.assert_array_equal(cached.mean, stats.mean)
    assert cached.meta["metric"] == scorer.name and cached.meta["set"]["dataset"] == "toy"
    np.testing.assert_allclose(FeatureStats.load(files[0]).cov, np.cov(scorer.features(ref), rowvar=False))
    # from precomputed features, another set identity -> another file
    scorer.reference_stats(np.random.default_rng(0).normal(size=(5, 400)), tmp_path, {"dataset": "toy", "ids": [3, 4, 5]})
    assert len(list(tmp_path.glob("*.npz"))) == 2
    keys = {
        scorer.cache_key(["a"]),
        scorer.cache_key(["b"]),
        FVDScorer(I3DFeatureExtractor.random(0, TINY), TINY).cache_key(["a"]),
        FVDScorer(I3DFeatureExtractor.random(1, TINY), TINY).cache_key(["a"]),
    }
    assert len(keys) == 4
    row = scorer.score(videos(22, n=2), cached, n_boot=2)
    assert json.loads(row["extra"])["n_reference"] == 3


def test_reference_stats_stream_batches_and_equal_the_in_memory_statistics(scorer, tmp_path):
    ref = videos(50, n=6)
    consumed = []

    def batches():
        for start in range(0, 6, 2):
            consumed.append(start)
            yield ref[start : start + 2]

    streamed = scorer.reference_stats(batches(), tmp_path, {"set": "streamed"})
    whole = FeatureStats.from_features(scorer.features(ref))
    assert streamed.n == 6 and consumed == [0, 2, 4]
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-10)
    np.testing.assert_allclose(streamed.cov, whole.cov, rtol=1e-8, atol=1e-12)
    again = scorer.reference_stats(batches(), tmp_path, {"set": "streamed"})  # cached: the generator is not read
    assert consumed == [0, 2, 4] and again.n == 6
    with pytest.raises(VideoSetError, match="batch 0"):
        scorer.accumulate([np.zeros((2, 7))])
    with pytest.raises(VideoSetError, match="at least 2 videos"):
        scorer.accumulate([])


@pytest.mark.slow
def test_standard_protocol_runs_at_224():
    protocol = FVDProtocol()
    scorer = FVDScorer(I3DFeatureExtractor.random(0, protocol, batch_size=2), protocol)
    feats = scorer.features(videos(30, n=2, frames=16, size=64))
    assert feats.shape == (2, 400) and np.isfinite(feats).all()
