"""Two results folders side by side: what changed in the protocol, and per variant × metric both runs' means with
the paired difference B − A (over seeds both runs share, or over videos within one shared seed).

`python -m reports.compare RUN_A RUN_B [--out DIR]` writes DIR/comparison.md and DIR/comparison.html.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reports import tables
from reports.load import Results, load_results, variant_order

LIBRARY_COLUMNS = ("python", "torch", "diffusers", "transformers", "open_clip")
RESULT_COLUMNS = ("variant", "metric", "A mean [95% CI]", "B mean [95% CI]", "Δ B − A [95% CI]", "paired over", "note")
CAPTION = (
    "Each run's mean and 95% interval as in its own report (across its seeds); Δ is B − A paired by training seed "
    "when both runs share ≥ 2 seeds, by video within the one shared seed otherwise, and has no interval when "
    "nothing pairs (e.g. a set-level metric with one seed). A row present in one run only is marked."
)


def _joined(values: Any) -> str:
    values = sorted({str(value) for value in values if value is not None and not pd.isna(value)})
    return ", ".join(values) if values else "not recorded"


def _config_hashes(results: Results) -> dict[str, str]:
    runs = results.runs
    if runs.empty:
        return {}
    return {variant: _joined(group["config_hash"]) for variant, group in runs.groupby("variant")}


def protocol_changes(a: Results, b: Results) -> pd.DataFrame:
    """(field, A, B, changed) for everything that can make two runs' numbers differ besides the method."""

    def fields(results: Results) -> dict[str, str]:
        study = results.study
        prompt_set = study.get("prompt_set") or {}
        out = {
            "study": str(study.get("study")),
            "git sha": f"{study.get('git_sha')}" + (" (dirty)" if study.get("git_dirty") else ""),
            "prompt set sha256": str(prompt_set.get("sha256")),
            "prompts (runs.parquet)": _joined(results.runs["prompts_sha256"]) if not results.runs.empty else "not recorded",
            "seeds": str(study.get("seeds")),
            "device": str(study.get("device")),
            "backend": json.dumps(study.get("backend"), sort_keys=True),
            "data": json.dumps(study.get("data"), sort_keys=True),
            "generation": json.dumps(study.get("generation"), sort_keys=True),
        }  # fmt: skip
        for name, version in sorted((study.get("versions") or {}).items()):
            out[f"version: {name}"] = str(version)
        for column in LIBRARY_COLUMNS:
            if not results.runs.empty and column in results.runs:
                out[f"runs.parquet: {column}"] = _joined(results.runs[column])
        for variant, hashes in _config_hashes(results).items():
            out[f"config hash: {variant}"] = hashes
        return out

    left, right = fields(a), fields(b)
    rows = [
        {"field": key, "A": left.get(key, "absent"), "B": right.get(key, "absent"),
         "changed": "changed" if left.get(key, "absent") != right.get(key, "absent") else ""}
        for key in dict.fromkeys([*left, *right])
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["field", "A", "B", "changed"])


def paired_results(a: Results, b: Results) -> pd.DataFrame:
    """Per variant × metric of either run: both means with intervals and the paired difference B − A."""
    rows_a, rows_b = tables.headline_rows(a.scores), tables.headline_rows(b.scores)
    study = {**a.study, "variant_order": [*a.study.get("variant_order", []), *b.study.get("variant_order", [])],
             "baselines": [*a.study.get("baselines", []), *b.study.get("baselines", [])]}  # fmt: skip
    variants = variant_order(study, pd.concat([rows_a["variant"], rows_b["variant"]]).unique())
    metrics = sorted(set(rows_a["metric"]) | set(rows_b["metric"]))
    records = []
    for metric in metrics:
        for variant in variants:
            mine = rows_a[(rows_a["metric"] == metric) & (rows_a["variant"] == variant)]
            theirs = rows_b[(rows_b["metric"] == metric) & (rows_b["variant"] == variant)]
            if mine.empty and theirs.empty:
                continue
            cell = {"variant": variant, "metric": metric, "note": ""}
            for label, rows in (("A", mine), ("B", theirs)):
                if rows.empty:
                    cell[f"{label} mean [95% CI]"] = "—"
                    continue
                estimate = tables.group_interval(rows)
                cell[f"{label} mean [95% CI]"] = tables.format_interval(estimate.mean, estimate.low, estimate.high)
                direction = "↑" if rows["higher_is_better"].iloc[0] else "↓"
                cell["metric"] = f"{metric} {direction}"
            if mine.empty or theirs.empty:
                cell.update({"Δ B − A [95% CI]": "—", "paired over": "",
                             "note": f"only in {'B' if mine.empty else 'A'}"})  # fmt: skip
            else:
                difference = tables.paired_difference(theirs, mine)
                cell["Δ B − A [95% CI]"] = tables.format_interval(difference.mean, difference.low, difference.high)
                cell["paired over"] = difference.how
                if math.isfinite(difference.low) and (difference.low > 0 or difference.high < 0):
                    cell["note"] = "interval excludes 0"
            records.append(cell)
    return pd.DataFrame.from_records(records, columns=list(RESULT_COLUMNS))


