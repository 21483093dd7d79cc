"""The stages end to end on the default study's wiring: FVD (random I3D), an open_clip encoder (random tiny-vit),
`--workers 2`; resources are loaded once per worker process; scoring reads the lossless frames."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ablations.cli import main
from ablations.stages.generate import load_frames
from metrics.motion import pixel_motion

WIRED = {
    "study": "wired",
    "seeds": [0, 1],
    "data": {"source": "shapes", "n_videos": 8, "frames": 16, "fps": 8.0, "size": 32, "val_fraction": 0.25},
    "backend": {"name": "tiny", "options": {"seed": 0}, "prior_steps": 2},
    "model": {"width": 8, "depth": 1, "heads": 2, "dropout": 0.0},
    "train": {"epochs": 1, "batch_size": 16, "patience": 1},
    "regime": {"pairs_per_video": 2},
    "generate": {"prompts": "motion-v1", "prompt_tags": ["quickstart"], "max_prompts": 2, "frames": 8, "dt": 0.25,
                 "size": 32, "decoder_steps": 1, "fps": 8.0},
    "metrics": {"select": ["embedding", "pixel_motion", "clip", "fvd", "fid"],
                "clip_encoders": ["backend", "openclip:tiny-vit@random"],
                "fvd": {"weights": "random", "frames": 8, "resolution": 112}},
    "matrix": {"regime": {"base": {}, "back": {"regime.back": True}}},
    "baselines": [],
    "controls": [],  # the wiring only (tests/test_fair_study.py runs the text_blind control)
}


@pytest.fixture(scope="module")
def wired(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wired")
    study = tmp / "wired.yaml"
    study.write_text(yaml.safe_dump(WIRED))
    assert main(["run", str(study), "--out", str(tmp / "runs"), "--workers", "2", "--no-report"]) == 0
    return tmp / "runs" / "wired"


def stage_metas(root: Path) -> list[dict]:
    """The meta.json of every stage folder (encode/<hash>/ and trials/<id>/<stage>/)."""
    paths = [*root.glob("encode/*/meta.json"), *root.glob("trials/*/*/meta.json")]
    return [json.loads(path.read_text()) for path in paths]


def test_each_worker_process_loads_the_backend_once_across_trials_and_stages(wired: Path) -> None:
    metas = stage_metas(wired)
    assert len({m["trial_id"] for m in metas}) == 4 and {m["stage"] for m in metas} == {
        "encode", "train", "generate", "score"}
    loads: dict[int, int] = defaultdict(int)  # pid -> backend loads it had made by its last stage
    for meta in metas:
        pid = meta["resources"]["pid"]
        loads[pid] = max(loads[pid], meta["resources"]["loads"].get("backend", 0))
    assert len(loads) <= 2, f"stages ran in {len(loads)} processes with --workers 2"
    assert all(count <= 1 for count in loads.values()), dict(loads)
    assert sum(loads.values()) <= 2  # not one per trial and stage (4 trials x 3 stages that use it)


def test_the_default_wiring_scores_fvd_and_open_clip_rows(wired: Path) -> None:
    scores = pd.read_parquet(wired / "results" / "scores.parquet")
    fvd = scores[scores["metric"].str.startswith("fvd[")]
    assert len(fvd) == 4 and (fvd["level"] == "set").all()
    extras = [json.loads(text) for text in fvd["extra"]]
    assert all(extra["weights"] == "random-seed0" for extra in extras)  # the I3D weights identity in every row
    assert not fvd["reliable"].any()  # 2 videos vs 400 feature dimensions
    assert scores["metric"].str.contains("openclip:tiny-vit").any()
    assert (wired / "cache" / "fvd").is_dir() and len(list((wired / "cache" / "fvd").glob("fvd-ref-*.npz"))) == 1


def test_scores_come_from_the_lossless_frames_not_the_mp4(wired: Path) -> None:
    from spliter.data.video import read_video

    scores = pd.read_parquet(wired / "results" / "scores.parquet")
    motion = scores[scores["metric"].str.startswith("pixel_motion")]
    gen_dir = next((wired / "trials").glob("*/generate"))
    index = json.loads((gen_dir / "videos.json").read_text())
    trial_id = gen_dir.parent.name
    for item in index:
        frames = load_frames(gen_dir / item["npz"])
        assert frames.dtype == np.uint8 and frames.shape == (8, 32, 32, 3)
        row = motion[(motion["trial_id"] == trial_id) & (motion["prompt_id"] == item["prompt_id"])]
        assert row["value"].iloc[0] == pytest.approx(pixel_motion(frames), rel=1e-12)
        assert read_video(gen_dir / item["mp4"]).frames.shape == frames.shape  # the mp4 stays, for people


def test_frame_fid_is_a_selectable_metric(wired: Path) -> None:
    scores = pd.read_parquet(wired / "results" / "scores.parquet")
    fid = scores[scores["metric"].str.startswith("fid[")]
    assert len(fid) == 4 and (fid["level"] == "set").all() and (fid["value"] >= 0).all()
    assert {json.loads(extra)["n_reference_videos"] for extra in fid["extra"]} == {8}
