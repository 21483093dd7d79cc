"""What the report notebook calls to put things on the page: each figure with its caption, each table as a
styled DataFrame plus its Markdown/LaTeX files, and the first screen (question, world, protocol, verdicts).

Runs inside the notebook kernel, with the report folder as working directory; every file is referenced by a
path relative to it, so the folder can be moved or opened offline.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from reports import gifs, plots, tables
from reports.load import Results

SUBFOLDERS = ("figures", "tables", "gifs")
GRID_TILE = gifs.DEFAULT_TILE
GRID_MAX_PROMPTS = 8  # keeps the page's GIF small; every prompt still gets its own strip

# Wide tables scroll inside the page instead of running off it; a figure and its caption form one framed block,
# so a caption can never be read as the title of the figure below it.
PAGE_STYLE = """<style>
.jp-RenderedHTMLCommon table, .rendered_html table { display: block; overflow-x: auto; max-width: 100%; }
.jp-RenderedHTMLCommon th, .rendered_html th { overflow-wrap: anywhere; min-width: 6em; }
figure.report { margin: 1.6em 0 2.2em 0; padding: 0.6em 0.8em; border-left: 3px solid #c8c8c8; }
figure.report img { max-width: 100%; }
figure.report .title { font-weight: 600; margin: 0 0 0.4em 0; }
figure.report figcaption { font-style: italic; color: #444; margin-top: 0.3em; }
ul.verdicts { list-style: none; padding-left: 0.2em; }
.held { color: #1a7f37; font-weight: 600; }
.failed { color: #c62828; font-weight: 700; }
p.notes { font-size: 0.9em; font-style: italic; color: #444; max-width: 60em; }
</style>"""


def display_html(markup: str) -> None:
    from IPython.display import HTML, display

    display(HTML(markup))


def display_markdown(markdown: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def inline_markdown(text: str) -> str:
    """Escape text for HTML, keeping `code` spans as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))


def show_figures_inline() -> None:
    """Let a bare `plots.x(...)` cell display its Figure as a PNG (plots never touch pyplot, so IPython's
    matplotlib integration does not know these figures)."""
    from IPython import get_ipython
    from IPython.core.pylabtools import print_figure

    shell = get_ipython()
    if shell is not None:
        formatter = shell.display_formatter.formatters["image/png"]
        formatter.for_type(Figure, lambda figure: print_figure(figure, "png", dpi=plots.DPI))


@dataclass
class Page:
    """The report folder the notebook writes figures/, tables/ and gifs/ into (the working directory)."""

    out_dir: Path = Path(".")

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        for name in SUBFOLDERS:
            (self.out_dir / name).mkdir(parents=True, exist_ok=True)
        display_html(PAGE_STYLE)
        show_figures_inline()

    def text(self, markdown: str) -> None:
        display_markdown(markdown)

    def figure(self, figure: Figure, name: str, caption: str, title: str | None = None) -> Path:
        """Save figures/<name>.png|.pdf and show it framed with its title above and its caption below."""
        png = plots.save_figure(figure, self.out_dir / "figures" / gifs.slug(name))
        heading = f'<p class="title">{inline_markdown(title)}</p>' if title else ""
        display_html(
            f'<figure class="report">{heading}<img src="figures/{png.name}" alt="{html.escape(name)}">'
            f"<figcaption>{inline_markdown(caption)}</figcaption></figure>"
        )
        return png

    @contextlib.contextmanager
    def or_reason(self) -> Iterator[None]:
        """Around a figure call: a figure with nothing to plot becomes a sentence on the page, not an error."""
        try:
            yield
        except plots.NothingToPlot as reason:
            display_markdown(f"*No figure: {reason}.*")

    def table(self, table: pd.DataFrame, name: str, caption: str | None = None, notes: str | None = None) -> None:
        """Write tables/<name>.md and .tex; show the caption, the styled table, then the notes (how to read it)."""
        from IPython.display import display

        links = self.files(table, name)
        display_markdown(f"**{caption}** ({links})" if caption else f"({links})")
        display(styled(table))
        if notes:
            display_html(f'<p class="notes">{inline_markdown(notes)}</p>')

    def files(self, table: pd.DataFrame, name: str) -> str:
        """Write tables/<name>.md and .tex without showing the table; return links to them."""
        (self.out_dir / "tables" / f"{name}.md").write_text(tables.to_markdown(table), encoding="utf-8")
        (self.out_dir / "tables" / f"{name}.tex").write_text(tables.to_latex(table), encoding="utf-8")
        return f"{len(table)} rows as [Markdown](tables/{name}.md), [LaTeX](tables/{name}.tex)"


def styled(table: pd.DataFrame) -> Any:
    """The table as a pandas Styler: no index, left-aligned text, ★ cells bold, ⚠ cells greyed; cells and
    headers are HTML-escaped (a file name such as `clip<b>x</b>.mp4` is text, not markup)."""

    def mark(value: Any) -> str:
        text = str(value)
        if tables.BEST_MARK in text:
            return "font-weight: bold"
        return "color: #777" if "⚠" in text else ""

    return (
        table.style.hide(axis="index")
        .map(mark)
        .set_properties(**{"text-align": "left"})
        .format(lambda value: tables.format_number(value) if isinstance(value, float) else value, escape="html")
        .format_index(escape="html", axis=1)
    )


# --- the first screen ---------------------------------------------------------------------------------


def title(results: Results) -> None:
    """# Report: <study>, then the study's question and the sentence saying what world the numbers come from."""
    study = results.study
    lines = [f"# Report: {study['study']}"]
    question = study.get("question") or study.get("description")
    if question:
        lines.append(f"**Question.** {question}")
    world = study.get("world") or what_the_numbers_mean(study)
    if world:
        lines.append(f"**What these numbers can say.** {world}")
    display_markdown("\n\n".join(lines))


def what_the_numbers_mean(study: dict[str, Any]) -> str:
    """A warning for studies whose numbers measure the pipeline, not the method (empty for real studies); used
    when study.json has no `world` sentence."""
    note = (study.get("data") or {}).get("note")
    backend = (study.get("backend") or {}).get("name", "")
    if note:
        return note
    if random_weights(study):
        return (f"The `{backend}` backend has random weights: its CLIP embeddings carry no meaning, so these numbers "
                "check the pipeline's mechanics end to end, not the method. For a comparison with a known answer run "
                "`spliter-bench run synthetic`; for real numbers, the `paper` study with the Kandinsky 2.2 weights.")
    return ""


def random_weights(study: dict[str, Any]) -> bool:
    """Whether the study's backend has seeded random weights (study.json's backend block says so)."""
    return bool((study.get("backend") or {}).get("random_weights"))


# Verdict marks: check marks every common font has (DejaVu, Liberation, Arial), coloured by CSS, never emoji,
# which a browser without an emoji font (headless Chromium here) draws as empty boxes.
HELD = '<span class="held">✓ held</span>'
FAILED = '<span class="failed">✗ failed</span>'


def verdicts(results: Results) -> None:
    """Each declared expectation as held (✓, green) or failed (✗, red), failed first; a sentence when none are
    declared."""
    expectations = results.expectations
    if expectations is None:
        display_markdown("**Verdicts.** This study wrote no `results/expectations.json`: no expectations declared.")
        return
    if expectations.empty:
        display_markdown("**Verdicts.** This study declares no expectations.")
        return
    failed = int((~expectations["held"]).sum())
    items = [
        f"<li>{HELD if row.held else FAILED}: {inline_markdown(row.expectation)} "
        f"(<code>{html.escape(row.metric)}</code>{': ' + inline_markdown(row.detail) if row.detail else ''})</li>"
        for row in expectations.sort_values("held", kind="stable").itertuples()
    ]
    head = f"{len(expectations) - failed} of {len(expectations)} expectations held" + (
        f', <span class="failed">{failed} failed</span>' if failed else ""
    )
    display_html(f"<p><b>Verdicts.</b> {head}.</p><ul class=\"verdicts\">{''.join(items)}</ul>")


def headline_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The formatted summary rows of one metric (mean [95% CI], Δ to the reference, notes)."""
    rows = summary["metric"] == metric
    if not rows.any():
        raise tables.SummaryError(f"no summary rows for metric {metric!r} (has {sorted(summary['metric'].unique())})")
    return tables.format_summary(summary)[rows.to_numpy()].reset_index(drop=True)


def skipped_videos(page: Page, results: Results) -> None:
    """The source files the encode stage left out, with their reasons (study.json `skipped`), or a sentence."""
    table = tables.skipped_table(results.study)
    if "skipped" not in results.study:
        display_markdown("*study.json does not record skipped videos (results collected by an older harness).*")
    elif table.empty:
        display_markdown("The encode stage skipped no source file: every listed video is in the store.")
    else:
        page.table(table, "skipped", caption=f"{len(table)} source file(s) the encode stage left out",
                   notes=f"Only the other videos are used: {tables.skipped_users(results.study)} come from them.")


# --- the GIF grid -------------------------------------------------------------------------------------


def gif_grid(page: Page, results: Results, max_prompts: int = GRID_MAX_PROMPTS) -> None:
    """The prompts × variants GIF grid (first `max_prompts` prompts) and one strip per prompt, with a caption."""
    videos, study = results.videos, results.study
    if videos.empty:
        display_markdown("*No rendered videos in videos.parquet: no GIF grid.*")
        return
    prompts = list(dict.fromkeys(videos["prompt_id"]))
    grid = gifs.write_gif_grid(videos, results.root, page.out_dir / "gifs" / "grid.gif", prompts=prompts[:max_prompts],
                               tile=GRID_TILE, study=study)  # fmt: skip
    strips = gifs.write_prompt_strips(videos, results.root, page.out_dir / "gifs", tile=GRID_TILE, study=study)
    links = ", ".join(f"[{path.stem}](gifs/{path.name})" for path in strips)
    backend = (study.get("backend") or {}).get("name", "")
    textures = (
        f" The `{backend}` backend has random weights: its frames are textures, not pictures; they show the "
        "pipeline's mechanics (seeds, motion between frames), not image quality."
        if random_weights(study) else ""
    )  # fmt: skip
    shown = f"the first {max_prompts} of {len(prompts)} prompts" if len(prompts) > max_prompts else "every prompt"
    caption = (
        f"Rows: {shown}; columns: variants, baselines first. Each row uses sample 0 of the first training seed, so "
        f"a row shares one generation seed and differences come from the variant. Shorter videos hold their last "
        f"frame.{textures}"
    )
    display_html(
        f'<figure class="report"><p class="title">Prompts × variants</p><img src="gifs/{grid.name}" alt="GIF grid">'
        f"<figcaption>{inline_markdown(caption)}</figcaption></figure>"
    )
    display_markdown(f"[Full size](gifs/{grid.name}); one strip per prompt: {links}.")


# --- captions and companions of the detail figures ----------------------------------------------------

OVERVIEW_CAPTION = (
    "Means over seeds (intervals in the full table); ★ best reliable variant of the column, ⚠ flagged unreliable "
    "(e.g. a Fréchet distance with n ≤ feature dimension)."
)


def frame_baseline_note(study: dict) -> str:
    """Why the embedding cells of frame-rendering baselines (study.json `frame_baselines`) are empty; "" if none."""
    names = study.get("frame_baselines") or []
    if not names:
        return ""
    return (f"{', '.join(f'`{name}`' for name in names)} render{'s' if len(names) == 1 else ''} frames directly from "
            "the caption, with no embeddings: embedding-space metrics (embed_*) have no value for "
            f"{'it' if len(names) == 1 else 'them'} (— in the overview, no row in the full table); "
            f"{'its' if len(names) == 1 else 'their'} video metrics use the same prompts, generation seeds, frames and size as the variants.")


ABLATION_COLUMNS = ("switch", "diff", "diff_low", "diff_high", "n", "interval",
                    "steps before", "steps after", "train s before", "train s after")


def detail_note(shown: list[str], metrics: Any, table: str = "all_metrics") -> str:
    """Which metrics got a figure below, and the table (tables/<table>.md) that holds every one of them."""
    total = len(dict.fromkeys(metrics))
    if len(shown) >= total:
        return f"One figure per metric ({total})."
    return (f"Figures for {len(shown)} of {total} metrics: the headline, the metrics the expectations name, one "
            "per other family, then the headline's family (`tables.detail_metrics`); every metric is in the "
            f"full table, [{table}](tables/{table}.md).")


def expectation_metrics(results: Results) -> list[str]:
    """The metrics the declared expectations name (none without expectations.json)."""
    return [] if results.expectations is None else list(dict.fromkeys(results.expectations["metric"]))


def points_caption(summary: pd.DataFrame, metric: str) -> str:
    """One line under a metric's point plot: its direction, the best reliable variant, and unreliable rows."""
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        return f"No summary rows for `{metric}`."
    direction = "higher is better" if rows["higher_is_better"].iloc[0] else "lower is better"
    best = rows[rows["best"]]
    parts = [f"`{metric}`, {direction}"]
    if not best.empty:
        parts.append("best reliable: " + ", ".join(
            f"{row.variant} ({tables.format_number(row.mean)})" for row in best.itertuples()
        ))  # fmt: skip
    elif not rows["ranked"].all():
        parts.append("a counterweight metric, not ranked")
    unreliable = rows.loc[~rows["reliable"], "variant"].tolist()
    if unreliable:
        parts.append(f"unreliable (hollow): {', '.join(unreliable)}")
    return "; ".join(parts) + ". Points and bars as described above."


def horizon_files(page: Page, horizon: pd.DataFrame) -> None:
    """Write the wide horizon table's files and link them (or say there are no horizon rows)."""
    if horizon.empty:
        display_markdown("*No horizon rows in scores.parquet: no error-growth figure.*")
        return
    display_markdown(
        "Mean [95% interval] per variant and horizon: " + page.files(tables.format_horizon(horizon), "horizon") + "."
    )


def ablation_rows(page: Page, switches: pd.DataFrame) -> Any:
    """The ablation figure's numbers as a table (nothing when no pair of variants differs in one switch)."""
    if switches.empty:
        return None
    shown = switches[[column for column in ABLATION_COLUMNS if column in switches.columns]]
    page.table(shown, "ablation", caption="The numbers of the figure above")
    return None
