"""The quickstart world end to end at micro size: shapes -> pixel-linear -> test split -> generation from true and
prior starts in both modes -> paired ground-truth scores (LPIPS from a random-weight AlexNet file) -> report with
the true video in the GIF grid."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import changed, finished_run, lpips_backbone, micro_quickstart, shipped_study, study_scores
from PIL import Image

from ablations.schema import StudyError, from_dict
from ablations.stages.generate import load_frames
from ablations.study import StudyFile, expand_trials, load_study
from reports.gifs import TRUTH_COLUMN, gif_grid
from spliter.data.store import EmbeddingStore

QUICKSTART = shipped_study("quickstart")
HEADLINE = "change_cosine[32px,frames1+,{mode},start={start},split=test]"


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory) -> Path:
    return lpips_backbone(tmp_path_factory.mktemp("lpips") / "alexnet-random.pth")


@pytest.fixture(scope="module")
def run(tmp_path_factory, lpips_file: Path) -> Path:
    study = micro_quickstart(metrics__paired={"lpips": {"weights": str(lpips_file), "net": "alex"}})
    _, runs = finished_run(tmp_path_factory.mktemp("qsmicro"), study)
    return runs / "qsmicro"


def test_the_shipped_quickstart_is_the_world_matrix_with_a_ground_truth_headline():
    study = load_study("quickstart")
    assert study.spec.backend.name == "pixel-linear" and study.spec.data.test_fraction > 0
    spliter = {t.variant for t in study.trials if t.kind == "spliter"}
    assert {"base", "combined", "combined-plane-attention", "text_blind"} <= spliter
    assert {t.variant for t in study.trials if t.kind == "baseline"} == {"static", "mean_motion"}
    assert study.spec.headline_metric == HEADLINE.format(mode="step", start="true")
    assert len({t.config["train"]["budget_steps"] for t in study.trials if t.kind == "spliter"}) == 1
    blind = next(t for t in study.trials if t.variant == "text_blind")
    full = next(t for t in study.trials if t.variant == "combined-plane-attention")
    assert blind.config["model"]["text_input"] == "constant"
    assert blind.config["regime"] == full.config["regime"]
    assert {k: v for k, v in blind.config["model"].items() if k != "text_input"} == {
        k: v for k, v in full.config["model"].items() if k != "text_input"}
    assert study.spec.resources.workers == "auto"
    assert study.spec.world and study.spec.question


def test_the_test_split_is_held_out_and_the_prior_retrieves_train_first_frames(run):
    store = EmbeddingStore.open(next((run / "encode").glob("*/store")))
    train, test = store.split("train"), store.split("test")
    assert test and train and not {r.video_id for r in test} & {r.video_id for r in train}
    train_firsts = np.stack([r.frame_embeds[0].numpy() for r in train])
    for record in test + train:  # every prior start is some train video's first frame (fp16 store precision)
        distance = np.abs(train_firsts - record.prior_embed.numpy()).max(axis=1).min()
        assert distance < 1e-2, record.video_id


def test_generation_covers_both_starts_and_modes_with_the_true_frames(run):
    generate = next((run / "trials").glob("combined-s0-*/generate"))
    index = json.loads((generate / "videos.json").read_text())
    assert {(item["start"], item["mode"]) for item in index} == {(s, m) for s in ("true", "prior")
                                                                 for m in ("step", "chain")}
    for item in index:
        frames, truth = load_frames(generate / item["npz"]), load_frames(generate / item["truth_npz"])
        assert frames.shape == truth.shape == (12, 32, 32, 3)
    true_step = next(i for i in index if i["start"] == "true" and i["mode"] == "step")
    frames, truth = load_frames(generate / true_step["npz"]), load_frames(generate / true_step["truth_npz"])
    # Frame 0 from the true start is the true first frame seen through the 8x8 grid: close, not equal.
    assert np.abs(frames[0].astype(int) - truth[0].astype(int)).mean() < 12


def test_paired_rows_are_named_by_mode_start_and_split(run):
    scores = pd.read_parquet(run / "results" / "scores.parquet")
    for mode in ("step", "chain"):
        for start in ("true", "prior"):
            rows = scores[scores.metric == HEADLINE.format(mode=mode, start=start)]
            assert set(rows.variant) == {"static", "mean_motion", "text_blind", "combined"}
            assert rows["value"].notna().all()
    static = scores[(scores.metric == HEADLINE.format(mode="step", start="true")) & (scores.variant == "static")]
    assert (static["value"] == 0).all()  # a frozen video has no change to agree with


def test_lpips_rows_are_scored_from_the_given_weights_file(run, lpips_file):
    from metrics.fvd import file_sha256

    scores = pd.read_parquet(run / "results" / "scores.parquet")
    for mode in ("step", "chain"):
        for start in ("true", "prior"):
            for base in ("lpips", "lpips_slope"):
                rows = scores[scores.metric == f"{base}[alex,32px,frames1+,{mode},start={start},split=test]"]
                assert set(rows.variant) == {"static", "mean_motion", "text_blind", "combined"}, (base, mode, start)
                assert not rows["higher_is_better"].any()
                assert {json.loads(extra)["weights"] for extra in rows["extra"]} == {file_sha256(lpips_file)}
    lpips = scores[scores.metric.str.startswith("lpips[")]
    assert (lpips["value"] >= 0).all() and (lpips["value"] > 0).any()
    study = json.loads((run / "results" / "study.json").read_text())
    assert study["evaluation_protocol"]["lpips"] == {
        "computed": True, "net": "alex", "weights": str(lpips_file),
        "detail": f"alex backbone from {lpips_file} (rows lpips[alex,...], sha256 in extra)"}


def test_study_json_says_what_world_the_numbers_come_from(run):
    study = json.loads((run / "results" / "study.json").read_text())
    assert study["world"].startswith("Procedural shapes") and study["question"]
    assert "pixel-linear" in (run / "report" / "index.html").read_text()
    assert "alex backbone from" in (run / "report" / "index.html").read_text()  # the protocol table's LPIPS row
    # A store prompt set counts the test videos it renders (micro: max_prompts 3), not the empty jsonl list.
    assert study["prompt_set"]["name"] == "store:test" and study["prompt_set"]["n"] == 3


def tile(frame: Image.Image, row: int, column: int, tile_px: int, origin: tuple[int, int]) -> np.ndarray:
    x, y = origin[0] + column * tile_px, origin[1] + row * tile_px
    return np.asarray(frame.convert("RGB"))[y:y + tile_px, x:x + tile_px].astype(np.float64)


def neighbour_correlation(image: np.ndarray, grid: int = 8) -> float:
    """Correlation of horizontally neighbouring pixels of the tile seen at the backend's grid (area averages)."""
    h = image.shape[0] // grid
    low = image[: h * grid, : h * grid].reshape(grid, h, grid, h, 3).mean(axis=(1, 3)).mean(axis=-1)
    return float(np.corrcoef(low[:, :-1].ravel(), low[:, 1:].ravel())[0, 1])


