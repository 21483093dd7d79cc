"""The training corpus apart from evaluation: a leak stops doctor and run before any work, naming the videos;
the shipped paper study trains on MSR-VTT train and evaluates on MSR-VTT test (fake public annotation layout)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ablations.cli import main
from ablations.doctor import problems, study_checks
from ablations.leakage import check_leakage
from ablations.study import load_prompts, load_study

PAPER_PROMPTS = [p.id for p in load_prompts({"prompts": "msrvtt31-caption-uniform-v1"})[0]]


def folder_corpus(root: Path, ids: list[str]) -> Path:
    """A folder dataset: captions.csv + one (never decoded) file per id."""
    (root / "videos").mkdir(parents=True)
    (root / "captions.csv").write_text("video_id,caption\n" + "".join(f"{i},a clip called {i}\n" for i in ids))
    for video_id in ids:
        (root / "videos" / f"{video_id}.mp4").write_bytes(b"\0")
    return root


def tiny_study(tmp: Path, train: list[str], evaluation: list[str] | None, prompts: list[str]) -> Path:
    prompt_file = tmp / "prompts.jsonl"
    prompt_file.write_text("".join(json.dumps({"id": p, "text": f"caption of {p}"}) + "\n" for p in prompts))
    study = {
        "study": "leaky",
        "data": {"source": "folder", "path": str(folder_corpus(tmp / "train", train)), "frames": 4},
        "backend": {"name": "tiny"},
        "generate": {"prompts": str(prompt_file), "frames": 4},
        "metrics": {"select": ["embedding"]},
        "baselines": [],
    }
    if evaluation is not None:
        study["evaluation"] = {"source": "folder", "path": str(folder_corpus(tmp / "eval", evaluation))}
    path = tmp / "leaky.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_a_prompt_whose_source_video_is_in_training_stops_the_run_before_encode(tmp_path: Path) -> None:
    path = tiny_study(tmp_path, ["v1", "v2", "v3"], None, ["v2", "p9"])
    (leak,) = problems(study_checks(load_study(path)))
    assert leak.name == "leakage" and "source clips of prompts" in leak.detail and "v2" in leak.detail
    assert "v1" not in leak.detail and "p9" not in leak.detail
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--device", "cpu", "--no-report"]) == 1
    assert not (out / "leaky" / "encode").exists()


def test_evaluation_videos_in_the_training_corpus_are_named(tmp_path: Path) -> None:
    report = check_leakage(load_study(tiny_study(tmp_path, ["v1", "v2", "v3"], ["v3", "v1", "e1"], ["p1"])))
    assert report.checked and report.in_evaluation == ["v1", "v3"] and report.in_prompts == []
    assert report.n_training == 3 and report.n_evaluation == 3
    assert "2 training video(s) are in the evaluation set: v1, v3" in report.problems()[0]


def test_disjoint_sets_pass_and_the_summary_says_what_was_compared(tmp_path: Path) -> None:
    report = check_leakage(load_study(tiny_study(tmp_path, ["v1", "v2"], ["e1", "e2", "e3"], ["e1"])))
    assert report.clean and report.summary() == {
        "checked": True, "clean": True, "n_training": 2, "n_evaluation": 3, "n_prompt_sources": 1,
        "in_evaluation": [], "in_prompts": [], "reason": ""}


def test_a_source_that_makes_its_own_videos_is_not_compared() -> None:
    report = check_leakage(load_study("quickstart"))
    assert not report.checked and "makes its own videos" in report.reason


def fake_msrvtt(root: Path, train: list[str], test: list[str]) -> None:
    """MSRVTT_data.json in the public layout (videos with their split, 2 sentences each) and the video files."""
    videos = [{"video_id": v, "category": 0, "url": "u", "start time": 0.0, "end time": 1.0, "split": split, "id": i}
              for i, (v, split) in enumerate([(v, "train") for v in train] + [(v, "test") for v in test])]
    sentences = [{"video_id": v["video_id"], "caption": f"{v['video_id']} caption {k}", "sen_id": 2 * i + k}
                 for i, v in enumerate(videos) for k in range(2)]
    folder = root / "data" / "msrvtt"
    (folder / "videos").mkdir(parents=True)
    (folder / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    for v in train + test:
        (folder / "videos" / f"{v}.mp4").write_bytes(b"\0")


def test_paper_trains_on_msrvtt_train_and_evaluates_on_msrvtt_test(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the study's paths are relative: data/msrvtt/...
    fake_msrvtt(tmp_path, [f"video{i}" for i in range(6)], PAPER_PROMPTS + ["video9998", "video9999"])
    study = load_study("paper")
    assert study.spec.data.split == "train" and study.spec.evaluation.split == "test"
    report = check_leakage(study)
    assert report.checked and report.clean
    assert (report.n_training, report.n_evaluation, report.n_prompt_sources) == (6, 33, 31)
    leakage = [c for c in study_checks(study) if c.name in ("data", "evaluation", "leakage")]
    assert [(c.name, c.ok) for c in leakage] == [("data", True), ("evaluation", True), ("leakage", True)]
    assert "6 training videos share no id with 33 evaluation videos and 31 prompt source clips" in leakage[2].detail
    assert main(["plan", "paper"]) == 0


def test_paper_refuses_an_annotation_that_puts_a_prompt_video_in_train(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_msrvtt(tmp_path, ["video0", PAPER_PROMPTS[0]], PAPER_PROMPTS[1:])
    report = check_leakage(load_study("paper"))
    assert report.in_prompts == [PAPER_PROMPTS[0]] and report.in_evaluation == []
    assert PAPER_PROMPTS[0] in report.problems()[0]


@pytest.mark.parametrize("ids", [["v1"], []])
def test_prompt_files_may_name_their_source_video(tmp_path: Path, ids: list[str]) -> None:
    path = tiny_study(tmp_path, ["v1", "v2"], None, [])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "text": "t", "video_id": v}) + "\n"
                               for i, v in enumerate(ids or ["x"])))
    assert check_leakage(load_study(path)).in_prompts == ids


def test_the_paper_protocol_block_states_corpus_evaluation_set_fvd_protocol_and_leakage(
        tmp_path: Path, monkeypatch) -> None:
    from ablations.protocol import evaluation_protocol
    from ablations.stages.context import RunContext

    monkeypatch.chdir(tmp_path)
    fake_msrvtt(tmp_path, [f"video{i}" for i in range(6)], PAPER_PROMPTS + ["video9999"])
    study = load_study("paper")
    block = evaluation_protocol(RunContext(study.path, tmp_path / "runs" / "paper"), study)
    assert block["training_corpus"] == {"source": "msrvtt-annotation", "path": "data/msrvtt/MSRVTT_data.json",
                                        "videos": "data/msrvtt/videos", "split": "train"}
    assert block["evaluation_set"]["split"] == "test" and block["evaluation_set"]["n_videos"] == 32
    assert block["fvd"] == {"metric": "fvd[i3d-videogpt,16f,stride1,224,squash]", "frames": 16, "stride": 1,
                            "resolution": 224, "n_min": 2048, "ddof": 1, "n_generated_per_trial": 155}
    assert block["leakage"]["checked"] and block["leakage"]["clean"]


def test_an_index_that_cannot_be_read_refuses_the_study_rather_than_passing_unchecked(tmp_path: Path) -> None:
    path = tiny_study(tmp_path, ["v1"], ["e1"], ["p1"])
    (tmp_path / "eval" / "captions.csv").write_text("name,text\ne1,x\n")  # not the folder layout's columns
    (leak,) = problems(study_checks(load_study(path)))
    assert leak.name == "leakage" and "could not list a side" in leak.detail and "captions.csv" in leak.detail
