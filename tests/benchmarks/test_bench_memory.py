"""Peak memory of generating at 512 px in fp16 with the real Kandinsky 2.2 decoder architectures.

Run: pytest tests/benchmarks/test_bench_memory.py --benchmark-only -q
The UNet step and the MoVQ decode run on the meta device (shapes only), with the backend's default batch
sizes; live_peak_bytes counts the tensors alive at once. `extra_info` carries the per-stage GiB and the
estimated peak against a 16 GB card (weights x OVERHEAD + context, spliter.backends.memory).
"""

import pytest
import torch

from spliter.backends.memory import CARD_16GB_BYTES, GIB, estimate_generate_memory, live_peak_bytes

DT = torch.float16


@pytest.fixture(scope="module")
def decoder():
    from diffusers import UNet2DConditionModel, VQModel

    from spliter.backends.kandinsky22 import REAL_MOVQ_CONFIG, REAL_UNET_CONFIG

    with torch.device("meta"):
        return (torch.nn.Module.to(UNet2DConditionModel(**REAL_UNET_CONFIG), dtype=DT).eval(),
                torch.nn.Module.to(VQModel(**REAL_MOVQ_CONFIG), dtype=DT).eval())


@pytest.mark.parametrize("decode_batch_size, movq_batch_size", [(4, 2), (16, 16)])
def test_bench_generate_peak_memory_512px(benchmark, decoder, decode_batch_size: int, movq_batch_size: int) -> None:
    unet, movq = decoder
    rows = 2 * decode_batch_size  # classifier-free guidance
    with torch.device("meta"):
        x, emb = torch.empty(rows, 4, 64, 64, dtype=DT), torch.empty(rows, 1280, dtype=DT)
        t, z = torch.zeros(rows, dtype=torch.long), torch.empty(movq_batch_size, 4, 64, 64, dtype=DT)

    def measure() -> tuple[int, int]:
        unet_bytes = live_peak_bytes(lambda: unet(sample=x, timestep=t, encoder_hidden_states=None,
                                                  added_cond_kwargs={"image_embeds": emb}))
        return unet_bytes, live_peak_bytes(lambda: movq.decode(z, force_not_quantize=True))

    unet_bytes, movq_bytes = benchmark.pedantic(measure, rounds=1, iterations=1)
    estimate = estimate_generate_memory("float16", decode_batch_size, movq_batch_size)
    peak = estimate.peak - max(estimate.unet, estimate.movq) * 1.2 + max(unet_bytes, movq_bytes) * 1.2
    benchmark.extra_info.update(
        unet_gib=round(unet_bytes / GIB, 3), movq_gib=round(movq_bytes / GIB, 3),
        weights_gib=round(estimate.weights / GIB, 2), peak_gib=round(peak / GIB, 2),
        fits_16gb=bool(peak <= CARD_16GB_BYTES),
    )
    assert abs(unet_bytes - estimate.unet) <= 0.01 * estimate.unet  # the estimator's constants hold
    if (decode_batch_size, movq_batch_size) == (4, 2):
        assert peak <= CARD_16GB_BYTES
