"""The harness end to end through the CLI, on a micro study (2 variants x 2 seeds + a baseline, tiny everything)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fixtures import changed, finished_run, micro_study, stage_done_times, study_scores, write_yaml

from ablations.cli import main

MICRO = micro_study(
    seeds=[0, 1], data__n_videos=12,
    metrics={"select": ["embedding", "pixel_motion", "clip"], "clip_encoders": ["backend"]},
    variants={"base": {}, "back": {"regime.back": True}},
    controls=[],  # the harness mechanics only (tests/test_fair_study.py runs the text_blind control)
)  # fmt: skip


def cli(*args: str) -> int:
    return main(list(args))


def cli_process(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "ablations.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """The micro study run once, uninterrupted, with the local launcher."""
    return finished_run(tmp_path_factory.mktemp("micro"), MICRO, "--no-report")


def test_run_writes_every_results_table(finished):
    _, root = finished
    results = root / "micro" / "results"
    for name in ("scores", "runs", "curves", "videos"):
        assert (results / f"{name}.parquet").exists(), name
    frame = study_scores(root)
    assert set(frame.variant) == {"base", "back", "static"}
    assert frame["value"].notna().all()
    assert {"video", "set"} >= set(frame.level)
    videos = pd.read_parquet(results / "videos.parquet")
    assert len(videos) == (2 * 2 + 1) * 2  # (variants x seeds + static, run once) x prompts
    assert all((root / "micro" / gif).exists() for gif in videos.gif)
    study = json.loads((results / "study.json").read_text())
    assert study["prompt_set"]["name"] == "motion-v1" and len(study["prompt_set"]["sha256"]) == 64
    runs = pd.read_parquet(results / "runs.parquet")
    assert set(runs.stage) == {"encode", "train", "generate", "score"}
    assert runs.git_sha.notna().all()


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_second_run_does_no_work(finished):
    study, root = finished
    before, results = stage_done_times(root), mtimes(root / "micro" / "results")
    assert cli("run", str(study), "--out", str(root), "--no-report") == 0
    assert stage_done_times(root) == before
    assert mtimes(root / "micro" / "results") == results, "a finished study's results are not rewritten"
    # (How long a no-op run takes is measured in tests/benchmarks/test_bench_harness.py.)


def test_a_rerun_keeps_an_up_to_date_report_and_a_new_result_rebuilds_it(finished, tmp_path, capsys):
    study, root = finished
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    assert cli("run", str(study), "--out", str(copy)) == 0
    report = copy / "micro" / "report"
    built = mtimes(report)
    assert cli("run", str(study), "--out", str(copy)) == 0
    assert "(up to date)" in " ".join(capsys.readouterr().err.split())
    assert mtimes(report) == built
    # A result that changes (here: one trial's scores redone) makes the report stale again.
    assert cli("score", str(study), "--out", str(copy), "--only", "variant=base,seed=0", "--force") == 0
    assert cli("run", str(study), "--out", str(copy)) == 0
    assert mtimes(report)["index.html"] != built["index.html"]


def test_plan_reports_done_after_a_run(finished, capsys):
    study, root = finished
    assert cli("plan", str(study), "--out", str(root), "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["score"] for row in rows} == {"done"}
    assert {row["train"] for row in rows if row["variant"] == "static"} == {"-"}


def plan_rows(study: Path, root: Path, capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert cli("plan", str(study), "--out", str(root), "--json") == 0
    return {row["trial_id"]: row for row in json.loads(capsys.readouterr().out)}


def test_plan_shows_each_stage_a_run_would_redo_and_why(finished, tmp_path, capsys):
    study, root = finished
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    trials = {path.name.rsplit("-", 1)[0]: path for path in (copy / "micro" / "trials").iterdir()}
    next((trials["base-s0"] / "generate" / "videos").glob("*.npz")).unlink()  # a damaged output
    shutil.rmtree(trials["back-s1"] / "score")  # a removed stage
    (trials["base-s1"] / "train" / "DONE").write_text("another-configuration\n")  # a changed stage hash
    rows = {name.rsplit("-", 1)[0]: row for name, row in plan_rows(study, copy, capsys).items()}
    assert rows["base-s0"]["generate"] == "stale" and rows["base-s0"]["why"]["generate"].startswith("output damaged")
    assert rows["back-s1"]["score"] == "missing" and rows["back-s1"]["generate"] == "done"
    assert rows["base-s1"]["train"] == "stale" and rows["base-s1"]["why"] == {"train": "its settings changed"}
    assert rows["back-s0"] == {**rows["back-s0"], "encode": "done", "train": "done", "generate": "done",
                               "score": "done", "why": {}}
    assert cli("plan", str(study), "--out", str(copy)) == 0
    assert "a run would redo 3 stage(s)" in " ".join(capsys.readouterr().err.split())
    changed = json.loads(json.dumps(MICRO))
    changed["variants"]["back"]["train.lr"] = 0.002  # a setting: the back trials are new ones, nothing of them is done
    rows = plan_rows(write_yaml(tmp_path / "micro.yaml", changed), root, capsys)
    back = [row for row in rows.values() if row["variant"] == "back"]
    assert back and all((r["encode"], r["train"], r["generate"], r["score"]) == ("done", "missing", "missing", "missing")
                        for r in back)
    assert all(r["score"] == "done" for r in rows.values() if r["variant"] != "back")


def test_changing_one_variant_reruns_only_that_variant(finished, tmp_path):
    study, root = finished
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    before = stage_done_times(copy)
    lr = changed(MICRO, variants__back={"regime.back": True, "train.lr": 0.002})
    assert cli("run", str(write_yaml(tmp_path / "micro.yaml", lr)), "--out", str(copy), "--no-report") == 0
    after = stage_done_times(copy)
    new = set(after) - set(before)
    assert new and all("/back-" in path for path in new)
    assert {k: v for k, v in after.items() if k in before} == before


def test_sigkill_during_training_then_resume_gives_identical_scores(tmp_path):
    # Long enough training (a checkpoint after every optimiser step) that the kill lands inside it.
    long = changed(MICRO, train__epochs=40, train__patience=None, train__checkpoint_every=1, variants={"base": {}})
    study = write_yaml(tmp_path / "micro.yaml", long)
    assert cli("run", str(study), "--out", str(tmp_path / "uninterrupted"), "--no-report") == 0

    out = tmp_path / "killed"
    proc = cli_process("run", str(study), "--out", str(out), "--no-report")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if list(out.glob("micro/trials/*/train.partial/checkpoints/last.pt")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = list(out.glob("micro/trials/*/train.partial/checkpoints/last.pt"))
    assert partial, "the kill did not land during training"
    killed_trial = partial[0].parents[2]
    assert not (killed_trial / "train" / "DONE").exists()

    assert cli("run", str(study), "--out", str(out), "--no-report") == 0
    assert not list(out.glob("micro/trials/*/*.partial")), "a resumed run leaves no partial folders behind"
    pd.testing.assert_frame_equal(study_scores(out), study_scores(tmp_path / "uninterrupted"))


def test_two_simultaneous_runs_do_not_corrupt_anything(finished, tmp_path):
    study, root = finished
    out = tmp_path / "runs"
    procs = [cli_process("run", str(study), "--out", str(out), "--no-report") for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    pd.testing.assert_frame_equal(study_scores(out), study_scores(root))


def test_ray_launcher_gives_the_same_scores_as_local(finished, tmp_path):
    pytest.importorskip("ray")
    study, root = finished
    out = tmp_path / "runs"
    assert cli("run", str(study), "--out", str(out), "--launcher", "ray", "--workers", "2", "--no-report") == 0
    pd.testing.assert_frame_equal(study_scores(out), study_scores(root))


def test_report_verb_rebuilds_only_the_report(finished):
    study, root = finished
    before = stage_done_times(root)
    results_before = {p.name: p.stat().st_mtime_ns for p in (root / "micro" / "results").iterdir()}
    assert cli("report", str(study), "--out", str(root)) == 0
    assert (root / "micro" / "report" / "index.html").exists()
    assert stage_done_times(root) == before
    assert {p.name: p.stat().st_mtime_ns for p in (root / "micro" / "results").iterdir()} == results_before


def test_bad_study_fails_before_any_work_naming_the_key(tmp_path, capsys):
    bad = changed(MICRO, train__epocs=3)
    assert cli("run", str(write_yaml(tmp_path / "bad.yaml", bad)), "--out", str(tmp_path / "runs")) == 1
    assert "train.epocs" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "runs").exists()


def test_missing_weights_folder_fails_before_any_work_naming_it(tmp_path, capsys):
    real = changed(MICRO, backend={"name": "kandinsky22",
                                   "options": {"prior": str(tmp_path / "no-prior"), "decoder": str(tmp_path / "no-dec")}},
                   generate__size=64)  # the real decoder's multiple: every value is valid, only the weights are missing
    assert cli("run", str(write_yaml(tmp_path / "real.yaml", real)), "--out", str(tmp_path / "runs")) == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert "no-prior" in err
    assert not (tmp_path / "runs").exists()


def test_every_verb_has_help(capsys):
    for verb in ("doctor", "plan", "encode", "train", "generate", "score", "collect", "report", "run"):
        assert cli(verb, "--help") == 0
        assert "Usage" in capsys.readouterr().out


def test_a_failing_stage_exits_non_zero_naming_the_trial_and_stage_and_marks_nothing_done(tmp_path, capsys):
    videos = tmp_path / "data" / "videos"
    videos.mkdir(parents=True)
    (videos / "v1.mp4").write_bytes(b"not a video" * 100)
    (tmp_path / "data" / "captions.csv").write_text("video_id,caption\nv1,a red circle\n")
    broken = changed(MICRO, data={"source": "folder", "path": str(tmp_path / "data"), "frames": 4, "fps": 4.0})
    out = tmp_path / "runs"
    assert cli("run", str(write_yaml(tmp_path / "broken.yaml", broken)), "--out", str(out), "--no-report") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"error: trial \S+-s\d-[0-9a-f]{8}, stage encode failed: .*no usable videos", err), err
    assert "v1.mp4" in err
    assert not list(out.rglob("DONE"))
