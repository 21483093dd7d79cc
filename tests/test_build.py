"""build_report: a synthetic results folder → executed notebook, HTML, figures, tables and GIFs on disk.

`write_synthetic_study` is also what test_plots, test_gifs and the benchmark build their inputs from.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageSequence

from reports import build, tables
from reports.load import load_results

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
                    "size": GIF_SIZE, "fps": 8.0,
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
                })  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_study() -> dict:
    return {
        "study": "synthetic", "description": "a made-up study for the report tests",
        "prompt_set": {"name": "motion-v1", "sha256": "ab" * 32, "n": len(PROMPTS)},
        "backend": {"name": "tiny", "weights": "random-init"},
        "data": {"source": "shapes", "n_train": 16, "n_val": 4, "frames": 12, "fps": 8.0},
        "generation": {"frames": 5, "size": GIF_SIZE, "fps": 8.0, "decoder_steps": 2, "guidance": 4.0,
                       "samples_per_prompt": 1, "noise": "same", "dt": 0.25, "mode": "step"},
        "seeds": list(SEEDS), "study_seed": 1234, "git_sha": "1234567890abcdef", "git_dirty": True,
        "versions": {"torch": "2.14.1", "pandas": pd.__version__}, "device": "cpu",
        "variant_order": ["static", "base", "rot"], "baselines": ["static"], "axes": AXES,
        "variants": VARIANTS,
        "created_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


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
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_synthetic_study(tmp_path_factory.mktemp("synthetic"))
    return build.build_report(root)


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
    caption, header = build.GRID_CAPTION_WIDTH, build.GRID_HEADER_HEIGHT
    assert (width, height) == (
        caption + len(VARIANTS) * build.GRID_TILE,
        header + len(PROMPTS) * build.GRID_TILE,
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
    two dependency-free modules it shares with them (the results schema and the one interval implementation)."""
    shared = {"metrics.schema", "metrics.stats"}
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
        ({"data": {"source": "synthetic"}, "backend": {"name": "tiny"}}, "known-answer test"),
        ({"data": {"source": "shapes"}, "backend": {"name": "tiny"}}, "random weights"),
        ({"data": {"source": "msrvtt"}, "backend": {"name": "kandinsky22-random"}}, "random weights"),
        ({"data": {"source": "msrvtt"}, "backend": {"name": "kandinsky22"}}, None),
    ],
)
def test_the_page_says_when_numbers_measure_mechanics_not_the_method(study: dict, says: str | None) -> None:
    note = build.what_the_numbers_mean(study)
    assert (says in note) if says else note == ""
