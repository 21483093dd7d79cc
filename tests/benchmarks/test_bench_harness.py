"""The harness's own cost: a no-op rerun of a finished study, and the whole quickstart study with its stage shares.

Run: pytest tests/benchmarks/test_bench_harness.py --benchmark-only -q -s
The quickstart benchmark runs the default study end to end once (150 s on the 2-core development machine); the no-op
rerun uses the micro study of tests/test_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_cli import MICRO

from ablations.cli import main


@pytest.fixture(scope="module")
def finished_micro(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("micro")
    study = tmp / "micro.yaml"
    study.write_text(yaml.safe_dump(MICRO))
    assert main(["run", str(study), "--out", str(tmp / "runs"), "--no-report"]) == 0
    return study, tmp / "runs"


def test_bench_second_run_of_a_finished_study(benchmark, finished_micro) -> None:
    study, root = finished_micro
    argv = ["run", str(study), "--out", str(root), "--no-report"]
    assert benchmark.pedantic(main, args=(argv,), rounds=3, iterations=1, warmup_rounds=0) == 0
    print(f"\n[harness] no-op rerun of a finished micro study (6 trials): {benchmark.stats.stats.median:.2f} s")


def test_bench_quickstart_end_to_end(benchmark, tmp_path: Path) -> None:
    argv = ["run", "quickstart", "--out", str(tmp_path / "runs")]
    assert benchmark.pedantic(main, args=(argv,), rounds=1, iterations=1, warmup_rounds=0) == 0
    total = benchmark.stats.stats.median
    runs = pd.read_parquet(tmp_path / "runs" / "quickstart" / "results" / "runs.parquet")
    # The encode stage is shared by every trial of a data source: count each distinct one once.
    per_stage = runs.drop_duplicates(["stage", "config_hash", "started_at"]).groupby("stage")["wall_s"].sum()
    seconds = {stage: round(float(value), 1) for stage, value in per_stage.items()}
    seconds["collect + report + start-up"] = round(total - sum(seconds.values()), 1)
    shares = {stage: f"{100 * value / total:.0f}%" for stage, value in seconds.items()}
    benchmark.extra_info.update(total_s=total, stage_s=seconds)
    print(f"\n[harness] quickstart end to end: {total:.0f} s; seconds: {json.dumps(seconds)}; shares: {shares}")
