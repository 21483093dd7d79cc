"""Summaries derived from scores.parquet: means with 95% intervals, best variant, differences, exports."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metrics.stats import mean_ci
from reports.load import Results, variant_order

LEVEL = 0.95
REFERENCE = "static"
UNRELIABLE = "⚠ unreliable: n ≤ dim"
BEST_MARK = "★"

SUMMARY_CAPTION = (
    "Mean and 95% Student-t confidence interval across training seeds (each trial's video rows are first "
    "averaged into one value per seed). With a single seed the interval is taken over videos instead, or is "
    "the stored bootstrap interval for set-level metrics; the `interval` column says which. "
    f"{BEST_MARK} marks the best reliable variant per metric (respecting its direction); motion metrics are "
    "counterweights to consistency (a still video scores 0) and are not ranked. "
    f"Δ is the difference to the `{REFERENCE}` baseline with a paired interval (over seeds, or over videos "
    f"with one seed). Rows flagged '{UNRELIABLE}' come from too few samples for the metric (e.g. a Fréchet "
    "distance with no more videos than feature dimensions) and are never marked best."
)


class SummaryError(ValueError):
    """The scores cannot be summarised as asked."""


@dataclass(frozen=True)
class Interval:
    """A mean with its interval; low/high are NaN when there is nothing to build one from (`how` says so)."""

    mean: float
    low: float
    high: float
    n: int
    how: str


def t_interval(values: Iterable[float], over: str, level: float = LEVEL) -> Interval:
    """Student-t interval of the mean (metrics.stats.mean_ci); one value has no interval (NaN bounds)."""
    values = np.asarray(list(values), dtype=float)
    if len(values) == 0:
        raise SummaryError(f"no values to summarise over {over}")
    ci = mean_ci(values, level)
    if not ci.defined:
        return Interval(ci.estimate, math.nan, math.nan, ci.n, f"none: 1 value over {over}")
    return Interval(ci.estimate, ci.low, ci.high, ci.n, f"t over {ci.n} {over}")


def group_interval(rows: pd.DataFrame) -> Interval:
    """The interval of one (metric, variant[, horizon]) group, following SUMMARY_CAPTION."""
    per_seed = rows.groupby("seed")["value"].mean()
    if len(per_seed) >= 2:
        return t_interval(per_seed, "seeds")
    if (rows["level"] == "set").all():
        row = rows.iloc[0]
        if len(rows) == 1 and math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"]):
            return Interval(
                float(row["value"]), float(row["ci_low"]), float(row["ci_high"]), 1, "bootstrap (1 seed)"
            )
        return t_interval(rows["value"], "values (1 seed)")
    return t_interval(rows["value"], "videos (1 seed)")


def paired_difference(rows: pd.DataFrame, reference: pd.DataFrame) -> Interval:
    """rows − reference, paired by seed when ≥ 2 seeds are shared, else by video within the one seed.

    A reference run once (a deterministic baseline) against ≥ 2 seeds: each seed's mean minus its one value.
    """
    mine = rows.groupby("seed")["value"].mean()
    theirs = reference.groupby("seed")["value"].mean()
    common = mine.index.intersection(theirs.index)
    if len(theirs) == 1 and len(mine) >= 2:
        return t_interval(mine - float(theirs.iloc[0]), "seeds − reference run once")
    if len(common) >= 2:
        return t_interval(mine[common] - theirs[common], "paired seeds")
    video_keys = ["seed", "prompt_id", "sample_idx"]
    if (rows["level"] == "video").all() and len(common) == 1:
        pairs = pd.merge(
            _keyed(rows[rows["seed"] == common[0]], video_keys),
            _keyed(reference[reference["seed"] == common[0]], video_keys),
            on=video_keys,
            suffixes=("", "_ref"),
        )
        if len(pairs) >= 1:
            return t_interval(pairs["value"] - pairs["value_ref"], "paired videos (1 seed)")
    difference = float(mine.mean() - theirs.mean())
    return Interval(difference, math.nan, math.nan, len(common), "none: nothing to pair")


def _keyed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    # Null ids (embedding rows have no sample_idx) must still match each other in the merge.
    keyed = rows[[*keys, "value"]].copy()
    for key in keys:
        keyed[key] = keyed[key].astype(object).where(keyed[key].notna(), "∅").astype(str)
    return keyed


def headline_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows that are not horizon curves, with the per-metric direction and level checked for consistency."""
    rows = scores[scores["horizon"].isna()]
    for column in ("higher_is_better", "level"):
        mixed = rows.groupby("metric")[column].nunique()
        if (mixed > 1).any():
            raise SummaryError(
                f"scores.parquet: metric {mixed[mixed > 1].index[0]!r} has mixed `{column}` values"
            )
    return rows