def test_the_gif_grid_shows_truth_first_static_frozen_and_trained_moving(run):
    from reports.gifs import grid_margins

    videos = pd.read_parquet(run / "results" / "videos.parquet")
    study = json.loads((run / "results" / "study.json").read_text())
    frames = gif_grid(videos, run, tile=48, study=study)
    columns = [TRUTH_COLUMN, "static", "mean_motion", "text_blind", "combined"]
    origin = grid_margins(48)
    first, last = frames[0], frames[-1]
    for row in range(3):
        tiles = {name: (tile(first, row, i, 48, origin), tile(last, row, i, 48, origin))
                 for i, name in enumerate(columns)}
        assert np.abs(tiles["static"][0] - tiles["static"][1]).max() == 0
        assert np.abs(tiles[TRUTH_COLUMN][0] - tiles[TRUTH_COLUMN][1]).mean() > 1
        assert np.abs(tiles["combined"][0] - tiles["combined"][1]).mean() > 0.5
        for name in (TRUTH_COLUMN, "static", "combined"):
            assert neighbour_correlation(tiles[name][1]) > 0.3, name


def test_a_random_grid_tile_fails_the_noise_check():
    noise = np.random.default_rng(0).integers(0, 256, size=(48, 48, 3)).astype(np.float64)
    assert abs(neighbour_correlation(noise)) < 0.3


def test_a_true_start_needs_store_prompts():
    raw = copy.deepcopy(QUICKSTART)
    raw["generate"]["prompts"] = "motion-v1"
    with pytest.raises(StudyError, match="generate.start"):
        expand_trials(from_dict(StudyFile, raw))
    raw["generate"]["prompts"] = "store:holdout"
    with pytest.raises(StudyError, match="names no store split"):
        expand_trials(from_dict(StudyFile, raw))


def test_the_smoke_study_runs_the_tiny_kandinsky_classes_at_micro_size(tmp_path):
    micro = changed(
        shipped_study("smoke"), study="smokemicro", seeds=[0], data__n_videos=8, data__frames=8, train__epochs=1,
        train__patience=1, generate__max_prompts=2, generate__frames=4, metrics__select=["embedding", "pixel_motion",
        "clip"], metrics__clip_encoders=["backend"], matrix={"regime": {"base": {}}}, baselines=["static"],
        controls=[],  # mechanics only: the text_blind control is tested in test_fair_study
    )  # fmt: skip
    _, runs = finished_run(tmp_path, micro, "--no-report")
    scores = study_scores(runs, "smokemicro")
    assert set(scores.variant) == {"static", "base"} and scores["value"].notna().all()
    videos = pd.read_parquet(runs / "smokemicro" / "results" / "videos.parquet")
    assert videos["truth_gif"].isna().all()  # prompts without a true video: no truth column
