"""Figures of a study: one function per figure, each returning a matplotlib Figure (no pyplot state)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reports.load import variant_order

DPI = 120
STYLE = "whitegrid"

POINTS_CAPTION = (
    "Points: mean per variant; error bars: the 95% interval of the headline table (Student-t across training "
    "seeds; over videos or the stored bootstrap interval when there is one seed). Hollow points with ⚠ are "
    "unreliable; ★ marks the best reliable variant."
)
HORIZON_CAPTION = (
    "Error along the rollout horizon, one panel per rollout mode; lines: mean, bands: 95% Student-t interval "
    "across training seeds (over videos when there is one seed)."
)
CURVES_CAPTION = (
    "Training (solid) and validation (dashed) curves; lines: mean across training seeds, bands: seaborn's 95% "
    "bootstrap interval across seeds (errorbar=('ci', 95), seed 0)."
)
ABLATION_CAPTION = (
    "Effect of each switch: paired difference (after − before) of the headline metric between variants that "
    "differ only in that switch, with its 95% Student-t interval over paired seeds (over paired videos with "
    "one seed). The dotted line is no effect."
)


class NothingToPlot(ValueError):
    """The input holds no rows for the figure asked for."""


def palette(study: dict[str, Any], present: Iterable[str] = ()) -> dict[str, tuple[float, float, float]]:
    """variant → colour, fixed by study.json: baselines in greys, trained variants in colour-blind-safe hues."""
    order = variant_order(study)
    order += sorted(set(present) - set(order))
    baselines = [name for name in order if name in set(study.get("baselines", []))]
    trained = [name for name in order if name not in baselines]
    greys = [(shade, shade, shade) for shade in np.linspace(0.25, 0.65, max(len(baselines), 1))]
    colours = sns.color_palette("colorblind" if len(trained) <= 10 else "husl", max(len(trained), 1))
    return {**dict(zip(baselines, greys, strict=False)), **dict(zip(trained, colours, strict=False))}


def new_figure(width: float, height: float, ncols: int = 1, sharey: bool = False) -> tuple[Figure, list[Any]]:
    """A Figure with `ncols` seaborn-styled axes side by side."""
    figure = Figure(figsize=(width, height), layout="constrained")
    with sns.axes_style(STYLE):
        axes = figure.subplots(1, ncols, sharey=sharey, squeeze=False)[0]
    return figure, list(axes)


def label_variants(ax: Any, names: list[str]) -> None:
    """Tick labels that stay readable: rotated when there are many or long names."""
    rotate = len(names) > 4 or max((len(name) for name in names), default=0) > 8
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35 if rotate else 0, ha="right" if rotate else "center")


def metric_points(summary: pd.DataFrame, study: dict[str, Any], metric: str) -> Figure:
    """One metric: mean per variant with its interval from tables.summary (unreliable hollow, best starred)."""
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise NothingToPlot(f"no summary rows for metric {metric!r}: nothing to plot")
    order = [name for name in variant_order(study, rows["variant"]) if name in set(rows["variant"])]
    rows = rows.set_index("variant").loc[order]
    colours = palette(study, order)
    figure, (ax,) = new_figure(max(4.0, 0.8 * len(order) + 2.0), 3.6)
    for x, (variant, row) in enumerate(rows.iterrows()):
        interval = [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]
        has_interval = math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"])
        ax.errorbar(
            x, row["mean"], yerr=interval if has_interval else None, fmt="o", capsize=4, markersize=7,
            color=colours[variant], markerfacecolor=colours[variant] if row["reliable"] else "white",
        )  # fmt: skip
        note = "★" if row["best"] else ("⚠" if not row["reliable"] else "")
        if note:
            top = row["ci_high"] if has_interval else row["mean"]
            ax.annotate(note, (x, top), textcoords="offset points", xytext=(0, 6), ha="center")
    label_variants(ax, order)
    direction = "higher is better" if rows["higher_is_better"].iloc[0] else "lower is better"
    ax.set_title(metric)
    ax.set_ylabel(f"value ({direction})")
    ax.set_xlim(-0.6, len(order) - 0.4)
    return figure


def horizon_growth(horizon: pd.DataFrame, study: dict[str, Any], metric: str) -> Figure:
    """x = horizon, y = metric, one line per variant, one panel per mode (step, chain)."""
    rows = horizon[horizon["metric"] == metric]
    if rows.empty:
        raise NothingToPlot(f"no horizon rows for metric {metric!r}: nothing to plot")
    modes = sorted(rows["mode"].unique(), key=lambda mode: (mode != "step", mode))
    order = [name for name in variant_order(study, rows["variant"]) if name in set(rows["variant"])]
    colours = palette(study, order)
    figure, axes = new_figure(4.2 * len(modes) + 1.5, 3.6, ncols=len(modes), sharey=True)
    for ax, mode in zip(axes, modes, strict=True):
        for variant in order:
            line = rows[(rows["mode"] == mode) & (rows["variant"] == variant)].sort_values("horizon")
            if line.empty:
                continue
            ax.plot(line["horizon"], line["mean"], marker="o", color=colours[variant], label=variant)
            finite = line["ci_low"].notna() & line["ci_high"].notna()
            ax.fill_between(line["horizon"][finite], line["ci_low"][finite], line["ci_high"][finite],
                            color=colours[variant], alpha=0.2, linewidth=0)  # fmt: skip
        ax.set_title(f"{metric} ({mode})")
        ax.set_xlabel("horizon (steps)")
        ax.set_xticks(sorted(rows["horizon"].unique()))
    axes[0].set_ylabel("value")
    axes[-1].legend(title="variant", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return figure


def training_curves(curves: pd.DataFrame, study: dict[str, Any]) -> Figure:
    """epoch vs value per curve metric (loss, cosine): hue = variant, style = split."""
    if curves.empty:
        raise NothingToPlot("curves.parquet has no rows (no trained variants): no training curves to plot")
    metrics = sorted(curves["metric"].unique(), key=lambda name: (name != "loss", name))
    order = [name for name in variant_order(study, curves["variant"]) if name in set(curves["variant"])]
    figure, axes = new_figure(4.2 * len(metrics) + 1.5, 3.6, ncols=len(metrics))
    for index, (ax, metric) in enumerate(zip(axes, metrics, strict=True)):
        sns.lineplot(
            data=curves[curves["metric"] == metric], x="epoch", y="value", hue="variant", hue_order=order,
            style="split", style_order=["train", "val"], palette=palette(study, order), errorbar=("ci", 95),
            seed=0, ax=ax, legend=index == len(metrics) - 1,
        )  # fmt: skip
        ax.set_title(metric)
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend = axes[-1].get_legend()
    if legend is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1.0))
    return figure


def ablation_effects(effects: pd.DataFrame, study: dict[str, Any], metric: str) -> Figure:
    """One row per switch (tables.ablation_table): the paired difference with its interval and a zero line."""
    if effects.empty:
        raise NothingToPlot(
            f"no pair of variants differs in exactly one switch with scores for {metric!r}: no ablation view"
        )
    colours = palette(study, effects["after"])
    figure, (ax,) = new_figure(7.5, 0.55 * len(effects) + 1.6)
    for y, row in enumerate(effects.itertuples()):
        has_interval = math.isfinite(row.diff_low) and math.isfinite(row.diff_high)
        interval = [[row.diff - row.diff_low], [row.diff_high - row.diff]] if has_interval else None
        ax.errorbar(row.diff, y, xerr=interval, fmt="o", capsize=4, color=colours[row.after],
                    markerfacecolor=colours[row.after] if row.reliable else "white")  # fmt: skip
    ax.axvline(0.0, color="0.3", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels(effects["switch"])
    ax.invert_yaxis()
    direction = "higher is better" if effects["higher_is_better"].iloc[0] else "lower is better"
    ax.set_xlabel(f"Δ {metric} ({direction})")
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write `path` as PNG (dpi 120, for the HTML) and PDF (for papers); returns the PNG path."""
    png = Path(path).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=DPI)
    figure.savefig(png.with_suffix(".pdf"))
    return png
