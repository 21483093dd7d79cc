"""Study files: validation with key paths, matrix expansion, trial identity."""

import os
from pathlib import Path

import pytest
import yaml

from ablations.schema import StudyError
from ablations.study import STUDIES_DIR, Resources, load_prompts, load_study, select_trials

SHIPPED = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def write_study(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def minimal(**overrides) -> dict:
    data = {"study": "t", "seeds": [0, 1], "data": {"source": "synthetic"}, "generate": {"enabled": False},
            "model": {"width": 8}, "variants": {"a": {}, "b": {"regime.back": True}}}
    data.update(overrides)
    return data


def test_every_shipped_study_validates_and_expands():
    assert {"quickstart", "synthetic", "paper"} <= set(SHIPPED)
    for name in SHIPPED:
        study = load_study(name)
        assert study.trials, name
        ids = [t.trial_id for t in study.trials]
        assert len(ids) == len(set(ids)), f"{name}: duplicate trial ids"


def test_quickstart_is_the_full_matrix_with_baselines():
    study = load_study("quickstart")
    spliter = {t.variant for t in study.trials if t.kind == "spliter"}
    assert len(spliter) == 2 * 2 * 2 + 1  # regime x rotation layer x cross-attention, + the text_blind control
    assert "text_blind" in spliter
    assert {"base", "base-plane", "base-attention", "base-plane-attention", "combined-plane-attention"} <= spliter
    assert {t.variant for t in study.trials if t.kind == "baseline"} == {"static", "mean_motion"}
    assert {t.seed for t in study.trials} == {0, 1, 2}
    combined = next(t for t in study.trials if t.variant == "combined")
    assert combined.factors["regime"] == "combined"
    assert study.variant_order()[:2] == ["static", "mean_motion"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trian": {}}, "trian: unknown key"),
        ({"seeds": "zero"}, "seeds: expected a list"),
        ({"data": {"source": "youtube"}}, "data.source: 'youtube' is not a registered data source"),
        ({"backend": {"name": "sdxl"}}, "backend.name: 'sdxl' is not a registered backend"),
        ({"backend": {"name": "tiny", "options": {"colour": 1}}}, "backend.options.colour: unknown key"),
        ({"data": {"n_videos": 1.5}}, "data.n_videos: expected an integer"),
        ({"model": {"widht": 8}}, "model"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"variants": {"a": {"regime.bak": True}}}, "regime.bak"),
        ({"variants": {"a": {"optimizer.lr": 1}}}, "variants.a.optimizer.lr"),
        ({"variants": {"static": {}}}, "reserved for a baseline"),
        ({"train": {"seed": 3}}, "train.seed: set by the harness"),
        ({"rollout": {"dt": 0.5}}, "rollout.dt: set by the harness"),
        ({"rollout": {"frames": 4}}, "rollout.frames: set by the harness"),
        ({"metrics": {"fvd": {"frames": "many"}}}, "metrics.fvd.frames: expected an integer"),
        ({"metrics": {"select": ["fvd", "vbench"]}}, "metrics.select[1]: 'vbench' is not a registered metric family"),
    ],
)
def test_invalid_studies_name_the_file_and_key_path(tmp_path, change, message):
    path = write_study(tmp_path, minimal(**change))
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_trial_id_is_variant_seed_and_config_hash(tmp_path):
    study = load_study(write_study(tmp_path, minimal()))
    trial = study.trial(next(t.trial_id for t in study.trials if t.variant == "a" and t.seed == 1))
    variant, seed, digest = trial.trial_id.rsplit("-", 2)
    assert (variant, seed, len(digest)) == ("a", "s1", 8)
    assert trial.config["seed"] == 1


def test_changing_one_variant_changes_only_its_trial_ids(tmp_path):
    before = load_study(write_study(tmp_path, minimal(), "a.yaml"))
    changed = minimal(variants={"a": {}, "b": {"regime.back": True, "train.lr": 0.01}})
    after = load_study(write_study(tmp_path, changed, "b.yaml"))
    ids = lambda s, v: {t.trial_id for t in s.trials if t.variant == v}  # noqa: E731
    assert ids(before, "a") == ids(after, "a")
    assert ids(before, "static") == ids(after, "static")
    assert ids(before, "b").isdisjoint(ids(after, "b"))


