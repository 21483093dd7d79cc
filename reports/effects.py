"""Paired differences of every variant to one reference variant, per metric: the data of the overview heatmap."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from reports import tables
from reports.load import variant_order

MATRIX_COLUMNS = (
    "variant", "metric", "reference", "diff", "diff_low", "diff_high", "n", "interval", "higher_is_better",
    "reliable", "ranked", "gain", "excludes_zero",
)  # fmt: skip


def reference_variant(study: dict[str, Any], present: Iterable[str] | None = None) -> str:
    """The variant with every axis of study.json `axes` at its first (reference) level; else `static`; else
    the first trained variant in study order."""
    order = variant_order(study, present)
    variants = study.get("variants") or {}
    axes = study.get("axes") or {}
    if axes:
        for name in order:
            values = variants.get(name) or {}
            if all(axis in values and str(values[axis]) == str(levels[0]) for axis, levels in axes.items() if levels):
                return name
    if tables.REFERENCE in order:
        return tables.REFERENCE
    trained = [name for name in order if name not in set(study.get("baselines", []))]
    if not (trained or order):
        raise tables.SummaryError("study.json names no variants: no reference variant")
    return (trained or order)[0]


def difference_matrix(
    scores: pd.DataFrame, study: dict[str, Any], reference: str, metrics: Iterable[str] | None = None,
    variants: Iterable[str] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Per variant × metric: variant − `reference`, paired (tables.paired_difference) with its 95% interval.

    `gain` is the difference signed so that positive is better (lower-is-better metrics flipped);
    `excludes_zero` says the interval lies on one side of 0; `ranked` is False for counterweight metrics
    (motion), which have no better or worse. The reference's own row is NaN with
    interval "reference".
    """
    rows = tables.headline_rows(scores)
    if metrics is not None:
        rows = rows[rows["metric"].isin(list(metrics))]
    if rows.empty:
        raise tables.SummaryError("no non-horizon scores for the metrics asked for: no difference matrix")
    order = [name for name in variant_order(study, rows["variant"].unique()) if variants is None or name in set(variants)]
    metric_order = list(dict.fromkeys(metrics)) if metrics is not None else sorted(rows["metric"].unique())
    records = []
    for metric in [m for m in metric_order if m in set(rows["metric"])]:
        metric_rows = rows[rows["metric"] == metric]
        base = metric_rows[metric_rows["variant"] == reference]
        higher = bool(metric_rows["higher_is_better"].iloc[0])
        for variant in order:
            group = metric_rows[metric_rows["variant"] == variant]
            if group.empty:
                continue
            if variant == reference or base.empty:
                how = "reference" if variant == reference else f"no {reference} rows"
                difference = tables.Interval(math.nan, math.nan, math.nan, 0, how)
            else:
                difference = tables.paired_difference(group, base)
            sign = 1.0 if higher else -1.0
            excludes = math.isfinite(difference.low) and (difference.low > 0 or difference.high < 0)
            records.append({
                "variant": variant, "metric": metric, "reference": reference, "diff": difference.mean,
                "diff_low": difference.low, "diff_high": difference.high, "n": difference.n,
                "interval": difference.how, "higher_is_better": higher,
                "reliable": bool(group["reliable"].all() and (base.empty or base["reliable"].all())),
                "ranked": bool(group["ranked"].all()),
                "gain": sign * difference.mean, "excludes_zero": bool(excludes),
            })  # fmt: skip
    return pd.DataFrame.from_records(records, columns=list(MATRIX_COLUMNS))
