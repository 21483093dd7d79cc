"""Conformance: hub-layout Kandinsky 2.2 folders through the real backend equal diffusers' own pipelines."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import kandinsky_folders
from PIL import Image

from spliter.backends.kandinsky22 import Kandinsky22Backend

CAPTIONS = ["a red circle moves to the right", "a dog runs on the beach"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    return kandinsky_folders(tmp_path_factory.mktemp("hub"), seed=3)


@pytest.fixture(scope="module")
def reference(folders):
    from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

    prior = KandinskyV22PriorPipeline.from_pretrained(str(folders[0]), local_files_only=True)
    decoder = KandinskyV22Pipeline.from_pretrained(str(folders[1]), local_files_only=True)
    for pipe in (prior, decoder):
        pipe.set_progress_bar_config(disable=True)
    return prior, decoder


@pytest.fixture(scope="module")
def backend(folders) -> Kandinsky22Backend:
    return Kandinsky22Backend(prior=folders[0], decoder=folders[1], device="cpu", dtype="float32",
                              decode_batch_size=2, movq_batch_size=1)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def test_text_states_are_those_of_the_prior_pipelines_text_tower(backend, reference) -> None:
    prior = reference[0]
    tokens = prior.tokenizer(CAPTIONS, padding="max_length", max_length=prior.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
    out = prior.text_encoder(tokens.input_ids)
    hidden, embed = backend.encode_text(CAPTIONS)
    assert torch.equal(hidden, out.last_hidden_state) and torch.equal(embed, out.text_embeds)


def test_prior_embeddings_are_bit_identical_and_prior_guidance_is_its_own(backend, reference, folders) -> None:
    embeds, negative = backend.prior(CAPTIONS[:1], [11], steps=3, guidance=4.0)
    out = reference[0](prompt=CAPTIONS[:1], num_inference_steps=3, guidance_scale=4.0, generator=seeded(11),
                       output_type="pt")
    assert torch.equal(embeds, out.image_embeds) and torch.equal(negative, out.negative_image_embeds)
    own = Kandinsky22Backend(prior=folders[0], decoder=folders[1], device="cpu", dtype="float32", prior_guidance=1.5)
    low = reference[0](prompt=CAPTIONS[:1], num_inference_steps=3, guidance_scale=1.5, generator=seeded(11),
                       output_type="pt")
    assert torch.equal(own.prior(CAPTIONS[:1], [11], steps=3, guidance=4.0)[0], low.image_embeds)
    assert own.identity()["prior_guidance"] == 1.5 and not torch.equal(low.image_embeds, embeds)


def test_frame_embeddings_equal_the_image_processor_on_pil_frames(backend, reference) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    prior = reference[0]
    values = prior.image_processor([Image.fromarray(f) for f in frames], return_tensors="pt").pixel_values
    expected = prior.image_encoder(values).image_embeds
    torch.testing.assert_close(backend.encode_frames(frames), expected, rtol=0, atol=1e-6)


def test_decoded_pixels_match_the_decoder_pipeline_within_one_grey_level(backend, reference) -> None:
    embeds = torch.randn(3, backend.dim, generator=seeded(0))
    negative = torch.zeros_like(embeds)
    seeds = [5, 6, 7]
    # 3 images in UNet chunks of 2 and MoVQ chunks of 1: the chunking must not change any image
    ours = backend.decode(embeds, negative, seeds, steps=3, guidance=4.0, size=32)
    out = reference[1](image_embeds=embeds, negative_image_embeds=negative, height=32, width=32,
                       num_inference_steps=3, guidance_scale=4.0, generator=[seeded(s) for s in seeds],
                       output_type="np")
    expected = np.round(out.images * 255.0).astype(int)
    assert ours.shape == (3, 32, 32, 3) and ours.std() > 0
    assert np.abs(ours.astype(int) - expected).max() <= 1


def test_loading_the_folders_prints_no_library_warning(folders) -> None:
    """A user loading real weights sees no FutureWarning/DeprecationWarning from diffusers (e.g. `torch_dtype`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Kandinsky22Backend(prior=folders[0], decoder=folders[1], device="cpu", dtype="float32")
    noisy = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, FutureWarning | DeprecationWarning)]
    assert not noisy, noisy
