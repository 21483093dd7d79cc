"""Report build speed on the synthetic study of tests/test_build.py, and its heaviest parts at a larger size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_build import write_synthetic_study, write_tiny_gif

from reports import build, gifs, tables
from reports.load import parse_scores


@pytest.fixture(scope="module")
def study_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_study(tmp_path_factory.mktemp("bench"))


def test_bench_build_report(benchmark, study_root: Path) -> None:
    page = benchmark.pedantic(build.build_report, args=(study_root,), rounds=2, warmup_rounds=0, iterations=1)
    assert page.exists()


def large_scores(variants: int = 8, seeds: int = 3, videos: int = 200, metrics: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {
            "study": "b",
            "trial_id": f"v{v}-s{s}",
            "variant": f"v{v}",
            "seed": s,
            "metric": f"m{m}",
            "metric_version": "1",
            "level": "video",
            "higher_is_better": True,
            "value": float(rng.normal()),
            "n": 16,
            "reliable": True,
            "prompt_id": f"p{i}",
            "sample_idx": 0,
            "gen_seed": i,
            "extra": "{}",
        }  # fmt: skip
        for v in range(variants)
        for s in range(seeds)
        for m in range(metrics)
        for i in range(videos)
    ]
    return parse_scores(pd.DataFrame(rows), Path("scores.parquet"))


def test_bench_summary_19k_rows(benchmark) -> None:
    scores = large_scores()
    study = {"baselines": [], "variant_order": [f"v{v}" for v in range(8)], "variants": {}}
    table = benchmark(tables.summary, scores, study, "v0")
    assert len(table) == 8 * 4


def test_bench_gif_grid_8_prompts_by_6_variants(benchmark, tmp_path: Path) -> None:
    variants = [f"v{v}" for v in range(6)]
    rows = []
    for v, variant in enumerate(variants):
        for p in range(8):
            gif = f"videos/{variant}-{p}.gif"
            write_tiny_gif(tmp_path / gif, 16, (30 * v, 20 * p, 100), size=64)
            rows.append({"prompt_id": f"p{p}", "prompt": f"prompt number {p}", "variant": variant, "seed": 0,
                         "sample_idx": 0, "gen_seed": p, "gif": gif, "fps": 8.0})  # fmt: skip
    study = {"seeds": [0], "baselines": [], "variant_order": variants, "variants": {}}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "study.json").write_text(json.dumps(study))
    frames = benchmark.pedantic(
        gifs.gif_grid, args=(pd.DataFrame(rows), tmp_path), kwargs={"study": study}, rounds=3, iterations=1
    )
    assert len(frames) == 16