def summary(scores: pd.DataFrame, study: dict[str, Any], reference: str = REFERENCE) -> pd.DataFrame:
    """Per metric × variant: mean, 95% interval, best mark, difference to `reference`, reliability flag."""
    rows = headline_rows(scores)
    if rows.empty:
        raise SummaryError("scores.parquet has no non-horizon rows to summarise")
    order = variant_order(study, rows["variant"].unique())
    records = []
    for metric in sorted(rows["metric"].unique()):
        metric_rows = rows[rows["metric"] == metric]
        reference_rows = metric_rows[metric_rows["variant"] == reference]
        for variant in [name for name in order if name in set(metric_rows["variant"])]:
            group = metric_rows[metric_rows["variant"] == variant]
            estimate = deterministic_point(group) if is_deterministic(study, variant, group) else group_interval(group)
            reliable = bool(group["reliable"].all())
            if variant == reference or reference_rows.empty:
                difference = Interval(
                    math.nan, math.nan, math.nan, 0, "reference" if variant == reference else "no reference"
                )
            else:
                difference = paired_difference(group, reference_rows)
            records.append({
                "metric": metric, "variant": variant, "level": group["level"].iloc[0],
                "higher_is_better": bool(group["higher_is_better"].iloc[0]),
                "ranked": bool(group["ranked"].all()),
                "mean": estimate.mean, "ci_low": estimate.low, "ci_high": estimate.high,
                "n_seeds": int(group["seed"].nunique()), "n_obs": len(group), "interval": estimate.how,
                "reliable": reliable, "diff": difference.mean, "diff_low": difference.low,
                "diff_high": difference.high, "diff_interval": difference.how,
                "note": "" if reliable else UNRELIABLE,
            })  # fmt: skip
    table = pd.DataFrame.from_records(records)
    table["best"] = mark_best(table)
    return table


DETERMINISTIC = "deterministic: run once"


def is_deterministic(study: dict[str, Any], variant: str, rows: pd.DataFrame) -> bool:
    """A baseline run once: its number is exact, not a sample over seeds (no interval, no "n seeds")."""
    return variant in set(study.get("baselines", [])) and rows["seed"].nunique() == 1


def deterministic_point(rows: pd.DataFrame) -> Interval:
    """The one value of a deterministic run (its mean over videos), with no interval."""
    return Interval(float(rows["value"].mean()), math.nan, math.nan, 1, DETERMINISTIC)


