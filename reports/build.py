"""Build a study's report: template → executed notebook (papermill) → HTML page, plus the section helpers.

The template (templates/ablation_report.py) only calls the `*_section` functions below, which run inside the
notebook with the report folder as working directory and reference every file by a relative path.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from reports import gifs, plots, tables
from reports.load import Results, load_results

TEMPLATE = Path(__file__).parent / "templates" / "ablation_report.py"
KERNEL = "python3"
SUBFOLDERS = ("figures", "tables", "gifs")
GRID_TILE = gifs.DEFAULT_TILE
GRID_CAPTION_WIDTH, GRID_HEADER_HEIGHT = gifs.grid_margins(GRID_TILE)
GRID_MAX_PROMPTS = 8  # keeps the page's GIF small; every prompt still gets its own strip


REPORT_VERSION = 2  # bump when the page changes, so `spliter-bench run` rebuilds reports of finished studies


class ReportExecutionError(RuntimeError):
    """The report notebook raised while executing."""


# --- building -----------------------------------------------------------------------------------------


def build_report(study_root: str | Path, out_dir: str | Path | None = None, execute: bool = True) -> Path:
    """Write `report/{report.ipynb,index.html,figures,tables,gifs}` for a study; returns index.html.

    `out_dir` (default STUDY_ROOT/report) has its figures/, tables/ and gifs/ replaced; `execute=False` only
    prepares the notebook (parameters injected, no outputs) and renders it.
    """
    import papermill

    root = Path(study_root).resolve()
    load_results(root)  # fail here, with the loader's message, rather than inside the kernel
    out = Path(out_dir).resolve() if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "DONE").unlink(missing_ok=True)  # a half-rebuilt report is never current
    for name in SUBFOLDERS:  # stale files from an earlier build would otherwise linger on the page
        shutil.rmtree(out / name, ignore_errors=True)
    notebook_path = out / "report.ipynb"
    with python_kernel() as kernel:
        try:
            papermill.execute_notebook(
                template_notebook(), str(notebook_path), parameters={"study_root": str(root)},
                kernel_name=kernel, language="python", progress_bar=False, cwd=str(out), prepare_only=not execute,
            )  # fmt: skip
        except papermill.PapermillExecutionError as error:
            raise ReportExecutionError(
                f"the report notebook failed in cell {error.exec_count} ({error.ename}: {error.evalue}); "
                f"see the partly executed {notebook_path}"
            ) from None
    if execute:
        check_no_errors(notebook_path)
    page = write_html(notebook_path, out / "index.html")
    key = report_key(root)
    if execute and out == root / "report" and key is not None:
        (out / "DONE").write_text(key + "\n", encoding="utf-8")
    return page


def report_key(study_root: Path) -> str | None:
    """The results this report is built from (results/DONE, written by the harness) and the page's version;
    None for a results folder without DONE (e.g. copied by hand), whose report is then never taken as current."""
    done = study_root / "results" / "DONE"
    if not done.exists():
        return None
    return f"{done.read_text(encoding='utf-8').strip()} report-v{REPORT_VERSION}"


def report_is_current(study_root: str | Path) -> bool:
    """True when report/ was built, executed, from the results as they are now (so a rerun can skip it)."""
    root = Path(study_root).resolve()
    done, page = root / "report" / "DONE", root / "report" / "index.html"
    key = report_key(root)
    return key is not None and done.exists() and page.exists() and done.read_text(encoding="utf-8").strip() == key


def template_notebook(template: Path = TEMPLATE):
    """The jupytext template as a notebook with a python3 kernelspec (papermill needs one to inject parameters)."""
    import jupytext

    notebook = jupytext.read(template)
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    notebook.metadata.setdefault("language_info", {"name": "python"})
    return notebook


@contextlib.contextmanager
def python_kernel() -> Iterator[str]:
    """A temporary `python3` kernelspec running this interpreter, first on JUPYTER_PATH while building.

    A user-level `python3` kernelspec may point at another interpreter (one without this package); this one
    wins because JUPYTER_PATH is searched first. The environment variable is restored afterwards.
    """
    from ipykernel.kernelspec import install

    package_parent = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    previous = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory(prefix="report-kernel-") as prefix:
        install(kernel_name=KERNEL, prefix=prefix, env={"PYTHONPATH": python_path})
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            filter(None, [str(Path(prefix) / "share" / "jupyter"), previous])
        )
        try:
            yield KERNEL
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


def check_no_errors(notebook_path: Path) -> None:
    """Raise when any cell of the executed notebook holds an error output."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raise ReportExecutionError(
                    f"{notebook_path}: cell {index} has an error output ({output.get('ename')}: {output.get('evalue')})"
                )


