"""build_report: a synthetic results folder → executed notebook, HTML, figures, tables and GIFs on disk.

`write_synthetic_study` is also what test_plots, test_gifs and the benchmark build their inputs from.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import inspect
import json
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageSequence

from reports import build, gifs, kernel, notebook, plots, tables
from reports.load import ResultsSchemaError, load_results

SEEDS = (0, 1)
PROMPTS = {"p0": "a red ball rolls to the right across a wooden floor", "p1": "waves break on a beach"}
# study.json `axes` (the first level is each axis's reference) and `variants` (each variant's factors).
AXES = {"regime": ["base"], "rotation_layer": ["off", "plane"], "cross_attention": ["off"]}
VARIANTS = {
    "static": {},
    "base": {"regime": "base", "rotation_layer": "off", "cross_attention": "off"},
    "rot": {"regime": "base", "rotation_layer": "plane", "cross_attention": "off"},
}
FRAMES = {"static": 3, "base": 4, "rot": 5}  # unequal on purpose: the grid holds the last frame of short ones
TEMPORAL = "clip_temporal_consecutive[openclip:tiny-vit]"
EMBED_ERR = "embedding_cosine_error"
FVD = "fvd[tiny]"
GIF_SIZE = 16


def trial_id(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}-0000abcd"


def write_tiny_gif(path: Path, n_frames: int, colour: tuple[int, int, int], size: int = GIF_SIZE) -> Path:
    """A square that moves one step per frame, so consecutive frames differ."""
    frames = []
    for index in range(n_frames):
        image = Image.new("RGB", (size, size), colour)
        offset = (index * 3) % (size - 4)
        image.paste((255, 255, 255), (offset, 2, offset + 4, 6))
        frames.append(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=125, loop=0)
    return path


def score_row(variant: str, seed: int, metric: str, value: float, **fields) -> dict:
    row = {
        "study": "synthetic", "trial_id": trial_id(variant, seed), "variant": variant, "seed": seed, "metric": metric,
        "metric_version": "1", "level": "video", "higher_is_better": True, "value": value, "n": 4, "reliable": True,
        "prompt_id": None, "sample_idx": None, "gen_seed": None, "extra": "{}",
    }  # fmt: skip
    row.update(fields)
    return row


def synthetic_scores(rng: np.random.Generator) -> pd.DataFrame:
    quality = {"static": 0.5, "base": 0.7, "rot": 0.8}
    rows = []
    for variant in VARIANTS:
        for seed in SEEDS:
            for index, prompt_id in enumerate(PROMPTS):
                ids = {"prompt_id": prompt_id, "sample_idx": 0, "gen_seed": 100 + index}
                rows.append(score_row(variant, seed, TEMPORAL, quality[variant] + rng.normal(0, 0.05), **ids))
            for video in range(3):
                for mode in ("step", "chain"):
                    for horizon in (1, 2, 3):
                        error = (1.2 - quality[variant]) * horizon * (1.5 if mode == "chain" else 1.0)
                        rows.append(score_row(
                            variant, seed, EMBED_ERR, error + rng.normal(0, 0.02), higher_is_better=False,
                            prompt_id=f"val{video}", extra=json.dumps({"horizon": horizon, "mode": mode}),
                        ))  # fmt: skip
                rows.append(score_row(
                    variant, seed, EMBED_ERR, 1.2 - quality[variant] + rng.normal(0, 0.02),
                    higher_is_better=False, prompt_id=f"val{video}",
                ))  # fmt: skip
            fvd = 100 * (1 - quality[variant]) + rng.normal(0, 2)
            rows.append(score_row(
                variant, seed, FVD, fvd, level="set", higher_is_better=False, n=4, reliable=False,
                extra=json.dumps({"ci_low": fvd - 5, "ci_high": fvd + 5, "n_boot": 100}),
            ))  # fmt: skip
    # The dtypes ablations/results.py writes: nullable strings and integers.
    nullable = {"prompt_id": "string", "sample_idx": "Int64", "gen_seed": "Int64", "extra": "string"}
    return pd.DataFrame(rows).astype(nullable)


def synthetic_curves(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for variant in ("base", "rot"):
        for seed in SEEDS:
            for epoch in range(4):
                for split in ("train", "val"):
                    loss = 1.0 / (epoch + 1) + (0.1 if split == "val" else 0.0) + rng.normal(0, 0.01)
                    for metric, value in (("loss", loss), ("cosine", 1 - loss / 2)):
                        rows.append({
                            "study": "synthetic", "trial_id": trial_id(variant, seed), "variant": variant,
                            "seed": seed, "epoch": epoch, "split": split, "metric": metric, "value": value,
                        })  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_videos(root: Path) -> pd.DataFrame:
    colours = {"static": (200, 40, 40), "base": (40, 160, 40), "rot": (40, 40, 200)}
    rows = []
    for variant in VARIANTS:
        for seed in SEEDS:
            for index, (prompt_id, prompt) in enumerate(PROMPTS.items()):
                gif = Path("trials") / trial_id(variant, seed) / "generate" / f"{prompt_id}-0.gif"
                write_tiny_gif(root / gif, FRAMES[variant], colours[variant])
                rows.append({
                    "study": "synthetic", "trial_id": trial_id(variant, seed), "variant": variant, "seed": seed,
                    "prompt_id": prompt_id, "prompt": prompt, "sample_idx": 0, "gen_seed": 100 + index,
                    "gif": str(gif), "mp4": str(gif.with_suffix(".mp4")), "frames": FRAMES[variant],
                    "size": GIF_SIZE, "fps": 8.0, "start": "prior", "mode": "step", "truth_gif": None,
                })  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_runs() -> pd.DataFrame:
    rows = []
    for variant in VARIANTS:
        for seed in SEEDS:
            for stage in ("train", "generate", "score"):
                rows.append({
                    "study": "synthetic", "trial_id": trial_id(variant, seed), "variant": variant, "seed": seed,
                    "stage": stage, "status": "done", "config_hash": "0000abcd", "config_json": "{}",
                    "prompts_sha256": "f" * 64, "git_sha": "1234567890abcdef", "git_dirty": False,
                    "python": "3.11", "torch": "2.14.1", "diffusers": "0.35", "transformers": "4.57",
                    "open_clip": "3.0", "device": "cpu", "gpu_name": None, "dtype": "float32",
                    "deterministic": True, "started_at": "2026-01-01T00:00:00Z",
                    "finished_at": "2026-01-01T00:01:00Z", "wall_s": 60.0, "argv": "run",
                    "steps": 100 if stage == "train" else None, "examples": 6400 if stage == "train" else None,
                    "train_wall_s": 55.0 if stage == "train" else None,
                })  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_study() -> dict:
    return {
        "study": "synthetic", "description": "a made-up study for the report tests",
        "prompt_set": {"name": "motion-v1", "sha256": "ab" * 32, "n": len(PROMPTS)},
        "backend": {"name": "tiny", "weights": "random-init", "random_weights": True},
        "data": {"source": "shapes", "n_train": 16, "n_val": 4, "frames": 12, "fps": 8.0},
        "generation": {"frames": 5, "size": GIF_SIZE, "fps": 8.0, "decoder_steps": 2, "guidance": 4.0,
                       "samples_per_prompt": 1, "noise": "same", "dt": 0.25, "mode": "step"},
        "seeds": list(SEEDS), "study_seed": 1234, "git_sha": "1234567890abcdef", "git_dirty": True,
        "versions": {"torch": "2.14.1", "pandas": pd.__version__}, "device": "cpu",
        "variant_order": ["static", "base", "rot"], "baselines": ["static"], "axes": copy.deepcopy(AXES),
        "variants": VARIANTS,
        "created_at": "2026-01-01T00:00:00Z",
        "question": "Does a plane rotation layer make the rollouts more consistent?",
        "world": "Made-up numbers for the report tests: they say nothing about any model.",
        "skipped": copy.deepcopy(SKIPPED),
        "evaluation_protocol": {"fvd": {"metric": FVD}, "evaluation_set": {"n_reference_skipped": 0}},
    }  # fmt: skip


# study.json `skipped`: what the encode stages left out (ablations/results.py skipped_videos).
SKIPPED = [
    {"encode": "ab12cd34", "video": "zero_byte.mp4", "reason": "empty file (0 bytes)"},
    {"encode": "ab12cd34", "video": "clip<b>x</b>", "reason": "no video stream"},
]


EXPECTATIONS = [
    {"expectation": "rot beats static on temporal consistency", "held": True, "metric": TEMPORAL,
     "detail": "Δ +0.30 [0.14, 0.47], 2 paired seeds"},
    {"expectation": "base beats static on FVD with a reliable interval", "held": False, "metric": FVD,
     "detail": "every FVD row is unreliable (n ≤ dim)"},
]  # fmt: skip


def write_synthetic_study(root: Path, seed: int = 0) -> Path:
    """A complete `ROOT/<study>` folder per docs/results.md: 3 variants (incl. static), 2 seeds, 2 prompts."""
    rng = np.random.default_rng(seed)
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    synthetic_scores(rng).to_parquet(results / "scores.parquet")
    synthetic_curves(rng).to_parquet(results / "curves.parquet")
    synthetic_videos(root).to_parquet(results / "videos.parquet")
    synthetic_runs().to_parquet(results / "runs.parquet")
    (results / "study.json").write_text(json.dumps(synthetic_study(), indent=2))
    (results / "expectations.json").write_text(json.dumps(EXPECTATIONS, indent=2))
    return root


@dataclass
class Console:
    """What a build printed on file descriptors 1 and 2 (the kernel's own output included) and logged."""

    text: str = ""
    records: list[logging.LogRecord] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)


