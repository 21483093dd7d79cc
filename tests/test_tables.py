"""tables: intervals over seeds (hand-computed), best marking, unreliable rows, differences, horizons, exports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from reports import tables
from reports.load import Results, parse_scores

T_975_DF2 = 4.302652729911275  # t_{0.975, 2}: the 95% two-sided quantile for n = 3 seeds
T_975_DF1 = 12.706204736174707  # t_{0.975, 1}
STUDY = {
    "study": "t", "seeds": [0, 1, 2], "baselines": ["static"], "variant_order": ["static", "base", "rot", "xattn"],
    "axes": {"regime": ["base", "back"], "rotation_layer": ["off", "plane"], "cross_attention": ["off", "attention"]},
    "variants": {
        "static": {},
        "base": {"regime": "base", "rotation_layer": "off", "cross_attention": "off"},
        "rot": {"regime": "base", "rotation_layer": "plane", "cross_attention": "off"},
        "xattn": {"regime": "base", "rotation_layer": "off", "cross_attention": "attention"},
        "back": {"regime": "back", "rotation_layer": "off", "cross_attention": "off"},
        "back_rot": {"regime": "back", "rotation_layer": "plane", "cross_attention": "attention"},
    },
}  # fmt: skip


def observations(variant: str, per_seed: dict[int, list[float]], metric: str = "m", **fields) -> list[dict]:
    """Score rows: one video row per value, `prompt_id` v0, v1, ... within each seed."""
    rows = []
    for seed, values in per_seed.items():
        for index, value in enumerate(values):
            row = {
                "study": "t", "trial_id": f"{variant}-s{seed}-00000000", "variant": variant, "seed": seed,
                "metric": metric, "metric_version": "1", "level": "video", "higher_is_better": True,
                "value": value, "n": 8, "reliable": True, "prompt_id": f"v{index}", "sample_idx": 0,
                "gen_seed": index, "extra": "{}",
            }  # fmt: skip
            row.update(fields)
            rows.append(row)
    return rows


def scores(*groups: list[dict]) -> pd.DataFrame:
    return parse_scores(pd.DataFrame([row for group in groups for row in group]), Path("scores.parquet"))


def row_of(summary: pd.DataFrame, variant: str, metric: str = "m") -> pd.Series:
    return summary[(summary["variant"] == variant) & (summary["metric"] == metric)].iloc[0]


def test_interval_over_seeds_matches_hand_computation() -> None:
    # Video rows average to 1, 2 and 4 per seed: mean 7/3, sd² = ((4/3)² + (1/3)² + (5/3)²) / 2 = 7/3.
    data = scores(observations("base", {0: [0.5, 1.5], 1: [2.0, 2.0], 2: [3.0, 5.0]}))
    row = row_of(tables.summary(data, STUDY), "base")
    half = T_975_DF2 * math.sqrt(7 / 3) / math.sqrt(3)
    assert row["mean"] == pytest.approx(7 / 3)
    assert row["ci_low"] == pytest.approx(7 / 3 - half) and row["ci_high"] == pytest.approx(7 / 3 + half)
    assert row["n_seeds"] == 3 and row["n_obs"] == 6 and row["interval"] == "t over 3 seeds"


def test_one_seed_takes_the_interval_over_videos_and_says_so() -> None:
    data = scores(observations("base", {0: [1.0, 3.0]}))
    row = row_of(tables.summary(data, STUDY), "base")
    half = T_975_DF1 * math.sqrt(2.0) / math.sqrt(2)  # sd of (1, 3) is √2
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2.0 - half, 2.0 + half))
    assert row["interval"] == "t over 2 videos (1 seed)"


def test_one_seed_set_metric_uses_the_stored_bootstrap_interval() -> None:
    extra = json.dumps({"ci_low": 9.0, "ci_high": 13.5, "n_boot": 200})
    data = scores(
        observations("base", {0: [11.0]}, level="set", prompt_id=None, sample_idx=None, extra=extra)
    )
    row = row_of(tables.summary(data, STUDY), "base")
    assert (row["mean"], row["ci_low"], row["ci_high"]) == (11.0, 9.0, 13.5)
    assert row["interval"] == "bootstrap (1 seed)"


def test_a_single_value_has_no_interval_and_says_why() -> None:
    data = scores(observations("base", {0: [11.0]}, level="set", prompt_id=None, sample_idx=None))
    row = row_of(tables.summary(data, STUDY), "base")
    assert math.isnan(row["ci_low"]) and row["interval"].startswith("none")
    assert tables.format_interval(row["mean"], row["ci_low"], row["ci_high"]) == "11"


@pytest.mark.parametrize(("higher_is_better", "best"), [(True, "rot"), (False, "static")])
def test_best_respects_the_direction(higher_is_better: bool, best: str) -> None:
    data = scores(
        observations("static", {0: [1.0], 1: [1.2]}, higher_is_better=higher_is_better),
        observations("base", {0: [2.0], 1: [2.2]}, higher_is_better=higher_is_better),
        observations("rot", {0: [3.0], 1: [3.2]}, higher_is_better=higher_is_better),
    )
    summary = tables.summary(data, STUDY)
    assert summary.loc[summary["best"], "variant"].tolist() == [best]


def test_counterweight_metrics_are_never_marked_best() -> None:
    unranked = json.dumps({"ranked": False})
    data = scores(
        observations("static", {0: [0.0], 1: [0.0]}, extra=unranked),
        observations("base", {0: [2.0], 1: [2.2]}, extra=unranked),
    )
    summary = tables.summary(data, STUDY)
    assert not summary["best"].any() and not summary["ranked"].any()


def test_unreliable_rows_are_flagged_and_never_best() -> None:
    data = scores(
        observations("static", {0: [1.0], 1: [1.0]}),
        observations("base", {0: [2.0], 1: [2.0]}),
        observations("rot", {0: [9.0], 1: [9.0]}, reliable=False),
    )
    summary = tables.summary(data, STUDY)
    assert row_of(summary, "rot")["note"] == tables.UNRELIABLE and not row_of(summary, "rot")["best"]
    assert row_of(summary, "base")["best"] and row_of(summary, "base")["note"] == ""
    formatted = tables.format_summary(summary)
    assert "⚠ unreliable" in formatted.loc[formatted["variant"] == "rot", "note"].iloc[0]
    assert formatted.loc[formatted["variant"] == "base", "mean [95% CI]"].iloc[0].endswith(tables.BEST_MARK)


def test_difference_to_static_is_paired_over_seeds() -> None:
    data = scores(
        observations("static", {0: [1.0], 1: [2.0], 2: [3.0]}),
        observations("base", {0: [1.5], 1: [3.0], 2: [3.1]}),  # paired differences 0.5, 1.0, 0.1
    )
    row = row_of(tables.summary(data, STUDY), "base")
    differences = [0.5, 1.0, 0.1]
    mean = sum(differences) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
    assert row["diff"] == pytest.approx(mean)
    assert row["diff_high"] - row["diff"] == pytest.approx(T_975_DF2 * sd / math.sqrt(3))
    assert row["diff_interval"] == "t over 3 paired seeds"
    assert math.isnan(row_of(tables.summary(data, STUDY), "static")["diff"])


def test_difference_with_one_seed_is_paired_over_videos() -> None:
    data = scores(observations("static", {0: [1.0, 2.0]}), observations("base", {0: [2.0, 4.0]}))
    row = row_of(tables.summary(data, STUDY), "base")
    assert row["diff"] == pytest.approx(1.5)
    assert row["diff_high"] - row["diff"] == pytest.approx(T_975_DF1 * math.sqrt(0.5) / math.sqrt(2))
    assert row["diff_interval"] == "t over 2 paired videos (1 seed)"


def test_horizon_rows_are_summarised_separately() -> None:
    horizon = [
        *observations(
            "base", {0: [1.0], 1: [3.0]}, metric="err", extra=json.dumps({"horizon": 2, "mode": "chain"})
        ),
        *observations(
            "base", {0: [0.5], 1: [0.7]}, metric="err", extra=json.dumps({"horizon": 1, "mode": "chain"})
        ),
    ]
    data = scores(observations("base", {0: [5.0], 1: [5.0]}), horizon)
    assert tables.summary(data, STUDY)["metric"].tolist() == ["m"]
    table = tables.horizon_table(data, STUDY)
    assert table["horizon"].tolist() == [1, 2] and table["mode"].tolist() == ["chain", "chain"]
    assert table["mean"].tolist() == pytest.approx([0.6, 2.0])
    assert table["ci_high"].iloc[1] - 2.0 == pytest.approx(T_975_DF1 * math.sqrt(2) / math.sqrt(2))
    wide = tables.format_horizon(table)
    assert list(wide.columns) == ["metric", "mode", "variant", "h=1", "h=2"] and len(wide) == 1


def test_switch_pairs_differ_in_exactly_one_axis() -> None:
    labels = {(pair.axis, pair.before, pair.after) for pair in tables.switch_pairs(STUDY)}
    assert labels == {
        ("rotation_layer", "base", "rot"), ("cross_attention", "base", "xattn"), ("regime", "base", "back"),
    }  # fmt: skip



def study_json_of(path: Path) -> dict:
    """The `axes`/`variants`/`baselines` part of study.json, as collect() writes it for a loaded study file."""
    from ablations.study import load_study

    study = load_study(path)
    return {"study": study.name, "baselines": list(study.spec.baselines), "variant_order": study.variant_order(),
            "axes": study.axes, "variants": {t.variant: t.factors for t in study.trials}}


def test_an_axis_no_shipped_study_uses_pairs_only_one_factor_changes(tmp_path: Path) -> None:
    # regime × train.loss: 'back-legacy' changes two factors from 'base' and must never be a switch of either.
    import yaml

    path = tmp_path / "loss.yaml"
    path.write_text(yaml.safe_dump({
        "study": "loss", "data": {"source": "synthetic"}, "generate": {"enabled": False}, "model": {"width": 8},
        "matrix": {"regime": {"base": {}, "back": {"regime.back": True}},
                   "loss": {"displacement": {}, "legacy": {"train.loss": "legacy"}}},
    }, sort_keys=False))
    study = study_json_of(path)
    assert study["axes"] == {"regime": ["base", "back"], "loss": ["displacement", "legacy"]}
    assert study["variants"]["back-legacy"] == {"regime": "back", "loss": "legacy"}
    assert {pair.label for pair in tables.switch_pairs(study)} == {
        "regime: base→back (base → back)",
        "regime: base→back (base-legacy → back-legacy)",
        "loss: displacement→legacy (base → base-legacy)",
        "loss: displacement→legacy (back → back-legacy)",
    }  # fmt: skip


def test_a_head_axis_takes_part_and_its_first_level_is_the_reference(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "head.yaml"
    path.write_text(yaml.safe_dump({
        "study": "head", "data": {"source": "synthetic"}, "generate": {"enabled": False}, "model": {"width": 8},
        "matrix": {"head": {"simple": {"model.head": "simple"}, "increment": {"model.head": "increment"},
                            "dual": {"model.head": "dual"}}},
    }, sort_keys=False))
    pairs = tables.switch_pairs(study_json_of(path))
    assert [(pair.change, pair.before, pair.after) for pair in pairs] == [
        ("head: simple→increment", "simple", "increment"), ("head: simple→dual", "simple", "dual"),
    ]  # fmt: skip

def test_ablation_table_is_the_paired_difference_after_minus_before() -> None:
    data = scores(
        observations("base", {0: [1.0], 1: [2.0], 2: [3.0]}),
        observations("rot", {0: [1.5], 1: [3.0], 2: [3.1]}),
    )
    table = tables.ablation_table(data, STUDY, "m")
    assert table["switch"].tolist() == [
        "rotation_layer: off→plane (base → rot)"
    ]  # no scores: no xattn/back rows
    assert table["diff"].iloc[0] == pytest.approx((0.5 + 1.0 + 0.1) / 3) and table["n"].iloc[0] == 3


def test_headline_metric_prefers_study_choice_then_video_metrics() -> None:
    data = scores(
        observations("base", {0: [1.0]}, metric="a_set", level="set", prompt_id=None),
        observations("base", {0: [1.0]}, metric="b_video"),
    )
    assert tables.headline_metric(data, STUDY) == "b_video"
    assert tables.headline_metric(data, {**STUDY, "headline_metric": "a_set"}) == "a_set"
    with pytest.raises(ValueError, match="headline_metric"):
        tables.headline_metric(data, {**STUDY, "headline_metric": "nope"})


def test_a_metric_with_two_directions_is_an_error() -> None:
    data = scores(observations("base", {0: [1.0]}), observations("rot", {0: [1.0]}, higher_is_better=False))
    with pytest.raises(ValueError, match="'m' has mixed `higher_is_better`"):
        tables.summary(data, STUDY)


def test_markdown_and_latex_exports() -> None:
    table = pd.DataFrame(
        {"metric": ["fvd_x|y", "a&b"], "value": [1.23456, math.nan], "note": ["⚠ n ≤ dim", ""]}
    )
    markdown = tables.to_markdown(table).splitlines()
    assert markdown[0] == "| metric | value | note |" and markdown[1] == "|---|---|---|"
    assert markdown[2] == "| fvd_x\\|y | 1.235 | ⚠ n ≤ dim |" and markdown[3] == "| a&b | — |  |"
    latex = tables.to_latex(table)
    assert r"\begin{tabular}{lll}" in latex and r"fvd\_x|y & 1.235 & (!) n $\leq$ dim \\" in latex
    assert r"a\&b & -- &  \\" in latex and latex.rstrip().endswith(r"\end{tabular}")


def test_protocol_table_says_what_was_not_recorded_or_not_done() -> None:
    study = {**STUDY, "prompt_set": None, "generation": {"enabled": False}, "git_sha": "0123456789abcdef00"}
    runs = pd.DataFrame({"gpu_name": ["NVIDIA H100", None]})
    results = Results(
        Path("."), study, pd.DataFrame(), runs, pd.DataFrame(), pd.DataFrame(), ["videos.parquet"]
    )
    protocol = dict(tables.protocol_table(results).itertuples(index=False))
    assert protocol["prompt set"] == "none (no videos were generated)" and protocol["generation"] == "none"
    assert protocol["git"] == "0123456789ab" and protocol["device"] == "not recorded (NVIDIA H100)"
    assert protocol["backend"] == "not recorded" and protocol["absent tables"] == "videos.parquet"
    unused = Results(Path("."), {**study, "backend": None}, pd.DataFrame(), runs, pd.DataFrame(), pd.DataFrame(), [])
    assert dict(tables.protocol_table(unused).itertuples(index=False))["backend"] == "none (not used)"


def test_protocol_table_says_whether_lpips_was_computed() -> None:
    def protocol(lpips: dict | None) -> dict[str, str]:
        study = {**STUDY, "evaluation_protocol": {"lpips": lpips}}
        results = Results(Path("."), study, pd.DataFrame(), pd.DataFrame({"gpu_name": []}), pd.DataFrame(),
                          pd.DataFrame(), [])  # fmt: skip
        return dict(tables.protocol_table(results).itertuples(index=False))

    assert protocol({"computed": False, "detail": "not computed (no weights file given)"})["LPIPS"] == (
        "not computed (no weights file given)")
    assert protocol({"computed": True, "detail": "alex backbone from a.pth"})["LPIPS"] == "alex backbone from a.pth"
    assert "LPIPS" not in protocol(None)  # no paired metrics: nothing to say


def test_overview_puts_the_headline_first_marks_best_and_unreliable() -> None:
    data = scores(
        observations("static", {0: [0.1], 1: [0.1]}, metric="embed_cosine[step,start=true]"),
        observations("base", {0: [0.5], 1: [0.7]}, metric="embed_cosine[step,start=true]"),
        observations("static", {0: [3.0], 1: [3.0]}, metric="fvd[x,8f,64,squash]", level="set", reliable=False,
                     higher_is_better=False, prompt_id=None, sample_idx=None, gen_seed=None),
        observations("base", {0: [2.0], 1: [2.0]}, metric="fvd[x,8f,64,squash]", level="set", reliable=False,
                     higher_is_better=False, prompt_id=None, sample_idx=None, gen_seed=None),
        observations("base", {0: [1.0], 1: [1.0]}, metric="not_a_key_metric"),
    )
    wide = tables.overview(tables.summary(data, STUDY), STUDY, headline="embed_cosine[step,start=true]")
    assert list(wide.columns) == ["variant", "embed_cosine[step,start=true] ↑", "fvd[x,8f,64,squash] ↓"]
    assert list(wide["variant"]) == ["static", "base"]
    cells = wide.set_index("variant")
    assert cells.loc["base", "embed_cosine[step,start=true] ↑"] == "0.6 ★"
    assert cells.loc["static", "embed_cosine[step,start=true] ↑"] == "0.1"
    assert cells.loc["base", "fvd[x,8f,64,squash] ↓"] == "2 ⚠"


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.5, "0.5"), (123.456, "123.5"), (1.0, "1"), (0.99998, "0.9999800"), (0.9975, "0.99750"), (-0.99912, "-0.999120"),
     (1.00004, "1.0000400"), (float("nan"), "—")],
)
def test_numbers_near_one_keep_the_digits_that_differ(value: float, text: str) -> None:
    assert tables.format_number(value) == text


def sixty_metrics() -> list[str]:
    """60 names in 6 families, as a study with every split, mode, start and shuffled-text control writes them."""
    names = []
    for family in ("embed_cosine", "embed_disp_cosine", "embed_error_growth"):
        for mode in ("step", "chain"):
            for start in ("true", "prior"):
                for split in ("test", "test_unseen"):
                    for text in ("", ",text=shuffled"):
                        names.append(f"{family}[{mode},start={start},split={split}{text}]")
    names += [f"clip_temporal_consecutive[openclip:enc{index}]" for index in range(6)]
    names += ["pixel_motion[mad255]", "fvd[i3d,16f]"]
    names += [f"clip_text_alignment[openclip:enc{index}]" for index in range(4)]
    return names


def test_detail_figures_are_bounded_and_keep_the_headline_the_expectations_and_each_family() -> None:
    names = sixty_metrics()
    headline = "embed_cosine[step,start=true,split=test]"
    named = ["fvd[i3d,16f]", "embed_cosine[chain,start=prior,split=test_unseen]"]
    shown = tables.detail_metrics(names, headline, named=named)
    assert len(names) == 60 and len(shown) <= tables.DETAIL_LIMIT
    assert shown[:3] == [headline, *named]
    assert {tables.metric_family(name) for name in shown} == {tables.metric_family(name) for name in names}
    # the other families are drawn at the headline's protocol, not at the first name of the family
    assert "embed_disp_cosine[step,start=true,split=test]" in shown
    assert len(shown) == len(set(shown)) and set(shown) <= set(names)


def test_detail_figures_keep_the_headline_even_at_a_limit_of_one_and_take_all_of_a_small_study() -> None:
    names = sixty_metrics()
    assert tables.detail_metrics(names, "pixel_motion[mad255]", limit=1) == ["pixel_motion[mad255]"]
    assert sorted(tables.detail_metrics(names[:3], names[1])) == sorted(names[:3])
    assert tables.detail_metrics(["a[x]", "b[x]"], None) == ["a[x]", "b[x]"]  # no headline: one per family


def test_scored_on_counts_held_out_videos_per_split_prompts_samples_and_set_sizes() -> None:
    held_out = [
        *observations("base", {0: [0.5] * 4, 1: [0.5] * 4}, metric="embed_cosine[step,split=test]", sample_idx=None),
        *observations("base", {0: [0.5] * 2, 1: [0.5] * 2}, metric="embed_cosine[step,split=test_unseen]",
                      sample_idx=None),
    ]  # fmt: skip
    generated = [  # per seed: prompts p0, p0, p1, p1, p2, p2 with samples 0, 1
        {**row, "prompt_id": f"p{index % 6 // 2}", "sample_idx": index % 2}
        for index, row in enumerate(observations("base", {0: [0.7] * 6, 1: [0.7] * 6}, metric="clip"))
    ]
    fvd = observations("base", {0: [9.0], 1: [9.0]}, metric="fvd[i3d]", level="set", n=6, prompt_id=None,
                       sample_idx=None)  # fmt: skip
    text = tables.scored_on(scores(held_out, generated, fvd))
    assert text == ("each trial's number is over 4 test + 2 test_unseen held-out videos (embedding metrics); 3 prompts × 2 sample(s) = "
                    "6 generated videos (video metrics); 6 videos per set (fvd)")


def test_the_protocol_says_which_baselines_ran_once_and_how_many_videos_were_skipped() -> None:
    data = scores(observations("static", {0: [1.0]}), observations("base", {0: [1.0], 1: [1.0], 2: [1.0]}))
    skipped = [{"encode": "ab12cd34", "video": "zero_byte", "reason": "empty file"},
               {"encode": "ab12cd34", "video": "clip[red]", "reason": "no video stream"}]  # fmt: skip
    results = Results(Path("."), {**STUDY, "skipped": skipped}, data, pd.DataFrame({"gpu_name": []}),
                      pd.DataFrame(), pd.DataFrame(), [])  # fmt: skip
    protocol = dict(tables.protocol_table(results).itertuples(index=False))
    assert protocol["seeds"].endswith("; run once (deterministic): static")
    assert protocol["skipped videos"].startswith("2 source file(s) left out by the encode stage")
    assert protocol["skipped videos"].endswith("the store and every score use the rest")  # no FVD scored
    fvd = {"skipped": skipped, "evaluation_protocol": {"fvd": {"metric": "fvd[x]"}, "evaluation_set":
                                                       {"n_reference_skipped": 3}}}  # fmt: skip
    assert tables.skipped_summary(fvd).endswith("FVD's reference set use the rest; FVD's reference set left out "
                                                "3 more clip(s)")
    assert list(tables.skipped_table(results.study)["video"]) == ["zero_byte", "clip[red]"]
    assert tables.skipped_summary({}) == "not recorded"
    assert tables.skipped_summary({"skipped": []}).startswith("none")
