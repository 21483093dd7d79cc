"""Backend and pipeline speed: encode and generate throughput with the tiny backend, and the real-size decoder
(random weights) against one full-size Spliter forward.

Run: pytest tests/benchmarks/test_bench_backends.py --benchmark-only -q -s   (torch runs single-threaded here)
The real-size decoder needs ~6 GiB of RAM and ~1 min to build (once per run, not timed).
"""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spliter.backends import make_backend
from spliter.data.datasets import read_folder
from spliter.data.shapes import write_shapes_dataset
from spliter.pipeline import Prompt, RenderSettings, encode_videos, render

VIDEOS, FRAMES = 16, 16
REAL_DIM = 1280
DECODER_STEPS_PRIOR_ART = 50  # method.md §6 item 5: num_inference_steps=50 (75 in the evaluated folders)


@pytest.fixture(scope="module")
def tiny():
    return make_backend("tiny", device="cpu")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory):
    root = write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_videos=VIDEOS, frames=FRAMES, size=64, fps=8.0)
    return read_folder(root).videos


@pytest.fixture(scope="module")
def real_decoder():
    return make_backend("kandinsky22-random", device="cpu", components=("decoder",))


def _best_seconds(fn, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_bench_encode_throughput(benchmark, tiny, shapes, tmp_path: Path):
    stores = iter(range(100))

    def encode():
        return encode_videos(shapes, tiny, tmp_path / f"store{next(stores)}", frames=FRAMES, size=224, prior_steps=25,
                             progress=False)  # fmt: skip

    report = benchmark.pedantic(encode, rounds=3, iterations=1, warmup_rounds=1)
    assert report.encoded == VIDEOS
    fps = VIDEOS * FRAMES / benchmark.stats.stats.median
    benchmark.extra_info.update(frames_per_s=fps)
    print(f"\n[encode] tiny, {VIDEOS} clips x {FRAMES} frames (64 px -> 224 px, prior 25 steps): {fps:.0f} frames/s")


@pytest.mark.parametrize("size", [64])
def test_bench_generate_throughput(benchmark, tiny, tmp_path: Path, size: int):
    from spliter.rollout import StaticRollout

    prompts = [Prompt("p0", "a red circle moves to the right")]

    def generate():
        settings = RenderSettings(frames=FRAMES, size=size, decoder_steps=2, prior_steps=2)
        return list(render(prompts, StaticRollout(), tiny, settings))

    benchmark.pedantic(generate, rounds=3, iterations=1, warmup_rounds=1)
    fps = FRAMES / benchmark.stats.stats.median
    benchmark.extra_info.update(frames_per_s=fps)
    print(f"\n[generate] tiny, {FRAMES} frames at {size} px, 2 decoder steps (frames only): {fps:.1f} frames/s")


@pytest.mark.parametrize("latent", [16])
def test_bench_real_decoder_step_vs_spliter_forward(benchmark, real_decoder, latent: int):
    from spliter.models import Spliter, SpliterConfig

    pipe = real_decoder.decoder_pipeline
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, latent, latent, generator=g)  # the guidance pair (negative, positive)
    embeds = torch.randn(2, REAL_DIM, generator=g)
    timestep = torch.tensor(500)

    def unet_step():
        return pipe.unet(sample, timestep, encoder_hidden_states=None, added_cond_kwargs={"image_embeds": embeds})

    with torch.inference_mode():
        benchmark.pedantic(unet_step, rounds=2, iterations=1, warmup_rounds=1)
        step_s = benchmark.stats.stats.median
        latents = torch.randn(1, 4, latent, latent, generator=g)
        movq_s = _best_seconds(lambda: pipe.movq.decode(latents, force_not_quantize=True), repeats=2)
        spliter = Spliter(SpliterConfig(dim=REAL_DIM)).eval()
        text, start = torch.randn(FRAMES, 77, REAL_DIM, generator=g), torch.randn(FRAMES, REAL_DIM, generator=g)
        steps = torch.arange(FRAMES, dtype=torch.float32) * 0.25
        spliter_s = _best_seconds(lambda: spliter(text, start, steps)) / FRAMES  # one batched forward per video
    frame_s = DECODER_STEPS_PRIOR_ART * step_s + movq_s
    ratio_step = spliter_s / step_s
    ratio_frame = spliter_s / frame_s
    benchmark.extra_info.update(
        unet_step_s=step_s, movq_decode_s=movq_s, spliter_per_frame_s=spliter_s,
        spliter_over_unet_step=ratio_step, spliter_over_decoded_frame=ratio_frame,
    )  # fmt: skip
    px = latent * pipe.movq_scale_factor
    print(
        f"\n[decoder] real-size UNet (random), {latent}x{latent} latents ({px} px), guidance pair: "
        f"{step_s:.2f} s/step; MoVQ decode {movq_s:.2f} s; Spliter(dim=1280) forward "
        f"{spliter_s * 1e3:.2f} ms/frame = {100 * ratio_step:.3f}% of one UNet step, "
        f"{100 * ratio_frame:.4f}% of a {DECODER_STEPS_PRIOR_ART}-step decoded frame"
    )
    assert np.isfinite(frame_s)


def test_bench_missing_kandinsky_folder_fails_fast(benchmark, tmp_path: Path):
    from spliter.backends import WeightsNotFound

    def attempt() -> str:
        try:
            make_backend("kandinsky22", device="cpu", prior=tmp_path / "no-prior", decoder=tmp_path / "no-decoder")
        except WeightsNotFound as err:
            return str(err)
        raise AssertionError("a missing folder must raise WeightsNotFound")

    message = benchmark.pedantic(attempt, rounds=5, iterations=1, warmup_rounds=1)
    assert "no-prior" in message
    print(f"\n[weights check] missing Kandinsky 2.2 folder -> WeightsNotFound in {benchmark.stats.stats.median * 1e3:.1f} ms")