def fair_headline(scores: pd.DataFrame, study: dict[str, Any], metric: str, control: str = "text_blind") -> pd.DataFrame:
    """Per variant: mean [95% CI] of `metric`, and its paired difference to the best baseline and to `control`."""
    rows = headline_rows(scores)
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        raise SummaryError(f"scores.parquet has no rows of metric {metric!r}")
    higher = bool(rows["higher_is_better"].iloc[0])
    baselines = [b for b in study.get("baselines", []) if b in set(rows["variant"])]
    means = {b: float(rows.loc[rows["variant"] == b, "value"].mean()) for b in baselines}
    best = (max if higher else min)(means, key=means.get) if means else None
    records = []
    for variant in variant_order(study, rows["variant"].unique()):
        group = rows[rows["variant"] == variant]
        if group.empty:
            continue
        deterministic = is_deterministic(study, variant, group)
        estimate = deterministic_point(group) if deterministic else group_interval(group)
        record = {"variant": variant, "runs": DETERMINISTIC if deterministic else f"{group['seed'].nunique()} seeds",
                  "mean [95% CI]": format_interval(estimate.mean, estimate.low, estimate.high)}
        for label, other in ((f"Δ vs best baseline ({best})", best), (f"Δ vs {control}", control)):
            theirs = rows[rows["variant"] == other] if other else rows.iloc[:0]
            if variant in (other, *baselines) or theirs.empty:
                record[label] = "—"
                continue
            difference = paired_difference(group, theirs)
            worse = (difference.high < 0) if higher else (difference.low > 0)
            record[label] = format_interval(difference.mean, difference.low, difference.high) + (" ✗" if worse else "")
        records.append(record)
    return pd.DataFrame.from_records(records)


FAIR_HEADLINE_CAPTION = (
    "Δ: paired difference over training seeds (against a deterministic baseline, run once: each seed minus its "
    "one value) with a 95% Student-t interval; ✗ marks a variant whose whole interval lies on the worse side of "
    "the best baseline or of the text-blind control."
)


def budget_table(runs: pd.DataFrame, study: dict[str, Any]) -> pd.DataFrame:
    """Per trained variant: optimiser steps, examples seen and training seconds (mean over seeds; ranges shown)."""
    train = runs[(runs["stage"] == "train")]
    columns = ["variant", "seeds", "steps", "examples", "train s"]
    records = []
    for variant in variant_order(study, train["variant"].unique()):
        group = train[train["variant"] == variant]
        if group.empty:
            continue
        records.append({"variant": variant, "seeds": int(group["seed"].nunique()),
                        "steps": _span(group["steps"]), "examples": _span(group["examples"]),
                        "train s": _span(group["train_wall_s"], digits=1)})
    return pd.DataFrame.from_records(records, columns=columns)


