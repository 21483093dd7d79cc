"""The frame baselines (text2video_zero, animatediff) in a micro study: same prompts and seeds as the variants,
scored by the frame families only, in the report's tables next to the Spliter variants; their folders checked
before any work. Both render from one SD-1.5 folder, as in the paper study."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures import micro_study

from ablations.cli import main
from ablations.doctor import frame_baseline_checks
from ablations.study import StudyError, load_study
from spliter.baselines import FRAME_BASELINES, FrameBaselineSpec
from spliter.baselines.animatediff import TINY_MAX_FRAMES, save_random_folders

T2VZ, AD = "text2video_zero", "animatediff"
FRAME = (T2VZ, AD)


def micro(weights: Path | str, **generate) -> dict:
    """The shared micro study with Text2Video-Zero and AnimateDiff beside `base` and `static` (2 seeds, 3 frames
    at 16 px); `weights` holds sd15/ and motion_adapter/ (animatediff.save_random_folders)."""
    sd15, adapter = str(Path(weights) / "sd15"), str(Path(weights) / "motion_adapter")
    spec = micro_study(
        study="t2vz", seeds=[0, 1], data__frames=6, train__epochs=1, train__patience=1, regime__pairs_per_video=2,
        generate__frames=3, generate__size=16, metrics__select=["embedding", "pixel_motion", "clip"],
        metrics__clip_encoders=["backend"], baselines=["static", T2VZ, AD], controls=[],
        **{T2VZ: {"folder": sd15, "steps": 2, "guidance": 2.0, "t0": 0, "t1": 1},
           AD: {"folder": sd15, "motion_adapter": adapter, "steps": 2, "guidance": 2.0}},
    )  # fmt: skip
    spec["generate"].update(generate)
    return spec


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    save_random_folders(root, seed=0)
    return root


@pytest.fixture(scope="module")
def finished(tmp_path_factory, weights: Path) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    study = write(tmp / "t2vz.yaml", micro(weights))
    assert main(["run", str(study), "--out", str(tmp / "runs")]) == 0
    return tmp / "runs" / "t2vz"


def index_of(root: Path, variant: str, seed: int | None = None) -> list[dict]:
    (path,) = [p for p in root.glob(f"trials/{variant}-s*/generate/videos.json")
               if seed is None or f"-s{seed}-" in str(p)]
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", FRAME)
def test_it_runs_once_with_the_variants_prompts_seeds_frames_and_size(finished: Path, name: str) -> None:
    assert len(list(finished.glob(f"trials/{name}-s*"))) == 1  # frozen weights, seeded per prompt: not per training seed
    ours, theirs = index_of(finished, name), index_of(finished, "base", seed=0)
    key = ("prompt_id", "sample_idx", "gen_seed", "frames", "size", "fps")
    assert [tuple(e[k] for k in key) for e in ours] == [tuple(e[k] for k in key) for e in theirs]
    assert all(set(theirs[0]) <= set(entry) for entry in ours)  # the same index fields (npz, gif, mp4, ...)


@pytest.mark.parametrize("name", FRAME)
def test_frame_families_score_it_and_embedding_families_skip_it_explicitly(finished: Path, name: str) -> None:
    scores = pd.read_parquet(finished / "results" / "scores.parquet")
    ours = scores[scores["variant"] == name]
    assert ours["metric"].str.startswith("pixel_motion").any() and ours["metric"].str.startswith("clip_").any()
    assert not ours["metric"].str.startswith("embed_").any() and ours["value"].notna().all()
    shared = set(ours["metric"]) & set(scores.loc[scores["variant"] == "base", "metric"])
    assert shared == set(ours["metric"])  # every row of it sits under a metric the variants have too
    (meta,) = finished.glob(f"trials/{name}-s*/score/meta.json")
    assert "no embeddings" in json.loads(meta.read_text())["skipped_families"]["embedding"]


def test_the_two_render_different_videos_from_the_same_seeds(finished: Path) -> None:
    first, second = (sorted(finished.glob(f"trials/{name}-s*/generate/videos/*.npz")) for name in FRAME)
    assert [p.name for p in first] == [p.name for p in second] and first
    assert first[0].read_bytes() != second[0].read_bytes()


def test_the_report_shows_them_next_to_the_variants_and_says_why_embedding_cells_are_empty(finished: Path) -> None:
    study = json.loads((finished / "results" / "study.json").read_text())
    assert study["frame_baselines"] == [T2VZ, AD]
    overview = (finished / "report" / "tables" / "overview.md").read_text()
    for name in FRAME:
        row = next(line for line in overview.splitlines() if line.startswith(f"| {name} "))
        assert "—" in row and any(ch.isdigit() for ch in row)  # empty embedding cells, numbers for its video metrics
        assert f"| {name} |" in (finished / "report" / "tables" / "all_metrics.md").read_text()
    assert any(line.startswith("| base ") for line in overview.splitlines())
    assert "frames directly from the caption, with no embeddings" in (finished / "report" / "index.html").read_text()


def test_store_prompts_give_them_paired_rows_under_the_variants_prior_start_names(tmp_path: Path, weights: Path) -> None:
    spec = micro(weights, prompts="store:test", start=["true", "prior"], modes=["step", "chain"])
    spec["data"]["test_fraction"] = 0.25
    spec["metrics"]["select"] = ["pixel_motion", "paired"]
    spec["seeds"] = [0]
    assert main(["run", str(write(tmp_path / "s.yaml", spec)), "--out", str(tmp_path / "runs"), "--no-report"]) == 0
    root = tmp_path / "runs" / "t2vz"
    scores = pd.read_parquet(root / "results" / "scores.parquet")
    for name in FRAME:
        entries = index_of(root, name)
        assert {(e["start"], e["mode"]) for e in entries} == {("prior", "step"), ("prior", "chain")}
        assert all("truth_npz" in e for e in entries)
        files = {e["npz"] for e in entries}
        assert len(entries) == 2 * len(files)  # one rendered file per video, indexed under each mode
        assert sum("gif" in e for e in entries) == len(files)  # shown once
        ours = scores[scores["variant"] == name]
        assert (ours["metric"] == "pixel_motion[mad255]").sum() == len(files)  # each file scored once
        paired = set(ours.loc[ours["metric"].str.contains("start="), "metric"])
        assert {m for m in paired if "step,start=prior,split=test" in m} and {m for m in paired if "chain,start=prior" in m}
        assert all("start=prior,split=test" in m for m in paired)
        assert paired <= set(scores.loc[scores["variant"] == "base", "metric"])


def test_a_missing_folder_is_refused_before_any_work_naming_it_and_plan_still_works(tmp_path: Path, capsys) -> None:
    study = write(tmp_path / "m.yaml", micro(tmp_path / "none"))
    assert main(["plan", str(study), "--out", str(tmp_path / "runs")]) == 0
    assert main(["run", str(study), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert str(tmp_path / "none" / "sd15") in err and "hf download" in err
    assert not (tmp_path / "runs").exists()
    assert main(["doctor", str(study), "--out", str(tmp_path / "runs")]) != 0
    out = capsys.readouterr().out
    assert T2VZ in out and AD in out  # its table wraps long paths: the lines themselves are checked below
    failed = [c for c in frame_baseline_checks(load_study(study)) if not c.ok]
    assert [c.name for c in failed] == [T2VZ, AD, AD]  # the SD-1.5 folder for each, then the motion adapter
    assert all(str(tmp_path / "none" / "sd15") in c.detail for c in failed[:2])
    assert str(tmp_path / "none" / "motion_adapter") in failed[2].detail and "hf download" in failed[2].detail


def test_doctor_names_the_folders_each_loads(tmp_path: Path, weights: Path) -> None:
    checks = {c.name: c for c in frame_baseline_checks(load_study(write(tmp_path / "d.yaml", micro(weights))))}
    assert set(checks) == set(FRAME) and all(c.ok for c in checks.values())
    assert str(weights / "sd15") in checks[T2VZ].detail
    assert str(weights / "sd15") in checks[AD].detail and str(weights / "motion_adapter") in checks[AD].detail


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop(T2VZ), "text2video_zero: the baseline needs its section"),
    (lambda s: s.update(baselines=["static"]), "does not list text2video_zero"),
    (lambda s: s[T2VZ].update(guidance=1.0), "text2video_zero: guidance: must be > 1"),
    (lambda s: s[T2VZ].update(stepz=3), "text2video_zero.stepz: unknown key"),
    (lambda s: s["generate"].update(size=20), "multiple of 8"),
    (lambda s: s["metrics"].update(select=["embedding"]), "scores no videos"),
    (lambda s: s["generate"].update(frames=1), "generate.frames: text2video_zero warps the first frame"),
    (lambda s: s.pop(AD), r"animatediff: the baseline needs its section, at least `animatediff: \{folder: "),
    (lambda s: s.update(baselines=["static", T2VZ]), "does not list animatediff"),
    (lambda s: s[AD].update(guidance=0.5), "animatediff: guidance: must be >= 1"),
    (lambda s: s[AD].update(motion_adaptor="x"), "animatediff.motion_adaptor: unknown key"),
    (lambda s: s.update(animatedif=s.pop(AD)), r"animatedif: unknown key \(allowed: animatediff, backend, "),
    # no adapter config to read: the published adapters' 32 positions
    (lambda s: s["generate"].update(frames=33), "generate.frames: 33 is more than the 32 frames"),
])
def test_its_settings_are_validated_when_the_study_loads(tmp_path: Path, change, message: str) -> None:
    spec = micro("models")
    change(spec)
    with pytest.raises(StudyError, match=message):
        load_study(write(tmp_path / "v.yaml", spec))


def test_the_frame_limit_is_read_from_the_motion_adapter_when_the_study_loads(tmp_path: Path, weights: Path) -> None:
    assert load_study(write(tmp_path / "ok.yaml", micro(weights, frames=TINY_MAX_FRAMES)))
    with pytest.raises(StudyError, match=f"generate.frames: {TINY_MAX_FRAMES + 1} is more than the {TINY_MAX_FRAMES}"):
        load_study(write(tmp_path / "v.yaml", micro(weights, frames=TINY_MAX_FRAMES + 1)))


@pytest.mark.parametrize("name", FRAME)
def test_its_settings_change_only_its_own_trial(tmp_path: Path, name: str) -> None:
    before = {t.trial_id for t in load_study(write(tmp_path / "a.yaml", micro("x"))).trials}
    changed = micro("x")
    changed[name]["steps"] = 3
    after = {t.trial_id for t in load_study(write(tmp_path / "b.yaml", changed)).trials}
    assert {i.split("-s")[0] for i in before ^ after} == {name}


@pytest.fixture
def toy_registered():
    """docs/extending.md's frame-baseline recipe: one module (tests/extending/toy_frame_baseline.py) + this line."""
    toy = "extending.toy_frame_baseline"
    FRAME_BASELINES.register("toy_frames", FrameBaselineSpec(
        title="Toy frames", settings=f"{toy}:ToyFramesSettings", model=f"{toy}:ToyFrames",
        folder_problems=f"{toy}:settings_problems", generate_problems=f"{toy}:generate_problems",
        folders=(("folder", "toy folder"),)))
    yield
    FRAME_BASELINES.unregister("toy_frames")


def test_a_frame_baseline_is_one_module_and_one_registration(tmp_path: Path, toy_registered) -> None:
    spec = micro_study(study="toy", baselines=["static", "toy_frames"], controls=[], generate__frames=3,
                       generate__size=16, toy_frames={"folder": str(tmp_path)})
    with pytest.raises(StudyError, match="generate.frames: the toy renders at most 4"):
        load_study(write(tmp_path / "long.yaml", {**spec, "generate": {**spec["generate"], "frames": 5}}))
    (check,) = frame_baseline_checks(load_study(write(tmp_path / "toy.yaml", spec)))
    assert check.ok and check.detail == f"Toy frames: toy folder {tmp_path}"
    assert main(["run", str(tmp_path / "toy.yaml"), "--out", str(tmp_path / "runs"), "--no-report"]) == 0
    scores = pd.read_parquet(tmp_path / "runs" / "toy" / "results" / "scores.parquet")
    ours = scores[scores["variant"] == "toy_frames"]
    assert ours["metric"].str.startswith("pixel_motion").any() and not ours["metric"].str.startswith("embed_").any()
