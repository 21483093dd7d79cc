"""Figures of a study: one function per figure, each returning a matplotlib Figure (no pyplot state)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from reports import tables
from reports.load import variant_order

DPI = 120
STYLE = "whitegrid"
LEGEND_ENTRY_WIDTH = 2.3  # inches per legend column: room for a variant name like "combined-plane-attention"
LEGEND_ROW_HEIGHT = 0.24  # inches per legend row
PANEL_HEIGHT = 3.4

POINTS_CAPTION = (
    "Points: mean per variant; error bars: the 95% interval of the headline table (Student-t across training "
    "seeds; over videos or the stored bootstrap interval when there is one seed). Hollow points with ⚠ are "
    "unreliable; ★ marks the best reliable variant. A stored bootstrap interval need not contain its estimate "
    "(a Fréchet distance is biased upwards), so a point may sit outside its bar."
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


def legend_rows(count: int, width: float) -> tuple[int, int]:
    """(columns, rows) of a legend of `count` entries under a figure `width` inches wide."""
    columns = max(1, min(count, int(width // LEGEND_ENTRY_WIDTH)))
    return columns, math.ceil(count / columns)


def legend_below(figure: Figure, handles: list[Any], labels: list[str], title: str) -> None:
    """One legend for the whole figure, under its axes, in as many columns as fit (readable at any count)."""
    columns, _ = legend_rows(len(labels), figure.get_figwidth())
    figure.legend(handles, labels, title=title, loc="outside lower center", ncol=columns, frameon=False)


def legend_height(count: int, width: float) -> float:
    """Inches a `legend_below` of `count` entries needs (title included)."""
    return LEGEND_ROW_HEIGHT * (legend_rows(count, width)[1] + 1.5)


def label_variants(ax: Any, names: list[str]) -> None:
    """Tick labels that stay readable: rotated when there are many or long names."""
    rotate = len(names) > 4 or max((len(name) for name in names), default=0) > 8
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35 if rotate else 0, ha="right" if rotate else "center")


def draw_interval(ax: Any, at: float, low: float, high: float, colour: Any, vertical: bool = True,
                  capsize: float = 4) -> bool:
    """Draw [low, high] as an error bar at `at` (centred on the interval, not on the estimate: a stored
    bootstrap interval may exclude its estimate, which matplotlib's yerr cannot express); False if not finite."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return False
    low, high = min(low, high), max(low, high)
    middle, half = (low + high) / 2, (high - low) / 2
    position = {"x": at, "y": middle, "yerr": half} if vertical else {"x": middle, "y": at, "xerr": half}
    ax.errorbar(**position, fmt="none", ecolor=colour, capsize=capsize)
    return True


def select_variants(study: dict[str, Any], present: Iterable[str], variants: Iterable[str] | None) -> list[str]:
    """Study order of the variants present, restricted to `variants` (all when None); raises when none remain."""
    present = set(present)
    order = [name for name in variant_order(study, present) if name in present]
    if variants is None:
        return order
    wanted = list(variants)
    unknown = [name for name in wanted if name not in present]
    if unknown:
        raise NothingToPlot(f"variants {unknown} have no rows here (present: {order})")
    return [name for name in order if name in set(wanted)]


def metric_points(summary: pd.DataFrame, study: dict[str, Any], metric: str,
                  variants: Iterable[str] | None = None) -> Figure:  # fmt: skip
    """One metric: mean per variant with its interval from tables.summary (unreliable hollow, best starred)."""
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise NothingToPlot(f"no summary rows for metric {metric!r}: nothing to plot")
    order = select_variants(study, rows["variant"], variants)
    rows = rows.set_index("variant").loc[order]
    colours = palette(study, order)
    figure, (ax,) = new_figure(max(4.0, 0.8 * len(order) + 2.0), 3.6)
    for x, (variant, row) in enumerate(rows.iterrows()):
        has_interval = draw_interval(ax, x, row["ci_low"], row["ci_high"], colours[variant])
        ax.plot(x, row["mean"], "o", markersize=7, color=colours[variant],
                markerfacecolor=colours[variant] if row["reliable"] else "white")  # fmt: skip
        note = "★" if row["best"] else ("⚠" if not row["reliable"] else "")
        if note:
            top = max(row["ci_high"], row["mean"]) if has_interval else row["mean"]
            ax.annotate(note, (x, top), textcoords="offset points", xytext=(0, 6), ha="center")
    label_variants(ax, order)
    direction = "higher is better" if rows["higher_is_better"].iloc[0] else "lower is better"
    ax.set_title(metric)
    ax.set_ylabel(f"value ({direction})")
    ax.margins(y=0.12)  # room for the ★/⚠ marks above the highest bar
    ax.set_xlim(-0.6, len(order) - 0.4)
    return figure


HEATMAP_CAPTION = (
    "Each cell: the paired difference of a variant to the reference variant `{reference}` (variant − reference; "
    "over paired seeds, or paired videos with one seed) and its 95% interval in brackets. Colour: blue = better, "
    "red = worse (the metric's direction applied), scaled per column to its largest difference; pale cells "
    "have an interval that includes 0 (or none), bold numbers one that excludes it; counterweight metrics "
    "(motion) stay uncoloured, having no better or worse; ⚠ marks rows the metric code flags unreliable."
)


def metric_label(metric: str, higher_is_better: bool) -> str:
    """A metric name broken before its protocol bracket, with its direction arrow."""
    name, bracket, protocol = metric.partition("[")
    return f"{name}\n[{protocol} {'↑' if higher_is_better else '↓'}" if bracket else f"{name} {'↑' if higher_is_better else '↓'}"


def signed(value: float, decimals: int | None = None) -> str:
    """+0.031 / -0.2 / — ; `decimals` fixed (one column of a table reads best with one precision)."""
    if not math.isfinite(value):
        return "—"
    text = f"{value:.{decimals}f}" if decimals is not None else tables.format_number(value)
    return ("+" if value > 0 and not text.startswith("+") else "") + text


def column_decimals(values: Iterable[float], digits: int = 2) -> int:
    """Decimals that show `digits` significant digits of the largest |value| (0.15 → 3: +0.150, +0.026)."""
    finite = [abs(value) for value in values if math.isfinite(value) and value != 0]
    if not finite:
        return 2
    return int(min(8, max(0, digits - math.floor(math.log10(max(finite))))))


def metric_heatmap(matrix: pd.DataFrame, study: dict[str, Any], variants: Iterable[str] | None = None,
                   cmap: str = "RdBu") -> Figure:  # fmt: skip
    """Variants × metrics of effects.difference_matrix: paired Δ to the reference, annotated with intervals."""
    if matrix.empty:
        raise NothingToPlot("the difference matrix is empty: no overview heatmap")
    order = select_variants(study, matrix["variant"], variants)
    metrics = list(dict.fromkeys(matrix["metric"]))
    cells = matrix.set_index(["variant", "metric"])
    scale = matrix.groupby("metric")["gain"].apply(lambda gains: gains.abs().max())
    decimals = {
        metric: column_decimals([*group["diff"], *group["diff_low"], *group["diff_high"]])
        for metric, group in matrix.groupby("metric")
    }
    colours = np.ones((len(order), len(metrics), 3))
    colormap = matplotlib.colormaps[cmap]
    figure = Figure(figsize=(2.2 + 1.35 * len(metrics), 1.4 + 0.46 * len(order)), layout="constrained")
    with sns.axes_style("white"):
        ax = figure.subplots()
    for i, variant in enumerate(order):
        for j, metric in enumerate(metrics):
            if (variant, metric) not in cells.index:
                ax.text(j, i, "no rows", ha="center", va="center", fontsize=7, color="0.5")
                continue
            cell = cells.loc[(variant, metric)]
            if cell["interval"] == "reference":
                colours[i, j] = (0.88, 0.88, 0.88)
                ax.text(j, i, "reference", ha="center", va="center", fontsize=7, color="0.3")
                continue
            width = scale.get(metric, math.nan)
            if cell["ranked"] and math.isfinite(cell["gain"]) and math.isfinite(width) and width > 0:
                rgb = np.asarray(colormap(0.5 + 0.5 * cell["gain"] / width)[:3])
                colours[i, j] = rgb if cell["excludes_zero"] else 1 - 0.35 * (1 - rgb)
            places = decimals[metric]
            interval = (f"\n[{signed(cell['diff_low'], places)}, {signed(cell['diff_high'], places)}]"
                        if math.isfinite(cell["diff_low"]) else "\n(no interval)")  # fmt: skip
            dark = float(np.dot(colours[i, j], (0.299, 0.587, 0.114))) < 0.5  # luminance: white text on dark cells
            ax.text(j, i, signed(cell["diff"], places) + ("" if cell["reliable"] else " ⚠") + interval, ha="center",
                    va="center", fontsize=7, fontweight="bold" if cell["excludes_zero"] else "normal",
                    color="white" if dark else "black")  # fmt: skip
    ax.imshow(colours, aspect="auto", interpolation="nearest")
    directions = matrix.groupby("metric")["higher_is_better"].first()
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([metric_label(m, bool(directions[m])) for m in metrics], fontsize=7.5)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(order, fontsize=8.5)
    ax.set_xticks(np.arange(len(metrics) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(order) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title(f"Δ to {matrix['reference'].iloc[0]} (variant − reference), 95% intervals", fontsize=10)
    return figure


def horizon_growth(horizon: pd.DataFrame, study: dict[str, Any], metric: str,
                   variants: Iterable[str] | None = None) -> Figure:  # fmt: skip
    """x = horizon, y = metric, one line per variant, one panel per mode (step, chain); legend underneath.

    `horizon` is tables.horizon_table(scores, study)."""
    rows = horizon[horizon["metric"] == metric]
    if rows.empty:
        raise NothingToPlot(f"no horizon rows for metric {metric!r}: nothing to plot")
    modes = sorted(rows["mode"].unique(), key=lambda mode: (mode != "step", mode))
    order = select_variants(study, rows["variant"], variants)
    colours = palette(study, order)
    width = max(9.0, 4.8 * len(modes))
    figure, axes = new_figure(width, PANEL_HEIGHT + legend_height(len(order), width), ncols=len(modes), sharey=True)
    for ax, mode in zip(axes, modes, strict=True):
        for variant in order:
            line = rows[(rows["mode"] == mode) & (rows["variant"] == variant)].sort_values("horizon")
            if line.empty:
                continue
            ax.plot(line["horizon"], line["mean"], marker="o", markersize=3, color=colours[variant], label=variant)
            finite = line["ci_low"].notna() & line["ci_high"].notna()
            ax.fill_between(line["horizon"][finite], line["ci_low"][finite], line["ci_high"][finite],
                            color=colours[variant], alpha=0.12, linewidth=0)  # fmt: skip
        ax.set_title(f"{metric} ({mode})")
        ax.set_xlabel("horizon (frames after the start)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("value")
    handles = [Line2D([], [], color=colours[name], marker="o", markersize=4) for name in order]
    legend_below(figure, handles, order, "variant")
    return figure


def training_curves(curves: pd.DataFrame, study: dict[str, Any], variants: Iterable[str] | None = None) -> Figure:
    """epoch vs value per curve metric (loss, cosine): colour = variant, solid = train, dashed = val."""
    if curves.empty:
        raise NothingToPlot("curves.parquet has no rows (no trained variants): no training curves to plot")
    order = select_variants(study, curves["variant"], variants)
    curves = curves[curves["variant"].isin(order)]
    metrics = sorted(curves["metric"].unique(), key=lambda name: (name != "loss", name))
    colours = palette(study, order)
    width = max(9.0, 4.8 * len(metrics))
    height = PANEL_HEIGHT + legend_height(len(order) + 2, width)
    figure, axes = new_figure(width, height, ncols=len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        sns.lineplot(
            data=curves[curves["metric"] == metric], x="epoch", y="value", hue="variant", hue_order=order,
            style="split", style_order=["train", "val"], palette=colours, errorbar=("ci", 95), seed=0, ax=ax,
            legend=False,
        )  # fmt: skip
        ax.set_title(metric)
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Line2D([], [], color=colours[name]) for name in order]
    handles += [Line2D([], [], color="0.3", linestyle=style) for style in ("-", "--")]
    legend_below(figure, handles, [*order, "train", "val"], "variant; split")
    return figure


def ablation_effects(effects: pd.DataFrame, study: dict[str, Any], metric: str) -> Figure:
    """One panel per switch (e.g. "rotation_layer: off→plane"), one row per variant pair, sharing the x axis."""
    if effects.empty:
        raise NothingToPlot(
            f"no pair of variants differs in exactly one switch with scores for {metric!r}: no ablation view"
        )
    colours = palette(study, effects["after"])
    panels = effects["change"]
    groups = list(dict.fromkeys(panels))
    sizes = [int((panels == group).sum()) for group in groups]
    labels = effects["before"] + " → " + effects["after"]
    width = max(7.0, 3.5 + 0.075 * int(labels.str.len().max()))
    figure = Figure(figsize=(width, 0.32 * len(effects) + 0.65 * len(groups) + 0.9), layout="constrained")
    with sns.axes_style(STYLE):
        axes = figure.subplots(len(groups), 1, sharex=True, squeeze=False, height_ratios=sizes)[:, 0]
    for ax, group in zip(axes, groups, strict=True):
        part = effects[panels == group]
        for y, row in enumerate(part.itertuples()):
            draw_interval(ax, y, row.diff_low, row.diff_high, colours[row.after], vertical=False, capsize=3)
            ax.plot(row.diff, y, "o", markersize=5, color=colours[row.after],
                    markerfacecolor=colours[row.after] if row.reliable else "white")  # fmt: skip
        ax.axvline(0.0, color="0.3", linestyle=":", linewidth=1)
        ax.set_yticks(range(len(part)))
        ax.set_yticklabels(labels[panels == group], fontsize=8)
        ax.set_ylim(len(part) - 0.5, -0.5)
        ax.set_title(group, fontsize=10, loc="left")
    direction = "higher is better" if effects["higher_is_better"].iloc[0] else "lower is better"
    axes[-1].set_xlabel(f"Δ {metric} ({direction})")
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write `path` as PNG (dpi 120, for the HTML) and PDF (for papers); returns the PNG path."""
    png = Path(path).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=DPI)
    figure.savefig(png.with_suffix(".pdf"))
    return png
