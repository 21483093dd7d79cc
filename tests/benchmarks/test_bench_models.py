"""Full-size Spliter speed: forward latency per variant, training-step throughput and achieved GFLOP/s per head.

Run: pytest tests/benchmarks/test_bench_models.py --benchmark-only -q -s
"""

import itertools
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from spliter.losses import displacement_loss
from spliter.models import CROSS_ATTENTION, HEADS, ROTATION_LAYERS, Spliter, SpliterConfig

BATCH = 32


def _inputs(config: SpliterConfig, batch: int = BATCH):
    g = torch.Generator().manual_seed(0)
    text = torch.randn(batch, config.text_tokens, config.dim, generator=g)
    start = torch.randn(batch, config.dim, generator=g)
    target = start + 0.1 * torch.randn(batch, config.dim, generator=g)
    step = torch.rand(batch, generator=g) * 4 - 2
    return text, start, step, target


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 GEMM rate (GFLOP/s), best of a few n x n matmuls (measured next to each benchmark,
    because the CPU is shared and its available rate drifts)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _train_step(model, optimizer, text, start, step, target):
    optimizer.zero_grad(set_to_none=True)
    loss = displacement_loss(model(text, start, step), start, start, target)
    loss.backward()
    optimizer.step()
    return loss


@pytest.mark.parametrize(
    "head, rotation_layer, cross_attention", list(itertools.product(HEADS, ROTATION_LAYERS, CROSS_ATTENTION))
)
def test_bench_forward_latency(benchmark, head, rotation_layer, cross_attention):
    config = SpliterConfig(head=head, rotation_layer=rotation_layer, cross_attention=cross_attention)
    model = Spliter(config).eval()
    text, start, step, _ = _inputs(config)
    with torch.inference_mode():
        out = benchmark.pedantic(model, args=(text, start, step), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (BATCH, config.dim)
    ms = benchmark.stats.stats.min * 1e3
    params = sum(p.numel() for p in model.parameters())
    benchmark.extra_info.update(forward_ms=ms, params=params)
    print(
        f"\n[forward] {head}/{rotation_layer}/{cross_attention}: best {ms:.1f} ms at B={BATCH}, {params / 1e6:.2f} M params"
    )


@pytest.mark.parametrize(
    "head, cross_attention",
    [(h, "off") for h in HEADS] + [("increment", "additive"), ("increment", "attention")],
)
def test_bench_train_step(benchmark, head, cross_attention):
    config = SpliterConfig(head=head, cross_attention=cross_attention)
    model = Spliter(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = _inputs(config)
    with FlopCounterMode(display=False) as counter:
        _train_step(model, optimizer, *batch)
    flops = counter.get_total_flops()
    peaks: list[float] = []
    # The matmul reference is measured before every round (setup), so both see the same load on a shared CPU;
    # the best round of each is compared.
    benchmark.pedantic(
        _train_step,
        args=(model, optimizer, *batch),
        setup=lambda: peaks.append(matmul_gflops(repeats=2)),
        rounds=4,
        iterations=1,
        warmup_rounds=1,
    )
    peak = max(peaks)
    seconds = benchmark.stats.stats.min
    achieved = flops / seconds / 1e9
    benchmark.extra_info.update(
        examples_per_s=BATCH / seconds,
        gflop_per_step=flops / 1e9,
        gflops=achieved,
        matmul_gflops=peak,
        fraction=achieved / peak,
    )
    print(
        f"\n[train] {head}/off/{cross_attention}: best {seconds * 1e3:.0f} ms/step (median "
        f"{benchmark.stats.stats.median * 1e3:.0f}), {BATCH / seconds:.0f} examples/s, "
        f"{flops / 1e9:.1f} GFLOP/step, {achieved:.1f} GFLOP/s = {achieved / peak:.2f} of matmul {peak:.1f} GFLOP/s"
    )
