"""compare: two results folders side by side, paired B − A differences, and what changed in the protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_build import FVD, TEMPORAL, write_synthetic_study

from reports import compare, tables
from reports.load import load_results


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same synthetic study twice; B has other noise, a new commit, a newer torch and a changed base config."""
    base = tmp_path_factory.mktemp("compare")
    run_a = write_synthetic_study(base / "a" / "synthetic", seed=0)
    run_b = write_synthetic_study(base / "b" / "synthetic", seed=1)
    study = json.loads((run_b / "results" / "study.json").read_text())
    study.update(git_sha="fedcba0987654321", versions={**study["versions"], "torch": "2.15.0"})
    (run_b / "results" / "study.json").write_text(json.dumps(study))
    runs = pd.read_parquet(run_b / "results" / "runs.parquet")
    runs.loc[runs["variant"] == "base", "config_hash"] = "1111beef"
    runs.to_parquet(run_b / "results" / "runs.parquet")
    return run_a, run_b


def test_the_paired_difference_is_b_minus_a_over_shared_seeds(two_runs: tuple[Path, Path]) -> None:
    run_a, run_b = two_runs
    a, b = load_results(run_a), load_results(run_b)
    paired = compare.paired_results(a, b)
    assert len(paired) == 3 * 3  # 3 variants × 3 metrics, every one in both runs
    row = paired[(paired["variant"] == "rot") & (paired["metric"] == f"{TEMPORAL} ↑")].iloc[0]
    mine = a.scores[(a.scores["variant"] == "rot") & (a.scores["metric"] == TEMPORAL)]
    theirs = b.scores[(b.scores["variant"] == "rot") & (b.scores["metric"] == TEMPORAL)]
    per_seed = theirs.groupby("seed")["value"].mean() - mine.groupby("seed")["value"].mean()
    assert row["Δ B − A [95% CI]"].startswith(tables.format_number(per_seed.mean()) + " [")
    assert row["paired over"] == "t over 2 paired seeds"


def test_the_same_run_against_itself_differs_by_zero_and_changes_nothing(two_runs: tuple[Path, Path]) -> None:
    a = load_results(two_runs[0])
    paired = compare.paired_results(a, a)
    assert set(paired["Δ B − A [95% CI]"].str.split().str[0]) == {"0"}
    assert (compare.protocol_changes(a, a)["changed"] == "").all()


def test_protocol_changes_name_the_commit_the_library_and_the_config_hash(two_runs: tuple[Path, Path]) -> None:
    changes = compare.protocol_changes(*(load_results(root) for root in two_runs)).set_index("field")
    changed = set(changes.index[changes["changed"] != ""])
    assert changed == {"git sha", "version: torch", "config hash: base"}
    assert changes.loc["config hash: base", "B"] == "1111beef"
    assert changes.loc["prompt set sha256", "A"] == "ab" * 32


def test_a_variant_in_one_run_only_is_marked(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    run_a = two_runs[0]
    run_c = write_synthetic_study(tmp_path / "c", seed=2)
    scores = pd.read_parquet(run_c / "results" / "scores.parquet")
    scores[scores["variant"] != "rot"].to_parquet(run_c / "results" / "scores.parquet")
    paired = compare.paired_results(load_results(run_a), load_results(run_c))
    only = paired[paired["variant"] == "rot"]
    assert set(only["note"]) == {"only in A"} and set(only["B mean [95% CI]"]) == {"—"}
    fvd = paired[(paired["variant"] == "base") & (paired["metric"] == f"{FVD} ↓")].iloc[0]
    assert fvd["paired over"] == "t over 2 paired seeds"


def test_main_writes_markdown_and_an_offline_html_page(two_runs: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert compare.main([str(two_runs[0]), str(two_runs[1]), "--out", str(tmp_path / "cmp")]) == 0
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    page = (tmp_path / "cmp" / "comparison.html").read_text()
    assert "## What changed in the protocol (3 of" in markdown and "| config hash: base |" in markdown
    assert "Δ B − A [95% CI]" in markdown and "Δ B − A [95% CI]" in page
    assert "<script" not in page and "http" not in page.replace("https://json-schema", "")
    assert "comparison.html" in capsys.readouterr().out


def test_main_names_a_missing_results_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert compare.main([str(tmp_path / "nowhere"), str(tmp_path / "nowhere")]) == 1
    assert "nowhere/results does not exist" in capsys.readouterr().err