@contextlib.contextmanager
def captured_console() -> Iterator[Console]:
    """Capture fds 1/2 (what a terminal would show, child processes included), log records and warnings."""
    console = Console()
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = console.records.append  # type: ignore[method-assign]
    root_logger = logging.getLogger()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        root_logger.addHandler(handler)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            root_logger.removeHandler(handler)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            console.text = sink.read().decode("utf-8", "replace")
            console.warned = [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.fixture(scope="module")
def built_console(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Console]:
    root = write_synthetic_study(tmp_path_factory.mktemp("synthetic"))
    with captured_console() as console:
        page = build.build_report(root)
    return page, console


@pytest.fixture(scope="module")
def built(built_console: tuple[Path, Console]) -> Path:
    return built_console[0]


def page_text(html: str) -> str:
    """The page's visible text in order (tags dropped, images as [img src])."""
    body = re.sub(r"<style.*?</style>", "", html[html.index("<body"):], flags=re.S)
    body = re.sub(r'<img[^>]*src="([^"]+)"[^>]*>', r" [img \1] ", body)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def test_the_build_prints_nothing_and_logs_no_warning(built_console: tuple[Path, Console]) -> None:
    """No traitlets/kernelspec/TCP/zmq lines reach the user: the console stays empty, no warning is logged."""
    _, console = built_console
    assert console.text.strip() == "", console.text
    noisy = [r for r in console.records if r.levelno >= logging.WARNING]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]
    assert not [w for w in console.warned if re.search("kernel|traitlets|zmq|jupyter", w, re.I)], console.warned


