"""results/summary.json: the study's numbers for leaderboards and scripts (schema in docs/results.md).

Per variant and metric: mean, 95% interval, n, direction, the paired difference to the reference; plus the
study's verdicts and protocol. Derived from the results tables every time it is written, like the page.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reports import tables
from reports.load import Results, load_results
from spliter.atomic import write_atomic

SCHEMA_VERSION = 1
SUMMARY = "summary.json"
LEVEL = tables.LEVEL


def number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def interval(low: Any, high: Any, over: str) -> dict[str, Any]:
    return {"low": number(low), "high": number(high), "level": LEVEL, "over": over}


def protocol(results: Results) -> dict[str, Any]:
    """What the numbers were made with: code, libraries, prompts, data, seeds, and each trial's config hash."""
    study, runs = results.study, results.runs
    hashes = (
        runs.dropna(subset=["config_hash"]).drop_duplicates("trial_id").set_index("trial_id")["config_hash"]
        if not runs.empty else pd.Series(dtype=str)
    )  # fmt: skip
    prompt_set = study.get("prompt_set") or {}
    return {
        "git_sha": study.get("git_sha"), "git_dirty": study.get("git_dirty"),
        "versions": study.get("versions") or {}, "device": study.get("device"),
        "prompt_set": {"name": prompt_set.get("name"), "sha256": prompt_set.get("sha256"), "n": prompt_set.get("n")},
        "backend": study.get("backend"), "data": study.get("data"), "generation": study.get("generation"),
        "seeds": study.get("seeds"), "study_seed": study.get("study_seed"), "axes": study.get("axes"),
        "config_hashes": {str(trial): str(value) for trial, value in hashes.items()},
        "created_at": study.get("created_at"),
    }  # fmt: skip


def summary_document(results: Results, reference: str = tables.REFERENCE) -> dict[str, Any]:
    """The summary.json content as a dict (see docs/results.md for the schema)."""
    study = results.study
    table = tables.summary(results.scores, study, reference=reference)
    rows = []
    for row in table.itertuples():
        rows.append({
            "variant": row.variant, "metric": row.metric, "level": row.level,
            "direction": "higher" if row.higher_is_better else "lower",
            "mean": number(row.mean), "interval": interval(row.ci_low, row.ci_high, row.interval),
            "n_seeds": int(row.n_seeds), "n_obs": int(row.n_obs), "reliable": bool(row.reliable),
            "ranked": bool(row.ranked), "best": bool(row.best),
            "difference_to_reference": {
                "reference": reference, "mean": number(row.diff),
                "interval": interval(row.diff_low, row.diff_high, row.diff_interval),
            },
        })  # fmt: skip
    expectations = results.expectations
    verdicts = None if expectations is None else [
        {key: (bool(value) if key == "held" else str(value)) for key, value in entry.items()}
        for entry in expectations.to_dict("records")
    ]  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION, "study": study["study"],
        "question": study.get("question") or study.get("description"), "world": study.get("world"),
        "headline_metric": tables.headline_metric(results.scores, study), "reference": reference,
        "variants": [name for name in dict.fromkeys(table["variant"])], "protocol": protocol(results),
        "verdicts": verdicts, "results": rows,
    }  # fmt: skip


def write_summary(study_root: str | Path) -> Path:
    """Write STUDY_ROOT/results/summary.json from the results tables; returns its path."""
    results = load_results(study_root)
    path = Path(study_root) / "results" / SUMMARY
    text = json.dumps(summary_document(results), indent=2, ensure_ascii=False, allow_nan=False)
    write_atomic(path, text + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m reports.summary STUDY_ROOT`: write STUDY_ROOT/results/summary.json."""
    parser = argparse.ArgumentParser(prog="python -m reports.summary", description=main.__doc__)
    parser.add_argument("study_root", help="the study folder, e.g. runs/quickstart (holds results/)")
    args = parser.parse_args(argv)
    try:
        path = write_summary(args.study_root)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"summary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