def test_resources_do_not_change_trial_ids(tmp_path):
    before = load_study(write_study(tmp_path, minimal(), "a.yaml"))
    after = load_study(write_study(tmp_path, minimal(resources={"cpu": 4, "gpu": 1, "threads": 1}), "b.yaml"))
    assert [t.trial_id for t in before.trials] == [t.trial_id for t in after.trials]


def test_select_trials_by_variant_and_seed(tmp_path):
    study = load_study(write_study(tmp_path, minimal()))
    chosen = select_trials(study.trials, "variant=a|b,seed=0")
    assert sorted((t.variant, t.seed) for t in chosen) == [("a", 0), ("b", 0)]
    with pytest.raises(StudyError, match="selects no trial"):
        select_trials(study.trials, "variant=zzz")


def test_prompt_sets_are_hashed_and_filtered():
    prompts, name, digest = load_prompts({"prompts": "motion-v1", "prompt_tags": ["quickstart"], "max_prompts": None})
    assert name == "motion-v1" and len(digest) == 64
    assert prompts and all("quickstart" in p.tags for p in prompts)
    uniform, _, _ = load_prompts({"prompts": "msrvtt31-caption-uniform-v1", "prompt_tags": [], "max_prompts": None})
    assert len(uniform) == 31
    assert len({p.id for p in uniform}) == 31


def test_rollout_time_grid_and_mode_are_not_in_the_trial_config():
    study = load_study("quickstart")
    assert all(not {"mode", "frames", "dt"} & set(t.config["rollout"]) for t in study.trials)


def _tiny_spec(**extra) -> dict:
    return {"study": "t", "seeds": [0, 1], "data": {"source": "synthetic"}, "generate": {"enabled": False},
            "metrics": {"select": ["embedding"], "clip_encoders": []},
            "variants": {"base": {}, "sc": {"model.step_consistent": True}}, **extra}


def test_text_blind_copies_the_named_variant_and_controls_can_be_opted_out(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(_tiny_spec(text_blind_of="sc")))
    blind = [t for t in load_study(path).trials if t.variant == "text_blind"]
    assert [t.seed for t in blind] == [0, 1]
    assert blind[0].config["model"]["step_consistent"] is True and blind[0].config["model"]["text_input"] == "constant"
    path.write_text(yaml.safe_dump(_tiny_spec(controls=[])))
    assert "text_blind" not in {t.variant for t in load_study(path).trials}


def test_deterministic_baselines_are_one_trial_each(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(_tiny_spec()))
    baselines = [t for t in load_study(path).trials if t.kind == "baseline"]
    assert [(t.variant, t.seed) for t in baselines] == [("static", 0), ("mean_motion", 0)]
    assert all(t.config["deterministic"] for t in baselines)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"text_blind_of": "nope"}, r"text_blind_of: 'nope' is not a variant"),
        ({"controls": ["blind"]}, r"controls\[0\]: 'blind' is not one of"),
        ({"expectations": [{"variant": "sc", "beats": ["nope"], "metric": "m"}]}, r"expectations\[0\]\.beats: 'nope'"),
        ({"expectations": [{"variant": "sc", "beats": ["static"], "metric": "m[{mode}]"}]}, r"expectations\[0\]: metric"),
        ({"expectations": [{"variant": "sc", "beats": [], "metric": "m"}]}, r"expectations\[0\]\.beats: name at least"),
    ],
)
def test_bad_controls_and_expectations_name_the_key(tmp_path, extra, message):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(_tiny_spec(**extra)))
    with pytest.raises(StudyError, match=message):
        load_study(path)


def test_resources_workers_is_a_count_or_one_per_cpu_core() -> None:
    assert Resources().worker_count() == 1
    assert Resources(workers=3).worker_count() == 3
    assert Resources(workers="auto").worker_count() == (os.cpu_count() or 1)
