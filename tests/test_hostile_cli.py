"""Hostile inputs through the real CLI: bad files are data, bad values fail at load, names stay inside --out,
changed data re-encodes what changed, concurrent runs both succeed, messages are printed verbatim."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import changed, micro_study, write_yaml
from test_hostile_readers import FPS, MARKUP, _catalogue, frames
from test_video import rotated_mp4

from ablations.cli import main
from spliter.data.store import EmbeddingStore
from spliter.data.video import write_mp4

BAD_FILES = {"zero_byte", "truncated", "garbage", MARKUP, "audio_only", "one_frame", "short_0.2s", "png_renamed",
             "mid_corrupt", "missing", "twin.webm", "unlisted.mp4"}  # decode failures + what the reader reports
EXTRA_GOOD = 9  # beside the catalogue's 9 odd-but-valid files: 18 good in all

STUDY = micro_study(
    study="hostile", data={"source": "folder", "path": "SET", "frames": 8, "fps": FPS, "val_fraction": 0.25},
    train__epochs=1, train__patience=1, regime__pairs_per_video=2, generate__frames=8, generate__samples_per_prompt=2,
    metrics={"select": ["embedding", "pixel_motion", "fvd"], "fvd": {"weights": "random", "frames": 8, "resolution": 32}},
)


def study_file(folder: Path, data_path: Path, **changes) -> Path:
    return write_yaml(folder / "study.yaml", changed(STUDY, data__path=str(data_path), **changes))


def captions(root: Path, names) -> None:
    rows = [f"{name},a caption for {name}" for name in names]
    (root / "captions.csv").write_text("video_id,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")


def tree(root: Path, *besides: Path) -> set[str]:
    """Every path under root, except those inside `besides`."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if not any(p.is_relative_to(b) for b in besides)}


def error_line(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("error:"))


