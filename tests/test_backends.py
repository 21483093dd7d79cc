"""spliter.backends: the tiny seeded Kandinsky 2.2, the offline weight check, the factory and the tokenizer."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spliter.backends import Backend, WeightsNotFound, make_backend, missing_weights
from spliter.backends.kandinsky22 import DECODER_HUB_ID, PRIOR_HUB_ID, Kandinsky22Backend
from spliter.backends.tiny import TinyBackend
from spliter.backends.tokenizer import CLIP_EOS_ID, CLIP_VOCAB_SIZE, clip_tokenizer

CAPTIONS = ["a red circle moves to the right", "a blue square grows on a striped background"]


@pytest.fixture(scope="module")
def tiny() -> TinyBackend:
    return TinyBackend(seed=0, device="cpu")


def frames_of(seed: int, n: int = 3, height: int = 40, width: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------ tiny


def test_tiny_backend_has_the_protocol_and_a_json_identity(tiny: TinyBackend) -> None:
    assert isinstance(tiny, Backend)
    assert (tiny.name, tiny.dim, tiny.text_tokens) == ("tiny", 32, 77)
    assert tiny.device == torch.device("cpu") and tiny.dtype == torch.float32
    identity = json.loads(json.dumps(tiny.identity()))
    assert identity["name"] == "tiny" and identity["seed"] == 0 and identity["dtype"] == "float32"


def test_encode_text_gives_hidden_states_and_embeddings_per_caption(tiny: TinyBackend) -> None:
    hidden, embed = tiny.encode_text([*CAPTIONS, "word " * 200])  # the last one is truncated to 77 tokens
    assert hidden.shape == (3, 77, 32) and embed.shape == (3, 32)
    assert hidden.dtype == embed.dtype == torch.float32 and hidden.device.type == "cpu"
    assert not torch.allclose(embed[0], embed[1])
    single_hidden, single_embed = tiny.encode_text(CAPTIONS[:1])
    torch.testing.assert_close(single_embed[0], embed[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single_hidden[0], hidden[0], atol=1e-5, rtol=1e-5)


def test_prior_rows_depend_on_their_own_caption_and_seed_only(tiny: TinyBackend) -> None:
    embed, negative = tiny.prior(CAPTIONS, [0, 1], steps=2, guidance=4.0)
    assert embed.shape == negative.shape == (2, 32) and embed.dtype == torch.float32
    assert torch.isfinite(embed).all() and embed.abs().sum() > 0
    torch.testing.assert_close(negative[0], negative[1])  # the zero-image embedding, the same for every row
    again, _ = tiny.prior(CAPTIONS, [0, 1], steps=2, guidance=4.0)
    assert torch.equal(again, embed)
    alone, _ = tiny.prior(CAPTIONS[1:], [1], steps=2, guidance=4.0)
    torch.testing.assert_close(alone[0], embed[1], atol=1e-5, rtol=1e-5)
    reseeded, _ = tiny.prior(CAPTIONS, [5, 1], steps=2, guidance=4.0)
    assert not torch.allclose(reseeded[0], embed[0])
    torch.testing.assert_close(reseeded[1], embed[1], atol=1e-5, rtol=1e-5)


def test_encode_frames_embeds_each_frame(tiny: TinyBackend) -> None:
    frames = frames_of(0, n=4)
    embeds = tiny.encode_frames(frames)
    assert embeds.shape == (4, 32) and embeds.dtype == torch.float32
    assert not torch.allclose(embeds[0], embeds[1])
    torch.testing.assert_close(tiny.encode_frames(frames[2:3])[0], embeds[2], atol=1e-5, rtol=1e-5)
    assert torch.equal(tiny.encode_frames(torch.from_numpy(frames)), embeds)  # numpy or torch input
    with pytest.raises(ValueError, match="uint8"):
        tiny.encode_frames(frames.astype(np.float32))


def test_decode_is_per_image_seeded_and_batch_independent(tiny: TinyBackend) -> None:
    embeds, negative = tiny.prior(CAPTIONS, [0, 1], steps=2, guidance=4.0)
    images = tiny.decode(embeds, negative, [7, 8], steps=2, guidance=4.0, size=32)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert images.std() > 0
    single = tiny.decode(embeds[1:], negative[1:], [8], steps=2, guidance=4.0, size=32)
    assert np.abs(single[0].astype(int) - images[1]).max() <= 1  # float batching noise only
    assert np.array_equal(tiny.decode(embeds, negative, [7, 8], 2, 4.0, 32), images)
    reseeded = tiny.decode(embeds, negative, [9, 8], steps=2, guidance=4.0, size=32)
    assert np.abs(reseeded[0].astype(int) - images[0]).mean() > 1
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny.decode(embeds, negative, [7, 8], steps=2, guidance=4.0, size=30)
    with pytest.raises(ValueError, match="one seed per row"):
        tiny.decode(embeds, negative, [7], steps=2, guidance=4.0, size=32)
    with pytest.raises(ValueError, match="NaN"):
        tiny.decode(torch.full_like(embeds, float("nan")), negative, [7, 8], steps=2, guidance=4.0, size=32)


def test_the_seed_alone_fixes_the_weights(tiny: TinyBackend) -> None:
    same, other = TinyBackend(seed=0, device="cpu"), TinyBackend(seed=1, device="cpu")
    frames = frames_of(1)
    assert torch.equal(same.encode_frames(frames), tiny.encode_frames(frames))
    assert torch.equal(same.encode_text(CAPTIONS)[1], tiny.encode_text(CAPTIONS)[1])
    embeds, negative = tiny.prior(CAPTIONS[:1], [0], steps=2, guidance=4.0)
    image = tiny.decode(embeds, negative, [3], steps=2, guidance=4.0, size=32)
    assert np.array_equal(same.decode(embeds, negative, [3], steps=2, guidance=4.0, size=32), image)
    other_image = other.decode(embeds, negative, [3], steps=2, guidance=4.0, size=32)
    assert np.abs(other_image.astype(int) - image).mean() > 1
    assert not torch.allclose(other.encode_frames(frames), tiny.encode_frames(frames))


def test_building_a_backend_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TinyBackend(seed=5, device="cpu")
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------------------------- factory


def test_make_backend_builds_by_name_and_rejects_unknown_names_and_options() -> None:
    backend = make_backend("tiny", device="cpu", seed=2)
    assert isinstance(backend, TinyBackend) and backend.identity()["seed"] == 2
    with pytest.raises(ValueError, match="unknown backend 'sdxl'.*tiny"):
        make_backend("sdxl")
    with pytest.raises(ValueError, match="backend 'tiny'.*colour"):
        make_backend("tiny", colour="red")
    with pytest.raises(ValueError, match="unknown backend"):
        missing_weights("sdxl")
    assert missing_weights("tiny") == [] and missing_weights("kandinsky22-random") == []


# -------------------------------------------------------------------------------------- real weights


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts loading pipeline weights: the check must come first (and be instant)."""
    from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the folder check failed")

    for cls in (KandinskyV22Pipeline, KandinskyV22PriorPipeline):
        monkeypatch.setattr(cls, "from_pretrained", refuse)


