"""CLIP consistency and alignment: closed forms on synthetic embeddings, encoders on uint8 frames."""

import numpy as np
import pytest
import torch

from metrics.clip import (
    TINY_VIT_CONFIG,
    BackendClipEncoder,
    ClipEncoder,
    ClipWeightsNotFound,
    EmbeddingError,
    OpenClipEncoder,
    register_open_clip_config,
    temporal_consistency,
    text_alignment,
)

MODES = ("consecutive", "first", "all_pairs", "vbench")


def plane_rotation(n_frames: int, theta: float, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors rotating by theta per frame in a random plane of R^dim."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, 2)))
    t = np.arange(n_frames) * theta
    return np.outer(np.cos(t), q[:, 0]) + np.outer(np.sin(t), q[:, 1])


@pytest.mark.parametrize("mode", MODES)
def test_identical_frames_score_one(mode):
    frame = np.random.default_rng(0).standard_normal(24)
    assert temporal_consistency(np.tile(frame, (7, 1)) * 4.0, mode) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n_frames, theta", [(8, 0.2), (5, 1.1), (16, 0.05)])
def test_rotating_vectors_match_the_closed_forms(n_frames, theta):
    f = plane_rotation(n_frames, theta) * np.random.default_rng(1).uniform(0.5, 3, (n_frames, 1))
    T, k, t = n_frames, np.arange(1, n_frames), np.arange(1, n_frames)
    assert temporal_consistency(f, "consecutive") == pytest.approx(np.cos(theta), rel=1e-12)
    assert temporal_consistency(f, "first") == pytest.approx(np.mean(np.cos(t * theta)), rel=1e-12)
    all_pairs = 2.0 / (T * (T - 1)) * np.sum((T - k) * np.cos(k * theta))
    assert temporal_consistency(f, "all_pairs") == pytest.approx(all_pairs, rel=1e-12)
    vbench = np.mean(0.5 * (max(0.0, np.cos(theta)) + np.maximum(0.0, np.cos(t * theta))))
    assert temporal_consistency(f, "vbench") == pytest.approx(vbench, rel=1e-12)


@pytest.mark.parametrize("n_frames", [2, 6, 10])
def test_alternating_orthogonal_vectors(n_frames):
    f = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]] * (n_frames // 2))
    same = (n_frames / 2 - 1) / (n_frames - 1)  # share of later frames equal to frame 0
    assert temporal_consistency(f, "consecutive") == 0.0
    assert temporal_consistency(f, "all_pairs") == pytest.approx(same)
    assert temporal_consistency(f, "first") == pytest.approx(same)
    assert temporal_consistency(f, "vbench") == pytest.approx(0.5 * same)


def test_all_pairs_is_below_consecutive_for_a_drifting_video():
    f = plane_rotation(10, 0.15)
    assert temporal_consistency(f, "all_pairs") < temporal_consistency(f, "consecutive")


def test_torch_input_and_bad_inputs():
    f = plane_rotation(4, 0.3)
    assert temporal_consistency(torch.from_numpy(f).float()) == pytest.approx(np.cos(0.3), rel=1e-6)
    with pytest.raises(EmbeddingError, match="at least 2 frames"):
        temporal_consistency(f[:1])
    with pytest.raises(EmbeddingError, match="zero vectors"):
        temporal_consistency(np.vstack([f, np.zeros((1, 16))]))
    with pytest.raises(EmbeddingError, match="mode"):
        temporal_consistency(f, "pairs")
    with pytest.raises(EmbeddingError, match="NaN"):
        temporal_consistency(np.array([[1.0, np.nan], [1.0, 0.0]]))


class SolidColourEncoder:
    """Image and text towers that agree by construction: a frame's mean colour and a colour's name
    both map to the centred RGB vector of that colour."""

    name = "stub:colour"
    COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}

    def encode_images(self, frames):
        return torch.nn.functional.normalize(
            torch.from_numpy(frames.reshape(len(frames), -1, 3).mean(1) - 127.5), dim=1
        )

    def encode_text(self, texts):
        rgb = [next(c for word, c in self.COLOURS.items() if word in t) for t in texts]
        return torch.nn.functional.normalize(torch.tensor(rgb, dtype=torch.float64) - 127.5, dim=1)