def test_executed_notebook_shows_dataframes(built: Path) -> None:
    notebook = nbformat.read(built.parent / "report.ipynb", as_version=4)
    html_outputs = [
        output["data"]["text/html"] for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "text/html" in output.get("data", {})
    ]  # fmt: skip
    assert any('<table id="T_' in html for html in html_outputs)  # a pandas Styler: the headline table
    assert any('class="dataframe' in html for html in html_outputs)  # a plain DataFrame: the tidy scores


def test_each_figure_cell_shows_the_call_and_its_arguments(built: Path) -> None:
    """Every plots.* call in the notebook passes its data, the study and (where taken) metric= and variants=."""
    notebook = nbformat.read(built.parent / "report.ipynb", as_version=4)
    calls = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "plots":
                calls.append(node)
                function = getattr(plots, node.func.attr)
                parameters = inspect.signature(function).parameters
                required = [name for name, p in parameters.items() if p.default is inspect.Parameter.empty]
                assert len(node.args) + len(node.keywords) >= len(required), ast.unparse(node)
                keywords = {keyword.arg for keyword in node.keywords}
                for name in ("variants",):
                    if name in parameters:
                        assert name in keywords, f"{ast.unparse(node)} hides `{name}`"
    figures = {node.func.attr for node in calls}
    assert figures >= {"metric_heatmap", "metric_points", "horizon_growth", "training_curves", "ablation_effects"}