@pytest.fixture(scope="module")
def hostile_data(tmp_path_factory) -> Path:
    """18 good and 12 bad files (each bad kind of issue 14), listed in captions.csv except the unlisted one."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    (root / "videos").mkdir(parents=True)
    verdicts = _catalogue(root / "videos")
    for i in range(EXTRA_GOOD):
        write_mp4(frames(seed=10 + i), root / "videos" / f"extra_{i}.mp4", FPS)
    captions(root, [*verdicts, *(f"extra_{i}" for i in range(EXTRA_GOOD)), "missing"])
    return root


@pytest.fixture(scope="module")
def hostile_run(hostile_data: Path, tmp_path_factory) -> tuple[Path, Path, set[str]]:
    work = tmp_path_factory.mktemp("hostile-run")
    study = study_file(work, hostile_data)
    before, data_before = tree(work), tree(hostile_data)
    assert main(["run", str(study), "--out", str(work / "runs")]) == 0
    outside = (tree(work, work / "runs") - before) | (tree(hostile_data) ^ data_before)  # the data are only read
    return study, work / "runs" / "hostile", outside


def test_a_study_over_18_good_and_12_bad_files_runs_to_its_report(hostile_run) -> None:
    _, root, _ = hostile_run
    encode = next(p for p in (root / "encode").iterdir() if p.is_dir())
    skipped = json.loads((encode / "skipped.json").read_text())
    assert {item["video"] for item in skipped} == BAD_FILES
    assert all(item["reason"] for item in skipped)
    accepted = json.loads((encode / "accepted.json").read_text())
    assert len(accepted) == 18 and len(EmbeddingStore.open(encode / "store")) == 18
    assert all(Path(item["path"]).exists() and len(item["frame_times"]) == 8 for item in accepted)
    summary = json.loads((encode / "summary.json").read_text())
    assert (summary["accepted"], summary["skipped"]) == (18, 12)
    assert summary["rotated"] == [{"video_id": "rotated", "degrees": 270}]
    study = json.loads((root / "results" / "study.json").read_text())
    assert {item["video"] for item in study["skipped"]} == BAD_FILES
    assert (root / "results" / "summary.json").exists()
    assert (root / "report" / "index.html").exists()


def test_fvd_s_reference_is_the_accepted_held_out_videos(hostile_run) -> None:
    """No bad file reaches FVD: its reference is the val split of what encode accepted, every clip of it read."""
    import pandas as pd

    _, root, _ = hostile_run
    encode = next(p for p in (root / "encode").iterdir() if p.is_dir())
    held_out = [item for item in json.loads((encode / "accepted.json").read_text()) if item["split"] == "val"]
    fvd = pd.read_parquet(root / "results" / "scores.parquet").query("metric.str.startswith('fvd[')", engine="python")
    assert set(fvd["variant"]) == {"static", "base", "text_blind"} and len(held_out) >= 2
    for extra in map(json.loads, fvd["extra"]):
        assert extra["reference_set"] == "val split"
        assert extra["n_reference"] == extra["n_reference_listed"] == len(held_out)
        assert extra["reference_skipped_videos"] == []


def test_nothing_is_written_outside_out(hostile_run) -> None:
    _, _, outside = hostile_run
    assert outside == set()


def test_compare_verb_writes_the_comparison(hostile_run, tmp_path: Path, capsys) -> None:
    _, root, _ = hostile_run
    twin = tmp_path / "hostile"
    shutil.copytree(root / "results", twin / "results")
    assert main(["compare", str(root), str(twin), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.md").exists() and (tmp_path / "cmp" / "comparison.html").exists()
    assert main(["compare", str(root), str(tmp_path / "nowhere")]) == 1


def test_a_study_name_that_is_a_path_is_refused_and_nothing_is_written(hostile_data: Path, tmp_path: Path,
                                                                       capsys) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    study = study_file(work, hostile_data, study="../../escaped")
    before = tree(tmp_path)
    assert main(["run", str(study), "--out", str(work / "runs")]) == 1
    line = error_line(capsys.readouterr().err)
    assert "study: '../../escaped' is not a plain name" in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize(("change", "value", "key"), [
    ("data__fps", 0, "data.fps"),
    ("data__fps", -8, "data.fps"),
    ("data__frames", 1, "data.frames"),
    ("backend__prior_steps", 1, "backend.prior_steps"),
    ("generate__fps", 0, "generate.fps"),
    ("generate__size", 63, "generate.size"),
    ("data__val_fraction", 0, "data.val_fraction"),
    ("metrics", {"select": ["embedding", "fvd"], "fvd": {"frames": 4}}, "metrics.fvd.frames"),
])
def test_a_bad_value_fails_at_load_naming_its_key(hostile_data: Path, tmp_path: Path, capsys, change, value,
                                                  key) -> None:
    study = study_file(tmp_path, hostile_data, **{change: value})
    assert main(["run", str(study), "--out", str(tmp_path / "runs")]) == 1
    line = error_line(capsys.readouterr().err)
    assert f"{key}: " in line and "allowed" in line, line
    assert not (tmp_path / "runs").exists()


def test_a_file_name_with_markup_characters_is_printed_verbatim(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "videos" / f"{MARKUP}.mp4").write_bytes(b"not a video" * 300)
    captions(data, [MARKUP])
    study = study_file(tmp_path, data)
    assert main(["run", str(study), "--out", str(tmp_path / "runs"), "--no-report"]) == 1
    line = error_line(capsys.readouterr().err)
    assert str(data / "videos" / f"{MARKUP}.mp4") in line, line  # one line: no markup eaten, no wrapping
    assert not list((tmp_path / "runs").rglob("DONE"))


def test_repairing_and_adding_a_source_file_encodes_exactly_those(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    for i in range(4):
        write_mp4(frames(seed=i), data / "videos" / f"v{i}.mp4", FPS)
    (data / "videos" / "broken.mp4").write_bytes(b"")
    captions(data, ["v0", "v1", "v2", "v3", "broken"])
    study = study_file(tmp_path, data)
    out = tmp_path / "runs"
    assert main(["encode", str(study), "--out", str(out)]) == 0
    encode = next(p for p in (out / "hostile" / "encode").iterdir() if p.is_dir())
    assert len(EmbeddingStore.open(encode / "store")) == 4

    write_mp4(frames(seed=7), data / "videos" / "broken.mp4", FPS)  # repaired
    write_mp4(frames(seed=8), data / "videos" / "added.mp4", FPS)  # added with its caption
    captions(data, ["v0", "v1", "v2", "v3", "broken", "added"])
    assert main(["encode", str(study), "--out", str(out)]) == 0
    summary = json.loads((encode / "summary.json").read_text())
    assert (summary["accepted"], summary["reused"], summary["skipped"]) == (6, 4, 0)
    assert EmbeddingStore.open(encode / "store").ids() == ["v0", "v1", "v2", "v3", "broken", "added"]
    done = (encode / "DONE").stat().st_mtime_ns
    assert main(["encode", str(study), "--out", str(out)]) == 0
    assert (encode / "DONE").stat().st_mtime_ns == done, "unchanged data: nothing is encoded again"


def test_a_clip_with_rotation_metadata_is_encoded_upright_and_named(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    for i in range(3):
        write_mp4(frames(seed=i), data / "videos" / f"v{i}.mp4", FPS)
    rotated_mp4(data / "videos" / "phone.mp4", 90, frames(height=32, width=64))  # stored landscape, shown portrait
    captions(data, ["v0", "v1", "v2", "phone"])
    out = tmp_path / "runs"
    with caplog.at_level("WARNING"):
        assert main(["encode", str(study_file(tmp_path, data)), "--out", str(out)]) == 0
    encode = next(p for p in (out / "hostile" / "encode").iterdir() if p.is_dir())
    summary = json.loads((encode / "summary.json").read_text())
    assert summary["rotated"] == [{"video_id": "phone", "degrees": 90}]
    warnings = [r.getMessage() for r in caplog.records if "rotation metadata" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("encode: phone has rotation metadata")
    assert len(EmbeddingStore.open(encode / "store")) == 4


WAITER = """
import os, sys, time
from pathlib import Path
from ablations.cli import main
barrier, me = Path(sys.argv[1]), sys.argv[2]
(barrier / f"ready-{me}").touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def test_two_concurrent_runs_of_one_study_both_exit_0(hostile_run, tmp_path: Path) -> None:
    study, root, _ = hostile_run
    out = tmp_path / "runs"
    shutil.copytree(root, out / "hostile", ignore=shutil.ignore_patterns("results", "report"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for attempt in range(3):  # every stage is done: both runs meet in collect at the same moment
        shutil.rmtree(out / "hostile" / "results", ignore_errors=True)
        barrier = tmp_path / f"barrier-{attempt}"
        barrier.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", WAITER, str(barrier), str(i), "run", str(study), "--out",
                                   str(out), "--no-report"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(2)]
        deadline = time.time() + 300
        while len(list(barrier.glob("ready-*"))) < 2 and time.time() < deadline:
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert (out / "hostile" / "results" / "DONE").exists()


def test_a_caption_the_text_encoder_truncates_is_named_with_its_token_count() -> None:
    pytest.importorskip("open_clip")
    from types import SimpleNamespace

    from ablations.stages.encode import truncated_captions
    from spliter.backends.tokenizer import clip_tokenizer
    from spliter.data.datasets import CaptionedVideo

    backend = SimpleNamespace(prior_pipeline=SimpleNamespace(tokenizer=clip_tokenizer(77)), text_tokens=77)
    videos = [CaptionedVideo("short", "a cat jumps", Path("short.mp4"), "t"),
              CaptionedVideo("long", " ".join(["dancing"] * 80), Path("long.mp4"), "t")]
    assert truncated_captions(backend, videos) == [{"video_id": "long", "tokens": 82, "kept": 77}]
    assert truncated_captions(SimpleNamespace(text_tokens=8), videos) == []  # no tokenizer: nothing to say
