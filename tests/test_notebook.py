"""notebook: what the report's cells put on the page, run in a real kernel (IPython display needs one)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from reports import kernel

CELLS = [
    "import pandas as pd\nfrom matplotlib.figure import Figure\nfrom reports import notebook, plots\n"
    "page = notebook.Page('.')\nfigure = Figure()\nfigure.subplots().plot([0, 1], [1, 0])",
    "page.figure(figure, 'metric-a[b]', caption='bars: 95% `t` interval', title='a[b]')",
    "with page.or_reason():\n    page.figure(plots.training_curves(pd.DataFrame(), {}), 'curves', caption='never')",
    "page.table(pd.DataFrame({'variant': ['rot'], 'mean': ['0.8 ★']}), 'headline', caption='Head', notes='How to read')",
    "figure",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("page")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    kernel.execute(notebook, cwd=folder)
    return folder, [cell.outputs for cell in notebook.cells]


def html_of(outputs: list) -> str:
    return "".join(output.get("data", {}).get("text/html", "") for output in outputs)


def test_a_figure_is_saved_and_framed_with_its_title_and_caption(executed: tuple[Path, list]) -> None:
    folder, outputs = executed
    assert (folder / "figures" / "metric-a-b.png").exists() and (folder / "figures" / "metric-a-b.pdf").exists()
    frame = html_of(outputs[1])
    assert frame.startswith('<figure class="report"><p class="title">a[b]</p><img src="figures/metric-a-b.png"')
    assert frame.endswith("<figcaption>bars: 95% <code>t</code> interval</figcaption></figure>")


def test_nothing_to_plot_becomes_a_sentence(executed: tuple[Path, list]) -> None:
    _, outputs = executed
    (output,) = outputs[2]
    assert output["data"]["text/markdown"].startswith("*No figure: curves.parquet has no rows")


def test_a_table_shows_caption_styled_table_and_notes_and_writes_its_files(executed: tuple[Path, list]) -> None:
    folder, outputs = executed
    caption, table, notes = outputs[3]
    assert caption["data"]["text/markdown"].startswith("**Head** (1 rows as [Markdown](tables/headline.md)")
    assert '<table id="T_' in table["data"]["text/html"] and "font-weight: bold" in table["data"]["text/html"]
    assert notes["data"]["text/html"] == '<p class="notes">How to read</p>'
    assert "| rot | 0.8 ★ |" in (folder / "tables" / "headline.md").read_text()
    assert (folder / "tables" / "headline.tex").read_text().startswith(r"\begin{tabular}")


def test_a_bare_figure_displays_as_png(executed: tuple[Path, list]) -> None:
    _, outputs = executed
    (result,) = outputs[4]
    assert "image/png" in result["data"]
