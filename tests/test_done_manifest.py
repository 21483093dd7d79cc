"""A DONE stage vouches for its outputs: damaged outputs or changed inputs make it stale, and the redo is exact."""

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures import MICRO, finished_run, stage_done_times, study_scores

from ablations.cli import main
from ablations.runfolder import output_problem, read_manifest, write_manifest

# ------------------------------------------------------------------------------------------- the manifest


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    folder = tmp_path / "stage"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"abcdef")
    (folder / "sub" / "b.json").write_text("{}")
    (folder / "meta.json").write_text('{"finished_at": "now"}')
    return folder


def test_a_manifest_records_every_output_but_the_markers_and_meta(stage: Path) -> None:
    identity = write_manifest(stage, {"encode": "x"})
    manifest = read_manifest(stage)
    assert set(manifest["files"]) == {"a.bin", "sub/b.json"}
    assert manifest["files"]["a.bin"]["size"] == 6 and len(manifest["files"]["a.bin"]["sha256"]) == 64
    assert manifest["inputs"] == {"encode": "x"} and manifest["identity"] == identity
    assert output_problem(stage, manifest) is None


def test_the_identity_depends_on_contents_not_on_times(stage: Path, tmp_path: Path) -> None:
    identity = write_manifest(stage, {})
    (stage / "meta.json").write_text('{"finished_at": "later"}')
    os.utime(stage / "a.bin", ns=(1, 1))
    assert write_manifest(stage, {}) == identity
    (stage / "a.bin").write_bytes(b"abcdeX")
    assert write_manifest(stage, {}) != identity


def test_missing_resized_and_rewritten_outputs_are_named(stage: Path) -> None:
    write_manifest(stage, {})
    manifest = read_manifest(stage)
    (stage / "a.bin").write_bytes(b"abcdeX")  # same size, new bytes, new mtime
    os.utime(stage / "a.bin", ns=(10**18, 10**18))
    assert "a.bin changed" in output_problem(stage, manifest)
    (stage / "a.bin").write_bytes(b"abc")
    assert "has 3 bytes, 6 when" in output_problem(stage, manifest)
    (stage / "a.bin").unlink()
    assert "a.bin is missing" in output_problem(stage, manifest)


def test_a_copied_folder_with_new_times_and_the_same_bytes_stays_valid(stage: Path, tmp_path: Path) -> None:
    write_manifest(stage, {})
    copy = tmp_path / "copy"
    shutil.copytree(stage, copy, copy_function=shutil.copyfile)  # new mtimes
    assert output_problem(copy, read_manifest(copy)) is None


def test_a_stage_without_a_manifest_is_trusted_and_an_unreadable_one_is_not(stage: Path) -> None:
    assert read_manifest(stage) is None
    (stage / "MANIFEST.json").write_text("{not json")
    assert "unreadable" in output_problem(stage, read_manifest(stage))


# ------------------------------------------------------------------------------------- end to end (CLI)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    return finished_run(tmp_path_factory.mktemp("manifest"), MICRO, "--no-report")


@pytest.fixture
def copy(finished, tmp_path: Path) -> Path:
    """A private copy of the finished run (times preserved: nothing is stale by being copied)."""
    target = tmp_path / "runs"
    shutil.copytree(finished[1], target)
    return target


def spliter_trial(root: Path) -> Path:
    return next(p for p in (root / "micro" / "trials").iterdir() if p.name.startswith("base-"))


def redone(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {k for k in after if before.get(k) != after[k]}


def test_a_deleted_checkpoint_redoes_that_training_and_gives_the_same_scores(finished, copy, caplog) -> None:
    study, root = finished
    before = stage_done_times(copy)
    trial = spliter_trial(copy)
    (trial / "train" / "checkpoints" / "best.pt").unlink()
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(study), "--out", str(copy), "--no-report"]) == 0
    assert "stage train of trial" in caplog.text and "best.pt is missing" in caplog.text
    changed = redone(before, stage_done_times(copy))
    assert f"micro/trials/{trial.name}/train" in changed
    assert not any("encode" in k or "/static-" in k for k in changed), changed  # nothing upstream or beside it
    pd.testing.assert_frame_equal(study_scores(copy), study_scores(root))


def test_a_corrupted_store_shard_redoes_encode_and_gives_the_same_scores(finished, copy) -> None:
    study, root = finished
    before = stage_done_times(copy)
    shard = next((copy / "micro" / "encode").glob("*/store/shards/*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # same size: only the bytes tell
    shard.write_bytes(bytes(data))
    assert main(["run", str(study), "--out", str(copy), "--no-report"]) == 0
    assert any(k.startswith("micro/encode/") for k in redone(before, stage_done_times(copy)))
    pd.testing.assert_frame_equal(study_scores(copy), study_scores(root))


def test_no_redo_names_the_stale_stage_and_the_command(finished, copy, capsys) -> None:
    study, _ = finished
    trial = spliter_trial(copy)
    (trial / "generate" / "videos.json").unlink()
    assert main(["run", str(study), "--out", str(copy), "--no-report", "--no-redo"]) == 1
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if line.startswith("error:"))
    assert f"stage generate of trial {trial.name} is stale" in first and "videos.json is missing" in first
    assert "spliter-bench run" in first
    assert not (trial / "generate" / "videos.json").exists()


def test_a_torn_last_checkpoint_in_a_partial_folder_restarts_the_trial(finished, copy, caplog) -> None:
    study, root = finished
    train = spliter_trial(copy) / "train"
    partial = train.with_name("train.partial")
    os.replace(train, partial)  # a training run killed before its DONE, with a torn last.pt
    for marker in ("DONE", "MANIFEST.json", "meta.json"):
        (partial / marker).unlink()
    last = partial / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(study), "--out", str(copy), "--no-report"]) == 0
    assert "last.pt is unreadable" in caplog.text and "restarting" in caplog.text
    assert not partial.exists()
    pd.testing.assert_frame_equal(study_scores(copy), study_scores(root))


def test_a_finished_run_records_its_inputs_chain(finished) -> None:
    _, root = finished
    trial = spliter_trial(root)
    encode = read_manifest(next(p for p in (root / "micro" / "encode").iterdir() if p.is_dir()))
    assert set(encode["inputs"]) == {"data"}
    score = read_manifest(trial / "score")
    assert set(score["inputs"]) == {"encode", "train", "generate"}
    assert score["inputs"]["train"] == read_manifest(trial / "train")["identity"]
    assert json.loads((trial / "score" / "MANIFEST.json").read_text())["files"]["scores.jsonl"]["size"] > 0