def test_report_ipynb_reexecutes_from_its_folder(built: Path) -> None:
    notebook = nbformat.read(built.parent / "report.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    kernel.execute(notebook, cwd=built.parent)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors and all(c.execution_count for c in notebook.cells if c.cell_type == "code")


def test_each_caption_sits_in_one_frame_with_its_own_figure(built: Path) -> None:
    html = built.read_text()
    frames = re.findall(r'<figure class="report">(.*?)</figure>', html, re.S)
    assert len(frames) >= 7  # gif grid, heatmap, 3 metrics, horizon, curves, ablation
    for frame in frames:
        assert len(re.findall(r"<img ", frame)) == 1 and len(re.findall(r"<figcaption>", frame)) == 1
        assert frame.index("<img ") < frame.index("<figcaption>")
    outside = re.sub(r'<figure class="report">.*?</figure>', "", html, flags=re.S)
    assert not re.search(r'<img[^>]*src="figures/', outside)  # no figure without its frame


def test_the_first_screen_reads_question_world_protocol_verdicts_headline(built: Path) -> None:
    text = page_text(built.read_text())
    order = [
        "Does a plane rotation layer", "Made-up numbers for the report tests", "motion-v1", "Verdicts.",
        f"{TEMPORAL}: mean [95% interval]", "[img gifs/grid.gif]", "[img figures/overview-heatmap.png]",
        "Metrics one by one",
    ]  # fmt: skip
    positions = [text.find(marker) for marker in order]
    assert -1 not in positions and positions == sorted(positions), dict(zip(order, positions, strict=True))


def test_verdicts_list_failed_expectations_first(built: Path) -> None:
    text = page_text(built.read_text())
    assert "1 of 2 expectations held, 1 failed" in text
    html = built.read_text()  # the marks are coloured spans: plain check marks, never emoji
    failed = html.find('<span class="failed">✗ failed</span>: base beats static on FVD')
    assert -1 < failed < html.find('<span class="held">✓ held</span>: rot beats static')


def dejavu_characters() -> set[str]:
    """The characters DejaVu Sans draws (matplotlib ships it): what any browser here can show without an emoji font."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    font = TTFont(font_manager.findfont("DejaVu Sans", fallback_to_default=False))
    return {chr(code) for code in font.getBestCmap()}


def test_every_character_on_the_page_is_in_a_common_font(built: Path) -> None:
    """No emoji (they render as empty boxes in a browser without an emoji font): each visible character of the
    page, and of the tables it links, is one DejaVu Sans draws."""
    drawn = dejavu_characters() | set("\n\t\r")
    texts = [page_text(built.read_text())] + [path.read_text() for path in (built.parent / "tables").glob("*.md")]
    missing = {char for text in texts for char in text if char not in drawn}
    assert not missing, sorted(f"U+{ord(char):04X} {char}" for char in missing)


def test_the_protocol_says_what_each_number_is_over(built: Path) -> None:
    text = page_text(built.read_text())
    assert ("each trial's number is over 3 held-out videos (embedding metrics); 2 prompts × 1 sample(s) = 2 generated videos "
            "(video metrics); 4 videos per set (fvd)") in text
    assert "training [0, 1], study seed 1234" in text


def test_the_skipped_videos_are_counted_on_the_first_screen_and_listed_with_their_reasons(built: Path) -> None:
    text = page_text(built.read_text())
    count = text.find("2 source file(s) left out by the encode stage")
    assert -1 < count < text.find("Verdicts."), "the count belongs to the protocol block on the first screen"
    assert "the store, every score and FVD's reference set use the rest" in text
    section = text.find("2 source file(s) the encode stage left out")
    ablation = text.find("Ablation: one switch at a time")
    assert -1 < ablation < text.find("Skipped videos", ablation) < section  # its own section, after the figures
    for entry in SKIPPED:  # a file name is text, never markup
        assert text.find(entry["video"], section) > section and entry["reason"] in text[section:]
    assert "clip&lt;b&gt;x&lt;/b&gt;" in built.read_text()
    assert "| ab12cd34 | zero_byte.mp4 | empty file (0 bytes) |" in (built.parent / "tables" / "skipped.md").read_text()


def test_a_study_with_60_metrics_draws_a_bounded_set_of_detail_figures(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path / "wide")
    path = root / "results" / "scores.parquet"
    extra = [f"extra_family{index % 19}[p{index}]" for index in range(57)]  # 19 more families, 60 metrics in all
    rows = [score_row(variant, seed, metric, 0.5 + 0.01 * seed, prompt_id="p0", sample_idx=0, gen_seed=100)
            for metric in extra for variant in VARIANTS for seed in SEEDS]  # fmt: skip
    nullable = {"prompt_id": "string", "sample_idx": "Int64", "gen_seed": "Int64", "extra": "string"}
    pd.concat([pd.read_parquet(path), pd.DataFrame(rows).astype(nullable)]).to_parquet(path)
    page = build.build_report(root)
    drawn = {path.stem for path in (page.parent / "figures").glob("metric-*.png")}
    assert len(drawn) == tables.DETAIL_LIMIT and gifs.slug(f"metric-{TEMPORAL}") in drawn  # TEMPORAL: the headline
    assert gifs.slug(f"metric-{FVD}") in drawn  # named by an expectation
    text = page_text(page.read_text())
    assert f"Figures for {tables.DETAIL_LIMIT} of 60 metrics" in text
    assert sum(1 for line in (page.parent / "tables" / "all_metrics.md").read_text().splitlines()[2:]) == 60 * 3


def test_each_detail_figure_follows_the_selection_rule(built: Path) -> None:
    results = load_results(built.parents[1])
    summary = tables.summary(results.scores, results.study)
    headline = tables.headline_metric(results.scores, results.study)
    chosen = tables.detail_metrics(summary["metric"], headline, named=notebook.expectation_metrics(results))
    drawn = sorted(path.stem for path in (built.parent / "figures").glob("metric-*.png"))
    assert drawn == sorted(gifs.slug(f"metric-{metric}") for metric in chosen) and headline in chosen


def test_the_page_loads_nothing_from_the_network(built: Path) -> None:
    html = built.read_text()
    loads = re.findall(r'<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*["\']?(https?:)?//', html, re.I)
    assert loads == []
    assert not re.search(r"@import\s+(url\()?[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", html, re.I)  # no remote font or image from CSS
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)  # no script file at all, local or remote


def test_report_folder_has_page_notebook_figures_tables_and_gifs(built: Path) -> None:
    report = built.parent
    assert built == report / "index.html" and built.exists()
    assert (report / "report.ipynb").exists()
    figures = sorted(path.name for path in (report / "figures").glob("*.png"))
    assert len(figures) >= 5  # 3 metric point plots, horizon, curves, ablation
    for png in (report / "figures").glob("*.png"):
        assert png.with_suffix(".pdf").exists()
    assert (report / "tables" / "headline.md").exists() and (report / "tables" / "headline.tex").exists()


def test_executed_notebook_has_outputs_and_no_errors(built: Path) -> None:
    notebook = nbformat.read(built.parent / "report.ipynb", as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code_cells)
    outputs = [output for cell in code_cells for output in cell.get("outputs", [])]
    assert outputs and not [output for output in outputs if output.output_type == "error"]
    assert any(cell.metadata.get("tags") == ["injected-parameters"] for cell in notebook.cells)


def test_every_image_the_html_references_exists(built: Path) -> None:
    html = built.read_text()
    sources = re.findall(r'<img[^>]*\bsrc="([^"]+)"', html)
    local = [source for source in sources if not source.startswith("data:")]
    assert any(source.startswith("figures/") for source in local)
    assert any(source.startswith("gifs/") for source in local)
    for source in local:
        assert (built.parent / source).exists(), source


def test_html_opens_with_the_protocol_block_then_the_table(built: Path) -> None:
    html = built.read_text()
    protocol, headline = html.find("motion-v1"), html.find(TEMPORAL)
    assert 0 < protocol < headline
    assert "1234567890ab (dirty" in html
    assert "def " not in html  # code is hidden


def test_gif_grid_size_and_frames_match_rows_and_columns(built: Path) -> None:
    grid = Image.open(built.parent / "gifs" / "grid.gif")
    frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(grid)]
    assert len(frames) == max(FRAMES.values())
    width, height = grid.size
    caption, header = gifs.grid_margins(notebook.GRID_TILE)
    assert (width, height) == (
        caption + len(VARIANTS) * notebook.GRID_TILE,
        header + len(PROMPTS) * notebook.GRID_TILE,
    )


def test_headline_table_ci_matches_hand_computation(built: Path) -> None:
    scores = pd.read_parquet(built.parents[1] / "results" / "scores.parquet")
    rows = scores[(scores["metric"] == TEMPORAL) & (scores["variant"] == "rot")]
    per_seed = rows.groupby("seed")["value"].mean().to_numpy()
    mean = per_seed.mean()
    half = 12.706204736174707 * abs(per_seed[0] - per_seed[1]) / 2  # t_{0.975,1}·sd/√2 with sd = |a-b|/√2
    expected = tables.format_interval(mean, mean - half, mean + half)
    markdown = (built.parent / "tables" / "headline.md").read_text()
    line = next(line for line in markdown.splitlines() if TEMPORAL in line and "| rot |" in line)
    assert expected in line
    assert math.isclose(float(expected.split()[0]), mean, rel_tol=1e-3)


def test_unexecuted_build_prepares_the_notebook_only(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path / "study")
    page = build.build_report(root, out_dir=tmp_path / "draft", execute=False)
    notebook = nbformat.read(page.parent / "report.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert not (tmp_path / "draft" / "figures").exists() or not any(
        (tmp_path / "draft" / "figures").iterdir()
    )


def test_missing_results_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="results"):
        build.build_report(tmp_path / "nowhere")


def test_cli_reports_a_missing_study_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build.main([])
    assert "study_root" in capsys.readouterr().err
    assert build.main([str(tmp_path / "nowhere")]) == 1
    error = capsys.readouterr().err
    assert (
        error.startswith("error: ") and "nowhere/results does not exist" in error and "Traceback" not in error
    )


def test_template_calls_only_reports_functions() -> None:
    template = Path(build.TEMPLATE).read_text()
    tree = ast.parse(template)
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported and all(name.split(".")[0] == "reports" for name in imported)
    assert '# %% tags=["parameters"]\nstudy_root = ""' in template


def test_reports_never_imports_spliter() -> None:
    """reports/ reads the results folder only: no import of the method, the metrics or the harness, except the
    dependency-free modules it shares with them (the results schema, the one interval implementation and the
    one atomic write)."""
    shared = {"metrics.schema", "metrics.stats", "spliter.atomic"}
    for path in Path(build.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names = [name for name in names if name not in shared]
            assert not any(name.split(".")[0] in {"spliter", "ablations", "metrics"} for name in names), path


def test_load_results_reads_what_was_written(tmp_path: Path) -> None:
    results = load_results(write_synthetic_study(tmp_path))
    assert set(results.scores["variant"]) == set(VARIANTS)
    assert results.scores["horizon"].notna().sum() == len(VARIANTS) * len(SEEDS) * 3 * 2 * 3
    assert results.missing == []


def test_load_results_names_the_file_with_missing_columns(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path)
    pd.read_parquet(root / "results" / "scores.parquet").drop(columns=["reliable"]).to_parquet(
        root / "results" / "scores.parquet"
    )
    with pytest.raises(ValueError, match=r"scores\.parquet lacks the columns \['reliable'\]"):
        load_results(root)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("extra", "[1, 2]", "`extra` of trial .* is not a JSON object"),
        ("value", math.nan, "non-finite value"),
    ],
)
def test_load_results_rejects_bad_rows(tmp_path: Path, column: str, value: object, message: str) -> None:
    root = write_synthetic_study(tmp_path)
    scores = pd.read_parquet(root / "results" / "scores.parquet")
    scores.loc[3, column] = value
    scores.to_parquet(root / "results" / "scores.parquet")
    with pytest.raises(ValueError, match=message):
        load_results(root)


def test_absent_optional_tables_are_recorded_and_reported(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path)
    (root / "results" / "curves.parquet").unlink()
    results = load_results(root)
    assert results.missing == ["curves.parquet"] and results.curves.empty
    assert "curves.parquet" in tables.protocol_table(results)["value"].iloc[-1]
    (root / "results" / "scores.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="scores.parquet is missing"):
        load_results(root)


@pytest.mark.parametrize(
    ("study", "says"),
    [
        ({"data": {"source": "synthetic", "note": "A known-answer test of the method"}, "backend": None},
         "known-answer test"),
        ({"data": {"source": "shapes"}, "backend": {"name": "tiny", "random_weights": True}}, "random weights"),
        ({"data": {"source": "msrvtt"}, "backend": {"name": "kandinsky22-random", "random_weights": True}},
         "random weights"),
        ({"data": {"source": "msrvtt"}, "backend": {"name": "kandinsky22", "random_weights": False}}, None),
    ],
)
def test_the_page_says_when_numbers_measure_mechanics_not_the_method(study: dict, says: str | None) -> None:
    note = notebook.what_the_numbers_mean(study)
    assert (says in note) if says else note == ""


def test_expectations_json_with_a_bad_entry_names_the_file_and_entry(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path)
    (root / "results" / "expectations.json").write_text(json.dumps([{"expectation": "x", "held": "yes"}]))
    with pytest.raises(ResultsSchemaError, match=r"expectations\.json: entry 0 lacks or mistypes \['held', 'metric'"):
        load_results(root)


def test_absent_expectations_load_as_none(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path)
    (root / "results" / "expectations.json").unlink()
    assert load_results(root).expectations is None
    assert list(load_results(write_synthetic_study(tmp_path / "b")).expectations["held"]) == [True, False]


def test_a_failed_cell_is_named_by_its_execution_count() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("1", execution_count=1),
        nbformat.v4.new_code_cell("1 / 0", execution_count=2, outputs=[
            nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])
        ]),
    ])  # fmt: skip
    assert build.failed_cell(notebook) == 2
    assert build.failed_cell(nbformat.v4.new_notebook()) == "?"