def _span(values: pd.Series, digits: int = 0) -> str:
    """One value when all seeds agree, else min–max; "—" when not recorded."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "—"
    low, high = float(values.min()), float(values.max())
    fmt = f"{{:.{digits}f}}"
    return fmt.format(low) if low == high else f"{fmt.format(low)}–{fmt.format(high)}"


def mark_best(table: pd.DataFrame) -> pd.Series:
    """True for the best reliable variant(s) of each ranked metric (ties all marked; counterweights never)."""
    best = pd.Series(False, index=table.index)
    for _, group in table[table["reliable"] & table["ranked"]].groupby("metric"):
        target = group["mean"].max() if group["higher_is_better"].iloc[0] else group["mean"].min()
        best[group.index[group["mean"] == target]] = True
    return best


def horizon_table(scores: pd.DataFrame, study: dict[str, Any]) -> pd.DataFrame:
    """Error along the rollout horizon: per metric × mode × variant × horizon, mean and 95% interval."""
    rows = scores[scores["horizon"].notna()].copy()
    columns = [
        "metric",
        "mode",
        "variant",
        "horizon",
        "mean",
        "ci_low",
        "ci_high",
        "n_seeds",
        "interval",
        "reliable",
    ]
    if rows.empty:
        return pd.DataFrame({column: [] for column in columns})
    rows["mode"] = rows["mode"].fillna("step")
    order = {name: i for i, name in enumerate(variant_order(study, rows["variant"].unique()))}
    records = []
    for (metric, mode, variant, horizon), group in rows.groupby(["metric", "mode", "variant", "horizon"]):
        estimate = group_interval(group)
        records.append({
            "metric": metric, "mode": mode, "variant": variant, "horizon": int(horizon), "mean": estimate.mean,
            "ci_low": estimate.low, "ci_high": estimate.high, "n_seeds": int(group["seed"].nunique()),
            "interval": estimate.how, "reliable": bool(group["reliable"].all()),
        })  # fmt: skip
    table = pd.DataFrame.from_records(records, columns=columns)
    table["_order"] = table["variant"].map(order)
    table["_mode"] = table["mode"] != "step"  # step before chain
    keys = ["metric", "_mode", "mode", "_order", "horizon"]
    return table.sort_values(keys).drop(columns=["_order", "_mode"]).reset_index(drop=True)


def format_horizon(table: pd.DataFrame) -> pd.DataFrame:
    """The horizon table as display strings: one row per metric × mode × variant, one column per horizon."""
    cells = table.assign(cell=[
        format_interval(row.mean, row.ci_low, row.ci_high) + ("" if row.reliable else " ⚠")
        for row in table.itertuples()
    ])  # fmt: skip
    keys = ["metric", "mode", "variant"]
    wide = cells.pivot(index=keys, columns="horizon", values="cell")
    wide = wide.loc[list(dict.fromkeys(zip(*(table[key] for key in keys), strict=True)))].fillna("—")
    wide.columns = [f"h={horizon}" for horizon in wide.columns]
    return wide.reset_index()


@dataclass(frozen=True)
class Switch:
    """Two variants that differ in exactly one ablation axis: `axis` goes from `before` to `after`."""

    axis: str
    before: str
    after: str
    value_before: str
    value_after: str

    @property
    def change(self) -> str:
        """The switch itself, e.g. "rotation_layer: off→plane" (one panel of the ablation figure)."""
        return f"{self.axis}: {self.value_before}→{self.value_after}"

    @property
    def label(self) -> str:
        return f"{self.change} ({self.before} → {self.after})"


def switch_pairs(study: dict[str, Any]) -> list[Switch]:
    """Pairs of trained variants whose factors differ in exactly one axis, that axis at its reference level first.

    study.json `axes` lists every matrix axis with its levels (the first is the reference) and `variants` each
    variant's factors (axis -> level); any axis a study declares takes part, whatever its name.
    """
    order = variant_order(study)
    baselines = set(study.get("baselines", []))
    variants = {
        name: factors
        for name, factors in sorted(study["variants"].items(), key=lambda item: _position(order, item[0]))
        if name not in baselines and factors
    }
    pairs = []
    for axis, levels in study["axes"].items():
        reference = levels[0]
        for before, factors_before in variants.items():
            if factors_before.get(axis) != reference:
                continue
            for after, factors_after in variants.items():
                if factors_after.keys() != factors_before.keys() or factors_after[axis] == reference:
                    continue
                changed = [key for key in factors_before if factors_before[key] != factors_after[key]]
                if changed == [axis]:
                    pairs.append(Switch(axis, before, after, str(reference), str(factors_after[axis])))
    return pairs


def _position(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def headline_metric(scores: pd.DataFrame, study: dict[str, Any]) -> str:
    """study.json `headline_metric` when given, else the first video-level metric by name (else the first metric)."""
    rows = headline_rows(scores)
    metrics = sorted(rows["metric"].unique())
    if not metrics:
        raise SummaryError("scores.parquet has no non-horizon rows: no headline metric")
    chosen = study.get("headline_metric")
    if chosen is not None:
        if chosen not in metrics:
            raise SummaryError(
                f"study.json headline_metric {chosen!r} is not in scores.parquet (has {metrics})"
            )
        return chosen
    video = sorted(rows.loc[rows["level"] == "video", "metric"].unique())
    return (video or metrics)[0]


def ablation_table(scores: pd.DataFrame, study: dict[str, Any], metric: str,
                   runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """For each switch, the paired difference (after − before) of `metric` with its 95% interval.

    With `runs` (runs.parquet), each side's training budget too: steps and train seconds (budget_table's cells).
    """
    rows = headline_rows(scores)
    rows = rows[rows["metric"] == metric]
    columns = ["switch", "change", "axis", "before", "after", "diff", "diff_low", "diff_high", "n", "interval",
               "higher_is_better", "reliable"]  # fmt: skip
    budget = budget_table(runs, study).set_index("variant") if runs is not None else None
    records = []
    for switch in switch_pairs(study):
        before, after = rows[rows["variant"] == switch.before], rows[rows["variant"] == switch.after]
        if before.empty or after.empty:
            continue
        difference = paired_difference(after, before)
        records.append({
            "switch": switch.label, "change": switch.change, "axis": switch.axis, "before": switch.before, "after": switch.after,
            "diff": difference.mean, "diff_low": difference.low, "diff_high": difference.high, "n": difference.n,
            "interval": difference.how, "higher_is_better": bool(rows["higher_is_better"].iloc[0]),
            "reliable": bool(before["reliable"].all() and after["reliable"].all()),
        })  # fmt: skip
        if budget is not None:
            for side, name in (("before", switch.before), ("after", switch.after)):
                for key in ("steps", "train s"):
                    records[-1][f"{key} {side}"] = budget[key].get(name, "—")
    if budget is not None:
        columns += [f"{key} {side}" for side in ("before", "after") for key in ("steps", "train s")]
    return pd.DataFrame.from_records(records, columns=columns)


def format_number(value: float) -> str:
    """4 significant digits; near ±1 (cosines, consistencies) enough decimals to show 3 digits of the gap to 1."""
    if value is None or not math.isfinite(value):
        return "—"
    gap = abs(1.0 - abs(value))
    if 0.0 < gap < 0.01:
        decimals = min(12, 2 - math.floor(math.log10(gap)))
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"


def format_interval(mean: float, low: float, high: float) -> str:
    text = format_number(mean)
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{format_number(low)}, {format_number(high)}]"
    return text


def format_summary(table: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """The summary as display strings: one row per metric × variant, best marked with ★."""
    direction = table["higher_is_better"].map({True: "↑", False: "↓"})
    return pd.DataFrame({
        "metric": table["metric"] + " " + direction,
        "variant": table["variant"],
        "mean [95% CI]": [
            format_interval(row.mean, row.ci_low, row.ci_high) + (f" {BEST_MARK}" if row.best else "")
            for row in table.itertuples()
        ],
        "n seeds": [DETERMINISTIC if row.interval == DETERMINISTIC else str(row.n_seeds) for row in table.itertuples()],
        "interval": table["interval"],
        f"Δ vs {reference} [95% CI]": [format_interval(row.diff, row.diff_low, row.diff_high) for row in table.itertuples()],
        "note": table["note"],
    })  # fmt: skip


# Metric families shown in the overview table (the full table has every metric); a name starts with one.
OVERVIEW_PREFIXES = ("embed_cosine[", "embed_disp_cosine[", "clip_temporal_consecutive[", "clip_text_alignment[",
                     "pixel_motion", "fvd[", "fid[")


def key_metrics(metrics: Iterable[str], headline: str | None = None) -> list[str]:
    """The headline first, then the metrics of the OVERVIEW_PREFIXES families by name."""
    keep = [m for m in dict.fromkeys(metrics) if m == headline or m.startswith(OVERVIEW_PREFIXES)]
    return sorted(keep, key=lambda m: (m != headline, m))


# At most this many metrics get a figure of their own; the rest are in the tables (every metric in all_metrics).
DETAIL_LIMIT = 12


def metric_family(metric: str) -> str:
    """The name before the protocol bracket: `embed_cosine[step,start=true]` -> `embed_cosine`."""
    return metric.partition("[")[0]


def protocol_params(metric: str) -> set[str]:
    """The protocol parameters in a metric's brackets: `embed_cosine[step,start=true]` -> {step, start=true}."""
    _, bracket, inside = metric.partition("[")
    return set(inside.rstrip("]").split(",")) if bracket else set()