def comparison_markdown(a: Results, b: Results, changes: pd.DataFrame, paired: pd.DataFrame) -> str:
    changed = changes[changes["changed"] != ""]
    lines = [
        f"# Comparison: {a.study['study']} (A) vs {b.study['study']} (B)", "",
        f"- A: `{a.root}`", f"- B: `{b.root}`", "",
        f"## What changed in the protocol ({len(changed)} of {len(changes)} fields)", "",
        tables.to_markdown(changed) if not changed.empty else "Nothing: the two runs share every recorded field.\n",
        "## Results side by side", "", f"*{CAPTION}*", "", tables.to_markdown(paired),
        "## Every protocol field", "", tables.to_markdown(changes),
    ]  # fmt: skip
    return "\n".join(lines)


HTML_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 90em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
tr.changed td { background: #fff3cd; }
p.caption { font-style: italic; color: #444; }
</style>"""


def _html_table(frame: pd.DataFrame, highlight: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        marked = highlight is not None and getattr(row, highlight) != ""
        cells = "".join(f"<td>{html.escape(tables._cell(value))}</td>" for value in row)
        body.append(f'<tr class="changed">{cells}</tr>' if marked else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def comparison_html(a: Results, b: Results, changes: pd.DataFrame, paired: pd.DataFrame) -> str:
    """A self-contained page (inline style, no script, nothing from the network)."""
    changed = int((changes["changed"] != "").sum())
    title = f"Comparison: {html.escape(str(a.study['study']))} (A) vs {html.escape(str(b.study['study']))} (B)"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>", HTML_STYLE,
        "</head><body>", f"<h1>{title}</h1>",
        f"<p>A: <code>{html.escape(str(a.root))}</code><br>B: <code>{html.escape(str(b.root))}</code></p>",
        "<h2>Results side by side</h2>", f'<p class="caption">{html.escape(CAPTION)}</p>',
        _html_table(paired, highlight="note"),
        f"<h2>Protocol ({changed} of {len(changes)} fields changed, highlighted)</h2>",
        _html_table(changes, highlight="changed"), "</body></html>",
    ]) + "\n"  # fmt: skip


def write_comparison(run_a: str | Path, run_b: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write OUT/comparison.md and OUT/comparison.html for two study folders (each holding results/)."""
    a, b = load_results(run_a), load_results(run_b)
    changes, paired = protocol_changes(a, b), paired_results(a, b)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown, page = out / "comparison.md", out / "comparison.html"
    markdown.write_text(comparison_markdown(a, b, changes, paired), encoding="utf-8")
    page.write_text(comparison_html(a, b, changes, paired), encoding="utf-8")
    return markdown, page


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m reports.compare RUN_A RUN_B [--out DIR]`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m reports.compare", description=__doc__.splitlines()[0])
    parser.add_argument("run_a", help="study folder A (holds results/), e.g. runs/quickstart")
    parser.add_argument("run_b", help="study folder B, compared against A (differences are B − A)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_B/compare-<name of A>)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.run_b) / f"compare-{Path(args.run_a).resolve().name}"
    try:
        markdown, page = write_comparison(args.run_a, args.run_b, out)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"comparison: {markdown}\ncomparison: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