def solid_video(rgb, n_frames=4, size=8):
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (n_frames, size, size, 3)).copy()


def test_alignment_is_100_cos_and_rises_when_the_caption_matches():
    enc = SolidColourEncoder()
    assert isinstance(enc, ClipEncoder)
    frames = enc.encode_images(solid_video((250, 10, 5)))
    matched = text_alignment(frames, enc.encode_text(["a red square"])[0])
    wrong = text_alignment(frames, enc.encode_text(["a blue square"]))
    assert matched > 99.0 > wrong
    # (1,-1,-1) vs (-1,-1,1): cos = -1/3, and the score is not clamped at 0
    exact = text_alignment(enc.encode_images(solid_video((255, 0, 0))), enc.encode_text(["blue"]))
    assert exact == pytest.approx(-100.0 / 3.0, rel=1e-9)


def test_alignment_dimension_mismatch_names_the_video():
    with pytest.raises(EmbeddingError, match="clip-7"):
        text_alignment(np.ones((3, 4)), np.ones(5), label="clip-7")


@pytest.fixture(scope="module")
def tiny_encoder():
    register_open_clip_config("tiny-vit")
    return OpenClipEncoder("tiny-vit", allow_random=True, seed=0)


def pan_video(n_frames=6, size=64, seed=0, speed=1):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 4, 3)).astype(np.float64)
    texture = np.kron(small, np.ones((8, 8, 1)))  # blocky texture twice as wide as the frame
    return np.stack([texture[:, speed * t : speed * t + size] for t in range(n_frames)]).astype(np.uint8)


def test_tiny_open_clip_encodes_uint8_frames_with_its_own_preprocessing(tiny_encoder):
    frames = pan_video()
    emb = tiny_encoder.encode_images(frames)
    assert emb.shape == (6, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(6))
    from PIL import Image

    with torch.no_grad():
        pixels = torch.stack([tiny_encoder.preprocess(Image.fromarray(f)) for f in frames])
        manual = torch.nn.functional.normalize(tiny_encoder.model.encode_image(pixels), dim=1)
        raw = torch.nn.functional.normalize(
            tiny_encoder.model.encode_image(torch.from_numpy(frames).permute(0, 3, 1, 2).float()), dim=1
        )
    torch.testing.assert_close(emb, manual)
    assert not torch.allclose(emb, raw, atol=1e-3)  # raw 0-255 pixels would be the EvalCrafter bug
    text = tiny_encoder.encode_text(["a red ball", "a blue cube"])
    assert text.shape == (2, 32)
    torch.testing.assert_close(text.norm(dim=1), torch.ones(2))


def test_tiny_open_clip_takes_any_frame_size_and_rejects_floats(tiny_encoder):
    assert tiny_encoder.encode_images(pan_video(size=96)[:, :48]).shape == (6, 32)
    with pytest.raises(EmbeddingError, match="uint8"):
        tiny_encoder.encode_images(pan_video().astype(np.float32) / 255)


def test_frames_from_different_videos_are_less_consistent(tiny_encoder):
    smooth = pan_video(8, seed=1)
    mixed = np.concatenate([pan_video(4, seed=1), pan_video(4, seed=2)])[[0, 4, 1, 5, 2, 6, 3, 7]]
    for mode in ("consecutive", "all_pairs"):
        assert temporal_consistency(tiny_encoder.encode_images(smooth), mode) > temporal_consistency(
            tiny_encoder.encode_images(mixed), mode
        )