def detail_metrics(metrics: Iterable[str], headline: str | None = None, named: Iterable[str] = (),
                   limit: int = DETAIL_LIMIT) -> list[str]:  # fmt: skip
    """The metrics that get a figure of their own, at most `limit`, in this order: the headline, the metrics the
    expectations name (`named`), one per remaining family (the member sharing most protocol parameters with
    the headline, then the one with fewest others, then by name), then the rest of the headline's family. The headline is always kept."""
    present = sorted(dict.fromkeys(metrics))
    target = protocol_params(headline) if headline else set()

    def closest_first(names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda name: (-len(protocol_params(name) & target),
                                               len(protocol_params(name) - target), name))

    chosen = [headline] if headline in present else []
    chosen += [name for name in dict.fromkeys(named) if name in present and name not in chosen]
    for family in dict.fromkeys(metric_family(name) for name in present):
        if not any(metric_family(name) == family for name in chosen):
            chosen.append(closest_first(name for name in present if metric_family(name) == family)[0])
    if headline is not None:
        chosen += closest_first(name for name in present if metric_family(name) == metric_family(headline))
    return list(dict.fromkeys(chosen))[: max(limit, 1)]


def overview(table: pd.DataFrame, study: dict[str, Any], headline: str | None = None) -> pd.DataFrame:
    """Variants × key metrics, means only (★ = best reliable, ⚠ = unreliable): a page-sized first look."""
    keep = key_metrics(table["metric"], headline)
    if not keep:
        return pd.DataFrame()
    rows = table[table["metric"].isin(keep)]
    order = variant_order(study, rows["variant"].unique())
    records = []
    for variant in order:
        record: dict[str, str] = {"variant": variant}
        for metric in keep:
            cell = rows[(rows["metric"] == metric) & (rows["variant"] == variant)]
            if cell.empty:
                record[metric] = "—"
                continue
            row = cell.iloc[0]
            mark = f" {BEST_MARK}" if row["best"] else (" ⚠" if not row["reliable"] else "")
            record[metric] = format_number(row["mean"]) + mark
        records.append(record)
    arrows = {m: ("↑" if table.loc[table["metric"] == m, "higher_is_better"].iloc[0] else "↓") for m in keep}
    return pd.DataFrame.from_records(records).rename(columns={m: f"{m} {arrows[m]}" for m in keep})