def test_missing_kandinsky_folders_fail_before_loading_with_one_line(tmp_path: Path, no_loading) -> None:
    # How fast this fails is measured in tests/benchmarks/test_bench_backends.py (well under a second).
    prior = tmp_path / "weights" / "prior"
    with pytest.raises(WeightsNotFound) as caught:
        Kandinsky22Backend(prior=prior, decoder=tmp_path / "decoder", device="cpu")
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, FileNotFoundError)
    assert f"expected a diffusers folder at {prior} (with model_index.json)" in message
    assert f"hf download {PRIOR_HUB_ID} --local-dir {prior}" in message
    with pytest.raises(WeightsNotFound, match="Kandinsky 2.2 prior weights not found"):
        make_backend("kandinsky22", device="cpu", prior=prior)


def test_hub_ids_are_looked_up_in_the_hf_cache_only(tmp_path: Path, no_loading) -> None:
    cache = tmp_path / "hub"
    problems = missing_weights("kandinsky22", cache_dir=str(cache))
    assert len(problems) == 2
    assert f"{PRIOR_HUB_ID!r} in the HF cache at {cache}" in problems[0]
    assert problems[0].endswith(f"run: hf download {PRIOR_HUB_ID}")
    assert f"{DECODER_HUB_ID!r} in the HF cache at {cache}" in problems[1]
    snapshot = cache / "models--kandinsky-community--kandinsky-2-2-decoder" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    found = missing_weights("kandinsky22", cache_dir=str(cache))
    # The cached snapshot is found and then read (check_kandinsky_folders): an empty model_index.json is named.
    assert found[0] == problems[0] and len(found) == 2
    assert f"decoder folder {snapshot}: model_index.json names None" in found[1]


