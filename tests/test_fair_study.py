"""The fair harness end to end on a reduced synthetic study (tests/studies/synthetic_tiny.yaml): equal budgets,
test splits only in the scores, the text_blind control, deterministic baselines once, verdicts and exit codes."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablations.cli import EXPECTATION_FAILED, main
from ablations.stages.context import RunContext
from ablations.stages.plan import stage_dir
from ablations.stages.resources import Resources
from ablations.stages.runner import run_trial
from ablations.study import load_study
from reports import tables
from reports.load import load_results
from spliter.data.store import EmbeddingStore

TINY = Path(__file__).parent / "studies" / "synthetic_tiny.yaml"
HEADLINE = "embed_cosine[step,start=true,split=test]"


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fair")
    assert main(["run", str(TINY), "--out", str(out), "--no-report"]) == 0
    return out


@pytest.fixture(scope="module")
def folder(run_root) -> Path:
    return run_root / "synthetic_tiny" / "results"


@pytest.fixture(scope="module")
def results(run_root) -> dict[str, pd.DataFrame]:
    loaded = load_results(run_root / "synthetic_tiny")  # scores with their extras parsed, as the report reads them
    return {"scores": loaded.scores, "runs": loaded.runs}


@pytest.fixture(scope="module")
def study_json(folder) -> dict:
    return json.loads((folder / "study.json").read_text())


def test_every_trained_variant_spends_the_same_step_budget(results, study_json):
    train = results["runs"][results["runs"]["stage"] == "train"]
    assert set(train["variant"]) == {"base", "combined", "text_blind"}
    assert set(train["steps"]) == {60}
    assert (train["examples"] > 0).all() and (train["train_wall_s"] > 0).all()
    # The budget is steps, whatever a regime's epoch size; the report's budget table shows it.
    assert list(tables.budget_table(results["runs"], study_json)["steps"]) == ["60", "60", "60"]
    switches = tables.ablation_table(results["scores"], study_json, HEADLINE, runs=results["runs"])
    assert list(switches[["steps before", "steps after"]].iloc[0]) == ["60", "60"]


def test_baselines_run_once_and_text_blind_is_added_with_the_text_replaced():
    study = load_study(TINY)
    kinds = {(t.variant, t.seed) for t in study.trials}
    assert {(name, 0) for name in ("static", "mean_motion")} <= kinds
    assert not {(name, 1) for name in ("static", "mean_motion")} & kinds
    blind = [t for t in study.trials if t.variant == "text_blind"]
    last = [t for t in study.trials if t.variant == "combined"]
    assert [t.seed for t in blind] == [0, 1]
    assert blind[0].config["model"] == {**last[0].config["model"], "text_input": "constant"}
    assert blind[0].config["train"] == last[0].config["train"] and blind[0].config["regime"] == last[0].config["regime"]


def test_scores_name_their_split_and_start_and_never_use_val(results):
    names = set(results["scores"]["metric"])
    for split in ("test", "test_unseen"):
        for start in ("true", "prior"):
            for mode in ("step", "chain"):
                assert f"embed_cosine[{mode},start={start},split={split}]" in names
                assert f"embed_cosine[{mode},start={start},text=shuffled,split={split}]" in names
    assert not [n for n in names if "split=val" in n or "split=train" in n]


def test_shuffled_text_leaves_text_blind_unchanged_and_lowers_a_text_model(results):
    frame = results["scores"]
    for metric in ("embed_cosine[step,start=true,split=test]", "embed_cosine[chain,start=prior,split=test_unseen]"):
        shuffled = metric.replace(",split=", ",text=shuffled,split=")
        blind = frame[frame["variant"] == "text_blind"]
        plain = blind[blind["metric"] == metric].set_index(["seed", "prompt_id"])["value"].sort_index()
        other = blind[blind["metric"] == shuffled].set_index(["seed", "prompt_id"])["value"].sort_index()
        assert len(plain) > 0 and plain.index.equals(other.index)
        assert (plain.to_numpy() == other.to_numpy()).all()
    base = frame[frame["variant"] == "base"]
    mean = base.groupby("metric")["value"].mean()
    assert mean["embed_cosine[step,start=true,text=shuffled,split=test]"] < mean[HEADLINE] - 0.01


def test_the_declared_expectation_holds_and_a_failed_one_makes_run_and_check_exit_3(run_root, tmp_path, capsys):
    verdicts = json.loads((run_root / "synthetic_tiny" / "results" / "expectations.json").read_text())
    assert [(v["expectation"], v["held"]) for v in verdicts] == [("base beats static in step mode", True)]
    spec = yaml.safe_load(TINY.read_text())
    spec["expectations"].append({"variant": "static", "beats": ["base"], "metric": HEADLINE})
    failing = tmp_path / "synthetic_tiny.yaml"
    failing.write_text(yaml.safe_dump(spec))
    # Same study name and trials: every stage is done, only collect (and its verdicts) runs again.
    capsys.readouterr()
    assert main(["run", str(failing), "--out", str(run_root), "--no-report"]) == EXPECTATION_FAILED
    printed = capsys.readouterr().err
    assert "expectation failed: static beats base on embed_cosine[step,start=true,split=test]: static " in printed
    assert "[red]" not in printed  # plain text: the console renders no markup
    verdicts = json.loads((run_root / "synthetic_tiny" / "results" / "expectations.json").read_text())
    assert [v["held"] for v in verdicts] == [True, False]
    assert main(["check", str(failing), "--out", str(run_root)]) == EXPECTATION_FAILED
    assert main(["check", str(TINY), "--out", str(run_root)]) == 0


def test_headline_margins_compare_each_variant_with_the_best_baseline_and_text_blind(results, study_json):
    table = tables.fair_headline(results["scores"], study_json, HEADLINE).set_index("variant")
    assert table.loc["static", "runs"] == tables.DETERMINISTIC
    assert table.loc["base", "runs"] == "2 seeds"
    best = [c for c in table.columns if c.startswith("Δ vs best baseline")]
    assert best == ["Δ vs best baseline (mean_motion)"]  # mean_motion 0.929 > static 0.908 (measured)
    assert "[" in table.loc["base", best[0]] and table.loc["text_blind", "Δ vs text_blind"] == "—"


def test_no_val_or_test_video_reaches_training_or_baseline_fitting(tmp_path, monkeypatch):
    import spliter.rollout
    import spliter.train

    seen: dict[str, set[str]] = {}

    def spy(name, real):
        def wrapped(store, val_fraction):
            train, val = real(store, val_fraction)
            seen[name] = {r.video_id for r in train}
            return train, val

        return wrapped

    monkeypatch.setattr(spliter.train, "train_val_records", spy("train", spliter.train.train_val_records))
    monkeypatch.setattr(spliter.rollout, "train_val_records", spy("mean_motion", spliter.rollout.train_val_records))
    study = load_study(TINY)
    ctx = RunContext(study_path=TINY, root=tmp_path / "synthetic_tiny", device="cpu")
    trained = next(t for t in study.trials if t.variant == "combined")
    baseline = next(t for t in study.trials if t.variant == "mean_motion")
    for stage in ("encode", "train"):
        run_trial(ctx, trained.trial_id, stage)
    resources = Resources(ctx)
    resources.rollout(baseline, "step")
    store = EmbeddingStore.open(stage_dir(ctx, trained, "encode") / "store")
    held_out = {vid for split in ("val", "test", "test_unseen") for vid in store.ids(split)}
    assert store.ids("test") and store.ids("test_unseen") and store.ids("val")
    assert seen["train"] and seen["train"] == seen["mean_motion"] == set(store.ids("train"))
    assert not seen["train"] & held_out