def test_random_init_is_seeded_and_leaves_global_rng_alone(tiny_encoder):
    state = torch.get_rng_state()
    again = OpenClipEncoder("tiny-vit", allow_random=True, seed=0)
    other = OpenClipEncoder("tiny-vit", allow_random=True, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    frames = pan_video()
    torch.testing.assert_close(again.encode_images(frames), tiny_encoder.encode_images(frames))
    assert not torch.allclose(other.encode_images(frames), tiny_encoder.encode_images(frames))
    assert (again.name, other.name) == ("openclip:tiny-vit:random0", "openclip:tiny-vit:random1")


def test_weights_come_from_a_local_file(tiny_encoder, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_encoder.model.state_dict(), path)
    loaded = OpenClipEncoder("tiny-vit", pretrained=path, seed=5)
    frames = pan_video()
    torch.testing.assert_close(loaded.encode_images(frames), tiny_encoder.encode_images(frames))
    assert loaded.name == "openclip:tiny-vit"


def test_missing_weights_raise_naming_the_file(tmp_path):
    register_open_clip_config("tiny-vit")
    with pytest.raises(ClipWeightsNotFound, match="ViT-L-14.bin"):
        OpenClipEncoder("tiny-vit", pretrained=tmp_path / "ViT-L-14.bin")
    with pytest.raises(ValueError, match="no weights file"):
        OpenClipEncoder("tiny-vit")


def test_config_registration_is_idempotent_and_refuses_conflicts():
    register_open_clip_config("tiny-vit")
    register_open_clip_config("tiny-vit", dict(TINY_VIT_CONFIG))
    with pytest.raises(ValueError, match="different config"):
        register_open_clip_config("tiny-vit", {**TINY_VIT_CONFIG, "embed_dim": 16})


class FakeBackend:
    """The two Backend methods the encoder uses (docs/internals.md), unnormalised like a real tower."""

    name = "fake"

    def encode_frames(self, frames):
        return torch.from_numpy(frames.reshape(len(frames), -1)[:, :5].astype(np.float32)) + 1.0

    def encode_text(self, captions):
        hidden = torch.ones(len(captions), 3, 5)
        return hidden, torch.arange(5.0).repeat(len(captions), 1) * 7.0


def test_backend_encoder_normalises_frames_and_uses_the_pooled_text_embedding():
    enc = BackendClipEncoder(FakeBackend())
    assert enc.name == "backend:fake" and isinstance(enc, ClipEncoder)
    frames = solid_video((3, 4, 0), n_frames=2)
    torch.testing.assert_close(enc.encode_images(frames)[0], torch.tensor([4.0, 5, 1, 4, 5]) / np.sqrt(83))
    torch.testing.assert_close(enc.encode_text(["x"]), torch.arange(5.0)[None] / np.sqrt(30))


def test_backend_encoder_on_the_tiny_backend():
    from spliter.backends import make_backend

    backend = make_backend("tiny", device="cpu")
    enc = BackendClipEncoder(backend)
    frames = pan_video(3, size=32)
    emb = enc.encode_images(frames)
    assert enc.name == "backend:tiny" and emb.shape == (3, backend.dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(
        emb, torch.nn.functional.normalize(backend.encode_frames(frames).float(), dim=1)
    )
    _, pooled = backend.encode_text(["a red ball"])
    torch.testing.assert_close(
        enc.encode_text(["a red ball"]), torch.nn.functional.normalize(pooled.float(), dim=1)
    )


# ------------------------------------------------------------------------------ open_clip specs and tags


@pytest.mark.parametrize("spec, expected", [
    ("openclip:ViT-L-14/laion2b_s32b_b82k@/w/open_clip.bin", ("ViT-L-14", "laion2b_s32b_b82k", "/w/open_clip.bin")),
    ("openclip:tiny-vit@random", ("tiny-vit", None, "random")),
    ("openclip:ViT-B-32/openai@C:/w@x.bin", ("ViT-B-32", "openai", "C:/w@x.bin")),
])
def test_encoder_specs_parse_into_model_tag_and_weights(spec, expected):
    from metrics.clip import parse_open_clip_spec

    parsed = parse_open_clip_spec(spec)
    assert (parsed.model, parsed.tag, parsed.weights) == expected
    assert parsed.random == (expected[2] == "random")


@pytest.mark.parametrize("spec", ["ViT-L-14@w.bin", "openclip:ViT-L-14", "openclip:@w.bin", "openclip:ViT-L-14/@w.bin",
                                  "openclip:ViT-L-14/a/b@w.bin", "openclip:ViT-L-14/laion@"])
def test_malformed_encoder_specs_are_refused_with_the_form(spec):
    from metrics.clip import parse_open_clip_spec

    with pytest.raises(ValueError, match=r"openclip:<model>\[/<pretrained tag>\]@"):
        parse_open_clip_spec(spec)


def test_a_tags_preprocessing_and_activation_come_from_open_clips_table():
    from metrics.clip import open_clip_pretrained_cfg

    laion = open_clip_pretrained_cfg("ViT-L-14", "laion2b_s32b_b82k")
    assert laion["mean"] == laion["std"] == (0.5, 0.5, 0.5) and laion["quick_gelu"] is False
    openai = open_clip_pretrained_cfg("ViT-L-14", "openai")
    assert openai["quick_gelu"] is True and openai["mean"] == (0.48145466, 0.4578275, 0.40821073)
    assert (openai["interpolation"], openai["resize_mode"]) == ("bicubic", "shortest")
    with pytest.raises(ValueError, match="unknown pretrained tag 'laion9'.*known tags: .*laion2b_s32b_b82k"):
        open_clip_pretrained_cfg("ViT-L-14", "laion9")


def test_a_checkpoint_of_a_published_architecture_needs_its_tag(tmp_path):
    path = tmp_path / "open_clip_pytorch_model.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"name the pretrained tag.*openclip:ViT-L-14/openai@"):
        OpenClipEncoder("ViT-L-14", pretrained=path)


@pytest.fixture(scope="module")
def vit_b32_openai(tmp_path_factory):
    """open_clip's own ViT-B-32-quickgelu/openai, its download replaced by a random checkpoint file."""
    import open_clip

    path = tmp_path_factory.mktemp("openclip") / "vit-b-32-openai.pt"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32-quickgelu")
    torch.save(model.state_dict(), path)
    del model
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(open_clip.factory, "download_pretrained", lambda cfg, cache_dir=None: str(path))
        reference, _, transform = open_clip.create_model_and_transforms("ViT-B-32-quickgelu", pretrained="openai")
    return path, reference.eval(), transform


def test_a_tagged_checkpoint_is_preprocessed_and_activated_as_open_clip_loads_that_tag(vit_b32_openai):
    from PIL import Image

    path, reference, transform = vit_b32_openai
    ours = OpenClipEncoder.from_spec(f"openclip:ViT-B-32/openai@{path}")
    assert ours.name == "openclip:ViT-B-32/openai"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(96, 160), (240, 200)]]
    for frame in frames:  # mean/std, bicubic, shortest-side resize and centre crop, on two aspect ratios
        assert torch.equal(ours.preprocess(Image.fromarray(frame)), transform(Image.fromarray(frame)))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            reference.encode_image(torch.stack([transform(Image.fromarray(f)) for f in frames])), dim=1)
    # equal outputs need QuickGELU: the same weights with plain GELU differ
    torch.testing.assert_close(torch.cat([ours.encode_images(f[None]) for f in frames]), expected, rtol=0, atol=1e-5)


def test_two_tags_of_one_checkpoint_get_two_names_and_their_own_activation(vit_b32_openai):
    path = vit_b32_openai[0]
    openai = OpenClipEncoder.from_spec(f"openclip:ViT-B-32/openai@{path}")
    laion = OpenClipEncoder.from_spec(f"openclip:ViT-B-32/laion2b_s34b_b79k@{path}")  # plain GELU, same weights
    assert laion.name == "openclip:ViT-B-32/laion2b_s34b_b79k" != openai.name
    frames = pan_video(n_frames=2, size=224)
    assert not torch.allclose(laion.encode_images(frames), openai.encode_images(frames), atol=1e-4)
    register_open_clip_config("tiny-vit")
    assert OpenClipEncoder.from_spec("openclip:tiny-vit@random").name == "openclip:tiny-vit:random0"