def write_html(notebook_path: Path, html_path: Path) -> Path:
    """Code-free HTML of the notebook; images stay relative links into the report folder."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.write_text(body, encoding="utf-8")
    return html_path


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m reports.build STUDY_ROOT [--out DIR] [--no-execute]`."""
    parser = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.splitlines()[0])
    parser.add_argument("study_root", help="the study folder, e.g. runs/quickstart (holds results/)")
    parser.add_argument("--out", default=None, help="report folder (default: STUDY_ROOT/report)")
    parser.add_argument("--no-execute", action="store_true", help="only prepare the notebook (no figures)")
    args = parser.parse_args(argv)
    try:
        page = build_report(args.study_root, args.out, execute=not args.no_execute)
    except (ValueError, FileNotFoundError, ReportExecutionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(page)
    return 0


# --- sections (run inside the notebook) ---------------------------------------------------------------


@dataclass
class Page:
    """What the sections share: the loaded results, the summary and the report folder."""

    results: Results
    summary: pd.DataFrame
    out_dir: Path


def open_page(study_root: str | Path, out_dir: str | Path = ".") -> Page:
    """Load the results and summarise them once for all sections."""
    results = load_results(study_root)
    out = Path(out_dir)
    for name in SUBFOLDERS:
        (out / name).mkdir(parents=True, exist_ok=True)
    return Page(results, tables.summary(results.scores, results.study), out)


def show(markdown: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def write_table_files(page: Page, table: pd.DataFrame, name: str) -> str:
    """Write tables/<name>.md and .tex; return the Markdown."""
    markdown = tables.to_markdown(table)
    (page.out_dir / "tables" / f"{name}.md").write_text(markdown, encoding="utf-8")
    (page.out_dir / "tables" / f"{name}.tex").write_text(tables.to_latex(table), encoding="utf-8")
    return markdown


def show_table(page: Page, table: pd.DataFrame, name: str, caption: str) -> None:
    """Write tables/<name>.md and .tex and show the table with its caption."""
    markdown = write_table_files(page, table, name)
    show(f"{markdown}\n*{caption}* (also as [Markdown](tables/{name}.md) and [LaTeX](tables/{name}.tex))")


def show_figure(page: Page, make: Callable[[], Figure], name: str, caption: str) -> None:
    """Build a figure, save figures/<name>.png|.pdf and show it with its caption (or say why there is none)."""
    try:
        figure = make()
    except plots.NothingToPlot as reason:
        show(f"*No figure: {reason}.*")
        return
    png = plots.save_figure(figure, page.out_dir / "figures" / gifs.slug(name))
    show(f"![{name}](figures/{png.name})\n\n*{caption}*")


# Wide tables scroll inside the page instead of running off it; long metric names may wrap.
PAGE_STYLE = """<style>
.jp-RenderedHTMLCommon table, .rendered_html table { display: block; overflow-x: auto; max-width: 100%; }
.jp-RenderedHTMLCommon th, .rendered_html th { overflow-wrap: anywhere; min-width: 6em; }
</style>"""
RANDOM_BACKENDS = ("tiny", "kandinsky22-random")


def protocol_section(page: Page) -> None:
    from IPython.display import HTML, display

    display(HTML(PAGE_STYLE))
    show(
        f"# Report: {page.results.study['study']}\n\n"
        + tables.to_markdown(tables.protocol_table(page.results))
    )
    note = what_the_numbers_mean(page.results.study)
    if note:
        show(f"*{note}*")


def what_the_numbers_mean(study: dict) -> str:
    """A warning for studies whose numbers measure the pipeline, not the method (empty for real studies)."""
    source = (study.get("data") or {}).get("source")
    backend = (study.get("backend") or {}).get("name", "")
    if source == "synthetic":
        return ("Data: synthetic ground-truth trajectories (`spliter.data.synthetic`), whose motion follows from "
                "the caption. A known-answer test of the method's training and rollouts, not of Kandinsky 2.2.")
    if backend in RANDOM_BACKENDS:
        return (f"The `{backend}` backend has random weights: its CLIP embeddings carry no meaning, so these numbers "
                "check the pipeline's mechanics end to end, not the method. For a comparison with a known answer run "
                "`spliter-bench run synthetic`; for real numbers, the `paper` study with the Kandinsky 2.2 weights.")
    return ""


def headline_section(page: Page) -> None:
    """The headline metric per variant, a variants × key-metrics overview, and a link to the full table."""
    metric = tables.headline_metric(page.results.scores, page.results.study)
    formatted = tables.format_summary(page.summary)
    show(f"## Headline: `{metric}`")
    show_table(page, formatted[page.summary["metric"] == metric], "headline", tables.SUMMARY_CAPTION)
    wide = tables.overview(page.summary, page.results.study, metric)
    if not wide.empty:
        show("## Overview of key metrics")
        show_table(page, wide, "overview", "Means over seeds (intervals in the full table); ★ best reliable "
                   "variant of the column, ⚠ flagged unreliable (e.g. a Fréchet distance with n ≤ feature dimension).")
    write_table_files(page, formatted, "all_metrics")
    show(f"The full table, every metric × variant with its interval and the difference to the static baseline: "
         f"[Markdown](tables/all_metrics.md), [LaTeX](tables/all_metrics.tex) ({len(formatted)} rows).")


def metric_section(page: Page) -> None:
    show(f"*{plots.POINTS_CAPTION}*")
    for metric in page.summary["metric"].unique():
        show_figure(page, lambda metric=metric: plots.metric_points(page.summary, page.results.study, metric),
                    f"metric-{metric}", metric)  # fmt: skip


def horizon_section(page: Page) -> None:
    horizon = tables.horizon_table(page.results.scores, page.results.study)
    if horizon.empty:
        show("*No horizon rows in scores.parquet: no error-growth figure.*")
        return
    formatted = tables.format_horizon(horizon)
    write_table_files(page, formatted, "horizon")
    show(f"Mean [95% interval] per variant and horizon: [Markdown](tables/horizon.md), [LaTeX](tables/horizon.tex) "
         f"({len(formatted)} rows).")
    for metric in horizon["metric"].unique():
        show_figure(page, lambda metric=metric: plots.horizon_growth(horizon, page.results.study, metric),
                    f"horizon-{metric}", plots.HORIZON_CAPTION)  # fmt: skip


def curves_section(page: Page) -> None:
    show_figure(page, lambda: plots.training_curves(page.results.curves, page.results.study), "curves",
                plots.CURVES_CAPTION)  # fmt: skip


def ablation_section(page: Page) -> None:
    study, scores = page.results.study, page.results.scores
    metric = tables.headline_metric(scores, study)
    effects = tables.ablation_table(scores, study, metric)
    show(f"Headline metric: `{metric}`.")
    if not effects.empty:
        shown = effects[["switch", "diff", "diff_low", "diff_high", "n", "interval"]]
        show_table(page, shown, "ablation", plots.ABLATION_CAPTION)
    show_figure(
        page, lambda: plots.ablation_effects(effects, study, metric), "ablation", plots.ABLATION_CAPTION
    )


def gif_section(page: Page) -> None:
    videos, root = page.results.videos, page.results.root
    if videos.empty:
        show("*No rendered videos in videos.parquet: no GIF grid.*")
        return
    prompts = list(dict.fromkeys(videos["prompt_id"]))
    grid = gifs.write_gif_grid(videos, root, page.out_dir / "gifs" / "grid.gif", prompts=prompts[:GRID_MAX_PROMPTS],
                               tile=GRID_TILE, study=page.results.study)  # fmt: skip
    strips = gifs.write_prompt_strips(
        videos, root, page.out_dir / "gifs", tile=GRID_TILE, study=page.results.study
    )
    links = ", ".join(f"[{path.stem}](gifs/{path.name})" for path in strips)
    backend = (page.results.study.get("backend") or {}).get("name", "")
    if backend in ("tiny", "kandinsky22-random"):
        show(f"*The `{backend}` backend has random weights: its frames are textures, not pictures. They show "
             "the pipeline's mechanics (seeds, motion between frames), not image quality.*")
    shown = (
        f"the first {GRID_MAX_PROMPTS} of {len(prompts)} prompts"
        if len(prompts) > GRID_MAX_PROMPTS
        else "every prompt"
    )
    show(
        f"![GIF grid](gifs/{grid.name})\n\n*Rows: {shown}; columns: variants, baselines first. Each row uses "
        f"sample 0 of the first training seed, so a row shares one generation seed and differences come from the "
        f"variant. Shorter videos hold their last frame.* [Full size](gifs/{grid.name}); one strip per prompt: "
        f"{links}."
    )


if __name__ == "__main__":
    sys.exit(main())
