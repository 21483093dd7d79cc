"""Read a study's `results/` folder (schema in docs/results.md) into validated DataFrames."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrics.schema import LEVELS, STUDY_KEYS, TABLE_COLUMNS

EXPECTATIONS = "expectations.json"
EXPECTATION_KEYS = {"expectation": str, "held": bool, "metric": str, "detail": str}

# Tables a study can legitimately lack (a baselines-only study has no curves, an embedding-only one no videos).
OPTIONAL_TABLES = ("runs", "curves", "videos")


class ResultsNotFound(FileNotFoundError):
    """A results file the report needs is missing."""


class ResultsSchemaError(ValueError):
    """A results file does not follow docs/results.md."""


@dataclass
class Results:
    """Everything a report reads: the four tables, the protocol block and where they came from."""

    root: Path
    study: dict[str, Any]
    scores: pd.DataFrame
    runs: pd.DataFrame
    curves: pd.DataFrame
    videos: pd.DataFrame
    missing: list[str] = field(default_factory=list)  # optional tables that were absent
    expectations: pd.DataFrame | None = None  # results/expectations.json (verdicts); None when not written


def load_results(study_root: str | Path) -> Results:
    """Read and validate `study_root/results/*`; `extra` is parsed into dicts plus horizon/mode/ci columns."""
    root = Path(study_root)
    results_dir = root / "results"
    if not results_dir.is_dir():
        raise ResultsNotFound(
            f"{results_dir} does not exist: collect the study's results first (or check the path)"
        )
    study = load_study_json(results_dir / "study.json")
    tables: dict[str, pd.DataFrame] = {}
    missing: list[str] = []
    for name, columns in TABLE_COLUMNS.items():
        path = results_dir / f"{name}.parquet"
        if not path.exists():
            if name not in OPTIONAL_TABLES:
                raise ResultsNotFound(f"{path} is missing: collect the study's results first")
            missing.append(path.name)
            tables[name] = pd.DataFrame({column: [] for column in columns})
            continue
        tables[name] = read_table(path, columns)
    scores = parse_scores(tables["scores"], results_dir / "scores.parquet")
    expectations = load_expectations(results_dir / EXPECTATIONS)
    return Results(root, study, scores, tables["runs"], tables["curves"], tables["videos"], missing, expectations)


def load_scores(study_root: str | Path) -> pd.DataFrame:
    """scores.parquet of a study, validated and with `extra` parsed (see load_results)."""
    return load_results(study_root).scores


def load_expectations(path: Path) -> pd.DataFrame | None:
    """results/expectations.json as a table (expectation, held, metric, detail); None when the file is absent."""
    if not path.exists():
        return None
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ResultsSchemaError(f"{path} is not valid JSON ({error}); re-run the collect step") from None
    if not isinstance(entries, list):
        raise ResultsSchemaError(f"{path} must hold a JSON list of expectations (see docs/results.md)")
    for index, entry in enumerate(entries):
        wrong = [
            key for key, kind in EXPECTATION_KEYS.items()
            if not isinstance(entry, dict) or not isinstance(entry.get(key), kind)
        ]  # fmt: skip
        if wrong:
            raise ResultsSchemaError(
                f"{path}: entry {index} lacks or mistypes {wrong} (each needs expectation: str, held: bool, "
                "metric: str, detail: str; see docs/results.md); re-run the collect step"
            )
    columns = list(EXPECTATION_KEYS)
    return pd.DataFrame([{key: entry[key] for key in columns} for entry in entries], columns=columns)


def variant_order(study: dict[str, Any], present: Any = None) -> list[str]:
    """Baselines first (study.json order), then `variant_order`; restricted to `present` when given."""
    order = [*study.get("baselines", []), *study.get("variant_order", [])]
    order = list(dict.fromkeys(order))
    if present is None:
        return order
    present = list(dict.fromkeys(present))
    return [name for name in order if name in present] + sorted(name for name in present if name not in order)


def load_study_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ResultsNotFound(f"{path} is missing: collect the study's results first")
    try:
        study = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultsSchemaError(f"{path} is not valid JSON ({error}); re-run the collect step") from None
    absent = [key for key in STUDY_KEYS if key not in study]
    if absent:
        raise ResultsSchemaError(
            f"{path} lacks the keys {absent} (see docs/results.md); re-run the collect step"
        )
    return study


def read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read one parquet file, insisting on the documented columns."""
    frame = pd.read_parquet(path)
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise ResultsSchemaError(
            f"{path} lacks the columns {absent} (see docs/results.md); re-run the collect step"
        )
    return frame


def parse_scores(scores: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Check values and parse `extra`; adds columns horizon, mode, ci_low, ci_high (NaN/None where absent) and
    ranked (False for counterweight metrics such as motion, which are never marked best)."""
    scores = scores.copy()
    scores["value"] = pd.to_numeric(scores["value"], errors="coerce").astype(float)
    bad = ~np.isfinite(scores["value"].to_numpy())
    if bad.any():
        row = scores[bad].iloc[0]
        raise ResultsSchemaError(
            f"{path}: {int(bad.sum())} rows have a non-finite value (first: trial {row['trial_id']}, "
            f"metric {row['metric']}); the metric code must raise instead of writing NaN"
        )
    levels = set(scores["level"]) - set(LEVELS)
    if levels:
        raise ResultsSchemaError(f"{path}: unknown level(s) {sorted(levels)}; expected 'video' or 'set'")
    scores["extra"] = [
        _parse_extra(text, path, row) for text, row in zip(scores["extra"], scores.itertuples(), strict=True)
    ]
    scores["horizon"] = pd.array([extra.get("horizon") for extra in scores["extra"]], dtype="Int64")
    scores["mode"] = [extra.get("mode") for extra in scores["extra"]]
    for key in ("ci_low", "ci_high"):
        scores[key] = [float(extra[key]) if key in extra else math.nan for extra in scores["extra"]]
    scores["ranked"] = [bool(extra.get("ranked", True)) for extra in scores["extra"]]
    for column in ("higher_is_better", "reliable"):
        scores[column] = scores[column].astype(bool)
    return scores


def _parse_extra(text: Any, path: Path, row: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if text is None or pd.isna(text) or text == "":
        return {}
    try:
        extra = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        extra = None
    if not isinstance(extra, dict):
        raise ResultsSchemaError(
            f"{path}: `extra` of trial {row.trial_id}, metric {row.metric} is not a JSON object: {text!r}"
        )
    return extra