def protocol_table(results: Results) -> pd.DataFrame:
    """The protocol block: what was run, on what, with which code, as (field, value) rows."""
    study = results.study
    gpus = sorted({str(name) for name in results.runs["gpu_name"].dropna() if name})
    versions = study.get("versions") or {}
    fields = [
        ("study", f"{study['study']}: {study.get('description') or ''}".rstrip(": ")),
        ("prompt set", _prompt_set(study.get("prompt_set"))),
        ("backend", "none (not used)" if "backend" in study and study["backend"] is None
         else _settings(study.get("backend"), lead=("name",))),
        ("data", _data(study.get("data"))),
        ("generation", _generation(study.get("generation"))),
        ("seeds", f"training {study.get('seeds')}, study seed {_known(study.get('study_seed'))}"
                  + _run_once(results.scores, study)),
        ("scored on", scored_on(results.scores)),
        ("skipped videos", skipped_summary(study)),
        *lpips_field(study),
        ("git", _known(study.get("git_sha"))[:12] + (" (dirty: uncommitted changes)" if study.get("git_dirty") else "")),
        ("libraries", ", ".join(f"{name} {version}" for name, version in sorted(versions.items())) or "not recorded"),
        ("device", _known(study.get("device")) + (f" ({', '.join(gpus)})" if gpus else "")),
        ("created", _known(study.get("created_at"))),
    ]  # fmt: skip
    if results.missing:
        fields.append(("absent tables", ", ".join(results.missing)))
    return pd.DataFrame(fields, columns=["field", "value"])


