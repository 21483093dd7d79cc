"""The text2video_zero baseline in a micro study: same prompts and seeds as the variants, scored by the frame
families only, in the report's tables next to the Spliter variants; its folder checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures import micro_study

from ablations.cli import main
from ablations.study import StudyError, load_study
from spliter.baselines.text2video_zero import save_random_folder

T2VZ = "text2video_zero"


def micro(folder: Path | str, **generate) -> dict:
    """The shared micro study with Text2Video-Zero beside `base` and `static` (2 seeds, 3 frames at 16 px)."""
    spec = micro_study(
        study="t2vz", seeds=[0, 1], data__frames=6, train__epochs=1, train__patience=1, regime__pairs_per_video=2,
        generate__frames=3, generate__size=16, metrics__select=["embedding", "pixel_motion", "clip"],
        metrics__clip_encoders=["backend"], baselines=["static", T2VZ], controls=[],
        **{T2VZ: {"folder": str(folder), "steps": 2, "guidance": 2.0, "t0": 0, "t1": 1}},
    )  # fmt: skip
    spec["generate"].update(generate)
    return spec


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return save_random_folder(tmp_path_factory.mktemp("sd15") / "sd15", seed=0)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, folder: Path) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    study = write(tmp / "t2vz.yaml", micro(folder))
    assert main(["run", str(study), "--out", str(tmp / "runs")]) == 0
    return tmp / "runs" / "t2vz"


def index_of(root: Path, variant: str, seed: int | None = None) -> list[dict]:
    (path,) = [p for p in root.glob(f"trials/{variant}-s*/generate/videos.json")
               if seed is None or f"-s{seed}-" in str(p)]
    return json.loads(path.read_text())


def test_it_runs_once_with_the_variants_prompts_seeds_frames_and_size(finished: Path) -> None:
    assert len(list(finished.glob(f"trials/{T2VZ}-s*"))) == 1  # frozen weights, seeded per prompt: not per training seed
    ours, theirs = index_of(finished, T2VZ), index_of(finished, "base", seed=0)
    key = ("prompt_id", "sample_idx", "gen_seed", "frames", "size", "fps")
    assert [tuple(e[k] for k in key) for e in ours] == [tuple(e[k] for k in key) for e in theirs]
    assert all(set(theirs[0]) <= set(entry) for entry in ours)  # the same index fields (npz, gif, mp4, ...)


def test_frame_families_score_it_and_embedding_families_skip_it_explicitly(finished: Path) -> None:
    scores = pd.read_parquet(finished / "results" / "scores.parquet")
    ours = scores[scores["variant"] == T2VZ]
    assert ours["metric"].str.startswith("pixel_motion").any() and ours["metric"].str.startswith("clip_").any()
    assert not ours["metric"].str.startswith("embed_").any() and ours["value"].notna().all()
    shared = set(ours["metric"]) & set(scores.loc[scores["variant"] == "base", "metric"])
    assert shared == set(ours["metric"])  # every row of it sits under a metric the variants have too
    (meta,) = finished.glob(f"trials/{T2VZ}-s*/score/meta.json")
    assert "no embeddings" in json.loads(meta.read_text())["skipped_families"]["embedding"]


def test_the_report_shows_it_next_to_the_variants_and_says_why_embedding_cells_are_empty(finished: Path) -> None:
    study = json.loads((finished / "results" / "study.json").read_text())
    assert study["frame_baselines"] == [T2VZ]
    overview = (finished / "report" / "tables" / "overview.md").read_text()
    row = next(line for line in overview.splitlines() if line.startswith(f"| {T2VZ} "))
    assert "—" in row and any(ch.isdigit() for ch in row)  # empty embedding cells, numbers for its video metrics
    assert f"| {T2VZ} |" in (finished / "report" / "tables" / "all_metrics.md").read_text()
    assert "frames directly from the caption, with no embeddings" in (finished / "report" / "index.html").read_text()


def test_store_prompts_give_it_paired_rows_under_the_variants_prior_start_names(tmp_path: Path, folder: Path) -> None:
    spec = micro(folder, prompts="store:test", start=["true", "prior"], modes=["step", "chain"])
    spec["data"]["test_fraction"] = 0.25
    spec["metrics"]["select"] = ["pixel_motion", "paired"]
    spec["seeds"] = [0]
    assert main(["run", str(write(tmp_path / "s.yaml", spec)), "--out", str(tmp_path / "runs"), "--no-report"]) == 0
    root = tmp_path / "runs" / "t2vz"
    entries = index_of(root, T2VZ)
    assert {(e["start"], e["mode"]) for e in entries} == {("prior", "step"), ("prior", "chain")}
    assert all("truth_npz" in e for e in entries)
    files = {e["npz"] for e in entries}
    assert len(entries) == 2 * len(files)  # one rendered file per video, indexed under each mode
    assert sum("gif" in e for e in entries) == len(files)  # shown once
    scores = pd.read_parquet(root / "results" / "scores.parquet")
    ours = scores[scores["variant"] == T2VZ]
    assert (ours["metric"] == "pixel_motion[mad255]").sum() == len(files)  # each file scored once
    paired = set(ours.loc[ours["metric"].str.contains("start="), "metric"])
    assert {m for m in paired if "step,start=prior,split=test" in m} and {m for m in paired if "chain,start=prior" in m}
    assert all("start=prior,split=test" in m for m in paired)
    assert paired <= set(scores.loc[scores["variant"] == "base", "metric"])


def test_a_missing_folder_is_refused_before_any_work_naming_it_and_plan_still_works(tmp_path: Path, capsys) -> None:
    study = write(tmp_path / "m.yaml", micro(tmp_path / "no-sd15"))
    assert main(["plan", str(study), "--out", str(tmp_path / "runs")]) == 0
    assert main(["run", str(study), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert "no-sd15" in err and "hf download" in err
    assert not (tmp_path / "runs").exists()
    assert main(["doctor", str(study), "--out", str(tmp_path / "runs")]) != 0
    assert "no-sd15" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop(T2VZ), "text2video_zero: the baseline needs its section"),
    (lambda s: s.update(baselines=["static"]), "does not list text2video_zero"),
    (lambda s: s[T2VZ].update(guidance=1.0), "text2video_zero: guidance: must be > 1"),
    (lambda s: s[T2VZ].update(stepz=3), "text2video_zero.stepz: unknown key"),
    (lambda s: s["generate"].update(size=20), "multiple of 8"),
    (lambda s: s["metrics"].update(select=["embedding"]), "scores no videos"),
])
def test_its_settings_are_validated_when_the_study_loads(tmp_path: Path, change, message: str) -> None:
    spec = micro("models/stable-diffusion-v1-5")
    change(spec)
    with pytest.raises(StudyError, match=message):
        load_study(write(tmp_path / "v.yaml", spec))


def test_its_settings_change_only_its_own_trial(tmp_path: Path) -> None:
    before = {t.trial_id for t in load_study(write(tmp_path / "a.yaml", micro("x"))).trials}
    changed = micro("x")
    changed[T2VZ]["steps"] = 3
    after = {t.trial_id for t in load_study(write(tmp_path / "b.yaml", changed)).trials}
    assert {i.split("-s")[0] for i in before ^ after} == {T2VZ}