def test_a_relative_path_that_looks_like_a_hub_id_is_looked_for_as_both(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (problem,) = missing_weights("kandinsky22", prior="models/k22-prior", decoder=str(tmp_path),
                                 cache_dir=str(tmp_path / "hub"))[:1]  # fmt: skip
    assert f"a diffusers folder at {tmp_path / 'models' / 'k22-prior'}" in problem
    assert f"'models/k22-prior' in the HF cache at {tmp_path / 'hub'}" in problem
    assert problem.endswith(f"hf download {PRIOR_HUB_ID} --local-dir models/k22-prior")


def test_local_folders_need_a_model_index(tmp_path: Path) -> None:
    prior, decoder = tmp_path / "prior", tmp_path / "decoder"
    prior.mkdir()
    decoder.mkdir()
    (decoder / "model_index.json").write_text("{}")
    problems = missing_weights("kandinsky22", prior=str(prior), decoder=str(decoder))
    assert str(prior) in problems[0] and "model_index.json" in problems[0]
    (prior / "model_index.json").write_text("{}")
    # Found now, so read: an empty index names no pipeline (complete folders: tests/test_weights_check.py).
    found = missing_weights("kandinsky22", prior=str(prior), decoder=str(decoder))
    assert [f"{what} folder {folder}: model_index.json names None" in line
            for what, folder, line in zip(("prior", "decoder"), (prior, decoder), found, strict=True)] == [True, True]


@pytest.mark.slow
def test_random_kandinsky22_decoder_has_the_real_size_and_decodes() -> None:
    backend = make_backend("kandinsky22-random", device="cpu", components=("decoder",))
    unet = backend.decoder_pipeline.unet
    assert 1.2e9 < sum(p.numel() for p in unet.parameters()) < 1.3e9  # "Latent Diffusion U-Net - 1.22B"
    assert backend.dim == 1280
    image = backend.decode(torch.randn(1, 1280), torch.zeros(1, 1280), [0], steps=1, guidance=4.0, size=64)
    assert image.shape == (1, 64, 64, 3) and image.dtype == np.uint8
    assert backend.prior_pipeline is None
    with pytest.raises(ValueError, match="without the prior"):
        backend.encode_text(["a cat"])


# ------------------------------------------------------------------------------------------- tokenizer


def test_offline_tokenizer_matches_open_clip_ids() -> None:
    open_clip = pytest.importorskip("open_clip")
    tokenizer = clip_tokenizer()
    assert len(tokenizer) == CLIP_VOCAB_SIZE and tokenizer.pad_token_id == CLIP_EOS_ID
    reference = open_clip.get_tokenizer("ViT-bigG-14")
    for text in ["A man is playing the GUITAR!! in a café", "don't stop 3 times"]:
        ids = tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
        expected = reference([text])[0].tolist()
        end = expected.index(CLIP_EOS_ID) + 1
        assert ids[:end] == expected[:end] and len(ids) == 77
        assert set(ids[end:]) <= {CLIP_EOS_ID}