def lpips_field(study: dict[str, Any]) -> list[tuple[str, str]]:
    """The protocol row on LPIPS when the study scores paired metrics: its backbone, or that it is not computed."""
    lpips = (study.get("evaluation_protocol") or {}).get("lpips")
    return [("LPIPS", str(lpips.get("detail") or ""))] if lpips else []


SKIPPED_COLUMNS = ("encode", "video", "reason")


def skipped_table(study: dict[str, Any]) -> pd.DataFrame:
    """study.json `skipped`: each source file the encode stages left out, with its reason (empty when none)."""
    entries = study.get("skipped") or []
    return pd.DataFrame([{key: str(entry.get(key, "")) for key in SKIPPED_COLUMNS} for entry in entries],
                        columns=list(SKIPPED_COLUMNS))  # fmt: skip


def skipped_users(study: dict[str, Any]) -> str:
    """What is computed from the videos the encode stage kept: the store and the scores, and FVD's reference
    set when the study scores FVD."""
    fvd = (study.get("evaluation_protocol") or {}).get("fvd")
    return "the store, every score and FVD's reference set" if fvd else "the store and every score"


def skipped_summary(study: dict[str, Any]) -> str:
    """The protocol line on skipped videos: how many, and that every score used the rest."""
    reference = ((study.get("evaluation_protocol") or {}).get("evaluation_set") or {}).get("n_reference_skipped")
    clips = f"; FVD's reference set left out {reference} more clip(s)" if reference else ""
    if "skipped" not in study:
        return "not recorded" + clips
    count = len(study["skipped"] or [])
    if not count:
        return "none: every source file was encoded" + clips
    return (f"{count} source file(s) left out by the encode stage (listed under Skipped videos); "
            f"{skipped_users(study)} use the rest{clips}")


SCORE_KEYS = ("trial_id", "variant", "seed", "metric", "level", "n", "prompt_id", "sample_idx")


def scored_on(scores: pd.DataFrame) -> str:
    """What one trial's number of a metric is over: the held-out videos of each split (embedding metrics), the
    prompts and samples (video metrics) and the videos of a set metric, as the score rows record them (a range
    when metrics or trials differ)."""
    if scores.empty or not set(SCORE_KEYS) <= set(scores.columns):
        return "not recorded"
    rows = scores[scores["level"] == "video"]
    held_out = rows[rows["prompt_id"].notna() & rows["sample_idx"].isna()]
    generated = rows[rows["prompt_id"].notna() & rows["sample_idx"].notna()]
    parts = []
    if not held_out.empty:
        split = held_out["metric"].map(_split_of)
        counts = held_out.groupby([split, held_out["trial_id"], held_out["metric"]])["prompt_id"].nunique()
        per_split = [f"{_span(counts[name])} {name}".rstrip() for name in sorted(split.unique(), key=_split_rank)]
        parts.append(" + ".join(per_split) + " held-out videos (embedding metrics)")
    if not generated.empty:
        keys = ["trial_id", "metric"]
        by_number = generated.groupby(keys)
        prompts, samples = by_number["prompt_id"].nunique(), by_number["sample_idx"].nunique()
        videos = generated.drop_duplicates([*keys, "prompt_id", "sample_idx"]).groupby(keys).size()
        parts.append(f"{_span(prompts)} prompts × {_span(samples)} sample(s) = {_span(videos)} generated videos "
                     "(video metrics)")
    sets = scores[scores["level"] == "set"]
    if not sets.empty:
        families = ", ".join(dict.fromkeys(sorted(sets["metric"].map(metric_family))))
        parts.append(f"{_span(sets['n'])} videos per set ({families})")
    return "each trial's number is over " + "; ".join(parts) if parts else "no per-video rows"


