"""summary.json: written from the results tables, valid against the schema block of docs/results.md."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonschema
import pytest
from test_build import EXPECTATIONS, FVD, TEMPORAL, write_synthetic_study

from reports import summary, tables
from reports.load import load_results

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def documented_schema() -> dict:
    """The JSON block that follows the `<!-- summary.json schema -->` marker in docs/results.md."""
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- summary\.json schema -->\s*```json\n(.*?)\n```", text, re.S)
    assert block, f"{DOCS} has no summary.json schema block"
    return json.loads(block.group(1))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = write_synthetic_study(tmp_path_factory.mktemp("summary"))
    path = summary.write_summary(root)
    return root, json.loads(path.read_text(encoding="utf-8"))


def test_the_written_file_validates_against_the_documented_schema(written: tuple[Path, dict]) -> None:
    schema = documented_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(written[1], schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_rejects_a_summary_with_a_nan_or_a_missing_interval(written: tuple[Path, dict]) -> None:
    schema, document = documented_schema(), json.loads(json.dumps(written[1]))
    del document["results"][0]["interval"]
    with pytest.raises(jsonschema.ValidationError, match="interval"):
        jsonschema.validate(document, schema)
    with pytest.raises(ValueError):  # the writer refuses NaN (JSON has none) instead of writing it
        json.dumps({"mean": math.nan}, allow_nan=False)


def test_each_variant_and_metric_carries_the_numbers_of_the_page(written: tuple[Path, dict]) -> None:
    root, document = written
    results = load_results(root)
    table = tables.summary(results.scores, results.study).set_index(["variant", "metric"])
    assert len(document["results"]) == len(table)
    for entry in document["results"]:
        row = table.loc[(entry["variant"], entry["metric"])]
        assert entry["mean"] == pytest.approx(row["mean"])
        assert entry["n_seeds"] == row["n_seeds"] == 2
        assert entry["direction"] == ("higher" if row["higher_is_better"] else "lower")
        low = entry["interval"]["low"]
        assert (low is None and math.isnan(row["ci_low"])) or low == pytest.approx(row["ci_low"])
    rot = next(e for e in document["results"] if e["variant"] == "rot" and e["metric"] == TEMPORAL)
    assert rot["best"] and rot["difference_to_reference"]["reference"] == "static"
    static = next(e for e in document["results"] if e["variant"] == "static" and e["metric"] == FVD)
    assert static["difference_to_reference"]["mean"] is None  # the reference itself: null, not NaN
    assert not static["reliable"]


def test_verdicts_and_protocol_are_carried_over(written: tuple[Path, dict]) -> None:
    _, document = written
    assert document["verdicts"] == EXPECTATIONS
    assert document["protocol"]["git_sha"] == "1234567890abcdef"
    assert document["protocol"]["prompt_set"]["sha256"] == "ab" * 32
    assert set(document["protocol"]["config_hashes"].values()) == {"0000abcd"}
    assert document["question"].startswith("Does a plane rotation layer")
    assert document["variants"] == ["static", "base", "rot"]


def test_without_expectations_the_verdicts_are_null(tmp_path: Path) -> None:
    root = write_synthetic_study(tmp_path)
    (root / "results" / "expectations.json").unlink()
    document = json.loads(summary.write_summary(root).read_text(encoding="utf-8"))
    assert document["verdicts"] is None
    jsonschema.validate(document, documented_schema())


def test_main_writes_the_file_or_names_the_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_synthetic_study(tmp_path / "s")
    assert summary.main([str(root)]) == 0 and (root / "results" / "summary.json").exists()
    assert summary.main([str(tmp_path / "nowhere")]) == 1
    assert "nowhere/results does not exist" in capsys.readouterr().err
