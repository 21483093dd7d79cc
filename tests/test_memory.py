"""spliter.backends.memory: the generate-memory estimate, its constants re-measured on the meta device."""

import pytest
import torch

from spliter.backends.memory import (
    CARD_16GB_BYTES,
    GIB,
    MOVQ_BYTES_PER_IMAGE_512,
    PARAMETERS,
    UNET_BYTES_PER_IMAGE_512,
    estimate_generate_memory,
    live_peak_bytes,
)


def test_live_peak_counts_tensors_alive_at_once_and_not_views() -> None:
    def work() -> None:
        a = torch.empty(1000, dtype=torch.float32)  # 4000 bytes
        b = a * 2  # +4000: both alive
        _ = b.view(10, 100).t()  # views add nothing
        del a
        torch.ones(250, dtype=torch.float32)  # 1000 bytes, freed at once; a is gone, so no new peak

    assert live_peak_bytes(work) == 8000


def test_constants_are_those_of_the_real_architectures_on_the_meta_device() -> None:
    from diffusers import UNet2DConditionModel, VQModel

    from spliter.backends.kandinsky22 import REAL_MOVQ_CONFIG, REAL_UNET_CONFIG

    dt = torch.float16
    with torch.device("meta"):
        unet = torch.nn.Module.to(UNet2DConditionModel(**REAL_UNET_CONFIG), dtype=dt).eval()
        movq = torch.nn.Module.to(VQModel(**REAL_MOVQ_CONFIG), dtype=dt).eval()
        x, emb, t = torch.empty(2, 4, 64, 64, dtype=dt), torch.empty(2, 1280, dtype=dt), torch.zeros(2, dtype=torch.long)
        z = torch.empty(1, 4, 64, 64, dtype=dt)
    assert sum(p.numel() for p in unet.parameters()) == PARAMETERS["unet"]
    assert sum(p.numel() for p in movq.parameters()) == PARAMETERS["movq"]
    unet_bytes = live_peak_bytes(lambda: unet(sample=x, timestep=t, encoder_hidden_states=None,
                                              added_cond_kwargs={"image_embeds": emb}))
    assert unet_bytes == pytest.approx(UNET_BYTES_PER_IMAGE_512, rel=0.01)  # one image = one CFG pair at 512 px
    assert live_peak_bytes(lambda: movq.decode(z, force_not_quantize=True)) == pytest.approx(
        MOVQ_BYTES_PER_IMAGE_512, rel=0.01)


def test_the_defaults_fit_a_16gb_card_and_the_issue_setting_does_not() -> None:
    default = estimate_generate_memory()
    assert default.fits(CARD_16GB_BYTES) and 9 * GIB < default.weights < 9.2 * GIB
    everything_at_once = estimate_generate_memory(decode_batch_size=16, movq_batch_size=16)
    assert not everything_at_once.fits(CARD_16GB_BYTES)  # the 19-21 GiB the issue measured
    assert "peak" in default.describe()


def test_each_knob_moves_the_estimate_the_documented_way() -> None:
    base = estimate_generate_memory()
    assert estimate_generate_memory(decode_batch_size=8).unet == 2 * base.unet
    assert estimate_generate_memory(movq_batch_size=4).movq == 2 * base.movq
    assert estimate_generate_memory(dtype="float32").weights == 2 * base.weights
    assert estimate_generate_memory(size=256).movq == base.movq // 4
    assert estimate_generate_memory(size=1024).unet == 16 * base.unet  # attention grows as pixels^2
    assert estimate_generate_memory(components=("decoder",)).weights == 2 * (PARAMETERS["unet"] + PARAMETERS["movq"])
    with pytest.raises(ValueError, match="backend.dtype must be one of"):
        estimate_generate_memory(dtype="int8")
    with pytest.raises(ValueError, match="positive"):
        estimate_generate_memory(movq_batch_size=0)