def _split_of(metric: str) -> str:
    """The held-out split a metric's name says (`split=test`), else "" (a name from before splits)."""
    named = [param[len("split="):] for param in protocol_params(metric) if param.startswith("split=")]
    return named[0] if named else ""


def _split_rank(split: str) -> tuple[int, str]:
    order = ("test", "test_unseen", "val")
    return (order.index(split) if split in order else len(order), split)


def _run_once(scores: pd.DataFrame, study: dict[str, Any]) -> str:
    """"; deterministic baselines run once: static" when a baseline has one seed among several."""
    if scores.empty or "variant" not in scores.columns or len(study.get("seeds") or []) < 2:
        return ""
    seeds = scores.groupby("variant")["seed"].nunique()
    once = [name for name in study.get("baselines", []) if seeds.get(name) == 1]
    return f"; run once (deterministic): {', '.join(once)}" if once else ""


def _known(value: Any) -> str:
    return "not recorded" if value is None else str(value)


def _settings(settings: dict[str, Any] | None, lead: tuple[str, ...] = (), skip: Iterable[str] = ()) -> str:
    """`lead values, key=value, …` for the keys that are set (None values left out)."""
    if not settings:
        return "not recorded"
    head = " ".join(str(settings[key]) for key in lead if settings.get(key) is not None)
    rest = ", ".join(
        f"{key}={value}"
        for key, value in sorted(settings.items())
        if key not in {*lead, *skip} and value is not None
    )
    return f"{head} ({rest})" if head and rest else head or rest


def _prompt_set(prompt_set: dict[str, Any] | None) -> str:
    if not prompt_set:
        return "none (no videos were generated)"
    sha = _known(prompt_set.get("sha256"))[:16]
    return f"{_known(prompt_set.get('name'))} ({_known(prompt_set.get('n'))} prompts), sha256 {sha}…"


def _data(data: dict[str, Any] | None) -> str:
    if not data:
        return "not recorded"
    return (
        f"{_known(data.get('source'))}: {_known(data.get('n_train'))} train / {_known(data.get('n_val'))} val "
        f"videos, {_known(data.get('frames'))} frames at {_known(data.get('fps'))} fps"
    )


def _generation(generation: dict[str, Any] | None) -> str:
    if not generation or generation.get("enabled") is False:
        return "none"
    size = _known(generation.get("size"))
    lead = f"{_known(generation.get('frames'))} frames, {size}×{size} px, {_known(generation.get('fps'))} fps"
    rest = _settings(generation, skip=("frames", "size", "fps", "enabled", "prompts", "prompt_tags"))
    return f"{lead}; {rest}" if rest != "not recorded" else lead


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub pipe table (no `tabulate` needed)."""
    cells = [[str(column) for column in table.columns]] + [
        [_cell(value) for value in row] for row in table.itertuples(index=False)
    ]
    escaped = [[text.replace("|", "\\|") for text in row] for row in cells]
    lines = ["| " + " | ".join(row) + " |" for row in escaped]
    lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
    return "\n".join(lines) + "\n"


LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "★": r"$\star$", "⚠": r"(!)",
    "≤": r"$\leq$", "Δ": r"$\Delta$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "→": r"$\to$", "—": "--",
    "×": r"$\times$", "∅": r"$\emptyset$",
}  # fmt: skip


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular with LaTeX special characters escaped."""

    def escape(text: str) -> str:
        return "".join(LATEX_ESCAPES.get(char, char) for char in text)

    header = " & ".join(escape(str(column)) for column in table.columns) + r" \\"
    body = [
        " & ".join(escape(_cell(value)) for value in row) + r" \\" for row in table.itertuples(index=False)
    ]
    return "\n".join([
        r"\begin{tabular}{" + "l" * len(table.columns) + "}", r"\toprule", header, r"\midrule", *body,
        r"\bottomrule", r"\end{tabular}",
    ]) + "\n"  # fmt: skip


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value)
    return "" if value is None else str(value)
