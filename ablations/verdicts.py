"""Verdicts: a study's declared expectations checked against scores.parquet -> results/expectations.json.

The only rule: for each name in `beats`, the variant's 95 % Student-t interval over training seeds (of its
per-seed mean over videos) lies strictly on the better side, in the metric's direction, of the other's interval.
A deterministic baseline is run once: its interval is its one value (a point), never a fake spread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.study import Expectation
from metrics.stats import mean_ci
from spliter.atomic import write_atomic

LEVEL = 0.95
EXPECTATIONS_FILE = "expectations.json"


@dataclass(frozen=True)
class Verdict:
    expectation: str  # the sentence a person reads
    held: bool
    metric: str  # the exact metric name the verdict was computed on
    detail: str  # the numbers behind it

    def as_json(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "held": self.held, "metric": self.metric, "detail": self.detail}


@dataclass(frozen=True)
class SeedInterval:
    mean: float
    low: float
    high: float
    n_seeds: int

    def text(self) -> str:
        if self.n_seeds == 1:
            return f"{self.mean:.4f} (1 run)"
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}] over {self.n_seeds} seeds"


def seed_interval(scores: pd.DataFrame, variant: str, metric: str) -> SeedInterval:
    """The variant's per-seed means over its rows of `metric`, summarised by a t interval (a point for one run)."""
    rows = scores[(scores["variant"] == variant) & (scores["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"scores.parquet has no rows of metric {metric!r} for {variant!r}; check the expectation's "
                         "metric name against the metrics the study scores")
    per_seed = rows.groupby("seed")["value"].mean()
    ci = mean_ci(per_seed.to_numpy(), LEVEL)
    return SeedInterval(ci.estimate, ci.low, ci.high, ci.n)


def expand(expectation: Expectation) -> list[tuple[str, str]]:
    """(mode label, metric) pairs: one per mode, or the metric as given without modes."""
    if not expectation.modes:
        return [("", expectation.metric)]
    return [(mode, expectation.metric.format(mode=mode)) for mode in expectation.modes]


def _direction(scores: pd.DataFrame, metric: str) -> bool:
    directions = scores.loc[scores["metric"] == metric, "higher_is_better"].unique()
    if len(directions) == 0:
        raise ValueError(f"scores.parquet has no rows of metric {metric!r}; check the expectation's metric name "
                         "(`{mode}` expands to each of its modes) against the metrics the study scores")
    if len(directions) != 1:
        raise ValueError(f"scores.parquet: metric {metric!r} has {len(directions)} directions; expected one")
    return bool(directions[0])


def judge(scores: pd.DataFrame, expectations: list[Expectation]) -> list[Verdict]:
    """One verdict per expectation × mode × beaten name."""
    verdicts = []
    for expectation in expectations:
        for mode, metric in expand(expectation):
            higher = _direction(scores, metric)
            mine = seed_interval(scores, expectation.variant, metric)
            for other in expectation.beats:
                theirs = seed_interval(scores, other, metric)
                held = mine.low > theirs.high if higher else mine.high < theirs.low
                where = f" in {mode} mode" if mode else ""
                verdicts.append(Verdict(
                    expectation=f"{expectation.variant} beats {other}{where}",
                    held=bool(held),
                    metric=metric,
                    detail=f"{expectation.variant} {mine.text()} vs {other} {theirs.text()} "
                           f"({'higher' if higher else 'lower'} is better; intervals must not overlap)",
                ))
    return verdicts


def write_verdicts(verdicts: list[Verdict], results_dir: Path) -> Path:
    """results/expectations.json (docs/results.md), written atomically."""
    path = results_dir / EXPECTATIONS_FILE
    write_atomic(path, json.dumps([v.as_json() for v in verdicts], indent=2))
    return path


def read_failed(results_dir: Path) -> list[dict[str, Any]]:
    """The failed entries of results/expectations.json; [] when the file is absent (nothing declared)."""
    path = results_dir / EXPECTATIONS_FILE
    if not path.exists():
        return []
    return [entry for entry in json.loads(path.read_text()) if not entry["held"]]
