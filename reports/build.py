"""Build a study's report: template → parameterised notebook → executed on a private kernel → offline HTML page.

The template (templates/ablation_report.py) loads the results as DataFrames and calls tested functions of
reports.notebook, reports.plots and reports.tables with visible arguments; it runs with the report folder as
working directory and references every file by a relative path. The page loads nothing from the network.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from reports import kernel
from reports.load import load_results
from reports.notebook import SUBFOLDERS

TEMPLATE = Path(__file__).parent / "templates" / "ablation_report.py"
HTML_TEMPLATES = Path(__file__).parent / "templates"  # holds offline/: nbconvert's 'lab' page without CDN scripts
HTML_TEMPLATE = "offline"

REPORT_VERSION = 3  # bump when the page changes, so `spliter-bench run` rebuilds reports of finished studies


class ReportExecutionError(RuntimeError):
    """The report notebook raised while executing (or its kernel did not start)."""


# --- building -----------------------------------------------------------------------------------------


def build_report(study_root: str | Path, out_dir: str | Path | None = None, execute: bool = True) -> Path:
    """Write `report/{report.ipynb,index.html,figures,tables,gifs}` (results/ is never touched); returns index.html.

    `out_dir` (default STUDY_ROOT/report) has its figures/, tables/ and gifs/ replaced; `execute=False` only
    prepares the notebook (parameters injected, no outputs) and renders it.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError

    root = Path(study_root).resolve()
    load_results(root)  # fail here, with the loader's message, rather than inside the kernel
    out = Path(out_dir).resolve() if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "DONE").unlink(missing_ok=True)  # a half-rebuilt report is never current
    for name in SUBFOLDERS:  # stale files from an earlier build would otherwise linger on the page
        shutil.rmtree(out / name, ignore_errors=True)
    notebook_path = out / "report.ipynb"
    notebook = prepared_notebook(root)
    if execute:
        try:
            kernel.execute(notebook, cwd=out)
        except CellExecutionError as error:
            nbformat.write(notebook, notebook_path)
            raise ReportExecutionError(
                f"the report notebook failed in cell {failed_cell(notebook)} ({error.ename}: {error.evalue}); "
                f"see the partly executed {notebook_path}"
            ) from None
        except kernel.KernelStartError as error:
            raise ReportExecutionError(str(error)) from None
    nbformat.write(notebook, notebook_path)
    if execute:
        check_no_errors(notebook_path)
    page = write_html(notebook_path, out / "index.html")
    key = report_key(root)
    if execute and out == root / "report" and key is not None:
        (out / "DONE").write_text(key + "\n", encoding="utf-8")
    return page


def prepared_notebook(study_root: Path, template: Path = TEMPLATE):
    """The template as a notebook with `study_root` injected after its `parameters` cell (papermill's way)."""
    from papermill.parameterize import parameterize_notebook

    notebook = template_notebook(template)
    for cell in notebook.cells:
        cell.metadata.setdefault("tags", [])  # papermill reads every cell's tags and its own metadata block
    notebook.metadata.setdefault("papermill", {})
    return parameterize_notebook(notebook, {"study_root": str(study_root)})


def failed_cell(notebook) -> int | str:
    """The execution count of the cell holding an error output ('?' when none does)."""
    for cell in notebook.cells:
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return cell.get("execution_count") or "?"
    return "?"


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
    notebook.metadata["kernelspec"] = {"name": kernel.KERNEL, "display_name": "Python 3", "language": "python"}
    notebook.metadata.setdefault("language_info", {"name": "python"})
    return notebook


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
    """Code-free HTML of the notebook that loads no script, style or font from the network; images stay
    relative links into the report folder."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_template_basedirs=[str(HTML_TEMPLATES)], template_name=HTML_TEMPLATE, exclude_input=True,
        exclude_input_prompt=True, exclude_output_prompt=True,
    )  # fmt: skip
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
    started = time.monotonic()
    try:
        page = build_report(args.study_root, args.out, execute=not args.no_execute)
    except (ValueError, FileNotFoundError, ReportExecutionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"report: {page} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
