"""spliter.backends.pixel: an exactly invertible linear frame embedding, tiny CLIP text, a retrieval prior."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from spliter.backends import Backend, make_backend
from spliter.backends.pixel import PixelLinearBackend, PriorNotFitted, orthonormal_columns

CAPTIONS = [
    "a red circle moves up on a plain background",
    "a red circle moves down on a plain background",
    "a blue square moves from left to right on a gradient background",
]


@pytest.fixture(scope="module")
def backend() -> PixelLinearBackend:
    return PixelLinearBackend(seed=0, device="cpu", resolution=8, text_tokens=16)


def frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3)).astype(np.uint8)


def test_it_is_a_backend_built_by_name() -> None:
    built = make_backend("pixel-linear", device="cpu", resolution=4, text_tokens=8)
    assert isinstance(built, Backend) and built.name == "pixel-linear"
    assert (built.dim, built.text_tokens) == (48, 8)
    assert built.identity()["resolution"] == 4


def test_the_basis_has_orthonormal_columns_and_depends_only_on_the_seed() -> None:
    q = orthonormal_columns(20, 12, seed=3)
    torch.testing.assert_close(q.T @ q, torch.eye(12, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(q, orthonormal_columns(20, 12, seed=3), atol=0, rtol=0)
    assert not torch.allclose(q, orthonormal_columns(20, 12, seed=4))


def test_frames_at_the_backend_resolution_round_trip_exactly(backend: PixelLinearBackend) -> None:
    low = frames(5, 8)
    embeds = backend.encode_frames(low)
    assert embeds.shape == (5, backend.dim) and embeds.dtype == torch.float32
    np.testing.assert_array_equal(backend.decode(embeds, embeds, [0] * 5, 1, 1.0, 8), low)


def test_larger_frames_round_trip_to_within_the_low_resolution_error(backend: PixelLinearBackend) -> None:
    big = frames(3, 32, seed=1)
    decoded = backend.decode(backend.encode_frames(big), torch.zeros(3, backend.dim), [0] * 3, 1, 1.0, 32)
    # The only loss is the 8x8 grid: decode(encode(f)) is the bilinear upsampling of f's 4x4 block means.
    blocks = big.reshape(3, 8, 4, 8, 4, 3).astype(np.float64).mean(axis=(2, 4)) / 255.0
    up = F.interpolate(torch.from_numpy(blocks).permute(0, 3, 1, 2), size=32, mode="bilinear", align_corners=False)
    expected = (up.permute(0, 2, 3, 1).numpy() * 255.0).round()
    assert np.abs(decoded.astype(np.float64) - expected).max() <= 1.0


def test_the_embedding_keeps_low_resolution_distances(backend: PixelLinearBackend) -> None:
    a, b = frames(4, 8, seed=2), frames(4, 8, seed=3)
    distance = torch.linalg.vector_norm(backend.encode_frames(a) - backend.encode_frames(b), dim=1)
    pixels = np.linalg.norm((a.astype(np.float64) - b).reshape(4, -1) / 255.0, axis=1)
    np.testing.assert_allclose(distance.numpy(), pixels, rtol=1e-5)
    mid_grey = np.full((1, 8, 8, 3), 127.5, dtype=np.float64)
    assert float(backend.encode_frames(np.rint(mid_grey).astype(np.uint8)).abs().max()) < 0.01  # grey ~ origin


def test_a_wider_space_still_inverts_and_drops_what_lies_outside_the_map() -> None:
    wide = PixelLinearBackend(seed=1, device="cpu", resolution=4, dim=64, text_tokens=8)
    low = frames(2, 4, seed=4)
    embeds = wide.encode_frames(low)
    np.testing.assert_array_equal(wide.decode(embeds, embeds, [0, 0], 1, 1.0, 4), low)
    outside = torch.randn(64, generator=torch.Generator().manual_seed(0))
    outside -= wide._basis @ (wide._basis.T @ outside)  # the part of a vector no frame can reach
    np.testing.assert_array_equal(wide.decode(embeds + outside, embeds, [0, 0], 1, 1.0, 4), low)


def test_decode_ignores_seeds_steps_and_guidance(backend: PixelLinearBackend) -> None:
    embeds = backend.encode_frames(frames(2, 8, seed=5))
    one = backend.decode(embeds, embeds, [1, 2], 1, 1.0, 16)
    other = backend.decode(embeds, torch.zeros_like(embeds), [7, 9], 50, 7.5, 16)
    assert one.shape == (2, 16, 16, 3) and one.dtype == np.uint8
    np.testing.assert_array_equal(one, other)


def test_text_states_have_the_backend_width_and_tell_captions_apart(backend: PixelLinearBackend) -> None:
    hidden, embed = backend.encode_text(CAPTIONS)
    assert hidden.shape == (3, 16, backend.dim) and embed.shape == (3, backend.dim)
    again, _ = PixelLinearBackend(seed=0, device="cpu", resolution=8, text_tokens=16).encode_text(CAPTIONS)
    torch.testing.assert_close(hidden, again, atol=0, rtol=0)
    assert not torch.allclose(hidden[0], hidden[1])  # "up" and "down" differ


def test_the_prior_returns_a_training_videos_first_frame_for_its_caption(backend: PixelLinearBackend) -> None:
    first = backend.encode_frames(frames(3, 8, seed=6))
    backend.fit_prior(CAPTIONS, first)
    start, negative = backend.prior(CAPTIONS, [0, 1, 2], steps=1, guidance=1.0)
    torch.testing.assert_close(start, first, atol=0, rtol=0)
    assert backend.prior_size == 3 and float(negative.abs().max()) == 0.0


def test_the_seed_chooses_among_identical_captions(backend: PixelLinearBackend) -> None:
    first = backend.encode_frames(frames(2, 8, seed=7))
    backend.fit_prior([CAPTIONS[0], CAPTIONS[0]], first)
    picks = {int(torch.argmin(torch.cdist(backend.prior(CAPTIONS[:1], [s], 1, 1.0)[0], first))) for s in range(20)}
    assert picks == {0, 1}
    a, _ = backend.prior(CAPTIONS[:1], [5], 1, 1.0)
    b, _ = backend.prior(CAPTIONS[:1], [5], 1, 1.0)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_an_unfitted_prior_and_bad_inputs_are_refused() -> None:
    fresh = PixelLinearBackend(seed=0, device="cpu", resolution=4, text_tokens=8)
    with pytest.raises(PriorNotFitted, match="fit_prior"):
        fresh.prior(CAPTIONS[:1], [0], 1, 1.0)
    with pytest.raises(ValueError, match="one first-frame embedding"):
        fresh.fit_prior(CAPTIONS, torch.zeros(2, fresh.dim))
    with pytest.raises(ValueError, match="dim must be"):
        PixelLinearBackend(device="cpu", resolution=4, dim=40)
    with pytest.raises(ValueError, match="uint8"):
        fresh.encode_frames(np.zeros((1, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="smaller than"):
        fresh.encode_frames(np.zeros((1, 2, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        fresh.decode(torch.full((1, fresh.dim), float("nan")), torch.zeros(1, fresh.dim), [0], 1, 1.0, 4)


def test_shapes_encode_into_a_store_whose_frames_decode_back_and_whose_train_captions_retrieve_their_frame(
    tmp_path,
) -> None:
    from spliter.data.datasets import read_folder
    from spliter.data.shapes import write_shapes_dataset
    from spliter.data.store import EmbeddingStore
    from spliter.pipeline import encode_videos, load_frames

    world = PixelLinearBackend(seed=0, device="cpu", resolution=8, text_tokens=16)
    videos = read_folder(write_shapes_dataset(tmp_path / "shapes", n_videos=4, frames=4, size=32,
                                              motions=("up", "down"), backgrounds=("plain",))).videos
    pixels = [load_frames(v, 4, None, 32).frames for v in videos]
    # The encode stage's order: fit the prior on the videos a model may learn from, then encode them.
    world.fit_prior([v.caption for v in videos], world.encode_frames(np.stack([p[0] for p in pixels])))
    encode_videos(videos, world, tmp_path / "store", frames=4, size=32, val_fraction=0.0, progress=False)
    store = EmbeddingStore.open(tmp_path / "store")
    for video, frames_ in zip(videos, pixels, strict=True):
        record = store.get(video.video_id)
        # fp16 storage and the 8x8 grid are the only losses.
        decoded = world.decode(record.frame_embeds, record.frame_embeds, [0] * 4, 1, 1.0, 32)
        assert np.abs(decoded.astype(int) - frames_).mean() < 12
        # Its prior start is the first frame of a video with its caption (itself, or a twin caption).
        twins = [store.get(v.video_id).frame_embeds[0] for v in videos if v.caption == video.caption]
        assert min(float((record.prior_embed - t).abs().max()) for t in twins) < 2e-3
    fresh = PixelLinearBackend(seed=0, device="cpu", resolution=8, text_tokens=16)
    assert fresh.fit_prior_from_store(store, splits=("train",)) == 4
    start, _ = fresh.prior([videos[0].caption], [0], 1, 1.0)
    assert [v.caption for v in videos].count(videos[0].caption) == 1
    torch.testing.assert_close(start[0], store.get(videos[0].video_id).frame_embeds[0], atol=0, rtol=0)
