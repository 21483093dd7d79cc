"""Matrix-free rotation vs the dense (B, D, D) reference: speed, agreement, memory (method.md B23).

Run: pytest tests/benchmarks/test_bench_rotation.py --benchmark-only -q -s
"""

import time

import pytest
import torch

from spliter.rotation import rotate, rotation_matrix

CASES = {"embeddings": (64, 1280), "hidden_states": (16, 77, 1280)}


def _best_seconds(fn, repeats: int = 3) -> float:
    """Best of a few runs: the least-contended estimate on a shared CPU."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _dense(x: torch.Tensor, v_from: torch.Tensor, v_to: torch.Tensor) -> torch.Tensor:
    m = rotation_matrix(v_from, v_to)
    return (
        torch.bmm(x.unsqueeze(1), m.transpose(1, 2)).squeeze(1)
        if x.ndim == 2
        else torch.bmm(x, m.transpose(1, 2))
    )


@pytest.mark.parametrize("case", list(CASES))
def test_bench_rotate_matrix_free_vs_dense(benchmark, case):
    shape = CASES[case]
    batch, dim = shape[0], shape[-1]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    v_from, v_to = torch.randn(batch, dim, generator=g), torch.randn(batch, dim, generator=g)

    fast = benchmark.pedantic(rotate, args=(x, v_from, v_to), rounds=20, iterations=1, warmup_rounds=2)
    dense = _dense(x, v_from, v_to)
    rel = float(torch.linalg.vector_norm(fast - dense) / torch.linalg.vector_norm(dense))
    assert rel < 1e-5

    fast_s = benchmark.stats.stats.min
    dense_s = _best_seconds(lambda: _dense(x, v_from, v_to))
    tokens = x.numel() // dim
    dense_bytes = batch * dim * dim * 4
    # Matrix-free extra memory: the (B, D, 2) plane basis, the plane vectors, and the (B, T, 2) projections.
    working_bytes = (batch * dim * 2 + 4 * batch * dim + tokens * 2 * 2) * 4
    benchmark.extra_info.update(
        shape=list(shape),
        matrix_free_ms=fast_s * 1e3,
        dense_ms=dense_s * 1e3,
        speedup=dense_s / fast_s,
        relative_error=rel,
        dense_matrix_bytes=dense_bytes,
        matrix_free_extra_bytes=working_bytes,
    )
    print(
        f"\n[rotation] {case} {shape}: matrix-free {fast_s * 1e3:.3f} ms, dense {dense_s * 1e3:.1f} ms, "
        f"speedup {dense_s / fast_s:.0f}x, rel err {rel:.1e}, dense matrices {dense_bytes / 2**20:.1f} MiB, "
        f"matrix-free extra {working_bytes / 2**10:.1f} KiB"
    )
